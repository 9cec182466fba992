//! Large frames: a send buffer that holds one whole, and a receive into a buffer of its own.

use pyre_nexus_core::frame::LARGE;
use pyre_nexus_core::{pipe, Recv};
use std::os::fd::RawFd;

/// The kernel's send buffer size for `fd`.
fn send_buffer(fd: RawFd) -> usize {
    let mut size: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
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
    #[cfg(target_os = "linux")]
    {
        // Linux doubles what it is asked for (for its bookkeeping), up to net.core.wmem_max.
        let cap: usize = std::fs::read_to_string("/proc/sys/net/core/wmem_max")
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let asked = payload.len() + 4;
        assert_eq!(grown, 2 * asked.min(cap));
    }
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
