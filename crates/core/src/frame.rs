//! pyre's framing: a 4-byte little-endian length, then that many payload bytes.
//!
//! [`FrameReader`] assembles frames from whatever pieces the socket hands over, so a reader never
//! sees part of a message and never waits for the rest of one.

use crate::error::{Error, Result};
use std::ops::Range;

/// Bytes in a frame header.
pub const HEADER: usize = 4;

/// The largest frame a channel accepts unless told otherwise: 64 MiB.
pub const DEFAULT_MAX_FRAME: u32 = 64 << 20;

/// How much a read asks for when no frame length is known yet.
const READ_CHUNK: usize = 64 << 10;

/// The largest read buffer a channel keeps between frames (4 MiB).
const KEEP: usize = 4 << 20;

/// The header announcing a payload of `len` bytes.
pub fn header(len: usize) -> [u8; HEADER] {
    (len as u32).to_le_bytes()
}

/// A per-channel buffer that turns a byte stream into whole frames.
///
/// ```
/// use pyre_nexus_core::frame::FrameReader;
/// let mut reader = FrameReader::new(1024);
/// let spare = reader.spare();
/// spare[..6].copy_from_slice(&[2, 0, 0, 0, b'h', b'i']);
/// reader.commit(6);
/// let range = reader.next_frame().unwrap().unwrap();
/// assert_eq!(reader.frame(range), b"hi");
/// ```
#[derive(Debug)]
pub struct FrameReader {
    buf: Vec<u8>,
    start: usize,
    end: usize,
    max: u32,
}

impl FrameReader {
    /// A reader that refuses frames longer than `max` bytes.
    pub fn new(max: u32) -> FrameReader {
        FrameReader {
            buf: Vec::new(),
            start: 0,
            end: 0,
            max,
        }
    }

    /// The largest payload accepted.
    pub fn max(&self) -> u32 {
        self.max
    }

    /// Changes the largest payload accepted from now on.
    pub fn set_max(&mut self, max: u32) {
        self.max = max;
    }

    /// Bytes received but not yet handed out as frames.
    pub fn buffered(&self) -> usize {
        self.end - self.start
    }

    /// The length the pending frame announced, once its header is in.
    fn announced(&self) -> Option<usize> {
        if self.buffered() < HEADER {
            return None; // what lies past `end` is stale
        }
        let head = &self.buf[self.start..self.start + HEADER];
        Some(u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize)
    }

    /// Whether a whole frame is buffered (and can be taken without reading).
    pub fn has_frame(&self) -> bool {
        matches!(self.announced(), Some(len) if self.buffered() >= HEADER + len)
    }

    /// Room to read into: enough for the pending frame when its length is known, a chunk otherwise.
    pub fn spare(&mut self) -> &mut [u8] {
        let want = match self.announced() {
            Some(len) if len <= self.max as usize => {
                (HEADER + len).saturating_sub(self.buffered()).max(1)
            }
            _ => READ_CHUNK,
        };
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.buf.len() - self.end < want && self.start > 0 {
            // Move the partial frame to the front rather than growing without end.
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.buf.len() - self.end < want {
            self.buf.resize(
                self.end + want.max(READ_CHUNK.min(self.max as usize + HEADER)),
                0,
            );
        }
        let end = self.end;
        &mut self.buf[end..]
    }

    /// Records that `n` bytes were read into [`spare`](Self::spare).
    pub fn commit(&mut self, n: usize) {
        self.end += n;
        debug_assert!(self.end <= self.buf.len());
    }

    /// The next whole frame, as a range to pass to [`frame`](Self::frame), or `None` if the rest
    /// has not arrived yet. A header announcing more than the maximum is an error, and the stream
    /// cannot be resynchronised after it.
    pub fn next_frame(&mut self) -> Result<Option<Range<usize>>> {
        let Some(len) = self.announced() else {
            return Ok(None);
        };
        if len > self.max as usize {
            return Err(Error::FrameTooLarge {
                length: len as u64,
                max: self.max,
            });
        }
        if self.buffered() < HEADER + len {
            return Ok(None);
        }
        let payload = self.start + HEADER..self.start + HEADER + len;
        self.start = payload.end;
        Ok(Some(payload))
    }

    /// The payload bytes of a range returned by [`next_frame`](Self::next_frame).
    pub fn frame(&self, range: Range<usize>) -> &[u8] {
        &self.buf[range]
    }

    /// How far the pending frame got, for reporting a peer that closed in the middle of one.
    pub fn truncation(&self) -> Option<Error> {
        if self.buffered() == 0 {
            return None;
        }
        let expected = self.announced().map_or(HEADER, |len| HEADER + len);
        Some(Error::Truncated {
            received: self.buffered(),
            expected,
        })
    }

    /// Hands buffered bytes out as they are, for a reader that switches from frames to raw reads.
    pub fn take_raw(&mut self, out: &mut [u8]) -> usize {
        let n = out.len().min(self.buffered());
        out[..n].copy_from_slice(&self.buf[self.start..self.start + n]);
        self.start += n;
        n
    }

    /// Drops buffer memory kept from a very large frame once nothing is pending. Buffers up to
    /// [`KEEP`] stay: a stream of 1 MiB frames would otherwise allocate, fault in and zero a
    /// fresh megabyte for every frame.
    pub fn shrink(&mut self) {
        if self.buffered() == 0 && self.buf.len() > KEEP {
            self.buf = Vec::new();
            self.start = 0;
            self.end = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(reader: &mut FrameReader, bytes: &[u8]) {
        let spare = reader.spare();
        spare[..bytes.len()].copy_from_slice(bytes);
        reader.commit(bytes.len());
    }

    /// Feeds one whole frame of `len` bytes, in reads of at most 64 KiB, and takes it out.
    fn pass_frame(reader: &mut FrameReader, len: usize) {
        feed(reader, &header(len));
        let mut left = len;
        while left > 0 {
            let n = left.min(READ_CHUNK).min(reader.spare().len());
            feed(reader, &vec![7; n]);
            left -= n;
        }
        let range = reader.next_frame().unwrap().unwrap();
        assert_eq!(range.len(), len);
    }

    #[test]
    fn the_read_buffer_of_large_frames_is_kept_up_to_a_bound() {
        let mut reader = FrameReader::new(64 << 20);
        pass_frame(&mut reader, 1 << 20);
        reader.shrink();
        let kept = reader.buf.len();
        assert!(
            kept > 1 << 20,
            "a 1 MiB frame's buffer is kept for the next one"
        );
        pass_frame(&mut reader, 1 << 20);
        reader.shrink();
        assert_eq!(reader.buf.len(), kept, "and reused, not grown");
        pass_frame(&mut reader, 8 << 20);
        reader.shrink();
        assert_eq!(reader.buf.len(), 0, "an 8 MiB frame's buffer is given back");
    }

    #[test]
    fn frames_assemble_from_single_bytes() {
        let mut reader = FrameReader::new(1 << 10);
        let mut wire = header(5).to_vec();
        wire.extend_from_slice(b"hello");
        for (i, byte) in wire.iter().enumerate() {
            assert!(
                reader.next_frame().unwrap().is_none(),
                "frame complete too early at {i}"
            );
            feed(&mut reader, &[*byte]);
        }
        let range = reader.next_frame().unwrap().unwrap();
        assert_eq!(reader.frame(range), b"hello");
        assert!(reader.next_frame().unwrap().is_none());
    }

    #[test]
    fn several_frames_in_one_read_come_out_in_order() {
        let mut reader = FrameReader::new(1 << 10);
        let mut wire = Vec::new();
        for word in ["a", "", "ccc"] {
            wire.extend_from_slice(&header(word.len()));
            wire.extend_from_slice(word.as_bytes());
        }
        feed(&mut reader, &wire);
        let mut out = Vec::new();
        while let Some(range) = reader.next_frame().unwrap() {
            out.push(String::from_utf8(reader.frame(range).to_vec()).unwrap());
        }
        assert_eq!(out, ["a", "", "ccc"]);
    }

    #[test]
    fn a_header_split_across_reads_is_not_read_from_stale_bytes() {
        // Fill the buffer with bytes that would announce a huge frame, then consume them.
        let mut reader = FrameReader::new(1 << 10);
        feed(
            &mut reader,
            &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
        );
        reader.take_raw(&mut [0u8; 8]);
        // ...and a new header arriving one byte at a time over the stale ones.
        for byte in header(1) {
            assert!(reader.next_frame().unwrap().is_none());
            assert!(!reader.has_frame());
            feed(&mut reader, &[byte]);
        }
        feed(&mut reader, b"z");
        let range = reader.next_frame().unwrap().unwrap();
        assert_eq!(reader.frame(range), b"z");
    }

    #[test]
    fn a_frame_over_the_maximum_is_refused_before_its_payload_arrives() {
        let mut reader = FrameReader::new(16);
        feed(&mut reader, &u32::MAX.to_le_bytes());
        let err = reader.next_frame().unwrap_err();
        assert_eq!(err.code(), "ERR_NEXUS_FRAME_TOO_LARGE");
        assert!(err.to_string().contains("4294967295 bytes"));
    }

    #[test]
    fn a_partial_frame_reports_how_far_it_got() {
        let mut reader = FrameReader::new(1 << 10);
        feed(&mut reader, &header(10));
        feed(&mut reader, b"abc");
        assert!(reader.next_frame().unwrap().is_none());
        assert_eq!(
            reader.truncation().unwrap().to_string(),
            "the peer closed the channel in the middle of a frame (7 of 14 bytes)"
        );
    }
}
