//! Writing: what the kernel takes at once goes out, the rest waits in the channel's output
//! buffer, up to its bound, and is flushed as the poll says the socket has room.

use super::{ready, Channel, Io, DEFAULT_OUTPUT_BOUND};
use crate::error::{Error, Result};
use crate::frame;
use crate::sys;
use std::io::IoSlice;

impl Channel {
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
        // Refused, the frame still goes: in more pieces.
        let _ = sys::set_send_buffer(std::os::fd::AsRawFd::as_raw_fd(socket), size);
    }

    /// One write attempt; a full socket is not an error, only a reason to buffer.
    fn try_write(&mut self, bufs: &[IoSlice<'_>]) -> Result<usize> {
        let offered: usize = bufs.iter().map(|b| b.len()).sum();
        let written = self.io.write_some(bufs);
        let taken = written.map_err(|e| Error::io("write", e))?.unwrap_or(0);
        if taken < offered {
            self.filled();
        }
        Ok(taken)
    }

    /// Hands buffered output to the kernel while it takes it. Errors are kept for the next
    /// operation; a channel closing after its output is flushed closes now.
    pub(crate) fn flush(&mut self) {
        while self.pending_output() > 0 {
            let pending = &self.out[self.out_start..];
            let offered = pending.len();
            match self.io.write_some(&[IoSlice::new(pending)]) {
                // A short write means the socket is full: asking again would only hear EAGAIN.
                // The next writability event comes when the peer has read.
                Ok(taken) => {
                    let n = taken.unwrap_or(0);
                    self.out_start += n;
                    if n < offered {
                        self.filled();
                        break;
                    }
                }
                Err(e) => {
                    self.drop_output();
                    self.failed = Some(Error::io("write", e));
                    self.ready |= ready::ERROR;
                    break;
                }
            }
        }
        if self.pending_output() == 0 {
            self.out.clear();
            self.out_start = 0;
            if self.out.capacity() > 4 * self.out_bound.min(DEFAULT_OUTPUT_BOUND) {
                self.drop_output();
            }
            if self.closing {
                self.shut();
            }
        }
    }
}
