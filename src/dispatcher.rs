//! The `Dispatcher` class: the core dispatcher driven from Node's own libuv loop.
//!
//! One libuv poll handle watches the mio selector's descriptor; when it is readable, a turn
//! drains mio with a zero timeout and calls the due handlers, each through `napi_make_callback`
//! so that promise jobs and `process.nextTick` callbacks run after every handler. An idle handle
//! re-runs turns while handlers leave their channels ready (level-triggered semantics without a
//! busy loop: libuv still runs timers and I/O between turns), and one timer serves the alarms.

use crate::error::{throw, OrThrow};
use crate::handle::Handle;
use crate::uv;
use napi::bindgen_prelude::*;
use napi::{sys, JsValue};
use napi_derive::napi;
use pyre_nexus_core::{Call, Dispatcher as Core, HandlerId, Readiness};
use std::cell::{Cell, RefCell};
use std::ffi::c_void;
use std::ptr;
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A handler as the core keeps it: a strong reference to a JavaScript function.
#[derive(Clone, Copy)]
struct JsRef(sys::napi_ref);

/// The state shared by the JavaScript object and the libuv handles.
struct Inner {
    env: sys::napi_env,
    core: RefCell<Core<JsRef>>,
    /// The libuv loop the handles live on (the thread's Node event loop).
    event_loop: Cell<*mut uv::Loop>,
    /// The libuv handles, null once closed.
    poll: Cell<*mut uv::Handle>,
    timer: Cell<*mut uv::Handle>,
    idle: Cell<*mut uv::Handle>,
    open_handles: Cell<u8>,
    async_context: Cell<sys::napi_async_context>,
    /// An object standing for the dispatcher in async hooks and callback scopes.
    resource: Cell<sys::napi_ref>,
    /// Set while watching: the promise to settle, and a reference keeping the JavaScript object
    /// alive for as long as the loop may call into it.
    deferred: Cell<sys::napi_deferred>,
    this: Cell<sys::napi_ref>,
    stop_requested: Cell<bool>,
    /// A handler threw: the exception that the watch promise rejects with.
    failure: Cell<sys::napi_ref>,
    in_turn: Cell<bool>,
    /// `close()` was called by a handler: done once the turn ends, after the watch settles.
    close_requested: Cell<bool>,
    closed: Cell<bool>,
    /// How long to poll before sleeping when a turn leaves nothing due (zero: never).
    spin: Duration,
    /// Whether the next idle moment spins: no after a spin that found nothing, yes again once a
    /// pause measured asleep (from `asleep_since`) was shorter than `spin`.
    spinning: Cell<bool>,
    asleep_since: Cell<Option<Instant>>,
    /// A turn's lists, kept from turn to turn so that a turn allocates nothing.
    calls: Cell<Vec<Call>>,
    dropped: Cell<Vec<JsRef>>,
}

/// pyre's event dispatcher: calls handlers when channels are ready and when alarms expire.
#[napi]
pub struct Dispatcher {
    inner: Rc<Inner>,
}

fn readiness(code: u32) -> Option<Readiness> {
    match code {
        0 => Some(Readiness::Read),
        1 => Some(Readiness::Write),
        2 => Some(Readiness::Exception),
        _ => None,
    }
}

#[napi]
impl Dispatcher {
    /// A dispatcher on the current thread's Node event loop; with `spin_microseconds`, it polls
    /// that long before sleeping (see `Inner::linger`).
    #[napi(constructor, catch_unwind)]
    pub fn new(env: Env, spin_microseconds: Option<u32>) -> Result<Self> {
        let core = Core::new().or_throw(&env)?;
        let raw = env.raw();
        let inner = Rc::new(Inner {
            env: raw,
            core: RefCell::new(core),
            event_loop: Cell::new(ptr::null_mut()),
            poll: Cell::new(ptr::null_mut()),
            timer: Cell::new(ptr::null_mut()),
            idle: Cell::new(ptr::null_mut()),
            open_handles: Cell::new(0),
            async_context: Cell::new(ptr::null_mut()),
            resource: Cell::new(ptr::null_mut()),
            deferred: Cell::new(ptr::null_mut()),
            this: Cell::new(ptr::null_mut()),
            stop_requested: Cell::new(false),
            failure: Cell::new(ptr::null_mut()),
            in_turn: Cell::new(false),
            close_requested: Cell::new(false),
            closed: Cell::new(false),
            spin: Duration::from_micros(spin_microseconds.unwrap_or(0).into()),
            spinning: Cell::new(true),
            asleep_since: Cell::new(None),
            calls: Cell::new(Vec::new()),
            dropped: Cell::new(Vec::new()),
        });
        inner.open(&env)?;
        Ok(Dispatcher { inner })
    }

    /// Calls `handler()` whenever `channel` is ready: `kind` 0 for reading, 1 for writing,
    /// 2 for exceptions. A truthy return keeps it registered. Returns the handler's id.
    #[napi(catch_unwind)]
    pub fn when(&self, env: Env, channel: Handle, kind: u32, handler: Function) -> Result<f64> {
        let Some(readiness) = readiness(kind) else {
            return Err(throw(
                &env,
                "ERR_INVALID_ARG_VALUE",
                &format!("unknown readiness kind {kind}"),
            ));
        };
        self.inner.check_open(&env)?;
        let handler = reference(&env, handler.raw())?;
        let registered = self
            .inner
            .core
            .borrow_mut()
            .when(&channel, readiness, handler);
        match registered {
            Ok(id) => {
                self.inner.schedule();
                Ok(id.to_bits() as f64)
            }
            Err(e) => {
                release(env.raw(), handler);
                Err(throw(&env, e.code(), &e.to_string()))
            }
        }
    }

    /// Calls `handler(timestamp)` after `seconds`; a number returned sets it again that many
    /// seconds later. Returns the alarm's id.
    #[napi(catch_unwind)]
    pub fn alarm(&self, env: Env, seconds: f64, handler: Function) -> Result<f64> {
        self.inner.check_open(&env)?;
        let Some(after) = interval(seconds) else {
            return Err(throw(
                &env,
                "ERR_INVALID_ARG_VALUE",
                &format!("the alarm interval must be a non-negative number of seconds under 1e9, not {seconds}"),
            ));
        };
        let handler = reference(&env, handler.raw())?;
        let id = self.inner.core.borrow_mut().alarm(after, handler);
        self.inner.schedule();
        Ok(id.to_bits() as f64)
    }

    /// Drops a handler or alarm by id; unknown ids are ignored. Returns whether one was dropped.
    #[napi(catch_unwind)]
    pub fn cancel(&self, id: f64) -> bool {
        let dropped = self
            .inner
            .core
            .borrow_mut()
            .cancel(HandlerId::from_bits(id as u64));
        let found = dropped.is_some();
        if let Some(handler) = dropped {
            release(self.inner.env, handler);
        }
        self.inner.schedule();
        found
    }

    /// How many handlers and alarms are registered.
    #[napi(getter, catch_unwind)]
    pub fn handler_count(&self) -> u32 {
        self.inner.core.borrow().handler_count() as u32
    }

    /// Whether `watch()` is running.
    #[napi(getter, catch_unwind)]
    pub fn watching(&self) -> bool {
        !self.inner.deferred.get().is_null()
    }

    /// Runs the loop until `stop()` or until nothing is left to wait for. The promise rejects with
    /// the exception of a handler that threw (that handler is dropped; the others stay).
    #[napi(ts_return_type = "Promise<void>", catch_unwind)]
    pub fn watch<'env>(&self, env: &'env Env, this: This) -> Result<Unknown<'env>> {
        self.inner.check_open(env)?;
        if self.watching() {
            return Err(throw(
                env,
                "ERR_NEXUS_ALREADY_WATCHING",
                "this dispatcher is already watching",
            ));
        }
        // Settled by hand in `finish`: napi-rs's deferred is made for threadsafe resolution.
        let mut raw_deferred = ptr::null_mut();
        let mut raw_promise = ptr::null_mut();
        check(unsafe { sys::napi_create_promise(env.raw(), &mut raw_deferred, &mut raw_promise) })?;
        let inner = &self.inner;
        inner.deferred.set(raw_deferred);
        inner.this.set(reference(env, this.raw())?.0);
        inner.stop_requested.set(false);
        // SAFETY: the poll handle was initialised in `open` and is not closed (checked above).
        let started = unsafe { uv::uv_poll_start(inner.poll.get(), uv::READABLE, on_poll) };
        if started != 0 {
            inner.finish();
            return Err(throw(
                env,
                "ERR_NEXUS_IO",
                &format!("watching the selector failed (libuv error {started})"),
            ));
        }
        inner.schedule();
        // SAFETY: napi_create_promise gave a valid promise value in this handle scope.
        Ok(unsafe { Unknown::from_raw_unchecked(env.raw(), raw_promise) })
    }

    /// Asks the loop to stop: the current handler finishes, no further handler of this turn runs,
    /// and the watch promise resolves. Registrations stay for the next `watch()`.
    #[napi(catch_unwind)]
    pub fn stop(&self) {
        self.inner.stop_requested.set(true);
        if !self.inner.in_turn.get() {
            self.inner.finish();
        }
    }

    /// Drops every handler and alarm and releases the loop's resources; the dispatcher cannot be
    /// used afterwards. Garbage collection does the same for a dispatcher that is not watching.
    #[napi(catch_unwind)]
    pub fn close(&self) {
        self.inner.stop_requested.set(true);
        self.inner.close_requested.set(true);
        // Inside a turn the handles are still in use: the turn's end closes them (see schedule).
        if !self.inner.in_turn.get() {
            self.inner.schedule();
        }
    }
}

impl Drop for Dispatcher {
    fn drop(&mut self) {
        self.inner.close();
    }
}

fn interval(seconds: f64) -> Option<Duration> {
    (0.0..1e9)
        .contains(&seconds)
        .then(|| Duration::from_secs_f64(seconds))
}

fn check(status: sys::napi_status) -> Result<()> {
    if status == sys::Status::napi_ok {
        Ok(())
    } else {
        Err(Error::from_status(Status::from(status)))
    }
}

fn reference(env: &Env, value: sys::napi_value) -> Result<JsRef> {
    let mut r = ptr::null_mut();
    // SAFETY: value is a live handle of the current call.
    check(unsafe { sys::napi_create_reference(env.raw(), value, 1, &mut r) })?;
    Ok(JsRef(r))
}

fn release(env: sys::napi_env, handler: JsRef) {
    // SAFETY: every JsRef was made by `reference` and is released exactly once, here.
    unsafe { sys::napi_delete_reference(env, handler.0) };
}

impl Inner {
    fn check_open(&self, env: &Env) -> Result<()> {
        if self.closed.get() || self.close_requested.get() {
            return Err(throw(
                env,
                "ERR_NEXUS_DISPATCHER_CLOSED",
                "this dispatcher is closed",
            ));
        }
        Ok(())
    }

    /// Creates the libuv handles and the async context, and arranges for them to be released
    /// when the environment is torn down (a worker thread ending, the process exiting).
    fn open(self: &Rc<Self>, env: &Env) -> Result<()> {
        let fail = |message: String| throw(env, "ERR_NEXUS_UNSUPPORTED_PLATFORM", &message);
        let mut lp = ptr::null_mut();
        check(unsafe { sys::napi_get_uv_event_loop(env.raw(), &mut lp) })?;
        let lp = lp as *mut uv::Loop;
        let poll = uv::alloc(uv::POLL, "poll").map_err(fail)?;
        let timer = uv::alloc(uv::TIMER, "timer").map_err(fail)?;
        let idle = uv::alloc(uv::IDLE, "idle").map_err(fail)?;
        let fd = self.core.borrow().fd();
        // SAFETY: the handles are freshly allocated with libuv's own sizes, on this thread's loop.
        let status = unsafe {
            let a = uv::uv_poll_init(lp, poll, fd);
            let b = uv::uv_timer_init(lp, timer);
            let c = uv::uv_idle_init(lp, idle);
            [a, b, c]
        };
        if status != [0, 0, 0] {
            return Err(fail(format!(
                "libuv refused the dispatcher's handles ({status:?})"
            )));
        }
        // Each handle holds one strong count of Inner, given back in its close callback.
        for handle in [poll, timer, idle] {
            let data = Rc::into_raw(self.clone()) as *mut c_void;
            // SAFETY: handle is a live libuv handle; data is ours.
            unsafe { uv::set_data(handle, data) };
        }
        self.event_loop.set(lp);
        self.poll.set(poll);
        self.timer.set(timer);
        self.idle.set(idle);
        self.open_handles.set(3);

        let mut resource = ptr::null_mut();
        let mut name = ptr::null_mut();
        let mut context = ptr::null_mut();
        let mut resource_ref = ptr::null_mut();
        // SAFETY: plain value creation in the current handle scope.
        unsafe {
            check(sys::napi_create_object(env.raw(), &mut resource))?;
            check(sys::napi_create_string_utf8(
                env.raw(),
                c"pyre.nexus.Dispatcher".as_ptr(),
                -1, // NAPI_AUTO_LENGTH: NUL-terminated
                &mut name,
            ))?;
            check(sys::napi_async_init(
                env.raw(),
                resource,
                name,
                &mut context,
            ))?;
            check(sys::napi_create_reference(
                env.raw(),
                resource,
                1,
                &mut resource_ref,
            ))?;
            check(sys::napi_add_env_cleanup_hook(
                env.raw(),
                Some(on_env_cleanup),
                Rc::as_ptr(self) as *mut c_void,
            ))?;
        }
        self.async_context.set(context);
        self.resource.set(resource_ref);
        Ok(())
    }

    /// Releases everything; safe to call twice, from the finalizer or the environment cleanup.
    fn close(&self) {
        if self.closed.replace(true) {
            return;
        }
        let env = self.env;
        // SAFETY: we are on the JavaScript thread of `env` (finalizer, cleanup hook or a call);
        // every handle is closed exactly once and freed by its close callback.
        unsafe {
            sys::napi_remove_env_cleanup_hook(
                env,
                Some(on_env_cleanup),
                self as *const Inner as *mut c_void,
            );
            self.release_handlers();
            for handle in [&self.poll, &self.timer, &self.idle] {
                let h = handle.replace(ptr::null_mut());
                if !h.is_null() {
                    uv::uv_close(h, on_close);
                }
            }
            sys::napi_async_destroy(env, self.async_context.replace(ptr::null_mut()));
            let resource = self.resource.replace(ptr::null_mut());
            if !resource.is_null() {
                sys::napi_delete_reference(env, resource);
            }
        }
    }

    /// Drops every handler and alarm, releasing their function references.
    fn release_handlers(&self) {
        let dropped = self.core.borrow_mut().clear();
        for handler in dropped {
            release(self.env, handler);
        }
    }

    /// Arms libuv for what the core waits for next, or ends the watch when nothing is left.
    fn schedule(&self) {
        if self.in_turn.get() {
            return;
        }
        if self.close_requested.get() {
            // Handlers go first: settling the watch runs the awaiting code at once, and it must
            // find the dispatcher already closed.
            self.release_handlers();
            self.finish();
            self.close();
            return;
        }
        if self.deferred.get().is_null() || self.closed.get() {
            return;
        }
        let mut core = self.core.borrow_mut();
        if self.stop_requested.get() || !self.failure.get().is_null() || core.is_idle() {
            drop(core);
            self.finish();
            return;
        }
        // SAFETY: the handles are live until `close`, which is checked above.
        unsafe {
            if core.has_due() {
                uv::uv_idle_start(self.idle.get(), on_idle);
            } else {
                uv::uv_idle_stop(self.idle.get());
            }
            match core.next_deadline() {
                Some(deadline) => {
                    let wait = deadline.saturating_duration_since(Instant::now());
                    // Round up: waking early would find nothing due and arm again.
                    let ms = wait.as_nanos().div_ceil(1_000_000) as u64;
                    uv::uv_timer_start(self.timer.get(), on_timer, ms, 0);
                }
                None => {
                    uv::uv_timer_stop(self.timer.get());
                }
            }
        }
    }

    /// Ends a watch: stops the handles and settles the promise, inside a callback scope so that
    /// the code awaiting it runs now rather than at some later tick.
    fn finish(&self) {
        let deferred = self.deferred.replace(ptr::null_mut());
        if deferred.is_null() {
            return;
        }
        let env = self.env;
        // SAFETY: handles are live unless closed; napi calls happen on the JavaScript thread.
        unsafe {
            if !self.closed.get() {
                uv::uv_poll_stop(self.poll.get());
                uv::uv_idle_stop(self.idle.get());
                uv::uv_timer_stop(self.timer.get());
            }
            let mut scope = ptr::null_mut();
            sys::napi_open_handle_scope(env, &mut scope);
            let mut callback_scope = ptr::null_mut();
            let resource = self.resource.get();
            let mut resource_value = ptr::null_mut();
            if !resource.is_null() && !self.in_turn.get() {
                sys::napi_get_reference_value(env, resource, &mut resource_value);
                sys::napi_open_callback_scope(
                    env,
                    resource_value,
                    self.async_context.get(),
                    &mut callback_scope,
                );
            }
            let failure = self.failure.replace(ptr::null_mut());
            if failure.is_null() {
                let mut undefined = ptr::null_mut();
                sys::napi_get_undefined(env, &mut undefined);
                sys::napi_resolve_deferred(env, deferred, undefined);
            } else {
                let mut error = ptr::null_mut();
                sys::napi_get_reference_value(env, failure, &mut error);
                sys::napi_delete_reference(env, failure);
                sys::napi_reject_deferred(env, deferred, error);
            }
            let this = self.this.replace(ptr::null_mut());
            if !this.is_null() {
                sys::napi_delete_reference(env, this);
            }
            self.stop_requested.set(false);
            if !callback_scope.is_null() {
                sys::napi_close_callback_scope(env, callback_scope);
            }
            sys::napi_close_handle_scope(env, scope);
        }
    }

    /// One turn: take what mio has, call the due handlers, re-arm. `may_spin` only for a turn
    /// started by libuv's poller: from its timer or idle phase, libuv has already taken the
    /// phase's other due timers or idle handles off the queues a spin looks at.
    fn turn(&self, may_spin: bool) {
        if self.in_turn.get() || self.closed.get() || self.deferred.get().is_null() {
            return;
        }
        self.in_turn.set(true);
        // Only a turn that may spin measures the pause: a timer or an immediate that comes soon
        // after a fruitless spin is no peer answering quickly.
        if may_spin {
            if let Some(since) = self.asleep_since.take() {
                self.spinning.set(since.elapsed() < self.spin);
            }
        }
        let env = self.env;
        let mut calls = self.calls.take();
        let mut dropped = self.dropped.take();
        {
            let mut core = self.core.borrow_mut();
            if let Err(e) = core.poll(Some(Duration::ZERO)) {
                drop(core);
                self.fail_with(&e.to_string(), e.code());
                self.in_turn.set(false);
                self.schedule();
                return;
            }
            core.collect(Instant::now(), &mut calls, &mut dropped);
        }
        for handler in dropped.drain(..) {
            release(env, handler);
        }
        self.dropped.set(dropped);
        // SAFETY: we are in a libuv callback on the JavaScript thread with no scope open; every
        // value created below lives in the handle scope opened here.
        unsafe {
            let mut scope = ptr::null_mut();
            sys::napi_open_handle_scope(env, &mut scope);
            // napi_make_callback wants an object as `this`; handlers get the global one.
            let mut receiver = ptr::null_mut();
            sys::napi_get_global(env, &mut receiver);
            for call in calls.drain(..) {
                if self.stop_requested.get() || !self.failure.get().is_null() || self.closed.get() {
                    break;
                }
                self.call(call, receiver);
            }
            sys::napi_close_handle_scope(env, scope);
        }
        self.calls.set(calls);
        if !self.closed.get() {
            self.core.borrow_mut().settle();
            if may_spin {
                self.linger();
            }
        }
        self.in_turn.set(false);
        self.schedule();
    }

    /// With `spin` set, when a turn woken by I/O leaves nothing due: polls without sleeping
    /// (yielding the CPU between polls) until something is due or `spin` has passed. For a process whose peer
    /// answers within microseconds, such as a crew member between tasks: waking a sleeping
    /// process costs the peer's write about 20 µs on this project's machine. A spin that finds
    /// nothing turns spinning off until a pause measured asleep is shorter than `spin`, so a
    /// dispatcher fed slowly sleeps as usual.
    ///
    /// The spin gives way to the rest of the thread's loop: it does not start while libuv has
    /// work due (a timer, an immediate), ends before the next timer, and (on Linux) ends as soon
    /// as libuv's own poller has an event, so a pool's parent can spin for its results without
    /// holding up the application's sockets and timers.
    fn linger(&self) {
        if self.spin.is_zero()
            || self.closed.get()
            || self.stop_requested.get()
            || !self.failure.get().is_null()
            || self.deferred.get().is_null()
        {
            return;
        }
        {
            let core = self.core.borrow();
            if core.has_due() || core.is_idle() {
                return;
            }
        }
        if !self.spinning.get() {
            self.asleep_since.set(Some(Instant::now()));
            return;
        }
        let Some((until, bounded)) = self.spin_deadline() else {
            return;
        };
        // A descriptor is polled, not the selector: any news (a ready channel, a wake-up for a
        // closed one, a flush that finished) then reaches the next turn through libuv as usual,
        // and nothing is taken out of the selector here. On Linux that descriptor is libuv's own
        // poller, which holds the selector's: it has news when any of the loop's descriptors
        // has. Elsewhere a poller's descriptor (kqueue) is not reliably pollable: the selector's
        // is polled, and the spin gives way to timers only.
        let fd = if cfg!(target_os = "linux") {
            // SAFETY: the loop our handles live on, on its own thread.
            unsafe { uv::uv_backend_fd(self.event_loop.get()) }
        } else {
            self.core.borrow().fd()
        };
        let mut watched = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        loop {
            // SAFETY: one pollfd we own, no wait.
            if unsafe { libc::poll(&mut watched, 1, 0) } > 0 {
                return;
            }
            if Instant::now() >= until {
                break;
            }
            std::thread::yield_now();
        }
        // Cut short by a timer: that found nothing, but says nothing of how fast peers answer.
        if !bounded {
            self.spinning.set(false);
            self.asleep_since.set(Some(Instant::now()));
        }
    }

    /// When a spin starting now must end, and whether a timer (libuv's next, or an alarm of
    /// ours not armed in libuv yet) ends it before `spin` has passed; None when libuv has work
    /// due now, which the spin would hold up.
    fn spin_deadline(&self) -> Option<(Instant, bool)> {
        let lp = self.event_loop.get();
        // SAFETY: the loop our handles live on, on its own thread; the idle handle is live (the
        // dispatcher is not closed). Nothing of ours is due, so our idle handle, which libuv
        // would count as work due, is stopped now rather than when the turn ends. The loop's
        // notion of now is as old as this iteration: it is brought up to date so that the
        // timeout counts from now.
        let timeout = unsafe {
            uv::uv_idle_stop(self.idle.get());
            uv::uv_update_time(lp);
            uv::uv_backend_timeout(lp)
        };
        let now = Instant::now();
        let libuv_timer = match u64::try_from(timeout) {
            Ok(0) => return None,
            Ok(ms) => Some(now + Duration::from_millis(ms)),
            Err(_) => None, // negative: no timer at all
        };
        let alarm = self.core.borrow_mut().next_deadline();
        let timer = libuv_timer.into_iter().chain(alarm).min();
        let spun = now + self.spin;
        Some(match timer {
            Some(t) if t < spun => (t, true),
            _ => (spun, false),
        })
    }

    /// Makes one call; no borrow of the core is held while JavaScript runs.
    unsafe fn call(&self, call: Call, receiver: sys::napi_value) {
        let env = self.env;
        let (id, alarm) = match call {
            Call::Ready(id) => (id, false),
            Call::Alarm(id) => (id, true),
        };
        let Some(handler) = self.core.borrow().handler(id).copied() else {
            return;
        };
        let mut inner_scope = ptr::null_mut();
        sys::napi_open_handle_scope(env, &mut inner_scope);
        let mut function = ptr::null_mut();
        sys::napi_get_reference_value(env, handler.0, &mut function);
        let mut argv = [ptr::null_mut()];
        let argc = if alarm {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64());
            sys::napi_create_double(env, now, &mut argv[0]);
            1
        } else {
            0
        };
        let mut result = ptr::null_mut();
        let status = sys::napi_make_callback(
            env,
            self.async_context.get(),
            receiver,
            function,
            argc,
            argv.as_ptr(),
            &mut result,
        );
        let dropped = if status == sys::Status::napi_ok {
            if alarm {
                let mut seconds = f64::NAN;
                let mut kind = 0;
                sys::napi_typeof(env, result, &mut kind);
                if kind == sys::ValueType::napi_number {
                    sys::napi_get_value_double(env, result, &mut seconds);
                }
                self.core.borrow_mut().rearm(id, interval(seconds))
            } else {
                let mut truthy = ptr::null_mut();
                let mut keep = false;
                sys::napi_coerce_to_bool(env, result, &mut truthy);
                sys::napi_get_value_bool(env, truthy, &mut keep);
                self.core.borrow_mut().complete(id, keep)
            }
        } else {
            // The handler threw: drop it, and let the watch promise reject with its exception.
            let mut exception = ptr::null_mut();
            sys::napi_get_and_clear_last_exception(env, &mut exception);
            let mut r = ptr::null_mut();
            sys::napi_create_reference(env, exception, 1, &mut r);
            self.failure.set(r);
            self.core.borrow_mut().cancel(id)
        };
        if let Some(handler) = dropped {
            release(env, handler);
        }
        sys::napi_close_handle_scope(env, inner_scope);
    }

    /// Records a failure of the loop itself (not of a handler) as the watch's rejection.
    fn fail_with(&self, message: &str, code: &str) {
        let env = self.env;
        // SAFETY: plain value creation on the JavaScript thread, inside a scope we open.
        unsafe {
            let mut scope = ptr::null_mut();
            sys::napi_open_handle_scope(env, &mut scope);
            let (mut c, mut m, mut error, mut r) = (
                ptr::null_mut(),
                ptr::null_mut(),
                ptr::null_mut(),
                ptr::null_mut(),
            );
            sys::napi_create_string_utf8(env, code.as_ptr().cast(), code.len() as isize, &mut c);
            sys::napi_create_string_utf8(
                env,
                message.as_ptr().cast(),
                message.len() as isize,
                &mut m,
            );
            sys::napi_create_error(env, c, m, &mut error);
            sys::napi_create_reference(env, error, 1, &mut r);
            self.failure.set(r);
            sys::napi_close_handle_scope(env, scope);
        }
    }
}

/// Recovers the `Inner` a handle points to, without taking its strong count.
unsafe fn inner_of(handle: *mut uv::Handle) -> std::mem::ManuallyDrop<Rc<Inner>> {
    std::mem::ManuallyDrop::new(Rc::from_raw(uv::data(handle) as *const Inner))
}

/// Runs a turn for a libuv callback. A panic cannot unwind into libuv, and there is no caller to
/// throw to: it is caught, the watch rejects with it, and the loop stops instead of aborting.
unsafe fn turn_from(handle: *mut uv::Handle, may_spin: bool) {
    let inner = inner_of(handle);
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| inner.turn(may_spin)));
    if outcome.is_err() {
        inner.in_turn.set(false);
        inner.fail_with(
            "internal error in the pyre-nexus dispatcher (a bug: please report it)",
            "ERR_NEXUS_INTERNAL",
        );
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| inner.finish()));
    }
}

unsafe extern "C" fn on_poll(handle: *mut uv::Handle, _status: i32, _events: i32) {
    turn_from(handle, true);
}

unsafe extern "C" fn on_idle(handle: *mut uv::Handle) {
    turn_from(handle, false);
}

unsafe extern "C" fn on_timer(handle: *mut uv::Handle) {
    turn_from(handle, false);
}

unsafe extern "C" fn on_close(handle: *mut uv::Handle) {
    // SAFETY: the handle's data is the strong count taken in `open`; this is its one release.
    let inner = Rc::from_raw(uv::data(handle) as *const Inner);
    inner.open_handles.set(inner.open_handles.get() - 1);
    drop(inner);
    uv::free(handle);
}

unsafe extern "C" fn on_env_cleanup(data: *mut c_void) {
    // SAFETY: registered with a pointer to an Inner kept alive by its handles until closed.
    let inner = &*(data as *const Inner);
    inner.deferred.set(ptr::null_mut());
    inner.this.set(ptr::null_mut());
    inner.close();
}
