//! The sockets a channel holds, with reads and writes that retry when a signal interrupts them
//! and tell a full or empty socket (`None`) from a failure.

use mio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use mio::{Interest, Registry, Token};
use std::io::{self, IoSlice, Read, Write};
use std::os::fd::{AsRawFd, RawFd};

/// A channel's socket: a stream (a pipe end, a Unix-domain or TCP connection), a listener, or
/// nothing once closed. Dropping it closes the descriptor, which also takes it out of any poll.
#[derive(Debug)]
pub(crate) enum Io {
    /// A pipe end or a Unix-domain connection.
    Unix(UnixStream),
    /// A TCP connection.
    Tcp(TcpStream),
    /// A listening TCP port.
    TcpListener(TcpListener),
    /// A listening Unix-domain socket.
    UnixListener(UnixListener),
    /// The descriptor is closed.
    Closed,
}

/// A connected pair of Unix-domain stream sockets, non-blocking and close-on-exec.
pub(crate) fn pair() -> io::Result<(Io, Io)> {
    let (a, b) = UnixStream::pair()?;
    Ok((Io::Unix(a), Io::Unix(b)))
}

/// Connections the kernel may queue before they are accepted. mio listens with 128; a burst of
/// a thousand clients overflows that, and the overflow waits on SYN retransmissions (or, with
/// SYN cookies, until the client sends). The kernel caps the value at its own limit
/// (`net.core.somaxconn`).
const BACKLOG: libc::c_int = 4096;

/// Listens again with [`BACKLOG`]: calling `listen` on a listening socket only changes its queue.
pub(crate) fn deepen_backlog(fd: RawFd) -> io::Result<()> {
    // SAFETY: listen takes no pointers; a descriptor that is no listening socket is reported.
    if unsafe { libc::listen(fd, BACKLOG) } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Asks the kernel for a send buffer of `size` bytes on `fd` (capped by it at
/// `net.core.wmem_max`).
pub(crate) fn set_send_buffer(fd: RawFd, size: usize) -> io::Result<()> {
    let asked = size.min(i32::MAX as usize) as libc::c_int;
    // SAFETY: the option value points at an int that lives through the call, of the size given.
    let done = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_SNDBUF,
            (&asked as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if done == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

impl Io {
    /// The descriptor, while open.
    pub(crate) fn fd(&self) -> Option<RawFd> {
        match self {
            Io::Unix(s) => Some(s.as_raw_fd()),
            Io::Tcp(s) => Some(s.as_raw_fd()),
            Io::TcpListener(l) => Some(l.as_raw_fd()),
            Io::UnixListener(l) => Some(l.as_raw_fd()),
            Io::Closed => None,
        }
    }

    /// One read into `buf`, tried again if a signal interrupts it: the bytes read (0 at the end
    /// of file), or `None` when the socket is empty.
    pub(crate) fn read_some(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        retrying(|| match self {
            Io::Unix(s) => s.read(buf),
            Io::Tcp(s) => s.read(buf),
            _ => Err(io::ErrorKind::Unsupported.into()),
        })
    }

    /// One write of `bufs`, in order, tried again if a signal interrupts it: the bytes the
    /// kernel took, or `None` when the socket is full.
    pub(crate) fn write_some(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<Option<usize>> {
        retrying(|| match self {
            Io::Unix(s) => s.write_vectored(bufs),
            Io::Tcp(s) => s.write_vectored(bufs),
            _ => Err(io::ErrorKind::Unsupported.into()),
        })
    }

    /// Adds the socket to a poll under `token`. A listener is only ever readable.
    pub(crate) fn register(
        &mut self,
        registry: &Registry,
        token: Token,
        interest: Interest,
    ) -> io::Result<()> {
        match self {
            Io::Unix(s) => registry.register(s, token, interest),
            Io::Tcp(s) => registry.register(s, token, interest),
            Io::TcpListener(l) => registry.register(l, token, Interest::READABLE),
            Io::UnixListener(l) => registry.register(l, token, Interest::READABLE),
            Io::Closed => Err(io::ErrorKind::NotConnected.into()),
        }
    }

    /// Takes the socket out of a poll; a closed socket is in none.
    pub(crate) fn deregister(&mut self, registry: &Registry) -> io::Result<()> {
        match self {
            Io::Unix(s) => registry.deregister(s),
            Io::Tcp(s) => registry.deregister(s),
            Io::TcpListener(l) => registry.deregister(l),
            Io::UnixListener(l) => registry.deregister(l),
            Io::Closed => Ok(()),
        }
    }

    /// Changes what the poll reports of a stream; listeners and closed sockets are left alone.
    pub(crate) fn reregister(
        &mut self,
        registry: &Registry,
        token: Token,
        interest: Interest,
    ) -> io::Result<()> {
        match self {
            Io::Unix(s) => registry.reregister(s, token, interest),
            Io::Tcp(s) => registry.reregister(s, token, interest),
            _ => Ok(()),
        }
    }
}

/// Runs a non-blocking transfer until no signal interrupts it: the bytes moved, or `None` when
/// the socket would block.
fn retrying(mut transfer: impl FnMut() -> io::Result<usize>) -> io::Result<Option<usize>> {
    loop {
        match transfer() {
            Ok(n) => return Ok(Some(n)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}
