//! The `Dispatcher` class: the core dispatcher driven from Node's own libuv loop.
//!
//! One libuv poll handle watches the mio selector's descriptor; when it is readable, a core
//! [`Turn`] drains mio with a zero timeout and the due handlers are called, each through
//! `napi_make_callback` so that promise jobs and `process.nextTick` callbacks run after every
//! handler. An idle handle re-runs turns while handlers leave their channels ready
//! (level-triggered semantics without a busy loop: libuv still runs timers and I/O between
//! turns), and one timer serves the alarms.
//!
//! The rules are the core's: [`Watch`] says what to do next, [`Outcome`] what a handler's return
//! means, [`Spin`] when to poll before sleeping. This file converts and calls.

use crate::error::{error_value, throw, OrThrow};
use crate::guard::{
    check, value_of, AsyncResource, CallbackScope, Deferred, HandleScope, OwnedRef,
};
use crate::handle::ChannelHandle;
use crate::status;
use crate::uv::{self, Handles};
use napi::bindgen_prelude::*;
use napi::{sys, JsValue};
use napi_derive::napi;
use pyre_nexus_core::{
    alarm_interval, Call, Dispatcher as Core, Ending, Error as CoreError, HandlerId, Next, Outcome,
    Readiness, Spin, Turn, Watch,
};
use std::cell::{Cell, RefCell};
use std::ffi::c_void;
use std::ptr;
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// What a running watch holds: the promise it settles, and a reference keeping the JavaScript
/// object alive for as long as the loop may call into it.
struct Watching {
    promise: Deferred,
    _this: OwnedRef,
}

/// The state shared by the JavaScript object and the libuv handles. Everything native it holds
/// goes when it closes (see [`Inner::close`]); what is left is this struct.
struct Inner {
    env: sys::napi_env,
    /// None once closed: its descriptors and every handler are gone.
    core: RefCell<Option<Core<OwnedRef>>>,
    watch: RefCell<Watch<Watching, OwnedRef>>,
    spin: RefCell<Spin>,
    /// Kept from turn to turn, so that a turn allocates nothing.
    turn: Cell<Turn<OwnedRef>>,
    /// None once closed.
    handles: RefCell<Option<Handles>>,
    /// An object standing for the dispatcher in async hooks and callback scopes; None once
    /// closed.
    resource: RefCell<Option<AsyncResource>>,
}

/// pyre's event dispatcher: calls handlers when channels are ready and when alarms expire.
#[napi]
pub struct Dispatcher {
    inner: Rc<Inner>,
}

#[napi]
impl Dispatcher {
    /// A dispatcher on the current thread's Node event loop; with `spin_microseconds`, it polls
    /// that long before sleeping (see the core's `Spin`).
    #[napi(constructor, catch_unwind)]
    pub fn new(env: Env, spin_microseconds: Option<u32>) -> Result<Self> {
        let core = Core::new().or_throw(&env)?;
        let spin = Duration::from_micros(spin_microseconds.unwrap_or(0).into());
        let inner = Rc::new(Inner {
            env: env.raw(),
            core: RefCell::new(Some(core)),
            watch: RefCell::new(Watch::new()),
            spin: RefCell::new(Spin::new(spin)),
            turn: Cell::new(Turn::new()),
            handles: RefCell::new(None),
            resource: RefCell::new(None),
        });
        // SAFETY: the environment of this call, on its thread.
        unsafe { inner.open(&env) }?;
        Ok(Dispatcher { inner })
    }

    /// Calls `handler()` whenever `channel` is ready: `kind` 0 for reading, 1 for writing,
    /// 2 for exceptions. A truthy return keeps it registered. Returns the handler's id.
    #[napi(
        catch_unwind,
        ts_args_type = "channel: ChannelHandle, kind: number, handler: () => unknown"
    )]
    pub fn when(
        &self,
        env: Env,
        channel: ChannelHandle,
        kind: u32,
        handler: Function,
    ) -> Result<f64> {
        let readiness = Readiness::try_from(kind).or_throw(&env)?;
        let inner = &self.inner;
        inner.ensure_open(&env)?;
        // SAFETY: the handler is an argument of this call.
        let handler = unsafe { OwnedRef::new(env.raw(), handler.raw()) }?;
        let registered = inner.with_core(|core| core.when(&channel, readiness, handler));
        let id = registered
            .unwrap_or(Err(CoreError::DispatcherClosed))
            .or_throw(&env)?;
        inner.schedule();
        Ok(id.to_bits() as f64)
    }

    /// Calls `handler(timestamp)` after `seconds`; a number returned sets it again that many
    /// seconds later. Returns the alarm's id.
    #[napi(
        catch_unwind,
        ts_args_type = "seconds: number, handler: (timestamp: number) => unknown"
    )]
    pub fn alarm(&self, env: Env, seconds: f64, handler: Function) -> Result<f64> {
        let inner = &self.inner;
        inner.ensure_open(&env)?;
        let after = alarm_interval(seconds).or_throw(&env)?;
        // SAFETY: the handler is an argument of this call.
        let handler = unsafe { OwnedRef::new(env.raw(), handler.raw()) }?;
        let Some(id) = inner.with_core(|core| core.alarm(after, handler)) else {
            return Err(throw(&env, &CoreError::DispatcherClosed));
        };
        inner.schedule();
        Ok(id.to_bits() as f64)
    }

    /// Drops a handler or alarm by id; unknown ids are ignored. Returns whether one was dropped.
    #[napi(catch_unwind)]
    pub fn cancel(&self, env: Env, id: f64) -> Result<bool> {
        let inner = &self.inner;
        inner.ensure_open(&env)?;
        let dropped = inner.with_core(|core| core.cancel(HandlerId::from_bits(id as u64)));
        let found = dropped.flatten().is_some();
        inner.schedule();
        Ok(found)
    }

    /// How many handlers and alarms are registered (none once closed).
    #[napi(getter, catch_unwind)]
    pub fn handler_count(&self) -> u32 {
        self.inner
            .with_core(|core| core.handler_count() as u32)
            .unwrap_or(0)
    }

    /// Whether `watch()` is running.
    #[napi(getter, catch_unwind)]
    pub fn watching(&self) -> bool {
        self.inner.watch.borrow().is_watching()
    }

    /// Whether `close()` was called: every call but `close()` now throws.
    #[napi(getter, catch_unwind)]
    pub fn closed(&self) -> bool {
        self.inner.watch.borrow().is_closed()
    }

    /// Runs the loop until `stop()` or until nothing is left to wait for. The promise rejects with
    /// the exception of a handler that threw (that handler is dropped; the others stay).
    #[napi(ts_return_type = "Promise<void>", catch_unwind)]
    pub fn watch<'env>(&self, env: &'env Env, this: This) -> Result<Unknown<'env>> {
        let inner = &self.inner;
        inner.watch.borrow().can_start().or_throw(env)?;
        // SAFETY: the environment of this call, whose scope holds the promise and `this`.
        let (promise, value, this) = unsafe {
            let (promise, value) = Deferred::new(env.raw())?;
            (promise, value, OwnedRef::new(env.raw(), this.raw())?)
        };
        inner.watch.borrow_mut().start(Watching {
            promise,
            _this: this,
        });
        let started = match &*inner.handles.borrow() {
            Some(handles) => handles.start(on_poll),
            None => Ok(()),
        };
        if let Err(status) = started {
            inner.finish();
            let error = std::io::Error::from_raw_os_error(-status);
            return Err(throw(env, &CoreError::io("watching the selector", error)));
        }
        inner.schedule();
        // SAFETY: napi_create_promise gave a valid promise value in this call's scope.
        Ok(unsafe { Unknown::from_raw_unchecked(env.raw(), value) })
    }

    /// Asks the loop to stop: the current handler finishes, no further handler of this turn runs,
    /// and the watch promise resolves. Registrations stay for the next `watch()`.
    #[napi(catch_unwind)]
    pub fn stop(&self, env: Env) -> Result<()> {
        self.inner.ensure_open(&env)?;
        self.inner.watch.borrow_mut().stop();
        self.inner.schedule();
        Ok(())
    }

    /// Settles the watch and releases at once everything the dispatcher holds natively: its
    /// descriptors, its libuv handles, its async context and every handler. Every later call
    /// throws `ERR_NEXUS_DISPATCHER_CLOSED`; closing again does nothing. Called by a handler,
    /// the handler finishes first. Garbage collection closes a dispatcher that is not watching.
    #[napi(catch_unwind)]
    pub fn close(&self) {
        self.inner.watch.borrow_mut().close();
        self.inner.schedule();
    }
}

impl Drop for Dispatcher {
    fn drop(&mut self) {
        // Collected: not watching (a watch holds the object), so there is nothing to settle.
        self.inner.close();
    }
}

impl Inner {
    /// Creates the libuv handles and the async context, and arranges for everything to be
    /// released when the environment is torn down (a worker thread ending, the process exiting).
    ///
    /// # Safety
    /// `env` is the environment of the current call, on its thread.
    unsafe fn open(self: &Rc<Self>, env: &Env) -> Result<()> {
        // SAFETY: per this function's contract; the guard goes in `close`, before teardown.
        let resource = unsafe { AsyncResource::new(env.raw(), c"pyre.nexus.Dispatcher") }?;
        *self.resource.borrow_mut() = Some(resource);
        let mut event_loop = ptr::null_mut();
        // SAFETY: per this function's contract.
        check(unsafe { sys::napi_get_uv_event_loop(env.raw(), &mut event_loop) })?;
        let fd = self.with_core(|core| core.fd()).unwrap_or(-1);
        // Each handle holds one strong count of Inner, given back in its close callback.
        let data = Rc::into_raw(self.clone()) as *mut c_void;
        // SAFETY: this thread's loop; the selector's descriptor stays open until the handles
        // close (see `release`).
        let opened = unsafe { Handles::open(event_loop.cast(), fd, data) };
        let handles = match opened {
            Ok(handles) => handles,
            Err(why) => {
                // SAFETY: the count taken above, which no handle holds.
                drop(unsafe { Rc::from_raw(data as *const Inner) });
                return Err(throw(env, &CoreError::Unsupported { why }));
            }
        };
        for _ in 1..3 {
            // SAFETY: `data` is a live Rc of Inner (the first count above): two more counts.
            unsafe { Rc::increment_strong_count(data as *const Inner) };
        }
        *self.handles.borrow_mut() = Some(handles);
        // SAFETY: per this function's contract; the hook is removed in `release`, and the data
        // points to an Inner kept alive by its handles until then.
        let hooked = check(unsafe {
            sys::napi_add_env_cleanup_hook(
                env.raw(),
                Some(on_env_cleanup),
                Rc::as_ptr(self) as *mut c_void,
            )
        });
        if hooked.is_err() {
            self.release(false);
        }
        hooked
    }

    /// `f` with the core, unless the dispatcher is closed.
    fn with_core<R>(&self, f: impl FnOnce(&mut Core<OwnedRef>) -> R) -> Option<R> {
        self.core.borrow_mut().as_mut().map(f)
    }

    fn ensure_open(&self, env: &Env) -> Result<()> {
        self.watch.borrow().ensure_open().or_throw(env)
    }

    /// Does what the watch says is next: arm libuv for what the core waits for, end the watch,
    /// or close.
    fn schedule(&self) {
        let next = self.watch.borrow().next(|| {
            self.core
                .borrow()
                .as_ref()
                .is_none_or(|core| core.is_idle())
        });
        match next {
            Next::Nothing => {}
            Next::Wait => {
                let handles = self.handles.borrow();
                let mut core = self.core.borrow_mut();
                if let (Some(handles), Some(core)) = (&*handles, core.as_mut()) {
                    let wait = core
                        .next_deadline()
                        .map(|deadline| deadline.saturating_duration_since(Instant::now()));
                    handles.arm(core.has_due(), wait, on_idle, on_timer);
                }
            }
            Next::Finish => self.finish(),
            Next::Close => self.close(),
        }
    }

    /// Ends a watch: stops the handles and settles the promise.
    fn finish(&self) {
        let Some(ending) = self.watch.borrow_mut().finish() else {
            return;
        };
        if let Some(handles) = &*self.handles.borrow() {
            handles.stop();
        }
        self.settle(ending);
    }

    /// Settles a watch inside a callback scope, so that the code awaiting it runs now rather than
    /// at some later tick. That code may call the dispatcher again: no borrow is held.
    fn settle(&self, ending: Ending<Watching, OwnedRef>) {
        // SAFETY: on the JavaScript thread, outside any turn (the watch says so), with no scope
        // of ours open; the callback scope closes before the handle scope.
        unsafe {
            let _scope = HandleScope::open(self.env);
            let _callback = self
                .resource
                .borrow()
                .as_ref()
                .map(|r| CallbackScope::open(r));
            match ending {
                Ending::Resolve(watching) => watching.promise.resolve(),
                Ending::Reject(watching, error) => watching.promise.reject(&error),
            }
        }
    }

    /// Releases everything at once: the core (its descriptors, channels' links and handlers),
    /// the libuv handles, then settles the watch (whose awaiting code finds the dispatcher
    /// closed), then the async context. Safe to call twice, from a call, the finalizer or the
    /// environment's cleanup (which forgets the watch instead of settling it).
    fn close(&self) {
        self.release(true);
    }

    fn release(&self, settle: bool) {
        if !self.watch.borrow_mut().mark_closed() {
            return;
        }
        // SAFETY: on the JavaScript thread; the hook was added in `open` with this pointer.
        unsafe {
            sys::napi_remove_env_cleanup_hook(
                self.env,
                Some(on_env_cleanup),
                self as *const Inner as *mut c_void,
            )
        };
        // The poll handle lets go of the selector's descriptor before the core closes it.
        if let Some(handles) = self.handles.borrow_mut().take() {
            // SAFETY: taken out, so closed once and not used again.
            unsafe { handles.close(on_close) };
        }
        drop(self.core.borrow_mut().take());
        // Its channels are unwatched now: their reads ask the kernel again. (Not once the
        // environment is going: JavaScript runs no more, and its words may be gone.)
        if settle {
            status::publish_epoch();
        }
        let ending = self.watch.borrow_mut().finish();
        if let (Some(ending), true) = (ending, settle) {
            self.settle(ending);
        }
        drop(self.resource.borrow_mut().take());
    }

    /// One turn: take what mio has, call the due handlers, re-arm. `may_spin` only for a turn
    /// started by libuv's poller: from its timer or idle phase, libuv has already taken the
    /// phase's other due timers or idle handles off the queues a spin looks at.
    fn turn(&self, may_spin: bool) {
        if !self.watch.borrow_mut().begin_turn() {
            return;
        }
        if may_spin {
            self.spin.borrow_mut().woke(Instant::now());
        }
        let mut turn = self.turn.take();
        let began = self.with_core(|core| turn.begin(core, Some(Duration::ZERO)));
        // What the poll recorded may make what JavaScript was told of its channels stale.
        status::publish_epoch();
        match began {
            Some(Ok(())) => {
                // SAFETY: in a libuv callback on the JavaScript thread with no scope open.
                let _scope = unsafe { HandleScope::open(self.env) };
                // napi_make_callback wants an object as `this`; handlers get the global one.
                let mut receiver = ptr::null_mut();
                // SAFETY: as above; the value lives in the scope just opened.
                unsafe { sys::napi_get_global(self.env, &mut receiver) };
                while self.watch.borrow().goes_on() {
                    let next = self.with_core(|core| {
                        let (call, handler) = turn.next(core)?;
                        Some((call, handler.raw()))
                    });
                    let Some((call, handler)) = next.flatten() else {
                        break;
                    };
                    // SAFETY: the scope above is open, holding `receiver`; the handler's guard is
                    // in the core, which nothing has touched since.
                    let outcome = unsafe { self.call(call, handler, receiver) };
                    // A handler dropped here is released here.
                    self.with_core(|core| core.report(call, outcome));
                }
            }
            Some(Err(error)) => self.fail(&error),
            None => {}
        }
        self.with_core(|core| turn.end(core));
        self.turn.set(turn);
        if may_spin && self.watch.borrow().goes_on() {
            self.linger();
        }
        self.watch.borrow_mut().end_turn();
        self.schedule();
    }

    /// Spins, if the core's policy says so, before libuv goes to sleep.
    fn linger(&self) {
        let mut handles = self.handles.borrow_mut();
        let mut core = self.core.borrow_mut();
        if let (Some(handles), Some(core)) = (handles.as_mut(), core.as_mut()) {
            self.spin.borrow_mut().linger(core, handles);
        }
    }

    /// Makes one call with no borrow held, and reads its outcome by pyre's rules.
    ///
    /// # Safety
    /// A handle scope is open, holding `receiver`; `handler` is the raw reference of a guard the
    /// core holds.
    unsafe fn call(
        &self,
        call: Call,
        handler: sys::napi_ref,
        receiver: sys::napi_value,
    ) -> Outcome {
        let env = self.env;
        let context = match &*self.resource.borrow() {
            Some(resource) => resource.context(),
            None => return Outcome::Keep,
        };
        // SAFETY: per this function's contract, on the JavaScript thread; the function's handle
        // lives in the scope opened here.
        let (_scope, function) = unsafe {
            let scope = HandleScope::open(env);
            (scope, value_of(env, handler))
        };
        let mut argv = [ptr::null_mut()];
        let argc = match call {
            Call::Alarm(_) => {
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0.0, |d| d.as_secs_f64());
                // SAFETY: value creation in the scope just opened.
                unsafe { sys::napi_create_double(env, now, &mut argv[0]) };
                1
            }
            Call::Ready(_) => 0,
        };
        let mut result = ptr::null_mut();
        // SAFETY: every value lives in an open scope; the context lives until `close`, which
        // waits for the turn to end. JavaScript runs here, and no borrow is held.
        let status = unsafe {
            sys::napi_make_callback(
                env,
                context,
                receiver,
                function,
                argc,
                argv.as_ptr(),
                &mut result,
            )
        };
        if status != sys::Status::napi_ok {
            // The handler threw: the watch rejects with its exception.
            let mut exception = ptr::null_mut();
            // SAFETY: an exception is pending; its value lives in the scope opened above.
            unsafe { sys::napi_get_and_clear_last_exception(env, &mut exception) };
            // SAFETY: as above; the reference goes with the watch's ending, before teardown.
            if let Ok(exception) = unsafe { OwnedRef::new(env, exception) } {
                self.watch.borrow_mut().fail(exception);
            }
            return Outcome::Threw;
        }
        // SAFETY: `result` lives in the scope opened above; the calls only read it.
        unsafe {
            match call {
                Call::Ready(_) => {
                    let (mut truthy, mut keep) = (ptr::null_mut(), false);
                    sys::napi_coerce_to_bool(env, result, &mut truthy);
                    sys::napi_get_value_bool(env, truthy, &mut keep);
                    Outcome::of_ready(keep)
                }
                Call::Alarm(_) => {
                    let (mut kind, mut seconds) = (0, f64::NAN);
                    sys::napi_typeof(env, result, &mut kind);
                    let number = kind == sys::ValueType::napi_number
                        && sys::napi_get_value_double(env, result, &mut seconds)
                            == sys::Status::napi_ok;
                    Outcome::of_alarm(number.then_some(seconds))
                }
            }
        }
    }

    /// Records a failure of the loop itself (not of a handler) as the watch's rejection.
    fn fail(&self, error: &CoreError) {
        // SAFETY: on the JavaScript thread, in a scope opened here; the reference goes with the
        // watch's ending, before teardown.
        unsafe {
            let _scope = HandleScope::open(self.env);
            if let Ok(error) = OwnedRef::new(self.env, error_value(self.env, error)) {
                self.watch.borrow_mut().fail(error);
            }
        }
    }
}

/// Recovers the `Inner` a handle points to, without taking its strong count.
///
/// # Safety
/// `handle` is one of an Inner's handles, not closed yet.
unsafe fn inner_of(handle: *mut uv::Handle) -> std::mem::ManuallyDrop<Rc<Inner>> {
    // SAFETY: per this function's contract the handle's data is a strong count of Inner, which
    // ManuallyDrop leaves where it is.
    std::mem::ManuallyDrop::new(unsafe { Rc::from_raw(uv::data(handle) as *const Inner) })
}

/// Runs a turn for a libuv callback. A panic cannot unwind into libuv, and there is no caller to
/// throw to: it is caught, the watch rejects with it, and the loop stops instead of aborting.
///
/// # Safety
/// As for [`inner_of`].
unsafe fn turn_from(handle: *mut uv::Handle, may_spin: bool) {
    // SAFETY: per this function's contract.
    let inner = unsafe { inner_of(handle) };
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| inner.turn(may_spin)));
    if outcome.is_err() {
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            inner.watch.borrow_mut().end_turn();
            inner.fail(&CoreError::Internal {
                what: "a panic in the dispatcher's loop".into(),
            });
            inner.finish();
        }));
    }
}

/// libuv's callbacks: the selector has news, calls are due, an alarm is due.
///
/// # Safety
/// libuv calls them with one of an Inner's handles, not closed yet.
unsafe extern "C" fn on_poll(handle: *mut uv::Handle, _status: i32, _events: i32) {
    // SAFETY: libuv calls back with a live handle of ours.
    unsafe { turn_from(handle, true) };
}

/// See [`on_poll`].
///
/// # Safety
/// As for [`on_poll`].
unsafe extern "C" fn on_idle(handle: *mut uv::Handle) {
    // SAFETY: as above.
    unsafe { turn_from(handle, false) };
}

/// See [`on_poll`].
///
/// # Safety
/// As for [`on_poll`].
unsafe extern "C" fn on_timer(handle: *mut uv::Handle) {
    // SAFETY: as above.
    unsafe { turn_from(handle, false) };
}

/// libuv is done with a closed handle: it lets go of its count of Inner and its memory.
///
/// # Safety
/// libuv calls it once per handle of ours, after `uv_close`.
unsafe extern "C" fn on_close(handle: *mut uv::Handle) {
    // SAFETY: the handle's data is the strong count it took in `open`; this is its one release,
    // and libuv is done with the handle.
    unsafe {
        drop(Rc::from_raw(uv::data(handle) as *const Inner));
        uv::free(handle);
    }
}

/// The environment is being torn down (a worker thread ending, the process exiting).
///
/// # Safety
/// Node calls it with the data given to `napi_add_env_cleanup_hook`, on the environment's thread.
unsafe extern "C" fn on_env_cleanup(data: *mut c_void) {
    // SAFETY: registered with a pointer to an Inner kept alive by its handles until it closes,
    // which removes the hook.
    let inner = unsafe { &*(data as *const Inner) };
    // JavaScript can no longer run: the watch is forgotten, not settled.
    inner.release(false);
}
