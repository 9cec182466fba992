//! Shared regions: what one mapping stores another sees, and what cannot be mapped. (A worker
//! that inherits a region is in recruit.rs.)
#![cfg(unix)]

use pyre_nexus_core::SharedRegion;
use std::os::fd::{AsFd, AsRawFd};
use std::sync::atomic::Ordering;

#[test]
fn two_mappings_of_a_region_see_each_others_stores() {
    let (first, fd) = SharedRegion::create(8).unwrap();
    let second = SharedRegion::map(fd.as_fd(), 8).unwrap();
    assert_eq!(first.len(), 8);
    assert_eq!(first.words().len(), 2);
    assert_ne!(first.as_ptr(), second.as_ptr(), "two mappings, not one");
    assert_eq!(
        second.words()[1].load(Ordering::SeqCst),
        0,
        "a new region is zeroed"
    );
    first.words()[1].store(-7, Ordering::SeqCst);
    assert_eq!(second.words()[1].load(Ordering::SeqCst), -7);
    drop(first);
    drop(fd);
    second.words()[0].store(1, Ordering::SeqCst);
    assert_eq!(
        second.words()[0].load(Ordering::SeqCst),
        1,
        "a mapping outlives the rest"
    );
}

#[test]
fn a_descriptor_that_is_no_region_is_refused_saying_what_it_is() {
    let (socket, _other) = std::os::unix::net::UnixStream::pair().unwrap();
    let error = SharedRegion::map(socket.as_fd(), 4).unwrap_err();
    assert_eq!(error.code(), "ERR_NEXUS_NOT_SHARED_MEMORY");
    let fd = socket.as_raw_fd();
    assert_eq!(
        error.to_string(),
        format!("descriptor {fd} is not a shared memory region: it is a socket")
    );

    let (_region, fd) = SharedRegion::create(4).unwrap();
    let error = SharedRegion::map(fd.as_fd(), 4096 * 2).unwrap_err();
    assert!(
        error.to_string().ends_with("fewer than the 8192 asked for"),
        "{error}"
    );

    #[cfg(target_os = "linux")]
    {
        use std::os::fd::{FromRawFd, OwnedFd};
        // SAFETY: eventfd gives us a descriptor of our own.
        let eventfd = unsafe { OwnedFd::from_raw_fd(libc::eventfd(0, libc::EFD_CLOEXEC)) };
        let error = SharedRegion::map(eventfd.as_fd(), 4).unwrap_err();
        assert!(
            error
                .to_string()
                .ends_with("it is an epoll, an eventfd or another kernel object"),
            "{error}"
        );

        // A file could be mapped, but it is not one of ours: its size could change under us.
        let file = std::fs::File::open(std::env::current_exe().unwrap()).unwrap();
        let error = SharedRegion::map(file.as_fd(), 4).unwrap_err();
        assert!(error.to_string().ends_with("not a sealed memfd"), "{error}");
    }

    let error = SharedRegion::create(0).unwrap_err();
    assert!(error.to_string().contains("0 bytes"), "{error}");
}
