//! Channels: non-blocking, close-on-exec sockets with a readiness record, an output buffer and a
//! frame reader. Made by [`pipe`], [`port`] and [`connect`].

use crate::address::Address;
use crate::error::{Error, Result};
use crate::frame::{self, FrameReader, OwnedFrame};
use mio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use mio::{Interest, Registry, Token, Waker};
use std::cell::RefCell;
use std::io::{self, IoSlice, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;
use std::sync::Arc;

/// A channel shared by its owner (a JavaScript object, say) and the dispatcher watching it.
pub type SharedChannel = Rc<RefCell<Channel>>;

/// The default bound on unsent output: past it, writes accept nothing more until the kernel
/// drains some (1 MiB).
pub const DEFAULT_OUTPUT_BOUND: usize = 1 << 20;

/// Readiness bits, set from poll events and cleared when the kernel says there is no more.
pub(crate) mod ready {
    pub const READABLE: u8 = 1;
    pub const WRITABLE: u8 = 2;
    pub const ERROR: u8 = 4;
    pub const READ_CLOSED: u8 = 8;
}

/// What one read got.
#[derive(Debug, PartialEq, Eq)]
pub enum ReadOutcome {
    /// Some bytes.
    Data(usize),
    /// Nothing now: the readiness was spurious or already consumed.
    WouldBlock,
    /// The peer closed its end: no more data will come.
    Eof,
}

/// What [`Channel::recv_frame`] got.
#[derive(Debug, PartialEq, Eq)]
pub enum Recv<'a> {
    /// A whole frame's payload.
    Frame(&'a [u8]),
    /// A large frame (at least [`frame::LARGE`] bytes), whole, in a buffer of its own.
    Owned(OwnedFrame),
    /// No whole frame yet.
    Pending,
    /// The peer closed its end cleanly, between frames.
    Eof,
}

/// What [`Channel::recv_frame_into`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum RecvInto {
    /// A whole frame's payload was copied into the buffer given; its length.
    Copied(usize),
    /// No whole frame yet.
    Pending,
    /// The peer closed its end cleanly, between frames.
    Eof,
}

/// Where [`Channel::fill`] left the next frame.
enum Filled {
    /// Whole in the reader; its payload length.
    Buffered(usize),
    /// Whole in the buffer given; its payload length.
    Delivered(usize),
    /// Not whole yet, or the peer closed between frames.
    Nothing,
}

#[derive(Debug)]
pub(crate) enum Io {
    Unix(UnixStream),
    Tcp(TcpStream),
    TcpListener(TcpListener),
    UnixListener(UnixListener),
    Closed,
}

impl Io {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Io::Unix(s) => s.read(buf),
            Io::Tcp(s) => s.read(buf),
            _ => Err(io::ErrorKind::Unsupported.into()),
        }
    }

    /// One read into `buf`, tried again if a signal interrupts it: the bytes read (0 at the end
    /// of file), or `None` when the socket is empty.
    fn read_some(&mut self, buf: &mut [u8]) -> Result<Option<usize>> {
        loop {
            match self.read(buf) {
                Ok(n) => return Ok(Some(n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::io("read", e)),
            }
        }
    }

    fn write(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match self {
            Io::Unix(s) => s.write_vectored(bufs),
            Io::Tcp(s) => s.write_vectored(bufs),
            _ => Err(io::ErrorKind::Unsupported.into()),
        }
    }
}

/// Where a watched channel reports its closing, so the dispatcher can drop its handlers.
#[derive(Debug, Clone)]
pub(crate) struct Link {
    pub token: Token,
    pub closed: Rc<RefCell<Vec<Token>>>,
    pub waker: Arc<Waker>,
    pub registry: Rc<Registry>,
}

/// A socket end: a pipe end, a TCP or Unix-domain connection, or a listening port.
#[derive(Debug)]
pub struct Channel {
    io: Io,
    ready: u8,
    /// Whether the poll reports writability: only while a write handler waits or output is
    /// pending. Otherwise every byte the peer reads would wake the loop for nothing.
    write_interest: bool,
    out: Vec<u8>,
    out_start: usize,
    out_bound: usize,
    /// The send buffer asked of the kernel for large frames (0: the kernel's default).
    send_room: usize,
    frames: FrameReader,
    eof: bool,
    /// Close once the output is flushed (a close asked for while output was pending).
    closing: bool,
    /// An error met while flushing in the background, reported at the next operation.
    failed: Option<Error>,
    pub(crate) link: Option<Link>,
    local: Option<Address>,
    peer: Option<Address>,
}

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
    let (a, b) = UnixStream::pair().map_err(|e| Error::io("socketpair", e))?;
    Ok((
        Channel::new(Io::Unix(a), None, None),
        Channel::new(Io::Unix(b), None, None),
    ))
}

/// Takes over an inherited stream socket, such as the channel a worker process finds on fd 3.
/// The descriptor is made non-blocking and close-on-exec, and is closed with the channel.
pub fn adopt(fd: RawFd) -> Result<Channel> {
    use std::os::fd::FromRawFd;
    // SAFETY: fstat writes into the zeroed struct we own; a bad fd is reported, not undefined.
    let mut stat: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(fd, &mut stat) } != 0 {
        return Err(Error::io(
            "adopting a descriptor",
            io::Error::last_os_error(),
        ));
    }
    if stat.st_mode & libc::S_IFMT != libc::S_IFSOCK {
        return Err(Error::NotASocket { fd });
    }
    // SAFETY: fcntl on a descriptor just checked to be open; flags are read, then extended.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK);
        libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
    }
    // SAFETY: the caller hands the descriptor over; from here the channel alone closes it.
    let stream = unsafe { std::os::unix::net::UnixStream::from_raw_fd(fd) };
    Ok(Channel::new(
        Io::Unix(UnixStream::from_std(stream)),
        None,
        None,
    ))
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
    match address {
        Address::Inet(addr) => {
            let listener = TcpListener::bind(*addr).map_err(in_use)?;
            deepen_backlog(listener.as_raw_fd())?;
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
            deepen_backlog(listener.as_raw_fd())?;
            Ok(Channel::new(
                Io::UnixListener(listener),
                Some(address.clone()),
                None,
            ))
        }
    }
}

/// Connections the kernel may queue before they are accepted. mio listens with 128; a burst of
/// a thousand clients overflows that, and the overflow waits on SYN retransmissions (or, with
/// SYN cookies, until the client sends). The kernel caps the value at its own limit
/// (`net.core.somaxconn`).
const BACKLOG: libc::c_int = 4096;

/// Listens again with [`BACKLOG`]: calling `listen` on a listening socket only changes its queue.
fn deepen_backlog(fd: RawFd) -> Result<()> {
    // SAFETY: `fd` is the open listening socket of a listener the caller owns.
    if unsafe { libc::listen(fd, BACKLOG) } == -1 {
        return Err(Error::io("listen", io::Error::last_os_error()));
    }
    Ok(())
}

/// A connection to `address`, begun without blocking: the channel becomes write-ready once
/// connected, and a refused connection shows up as an error on the first read or write.
pub fn connect(address: &Address) -> Result<Channel> {
    let io = match address {
        Address::Inet(addr) => {
            Io::Tcp(TcpStream::connect(*addr).map_err(|e| Error::io("connect", e))?)
        }
        Address::Unix(path) => {
            Io::Unix(UnixStream::connect(path).map_err(|e| Error::io("connect", e))?)
        }
    };
    if let Io::Tcp(stream) = &io {
        // Framed request/response traffic wants every frame out at once.
        let _ = stream.set_nodelay(true);
    }
    Ok(Channel::new(io, None, Some(address.clone())))
}

impl Channel {
    pub(crate) fn new(io: Io, local: Option<Address>, peer: Option<Address>) -> Channel {
        Channel {
            io,
            ready: 0,
            write_interest: false,
            out: Vec::new(),
            out_start: 0,
            out_bound: DEFAULT_OUTPUT_BOUND,
            send_room: 0,
            frames: FrameReader::new(frame::DEFAULT_MAX_FRAME),
            eof: false,
            closing: false,
            failed: None,
            link: None,
            local,
            peer,
        }
    }

    /// Wraps this channel for sharing with a dispatcher.
    pub fn shared(self) -> SharedChannel {
        Rc::new(RefCell::new(self))
    }

    /// What kind of channel this is: `stream`, `tcp`, `listener` or `closed`.
    pub fn kind(&self) -> &'static str {
        match self.io {
            Io::Unix(_) => "stream",
            Io::Tcp(_) => "tcp",
            Io::TcpListener(_) | Io::UnixListener(_) => "listener",
            Io::Closed => "closed",
        }
    }

    /// The file descriptor, while open.
    pub fn fd(&self) -> Option<RawFd> {
        match &self.io {
            Io::Unix(s) => Some(s.as_raw_fd()),
            Io::Tcp(s) => Some(s.as_raw_fd()),
            Io::TcpListener(l) => Some(l.as_raw_fd()),
            Io::UnixListener(l) => Some(l.as_raw_fd()),
            Io::Closed => None,
        }
    }

    /// Whether this is a listening channel (readable when a connection waits, never writable).
    pub fn is_listener(&self) -> bool {
        matches!(self.io, Io::TcpListener(_) | Io::UnixListener(_))
    }

    /// Whether this side closed the channel (output may still be flushing).
    pub fn is_closed(&self) -> bool {
        self.closing || matches!(self.io, Io::Closed)
    }

    /// Whether the peer closed its end: an end of file was read.
    pub fn at_end(&self) -> bool {
        self.eof
    }

    /// The address this channel is bound to, if it has one.
    pub fn local_address(&self) -> Option<&Address> {
        self.local.as_ref()
    }

    /// The address of the peer, if known.
    pub fn peer_address(&self) -> Option<&Address> {
        self.peer.as_ref()
    }

    /// The largest frame [`recv_frame`](Self::recv_frame) accepts.
    pub fn set_max_frame(&mut self, max: u32) {
        self.frames.set_max(max);
    }

    /// The bound on unsent output.
    pub fn set_output_bound(&mut self, bound: usize) {
        self.out_bound = bound.max(1);
    }

    /// Bytes accepted but not yet taken by the kernel.
    pub fn pending_output(&self) -> usize {
        self.out.len() - self.out_start
    }

    pub(crate) fn register(&mut self, registry: &Registry, token: Token) -> Result<()> {
        self.write_interest = self.pending_output() > 0;
        let interest = if self.write_interest {
            Interest::READABLE | Interest::WRITABLE
        } else {
            Interest::READABLE
        };
        let done = match &mut self.io {
            Io::Unix(s) => registry.register(s, token, interest),
            Io::Tcp(s) => registry.register(s, token, interest),
            Io::TcpListener(l) => registry.register(l, token, Interest::READABLE),
            Io::UnixListener(l) => registry.register(l, token, Interest::READABLE),
            Io::Closed => return Err(Error::ChannelClosed),
        };
        done.map_err(|e| Error::io("register", e))
    }

    /// Asks the poll to report writability, or to stop (one `epoll_ctl`, only on a change).
    /// Pending output always needs it, to be flushed.
    pub(crate) fn watch_writes(&mut self, want: bool) {
        let want = want || self.pending_output() > 0;
        if want == self.write_interest {
            return;
        }
        let Channel { io, link, .. } = self;
        let Some(link) = link else { return };
        let interest = if want {
            Interest::READABLE | Interest::WRITABLE
        } else {
            Interest::READABLE
        };
        let done = match io {
            Io::Unix(s) => link.registry.reregister(s, link.token, interest),
            Io::Tcp(s) => link.registry.reregister(s, link.token, interest),
            _ => return,
        };
        // On failure the interest stays as it was; a later change tries again.
        if done.is_ok() {
            self.write_interest = want;
        }
    }

    /// Records a poll event, and flushes pending output if the kernel can take it now.
    pub(crate) fn on_event(&mut self, event: &mio::event::Event) {
        let mut bits = 0;
        if event.is_readable() {
            bits |= ready::READABLE;
        }
        if event.is_writable() {
            bits |= ready::WRITABLE;
        }
        if event.is_error() {
            bits |= ready::ERROR | ready::READABLE | ready::WRITABLE;
        }
        if event.is_read_closed() {
            bits |= ready::READ_CLOSED | ready::READABLE;
        }
        self.ready |= bits;
        if bits & ready::WRITABLE != 0 && self.pending_output() > 0 {
            self.flush();
        }
    }

    /// Whether a read handler has something to see: bytes, an end of file, an error, a frame.
    pub(crate) fn read_due(&self) -> bool {
        self.ready & ready::READABLE != 0 || self.frames.has_frame()
    }

    /// Whether a write handler may write: the kernel last took everything, and the output
    /// buffer is under its bound.
    pub(crate) fn write_due(&self) -> bool {
        self.ready & ready::WRITABLE != 0
            && self.pending_output() < self.out_bound
            && !self.is_closed()
    }

    /// Whether an exception handler is due, clearing the condition: it is reported once per event.
    pub(crate) fn take_exception(&mut self) -> bool {
        let due = self.ready & ready::ERROR != 0;
        self.ready &= !ready::ERROR;
        due
    }

    pub(crate) fn exception_due(&self) -> bool {
        self.ready & ready::ERROR != 0
    }

    /// Whether the channel waits only to flush its output before closing.
    pub(crate) fn is_draining(&self) -> bool {
        self.closing && !matches!(self.io, Io::Closed)
    }

    /// Forgets that the socket was last found empty, so that the next read asks the kernel again
    /// (one system call) instead of waiting for the poll to say so. For a reader that has run long
    /// within one turn and expects more to have arrived meanwhile.
    pub fn recheck(&mut self) {
        self.ready |= ready::READABLE;
    }

    /// Whether a read may find something. Unwatched channels get no readiness news, so for them
    /// only trying tells.
    fn may_read(&self) -> bool {
        self.link.is_none() || self.ready & ready::READABLE != 0
    }

    /// The socket has nothing more to read for now. Once the peer has closed, no new event will
    /// come, so the end of file stays readable.
    fn drained(&mut self) {
        if self.ready & ready::READ_CLOSED == 0 {
            self.ready &= !ready::READABLE;
        }
    }

    fn check_open(&mut self) -> Result<()> {
        if self.is_closed() {
            return Err(Error::ChannelClosed);
        }
        if let Some(e) = self.failed.take() {
            return Err(e);
        }
        Ok(())
    }

    fn check_stream(&self, op: &'static str) -> Result<()> {
        match self.io {
            Io::Unix(_) | Io::Tcp(_) => Ok(()),
            _ => Err(Error::WrongKind {
                op,
                kind: self.kind(),
            }),
        }
    }

    /// Reads what is there into `buf`, without waiting.
    pub fn read(&mut self, buf: &mut [u8]) -> Result<ReadOutcome> {
        self.check_open()?;
        self.check_stream("read")?;
        if buf.is_empty() {
            return Ok(ReadOutcome::Data(0));
        }
        // Bytes already pulled in for framing come first, so mixing reads and frames loses nothing.
        let buffered = self.frames.buffered();
        if buffered > 0 {
            let n = self.frames.take_raw(buf);
            return Ok(ReadOutcome::Data(n));
        }
        match self.io.read_some(buf)? {
            Some(0) => {
                self.eof = true;
                Ok(ReadOutcome::Eof)
            }
            Some(n) => {
                // A short read emptied the socket: the next arrival raises a new event.
                if n < buf.len() {
                    self.drained();
                }
                Ok(ReadOutcome::Data(n))
            }
            None => {
                self.drained();
                Ok(ReadOutcome::WouldBlock)
            }
        }
    }

    /// The next whole frame, reading what the socket holds; never waits for the rest of one.
    pub fn recv_frame(&mut self) -> Result<Recv<'_>> {
        match self.fill(None)? {
            Filled::Nothing if self.eof => Ok(Recv::Eof),
            Filled::Nothing => Ok(Recv::Pending),
            _ => self.take_buffered(),
        }
    }

    /// Copies the next whole frame's payload into the start of `out`, reading what the socket
    /// holds. A payload longer than `out` is refused as soon as its header is in, and stays
    /// queued; the error says how long it is. The rest of a large frame is read straight into
    /// `out`, and a large frame's own buffer goes back to the spares, so a receiver that reuses
    /// `out` keeps the same memory in use, and in the CPU's cache, frame after frame.
    pub fn recv_frame_into(&mut self, out: &mut [u8]) -> Result<RecvInto> {
        let len = match self.fill(Some(&mut *out))? {
            Filled::Delivered(len) => return Ok(RecvInto::Copied(len)),
            Filled::Buffered(len) => len,
            Filled::Nothing if self.eof => return Ok(RecvInto::Eof),
            Filled::Nothing => return Ok(RecvInto::Pending),
        };
        match self.take_buffered()? {
            Recv::Frame(payload) => out[..len].copy_from_slice(payload),
            Recv::Owned(frame) => {
                out[..len].copy_from_slice(frame.payload());
                frame::recycle(frame.into_buffer());
            }
            Recv::Pending | Recv::Eof => return Ok(RecvInto::Pending), // fill() found it whole
        }
        Ok(RecvInto::Copied(len))
    }

    /// Takes the whole frame that [`fill`](Self::fill) found buffered.
    fn take_buffered(&mut self) -> Result<Recv<'_>> {
        if let Some(owned) = self.frames.take_owned() {
            return Ok(Recv::Owned(owned));
        }
        match self.frames.next_frame()? {
            Some(range) => Ok(Recv::Frame(self.frames.frame(range))),
            None => Ok(Recv::Pending),
        }
    }

    /// Reads what the socket holds until a whole frame is buffered, or, given `out` with room
    /// for a large frame that has begun to arrive, until that frame has come whole into `out`.
    /// A frame announcing more than `out` holds is refused once its header is in.
    fn fill(&mut self, mut out: Option<&mut [u8]>) -> Result<Filled> {
        self.check_open()?;
        self.check_stream("receive")?;
        loop {
            let whole = self.frames.whole()?;
            if let (Some(out), Some(len)) = (out.as_deref(), self.frames.pending_len()) {
                if len > out.len() {
                    let room = out.len();
                    return Err(Error::BufferTooSmall { needed: len, room });
                }
            }
            if let Some(len) = whole {
                return Ok(Filled::Buffered(len));
            }
            if self.eof {
                return match self.frames.truncation() {
                    Some(e) => Err(e),
                    None => Ok(Filled::Nothing),
                };
            }
            if !self.may_read() {
                return Ok(Filled::Nothing);
            }
            if let Some(out) = out.as_deref_mut() {
                if let Some(len) = self.frames.large_begun() {
                    if self.read_rest_into(len, out)? {
                        return Ok(Filled::Delivered(len));
                    }
                    if !self.eof {
                        return Ok(Filled::Nothing); // the socket is empty
                    }
                    continue;
                }
            }
            let spare = self.frames.spare();
            let room = spare.len();
            match self.io.read_some(spare)? {
                Some(0) => self.eof = true,
                Some(n) => {
                    self.frames.commit(n);
                    if n < room {
                        self.drained(); // a short read emptied the socket
                    }
                }
                None => {
                    self.drained();
                    return Ok(Filled::Nothing);
                }
            }
        }
    }

    /// Reads the rest of the pending large frame, `len` bytes of payload, straight into `out`,
    /// after the first chunk the reader holds of it: one copy less than through the reader.
    /// Whether it came whole; if not, what came goes back to the reader, which reads the rest
    /// into the frame's own buffer (copying it out again on every call would cost more).
    fn read_rest_into(&mut self, len: usize, out: &mut [u8]) -> Result<bool> {
        let mut got = self.frames.take_partial(out);
        let read = self.io.read_some(&mut out[got..len]);
        match read {
            Ok(Some(0)) => self.eof = true,
            Ok(Some(n)) => got += n,
            Ok(None) | Err(_) => {}
        }
        if got < len {
            self.drained(); // a would-block, or a short read: the socket is empty
            self.frames.restore_partial(len, &out[..got]);
        }
        read.map(|_| got == len)
    }

    /// Writes as much of `data` as the kernel takes now and buffers the rest up to the output
    /// bound. Returns how many bytes were accepted; fewer than asked means the buffer is full.
    pub fn write(&mut self, data: &[u8]) -> Result<usize> {
        self.check_open()?;
        self.check_stream("write")?;
        let mut taken = 0;
        if self.pending_output() == 0 && !data.is_empty() {
            taken = self.try_write(&[IoSlice::new(data)])?;
        }
        let room = self.out_bound.saturating_sub(self.pending_output());
        let rest = &data[taken..];
        let kept = rest.len().min(room);
        self.out.extend_from_slice(&rest[..kept]);
        if kept > 0 {
            self.watch_writes(true);
        }
        Ok(taken + kept)
    }

    /// Sends one frame: header and payload go out together or are buffered together, so frames
    /// never interleave. Refused with [`Error::ChannelFull`] while the output is at its bound.
    pub fn send_frame(&mut self, payload: &[u8]) -> Result<()> {
        self.check_open()?;
        self.check_stream("send")?;
        if payload.len() > u32::MAX as usize {
            return Err(Error::PayloadTooLarge {
                length: payload.len(),
            });
        }
        let pending = self.pending_output();
        if pending >= self.out_bound {
            return Err(Error::ChannelFull {
                pending,
                bound: self.out_bound,
            });
        }
        let head = frame::header(payload.len());
        self.make_room_for(frame::HEADER + payload.len());
        let mut taken = 0;
        if pending == 0 {
            taken = self.try_write(&[IoSlice::new(&head), IoSlice::new(payload)])?;
        }
        if taken < frame::HEADER {
            self.out.extend_from_slice(&head[taken..]);
            self.out.extend_from_slice(payload);
        } else {
            self.out
                .extend_from_slice(&payload[taken - frame::HEADER..]);
        }
        if self.pending_output() > 0 {
            self.watch_writes(true);
        }
        Ok(())
    }

    /// Grows a Unix socket's send buffer to hold a large frame whole (one `setsockopt` per new
    /// size). With the default (about 208 KiB) a 1 MiB frame crosses in five pieces, each a
    /// wake-up of both processes; an event loop pays for every one, a blocking writer does not.
    /// The kernel caps the size at `net.core.wmem_max`; memory is only used while data is in
    /// flight. TCP is left alone: setting the size would turn off the kernel's own tuning of it.
    fn make_room_for(&mut self, size: usize) {
        if size < frame::LARGE || size <= self.send_room {
            return;
        }
        let Io::Unix(socket) = &self.io else { return };
        self.send_room = size;
        let asked = size.min(i32::MAX as usize) as libc::c_int;
        // SAFETY: a valid descriptor and a pointer to an int of the size given.
        unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_SNDBUF,
                (&asked as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
    }

    /// One write attempt; a full socket is not an error, only a reason to buffer.
    fn try_write(&mut self, bufs: &[IoSlice<'_>]) -> Result<usize> {
        write_once(&mut self.io, &mut self.ready, bufs)
    }

    /// Hands buffered output to the kernel while it takes it. Errors are kept for the next
    /// operation; a channel closing after its output is flushed closes now.
    pub(crate) fn flush(&mut self) {
        while self.pending_output() > 0 {
            let pending = [IoSlice::new(&self.out[self.out_start..])];
            match write_once(&mut self.io, &mut self.ready, &pending) {
                Ok(0) => break,
                // A short write means the socket is full: asking again would only hear EAGAIN.
                // The next writability event comes when the peer has read.
                Ok(n) if n < pending[0].len() => {
                    self.out_start += n;
                    break;
                }
                Ok(n) => self.out_start += n,
                Err(e) => {
                    self.out.clear();
                    self.out_start = 0;
                    self.failed = Some(e);
                    self.ready |= ready::ERROR;
                    break;
                }
            }
        }
        if self.pending_output() == 0 {
            self.out.clear();
            self.out_start = 0;
            if self.out.capacity() > 4 * self.out_bound.min(DEFAULT_OUTPUT_BOUND) {
                self.out = Vec::new();
            }
            if self.closing {
                self.shut();
            }
        }
    }

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

    /// Closes the channel. Output already accepted is still delivered when the channel is watched
    /// by a dispatcher (it flushes as the peer reads); otherwise what the kernel does not take at
    /// once is dropped. Closing twice is harmless.
    pub fn close(&mut self) {
        if self.is_closed() {
            return;
        }
        if let Some(link) = &self.link {
            link.closed.borrow_mut().push(link.token);
            // A failed wake only delays dropping the handlers until the next event.
            let _ = link.waker.wake();
        }
        self.closing = true;
        self.flush();
        if self.link.is_none() && !matches!(self.io, Io::Closed) {
            self.shut();
        }
    }

    /// Closes the channel at once and drops the output the kernel has not taken, also when an
    /// earlier [`close`](Self::close) left it flushing. For peers that stopped reading, whose
    /// output would otherwise wait forever.
    pub fn abort(&mut self) {
        self.out.clear();
        self.out_start = 0;
        if self.is_closed() {
            self.shut();
        } else {
            self.close();
        }
    }

    fn shut(&mut self) {
        if let Io::UnixListener(_) = self.io {
            if let Some(Address::Unix(path)) = &self.local {
                let _ = std::fs::remove_file(path);
            }
        }
        // Dropping the socket closes its descriptor, which also takes it out of the poll set.
        self.io = Io::Closed;
        self.closing = true;
        self.out = Vec::new();
        self.out_start = 0;
    }
}

/// One write attempt on `io`; a socket that takes less than offered is no longer writable.
fn write_once(io: &mut Io, ready: &mut u8, bufs: &[IoSlice<'_>]) -> Result<usize> {
    let total: usize = bufs.iter().map(|b| b.len()).sum();
    loop {
        return match io.write(bufs) {
            Ok(n) => {
                if n < total {
                    *ready &= !ready::WRITABLE;
                }
                Ok(n)
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                *ready &= !ready::WRITABLE;
                Ok(0)
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => Err(Error::io("write", e)),
        };
    }
}

impl Drop for Channel {
    fn drop(&mut self) {
        self.shut();
    }
}
