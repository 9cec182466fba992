//! Channels as JavaScript holds them: N-API externals whose data is not a pointer but a key into
//! this thread's table of live channels.
//!
//! An external's data comes back from `napi_get_value_external` untyped, and a value handed in
//! may be an external of some other addon. napi-rs 3's `External<T>` makes that safe by looking
//! every pointer up in a process-wide registry (a mutex and a SipHash map: about 175 instructions
//! a call, callgrind). A key is never dereferenced: the table lookup is the check, and a foreign
//! external can at worst name a live channel of ours, never memory that is not one.
//!
//! The table is per thread because a channel is (`Rc`): each JavaScript thread has its own
//! environment, an external cannot move to another, and its finalizer runs on its own thread.

use crate::error::throw_raw;
use napi::bindgen_prelude::*;
use napi::sys;
use pyre_nexus_core::{Channel, Error as CoreError, SharedChannel};
use slab::Slab;
use std::cell::RefCell;
use std::ffi::c_void;
use std::ops::Deref;
use std::ptr;

thread_local! {
    static LIVE: RefCell<Slab<SharedChannel>> = const { RefCell::new(Slab::new()) };
}

/// A channel taken from, or handed to, JavaScript. Dropped (and closed) once JavaScript has let
/// go of its external and nothing else (a dispatcher's registration) holds it.
pub struct ChannelHandle(SharedChannel);

impl ChannelHandle {
    pub fn new(channel: Channel) -> Self {
        ChannelHandle(channel.shared())
    }

    /// The channel behind `value`, an argument of the current call.
    ///
    /// # Safety
    /// `env` is the environment of the current call and `value` a live value in it.
    pub unsafe fn from_arg(env: sys::napi_env, value: sys::napi_value) -> Result<Self> {
        let mut data = ptr::null_mut();
        // SAFETY: per this function's contract; a value that is no external is an error.
        let status = unsafe { sys::napi_get_value_external(env, value, &mut data) };
        // Keys are stored plus one, so that no null pointer names a channel.
        let key = (data as usize).wrapping_sub(1);
        let channel = (status == sys::Status::napi_ok)
            .then(|| LIVE.with(|live| live.borrow().get(key).cloned()))
            .flatten();
        channel.map(ChannelHandle).ok_or_else(|| {
            let error = CoreError::InvalidArgType {
                what: "expected a channel handle".into(),
            };
            // SAFETY: per this function's contract.
            unsafe { throw_raw(env, &error) }
        })
    }
}

impl Deref for ChannelHandle {
    type Target = SharedChannel;

    fn deref(&self) -> &SharedChannel {
        &self.0
    }
}

impl FromNapiValue for ChannelHandle {
    unsafe fn from_napi_value(env: sys::napi_env, value: sys::napi_value) -> Result<Self> {
        // SAFETY: napi-rs converts arguments of the current call.
        unsafe { ChannelHandle::from_arg(env, value) }
    }
}

impl ToNapiValue for ChannelHandle {
    unsafe fn to_napi_value(env: sys::napi_env, handle: Self) -> Result<sys::napi_value> {
        let key = LIVE.with(|live| live.borrow_mut().insert(handle.0));
        let mut value = ptr::null_mut();
        // SAFETY: `env` is the environment of the current call; the data is a number that
        // `release` takes back, not memory.
        let status = unsafe {
            sys::napi_create_external(
                env,
                (key + 1) as *mut c_void,
                Some(release),
                ptr::null_mut(),
                &mut value,
            )
        };
        if status != sys::Status::napi_ok {
            LIVE.with(|live| live.borrow_mut().try_remove(key));
            return Err(Error::from_status(Status::from(status)));
        }
        Ok(value)
    }
}

impl TypeName for ChannelHandle {
    fn type_name() -> &'static str {
        "ChannelHandle"
    }

    fn value_type() -> ValueType {
        ValueType::External
    }
}

impl ValidateNapiValue for ChannelHandle {}

/// The external's finalizer: the table lets go of the channel. At the end of a thread its table
/// may be gone already (it then dropped the channel itself); a panic has no caller to reach and
/// must not unwind into C, so one is swallowed (the channel leaks).
///
/// # Safety
/// N-API calls it once per external, with the data it was made with (a key, never dereferenced).
unsafe extern "C" fn release(_env: sys::napi_env, data: *mut c_void, _hint: *mut c_void) {
    let key = (data as usize).wrapping_sub(1);
    let _ = std::panic::catch_unwind(|| {
        // Taken out first and dropped after, so the table is not borrowed while a channel closes.
        let channel = LIVE.try_with(|live| live.try_borrow_mut().ok()?.try_remove(key));
        drop(channel);
    });
}
