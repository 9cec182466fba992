//! Reading: raw bytes, and whole frames assembled by the channel's [`FrameReader`], handed out
//! from its buffer, in a buffer of their own, or copied into the caller's.
//!
//! [`FrameReader`]: crate::frame::FrameReader

use super::{Channel, InputState, ReadOutcome, Recv, RecvInto};
use crate::error::{Error, Result};
use crate::frame;

/// Where [`Channel::fill`] left the next frame.
enum Filled {
    /// Whole in the reader; its payload length.
    Buffered(usize),
    /// Whole in the buffer given; its payload length.
    Delivered(usize),
    /// Not whole yet, or the peer closed between frames.
    Nothing,
}

impl Channel {
    /// Reads what is there into `buf`, without waiting. A watched channel whose socket was last
    /// found empty reads nothing until the poll says more has come, as a receive does; one whose
    /// peer's end was read says so without asking the kernel again.
    pub fn read(&mut self, buf: &mut [u8]) -> Result<ReadOutcome> {
        self.check_open()?;
        self.check_stream("read")?;
        debug_assert_eq!(
            self.frames.lent(),
            0,
            "lent frames not settled before a read"
        );
        if buf.is_empty() {
            return Ok(ReadOutcome::Data(0));
        }
        // Bytes already pulled in for framing come first, so mixing reads and frames loses nothing.
        let buffered = self.frames.buffered();
        if buffered > 0 {
            let n = self.frames.take_raw(buf);
            return Ok(ReadOutcome::Data(n));
        }
        if self.eof {
            return Ok(ReadOutcome::Eof);
        }
        if !self.may_read() {
            return Ok(ReadOutcome::WouldBlock);
        }
        match self.read_socket(buf)? {
            Some(0) => {
                self.eof = true;
                self.frames.release(); // nothing was buffered, nothing more will come
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

    /// The whole frames buffered after the one just received, shown without taking them (see
    /// [`FrameReader::lend`](crate::frame::FrameReader::lend)): for a caller that copies every
    /// frame ready in one go. They stay buffered, and a read handler stays due for them, until
    /// [`take_lent`](Self::take_lent) settles them, which is due before the next read or receive.
    pub fn lend_frames(&mut self, keep: impl FnMut(&[u8]) -> bool) -> usize {
        if self.is_closed() {
            return 0;
        }
        self.frames.lend(keep)
    }

    /// Frames lent by [`lend_frames`](Self::lend_frames) and not yet settled.
    pub fn lent_frames(&self) -> usize {
        self.frames.lent()
    }

    /// Settles the frames lent by [`lend_frames`](Self::lend_frames): the caller handed out the
    /// first `taken` of them; the others stay buffered, next in line.
    pub fn take_lent(&mut self, taken: usize) {
        self.frames.take_lent(taken);
    }

    /// What the next receive and read will find, where that is known without trying them: the
    /// peer's end read, or nothing buffered and nothing to read until the poll says so (a
    /// watched channel whose socket was last found empty). An unwatched channel reads on every
    /// call, so only its end is known. Frames lent count as buffered.
    pub fn input_state(&self) -> InputState {
        let mut bits = if self.eof { InputState::AT_END } else { 0 };
        // A closed channel, or one with an error to report, says so on the next call.
        if self.is_closed() || self.failed.is_some() || !self.is_stream() {
            return InputState(bits);
        }
        // A receive finds no frame, and no error, once nothing whole is buffered: at the end,
        // if no frame was cut short (that is an error every time); before it, if the socket
        // would not be read.
        let nothing_whole = matches!(self.frames.whole(), Ok(None));
        let quiet = if self.eof {
            self.frames.truncation().is_none()
        } else {
            !self.may_read()
        };
        if nothing_whole && quiet {
            bits |= InputState::NO_FRAME;
        }
        if (self.eof || !self.may_read()) && self.frames.buffered() == 0 {
            bits |= InputState::NO_BYTES;
        }
        InputState(bits)
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

    /// One read from the socket into `buf`: the bytes read (0 at the end of file), or `None`
    /// when it is empty.
    fn read_socket(&mut self, buf: &mut [u8]) -> Result<Option<usize>> {
        self.io.read_some(buf).map_err(|e| Error::io("read", e))
    }

    /// Reads what the socket holds until a whole frame is buffered, or, given `out` with room
    /// for a large frame that has begun to arrive, until that frame has come whole into `out`.
    /// A frame announcing more than `out` holds is refused once its header is in.
    fn fill(&mut self, mut out: Option<&mut [u8]>) -> Result<Filled> {
        self.check_open()?;
        self.check_stream("receive")?;
        debug_assert_eq!(
            self.frames.lent(),
            0,
            "lent frames not settled before a receive"
        );
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
                // No whole frame is left: what the reader holds is let go now, with the part of
                // a frame the peer left behind, however large.
                return match self.frames.finish() {
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
            match self.io.read_some(spare).map_err(|e| Error::io("read", e))? {
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
        let read = self.read_socket(&mut out[got..len]);
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
}
