//! Errors reach JavaScript with the core's stable `code`; the TypeScript layer maps codes to classes.

use napi::{sys, Env, Error, Status};
use pyre_nexus_core::Error as CoreError;
use std::ffi::CString;

/// Throws `error` as a JavaScript `Error` with `error.code` set, and returns the marker that tells
/// napi-rs an exception is already pending.
pub fn throw(env: &Env, code: &str, message: &str) -> Error {
    let code = CString::new(code).unwrap_or_default();
    let message = CString::new(message.replace('\0', " ")).unwrap_or_default();
    // SAFETY: env is the live environment of the current call; both strings are NUL-terminated.
    unsafe { sys::napi_throw_error(env.raw(), code.as_ptr(), message.as_ptr()) };
    Error::from_status(Status::PendingException)
}

/// The conversion every binding call uses for core failures.
pub trait OrThrow<T> {
    fn or_throw(self, env: &Env) -> napi::Result<T>;
}

impl<T> OrThrow<T> for Result<T, CoreError> {
    fn or_throw(self, env: &Env) -> napi::Result<T> {
        self.map_err(|e| throw(env, e.code(), &e.to_string()))
    }
}
