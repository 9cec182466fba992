//! A blocking driver for the dispatcher, standing in for Node's loop in tests: the binding's
//! loop with a waiting poll instead of libuv, through the same core types (`Watch`, `Turn`,
//! `Outcome`).
#![allow(dead_code)]

use pyre_nexus_core::{
    pipe, Dispatcher, HandlerId, Next, Outcome, Readiness, SharedChannel, Turn, Watch,
};
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
    /// Settled by nothing: a blocking watch returns instead.
    pub watch: RefCell<Watch<(), ()>>,
    pub turns: Cell<usize>,
}

impl Loop {
    pub fn new() -> Loop {
        Loop {
            dispatcher: RefCell::new(Dispatcher::new().unwrap()),
            watch: RefCell::new(Watch::new()),
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
        self.watch.borrow_mut().stop();
    }

    /// Runs turns until stopped or idle; panics if that takes longer than `limit` (a hung test).
    pub fn watch(&self, limit: Duration) {
        let give_up = Instant::now() + limit;
        self.watch.borrow_mut().can_start().unwrap();
        self.watch.borrow_mut().start(());
        let mut turn = Turn::new();
        loop {
            let next = self
                .watch
                .borrow()
                .next(|| self.dispatcher.borrow().is_idle());
            match next {
                Next::Wait => {}
                Next::Finish => {
                    self.watch.borrow_mut().finish();
                    return;
                }
                Next::Nothing | Next::Close => unreachable!("{next:?} outside a turn"),
            }
            assert!(
                Instant::now() < give_up,
                "the loop did not finish within {limit:?}"
            );
            assert!(self.watch.borrow_mut().begin_turn());
            let timeout = self.timeout(give_up);
            turn.begin(&mut self.dispatcher.borrow_mut(), Some(timeout))
                .unwrap();
            self.turns.set(self.turns.get() + 1);
            while self.watch.borrow().goes_on() {
                let Some((call, handler)) = turn
                    .next(&self.dispatcher.borrow())
                    .map(|(call, handler)| (call, handler.clone()))
                else {
                    break;
                };
                let outcome = match handler {
                    Handler::Ready(f) => Outcome::of_ready(f(self)),
                    Handler::Alarm(f) => f(self).map_or(Outcome::Done, Outcome::Again),
                };
                self.dispatcher.borrow_mut().report(call, outcome);
            }
            turn.end(&mut self.dispatcher.borrow_mut());
            self.watch.borrow_mut().end_turn();
        }
    }

    /// How long a turn may wait: not at all with calls due, until the next alarm, or a while.
    fn timeout(&self, give_up: Instant) -> Duration {
        let mut d = self.dispatcher.borrow_mut();
        let wait = if d.has_due() {
            Duration::ZERO
        } else {
            d.next_deadline().map_or(Duration::from_millis(100), |t| {
                t.saturating_duration_since(Instant::now())
            })
        };
        wait.min(give_up.saturating_duration_since(Instant::now()))
    }
}

pub const LIMIT: Duration = Duration::from_secs(20);
