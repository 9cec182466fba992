//! Glue written by hand for the channel calls made once or more per message.
//!
//! napi-rs 3 wraps every `#[napi]` function that has arguments in a borrow scope, so that a
//! `&self` of a class stays borrowed while the result converts: an `Arc<Mutex<_>>` allocated and
//! freed, pushed on and popped off thread-local stacks along with a barrier and a deferred-scope
//! guard. The channel calls borrow no class, and the scope was about 950 of the 1,210
//! instructions a call to `channelAtEnd` cost (callgrind, napi 3.16; napi-rs has no option to
//! leave it out). Here a call is what it was under napi-rs 2: `napi_get_cb_info`, napi-rs's own
//! conversions of arguments and result, and the body.
//!
//! Panics: as `#[napi(catch_unwind)]` does, a panic is caught here and thrown as a JavaScript
//! error (`ERR_NEXUS_INTERNAL`), never unwound into C.

use crate::error::throw;
use crate::handle::ChannelHandle;
use napi::bindgen_prelude::*;
use napi::sys;
use pyre_nexus_core::Error as CoreError;
use std::any::Any;
use std::ffi::CStr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;

/// A function as N-API calls it.
pub type Callback = unsafe extern "C" fn(sys::napi_env, sys::napi_callback_info) -> sys::napi_value;

/// The arguments of the call being made, converted when asked for. Missing ones are `undefined`,
/// which no conversion below accepts.
pub struct Args<'env, const N: usize> {
    env: &'env Env,
    values: [sys::napi_value; N],
}

impl<'env, const N: usize> Args<'env, N> {
    /// Argument `i` as a channel.
    pub fn channel(&self, i: usize) -> Result<ChannelHandle> {
        // SAFETY: `values` are the live arguments of the call `env` is making (see `call`).
        unsafe { ChannelHandle::from_arg(self.env.raw(), self.values[i]) }
    }

    /// Argument `i` as a Buffer's bytes.
    pub fn buffer(&self, i: usize) -> Result<BufferSlice<'env>> {
        // SAFETY: as above.
        unsafe { BufferSlice::from_napi_value(self.env.raw(), self.values[i]) }
    }

    /// Argument `i` as an unsigned 32-bit number.
    pub fn u32(&self, i: usize) -> Result<u32> {
        // SAFETY: as above.
        unsafe { u32::from_napi_value(self.env.raw(), self.values[i]) }
    }
}

/// Runs `body` for the call N-API is making with `info`, and gives N-API what it returned as a
/// JavaScript value, or null with an exception thrown.
///
/// # Safety
/// `env` and `info` are those of a call that N-API is making now, on this thread.
pub unsafe fn call<'env, const N: usize, R: ToNapiValue>(
    env: &'env Env,
    info: sys::napi_callback_info,
    body: impl FnOnce(Args<'env, N>) -> Result<R>,
) -> sys::napi_value {
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let mut argc = N;
        let mut values = [ptr::null_mut(); N];
        // SAFETY: per this function's contract; `values` has room for `argc` values.
        let status = unsafe {
            sys::napi_get_cb_info(
                env.raw(),
                info,
                &mut argc,
                values.as_mut_ptr(),
                ptr::null_mut(),
                ptr::null_mut(),
            )
        };
        if status != sys::Status::napi_ok {
            return Err(Error::from_status(Status::from(status)));
        }
        let result = body(Args { env, values })?;
        // SAFETY: `env` is the environment of the current call.
        unsafe { R::to_napi_value(env.raw(), result) }
    }));
    match outcome {
        Ok(Ok(value)) => value,
        Ok(Err(error)) => {
            // SAFETY: as above; an exception already pending is left as it is.
            unsafe { JsError::from(error).throw_into(env.raw()) };
            ptr::null_mut()
        }
        Err(panic) => {
            let what = panic_message(&*panic).to_owned();
            throw(env, &CoreError::Internal { what });
            ptr::null_mut()
        }
    }
}

fn panic_message(panic: &(dyn Any + Send)) -> &str {
    if let Some(text) = panic.downcast_ref::<&str>() {
        text
    } else if let Some(text) = panic.downcast_ref::<String>() {
        text
    } else {
        "a panic"
    }
}

/// Sets each function on `exports` under its name.
pub fn export(env: &Env, exports: &Object, functions: &[(&CStr, Callback)]) -> Result<()> {
    for &(name, callback) in functions {
        let mut function = ptr::null_mut();
        // SAFETY: value creation while the module registers, on its thread; `name` ends in NUL.
        let status = unsafe {
            let created = sys::napi_create_function(
                env.raw(),
                name.as_ptr(),
                -1, // NAPI_AUTO_LENGTH: NUL-terminated
                Some(callback),
                ptr::null_mut(),
                &mut function,
            );
            if created == sys::Status::napi_ok {
                sys::napi_set_named_property(env.raw(), exports.raw(), name.as_ptr(), function)
            } else {
                created
            }
        };
        if status != sys::Status::napi_ok {
            return Err(Error::from_status(Status::from(status)));
        }
    }
    Ok(())
}
