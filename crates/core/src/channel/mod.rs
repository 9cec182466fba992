//! Channels: non-blocking, close-on-exec sockets with a readiness record, an output buffer and a
//! frame reader. Made by [`pipe`], [`adopt`], [`port`] and [`connect`].
//!
//! A channel's concerns each have their module: `open` makes channels (and accepts them),
//! `readiness` keeps what the poll said, `input` reads bytes and frames, `output` writes and
//! flushes. The socket calls themselves are in `crate::sys`.
//!
//! What a channel holds besides its socket (the frame reader's buffers, unsent output) is let go
//! when it closes, aborts or reads its peer's end, not when its owner drops it: an owner such as
//! a JavaScript object may be collected long after.

mod input;
mod open;
mod output;
mod readiness;

use crate::address::Address;
use crate::error::{Error, Result};
use crate::frame::{self, FrameReader, OwnedFrame};
use crate::sys;
use mio::{Registry, Token, Waker};
use std::cell::RefCell;
use std::os::fd::RawFd;
use std::rc::Rc;
use std::sync::Arc;

pub(crate) use crate::sys::Io;
pub use open::{adopt, connect, pipe, port};
pub use readiness::readiness_epoch;
pub(crate) use readiness::ready;

/// A channel shared by its owner (a JavaScript object, say) and the dispatcher watching it.
pub type SharedChannel = Rc<RefCell<Channel>>;

/// The default bound on unsent output: past it, writes accept nothing more until the kernel
/// drains some (1 MiB).
pub const DEFAULT_OUTPUT_BOUND: usize = 1 << 20;

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

/// What a channel's next receive and read will find, known without trying them (see
/// [`Channel::input_state`]): so that an owner in another runtime, JavaScript through the
/// binding, can answer its reader itself instead of calling in to hear "nothing yet".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct InputState(u8);

impl InputState {
    /// The peer's end of file has been read: [`Channel::at_end`].
    pub const AT_END: u8 = 1;
    /// [`Channel::recv_frame`] finds no frame, without reading and without an error: it says
    /// [`Recv::Pending`] (or [`Recv::Eof`], at the end) until [`readiness_epoch`] changes, or
    /// [`Channel::recheck`] is called.
    pub const NO_FRAME: u8 = 2;
    /// [`Channel::read`] likewise finds nothing: [`ReadOutcome::WouldBlock`] (or
    /// [`ReadOutcome::Eof`], at the end); no byte is buffered either.
    pub const NO_BYTES: u8 = 4;

    /// The state as bits: [`AT_END`](Self::AT_END), [`NO_FRAME`](Self::NO_FRAME),
    /// [`NO_BYTES`](Self::NO_BYTES).
    pub fn bits(self) -> u8 {
        self.0
    }

    /// Whether the peer's end of file has been read.
    pub fn at_end(self) -> bool {
        self.0 & Self::AT_END != 0
    }

    /// Whether a receive would find no frame (see [`NO_FRAME`](Self::NO_FRAME)).
    pub fn no_frame(self) -> bool {
        self.0 & Self::NO_FRAME != 0
    }

    /// Whether a read would find nothing (see [`NO_BYTES`](Self::NO_BYTES)).
    pub fn no_bytes(self) -> bool {
        self.0 & Self::NO_BYTES != 0
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
    /// What the poll last said (see `readiness::ready`), cleared as the kernel says otherwise.
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
        self.io.fd()
    }

    /// Whether this is a listening channel (readable when a connection waits, never writable).
    pub fn is_listener(&self) -> bool {
        matches!(self.io, Io::TcpListener(_) | Io::UnixListener(_))
    }

    /// Whether this is a connection (a pipe end, a TCP or Unix-domain stream) still open.
    fn is_stream(&self) -> bool {
        matches!(self.io, Io::Unix(_) | Io::Tcp(_))
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

    /// Bytes of memory the channel holds for its input and output: its frame reader's buffers
    /// and its output buffer, by capacity: nothing once it is closed (and flushed).
    pub fn held_memory(&self) -> usize {
        self.frames.held_memory() + self.out.capacity()
    }

    /// Closes the channel. Output already accepted is still delivered when the channel is watched
    /// by a dispatcher (it flushes as the peer reads); otherwise what the kernel does not take at
    /// once is dropped. Closing twice is harmless. What the channel held for its input is let go
    /// at once.
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
        self.frames.release();
        self.flush();
        if self.link.is_none() && !matches!(self.io, Io::Closed) {
            self.shut();
        }
    }

    /// Closes the channel at once and drops the output the kernel has not taken, also when an
    /// earlier [`close`](Self::close) left it flushing. For peers that stopped reading, whose
    /// output would otherwise wait forever.
    pub fn abort(&mut self) {
        self.drop_output();
        if self.is_closed() {
            self.shut();
        } else {
            self.close();
        }
    }

    /// Closes the descriptor and lets go of every buffer.
    fn shut(&mut self) {
        if let Io::UnixListener(_) = self.io {
            if let Some(Address::Unix(path)) = &self.local {
                let _ = std::fs::remove_file(path);
            }
        }
        // Dropping the socket closes its descriptor, which also takes it out of the poll set.
        self.io = Io::Closed;
        self.closing = true;
        self.drop_output();
        self.frames.release();
    }

    /// Lets go of the output buffer, with whatever the kernel has not taken.
    fn drop_output(&mut self) {
        sys::heap::freed(self.out.capacity());
        self.out = Vec::new();
        self.out_start = 0;
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
        if self.is_stream() {
            return Ok(());
        }
        Err(Error::WrongKind {
            op,
            kind: self.kind(),
        })
    }
}

impl Drop for Channel {
    fn drop(&mut self) {
        self.shut();
    }
}
