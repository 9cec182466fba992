//! The life of a dispatcher as its caller sees it: watching or not, stopping, closing, closed.
//!
//! The rules, in one place: a watch runs turns until it is stopped, a handler throws, nothing is
//! left to wait for, or the dispatcher is closed; stop and close asked for during a turn take
//! effect when the turn's current call returns; a closed dispatcher refuses everything. The
//! binding drives this type from libuv's callbacks and JavaScript's calls, and does what
//! [`next`](Watch::next) says; `tests/util` drives it from a blocking loop.
//!
//! `P` is what settles the watch (the binding's promise), `E` what it fails with (a handler's
//! exception).

use crate::error::{Error, Result};

/// What the loop should do now that a turn, a registration or a request has changed things.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Nothing: not watching, or in a turn (whose end asks again).
    Nothing,
    /// Wait for what the dispatcher waits for (readiness, the next alarm) and run a turn then.
    Wait,
    /// End the watch: [`finish`](Watch::finish) it and settle what it gives.
    Finish,
    /// Close the dispatcher: [`mark_closed`](Watch::mark_closed), release everything, then
    /// finish the watch.
    Close,
}

/// How a watch ended: settle `P`, with `E` if it failed.
#[derive(Debug)]
pub enum Ending<P, E> {
    /// Stopped, closed, or nothing left to wait for.
    Resolve(P),
    /// A handler threw `E` (or the loop itself failed).
    Reject(P, E),
}

/// The watch/stop/close state machine of one dispatcher.
#[derive(Debug)]
pub struct Watch<P, E> {
    /// Set while watching: what settles the watch.
    promise: Option<P>,
    /// The first failure of this watch.
    failure: Option<E>,
    in_turn: bool,
    stopping: bool,
    closing: bool,
    closed: bool,
}

impl<P, E> Default for Watch<P, E> {
    fn default() -> Self {
        Watch {
            promise: None,
            failure: None,
            in_turn: false,
            stopping: false,
            closing: false,
            closed: false,
        }
    }
}

impl<P, E> Watch<P, E> {
    /// Not watching, open.
    pub fn new() -> Self {
        Self::default()
    }

    /// Refuses everything once the dispatcher is closed, or asked to close.
    pub fn ensure_open(&self) -> Result<()> {
        if self.is_closed() {
            Err(Error::DispatcherClosed)
        } else {
            Ok(())
        }
    }

    /// Whether the dispatcher is closed, or asked to close.
    pub fn is_closed(&self) -> bool {
        self.closing || self.closed
    }

    /// Whether a watch may start: the dispatcher is open and not watching already.
    pub fn can_start(&self) -> Result<()> {
        self.ensure_open()?;
        if self.is_watching() {
            return Err(Error::AlreadyWatching);
        }
        Ok(())
    }

    /// Starts a watch that `promise` settles; [`can_start`](Self::can_start) said it may.
    pub fn start(&mut self, promise: P) {
        debug_assert!(self.can_start().is_ok());
        self.promise = Some(promise);
        self.failure = None;
        self.stopping = false;
    }

    /// Whether a watch is running.
    pub fn is_watching(&self) -> bool {
        self.promise.is_some()
    }

    /// Asks the watch to stop: after the current call if in a turn. Not watching, a no-op.
    pub fn stop(&mut self) {
        if self.is_watching() {
            self.stopping = true;
        }
    }

    /// Asks the dispatcher to close: after the current call if in a turn. Closing twice is a
    /// no-op.
    pub fn close(&mut self) {
        if !self.closed {
            self.closing = true;
            self.stopping = true;
        }
    }

    /// Records a failure; the watch ends with the first one. Not watching, it is dropped.
    pub fn fail(&mut self, failure: E) {
        if self.is_watching() && self.failure.is_none() {
            self.failure = Some(failure);
        }
    }

    /// Begins a turn, unless one is running, the dispatcher is closed or not watching.
    pub fn begin_turn(&mut self) -> bool {
        if self.in_turn || self.closed || !self.is_watching() {
            return false;
        }
        self.in_turn = true;
        true
    }

    /// Whether the turn goes on to its next call (and a spin may start): watching, and no
    /// stop, close or failure since.
    pub fn goes_on(&self) -> bool {
        self.is_watching() && !self.stopping && !self.is_closed() && self.failure.is_none()
    }

    /// Ends a turn.
    pub fn end_turn(&mut self) {
        self.in_turn = false;
    }

    /// Whether a turn is running.
    pub fn in_turn(&self) -> bool {
        self.in_turn
    }

    /// What to do next; `idle` says whether the dispatcher has nothing left to wait for, and is
    /// asked only when it matters.
    pub fn next(&self, idle: impl FnOnce() -> bool) -> Next {
        if self.in_turn {
            Next::Nothing
        } else if self.closing && !self.closed {
            Next::Close
        } else if self.closed || !self.is_watching() {
            Next::Nothing
        } else if self.stopping || self.failure.is_some() || idle() {
            Next::Finish
        } else {
            Next::Wait
        }
    }

    /// Ends the watch, if one runs: what settles it, and how.
    pub fn finish(&mut self) -> Option<Ending<P, E>> {
        let promise = self.promise.take()?;
        self.stopping = false;
        Some(match self.failure.take() {
            Some(failure) => Ending::Reject(promise, failure),
            None => Ending::Resolve(promise),
        })
    }

    /// Marks the dispatcher closed: true the first time, when the caller releases what it holds
    /// (and then finishes the watch).
    pub fn mark_closed(&mut self) -> bool {
        if self.closed {
            return false;
        }
        self.closed = true;
        self.closing = false;
        self.stopping = true;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type W = Watch<&'static str, &'static str>;

    fn watching() -> W {
        let mut watch = W::new();
        watch.can_start().unwrap();
        watch.start("promise");
        watch
    }

    #[test]
    fn a_watch_waits_until_idle_then_finishes_resolved() {
        let mut watch = watching();
        assert_eq!(watch.next(|| false), Next::Wait);
        assert_eq!(watch.next(|| true), Next::Finish);
        assert!(matches!(watch.finish(), Some(Ending::Resolve("promise"))));
        assert!(!watch.is_watching());
        assert_eq!(
            watch.next(|| panic!("idle asked when not watching")),
            Next::Nothing
        );
        assert!(watch.finish().is_none(), "a watch settles once");
    }

    #[test]
    fn watching_twice_is_refused() {
        let watch = watching();
        assert_eq!(
            watch.can_start().unwrap_err().code(),
            "ERR_NEXUS_ALREADY_WATCHING"
        );
    }

    #[test]
    fn stop_in_a_turn_ends_the_turn_then_the_watch_and_the_next_watch_starts_afresh() {
        let mut watch = watching();
        assert!(watch.begin_turn());
        assert!(!watch.begin_turn(), "turns do not nest");
        watch.stop();
        assert!(!watch.goes_on());
        assert_eq!(
            watch.next(|| false),
            Next::Nothing,
            "the turn's end decides"
        );
        watch.end_turn();
        assert_eq!(watch.next(|| false), Next::Finish);
        watch.finish();
        watch.start("again");
        assert!(watch.goes_on(), "a new watch does not inherit the stop");
    }

    #[test]
    fn stop_when_not_watching_does_not_stop_the_next_watch() {
        let mut watch = W::new();
        watch.stop();
        watch.start("promise");
        assert!(watch.goes_on());
    }

    #[test]
    fn the_first_failure_rejects_the_watch() {
        let mut watch = watching();
        assert!(watch.begin_turn());
        watch.fail("first");
        watch.fail("second");
        assert!(!watch.goes_on());
        watch.end_turn();
        assert_eq!(watch.next(|| false), Next::Finish);
        assert!(matches!(
            watch.finish(),
            Some(Ending::Reject("promise", "first"))
        ));
        watch.fail("not watching");
        watch.start("again");
        assert!(matches!(watch.finish(), Some(Ending::Resolve("again"))));
    }

    #[test]
    fn close_in_a_turn_waits_for_the_turn_then_closes_once_and_refuses_everything() {
        let mut watch = watching();
        assert!(watch.begin_turn());
        watch.close();
        assert!(!watch.goes_on());
        assert!(watch.ensure_open().is_err(), "refused as soon as asked");
        assert_eq!(watch.next(|| false), Next::Nothing);
        watch.end_turn();
        assert_eq!(watch.next(|| false), Next::Close);
        assert!(watch.mark_closed());
        assert!(!watch.mark_closed(), "closed once");
        assert!(matches!(watch.finish(), Some(Ending::Resolve("promise"))));
        watch.close();
        assert_eq!(
            watch.next(|| false),
            Next::Nothing,
            "closing twice is a no-op"
        );
        assert!(!watch.begin_turn());
        assert_eq!(
            watch.can_start().unwrap_err().code(),
            "ERR_NEXUS_DISPATCHER_CLOSED"
        );
    }

    #[test]
    fn close_when_not_watching_closes_at_once() {
        let mut watch = W::new();
        watch.close();
        assert_eq!(watch.next(|| false), Next::Close);
        assert!(watch.mark_closed());
        assert!(watch.finish().is_none());
    }
}
