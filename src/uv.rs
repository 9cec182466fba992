//! The few libuv calls the dispatcher needs. Node exports libuv's symbols to addons; we declare
//! them here rather than link a libuv of our own, so they resolve to the loop Node runs.

use std::ffi::{c_char, c_int, c_void, CStr};

pub type Loop = c_void;
pub type Handle = c_void;

// Handle types, from uv.h's UV_HANDLE_TYPE_MAP (checked at start-up by name, see `alloc`).
pub const IDLE: c_int = 6;
pub const POLL: c_int = 8;
pub const TIMER: c_int = 13;
pub const READABLE: c_int = 1;

pub type PollCb = unsafe extern "C" fn(*mut Handle, c_int, c_int);
pub type HandleCb = unsafe extern "C" fn(*mut Handle);

extern "C" {
    fn uv_handle_size(kind: c_int) -> usize;
    fn uv_handle_type_name(kind: c_int) -> *const c_char;
    pub fn uv_poll_init(lp: *mut Loop, handle: *mut Handle, fd: c_int) -> c_int;
    pub fn uv_poll_start(handle: *mut Handle, events: c_int, cb: PollCb) -> c_int;
    pub fn uv_poll_stop(handle: *mut Handle) -> c_int;
    pub fn uv_timer_init(lp: *mut Loop, handle: *mut Handle) -> c_int;
    pub fn uv_timer_start(handle: *mut Handle, cb: HandleCb, timeout: u64, repeat: u64) -> c_int;
    pub fn uv_timer_stop(handle: *mut Handle) -> c_int;
    pub fn uv_idle_init(lp: *mut Loop, handle: *mut Handle) -> c_int;
    pub fn uv_idle_start(handle: *mut Handle, cb: HandleCb) -> c_int;
    pub fn uv_idle_stop(handle: *mut Handle) -> c_int;
    pub fn uv_close(handle: *mut Handle, cb: HandleCb);
    pub fn uv_backend_fd(lp: *const Loop) -> c_int;
    pub fn uv_backend_timeout(lp: *const Loop) -> c_int;
    pub fn uv_update_time(lp: *mut Loop);
}

/// Allocates zeroed memory for a handle of `kind`, after checking that the numbering we compiled
/// in matches the libuv we run on (a mismatch would corrupt memory, so it is refused instead).
pub fn alloc(kind: c_int, expect: &str) -> Result<*mut Handle, String> {
    // SAFETY: both functions only read a static table indexed by `kind`, which is in range.
    let name = unsafe { CStr::from_ptr(uv_handle_type_name(kind)) };
    if name.to_bytes() != expect.as_bytes() {
        return Err(format!(
            "libuv handle type {kind} is {name:?}, expected {expect:?}"
        ));
    }
    // SAFETY: as above; the result is a plain size.
    let size = unsafe { uv_handle_size(kind) };
    // SAFETY: calloc of a non-zero size; freed in `free` once libuv has closed the handle.
    let ptr = unsafe { libc::calloc(1, size) };
    if ptr.is_null() {
        return Err("out of memory".into());
    }
    Ok(ptr)
}

/// Every handle starts with `void* data` (UV_HANDLE_FIELDS), which libuv never touches.
pub unsafe fn set_data(handle: *mut Handle, data: *mut c_void) {
    *(handle as *mut *mut c_void) = data;
}

pub unsafe fn data(handle: *mut Handle) -> *mut c_void {
    *(handle as *mut *mut c_void)
}

pub unsafe fn free(handle: *mut Handle) {
    libc::free(handle);
}
