//! `frame_reader`: a byte stream fed to a [`FrameReader`] in reads of any size, as a socket hands
//! it over, and taken out as frames or raw bytes in any order, the maximum changing on the way.
//! Checked against the model: the same frames come out, a header over the maximum is an error,
//! and a stream that ends in the middle of a frame says how far it got.

use super::input::{frame, Input, MAXES};
use super::model::{Next, Stream};
use pyre_nexus_core::frame::{recycle, FrameReader, HEADER, LARGE};
use pyre_nexus_core::Error;

/// Read sizes: what a socket hands over at a time, at most.
const PIECES: [usize; 8] = [1, 2, 3, 5, 64, 4096, 65536, usize::MAX];

pub fn frame_reader(data: &[u8]) {
    let mut input = Input::new(data);
    let mut max = input.pick(&MAXES);
    let mut reader = FrameReader::new(max);
    let mut stream = Stream::default();
    while !input.is_empty() {
        match input.byte() % 6 {
            0 => {
                let n = usize::from(input.byte());
                let (bytes, piece) = (input.bytes(n), input.pick(&PIECES));
                feed(&mut reader, &mut stream, max, bytes, piece, &mut input);
            }
            1 => {
                let wire = frame(input.length(), input.byte());
                // Now and then cut short, as by a peer that died sending it.
                let keep = match input.byte() {
                    0..=191 => wire.len(),
                    cut => wire.len() * usize::from(cut - 191) / 65,
                };
                let piece = input.pick(&PIECES);
                feed(
                    &mut reader,
                    &mut stream,
                    max,
                    &wire[..keep],
                    piece,
                    &mut input,
                );
            }
            2 => while take_frame(&mut reader, &mut stream, max, &mut input) {},
            3 => {
                let mut out = vec![0; input.pick(&[0, 1, 3, 4, 5, 64, 4096, LARGE])];
                let n = reader.take_raw(&mut out);
                assert_eq!(n, out.len().min(stream.rest().len()), "raw bytes taken");
                assert_eq!(&out[..n], &stream.rest()[..n], "raw bytes are the stream's");
                stream.take(n);
            }
            4 => {
                max = input.pick(&MAXES);
                reader.set_max(max);
                assert_eq!(reader.max(), max);
            }
            _ => {
                take_frame(&mut reader, &mut stream, max, &mut input);
            }
        }
        assert_eq!(reader.buffered(), stream.rest().len(), "bytes buffered");
        // Whether a frame is buffered whole, allowed or not (a channel's reader is then due).
        let whole = matches!(stream.next(u32::MAX), Next::Whole(_));
        assert_eq!(
            reader.has_frame(),
            whole,
            "whether a whole frame is buffered"
        );
    }
    // The peer closes: the frames it sent whole come out, then what is left is reported.
    while take_frame(&mut reader, &mut stream, max, &mut input) {}
    let truncation = reader.truncation().map(|error| match error {
        Error::Truncated { received, expected } => (received, expected),
        other => panic!("a stream cut short is reported as {other:?}"),
    });
    assert_eq!(
        truncation,
        stream.truncation(),
        "(received, expected) at the end"
    );
}

/// Feeds `bytes` in reads of at most `piece` (twice that after 8 reads, and so on: a large
/// frame in reads of a byte would take most of the fuzzer's time and find nothing more), taking
/// frames out as they come whole, as a channel does: it reads only while no whole frame waits,
/// and not at all past a header over the maximum (the rest then stays in the socket, unread).
fn feed(
    reader: &mut FrameReader,
    stream: &mut Stream,
    max: u32,
    mut bytes: &[u8],
    piece: usize,
    input: &mut Input,
) {
    for reads in 0.. {
        if bytes.is_empty() {
            return;
        }
        match stream.next(max) {
            Next::Whole(_) => {
                take_frame(reader, stream, max, input);
            }
            Next::TooLarge { .. } => {
                check_next(reader, stream, max);
                return;
            }
            Next::Partial { .. } | Next::Nothing => {
                let spare = reader.spare();
                assert!(
                    !spare.is_empty(),
                    "no room to read the rest of a frame into"
                );
                let size = piece.saturating_mul(1 << (reads / 8).min(24));
                let n = spare.len().min(size).min(bytes.len());
                spare[..n].copy_from_slice(&bytes[..n]);
                reader.commit(n);
                stream.extend(&bytes[..n]);
                bytes = &bytes[n..];
            }
        }
    }
}

/// Checks what the reader says comes next against the model.
fn check_next(reader: &FrameReader, stream: &Stream, max: u32) {
    match (stream.next(max), reader.whole()) {
        (Next::Whole(range), Ok(Some(len))) => assert_eq!(len, range.len(), "payload length"),
        (Next::TooLarge { length }, Err(Error::FrameTooLarge { length: l, max: m })) => {
            assert_eq!(
                (l, m),
                (length as u64, max),
                "the frame refused, and the maximum"
            );
        }
        (Next::Partial { .. } | Next::Nothing, Ok(None)) => {}
        (expected, got) => panic!("expected {expected:?}, the reader says {got:?}"),
    }
}

/// Takes the next frame out if one is whole, the way a channel does or the other; whether it did.
fn take_frame(reader: &mut FrameReader, stream: &mut Stream, max: u32, input: &mut Input) -> bool {
    check_next(reader, stream, max);
    let Next::Whole(range) = stream.next(max) else {
        return false;
    };
    let len = range.len();
    let how = input.byte();
    // A channel asks for the frame in a buffer of its own first; a reader may go straight to it.
    let owned = if how & 1 == 0 {
        reader.take_owned()
    } else {
        None
    };
    match owned {
        Some(owned) => {
            assert!(
                HEADER + len >= LARGE,
                "a frame of {len} bytes in a buffer of its own"
            );
            assert!(
                owned.payload() == stream.payload(range),
                "the payload of a frame of {len} bytes"
            );
            // Given back, its buffer serves a later large frame, its old bytes in it.
            if how & 2 == 0 {
                recycle(owned.into_buffer());
            }
        }
        None => {
            let taken = reader.next_frame().expect("whole").expect("a whole frame");
            assert!(
                reader.frame(taken) == stream.payload(range),
                "the payload of a frame of {len} bytes"
            );
        }
    }
    stream.take(HEADER + len);
    true
}
