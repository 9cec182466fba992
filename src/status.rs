//! The status words: a few 32-bit words JavaScript reads and writes without calling in, so that
//! what a call into the addon would only say back ("nothing yet", "at the end", "nothing pending")
//! is answered where it is asked.
//!
//! JavaScript makes them once per thread (an `Int32Array` over an `ArrayBuffer` of its own, whose
//! memory does not move) and shares them with `shareStatus`; this thread then keeps a reference
//! to them, which they live by, and writes through a pointer to their bytes. Each thread has its
//! own: a worker thread's channels and polls are its own.

use crate::error::throw;
use crate::guard::{check, value_of};
use napi::bindgen_prelude::*;
use napi::{sys, JsValue};
use napi_derive::napi;
use pyre_nexus_core::{readiness_epoch, Channel, Error as CoreError};
use std::cell::Cell;
use std::ptr;

/// The core's readiness epoch as of the last poll: while it is unchanged, what the last read or
/// receive of a channel said of its input still holds (see `Channel::input_state`).
pub const EPOCH: usize = 0;
/// The output still pending on the channel last written, after the write.
pub const PENDING: usize = 1;
/// The input state of the channel last read or received from, after the call (its bits).
pub const INPUT: usize = 2;
/// Written by JavaScript before each read or receive: how many of the frames the channel's last
/// receive lent it were handed out (see `Channel::take_lent`).
pub const TAKEN: usize = 3;
/// Written by JavaScript before each read or receive: 1 to ask the kernel even if the socket
/// was last found empty (see `Channel::recheck`), 0 not to.
pub const RECHECK: usize = 4;

/// How many words there are.
#[napi]
pub const STATUS_WORDS: u32 = 5;

thread_local! {
    /// The words' bytes, null until JavaScript has shared them.
    static WORDS: Cell<*mut i32> = const { Cell::new(ptr::null_mut()) };
    /// The reference that keeps them alive, and the environment it belongs to.
    static KEPT: Cell<(sys::napi_env, sys::napi_ref)> =
        const { Cell::new((ptr::null_mut(), ptr::null_mut())) };
}

/// Writes `value` into word `word`, once the words are shared.
pub fn set(word: usize, value: i32) {
    let words = WORDS.with(Cell::get);
    if !words.is_null() {
        // SAFETY: `words` points at the STATUS_WORDS words of an ArrayBuffer this thread keeps
        // alive (see `share_status`), whose memory does not move; `word` is one of the indices
        // above. JavaScript runs on this thread only between calls.
        unsafe { words.add(word).write(value) };
    }
}

/// Word `word`: 0 until the words are shared.
pub fn get(word: usize) -> i32 {
    let words = WORDS.with(Cell::get);
    if words.is_null() {
        return 0;
    }
    // SAFETY: as in `set`.
    unsafe { words.add(word).read() }
}

/// Tells JavaScript the readiness epoch: after a poll, and after a dispatcher let go of its
/// channels.
pub fn publish_epoch() {
    set(EPOCH, readiness_epoch() as i32);
}

/// Tells JavaScript what `channel` holds for its next read or receive.
pub fn publish_input(channel: &Channel) {
    set(INPUT, channel.input_state().bits().into());
}

/// Tells JavaScript the output pending on `channel`.
pub fn publish_pending(channel: &Channel) {
    set(
        PENDING,
        channel.pending_output().min(i32::MAX as usize) as i32,
    );
}

/// Before a read or receive: does what JavaScript wrote for this call. It settles the frames
/// `channel` lent it at its last receive (see `Channel::take_lent`), and rechecks the socket if
/// asked to.
pub fn before_input(channel: &mut Channel) {
    if channel.lent_frames() > 0 {
        channel.take_lent(get(TAKEN).max(0) as usize);
    }
    if get(RECHECK) != 0 {
        channel.recheck();
    }
    set(TAKEN, 0);
    set(RECHECK, 0);
}

/// Shares `words` (an `Int32Array` of at least `STATUS_WORDS` words over an `ArrayBuffer`) as this
/// thread's status words, and returns them; if the thread already has some (another copy of the
/// JavaScript module shared them first), those are returned instead, and every copy uses them.
#[napi(
    catch_unwind,
    ts_args_type = "words: Int32Array",
    ts_return_type = "Int32Array"
)]
pub fn share_status<'env>(env: &'env Env, words: Unknown<'env>) -> Result<Unknown<'env>> {
    let (kept_env, kept) = KEPT.with(Cell::get);
    if !kept.is_null() && kept_env == env.raw() {
        // SAFETY: a reference of this environment, never deleted; the call's scope is open.
        let value = unsafe { value_of(env.raw(), kept) };
        // SAFETY: a live value of the current call's scope.
        return Ok(unsafe { Unknown::from_raw_unchecked(env.raw(), value) });
    }
    let (mut kind, mut length, mut data) = (sys::TypedarrayType::uint8_array, 0, ptr::null_mut());
    let (mut buffer, mut offset) = (ptr::null_mut(), 0);
    // SAFETY: `words` is an argument of the current call; a value that is no typed array is an
    // error status.
    let status = unsafe {
        sys::napi_get_typedarray_info(
            env.raw(),
            words.raw(),
            &mut kind,
            &mut length,
            &mut data,
            &mut buffer,
            &mut offset,
        )
    };
    if status != sys::Status::napi_ok
        || kind != sys::TypedarrayType::int32_array
        || length < STATUS_WORDS as usize
    {
        let what = format!("shareStatus: expected an Int32Array of at least {STATUS_WORDS} words");
        return Err(throw(env, &CoreError::InvalidArgType { what }));
    }
    let mut reference = ptr::null_mut();
    // SAFETY: a live value of the current call. The reference is never deleted: the words must
    // live as long as this thread's environment, which lets go of its references when it ends.
    check(unsafe { sys::napi_create_reference(env.raw(), words.raw(), 1, &mut reference) })?;
    // SAFETY: on the environment's thread; the hook runs as the environment is torn down, after
    // those added later (the dispatchers'), and takes nothing from its data.
    check(unsafe { sys::napi_add_env_cleanup_hook(env.raw(), Some(forget), ptr::null_mut()) })?;
    KEPT.with(|kept| kept.set((env.raw(), reference)));
    WORDS.with(|words| words.set(data.cast()));
    publish_epoch();
    Ok(words)
}

/// The environment is being torn down: nothing is written to the words after this (a finalizer
/// that runs later finds none), and a new environment on this thread shares its own.
///
/// # Safety
/// Node calls it on the environment's thread, as `napi_add_env_cleanup_hook` says.
unsafe extern "C" fn forget(_data: *mut std::ffi::c_void) {
    // A thread already letting go of its locals has nothing left to forget (and must not panic).
    let _ = WORDS.try_with(|words| words.set(ptr::null_mut()));
    let _ = KEPT.try_with(|kept| kept.set((ptr::null_mut(), ptr::null_mut())));
}
