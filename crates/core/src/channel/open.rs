//! Making channels: a connected pair, an inherited descriptor, a listening port and the
//! connections it accepts, an outgoing connection.

use super::{ready, Channel, Io};
use crate::address::Address;
use crate::error::{Error, Result};
use crate::sys;
use mio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use std::io;
use std::os::fd::{AsRawFd, RawFd};

/// A connected pair of channels, like pyre's pipe but one bidirectional socket pair.
///
/// ```
/// use pyre_nexus_core::{pipe, Recv};
/// let (mut parent, mut child) = pipe().unwrap();
/// parent.send_frame(b"ping").unwrap();
/// // An unwatched channel reads what is there without waiting.
/// assert_eq!(child.recv_frame().unwrap(), Recv::Frame(b"ping"));
/// ```
pub fn pipe() -> Result<(Channel, Channel)> {
    let (a, b) = sys::pair().map_err(|e| Error::io("socketpair", e))?;
    Ok((Channel::new(a, None, None), Channel::new(b, None, None)))
}

/// Takes over an inherited stream socket, such as the channel a worker process finds on fd 3.
/// The descriptor is made non-blocking and close-on-exec, and is closed with the channel; one
/// that is not a socket is refused, and stays the caller's.
pub fn adopt(fd: RawFd) -> Result<Channel> {
    let adopting = |e| Error::io("adopting a descriptor", e);
    if !sys::check_socket(fd).map_err(adopting)? {
        return Err(Error::NotASocket { fd });
    }
    // SAFETY: `fd` is an open socket (just checked), and adopting it means taking it over: the
    // caller hands it to the channel, which alone closes it.
    let stream = unsafe { sys::own_stream(fd) }.map_err(adopting)?;
    Ok(Channel::new(Io::Unix(stream), None, None))
}

/// A listening port at `address`; [`Channel::local_address`] says what was bound (port 0 asks
/// for an ephemeral one). A taken address is an [`Error::AddressInUse`]: a service that meant
/// to be found at a known port must not quietly listen elsewhere. pyre's fallback to any port
/// of the same host is the caller's choice, made by asking again with port 0.
pub fn port(address: &Address) -> Result<Channel> {
    let in_use = |e: io::Error| match e.kind() {
        io::ErrorKind::AddrInUse => Error::AddressInUse {
            address: address.to_string(),
        },
        _ => Error::io("bind", e),
    };
    let listening = |fd| sys::deepen_backlog(fd).map_err(|e| Error::io("listen", e));
    match address {
        Address::Inet(addr) => {
            let listener = TcpListener::bind(*addr).map_err(in_use)?;
            listening(listener.as_raw_fd())?;
            let local = listener
                .local_addr()
                .map_err(|e| Error::io("getsockname", e))?;
            Ok(Channel::new(
                Io::TcpListener(listener),
                Some(Address::Inet(local)),
                None,
            ))
        }
        Address::Unix(path) => {
            let listener = UnixListener::bind(path).map_err(in_use)?;
            listening(listener.as_raw_fd())?;
            Ok(Channel::new(
                Io::UnixListener(listener),
                Some(address.clone()),
                None,
            ))
        }
    }
}

/// A connection to `address`, begun without blocking: the channel becomes write-ready once
/// connected, and a refused connection shows up as an error on the first read or write.
pub fn connect(address: &Address) -> Result<Channel> {
    let io = match address {
        Address::Inet(addr) => {
            let stream = TcpStream::connect(*addr).map_err(|e| Error::io("connect", e))?;
            // Framed request/response traffic wants every frame out at once.
            let _ = stream.set_nodelay(true);
            Io::Tcp(stream)
        }
        Address::Unix(path) => {
            Io::Unix(UnixStream::connect(path).map_err(|e| Error::io("connect", e))?)
        }
    };
    Ok(Channel::new(io, None, Some(address.clone())))
}

impl Channel {
    /// Takes the next connection waiting on a listening channel, with the peer's address.
    pub fn accept(&mut self) -> Result<Option<Channel>> {
        self.check_open()?;
        let accepted = match &self.io {
            Io::TcpListener(l) => l.accept().map(|(s, a)| {
                let _ = s.set_nodelay(true);
                (Io::Tcp(s), Address::Inet(a))
            }),
            Io::UnixListener(l) => l.accept().map(|(s, a)| {
                let path = a.as_pathname().map(|p| p.to_path_buf()).unwrap_or_default();
                (Io::Unix(s), Address::Unix(path))
            }),
            _ => {
                return Err(Error::WrongKind {
                    op: "accept",
                    kind: self.kind(),
                })
            }
        };
        match accepted {
            Ok((io, peer)) => Ok(Some(Channel::new(io, self.local.clone(), Some(peer)))),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                self.ready &= !ready::READABLE;
                Ok(None)
            }
            // The peer gave up before we took it; the next one may be fine.
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::ConnectionAborted | io::ErrorKind::Interrupted
                ) =>
            {
                Ok(None)
            }
            Err(e) => Err(Error::io("accept", e)),
        }
    }
}
