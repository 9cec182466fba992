//! The frame reader through its public API, fed as a socket would feed it: frames in pieces of
//! any size, the end of the stream between frames or in the middle of one, large frames in
//! buffers of their own and the spares they leave.

use pyre_nexus_core::frame::{
    header, recycle, spare_bytes, trim_spares, FrameReader, HEADER, LARGE,
};
use pyre_nexus_core::Error;

/// A small deterministic generator (xorshift64*): a failing seed replays the same case.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number from 0 to `n - 1`.
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// What the reader hands out, in order, from `wire` read in pieces the generator picks (never
/// more than the reader offers room for, as a socket read).
fn read_all(reader: &mut FrameReader, wire: &[u8], rng: &mut Rng) -> Vec<Vec<u8>> {
    let mut got = Vec::new();
    let mut at = 0;
    while at < wire.len() {
        let spare = reader.spare();
        let most = spare.len().min(wire.len() - at);
        let n = match rng.below(4) {
            0 => 1,
            1 => most,
            _ => 1 + rng.below(most),
        }
        .min(most);
        spare[..n].copy_from_slice(&wire[at..at + n]);
        reader.commit(n);
        at += n;
        loop {
            if let Some(frame) = reader.take_owned() {
                got.push(frame.payload().to_vec());
                recycle(frame.into_buffer());
            } else if let Some(range) = reader.next_frame().unwrap() {
                got.push(reader.frame(range).to_vec());
            } else {
                break;
            }
        }
    }
    got
}

#[test]
fn frames_of_any_size_come_out_whole_and_in_order_however_the_stream_is_cut() {
    for seed in 1..=40u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let frames: Vec<Vec<u8>> = (0..1 + rng.below(12))
            .map(|i| {
                let len = match rng.below(5) {
                    0 => 0,
                    1 => LARGE - HEADER + rng.below(3 * LARGE), // large
                    2 => LARGE - HEADER - 1,                    // the largest small one
                    _ => rng.below(70_000),
                };
                (0..len).map(|j| (i * 31 + j * 7) as u8).collect()
            })
            .collect();
        let wire: Vec<u8> = frames
            .iter()
            .flat_map(|f| header(f.len()).into_iter().chain(f.iter().copied()))
            .collect();
        let mut reader = FrameReader::new(1 << 20);
        let got = read_all(&mut reader, &wire, &mut rng);
        assert!(got == frames, "seed {seed}: the frames differ");
        assert_eq!(reader.buffered(), 0, "seed {seed}");
        assert!(
            reader.finish().is_none(),
            "seed {seed}: ended between frames"
        );
        assert_eq!(reader.held_memory(), 0, "seed {seed}");
    }
}

#[test]
fn the_end_between_frames_lets_the_buffers_go() {
    let mut reader = FrameReader::new(1024);
    let mut rng = Rng(7);
    let got = read_all(
        &mut reader,
        &[header(2).as_slice(), b"hi"].concat(),
        &mut rng,
    );
    assert_eq!(got, [b"hi".to_vec()]);
    assert!(reader.held_memory() > 0);
    assert!(reader.finish().is_none());
    assert_eq!(reader.held_memory(), 0);
}

#[test]
fn the_end_with_a_whole_frame_left_keeps_it_for_the_taking() {
    let mut reader = FrameReader::new(1024);
    let wire = [header(3).as_slice(), b"abc"].concat();
    reader.spare()[..wire.len()].copy_from_slice(&wire);
    reader.commit(wire.len());
    assert!(reader.finish().is_none());
    let range = reader.next_frame().unwrap().unwrap();
    assert_eq!(reader.frame(range), b"abc");
    assert!(reader.finish().is_none());
    assert_eq!(reader.held_memory(), 0);
}

#[test]
fn the_end_in_the_middle_of_a_frame_is_reported_every_time_and_frees_it() {
    let mut reader = FrameReader::new(1 << 20);
    let announced = 2 * LARGE;
    let wire = [header(announced).to_vec(), vec![1; 5000]].concat();
    let mut at = 0;
    while at < wire.len() {
        let spare = reader.spare();
        let n = spare.len().min(wire.len() - at);
        spare[..n].copy_from_slice(&wire[at..at + n]);
        reader.commit(n);
        at += n;
    }
    reader.spare(); // the frame is large: its own buffer is made for the rest
    assert!(reader.held_memory() >= HEADER + announced);
    for _ in 0..2 {
        match reader.finish() {
            Some(Error::Truncated { received, expected }) => {
                assert_eq!((received, expected), (HEADER + 5000, HEADER + announced))
            }
            other => panic!("expected a truncation, got {other:?}"),
        }
    }
    assert!(reader.truncation().is_some());
    assert_eq!(reader.held_memory(), 0);
    assert_eq!(spare_bytes(), 0, "a frame cut short is not kept as a spare");
}

#[test]
fn a_header_cut_short_is_reported_as_such() {
    let mut reader = FrameReader::new(1024);
    reader.spare()[..2].copy_from_slice(&[1, 0]);
    reader.commit(2);
    match reader.finish() {
        Some(Error::Truncated { received, expected }) => assert_eq!((received, expected), (2, 4)),
        other => panic!("expected a truncation, got {other:?}"),
    }
}

#[test]
fn a_quiet_reader_holds_a_few_kilobytes_and_a_busy_one_reads_more_at_once() {
    let mut reader = FrameReader::new(1 << 20);
    let first = reader.spare().len();
    assert!(first <= 4096, "a first read of {first} bytes");
    // Small frames, each read whole: the buffer stays as it was.
    let mut rng = Rng(3);
    for _ in 0..100 {
        let got = read_all(
            &mut reader,
            &[header(5).as_slice(), b"small"].concat(),
            &mut rng,
        );
        assert_eq!(got, [b"small".to_vec()]);
    }
    assert!(reader.held_memory() <= 8192, "{}", reader.held_memory());
    // Reads that fill all the room offered: the socket holds more, so later reads ask for more.
    let mut filled = Vec::new();
    for _ in 0..6 {
        let room = reader.spare().len();
        filled.push(room);
        let payload = room - HEADER;
        let wire = [header(payload).to_vec(), vec![9; payload]].concat();
        reader.spare()[..room].copy_from_slice(&wire);
        reader.commit(room);
        assert_eq!(reader.next_frame().unwrap().map(|r| r.len()), Some(payload));
    }
    assert!(
        filled.windows(2).all(|w| w[1] >= w[0]) && *filled.last().unwrap() >= 64 << 10,
        "room offered: {filled:?}"
    );
    assert!(
        *filled.last().unwrap() < LARGE,
        "and never more than a chunk: {filled:?}"
    );
}

/// Passes one large frame of `len` payload bytes through `reader`, and gives its buffer back.
fn pass_large(reader: &mut FrameReader, len: usize) {
    let wire = [header(len).to_vec(), vec![5; len]].concat();
    let mut rng = Rng(len as u64);
    let got = read_all(reader, &wire, &mut rng);
    assert_eq!(got.len(), 1);
}

#[test]
fn spares_are_kept_only_for_open_readers_of_large_frames() {
    // No reader has taken a large frame: a buffer given back is not kept.
    recycle(vec![0; 2 * LARGE]);
    assert_eq!(spare_bytes(), 0);
    let mut first = FrameReader::new(64 << 20);
    let mut second = FrameReader::new(64 << 20);
    pass_large(&mut first, LARGE);
    pass_large(&mut second, LARGE);
    assert!(spare_bytes() >= LARGE, "one buffer, served to both in turn");
    first.release();
    first.set_max(32 << 20); // released, it does not count again until it takes a large frame
    assert!(spare_bytes() > 0, "the second reader may still use them");
    assert!(trim_spares(), "large frames came lately");
    drop(second);
    assert_eq!(spare_bytes(), 0, "the last reader of large frames is gone");
}

#[test]
fn spares_no_open_reader_could_use_are_not_kept() {
    let mut small = FrameReader::new((2 * LARGE) as u32);
    pass_large(&mut small, LARGE);
    assert!(spare_bytes() > 0);
    let mut big = FrameReader::new(64 << 20);
    pass_large(&mut big, 8 * LARGE);
    assert!(spare_bytes() >= 8 * LARGE, "kept for the big reader");
    drop(big);
    assert!(
        spare_bytes() > 0 && spare_bytes() < 8 * LARGE,
        "only what the small reader could use: {}",
        spare_bytes()
    );
    // Lowering a reader's maximum lets go of spares above it too.
    small.set_max((LARGE / 2) as u32);
    assert_eq!(spare_bytes(), 0);
}

#[test]
fn a_spare_much_larger_than_a_frame_is_left_for_a_frame_its_size() {
    let mut reader = FrameReader::new(64 << 20);
    pass_large(&mut reader, 16 * LARGE);
    let kept = spare_bytes();
    assert!(kept >= 16 * LARGE);
    pass_large(&mut reader, LARGE);
    assert_eq!(
        spare_bytes(),
        kept + HEADER + LARGE,
        "a buffer of its own size was made for a frame a sixteenth the spare's size"
    );
    let before = spare_bytes();
    pass_large(&mut reader, 12 * LARGE);
    assert_eq!(
        spare_bytes(),
        before,
        "the large spare served a frame of more than half its size, and came back"
    );
}
