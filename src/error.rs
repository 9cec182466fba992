//! Errors reach JavaScript as `Error`s with the core's stable `code` (see the registry in the
//! core's `error.rs`); the TypeScript layer maps each code to its class (`ts/errors.ts`).

use napi::{sys, Env, Error, Status};
use napi_derive::napi;
use pyre_nexus_core::{Code, Error as CoreError};
use std::ffi::CString;
use std::ptr;

/// Every code the binding throws, for the spec that checks TypeScript has a class for each.
#[napi(catch_unwind)]
pub fn error_codes() -> Vec<&'static str> {
    Code::ALL.iter().map(|code| code.as_str()).collect()
}

/// The code and message of `error` as C strings (a NUL in the message becomes a space).
fn c_strings(error: &CoreError) -> (CString, CString) {
    let code = CString::new(error.code().as_str()).unwrap_or_default();
    let message = CString::new(error.to_string().replace('\0', " ")).unwrap_or_default();
    (code, message)
}

/// Throws `error` as a JavaScript `Error` with `error.code` set, and returns the marker that tells
/// napi-rs an exception is already pending.
pub fn throw(env: &Env, error: &CoreError) -> Error {
    // SAFETY: `env` is the live environment of the current call.
    unsafe { throw_raw(env.raw(), error) }
}

/// [`throw`], for code that has the raw environment.
///
/// # Safety
/// `env` is the live environment of a call being made on this thread.
pub unsafe fn throw_raw(env: sys::napi_env, error: &CoreError) -> Error {
    let (code, message) = c_strings(error);
    // SAFETY: per this function's contract; both strings are NUL-terminated.
    unsafe { sys::napi_throw_error(env, code.as_ptr(), message.as_ptr()) };
    Error::from_status(Status::PendingException)
}

/// `error` as a JavaScript `Error` value with `error.code` set, to reject a promise with.
///
/// # Safety
/// `env` is live and this is its thread, with a handle scope open.
pub unsafe fn error_value(env: sys::napi_env, error: &CoreError) -> sys::napi_value {
    let (code, message) = c_strings(error);
    let (mut c, mut m, mut value) = (ptr::null_mut(), ptr::null_mut(), ptr::null_mut());
    // SAFETY: per this function's contract; both strings are NUL-terminated.
    unsafe {
        sys::napi_create_string_utf8(env, code.as_ptr(), -1, &mut c);
        sys::napi_create_string_utf8(env, message.as_ptr(), -1, &mut m);
        sys::napi_create_error(env, c, m, &mut value);
    }
    value
}

/// The conversion every binding call uses for core failures.
pub trait OrThrow<T> {
    /// The value, or `error` thrown (see [`throw`]).
    fn or_throw(self, env: &Env) -> napi::Result<T>;
}

impl<T> OrThrow<T> for Result<T, CoreError> {
    fn or_throw(self, env: &Env) -> napi::Result<T> {
        self.map_err(|e| throw(env, &e))
    }
}
