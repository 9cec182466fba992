//! Channels as a user holds them: opening, reading to the end, mixing raw reads and frames,
//! the output bound, closing and aborting, and the memory and descriptors a channel lets go of.

use pyre_nexus_core::frame::{header, recycle, spare_bytes, HEADER, LARGE};
use pyre_nexus_core::{
    adopt, connect, pipe, port, Address, Channel, Dispatcher, Error, ReadOutcome, Readiness, Recv,
    RecvInto,
};
use std::os::fd::{AsRawFd, IntoRawFd, RawFd};

/// The identity of the file `fd` names (device and inode), or `None` if it is not open: a number
/// alone could be reused by a test running on another thread.
fn identity(fd: RawFd) -> Option<(u64, u64)> {
    // SAFETY: all-zero bytes are a valid `stat`, which fstat fills in.
    let mut stat: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fstat writes into the struct we own; a closed descriptor is an error, not UB.
    (unsafe { libc::fstat(fd, &mut stat) } == 0).then_some((stat.st_dev, stat.st_ino))
}

/// Whether the socket `fd` was (as `before` says) is closed now.
fn is_closed(fd: RawFd, before: Option<(u64, u64)>) -> bool {
    assert!(before.is_some(), "the descriptor was open");
    identity(fd) != before
}

/// Tries `f` until it has an answer other than "pending" (the bytes are in the socket already,
/// but a read takes what one call gives).
fn settled<T>(mut f: impl FnMut() -> Option<T>) -> T {
    for _ in 0..1000 {
        if let Some(t) = f() {
            return t;
        }
    }
    panic!("no answer after 1000 tries");
}

fn next_frame(channel: &mut Channel) -> Result<Vec<u8>, Error> {
    settled(|| match channel.recv_frame() {
        Ok(Recv::Frame(f)) => Some(Ok(f.to_vec())),
        Ok(Recv::Owned(f)) => Some(Ok(f.payload().to_vec())),
        Ok(Recv::Pending) => None,
        Ok(Recv::Eof) => panic!("an end of file where a frame was expected"),
        Err(e) => Some(Err(e)),
    })
}

#[test]
fn frames_sent_before_a_clean_close_arrive_then_the_end() {
    let (mut a, mut b) = pipe().unwrap();
    a.send_frame(b"one").unwrap();
    a.send_frame(b"").unwrap();
    a.close();
    assert_eq!(next_frame(&mut b).unwrap(), b"one");
    assert!(!b.at_end(), "the end of file has not been read yet");
    assert_eq!(next_frame(&mut b).unwrap(), b"");
    assert_eq!(b.recv_frame().unwrap(), Recv::Eof);
    assert!(b.at_end());
    assert_eq!(b.recv_frame().unwrap(), Recv::Eof, "and it stays so");
    assert_eq!(
        b.held_memory(),
        0,
        "nothing more will come: the read buffer is let go"
    );
}

#[test]
fn a_peer_that_closes_mid_frame_is_an_error_that_stays_and_leaves_nothing_behind() {
    let (mut a, mut b) = pipe().unwrap();
    a.write(&header(10)).unwrap();
    a.write(b"abc").unwrap();
    a.close();
    // Before a receive finds the frame cut short, a raw read may still take its bytes: here
    // the header, which leaves three bytes that are a header cut short.
    let mut raw = [0u8; HEADER];
    assert_eq!(b.read(&mut raw).unwrap(), ReadOutcome::Data(HEADER));
    for _ in 0..2 {
        match b.recv_frame() {
            Err(Error::Truncated { received, expected }) => {
                assert_eq!((received, expected), (3, HEADER))
            }
            other => panic!("expected a truncation, got {other:?}"),
        }
    }
    assert!(b.at_end());
    assert_eq!(b.held_memory(), 0);
    assert_eq!(
        b.read(&mut raw).unwrap(),
        ReadOutcome::Eof,
        "what was left of the frame went with the error"
    );
}

#[test]
fn a_large_frame_cut_short_gives_its_memory_back_at_once_not_to_the_spares() {
    let (mut a, mut b) = pipe().unwrap();
    let announced = 8 * LARGE;
    a.write(&header(announced)).unwrap();
    // Pieces the socket takes whole, each read by the receiver into the frame's own buffer.
    for _ in 0..4 {
        assert_eq!(a.write(&[7; 1000]).unwrap(), 1000);
        assert_eq!(b.recv_frame().unwrap(), Recv::Pending);
    }
    assert!(
        b.held_memory() >= HEADER + announced,
        "the frame's own buffer"
    );
    a.close();
    match b.recv_frame() {
        Err(Error::Truncated { received, expected }) => {
            assert_eq!((received, expected), (HEADER + 4000, HEADER + announced))
        }
        other => panic!("expected a truncation, got {other:?}"),
    }
    assert_eq!(b.held_memory(), 0);
    assert_eq!(spare_bytes(), 0, "a peer's broken frame is no spare");
    let mut raw = [0u8; 16];
    assert_eq!(
        b.read(&mut raw).unwrap(),
        ReadOutcome::Eof,
        "its bytes went with it"
    );
}

#[test]
fn raw_reads_and_frames_mix_without_losing_a_byte() {
    let (mut a, mut b) = pipe().unwrap();
    a.send_frame(b"framed").unwrap();
    a.write(b"raw bytes").unwrap();
    a.send_frame(b"framed again").unwrap();
    // The first receive pulls in everything the socket holds.
    assert_eq!(next_frame(&mut b).unwrap(), b"framed");
    let mut raw = [0u8; 9];
    assert_eq!(b.read(&mut raw).unwrap(), ReadOutcome::Data(9));
    assert_eq!(&raw, b"raw bytes");
    assert_eq!(next_frame(&mut b).unwrap(), b"framed again");
    assert_eq!(b.read(&mut raw).unwrap(), ReadOutcome::WouldBlock);
    a.close();
    assert_eq!(b.read(&mut raw).unwrap(), ReadOutcome::Eof);
    assert_eq!(b.held_memory(), 0);
}

#[test]
fn close_lets_go_of_the_buffers_and_the_descriptor() {
    let (mut a, mut b) = pipe().unwrap();
    a.send_frame(b"hello").unwrap();
    assert_eq!(next_frame(&mut b).unwrap(), b"hello");
    assert!(b.held_memory() > 0, "a read buffer");
    let fd = b.fd().unwrap();
    let before = identity(fd);
    b.close();
    assert_eq!(b.held_memory(), 0);
    assert!(is_closed(fd, before));
    assert_eq!(b.kind(), "closed");
    assert!(matches!(b.recv_frame(), Err(Error::ChannelClosed)));
    assert!(matches!(b.send_frame(b"x"), Err(Error::ChannelClosed)));
    b.close(); // twice is harmless
}

/// Fills `a`'s output buffer, to its bound: its peer does not read. The bytes it holds.
fn stuff(a: &mut Channel) -> usize {
    let chunk = vec![1u8; 64 << 10];
    for _ in 0..1000 {
        if a.write(&chunk).unwrap() < chunk.len() {
            return a.pending_output();
        }
    }
    panic!("the socket took 64 MiB without being read");
}

#[test]
fn the_output_bound_caps_what_a_channel_buffers() {
    let (mut a, _b) = pipe().unwrap();
    a.set_output_bound(300_000);
    assert_eq!(stuff(&mut a), 300_000, "up to the bound, and no further");
    assert_eq!(a.write(b"more").unwrap(), 0);
    match a.send_frame(b"more") {
        Err(Error::ChannelFull { pending, bound }) => {
            assert_eq!((pending, bound), (300_000, 300_000))
        }
        other => panic!("expected the channel to be full, got {other:?}"),
    }
}

#[test]
fn an_unwatched_channel_closed_with_output_pending_drops_it_and_closes_at_once() {
    let (mut a, _b) = pipe().unwrap();
    assert!(stuff(&mut a) > 0);
    let fd = a.fd().unwrap();
    let before = identity(fd);
    a.close();
    assert!(is_closed(fd, before));
    assert_eq!((a.pending_output(), a.held_memory()), (0, 0));
}

#[test]
fn abort_ends_a_watched_channel_that_was_flushing_at_once() {
    let (a, _b) = pipe().unwrap();
    let a = a.shared();
    let mut dispatcher = Dispatcher::<()>::new().unwrap();
    dispatcher.when(&a, Readiness::Read, ()).unwrap();
    let mut channel = a.borrow_mut();
    let pending = stuff(&mut channel);
    let fd = channel.fd().unwrap();
    let before = identity(fd);
    channel.close();
    assert!(channel.is_closed());
    assert!(
        !is_closed(fd, before),
        "watched, it waits to deliver its output"
    );
    assert_eq!(channel.pending_output(), pending);
    channel.abort();
    assert!(is_closed(fd, before));
    assert_eq!((channel.pending_output(), channel.held_memory()), (0, 0));
}

#[test]
fn a_listener_accepts_connections_with_their_peer_address() {
    let mut listener = port(&"ip4:127.0.0.1:0".parse::<Address>().unwrap()).unwrap();
    assert_eq!(listener.kind(), "listener");
    assert!(listener.accept().unwrap().is_none(), "nobody waits yet");
    let address = listener.local_address().unwrap().clone();
    let mut client = connect(&address).unwrap();
    let mut server = settled(|| listener.accept().unwrap());
    assert_eq!(server.kind(), "tcp");
    assert_eq!(server.local_address(), Some(&address));
    let peer = server.peer_address().unwrap().to_string();
    assert!(peer.starts_with("ip4:127.0.0.1:"), "{peer}");
    // The connection may still be on its way: the frame waits in the output until it is made.
    client.send_frame(b"over tcp").unwrap();
    assert_eq!(next_frame(&mut server).unwrap(), b"over tcp");
    // A listener neither reads nor sends; a stream accepts nothing.
    assert!(matches!(
        listener.read(&mut [0; 4]),
        Err(Error::WrongKind {
            op: "read",
            kind: "listener"
        })
    ));
    assert!(matches!(
        listener.send_frame(b"x"),
        Err(Error::WrongKind {
            op: "send",
            kind: "listener"
        })
    ));
    assert!(matches!(
        server.accept(),
        Err(Error::WrongKind {
            op: "accept",
            kind: "tcp"
        })
    ));
}

#[test]
fn a_unix_listener_removes_its_path_when_closed() {
    let dir = std::env::temp_dir().join(format!("pyre-nexus-channels-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("listener.sock");
    let _ = std::fs::remove_file(&path);
    let address: Address = format!("unix:{}", path.display()).parse().unwrap();
    let mut listener = port(&address).unwrap();
    let mut client = connect(&address).unwrap();
    let mut server = settled(|| listener.accept().unwrap());
    client.send_frame(b"local").unwrap();
    assert_eq!(next_frame(&mut server).unwrap(), b"local");
    assert!(path.exists());
    listener.close();
    assert!(!path.exists());
    let _ = std::fs::remove_dir(&dir);
}

#[test]
fn adopt_takes_over_a_socket_and_refuses_anything_else() {
    let (ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
    let mut adopted = adopt(theirs.into_raw_fd()).unwrap();
    let fd = adopted.fd().unwrap();
    // SAFETY: reading the flags of a descriptor the channel holds open.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    assert_ne!(flags & libc::O_NONBLOCK, 0, "non-blocking");
    // SAFETY: as above.
    let fd_flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    assert_ne!(fd_flags & libc::FD_CLOEXEC, 0, "close-on-exec");
    let mut ours = adopt(ours.into_raw_fd()).unwrap();
    ours.send_frame(b"adopted").unwrap();
    assert_eq!(next_frame(&mut adopted).unwrap(), b"adopted");

    let file = std::fs::File::open("/dev/null").unwrap();
    match adopt(file.as_raw_fd()) {
        Err(Error::NotASocket { fd }) => assert_eq!(fd, file.as_raw_fd()),
        other => panic!("expected a refusal, got {other:?}"),
    }
    drop(file); // refused, it is still ours to close
}

#[test]
fn large_frame_spares_last_only_as_long_as_a_channel_that_receives_them() {
    let (mut a, mut b) = pipe().unwrap();
    let large = vec![3u8; LARGE];
    a.send_frame(&large).unwrap();
    let frame = settled(|| match b.recv_frame().unwrap() {
        Recv::Owned(frame) => Some(frame),
        Recv::Pending => None,
        other => panic!("expected a large frame, got {other:?}"),
    });
    recycle(frame.into_buffer());
    assert!(
        spare_bytes() >= HEADER + LARGE,
        "kept for b's next large frame"
    );
    // Received into the caller's buffer, the next one leaves a spare too.
    a.send_frame(&large).unwrap();
    let mut out = vec![0u8; 2 * LARGE];
    let got = settled(|| match b.recv_frame_into(&mut out).unwrap() {
        RecvInto::Copied(n) => Some(n),
        RecvInto::Pending => None,
        RecvInto::Eof => panic!("an end of file where a frame was expected"),
    });
    assert_eq!(got, LARGE);
    assert!(spare_bytes() >= HEADER + LARGE);
    b.close();
    assert_eq!(spare_bytes(), 0, "no channel left that could use them");
}
