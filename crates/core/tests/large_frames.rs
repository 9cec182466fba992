//! Large frames: a send buffer that holds one whole, a receive into a buffer of its own, and a
//! receive into the caller's buffer.

use pyre_nexus_core::frame::{header, trim_spares, HEADER, LARGE};
use pyre_nexus_core::{pipe, Error, Recv, RecvInto};
#[cfg(target_os = "linux")]
use pyre_nexus_core::{port, Address};
#[cfg(target_os = "linux")]
use std::os::fd::RawFd;

/// The kernel's send buffer size for `fd`.
#[cfg(target_os = "linux")]
fn send_buffer(fd: RawFd) -> usize {
    let mut size: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `size` and `len` are ours, and `len` says how much room `size` has.
    let got = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_SNDBUF,
            (&mut size as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    assert_eq!(got, 0, "getsockopt");
    size as usize
}

#[cfg(target_os = "linux")]
#[test]
fn a_large_frame_gets_a_send_buffer_that_holds_it_whole() {
    let (mut a, _b) = pipe().unwrap();
    let fd = a.fd().unwrap();
    let default = send_buffer(fd);
    a.send_frame(&[1; 1000]).unwrap();
    assert_eq!(send_buffer(fd), default, "small frames leave it alone");
    let payload = vec![2; 1 << 20];
    a.send_frame(&payload).unwrap();
    let grown = send_buffer(fd);
    assert!(
        grown > default,
        "{grown} after a 1 MiB frame, {default} before"
    );
    // Linux doubles what it is asked for (for its bookkeeping), up to net.core.wmem_max.
    assert_eq!(grown, 2 * (payload.len() + 4).min(wmem_max()));
}

/// The largest send buffer an unprivileged process may ask for.
#[cfg(target_os = "linux")]
fn wmem_max() -> usize {
    std::fs::read_to_string("/proc/sys/net/core/wmem_max")
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[cfg(target_os = "linux")]
#[test]
fn a_tcp_connection_keeps_the_kernels_own_tuning_of_its_send_buffer() {
    // Setting SO_SNDBUF on TCP would pin it and turn the kernel's autotuning off.
    let mut listener = port(&"ip4:127.0.0.1:0".parse::<Address>().unwrap()).unwrap();
    let target = listener.local_address().unwrap().to_string();
    let client = std::net::TcpStream::connect(target.trim_start_matches("ip4:")).unwrap();
    let mut server = loop {
        if let Some(accepted) = listener.accept().unwrap() {
            break accepted;
        }
    };
    let payload = vec![5; 1 << 20];
    server.send_frame(&payload).unwrap();
    // The kernel may have grown it on its own meanwhile, but never to what asking would give.
    let asked = 2 * (payload.len() + 4).min(wmem_max());
    assert_ne!(send_buffer(server.fd().unwrap()), asked);
    drop(client);
}

#[test]
fn a_large_frame_arrives_whole_in_a_buffer_of_its_own() {
    let (mut a, mut b) = pipe().unwrap();
    // Under the kernel's default send buffer, so the whole frame is in the socket at once.
    let large: Vec<u8> = (0..LARGE + 1000).map(|i| (i % 253) as u8).collect();
    a.send_frame(&large).unwrap();
    a.send_frame(b"after").unwrap();
    assert_eq!(a.pending_output(), 0);
    let mut got = None;
    for _ in 0..100 {
        if got.is_some() {
            break;
        }
        match b.recv_frame().unwrap() {
            Recv::Owned(frame) => got = Some(frame),
            Recv::Pending => {}
            other => panic!("expected the large frame whole, got {other:?}"),
        }
    }
    assert!(got.expect("the frame, already in the socket").payload() == &large[..]);
    assert_eq!(b.recv_frame().unwrap(), Recv::Frame(b"after"));
}

/// Receives into `out`, trying until the frame has come whole (it is in the socket already).
fn recv_into(channel: &mut pyre_nexus_core::Channel, out: &mut [u8]) -> Result<RecvInto, Error> {
    for _ in 0..100 {
        match channel.recv_frame_into(out) {
            Ok(RecvInto::Pending) => {}
            done => return done,
        }
    }
    Ok(RecvInto::Pending)
}

#[test]
fn frames_are_received_into_the_callers_buffer_and_one_that_does_not_fit_stays_queued() {
    let (mut a, mut b) = pipe().unwrap();
    let large: Vec<u8> = (0..LARGE + 1000).map(|i| (i % 251) as u8).collect();
    a.send_frame(b"hello").unwrap();
    a.send_frame(&large).unwrap();
    a.send_frame(b"after").unwrap();
    assert_eq!(a.pending_output(), 0);

    let mut small = [0u8; 10];
    assert_eq!(recv_into(&mut b, &mut small).unwrap(), RecvInto::Copied(5));
    assert_eq!(&small[..5], b"hello");
    match recv_into(&mut b, &mut small) {
        Err(Error::BufferTooSmall { needed, room }) => {
            assert_eq!((needed, room), (large.len(), 10))
        }
        other => panic!("expected the large frame to be refused, got {other:?}"),
    }
    // Refused, it is still the next frame.
    let mut big = vec![0u8; 2 * LARGE];
    assert_eq!(
        recv_into(&mut b, &mut big).unwrap(),
        RecvInto::Copied(large.len())
    );
    assert!(big[..large.len()] == large[..]);
    assert_eq!(recv_into(&mut b, &mut small).unwrap(), RecvInto::Copied(5));
    assert_eq!(&small[..5], b"after");
    a.close();
    assert_eq!(recv_into(&mut b, &mut small).unwrap(), RecvInto::Eof);
}

#[test]
fn a_large_frame_that_comes_in_pieces_is_read_into_the_callers_buffer_without_losing_a_byte() {
    let (mut a, mut b) = pipe().unwrap();
    let large: Vec<u8> = (0..3 * LARGE).map(|i| (i % 241) as u8).collect();
    let mut wire = header(large.len()).to_vec();
    wire.extend_from_slice(&large);
    let mut out = vec![0u8; 4 * LARGE];
    // Written in three pieces; between them the receiver finds the frame unfinished, and
    // scribbles over its buffer, which must not matter: what came is kept by the channel.
    let cuts = [0, LARGE / 2, 2 * LARGE, wire.len()];
    for (i, piece) in cuts.windows(2).enumerate() {
        assert_eq!(
            a.write(&wire[piece[0]..piece[1]]).unwrap(),
            piece[1] - piece[0]
        );
        let last = i == cuts.len() - 2;
        match b.recv_frame_into(&mut out).unwrap() {
            RecvInto::Copied(n) if last => {
                assert_eq!(n, large.len());
                assert!(out[..n] == large[..], "the frame's bytes");
            }
            RecvInto::Pending if !last => out.fill(0xee),
            other => panic!("piece {i}: got {other:?}"),
        }
    }
    // Cut short, the frame was read on into a buffer of its own, which went back to this
    // thread's spares once copied out, for the next large frame.
    assert!(trim_spares(), "the large frame's buffer is kept");
    // recv_frame takes over a frame begun with recv_frame_into (small enough for the socket to
    // take each write whole).
    let payload = &large[..LARGE + 10_000];
    assert_eq!(a.write(&header(payload.len())).unwrap(), HEADER);
    assert_eq!(a.write(&payload[..50_000]).unwrap(), 50_000);
    assert_eq!(b.recv_frame_into(&mut out).unwrap(), RecvInto::Pending);
    assert_eq!(a.write(&payload[50_000..]).unwrap(), payload.len() - 50_000);
    match b.recv_frame().unwrap() {
        Recv::Owned(frame) => assert!(frame.payload() == payload),
        other => panic!("expected the large frame whole, got {other:?}"),
    }
}

#[test]
fn a_frame_too_large_for_the_callers_buffer_is_refused_once_its_header_is_in() {
    let (mut a, mut b) = pipe().unwrap();
    let large: Vec<u8> = (0..LARGE + 10_000).map(|i| (i % 239) as u8).collect();
    // Only the header and a little of the payload: refused without waiting for the rest.
    assert_eq!(a.write(&header(large.len())).unwrap(), HEADER);
    assert_eq!(a.write(&large[..1000]).unwrap(), 1000);
    let mut small = vec![0u8; LARGE];
    match b.recv_frame_into(&mut small) {
        Err(Error::BufferTooSmall { needed, room }) => {
            assert_eq!((needed, room), (large.len(), LARGE))
        }
        other => panic!("expected the frame to be refused, got {other:?}"),
    }
    // It stays the next frame, for a receiver with room.
    assert_eq!(a.write(&large[1000..]).unwrap(), large.len() - 1000);
    match b.recv_frame().unwrap() {
        Recv::Owned(frame) => assert!(frame.payload() == &large[..]),
        other => panic!("expected the large frame whole, got {other:?}"),
    }
}
