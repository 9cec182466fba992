//! The fuzzer's bytes read as a program: operations and their arguments, zeros once they run out.

use pyre_nexus_core::frame::{HEADER, LARGE};

/// A cursor over the fuzzer's bytes.
pub struct Input<'a> {
    bytes: &'a [u8],
}

impl<'a> Input<'a> {
    pub fn new(bytes: &'a [u8]) -> Input<'a> {
        Input { bytes }
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    pub fn byte(&mut self) -> u8 {
        let Some((&first, rest)) = self.bytes.split_first() else {
            return 0;
        };
        self.bytes = rest;
        first
    }

    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.byte(), self.byte()])
    }

    /// Up to `n` bytes, as they come (fewer at the end).
    pub fn bytes(&mut self, n: usize) -> &'a [u8] {
        let (taken, rest) = self.bytes.split_at(n.min(self.bytes.len()));
        self.bytes = rest;
        taken
    }

    /// One of `choices`.
    pub fn pick<T: Copy>(&mut self, choices: &[T]) -> T {
        choices[usize::from(self.byte()) % choices.len()]
    }

    /// A payload length: mostly small, sometimes up to 64 KiB, and sometimes about the size at
    /// which frames are read into buffers of their own ([`LARGE`]), on either side of it.
    pub fn length(&mut self) -> usize {
        match self.byte() % 8 {
            0..=4 => usize::from(self.byte()),
            5 | 6 => usize::from(self.u16()),
            _ => LARGE - HEADER - 4 + usize::from(self.byte()) % 8 + usize::from(self.u16()) * 4,
        }
    }
}

/// The largest payloads a reader may be set to accept: none, tiny ones, either side of
/// [`LARGE`], and the channels' default. (Not more: a reader takes a large frame's announced
/// length in memory as soon as its header is in, and libFuzzer counts a malloc over 2 GiB as a
/// crash.)
pub const MAXES: [u32; 8] = [
    0,
    1,
    255,
    4096,
    (LARGE - HEADER - 1) as u32,
    (LARGE - HEADER) as u32,
    1 << 20,
    64 << 20,
];

/// A frame as a peer sends it: the header, then `len` bytes that count up from `seed`.
pub fn frame(len: usize, seed: u8) -> Vec<u8> {
    let mut wire = Vec::with_capacity(HEADER + len);
    wire.extend_from_slice(&(len as u32).to_le_bytes());
    wire.extend((0..len).map(|i| seed.wrapping_add(i as u8)));
    wire
}
