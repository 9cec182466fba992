//! Guards over the raw N-API calls the dispatcher makes: each takes something in its constructor
//! and gives it back when dropped (or, for a deferred, when it settles, which it does once), so
//! no path through the loop forgets a scope or a reference.
//!
//! Every guard holds the environment it was made in, and must go before that environment is torn
//! down: the dispatcher drops its guards when it closes, which its cleanup hook does at the
//! latest. The raw handles make every guard `!Send`, so it stays on the environment's thread.

use napi::sys;
use napi::{Error, Result, Status};
use std::ptr;

/// Turns an N-API status into a result.
pub fn check(status: sys::napi_status) -> Result<()> {
    if status == sys::Status::napi_ok {
        Ok(())
    } else {
        Err(Error::from_status(Status::from(status)))
    }
}

/// A handle scope: the values made while it is open are let go of when it is dropped. Needed
/// wherever N-API is called from outside a JavaScript call (a libuv callback).
pub struct HandleScope {
    env: sys::napi_env,
    scope: sys::napi_handle_scope,
}

impl HandleScope {
    /// Opens a handle scope.
    ///
    /// # Safety
    /// `env` is live and this is its thread; scopes close in the reverse order they opened,
    /// which dropping the guards in scope order does.
    pub unsafe fn open(env: sys::napi_env) -> HandleScope {
        let mut scope = ptr::null_mut();
        // SAFETY: per this function's contract.
        unsafe { sys::napi_open_handle_scope(env, &mut scope) };
        HandleScope { env, scope }
    }
}

impl Drop for HandleScope {
    fn drop(&mut self) {
        // SAFETY: opened in `open` on this thread, closed once, here.
        unsafe { sys::napi_close_handle_scope(self.env, self.scope) };
    }
}

/// A strong reference to a JavaScript value (a handler, an exception, the dispatcher object),
/// deleted when dropped.
pub struct OwnedRef {
    env: sys::napi_env,
    raw: sys::napi_ref,
}

impl OwnedRef {
    /// Keeps `value` alive until the guard is dropped.
    ///
    /// # Safety
    /// `env` is live and this is its thread; `value` is a live value of the current scope; the
    /// guard is dropped before `env` is torn down.
    pub unsafe fn new(env: sys::napi_env, value: sys::napi_value) -> Result<OwnedRef> {
        let mut raw = ptr::null_mut();
        // SAFETY: per this function's contract.
        check(unsafe { sys::napi_create_reference(env, value, 1, &mut raw) })?;
        Ok(OwnedRef { env, raw })
    }

    /// The value, as a handle of the current scope.
    ///
    /// # Safety
    /// A handle scope is open: a JavaScript call's, or a [`HandleScope`].
    pub unsafe fn value(&self) -> sys::napi_value {
        // SAFETY: the reference is live until dropped; the scope is the caller's.
        unsafe { value_of(self.env, self.raw) }
    }

    /// The raw reference, for reading its value once no borrow of the guard may be held (see
    /// [`value_of`]); it is valid until the guard is dropped.
    pub fn raw(&self) -> sys::napi_ref {
        self.raw
    }
}

/// The value of a raw reference taken from an [`OwnedRef`], as a handle of the current scope.
///
/// # Safety
/// `env` is live and this is its thread, with a handle scope open; the guard `raw` came from has
/// not been dropped.
pub unsafe fn value_of(env: sys::napi_env, raw: sys::napi_ref) -> sys::napi_value {
    let mut value = ptr::null_mut();
    // SAFETY: per this function's contract.
    unsafe { sys::napi_get_reference_value(env, raw, &mut value) };
    value
}

impl Drop for OwnedRef {
    fn drop(&mut self) {
        // SAFETY: made in `new`, deleted once, here, before the environment goes (see `new`).
        unsafe { sys::napi_delete_reference(self.env, self.raw) };
    }
}

/// The resolver of a promise, consumed by settling it: a promise settles once.
pub struct Deferred {
    env: sys::napi_env,
    raw: sys::napi_deferred,
}

impl Deferred {
    /// A fresh promise and what settles it.
    ///
    /// # Safety
    /// `env` is live and this is its thread, inside a JavaScript call (whose scope holds the
    /// promise's handle).
    pub unsafe fn new(env: sys::napi_env) -> Result<(Deferred, sys::napi_value)> {
        let (mut raw, mut promise) = (ptr::null_mut(), ptr::null_mut());
        // SAFETY: per this function's contract.
        check(unsafe { sys::napi_create_promise(env, &mut raw, &mut promise) })?;
        Ok((Deferred { env, raw }, promise))
    }

    /// Resolves the promise with `undefined`.
    ///
    /// # Safety
    /// A handle scope is open.
    pub unsafe fn resolve(self) {
        let mut undefined = ptr::null_mut();
        // SAFETY: the deferred is unsettled (settling consumes it); the scope is the caller's.
        unsafe {
            sys::napi_get_undefined(self.env, &mut undefined);
            sys::napi_resolve_deferred(self.env, self.raw, undefined);
        }
    }

    /// Rejects the promise with `error`.
    ///
    /// # Safety
    /// A handle scope is open.
    pub unsafe fn reject(self, error: &OwnedRef) {
        // SAFETY: as for `resolve`.
        unsafe { sys::napi_reject_deferred(self.env, self.raw, error.value()) };
    }
}

/// An async context and the object standing for it in async hooks: what `napi_make_callback`
/// and callback scopes need so that promise jobs and `nextTick` callbacks run after each call.
pub struct AsyncResource {
    env: sys::napi_env,
    context: sys::napi_async_context,
    resource: OwnedRef,
}

impl AsyncResource {
    /// A context named `name` in async hooks.
    ///
    /// # Safety
    /// `env` is live and this is its thread, inside a JavaScript call; the guard is dropped
    /// before `env` is torn down.
    pub unsafe fn new(env: sys::napi_env, name: &std::ffi::CStr) -> Result<AsyncResource> {
        let (mut object, mut text, mut context) =
            (ptr::null_mut(), ptr::null_mut(), ptr::null_mut());
        // SAFETY: value creation in the call's scope; `name` ends in NUL.
        unsafe {
            check(sys::napi_create_object(env, &mut object))?;
            check(sys::napi_create_string_utf8(
                env,
                name.as_ptr(),
                -1, // NAPI_AUTO_LENGTH: NUL-terminated
                &mut text,
            ))?;
            check(sys::napi_async_init(env, object, text, &mut context))?;
        }
        // SAFETY: `object` is a live value of the call's scope.
        let resource = match unsafe { OwnedRef::new(env, object) } {
            Ok(resource) => resource,
            Err(error) => {
                // SAFETY: made just above, destroyed once.
                unsafe { sys::napi_async_destroy(env, context) };
                return Err(error);
            }
        };
        Ok(AsyncResource {
            env,
            context,
            resource,
        })
    }

    /// The async context, for `napi_make_callback`; valid while the guard lives.
    pub fn context(&self) -> sys::napi_async_context {
        self.context
    }
}

impl Drop for AsyncResource {
    fn drop(&mut self) {
        // SAFETY: made in `new`, destroyed once, here; the resource reference goes after.
        unsafe { sys::napi_async_destroy(self.env, self.context) };
    }
}

/// A callback scope: while it is open, the code it runs counts as a callback of its async
/// resource, and closing it runs the promise jobs and `nextTick` callbacks queued meanwhile.
pub struct CallbackScope {
    env: sys::napi_env,
    scope: sys::napi_callback_scope,
}

impl CallbackScope {
    /// Opens a callback scope for `resource`.
    ///
    /// # Safety
    /// A handle scope is open, and outlives this guard.
    pub unsafe fn open(resource: &AsyncResource) -> CallbackScope {
        let env = resource.env;
        let mut scope = ptr::null_mut();
        // SAFETY: per this function's contract; the resource is live.
        unsafe {
            sys::napi_open_callback_scope(
                env,
                resource.resource.value(),
                resource.context,
                &mut scope,
            )
        };
        CallbackScope { env, scope }
    }
}

impl Drop for CallbackScope {
    fn drop(&mut self) {
        // SAFETY: opened in `open` on this thread, closed once, here (this runs JavaScript).
        unsafe { sys::napi_close_callback_scope(self.env, self.scope) };
    }
}
