//! A blocking driver for the dispatcher, standing in for Node's loop in tests.
#![allow(dead_code)]

use pyre_nexus_core::{pipe, Call, Dispatcher, HandlerId, Readiness, SharedChannel};
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

/// A connected socket pair, shared as the dispatcher holds channels.
pub fn pair() -> (SharedChannel, SharedChannel) {
    let (a, b) = pipe().unwrap();
    (a.shared(), b.shared())
}

/// An alarm says how long until it runs again, or `None` to be dropped.
pub type AlarmFn = dyn Fn(&Loop) -> Option<Duration>;

#[derive(Clone)]
pub enum Handler {
    Ready(Rc<dyn Fn(&Loop) -> bool>),
    Alarm(Rc<AlarmFn>),
}

pub struct Loop {
    pub dispatcher: RefCell<Dispatcher<Handler>>,
    pub stopped: Cell<bool>,
    pub turns: Cell<usize>,
}

impl Loop {
    pub fn new() -> Loop {
        Loop {
            dispatcher: RefCell::new(Dispatcher::new().unwrap()),
            stopped: Cell::new(false),
            turns: Cell::new(0),
        }
    }

    pub fn when(
        &self,
        channel: &SharedChannel,
        readiness: Readiness,
        f: impl Fn(&Loop) -> bool + 'static,
    ) -> HandlerId {
        self.dispatcher
            .borrow_mut()
            .when(channel, readiness, Handler::Ready(Rc::new(f)))
            .unwrap()
    }

    pub fn alarm(
        &self,
        after: Duration,
        f: impl Fn(&Loop) -> Option<Duration> + 'static,
    ) -> HandlerId {
        self.dispatcher
            .borrow_mut()
            .alarm(after, Handler::Alarm(Rc::new(f)))
    }

    pub fn stop(&self) {
        self.stopped.set(true);
    }

    /// Runs turns until stopped or idle; panics if that takes longer than `limit` (a hung test).
    pub fn watch(&self, limit: Duration) {
        let give_up = Instant::now() + limit;
        let (mut calls, mut dropped) = (Vec::new(), Vec::new());
        self.stopped.set(false);
        while !self.stopped.get() && !self.dispatcher.borrow().is_idle() {
            assert!(
                Instant::now() < give_up,
                "the loop did not finish within {limit:?}"
            );
            let timeout = {
                let mut d = self.dispatcher.borrow_mut();
                let until_alarm = d
                    .next_deadline()
                    .map(|t| t.saturating_duration_since(Instant::now()));
                let wait = if d.has_due() {
                    Some(Duration::ZERO)
                } else {
                    until_alarm
                };
                Some(
                    wait.unwrap_or(Duration::from_millis(100))
                        .min(give_up.saturating_duration_since(Instant::now())),
                )
            };
            self.dispatcher.borrow_mut().poll(timeout).unwrap();
            self.dispatcher
                .borrow_mut()
                .collect(Instant::now(), &mut calls, &mut dropped);
            dropped.clear();
            self.turns.set(self.turns.get() + 1);
            for call in calls.drain(..) {
                if self.stopped.get() {
                    break;
                }
                let id = match call {
                    Call::Ready(id) | Call::Alarm(id) => id,
                };
                let Some(handler) = self.dispatcher.borrow().handler(id).cloned() else {
                    continue;
                };
                match handler {
                    Handler::Ready(f) => {
                        let keep = f(self);
                        self.dispatcher.borrow_mut().complete(id, keep);
                    }
                    Handler::Alarm(f) => {
                        let again = f(self);
                        self.dispatcher.borrow_mut().rearm(id, again);
                    }
                }
            }
            calls.clear();
            self.dispatcher.borrow_mut().settle();
        }
    }
}

pub const LIMIT: Duration = Duration::from_secs(20);
