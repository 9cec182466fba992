//! What a channel says its next receive and read will find (`Channel::input_state`), the epoch
//! that says when that may have changed (`readiness_epoch`), and frames lent to a caller that
//! copies every frame ready in one go (`lend_frames`, `take_lent`). The binding's JavaScript side
//! answers its readers from these without calling in, so each must be exactly what the channel
//! would do.

use pyre_nexus_core::frame::header;
use pyre_nexus_core::{
    pipe, readiness_epoch, Channel, Dispatcher, InputState, ReadOutcome, Readiness, Recv,
    SharedChannel, Turn,
};
use std::time::Duration;

const NOTHING: u8 = InputState::NO_FRAME | InputState::NO_BYTES;
const ENDED: u8 = InputState::AT_END | NOTHING;

/// A pair whose second end is watched by a dispatcher (with a handler that is never called).
fn watched() -> (Channel, SharedChannel, Dispatcher<()>) {
    let (a, b) = pipe().unwrap();
    let b = b.shared();
    let mut dispatcher = Dispatcher::new().unwrap();
    dispatcher.when(&b, Readiness::Read, ()).unwrap();
    (a, b, dispatcher)
}

/// One poll, as a turn begins, waiting at most a second for news.
fn poll(dispatcher: &mut Dispatcher<()>) {
    let mut turn = Turn::new();
    turn.begin(dispatcher, Some(Duration::from_secs(1)))
        .unwrap();
    turn.end(dispatcher);
}

fn frame(payload: &[u8]) -> Vec<u8> {
    let mut wire = header(payload.len()).to_vec();
    wire.extend_from_slice(payload);
    wire
}

#[test]
fn an_unwatched_channel_is_read_every_time_so_only_its_end_is_known() {
    let (mut a, mut b) = pipe().unwrap();
    assert_eq!(b.input_state().bits(), 0);
    assert_eq!(b.recv_frame().unwrap(), Recv::Pending);
    assert_eq!(
        b.input_state().bits(),
        0,
        "nothing now says nothing of later"
    );
    a.send_frame(b"x").unwrap();
    assert_eq!(b.recv_frame().unwrap(), Recv::Frame(b"x"));
    a.close();
    assert_eq!(b.recv_frame().unwrap(), Recv::Eof);
    assert_eq!(b.input_state().bits(), ENDED);
    assert_eq!(b.read(&mut [0; 8]).unwrap(), ReadOutcome::Eof, "as it says");
    assert_eq!(b.recv_frame().unwrap(), Recv::Eof);
}

#[test]
fn a_watched_channel_found_empty_finds_nothing_until_a_poll_has_news() {
    let (mut a, b, mut dispatcher) = watched();
    a.send_frame(b"first").unwrap();
    poll(&mut dispatcher);
    let mut ch = b.borrow_mut();
    assert_eq!(ch.recv_frame().unwrap(), Recv::Frame(b"first"));
    assert_eq!(
        ch.input_state().bits(),
        NOTHING,
        "a short read emptied the socket"
    );
    let epoch = readiness_epoch();

    a.send_frame(b"second").unwrap();
    // What it said holds until the epoch changes: the channel does not look meanwhile.
    assert_eq!(ch.recv_frame().unwrap(), Recv::Pending);
    assert_eq!(ch.read(&mut [0; 64]).unwrap(), ReadOutcome::WouldBlock);
    assert_eq!(ch.input_state().bits(), NOTHING);
    assert_eq!(readiness_epoch(), epoch);
    drop(ch);

    poll(&mut dispatcher);
    assert_ne!(readiness_epoch(), epoch, "the poll had news");
    let mut ch = b.borrow_mut();
    assert_eq!(ch.input_state().bits(), 0, "now it may find something");
    assert_eq!(ch.recv_frame().unwrap(), Recv::Frame(b"second"));
}

#[test]
fn recheck_looks_again_without_a_poll() {
    let (mut a, b, mut dispatcher) = watched();
    a.send_frame(b"first").unwrap();
    poll(&mut dispatcher);
    let mut ch = b.borrow_mut();
    assert_eq!(ch.recv_frame().unwrap(), Recv::Frame(b"first"));
    a.write(b"raw").unwrap();
    assert_eq!(ch.input_state().bits(), NOTHING);
    ch.recheck();
    assert_eq!(ch.input_state().bits(), 0);
    let mut raw = [0; 8];
    assert_eq!(ch.read(&mut raw).unwrap(), ReadOutcome::Data(3));
    assert_eq!(&raw[..3], b"raw");
}

#[test]
fn part_of_a_frame_is_no_frame_yet_but_bytes_to_read() {
    let (mut a, b, mut dispatcher) = watched();
    let wire = frame(b"hello");
    a.write(&wire[..6]).unwrap();
    poll(&mut dispatcher);
    let mut ch = b.borrow_mut();
    assert_eq!(ch.recv_frame().unwrap(), Recv::Pending);
    assert_eq!(ch.input_state().bits(), InputState::NO_FRAME);
    let mut raw = [0; 16];
    assert_eq!(ch.read(&mut raw).unwrap(), ReadOutcome::Data(6));
    assert_eq!(&raw[..6], &wire[..6]);
    assert_eq!(ch.input_state().bits(), NOTHING);
}

#[test]
fn the_end_is_known_once_read_and_a_frame_cut_short_is_not_taken_for_it() {
    let (mut a, mut b) = pipe().unwrap();
    a.write(&frame(b"hello")[..6]).unwrap();
    a.close();
    let mut cut = None;
    for _ in 0..1000 {
        match b.recv_frame() {
            Ok(Recv::Pending) => continue,
            Ok(other) => panic!("expected an error, got {other:?}"),
            Err(e) => {
                cut = Some(e);
                break;
            }
        }
    }
    assert_eq!(cut.unwrap().code().as_str(), "ERR_NEXUS_TRUNCATED");
    assert!(b.at_end());
    let state = b.input_state();
    assert!(state.at_end());
    assert!(
        !state.no_frame(),
        "a receive says the frame was cut short, every time"
    );
    assert!(b.recv_frame().is_err());
    assert!(state.no_bytes(), "a read finds the end");
    assert_eq!(b.read(&mut [0; 4]).unwrap(), ReadOutcome::Eof);
}

#[test]
fn a_frame_over_the_maximum_is_an_error_to_come_not_nothing() {
    let (mut a, b, mut dispatcher) = watched();
    b.borrow_mut().set_max_frame(4);
    a.write(&header(100)).unwrap();
    poll(&mut dispatcher);
    let mut ch = b.borrow_mut();
    assert!(ch.recv_frame().is_err());
    assert!(!ch.input_state().no_frame());
    assert!(ch.recv_frame().is_err(), "and again");
}

#[test]
fn a_closed_channel_says_its_reads_will_fail() {
    let (_a, b, mut dispatcher) = watched();
    poll(&mut dispatcher);
    let mut ch = b.borrow_mut();
    assert_eq!(ch.recv_frame().unwrap(), Recv::Pending);
    ch.close();
    assert_eq!(ch.input_state().bits(), 0);
    assert!(ch.recv_frame().is_err());
}

#[test]
fn a_dispatcher_letting_go_of_its_channels_changes_the_epoch() {
    let (mut a, b, mut dispatcher) = watched();
    a.send_frame(b"first").unwrap();
    poll(&mut dispatcher);
    assert_eq!(b.borrow_mut().recv_frame().unwrap(), Recv::Frame(b"first"));
    assert_eq!(b.borrow().input_state().bits(), NOTHING);
    a.send_frame(b"second").unwrap();
    let epoch = readiness_epoch();
    drop(dispatcher);
    assert_ne!(readiness_epoch(), epoch);
    let mut ch = b.borrow_mut();
    assert_eq!(ch.input_state().bits(), 0, "unwatched: it reads every time");
    assert_eq!(ch.recv_frame().unwrap(), Recv::Frame(b"second"));
}

/// Receives the next frame and lends the ones after it; the payloads, first one first.
fn receive_all(ch: &mut Channel) -> Vec<Vec<u8>> {
    let mut got = match ch.recv_frame().unwrap() {
        Recv::Frame(payload) => vec![payload.to_vec()],
        other => panic!("expected a frame, got {other:?}"),
    };
    ch.lend_frames(|payload| {
        got.push(payload.to_vec());
        true
    });
    got
}

#[test]
fn frames_lent_stay_first_in_line_until_settled() {
    let (mut a, b, mut dispatcher) = watched();
    for word in ["one", "two", "three", "four"] {
        a.send_frame(word.as_bytes()).unwrap();
    }
    poll(&mut dispatcher);
    let mut ch = b.borrow_mut();
    assert_eq!(
        receive_all(&mut ch),
        [b"one" as &[u8], b"two", b"three", b"four"]
    );
    assert_eq!(ch.lent_frames(), 3);
    assert_eq!(ch.input_state().bits(), 0, "lent frames are still buffered");
    // The borrower handed out "two" only: "three" is next.
    ch.take_lent(1);
    assert_eq!(ch.lent_frames(), 0);
    assert_eq!(ch.recv_frame().unwrap(), Recv::Frame(b"three"));
    assert_eq!(ch.recv_frame().unwrap(), Recv::Frame(b"four"));
    assert_eq!(ch.input_state().bits(), NOTHING);
}

#[test]
fn a_read_after_frames_were_lent_and_given_back_gets_their_bytes() {
    let (mut a, b, mut dispatcher) = watched();
    a.send_frame(b"one").unwrap();
    a.send_frame(b"two").unwrap();
    poll(&mut dispatcher);
    let mut ch = b.borrow_mut();
    assert_eq!(receive_all(&mut ch).len(), 2);
    ch.take_lent(0);
    let mut raw = [0; 32];
    assert_eq!(ch.read(&mut raw).unwrap(), ReadOutcome::Data(7));
    assert_eq!(&raw[..7], &frame(b"two")[..]);
}

#[test]
fn a_watched_channel_with_frames_lent_is_still_due_for_its_read_handler() {
    let (mut a, b, mut dispatcher) = watched();
    a.send_frame(b"one").unwrap();
    a.send_frame(b"two").unwrap();
    poll(&mut dispatcher);
    assert_eq!(receive_all(&mut b.borrow_mut()).len(), 2);
    // The turn that made the call ends: the channel holds a lent frame, so it is queued again.
    let mut turn = Turn::new();
    turn.begin(&mut dispatcher, Some(Duration::ZERO)).unwrap();
    assert!(turn.next(&dispatcher).is_some(), "the read handler is due");
    turn.end(&mut dispatcher);
    assert!(dispatcher.has_due());
    // Settled, all handed out: nothing is left, and the handler is not called again.
    b.borrow_mut().take_lent(1);
    let mut turn = Turn::new();
    turn.begin(&mut dispatcher, Some(Duration::ZERO)).unwrap();
    assert!(turn.next(&dispatcher).is_none());
    turn.end(&mut dispatcher);
    assert!(!dispatcher.has_due());
}

#[test]
fn lending_stops_where_the_borrower_has_no_room() {
    let (mut a, mut b) = pipe().unwrap();
    for word in ["one", "two", "three"] {
        a.send_frame(word.as_bytes()).unwrap();
    }
    let mut got = Vec::new();
    for _ in 0..1000 {
        if let Recv::Frame(payload) = b.recv_frame().unwrap() {
            got.push(payload.to_vec());
            break;
        }
    }
    let lent = b.lend_frames(|payload| {
        if got.len() == 2 {
            return false; // no room for a third
        }
        got.push(payload.to_vec());
        true
    });
    assert_eq!(lent, 1);
    b.take_lent(1);
    assert_eq!(b.recv_frame().unwrap(), Recv::Frame(b"three"));
}
