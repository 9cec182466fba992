//! What the poll said of a channel, and what is due because of it: pyre's level-triggered
//! readiness kept on top of the edge-triggered events mio reports.

use super::{Channel, Io};
use crate::error::{Error, Result};
use mio::{Interest, Registry, Token};
use std::cell::Cell;

thread_local! {
    static EPOCH: Cell<u32> = const { Cell::new(0) };
}

/// A number that changes whenever a channel of this thread may have something new to read
/// without having been read: a poll recorded an event, or a channel stopped being watched (an
/// unwatched channel reads on every call). While it stays the same, what
/// [`Channel::input_state`] said of a channel still holds until the channel is used again.
pub fn readiness_epoch() -> u32 {
    EPOCH.try_with(Cell::get).unwrap_or(0)
}

/// Something may have arrived: whatever was said of this thread's channels may be stale now.
fn news() {
    // A thread being torn down has no reader left to tell.
    let _ = EPOCH.try_with(|epoch| epoch.set(epoch.get().wrapping_add(1)));
}

/// Readiness bits, set from poll events and cleared when the kernel says there is no more.
pub(crate) mod ready {
    /// Bytes, an end of file or an error may be read (or a connection accepted).
    pub const READABLE: u8 = 1;
    /// The kernel may take more output.
    pub const WRITABLE: u8 = 2;
    /// The socket reported an error; an exception handler sees it once.
    pub const ERROR: u8 = 4;
    /// The peer closed its end: no event will say "readable" again.
    pub const READ_CLOSED: u8 = 8;
}

impl Channel {
    pub(crate) fn register(&mut self, registry: &Registry, token: Token) -> Result<()> {
        self.write_interest = self.pending_output() > 0;
        let interest = if self.write_interest {
            Interest::READABLE | Interest::WRITABLE
        } else {
            Interest::READABLE
        };
        if matches!(self.io, Io::Closed) {
            return Err(Error::ChannelClosed);
        }
        self.io
            .register(registry, token, interest)
            .map_err(|e| Error::io("register", e))
    }

    /// Stops being watched: the dispatcher has let go of the channel, whose reads now ask the
    /// kernel every time (news for JavaScript's idea of it), and another may watch it. The
    /// socket is taken out of that dispatcher's poll: mio (in debug builds) refuses to register
    /// a source that was never deregistered, even with a poll that has since closed.
    pub(crate) fn unwatch(&mut self) {
        if let Some(link) = self.link.take() {
            // A closed socket has left every poll already; a failure leaves nothing to undo.
            let _ = self.io.deregister(&link.registry);
        }
        news();
    }

    /// Asks the poll to report writability, or to stop (one `epoll_ctl`, only on a change).
    /// Pending output always needs it, to be flushed.
    pub(crate) fn watch_writes(&mut self, want: bool) {
        let want = want || self.pending_output() > 0;
        if want == self.write_interest || !self.is_stream() {
            return;
        }
        let Channel { io, link, .. } = self;
        let Some(link) = link else { return };
        let interest = if want {
            Interest::READABLE | Interest::WRITABLE
        } else {
            Interest::READABLE
        };
        // On failure the interest stays as it was; a later change tries again.
        if io.reregister(&link.registry, link.token, interest).is_ok() {
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
        news();
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

    /// Whether an exception handler is due (without clearing it).
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
    pub(super) fn may_read(&self) -> bool {
        self.link.is_none() || self.ready & ready::READABLE != 0
    }

    /// The socket has nothing more to read for now. Once the peer has closed, no new event will
    /// come, so the end of file stays readable.
    pub(super) fn drained(&mut self) {
        if self.ready & ready::READ_CLOSED == 0 {
            self.ready &= !ready::READABLE;
        }
    }

    /// The socket took less than offered: it is full until the poll says otherwise.
    pub(super) fn filled(&mut self) {
        self.ready &= !ready::WRITABLE;
    }
}
