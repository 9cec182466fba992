mod util;

use pyre_nexus_core::{pipe, Call, Outcome, ReadOutcome, Readiness, Recv, Turn};
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;
use util::{pair, Loop, LIMIT};

/// Whether the dispatcher's descriptor says there is news (what wakes the outer loop).
fn woken(dispatcher: &pyre_nexus_core::Dispatcher<u8>) -> bool {
    let mut watch = libc::pollfd {
        fd: dispatcher.fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one pollfd of ours, no wait.
    unsafe { libc::poll(&mut watch, 1, 0) == 1 }
}

#[test]
fn handler_returning_false_is_not_called_again() {
    let (a, b) = pair();
    a.borrow_mut().write(b"xx").unwrap();
    let nexus = Loop::new();
    let calls = Rc::new(Cell::new(0));
    let c = calls.clone();
    nexus.when(&b, Readiness::Read, move |_| {
        c.set(c.get() + 1);
        false
    });
    nexus.watch(LIMIT);
    assert_eq!(calls.get(), 1);
    assert!(nexus.dispatcher.borrow().is_idle());
}

#[test]
fn handler_leaving_data_unread_is_called_again() {
    let (a, b) = pair();
    a.borrow_mut().write(b"abc").unwrap();
    let nexus = Loop::new();
    let seen = Rc::new(RefCell::new(Vec::new()));
    let (s, ch) = (seen.clone(), b.clone());
    nexus.when(&b, Readiness::Read, move |_| {
        let mut one = [0u8; 1];
        match ch.borrow_mut().read(&mut one).unwrap() {
            ReadOutcome::Data(1) => s.borrow_mut().push(one[0]),
            other => panic!("expected a byte, got {other:?}"),
        }
        s.borrow().len() < 3
    });
    nexus.watch(LIMIT);
    assert_eq!(*seen.borrow(), b"abc");
}

#[test]
fn handlers_on_one_channel_run_in_registration_order() {
    let (a, b) = pair();
    a.borrow_mut().write(b"x").unwrap();
    let nexus = Loop::new();
    let order = Rc::new(RefCell::new(Vec::new()));
    for name in ["first", "second", "third"] {
        let o = order.clone();
        nexus.when(&b, Readiness::Read, move |_| {
            o.borrow_mut().push(name);
            false
        });
    }
    nexus.watch(LIMIT);
    assert_eq!(*order.borrow(), ["first", "second", "third"]);
}

#[test]
fn read_and_write_handlers_share_one_channel() {
    let (a, b) = pair();
    let nexus = Loop::new();
    let got = Rc::new(RefCell::new(Vec::new()));
    let (g, reader) = (got.clone(), b.clone());
    nexus.when(&b, Readiness::Read, move |_| {
        match reader.borrow_mut().recv_frame().unwrap() {
            Recv::Frame(f) => {
                g.borrow_mut().push(f.to_vec());
                g.borrow().len() < 2
            }
            _ => true,
        }
    });
    let writer = b.clone();
    nexus.when(&b, Readiness::Write, move |_| {
        writer.borrow_mut().send_frame(b"to a").unwrap();
        false
    });
    let (answer, echo) = (a.clone(), a.clone());
    nexus.when(&a, Readiness::Read, move |_| {
        let got = match answer.borrow_mut().recv_frame().unwrap() {
            Recv::Frame(f) => f.to_vec(),
            _ => return true,
        };
        assert_eq!(got, b"to a");
        echo.borrow_mut().send_frame(b"one").unwrap();
        echo.borrow_mut().send_frame(b"two").unwrap();
        false
    });
    nexus.watch(LIMIT);
    assert_eq!(*got.borrow(), [b"one".to_vec(), b"two".to_vec()]);
}

#[test]
fn end_of_file_reaches_the_read_handler() {
    let (a, b) = pair();
    a.borrow_mut().send_frame(b"last words").unwrap();
    a.borrow_mut().close();
    let nexus = Loop::new();
    let frames = Rc::new(RefCell::new(Vec::new()));
    let (f, ch) = (frames.clone(), b.clone());
    nexus.when(&b, Readiness::Read, move |_| {
        match ch.borrow_mut().recv_frame().unwrap() {
            Recv::Frame(x) => {
                f.borrow_mut().push(String::from_utf8(x.to_vec()).unwrap());
                true
            }
            Recv::Owned(_) => unreachable!("a 10-byte frame is never a large one"),
            Recv::Pending => true,
            Recv::Eof => {
                f.borrow_mut().push("EOF".into());
                false
            }
        }
    });
    nexus.watch(LIMIT);
    assert_eq!(*frames.borrow(), ["last words", "EOF"]);
}

#[test]
fn a_peer_dying_in_the_middle_of_a_frame_is_an_error_for_that_channel_only() {
    let (a, b) = pair();
    let (c, d) = pair();
    a.borrow_mut().write(&[10, 0, 0, 0, b'p', b'a']).unwrap();
    a.borrow_mut().close();
    c.borrow_mut().send_frame(b"fine").unwrap();
    let nexus = Loop::new();
    let errors = Rc::new(RefCell::new(Vec::new()));
    let (e, ch) = (errors.clone(), b.clone());
    nexus.when(&b, Readiness::Read, move |_| {
        match ch.borrow_mut().recv_frame() {
            Err(err) => {
                e.borrow_mut().push(err.code());
                false
            }
            Ok(_) => true,
        }
    });
    let other = Rc::new(RefCell::new(None));
    let (o, ch) = (other.clone(), d.clone());
    nexus.when(&d, Readiness::Read, move |_| {
        match ch.borrow_mut().recv_frame().unwrap() {
            Recv::Frame(x) => {
                *o.borrow_mut() = Some(x.to_vec());
                false
            }
            _ => true,
        }
    });
    nexus.watch(LIMIT);
    assert_eq!(*errors.borrow(), ["ERR_NEXUS_TRUNCATED"]);
    assert_eq!(other.borrow().as_deref(), Some(&b"fine"[..]));
}

#[test]
fn a_handler_closing_its_own_channel_drops_the_channels_other_handlers() {
    let (a, b) = pair();
    a.borrow_mut().write(b"x").unwrap();
    let nexus = Loop::new();
    let ch = b.clone();
    nexus.when(&b, Readiness::Read, move |_| {
        ch.borrow_mut().close();
        true
    });
    nexus.when(&b, Readiness::Read, |_| {
        panic!("a handler of a closed channel ran")
    });
    nexus.when(&b, Readiness::Exception, |_| {
        panic!("a handler of a closed channel ran")
    });
    nexus.watch(LIMIT);
    assert_eq!(nexus.dispatcher.borrow().handler_count(), 0);
}

#[test]
fn closing_a_watched_channel_between_turns_wakes_the_poll_and_drops_its_handlers() {
    let (_a, b) = pair();
    let mut dispatcher = pyre_nexus_core::Dispatcher::<u8>::new().unwrap();
    dispatcher.when(&b, Readiness::Read, 1).unwrap();
    // Closed by code outside the dispatcher (a timer, a promise): no channel event follows, so
    // without a wake-up the handler would stay, and the loop would never see itself idle.
    b.borrow_mut().close();
    // The outer loop (libuv) runs a turn when the poll's descriptor is readable.
    assert!(woken(&dispatcher), "the poll was not woken");
    dispatcher.poll(Some(Duration::ZERO)).unwrap();
    let (mut calls, mut dropped) = (Vec::new(), Vec::new());
    dispatcher.collect(std::time::Instant::now(), &mut calls, &mut dropped);
    assert!(calls.is_empty());
    assert_eq!(dropped, [1]);
    assert!(dispatcher.is_idle());
}

#[test]
fn writability_wakes_the_loop_only_while_a_write_handler_waits() {
    let (a, b) = pair();
    let mut dispatcher = pyre_nexus_core::Dispatcher::<u8>::new().unwrap();
    dispatcher.when(&a, Readiness::Read, 1).unwrap();
    a.borrow_mut().send_frame(&[7; 64]).unwrap();
    // The peer reading frees room in the socket: without a write handler, that is no news.
    assert_eq!(
        b.borrow_mut().recv_frame().unwrap(),
        Recv::Frame(&[7; 64][..])
    );
    assert!(!woken(&dispatcher), "woken by writability nobody waits for");
    // A write handler hears of the writability that is already there.
    dispatcher.when(&a, Readiness::Write, 2).unwrap();
    assert!(woken(&dispatcher));
    dispatcher.poll(Some(Duration::ZERO)).unwrap();
    let (mut calls, mut dropped) = (Vec::new(), Vec::new());
    dispatcher.collect(std::time::Instant::now(), &mut calls, &mut dropped);
    assert_eq!(calls.len(), 1);
}

#[test]
fn alarms_fire_in_deadline_order_and_rearm_with_the_interval_they_return() {
    let nexus = Loop::new();
    let log = Rc::new(RefCell::new(Vec::new()));
    let l = log.clone();
    let repeats = Rc::new(Cell::new(0));
    nexus.alarm(Duration::from_millis(30), move |_| {
        l.borrow_mut().push("late");
        None
    });
    let (l, r) = (log.clone(), repeats.clone());
    nexus.alarm(Duration::from_millis(1), move |_| {
        r.set(r.get() + 1);
        l.borrow_mut().push("tick");
        (r.get() < 3).then_some(Duration::from_millis(1))
    });
    nexus.watch(LIMIT);
    assert_eq!(*log.borrow(), ["tick", "tick", "tick", "late"]);
}

#[test]
fn stop_inside_a_handler_ends_the_turn() {
    let (a, b) = pair();
    a.borrow_mut().write(b"x").unwrap();
    let nexus = Loop::new();
    nexus.when(&b, Readiness::Read, |nexus| {
        nexus.stop();
        true
    });
    nexus.when(&b, Readiness::Read, |_| panic!("ran after stop"));
    nexus.watch(LIMIT);
    assert_eq!(nexus.dispatcher.borrow().handler_count(), 2);
}

#[test]
fn idle_dispatcher_waits_instead_of_spinning() {
    let (a, b) = pair();
    let nexus = Loop::new();
    nexus.when(&b, Readiness::Read, |_| false);
    nexus.alarm(Duration::from_millis(50), move |_| {
        a.borrow_mut().write(b"wake").unwrap();
        None
    });
    nexus.watch(LIMIT);
    // One turn for the alarm, one for the data (and perhaps a spurious one): not thousands.
    assert!(
        nexus.turns.get() <= 4,
        "{} turns for two events",
        nexus.turns.get()
    );
}

#[test]
fn an_unwatched_channel_reads_what_is_there_and_says_when_nothing_is() {
    let (a, b) = pipe().unwrap();
    let (mut a, mut b) = (a, b);
    assert_eq!(b.recv_frame().unwrap(), Recv::Pending);
    a.send_frame(b"direct").unwrap();
    assert_eq!(b.recv_frame().unwrap(), Recv::Frame(b"direct"));
    assert_eq!(b.recv_frame().unwrap(), Recv::Pending);
}

#[test]
fn watching_a_listener_for_writing_is_refused_instead_of_never_firing() {
    let listener = pyre_nexus_core::port(&"127.0.0.1:0".parse().unwrap())
        .unwrap()
        .shared();
    let mut dispatcher = pyre_nexus_core::Dispatcher::<()>::new().unwrap();
    let err = dispatcher
        .when(&listener, Readiness::Write, ())
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot watch for writing on a listener channel"
    );
    assert!(dispatcher.when(&listener, Readiness::Read, ()).is_ok());
}

#[test]
fn abort_drops_output_a_peer_never_reads_where_close_would_keep_it() {
    // Fills the output of a watched channel whose peer never reads, then ends it with `end`;
    // says whether the dispatcher is left with nothing to do.
    let idle_after = |end: fn(&mut pyre_nexus_core::Channel)| {
        let nexus = Loop::new();
        let (a, _reader) = pair();
        nexus.when(&a, Readiness::Write, |_| false);
        nexus.watch(LIMIT);
        let chunk = vec![7u8; 64 * 1024];
        while a.borrow().pending_output() == 0 {
            a.borrow_mut().write(&chunk).unwrap();
        }
        end(&mut a.borrow_mut());
        let mut d = nexus.dispatcher.borrow_mut();
        d.poll(Some(Duration::ZERO)).unwrap();
        d.collect(std::time::Instant::now(), &mut Vec::new(), &mut Vec::new());
        d.is_idle()
    };
    assert!(
        !idle_after(pyre_nexus_core::Channel::close),
        "a closed channel with unread output should still be flushing"
    );
    assert!(
        idle_after(pyre_nexus_core::Channel::abort),
        "an aborted channel should be gone at once"
    );
    assert!(
        idle_after(|ch| {
            ch.close();
            ch.abort();
        }),
        "aborting a channel still flushing after close should end it"
    );
}

#[test]
fn dropping_a_dispatcher_drops_every_handler_at_once() {
    let (_a, b) = pair();
    let held = Rc::new(());
    let mut dispatcher = pyre_nexus_core::Dispatcher::new().unwrap();
    dispatcher.when(&b, Readiness::Read, held.clone()).unwrap();
    dispatcher.when(&b, Readiness::Write, held.clone()).unwrap();
    dispatcher.alarm(Duration::from_secs(3600), held.clone());
    assert_eq!(Rc::strong_count(&held), 4);
    drop(dispatcher);
    assert_eq!(
        Rc::strong_count(&held),
        1,
        "a handler outlived its dispatcher"
    );
}

#[test]
fn a_turn_stopped_midway_makes_no_more_calls_and_the_next_turn_starts_afresh() {
    let (a, b) = pair();
    a.borrow_mut().write(b"x").unwrap();
    let mut dispatcher = pyre_nexus_core::Dispatcher::new().unwrap();
    let first = dispatcher.when(&b, Readiness::Read, "first").unwrap();
    dispatcher.when(&b, Readiness::Read, "second").unwrap();
    let mut turn = Turn::new();
    turn.begin(&mut dispatcher, Some(LIMIT)).unwrap();
    let (call, handler) = turn.next(&dispatcher).unwrap();
    assert_eq!((call, *handler), (Call::Ready(first), "first"));
    // The caller stops here (its loop was told to stop): the turn ends, the data is still unread.
    dispatcher.report(call, Outcome::of_ready(false));
    turn.end(&mut dispatcher);
    assert!(
        dispatcher.has_due(),
        "the channel left ready is queued again"
    );
    turn.begin(&mut dispatcher, Some(Duration::ZERO)).unwrap();
    let names: Vec<&str> = std::iter::from_fn(|| turn.next(&dispatcher).map(|(_, h)| *h)).collect();
    assert_eq!(
        names,
        ["second"],
        "the dropped handler is gone, the other is called"
    );
}

#[test]
fn a_channel_outlives_its_dispatcher_and_is_watched_by_the_next() {
    let (a, b) = pair();
    {
        let first = Loop::new();
        first.when(&b, Readiness::Read, |_| true);
    } // dropped with the channel still registered in its poll
    a.borrow_mut().send_frame(b"again").unwrap();
    let second = Loop::new();
    let got = Rc::new(RefCell::new(Vec::new()));
    let (g, ch) = (got.clone(), b.clone());
    second.when(&b, Readiness::Read, move |_| {
        if let Recv::Frame(payload) = ch.borrow_mut().recv_frame().unwrap() {
            g.borrow_mut().push(payload.to_vec());
        }
        g.borrow().is_empty()
    });
    second.watch(LIMIT);
    assert_eq!(*got.borrow(), [b"again".to_vec()]);
}
