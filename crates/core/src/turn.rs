//! A turn: what the loop does each time it wakes. It takes what mio has, collects the calls due,
//! hands them one at a time to the caller (who makes them with no borrow of the dispatcher held,
//! and reports each [`Outcome`]), and ends by queueing again the channels left ready.
//!
//! The binding runs a turn from libuv's callbacks with a zero timeout; `tests/util` runs one
//! with a timeout, standing in for Node's loop. Both go through this type, so the algorithm has
//! one home.

use crate::dispatcher::{Call, Dispatcher};
use crate::error::Result;
use std::time::{Duration, Instant};

/// One turn's lists, kept from turn to turn so that a turn allocates nothing once they have
/// grown to the loop's usual size.
pub struct Turn<H> {
    calls: Vec<Call>,
    next: usize,
    dropped: Vec<H>,
}

impl<H> Default for Turn<H> {
    fn default() -> Self {
        Turn {
            calls: Vec::new(),
            next: 0,
            dropped: Vec::new(),
        }
    }
}

impl<H> Turn<H> {
    /// Empty lists.
    pub fn new() -> Self {
        Self::default()
    }

    /// Begins a turn: waits up to `timeout` (none: forever; an outer loop that has seen the
    /// dispatcher's descriptor readable passes zero) for readiness, and collects the calls due
    /// now. Handlers of channels closed since the last turn are dropped here.
    pub fn begin(
        &mut self,
        dispatcher: &mut Dispatcher<H>,
        timeout: Option<Duration>,
    ) -> Result<()> {
        self.calls.clear();
        self.next = 0;
        dispatcher.poll(timeout)?;
        dispatcher.collect(Instant::now(), &mut self.calls, &mut self.dropped);
        self.dropped.clear();
        Ok(())
    }

    /// The next call to make and its handler, skipping those whose handler went since the turn
    /// began (an earlier call cancelled it or closed its channel). The caller makes the call
    /// with no borrow of the dispatcher held, then [`report`](Dispatcher::report)s its outcome;
    /// it stops asking when its loop is told to stop.
    pub fn next<'d>(&mut self, dispatcher: &'d Dispatcher<H>) -> Option<(Call, &'d H)> {
        while let Some(&call) = self.calls.get(self.next) {
            self.next += 1;
            if let Some(handler) = dispatcher.handler(call.id()) {
                return Some((call, handler));
            }
        }
        None
    }

    /// Ends the turn: calls not made (the loop stopped) are forgotten, and channels whose
    /// handlers left them ready (data unread, room to write) are queued for the next turn,
    /// which is what makes readiness level-triggered.
    pub fn end(&mut self, dispatcher: &mut Dispatcher<H>) {
        self.calls.clear();
        self.next = 0;
        dispatcher.settle();
    }
}
