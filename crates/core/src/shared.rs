//! Shared memory: a small region that a team process and one worker process both map, so that
//! each can see what the other wrote there without a system call (the worker stores the id of
//! the task it begins; after a crash the team loads it).
//!
//! The team [`create`](SharedRegion::create)s a region and gets the descriptor behind it, which
//! [`spawn`](crate::recruit::spawn) hands to the worker on [`SHARED_FD`]; the worker
//! [`inherit`](SharedRegion::inherit)s it. On Linux the region is a sealed `memfd` (its size can
//! neither shrink nor grow, so a mapping never faults past its end); elsewhere it is a POSIX
//! shared memory object, unlinked as soon as it is opened. Either way it lives in memory only,
//! and goes away when the last mapping and descriptor are gone.

use crate::error::{Error, Result};
use crate::recruit::SHARED_FD;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::ptr::NonNull;
use std::sync::atomic::AtomicI32;

/// A mapping of a shared region, read/write; unmapped when dropped.
#[derive(Debug)]
pub struct SharedRegion {
    start: NonNull<u8>,
    len: usize,
}

// SAFETY: the region is plain memory owned by this value; nothing ties it to a thread.
unsafe impl Send for SharedRegion {}
// SAFETY: `&self` hands out only atomics and a raw pointer; other processes write it anyway.
unsafe impl Sync for SharedRegion {}

impl SharedRegion {
    /// A fresh region of `len` bytes, zeroed: its mapping, and the descriptor behind it to hand
    /// to a worker (close-on-exec: only `spawn` passes it on).
    pub fn create(len: usize) -> Result<(SharedRegion, OwnedFd)> {
        let op = "creating shared memory";
        if len == 0 {
            let empty = io::Error::new(io::ErrorKind::InvalidInput, "a region of 0 bytes");
            return Err(Error::io(op, empty));
        }
        let length = libc::off_t::try_from(len)
            .map_err(|_| Error::io(op, io::Error::from_raw_os_error(libc::EFBIG)))?;
        let fd = anonymous().map_err(|e| Error::io(op, e))?;
        // SAFETY: ftruncate on a descriptor we own.
        if unsafe { libc::ftruncate(fd.as_raw_fd(), length) } == -1 {
            return Err(Error::io(op, io::Error::last_os_error()));
        }
        seal(&fd).map_err(|e| Error::io(op, e))?;
        let region = mmap(fd.as_raw_fd(), len).map_err(|e| Error::io(op, e))?;
        Ok((region, fd))
    }

    /// Maps `len` bytes of the region behind `fd`, which stays open. Refuses a descriptor that
    /// is not a region `create` made (on Linux: a sealed memfd) or that holds fewer bytes.
    pub fn map(fd: BorrowedFd<'_>, len: usize) -> Result<SharedRegion> {
        map_raw(fd.as_raw_fd(), len)
    }

    /// In a worker: maps `len` bytes of the region its team handed over on [`SHARED_FD`], and
    /// closes that descriptor (the mapping keeps the region alive). The descriptor is closed
    /// only once mapped: a failure leaves it as it was.
    pub fn inherit(len: usize) -> Result<SharedRegion> {
        let region = map_raw(SHARED_FD, len)?;
        // SAFETY: SHARED_FD is ours to close: the team handed it over for this, once.
        unsafe { libc::close(SHARED_FD) };
        Ok(region)
    }

    /// The region's first byte; it stays mapped, read/write, as long as `self`.
    pub fn as_ptr(&self) -> *mut u8 {
        self.start.as_ptr()
    }

    /// Its length in bytes, as asked for.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Never: a region holds at least one byte.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The region as 32-bit words (a trailing part word left out), for atomic loads and stores.
    pub fn words(&self) -> &[AtomicI32] {
        // SAFETY: the mapping is page-aligned, holds `len` bytes read/write and lives as long as
        // `self`; atomics allow the stores other mappings make meanwhile.
        unsafe { std::slice::from_raw_parts(self.start.as_ptr().cast(), self.len / 4) }
    }
}

impl Drop for SharedRegion {
    fn drop(&mut self) {
        // SAFETY: the mapping is ours, and nothing borrows it once we are dropped.
        unsafe { libc::munmap(self.start.as_ptr().cast(), self.len) };
    }
}

/// `SharedRegion::map` for a descriptor that may not be open: it is only examined, then mapped.
fn map_raw(fd: RawFd, len: usize) -> Result<SharedRegion> {
    let not_shared = |why: String| Error::NotShared { fd, why };
    if len == 0 {
        return Err(not_shared("0 bytes were asked for".into()));
    }
    // SAFETY: all zeros is a valid `stat`.
    let mut stat: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fstat writes into our local; a descriptor not open is an error, not a hazard.
    if unsafe { libc::fstat(fd, &mut stat) } == -1 {
        let error = io::Error::last_os_error();
        return Err(match error.raw_os_error() {
            Some(libc::EBADF) => not_shared("it is not open".into()),
            _ => Error::io("examining shared memory", error),
        });
    }
    if let Some(kind) = not_memory(stat.st_mode) {
        return Err(not_shared(format!("it is {kind}")));
    }
    #[cfg(target_os = "linux")]
    {
        // SAFETY: F_GET_SEALS only reads the seals; a file that takes none fails it (EINVAL).
        let seals = unsafe { libc::fcntl(fd, libc::F_GET_SEALS) };
        if seals == -1 || seals & libc::F_SEAL_SHRINK == 0 {
            return Err(not_shared("it is a file, not a sealed memfd".into()));
        }
    }
    if (stat.st_size as u64) < len as u64 {
        let size = stat.st_size;
        return Err(not_shared(format!(
            "it holds {size} bytes, fewer than the {len} asked for"
        )));
    }
    mmap(fd, len).map_err(|e| Error::io("mapping shared memory", e))
}

/// What a descriptor of mode `mode` is if it cannot be memory: "a socket", "a pipe" and so on.
fn not_memory(mode: libc::mode_t) -> Option<&'static str> {
    match mode & libc::S_IFMT {
        libc::S_IFSOCK => Some("a socket"),
        libc::S_IFIFO => Some("a pipe"),
        libc::S_IFCHR => Some("a character device"),
        libc::S_IFBLK => Some("a block device"),
        libc::S_IFDIR => Some("a directory"),
        libc::S_IFREG => None,
        // Linux gives its memfds a file's type, and its anonymous inodes none.
        _ if cfg!(target_os = "linux") => Some("an epoll, an eventfd or another kernel object"),
        _ => None,
    }
}

fn mmap(fd: libc::c_int, len: usize) -> io::Result<SharedRegion> {
    // SAFETY: a fresh mapping chosen by the kernel; it overlaps nothing of ours.
    let start = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            fd,
            0,
        )
    };
    if start == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    let start = NonNull::new(start.cast()).ok_or_else(|| io::Error::from(io::ErrorKind::Other))?;
    Ok(SharedRegion { start, len })
}

/// A descriptor of fresh, empty, anonymous memory, close-on-exec.
#[cfg(target_os = "linux")]
fn anonymous() -> io::Result<OwnedFd> {
    // SAFETY: the name is NUL-terminated; the descriptor returned is ours.
    let fd = unsafe {
        libc::memfd_create(
            c"pyre-nexus-shared".as_ptr(),
            libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING,
        )
    };
    if fd == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: memfd_create gave us this descriptor.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A descriptor of fresh, empty, anonymous memory, close-on-exec: a POSIX shared memory object
/// (close-on-exec by POSIX), unlinked at once so that only descriptors and mappings hold it.
#[cfg(not(target_os = "linux"))]
fn anonymous() -> io::Result<OwnedFd> {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    // SAFETY: getpid has no preconditions.
    let pid = unsafe { libc::getpid() };
    loop {
        // Short: macOS allows 31 bytes.
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = std::ffi::CString::new(format!("/nexus.{pid}.{n}")).expect("no NUL");
        let flags = libc::O_RDWR | libc::O_CREAT | libc::O_EXCL;
        // SAFETY: the name is NUL-terminated; the descriptor returned is ours.
        #[cfg(target_vendor = "apple")]
        let fd = unsafe { libc::shm_open(name.as_ptr(), flags, 0o600 as libc::c_uint) };
        // SAFETY: as above.
        #[cfg(not(target_vendor = "apple"))]
        let fd = unsafe { libc::shm_open(name.as_ptr(), flags, 0o600 as libc::mode_t) };
        if fd == -1 {
            let error = io::Error::last_os_error();
            if error.raw_os_error() == Some(libc::EEXIST) {
                continue; // left behind by an earlier process with our pid
            }
            return Err(error);
        }
        // SAFETY: shm_open gave us this descriptor; the name is unlinked, not the object.
        unsafe {
            libc::shm_unlink(name.as_ptr());
            return Ok(OwnedFd::from_raw_fd(fd));
        }
    }
}

/// On Linux, fixes the region's size for good: a mapping of it can never fault past its end.
fn seal(fd: &OwnedFd) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        let seals = libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_SEAL;
        // SAFETY: F_ADD_SEALS on a memfd we own.
        if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, seals) } == -1 {
            return Err(io::Error::last_os_error());
        }
    }
    let _ = fd;
    Ok(())
}
