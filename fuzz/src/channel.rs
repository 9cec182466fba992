//! `channel_frames`: a peer writes arbitrary bytes (frames, pieces of frames, garbage) into a
//! socket pair, and the channel at the other end takes them out with `recv_frame`,
//! `recv_frame_into` and raw `read`s in any order, the maximum changing on the way; then the
//! peer closes. Checked against the model: the same frames and bytes come out, a header over
//! the maximum or a frame larger than the buffer given is an error, and a peer that closes in
//! the middle of a frame is reported with how far it got. Once reported, that frame is gone:
//! every receive reports it again, and raw reads find the end.

use super::input::{frame, Input, MAXES};
use super::model::{Next, Stream};
use pyre_nexus_core::frame::{recycle, HEADER, LARGE};
use pyre_nexus_core::{adopt, Channel, Error, ReadOutcome, Recv, RecvInto};
use std::io::{ErrorKind, Write};
use std::mem::replace;
use std::os::fd::IntoRawFd;
use std::os::unix::net::UnixStream;

/// Room given to `recv_frame_into` (at most `ROOM`): none, tiny, either side of [`LARGE`]…
const ROOMS: [usize; 8] = [0, 1, 4, 255, 4096, LARGE - HEADER - 1, LARGE, ROOM];
const ROOM: usize = 4 * LARGE;

/// The peer: the writing end, what it has yet to write, and the model of what it wrote.
struct Peer {
    socket: Option<UnixStream>,
    backlog: Vec<u8>,
    stream: Stream,
    /// A receive said Pending though the peer had closed (see `recv_into`): the next must not.
    late: bool,
    /// The frame the peer cut short, (received, expected), once a receive has reported it: the
    /// channel let it go, bytes and all.
    cut: Option<(usize, usize)>,
}

impl Peer {
    /// A receive reported the frame cut short: what is left of it is gone.
    fn cut_off(&mut self, error: &Error) {
        if let Error::Truncated { received, expected } = *error {
            self.cut = Some((received, expected));
            let rest = self.stream.rest().len();
            self.stream.take(rest);
        }
    }

    /// Checks a receive's outcome once the frame cut short has been reported: the same error.
    fn check_cut(&self, got: Result<(), &Error>) -> bool {
        let Some((received, expected)) = self.cut else {
            return false;
        };
        match got {
            Err(Error::Truncated {
                received: r,
                expected: e,
            }) => assert_eq!(
                (*r, *e),
                (received, expected),
                "the frame cut short, reported again"
            ),
            other => panic!("expected the frame cut short to be reported again, got {other:?}"),
        }
        true
    }
}

impl Peer {
    fn send(&mut self, bytes: &[u8]) {
        if self.socket.is_some() {
            self.backlog.extend_from_slice(bytes);
            self.push();
        }
    }

    /// Writes what the socket takes now; whether it took anything.
    fn push(&mut self) -> bool {
        let Some(socket) = &mut self.socket else {
            return false;
        };
        let mut pushed = 0;
        while pushed < self.backlog.len() {
            match socket.write(&self.backlog[pushed..]) {
                Ok(n) => pushed += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => panic!("the peer's write failed: {e}"),
            }
        }
        self.stream.extend(&self.backlog[..pushed]);
        self.backlog.drain(..pushed);
        pushed > 0
    }

    /// Closes the writing end; what the socket did not take is lost, as when a peer dies.
    fn close(&mut self) {
        self.socket = None;
        self.backlog.clear();
    }
}

pub fn channel_frames(data: &[u8]) {
    let mut input = Input::new(data);
    let (writer, reader) = UnixStream::pair().expect("socketpair");
    writer.set_nonblocking(true).expect("non-blocking");
    let mut channel = adopt(reader.into_raw_fd()).expect("adopt");
    let mut peer = Peer {
        socket: Some(writer),
        backlog: Vec::new(),
        stream: Stream::default(),
        late: false,
        cut: None,
    };
    let mut max = pyre_nexus_core::frame::DEFAULT_MAX_FRAME;
    let mut out = vec![0; ROOM];
    while !input.is_empty() {
        match input.byte() % 8 {
            0 => {
                let n = usize::from(input.byte());
                peer.send(input.bytes(n));
            }
            1 => {
                let wire = frame(input.length(), input.byte());
                let keep = match input.byte() {
                    0..=191 => wire.len(),
                    cut => wire.len() * usize::from(cut - 191) / 65,
                };
                peer.send(&wire[..keep]);
            }
            2 | 3 => {
                let recycling = input.byte() & 1 == 0;
                recv(&mut channel, &mut peer, max, recycling);
            }
            4 => {
                let room = input.pick(&ROOMS);
                recv_into(&mut channel, &mut peer, max, &mut out[..room]);
            }
            5 => read(
                &mut channel,
                &mut peer,
                input.pick(&[0, 1, 3, 4, 5, 4096, LARGE]),
            ),
            6 => {
                max = input.pick(&MAXES);
                channel.set_max_frame(max);
            }
            _ => peer.close(),
        }
        peer.push();
    }
    // The peer sends what it has left, then closes: every frame comes out, then the end (an end
    // of file, or the frame it cut short), and it stays the end. Each round takes a frame or
    // writes some bytes, or ends the loop.
    loop {
        let took = recv(&mut channel, &mut peer, max, true);
        if !(peer.push() || took) {
            break;
        }
    }
    peer.close();
    while recv(&mut channel, &mut peer, max, true) {}
    recv(&mut channel, &mut peer, max, true);
}

/// `recv_frame`, checked against the model; whether it took a frame.
fn recv(channel: &mut Channel, peer: &mut Peer, max: u32, recycling: bool) -> bool {
    peer.late = false;
    let got = channel.recv_frame();
    if peer.check_cut(got.as_ref().map(|_| ())) {
        return false;
    }
    let (stream, closed) = (&mut peer.stream, peer.socket.is_none());
    let expected = stream.next(max);
    match (expected, got) {
        (Next::Whole(range), Ok(Recv::Frame(payload))) => {
            assert!(
                payload == stream.payload(range.clone()),
                "the payload of a frame of {} bytes",
                range.len()
            );
            stream.take(HEADER + range.len());
            true
        }
        (Next::Whole(range), Ok(Recv::Owned(owned))) => {
            let len = range.len();
            assert!(
                HEADER + len >= LARGE,
                "a frame of {len} bytes in a buffer of its own"
            );
            assert!(
                owned.payload() == stream.payload(range),
                "the payload of a frame of {len} bytes"
            );
            if recycling {
                recycle(owned.into_buffer()); // as the binding does once its Buffer is collected
            }
            stream.take(HEADER + len);
            true
        }
        (next, Err(error)) => {
            check_error(next, &error, max, closed, None);
            peer.cut_off(&error);
            false
        }
        (Next::Nothing, Ok(Recv::Eof)) if closed => false,
        (Next::Nothing | Next::Partial { .. }, Ok(Recv::Pending)) if !closed => false,
        (expected, Ok(got)) => panic!(
            "expected {expected:?} (peer closed: {closed}), recv_frame gave {}",
            show(&got)
        ),
    }
}

/// `recv_frame_into`, checked against the model.
fn recv_into(channel: &mut Channel, peer: &mut Peer, max: u32, out: &mut [u8]) {
    let late = replace(&mut peer.late, false);
    let room = out.len();
    let got = channel.recv_frame_into(out);
    if peer.check_cut(got.as_ref().map(|_| ())) {
        return;
    }
    let (stream, closed) = (&mut peer.stream, peer.socket.is_none());
    let expected = stream.next(max);
    match (expected, got) {
        (Next::Whole(range), Ok(RecvInto::Copied(len))) if range.len() <= room => {
            assert_eq!(len, range.len(), "payload length");
            assert!(out[..len] == *stream.payload(range), "the payload of a frame of {len} bytes");
            stream.take(HEADER + len);
        }
        (next, Err(error)) => {
            check_error(next, &error, max, closed, Some(room));
            peer.cut_off(&error);
        }
        (Next::Nothing, Ok(RecvInto::Eof)) if closed => {}
        // Reading the rest of a large frame straight into `out`, a short read is taken to empty
        // the socket, and a peer's close is found by the next receive (a watched channel's
        // handler is called again: the close leaves it read-ready). Once, not twice in a row.
        (Next::Nothing | Next::Partial { .. }, Ok(RecvInto::Pending)) if !closed || !late => {
            peer.late = closed;
            // A frame whose header is in must have been refused if it cannot fit.
            if let Some((_, expected)) = stream.truncation() {
                assert!(expected == HEADER || expected - HEADER <= room, "a frame of {expected} bytes with its header, for {room} bytes of room");
            }
        }
        (expected, got) => panic!("expected {expected:?} (peer closed: {closed}, room {room}), recv_frame_into gave {got:?}"),
    }
}

/// The error a receive must give, if any, for what comes next: a header over the maximum, a
/// frame that cannot fit the `room` given, or a frame cut short by a peer that closed.
fn check_error(next: Next, error: &Error, max: u32, closed: bool, room: Option<usize>) {
    let announced = match &next {
        Next::Whole(range) => Some(range.len()),
        Next::Partial { expected, .. } if *expected > HEADER => Some(expected - HEADER),
        _ => None,
    };
    match (next, error) {
        (Next::TooLarge { length }, Error::FrameTooLarge { length: l, max: m }) => {
            assert_eq!(
                (*l, *m),
                (length as u64, max),
                "the frame refused, and the maximum"
            );
        }
        (_, Error::BufferTooSmall { needed, room: r }) if room.is_some() => {
            assert_eq!(
                Some(*needed),
                announced.filter(|&len| len > *r),
                "the frame too large for the room"
            );
            assert_eq!(Some(*r), room, "the room");
        }
        (
            Next::Partial { received, expected },
            Error::Truncated {
                received: r,
                expected: e,
            },
        ) if closed => {
            assert_eq!(
                (*r, *e),
                (received, expected),
                "(received, expected) of a frame cut short"
            );
        }
        (next, error) => panic!(
            "expected {next:?} (peer closed: {closed}, room {room:?}), got the error {error:?}"
        ),
    }
}

/// A raw `read` of up to `n` bytes, checked against the model: never more than was sent, and
/// the very bytes, whatever the frames before took.
fn read(channel: &mut Channel, peer: &mut Peer, n: usize) {
    let (stream, closed) = (&mut peer.stream, peer.socket.is_none());
    let mut buf = vec![0; n];
    let rest = stream.rest().len();
    match channel.read(&mut buf) {
        Ok(ReadOutcome::Data(got)) => {
            assert!(
                got <= n.min(rest) && (got > 0 || n == 0),
                "read {got} of {n} bytes asked, {rest} there"
            );
            assert!(
                buf[..got] == stream.rest()[..got],
                "the bytes read are the stream's"
            );
            stream.take(got);
        }
        Ok(ReadOutcome::WouldBlock) => assert!(
            n > 0 && rest == 0 && !closed,
            "would block with {rest} bytes there"
        ),
        Ok(ReadOutcome::Eof) => assert!(
            n > 0 && rest == 0 && closed,
            "an end of file with {rest} bytes there"
        ),
        Err(error) => panic!("a read failed: {error:?}"),
    }
}

fn show(got: &Recv) -> String {
    match got {
        Recv::Frame(payload) => format!("a frame of {} bytes", payload.len()),
        Recv::Owned(owned) => format!("an owned frame of {} bytes", owned.payload().len()),
        Recv::Pending => "Pending".into(),
        Recv::Eof => "Eof".into(),
    }
}
