//! pyre's framing: a 4-byte little-endian length, then that many payload bytes.
//!
//! [`FrameReader`] assembles frames from whatever pieces the socket hands over, so a reader never
//! sees part of a message and never waits for the rest of one.

use crate::error::{Error, Result};
use crate::sys;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::ops::Range;
use std::time::{Duration, Instant};

/// Bytes in a frame header.
pub const HEADER: usize = 4;

/// The largest frame a channel accepts unless told otherwise: 64 MiB.
pub const DEFAULT_MAX_FRAME: u32 = 64 << 20;

/// How much a reader's first read asks for when no frame length is known yet: enough for the
/// small messages most conversations carry. A connection that sends more at once gets larger
/// reads (see [`READ_CHUNK`]); one that stays quiet holds no more than this.
const FIRST_CHUNK: usize = 4 << 10;

/// The most a read asks for when no frame length is known yet. A reader's chunk doubles, from
/// [`FIRST_CHUNK`] up to this, each time a read fills all the room it was given.
const READ_CHUNK: usize = 64 << 10;

/// Frames (header included) at least this long are read into a buffer of their own and handed
/// out whole as an [`OwnedFrame`], instead of being copied out of the shared read buffer.
pub const LARGE: usize = 128 << 10;

/// How many bytes of given-back large-frame buffers a thread keeps for the next large frames:
/// what V8 lets Buffers hold outside its heap before it collects them (64 MiB), since a
/// collection gives back that much at once. Kept less, most frames would miss (measured: 16 MiB
/// kept was slower than keeping none).
const SPARE_LIMIT: usize = 64 << 20;

/// Spares are let go once no large frame has come for this long: by [`trim_spares`], which the
/// binding calls from a timer, or when a buffer comes back after that.
const SPARE_IDLE: Duration = Duration::from_secs(1);

thread_local! {
    static SPARES: RefCell<Spares> = const {
        RefCell::new(Spares {
            bufs: Vec::new(),
            bytes: 0,
            last_taken: None,
            readers: BTreeMap::new(),
        })
    };
}

/// Buffers of large frames their receivers let go of. A fresh megabyte costs 256 page faults, each
/// zeroing its page, and its unmapping once freed: half the CPU of a stream of 1 MiB frames
/// (perf). A kept one costs nothing.
///
/// Spares serve only the live readers that receive large frames, and only as long as those do:
/// none are kept while no such reader is open (the last one to close lets them all go), none
/// larger than the largest frame one of them accepts, none once large frames have stopped
/// coming for a while, and never more than [`SPARE_LIMIT`] bytes.
struct Spares {
    bufs: Vec<Vec<u8>>,
    bytes: usize,
    last_taken: Option<Instant>,
    /// The open readers that have received a large frame, counted by the largest buffer each
    /// could use (its maximum payload and a header).
    readers: BTreeMap<usize, usize>,
}

impl Spares {
    /// Whether a large frame came lately.
    fn busy(&self) -> bool {
        self.last_taken.is_some_and(|t| t.elapsed() < SPARE_IDLE)
    }

    /// The largest buffer a live reader could use; 0 while there is none.
    fn largest_useful(&self) -> usize {
        self.readers.last_key_value().map_or(0, |(&size, _)| size)
    }

    /// Lets every spare go if no large frame has come for a while; whether any are still kept.
    fn let_go_if_idle(&mut self) -> bool {
        if !self.busy() {
            self.let_go();
        }
        self.bytes > 0
    }

    fn let_go(&mut self) {
        self.bufs = Vec::new();
        sys::heap::freed(std::mem::take(&mut self.bytes));
    }

    /// Keeps `buf` for a later frame, if a live reader could use it; past the limit, the largest
    /// spares go first (the sizes in use now are the ones that come back).
    fn keep(&mut self, buf: Vec<u8>) {
        if buf.capacity() > self.largest_useful() {
            return;
        }
        self.bytes += buf.capacity();
        self.bufs.push(buf);
        while self.bytes > SPARE_LIMIT {
            let largest = (0..self.bufs.len())
                .max_by_key(|&i| self.bufs[i].capacity())
                .expect("over the limit, so not empty");
            self.bytes -= self.bufs.swap_remove(largest).capacity();
        }
    }

    /// The smallest kept buffer of at least `size` bytes, unless that is more than twice as
    /// much: a frame must not pin a buffer many times its size.
    fn take(&mut self, size: usize) -> Option<Vec<u8>> {
        self.last_taken = Some(Instant::now());
        let fit = (0..self.bufs.len())
            .filter(|&i| self.bufs[i].capacity() >= size)
            .min_by_key(|&i| self.bufs[i].capacity())?;
        if self.bufs[fit].capacity() / 2 > size {
            return None;
        }
        let buf = self.bufs.swap_remove(fit);
        self.bytes -= buf.capacity();
        Some(buf)
    }

    /// Counts a reader that receives large frames of up to `size` bytes (header included).
    fn join(&mut self, size: usize) {
        *self.readers.entry(size).or_default() += 1;
    }

    /// Stops counting a reader; spares that no reader left could use are let go.
    fn leave(&mut self, size: usize) {
        // A reader moved to another thread leaves there, where it was never counted.
        let Some(count) = self.readers.get_mut(&size) else {
            return;
        };
        *count -= 1;
        if *count == 0 {
            self.readers.remove(&size);
        }
        let useful = self.largest_useful();
        if useful == 0 {
            self.let_go();
        } else if self.bufs.iter().any(|b| b.capacity() > useful) {
            self.bufs.retain(|b| b.capacity() <= useful);
            let kept = self.bufs.iter().map(Vec::capacity).sum();
            sys::heap::freed(self.bytes - kept);
            self.bytes = kept;
        }
    }
}

/// Runs `f` on this thread's spares; `None` once the thread is being torn down (a finalizer may
/// run then), when there are none to use.
fn with_spares<R>(f: impl FnOnce(&mut Spares) -> R) -> Option<R> {
    SPARES.try_with(|spares| f(&mut spares.borrow_mut())).ok()
}

/// Gives a large frame's buffer back for the next large frame this thread receives. It is
/// dropped if no open reader of this thread could use it, if the thread keeps enough already, or
/// if it has had no large frame for a while (and then so are the others kept).
pub fn recycle(buf: Vec<u8>) {
    if buf.capacity() >= LARGE {
        with_spares(|spares| {
            if spares.busy() {
                spares.keep(buf);
            } else {
                spares.let_go_if_idle();
            }
        });
    }
}

/// Lets this thread's spares go if no large frame has come for a while; says whether any are
/// still kept (then ask again later).
pub fn trim_spares() -> bool {
    with_spares(Spares::let_go_if_idle).unwrap_or(false)
}

/// Bytes of large-frame buffers this thread keeps for the next large frames.
pub fn spare_bytes() -> usize {
    with_spares(|spares| spares.bytes).unwrap_or(0)
}

/// A buffer of exactly `size` bytes: the smallest kept one that fits, or a new one (zeroed by
/// the system as its pages are first touched, not written here).
fn buffer_of(size: usize) -> Vec<u8> {
    match with_spares(|spares| spares.take(size)).flatten() {
        Some(mut kept) => {
            kept.resize(size, 0); // its old bytes are overwritten by the reads
            kept
        }
        None => vec![0; size],
    }
}

/// Whether a frame with a payload of `len` bytes is a large one (see [`LARGE`]).
fn is_large(len: usize) -> bool {
    HEADER + len >= LARGE
}

/// A large frame, read into a buffer of its own that the receiver keeps: no copy on the way out.
#[derive(Debug, PartialEq, Eq)]
pub struct OwnedFrame(Vec<u8>);

impl OwnedFrame {
    /// The payload.
    pub fn payload(&self) -> &[u8] {
        &self.0[HEADER..]
    }

    /// The whole buffer: the 4-byte header, then the payload. Give it to [`recycle`] when done.
    pub fn into_buffer(self) -> Vec<u8> {
        self.0
    }
}

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
    /// What has been read and not handed out, from `start` to `end`: in the shared read buffer,
    /// or, while `owned`, in the pending large frame's own buffer, of exactly its size.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    owned: bool,
    /// The shared read buffer, set aside while `buf` is a large frame's own.
    shared: Vec<u8>,
    max: u32,
    /// Counted among this thread's receivers of large frames, with the largest buffer it could
    /// use (see [`Spares`]).
    joined: Option<usize>,
    /// Where the stream ended in the middle of a frame: bytes received of those announced.
    cut: Option<(usize, usize)>,
    /// What a read asks for when no frame length is known, from [`FIRST_CHUNK`] to [`READ_CHUNK`].
    chunk: usize,
    /// The room [`spare`](Self::spare) last offered: a read that fills it makes the chunk grow.
    offered: usize,
    /// Whole frames shown by [`lend`](Self::lend) and not yet settled by
    /// [`take_lent`](Self::take_lent): still buffered, first in line.
    lent: usize,
}

impl FrameReader {
    /// A reader that refuses frames longer than `max` bytes.
    pub fn new(max: u32) -> FrameReader {
        FrameReader {
            buf: Vec::new(),
            start: 0,
            end: 0,
            owned: false,
            shared: Vec::new(),
            max,
            joined: None,
            cut: None,
            chunk: FIRST_CHUNK,
            offered: 0,
            lent: 0,
        }
    }

    /// The largest payload accepted.
    pub fn max(&self) -> u32 {
        self.max
    }

    /// Changes the largest payload accepted from now on.
    pub fn set_max(&mut self, max: u32) {
        self.max = max;
        if let Some(joined) = self.joined {
            let useful = max as usize + HEADER;
            self.joined = Some(useful);
            with_spares(|spares| {
                spares.join(useful);
                spares.leave(joined);
            });
        }
    }

    /// Bytes of memory the reader holds: its buffers, by capacity.
    pub fn held_memory(&self) -> usize {
        self.buf.capacity() + self.shared.capacity()
    }

    /// Lets go of every buffer, with whatever they hold: for a reader whose channel has closed.
    /// A large frame's own buffer is freed, not kept as a spare (one cut short may be a peer's
    /// lie about its length), and the reader is no longer one that spares are kept for.
    pub fn release(&mut self) {
        sys::heap::freed(self.held_memory());
        self.buf = Vec::new();
        self.shared = Vec::new();
        self.start = 0;
        self.end = 0;
        self.owned = false;
        self.lent = 0;
        if let Some(joined) = self.joined.take() {
            with_spares(|spares| spares.leave(joined));
        }
    }

    /// The stream has ended: lets the buffers go (see [`release`](Self::release)) once no whole
    /// frame is left in them, and says whether it ended in the middle of one, the same way every
    /// time it is asked. A frame cut short goes with the buffers, bytes and all: a peer that
    /// vanished mid-frame, or lied about a frame's length, gets no memory kept for it.
    pub fn finish(&mut self) -> Option<Error> {
        if self.has_frame() {
            return None;
        }
        if self.buffered() > 0 {
            self.cut = Some(self.progress());
        }
        self.release();
        self.truncation()
    }

    /// Bytes received but not yet handed out as frames.
    pub fn buffered(&self) -> usize {
        self.end - self.start
    }

    /// The length the pending frame announced, once its header is in.
    fn announced(&self) -> Option<usize> {
        self.announced_at(self.start)
    }

    /// The length announced by the header at `at` in the buffer, if it is all in.
    fn announced_at(&self, at: usize) -> Option<usize> {
        if self.end - at < HEADER {
            return None; // what lies past `end` is stale
        }
        let head = &self.buf[at..at + HEADER];
        Some(u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize)
    }

    /// The payload length the pending frame announced, once its header is in.
    pub(crate) fn pending_len(&self) -> Option<usize> {
        self.announced()
    }

    /// The payload length of the pending frame once it is buffered whole; an error if its header
    /// announced more than the maximum (the stream cannot be resynchronised after it).
    pub fn whole(&self) -> Result<Option<usize>> {
        match self.announced() {
            Some(len) if len > self.max as usize => Err(Error::FrameTooLarge {
                length: len as u64,
                max: self.max,
            }),
            Some(len) if self.buffered() >= HEADER + len => Ok(Some(len)),
            _ => Ok(None),
        }
    }

    /// The payload length of the pending frame while it is a large one that has begun to arrive
    /// and is still in the shared read buffer: only its first read has come (see `spare`), so
    /// taking it out with [`take_partial`](Self::take_partial) copies at most a chunk.
    pub(crate) fn large_begun(&self) -> Option<usize> {
        let len = self.announced()?;
        let partial = self.buffered() < HEADER + len;
        (partial && !self.owned && is_large(len) && len <= self.max as usize).then_some(len)
    }

    /// Moves the payload bytes buffered so far of a pending frame that has not come whole into
    /// `out`, for the rest to be read after them, and forgets the frame; how many were moved.
    /// Only for a frame found by [`large_begun`](Self::large_begun).
    pub(crate) fn take_partial(&mut self, out: &mut [u8]) -> usize {
        debug_assert!(self.large_begun().is_some());
        // Everything buffered is this frame's: it is not whole, and it was the next one.
        let part = &self.buf[self.start + HEADER..self.end];
        out[..part.len()].copy_from_slice(part);
        let moved = part.len();
        self.start = 0;
        self.end = 0;
        moved
    }

    /// Takes back the first `got` bytes of a pending frame of `len` bytes (after
    /// [`take_partial`](Self::take_partial)), as if they had been read here.
    pub(crate) fn restore_partial(&mut self, len: usize, got: &[u8]) {
        debug_assert!(self.buffered() == 0);
        self.own_room(HEADER + len);
        self.buf[..HEADER].copy_from_slice(&header(len));
        self.buf[HEADER..HEADER + got.len()].copy_from_slice(got);
        self.end = HEADER + got.len();
    }

    /// Whether a whole frame is buffered (and can be taken without reading).
    pub fn has_frame(&self) -> bool {
        matches!(self.announced(), Some(len) if self.buffered() >= HEADER + len)
    }

    /// Room to read into: enough for the pending frame when its length is known, a chunk otherwise.
    /// A large frame gets a buffer of exactly its size (see [`take_owned`](Self::take_owned)).
    pub fn spare(&mut self) -> &mut [u8] {
        if self.owned && self.buffered() == 0 {
            recycle(self.leave_own()); // its frame was taken with next_frame
        }
        let want = match self.announced() {
            Some(len) if len <= self.max as usize => {
                if is_large(len) && self.buffered() < HEADER + len {
                    self.own_room(HEADER + len);
                    self.offered = 0; // the frame's own reads say nothing of the chunk
                    let end = self.end;
                    return &mut self.buf[end..];
                }
                (HEADER + len).saturating_sub(self.buffered()).max(1)
            }
            _ => self.chunk,
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
            let chunk = self.chunk.min(self.max as usize + HEADER);
            self.buf.resize(self.end + want.max(chunk), 0);
        }
        let end = self.end;
        self.offered = self.buf.len() - end;
        &mut self.buf[end..]
    }

    /// Moves the pending frame, alone, into a buffer of its own of exactly `size` bytes, so that
    /// the reads go straight into what [`take_owned`](Self::take_owned) hands out. The shared
    /// read buffer is set aside meanwhile.
    fn own_room(&mut self, size: usize) {
        if self.owned {
            return; // the pending frame's already
        }
        if self.joined.is_none() {
            let useful = self.max as usize + HEADER;
            self.joined = Some(useful);
            with_spares(|spares| spares.join(useful));
        }
        let mut own = buffer_of(size);
        let have = self.buffered(); // all of it this frame's: it is not whole yet (see spare)
        own[..have].copy_from_slice(&self.buf[self.start..self.end]);
        self.shared = std::mem::replace(&mut self.buf, own);
        self.start = 0;
        self.end = have;
        self.owned = true;
    }

    /// Gives the large frame's own buffer up, and takes the shared read buffer back.
    fn leave_own(&mut self) -> Vec<u8> {
        self.owned = false;
        self.start = 0;
        self.end = 0;
        let shared = std::mem::take(&mut self.shared);
        std::mem::replace(&mut self.buf, shared)
    }

    /// The pending frame in a buffer of its own, if it is large and has arrived whole.
    pub fn take_owned(&mut self) -> Option<OwnedFrame> {
        let len = self.announced()?;
        if !self.owned || self.end < HEADER + len || len > self.max as usize {
            return None; // read in the shared way (next_frame), or not whole yet
        }
        Some(OwnedFrame(self.leave_own()))
    }

    /// Records that `n` bytes were read into [`spare`](Self::spare).
    pub fn commit(&mut self, n: usize) {
        self.end += n;
        debug_assert!(self.end <= self.buf.len());
        if n == self.offered && self.chunk < READ_CHUNK {
            self.chunk *= 2; // the socket held more than asked for
        }
    }

    /// The next whole frame, as a range to pass to [`frame`](Self::frame), or `None` if the rest
    /// has not arrived yet. A header announcing more than the maximum is an error, and the stream
    /// cannot be resynchronised after it.
    pub fn next_frame(&mut self) -> Result<Option<Range<usize>>> {
        let Some(len) = self.whole()? else {
            return Ok(None);
        };
        let payload = self.start + HEADER..self.start + HEADER + len;
        self.start = payload.end;
        Ok(Some(payload))
    }

    /// The payload bytes of a range returned by [`next_frame`](Self::next_frame).
    pub fn frame(&self, range: Range<usize>) -> &[u8] {
        &self.buf[range]
    }

    /// Shows the whole frames buffered, from the next one on, without taking them: `keep` gets
    /// each payload in turn and says whether it kept a copy (false: it had no room, and the
    /// showing stops there). The frames kept are lent: they stay buffered, first in line, until
    /// [`take_lent`](Self::take_lent) says how many of them the borrower handed out, so nothing
    /// is lost if it hands out fewer. Returns how many were lent. A frame over the maximum is
    /// not shown: taking it is an error.
    pub fn lend(&mut self, mut keep: impl FnMut(&[u8]) -> bool) -> usize {
        debug_assert_eq!(
            self.lent, 0,
            "frames lent again before the last were settled"
        );
        if self.owned {
            return 0; // a large frame's own buffer holds that frame alone, handed out whole
        }
        let mut at = self.start;
        while let Some(len) = self.announced_at(at) {
            let whole = len <= self.max as usize && self.end - at >= HEADER + len;
            if !whole || !keep(&self.buf[at + HEADER..at + HEADER + len]) {
                break;
            }
            at += HEADER + len;
            self.lent += 1;
        }
        self.lent
    }

    /// Frames lent and not yet settled.
    pub fn lent(&self) -> usize {
        self.lent
    }

    /// Settles the frames lent: the first `taken` of them were handed out, and are gone; the
    /// others are buffered as if they had never been lent.
    pub fn take_lent(&mut self, taken: usize) {
        for _ in 0..taken.min(self.lent) {
            // Whole when lent, whatever maximum has been set since.
            let len = self.announced().expect("a lent frame is buffered");
            self.start += HEADER + len;
        }
        self.lent = 0;
    }

    /// How far the pending frame got, for reporting a peer that closed in the middle of one.
    pub fn truncation(&self) -> Option<Error> {
        let (received, expected) = match self.cut {
            Some(cut) => cut,
            None if self.buffered() == 0 => return None,
            None => self.progress(),
        };
        Some(Error::Truncated { received, expected })
    }

    /// Bytes of the pending frame received, and announced (a header, until its header is in).
    fn progress(&self) -> (usize, usize) {
        let expected = self.announced().map_or(HEADER, |len| HEADER + len);
        (self.buffered(), expected)
    }

    /// Hands buffered bytes out as they are, for a reader that switches from frames to raw reads.
    pub fn take_raw(&mut self, out: &mut [u8]) -> usize {
        let n = out.len().min(self.buffered());
        out[..n].copy_from_slice(&self.buf[self.start..self.start + n]);
        self.start += n;
        if n > 0 && self.owned {
            // No longer the start of a frame: the frame's buffer becomes the read buffer.
            self.owned = false;
            self.shared = Vec::new();
        }
        n
    }
}

impl Drop for FrameReader {
    fn drop(&mut self) {
        if let Some(joined) = self.joined.take() {
            with_spares(|spares| spares.leave(joined));
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

    /// Feeds one whole frame of `len` bytes, in reads of at most 64 KiB.
    fn pass_frame(reader: &mut FrameReader, len: usize) {
        feed(reader, &header(len));
        let mut left = len;
        while left > 0 {
            let n = left.min(READ_CHUNK).min(reader.spare().len());
            feed(reader, &vec![7; n]);
            left -= n;
        }
    }

    #[test]
    fn a_large_frame_is_read_into_a_buffer_of_its_own_and_handed_out_whole() {
        let mut reader = FrameReader::new(64 << 20);
        let payload: Vec<u8> = (0..1 << 20).map(|i| (i % 251) as u8).collect();
        let mut wire = header(payload.len()).to_vec();
        wire.extend_from_slice(&payload);
        // In reads as a socket would give them: a chunk first, then what the reader asks for.
        let mut sent = 0;
        let mut reads = 0;
        while sent < wire.len() {
            assert!(reader.take_owned().is_none(), "not whole yet");
            let room = reader.spare().len();
            assert!(
                sent + room <= wire.len(),
                "a read never asks past the frame"
            );
            let n = room.min(300_000).min(wire.len() - sent);
            feed(&mut reader, &wire[sent..sent + n]);
            sent += n;
            reads += 1;
        }
        assert!(reads <= 6, "{reads} reads for 1 MiB");
        let frame = reader.take_owned().expect("a whole large frame");
        assert!(frame.payload() == &payload[..]);
        assert_eq!(reader.buffered(), 0);
        assert!(reader.next_frame().unwrap().is_none());
    }

    #[test]
    fn a_given_back_buffer_serves_the_next_large_frame() {
        let mut reader = FrameReader::new(64 << 20);
        pass_frame(&mut reader, 1 << 20);
        let first = reader.take_owned().unwrap().into_buffer();
        let memory = first.as_ptr();
        let size = first.capacity();
        recycle(first);
        assert_eq!(SPARES.with(|s| s.borrow().bytes), size, "kept");
        pass_frame(&mut reader, 1 << 20);
        assert_eq!(SPARES.with(|s| s.borrow().bytes), 0, "taken again");
        let second = reader.take_owned().unwrap().into_buffer();
        assert_eq!(
            second.as_ptr(),
            memory,
            "the same memory, not a fresh megabyte"
        );
    }

    #[test]
    fn spares_are_let_go_once_large_frames_stop_coming() {
        let mut reader = FrameReader::new(64 << 20);
        pass_frame(&mut reader, 1 << 20);
        recycle(reader.take_owned().unwrap().into_buffer());
        assert!(trim_spares(), "kept while large frames come");
        assert!(SPARES.with(|s| s.borrow().bytes) > 0);
        SPARES.with(|s| s.borrow_mut().last_taken = Some(Instant::now() - SPARE_IDLE));
        assert!(!trim_spares(), "nothing kept once they stopped");
        assert_eq!(SPARES.with(|s| s.borrow().bytes), 0);
    }

    #[test]
    fn past_the_limit_the_largest_spares_go_first() {
        let mut reader = FrameReader::new(u32::MAX);
        pass_frame(&mut reader, 1 << 20); // counts the reader in, and marks large frames busy
        recycle(reader.take_owned().unwrap().into_buffer());
        recycle(vec![0; 40 << 20]);
        let small = (SPARE_LIMIT - (42 << 20)) / (1 << 20);
        for _ in 0..small {
            recycle(vec![0; 1 << 20]);
        }
        let sizes = || SPARES.with(|s| s.borrow().bufs.iter().map(Vec::capacity).max());
        assert_eq!(sizes(), Some(40 << 20), "under the limit, all kept");
        recycle(vec![0; 2 << 20]);
        assert_eq!(sizes(), Some(2 << 20), "the 40 MiB spare made room");
        assert!(SPARES.with(|s| s.borrow().bytes) <= SPARE_LIMIT);
    }

    #[test]
    fn a_thread_that_takes_no_large_frames_keeps_no_buffers() {
        std::thread::spawn(|| {
            recycle(vec![0; 1 << 20]);
            let kept = SPARES.with(|s| s.borrow().bytes);
            assert_eq!(kept, 0);
        })
        .join()
        .unwrap();
    }

    #[test]
    fn frames_under_the_large_size_come_from_the_shared_buffer() {
        let mut reader = FrameReader::new(64 << 20);
        pass_frame(&mut reader, LARGE - HEADER - 1);
        assert!(reader.take_owned().is_none());
        let range = reader.next_frame().unwrap().unwrap();
        assert_eq!(range.len(), LARGE - HEADER - 1);
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

    /// The payloads `reader` lends, all it will.
    fn lend_all(reader: &mut FrameReader) -> Vec<Vec<u8>> {
        let mut lent = Vec::new();
        reader.lend(|payload| {
            lent.push(payload.to_vec());
            true
        });
        lent
    }

    #[test]
    fn frames_are_lent_up_to_the_first_one_not_whole_and_stay_buffered() {
        let mut reader = FrameReader::new(1 << 10);
        let mut wire = Vec::new();
        for word in ["a", "bb", "ccc"] {
            wire.extend_from_slice(&header(word.len()));
            wire.extend_from_slice(word.as_bytes());
        }
        wire.extend_from_slice(&header(9)[..3]); // the next header, cut short
        feed(&mut reader, &wire);
        assert_eq!(lend_all(&mut reader), [b"a" as &[u8], b"bb", b"ccc"]);
        assert_eq!(reader.lent(), 3);
        assert!(reader.has_frame(), "still buffered");
        reader.take_lent(5); // more than lent: only those
        assert_eq!(reader.lent(), 0);
        assert!(!reader.has_frame());
        assert_eq!(reader.buffered(), 3, "the cut header is next");
    }

    #[test]
    fn a_frame_over_the_maximum_is_not_lent_but_left_to_be_refused() {
        let mut reader = FrameReader::new(2);
        let mut wire = header(1).to_vec();
        wire.push(b'a');
        wire.extend_from_slice(&header(3));
        wire.extend_from_slice(b"xyz");
        feed(&mut reader, &wire);
        assert_eq!(lend_all(&mut reader), [b"a"]);
        reader.take_lent(1);
        assert!(reader.next_frame().is_err());
    }

    #[test]
    fn frames_given_back_come_out_again_in_order() {
        let mut reader = FrameReader::new(1 << 10);
        let mut wire = Vec::new();
        for word in ["one", "two"] {
            wire.extend_from_slice(&header(word.len()));
            wire.extend_from_slice(word.as_bytes());
        }
        feed(&mut reader, &wire);
        assert_eq!(lend_all(&mut reader).len(), 2);
        reader.take_lent(0);
        let first = reader.next_frame().unwrap().unwrap();
        assert_eq!(reader.frame(first), b"one");
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
