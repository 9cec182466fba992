//! The N-API binding of pyre-nexus: converts types, maps errors to coded JavaScript errors and
//! drives the core's dispatcher from Node's libuv loop. The logic lives in `pyre-nexus-core`.
//!
//! Panics: a panic must not unwind into C (that aborts the user's process). Every export is
//! `#[napi(catch_unwind)]`, which turns a panic into a JavaScript exception, or, for the calls
//! made per message, goes through `glue::call`, which throws it as `ERR_NEXUS_INTERNAL`; the
//! libuv callbacks catch theirs and reject the watch promise with `ERR_NEXUS_INTERNAL`. So a bug
//! in the native code surfaces as an error the user can see, never as a silent crash.

#![allow(clippy::new_without_default)]
// Under cfg(test) napi-derive does not register exports, so they would all look unused.
#![cfg_attr(test, allow(dead_code))]

#[cfg(unix)]
mod channel;
#[cfg(unix)]
mod dispatcher;
#[cfg(unix)]
mod error;
#[cfg(unix)]
mod glue;
#[cfg(unix)]
mod guard;
#[cfg(unix)]
mod handle;
#[cfg(unix)]
mod recruit;
#[cfg(unix)]
mod shared;
#[cfg(unix)]
mod status;
#[cfg(unix)]
mod uv;

use napi_derive::napi;

/// Whether this platform is supported; the TypeScript layer refuses to load where it is not.
#[napi(catch_unwind)]
pub fn platform_supported() -> bool {
    cfg!(unix)
}
