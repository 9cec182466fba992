//! The few libuv calls the dispatcher needs. Node exports libuv's symbols to addons; we declare
//! them here rather than link a libuv of our own, so they resolve to the loop Node runs.

use pyre_nexus_core::OuterLoop;
use std::ffi::{c_char, c_int, c_void, CStr};
use std::os::fd::RawFd;
use std::time::Duration;

pub type Loop = c_void;
pub type Handle = c_void;

// Handle types, from uv.h's UV_HANDLE_TYPE_MAP (checked at start-up by name, see `alloc`).
const IDLE: c_int = 6;
const POLL: c_int = 8;
const TIMER: c_int = 13;
const READABLE: c_int = 1;

pub type PollCb = unsafe extern "C" fn(*mut Handle, c_int, c_int);
pub type HandleCb = unsafe extern "C" fn(*mut Handle);

extern "C" {
    fn uv_handle_size(kind: c_int) -> usize;
    fn uv_handle_type_name(kind: c_int) -> *const c_char;
    fn uv_poll_init(lp: *mut Loop, handle: *mut Handle, fd: c_int) -> c_int;
    fn uv_poll_start(handle: *mut Handle, events: c_int, cb: PollCb) -> c_int;
    fn uv_poll_stop(handle: *mut Handle) -> c_int;
    fn uv_timer_init(lp: *mut Loop, handle: *mut Handle) -> c_int;
    fn uv_timer_start(handle: *mut Handle, cb: HandleCb, timeout: u64, repeat: u64) -> c_int;
    fn uv_timer_stop(handle: *mut Handle) -> c_int;
    fn uv_idle_init(lp: *mut Loop, handle: *mut Handle) -> c_int;
    fn uv_idle_start(handle: *mut Handle, cb: HandleCb) -> c_int;
    fn uv_idle_stop(handle: *mut Handle) -> c_int;
    fn uv_close(handle: *mut Handle, cb: HandleCb);
    fn uv_backend_fd(lp: *const Loop) -> c_int;
    fn uv_backend_timeout(lp: *const Loop) -> c_int;
    fn uv_update_time(lp: *mut Loop);
}

/// Allocates zeroed memory for a handle of `kind`, after checking that the numbering we compiled
/// in matches the libuv we run on (a mismatch would corrupt memory, so it is refused instead).
fn alloc(kind: c_int, expect: &str) -> Result<*mut Handle, String> {
    // SAFETY: both functions only read a static table indexed by `kind`, which is in range.
    let name = unsafe { CStr::from_ptr(uv_handle_type_name(kind)) };
    if name.to_bytes() != expect.as_bytes() {
        return Err(format!(
            "libuv handle type {kind} is {name:?}, expected {expect:?}"
        ));
    }
    // SAFETY: as above; the result is a plain size.
    let size = unsafe { uv_handle_size(kind) };
    // SAFETY: calloc of a non-zero size; freed by `free` once libuv has closed the handle.
    let ptr = unsafe { libc::calloc(1, size) };
    if ptr.is_null() {
        return Err("out of memory".into());
    }
    Ok(ptr)
}

/// Every handle starts with `void* data` (UV_HANDLE_FIELDS), which libuv never touches.
///
/// # Safety
/// `handle` was made by [`Handles::open`] and not freed yet.
pub unsafe fn data(handle: *mut Handle) -> *mut c_void {
    // SAFETY: per this function's contract, `handle` points at a handle, which begins with data.
    unsafe { *(handle as *mut *mut c_void) }
}

/// Frees a handle's memory, from its close callback.
///
/// # Safety
/// `handle` was made by [`Handles::open`] and libuv has closed it.
pub unsafe fn free(handle: *mut Handle) {
    // SAFETY: allocated by `alloc` with calloc; libuv no longer refers to it.
    unsafe { libc::free(handle) };
}

/// A dispatcher's libuv handles on one loop: a poll handle on the selector's descriptor, an idle
/// handle that runs turns while calls are due, and a timer for the alarms. Live from
/// [`open`](Self::open) until [`close`](Self::close), which consumes them.
pub struct Handles {
    event_loop: *mut Loop,
    poll: *mut Handle,
    idle: *mut Handle,
    timer: *mut Handle,
}

impl Handles {
    /// Makes the handles on `event_loop`, the poll handle on `fd`; each one's data is `data`.
    ///
    /// # Safety
    /// `event_loop` is the loop of this thread and `fd` stays open until [`close`](Self::close).
    pub unsafe fn open(
        event_loop: *mut Loop,
        fd: RawFd,
        data: *mut c_void,
    ) -> Result<Handles, String> {
        let handles = Handles {
            event_loop,
            poll: alloc(POLL, "poll")?,
            idle: alloc(IDLE, "idle")?,
            timer: alloc(TIMER, "timer")?,
        };
        // SAFETY: fresh handles with libuv's own sizes, on this thread's loop. A poll handle that
        // is refused was not initialised: its memory, and the others', are freed as they are.
        unsafe {
            let status = uv_poll_init(event_loop, handles.poll, fd);
            if status != 0 {
                for handle in [handles.poll, handles.idle, handles.timer] {
                    free(handle);
                }
                return Err(format!(
                    "libuv refused to poll the dispatcher's descriptor (error {status})"
                ));
            }
            uv_idle_init(event_loop, handles.idle);
            uv_timer_init(event_loop, handles.timer);
            for handle in [handles.poll, handles.idle, handles.timer] {
                *(handle as *mut *mut c_void) = data;
            }
        }
        Ok(handles)
    }

    /// Starts watching the selector's descriptor; a libuv error code if that fails.
    pub fn start(&self, on_poll: PollCb) -> Result<(), c_int> {
        // SAFETY: the handle is live (see the type).
        match unsafe { uv_poll_start(self.poll, READABLE, on_poll) } {
            0 => Ok(()),
            status => Err(status),
        }
    }

    /// Arms the idle handle while calls are `due` and the timer for the next alarm, `wait` from
    /// now, rounded up to the millisecond (waking early would find nothing due and arm again).
    pub fn arm(&self, due: bool, wait: Option<Duration>, on_idle: HandleCb, on_timer: HandleCb) {
        // SAFETY: the handles are live (see the type).
        unsafe {
            if due {
                uv_idle_start(self.idle, on_idle);
            } else {
                uv_idle_stop(self.idle);
            }
            match wait {
                Some(wait) => {
                    let ms = wait.as_nanos().div_ceil(1_000_000) as u64;
                    uv_timer_start(self.timer, on_timer, ms, 0);
                }
                None => {
                    uv_timer_stop(self.timer);
                }
            }
        }
    }

    /// Stops all three; they stay open for the next watch.
    pub fn stop(&self) {
        // SAFETY: the handles are live (see the type).
        unsafe {
            uv_poll_stop(self.poll);
            uv_idle_stop(self.idle);
            uv_timer_stop(self.timer);
        }
    }

    /// Closes all three. The poll handle lets go of the descriptor at once (it may be closed
    /// next); `on_close` runs for each later, from the loop, and frees it.
    ///
    /// # Safety
    /// Called once; the handles are not used afterwards.
    pub unsafe fn close(self, on_close: HandleCb) {
        for handle in [self.poll, self.idle, self.timer] {
            // SAFETY: per this function's contract.
            unsafe { uv_close(handle, on_close) };
        }
    }
}

impl OuterLoop for Handles {
    fn backend_fd(&self) -> RawFd {
        // SAFETY: the loop our handles live on, on its own thread.
        unsafe { uv_backend_fd(self.event_loop) }
    }

    fn next_timer(&mut self) -> Option<Duration> {
        // SAFETY: as above. Nothing of ours is due when a spin asks: our idle handle, which
        // libuv would count as work due, is stopped now rather than when the turn ends. The
        // loop's notion of now is as old as this iteration: it is brought up to date so that
        // the timeout counts from now.
        let timeout = unsafe {
            uv_idle_stop(self.idle);
            uv_update_time(self.event_loop);
            uv_backend_timeout(self.event_loop)
        };
        // Negative: no timer at all.
        u64::try_from(timeout).ok().map(Duration::from_millis)
    }
}
