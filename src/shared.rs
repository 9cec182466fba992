//! Shared words: 32-bit words that a team process and one worker process both map, as a Buffer
//! over the mapping. The team makes them with `sharedWords` and hands their `fd` to `spawn`; the
//! worker finds them with `inheritedWords`. Either side reads and writes them with `Atomics` on an
//! `Int32Array` over the Buffer, without a system call.

use crate::error::{throw, OrThrow};
use napi::bindgen_prelude::*;
use napi_derive::napi;
use pyre_nexus_core::{Error as CoreError, SharedRegion};
use std::os::fd::IntoRawFd;

/// Words made by `sharedWords`, and the descriptor that hands them to a worker.
#[napi(object, object_from_js = false)]
pub struct SharedWords<'env> {
    pub words: BufferSlice<'env>,
    pub fd: i32,
}

/// `count` fresh words (zeroed) for one worker: `{ words, fd }`. Pass `fd` to `spawn`, and close
/// it once the worker is spawned (`fs.closeSync`); the memory goes when `words` is collected.
#[napi(catch_unwind)]
pub fn shared_words(env: &Env, count: u32) -> Result<SharedWords<'_>> {
    let (region, fd) = SharedRegion::create(bytes(count)).or_throw(env)?;
    let words = buffer(env, region)?;
    Ok(SharedWords {
        words,
        fd: fd.into_raw_fd(),
    })
}

/// In a worker: the `count` words its team handed it on fd 4, which is closed once they are
/// mapped. Throws `ERR_NEXUS_NOT_SHARED_MEMORY`, saying what fd 4 is, if it holds no such words.
#[napi(catch_unwind)]
pub fn inherited_words(env: &Env, count: u32) -> Result<BufferSlice<'_>> {
    let region = SharedRegion::inherit(bytes(count)).or_throw(env)?;
    buffer(env, region)
}

/// The length of `count` words (too many for this machine: more than it can map).
fn bytes(count: u32) -> usize {
    (count as usize).saturating_mul(4)
}

/// A Buffer over the whole region, which stays mapped until V8 has let go of the Buffer.
fn buffer(env: &Env, region: SharedRegion) -> Result<BufferSlice<'_>> {
    let (start, len) = (region.as_ptr(), region.len());
    // SAFETY: `start` points at `len` bytes, mapped read/write as long as `region` lives; the
    // finalizer keeps `region` until V8 has let go of the Buffer.
    let buffer =
        unsafe { BufferSlice::from_external(env, start, len, region, |_, region| drop(region)) }?;
    // Where the runtime forbids Buffers over native memory (a V8 sandbox), napi-rs hands back a
    // copy, which nobody shares.
    if buffer.as_ptr() != start.cast_const() {
        let why = "this runtime does not allow Buffers over native memory, which shared words need";
        return Err(throw(env, &CoreError::Unsupported { why: why.into() }));
    }
    Ok(buffer)
}
