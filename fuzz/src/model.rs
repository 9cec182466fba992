//! The model both frame targets check against: the bytes a peer sent, parsed into frames the
//! obvious way, from wherever the receiver has taken them to.

use pyre_nexus_core::frame::HEADER;
use std::ops::Range;

/// Every byte sent so far, and how many of them the receiver has taken (as frames or raw).
#[derive(Default)]
pub struct Stream {
    bytes: Vec<u8>,
    taken: usize,
}

/// What the receiver must find next.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    /// A whole frame: where its payload lies in the stream.
    Whole(Range<usize>),
    /// A header announcing more than the maximum.
    TooLarge { length: usize },
    /// Part of a frame: `received` bytes of the `expected` (header included; just the header's
    /// while it is not in).
    Partial { received: usize, expected: usize },
    /// Nothing.
    Nothing,
}

impl Stream {
    pub fn extend(&mut self, bytes: &[u8]) {
        self.bytes.extend_from_slice(bytes);
    }

    /// Bytes sent and not taken.
    pub fn rest(&self) -> &[u8] {
        &self.bytes[self.taken..]
    }

    pub fn take(&mut self, n: usize) {
        assert!(
            n <= self.rest().len(),
            "took {n} bytes of {}",
            self.rest().len()
        );
        self.taken += n;
    }

    pub fn payload(&self, range: Range<usize>) -> &[u8] {
        &self.bytes[range]
    }

    /// What comes next for a receiver that accepts payloads of up to `max` bytes.
    pub fn next(&self, max: u32) -> Next {
        let rest = self.rest();
        if rest.is_empty() {
            return Next::Nothing;
        }
        let Some(head) = rest.get(..HEADER) else {
            return Next::Partial {
                received: rest.len(),
                expected: HEADER,
            };
        };
        let length = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
        if length > max as usize {
            return Next::TooLarge { length };
        }
        if rest.len() < HEADER + length {
            return Next::Partial {
                received: rest.len(),
                expected: HEADER + length,
            };
        }
        let start = self.taken + HEADER;
        Next::Whole(start..start + length)
    }

    /// How a peer that closes now left the stream: cut short after `received` of `expected`
    /// bytes (the next frame's, or its header's), or `None` between frames.
    pub fn truncation(&self) -> Option<(usize, usize)> {
        let received = self.rest().len();
        if received == 0 {
            return None;
        }
        let expected = match self.rest().get(..HEADER) {
            Some(head) => {
                HEADER + u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize
            }
            None => HEADER,
        };
        Some((received, expected))
    }
}
