//! Descriptors handed to us by number, such as the channel a worker inherits on fd 3.

use mio::net::UnixStream;
use std::io;
use std::os::fd::{FromRawFd, RawFd};

/// Whether `fd` is an open socket; an error if it is not open at all.
pub(crate) fn check_socket(fd: RawFd) -> io::Result<bool> {
    // SAFETY: all-zero bytes are a valid `stat` (a plain struct of integers).
    let mut stat: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fstat writes into the struct we own; a bad descriptor is reported, not undefined.
    if unsafe { libc::fstat(fd, &mut stat) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(stat.st_mode & libc::S_IFMT == libc::S_IFSOCK)
}

/// Takes over the stream socket `fd`: made non-blocking and close-on-exec, and closed when the
/// stream is dropped.
///
/// # Safety
/// `fd` is an open socket that the caller owns and hands over: nothing else may use or close it
/// afterwards.
pub(crate) unsafe fn own_stream(fd: RawFd) -> io::Result<UnixStream> {
    // SAFETY: per this function's contract `fd` is open and ours. The flags are read, then
    // extended, so that the status flags the descriptor had (append, say) are kept.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags == -1 || libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) == -1 {
            return Err(io::Error::last_os_error());
        }
        if libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) == -1 {
            return Err(io::Error::last_os_error());
        }
    }
    // SAFETY: the descriptor is handed over (this function's contract): the stream alone closes it.
    let stream = unsafe { std::os::unix::net::UnixStream::from_raw_fd(fd) };
    Ok(UnixStream::from_std(stream))
}
