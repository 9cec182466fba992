//! Alone in its own test binary: it needs the kernel to hand a closed descriptor's number to the
//! next socket, which another test running on a parallel thread could take first.
mod util;

use pyre_nexus_core::{Readiness, Recv};
use std::cell::Cell;
use std::rc::Rc;
use util::{pair, Loop, LIMIT};

#[test]
fn a_reused_descriptor_number_does_not_inherit_old_handlers() {
    let nexus = Loop::new();
    let (a, b) = pair();
    let old_fd = b.borrow().fd().unwrap();
    nexus.when(&b, Readiness::Read, |_| {
        panic!("the closed channel's handler ran")
    });
    b.borrow_mut().close();
    a.borrow_mut().close();
    let (c, d) = pair();
    assert!(
        [c.borrow().fd(), d.borrow().fd()].contains(&Some(old_fd)),
        "the kernel did not reuse the descriptor"
    );
    c.borrow_mut().send_frame(b"new").unwrap();
    d.borrow_mut().send_frame(b"new").unwrap();
    let hits = Rc::new(Cell::new(0));
    for ch in [c.clone(), d.clone()] {
        let (h, ch2) = (hits.clone(), ch.clone());
        nexus.when(&ch, Readiness::Read, move |_| {
            match ch2.borrow_mut().recv_frame().unwrap() {
                Recv::Frame(_) => {
                    h.set(h.get() + 1);
                    false
                }
                _ => true,
            }
        });
    }
    nexus.watch(LIMIT);
    assert_eq!(hits.get(), 2);
}
