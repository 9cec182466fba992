//! The spin policy: polling a while before sleeping, for a process whose peer answers within
//! microseconds (a crew member between tasks: waking a sleeping process costs the peer's write
//! about 20 µs on this project's machine).
//!
//! After a turn woken by I/O leaves nothing due, [`Spin::linger`] polls without sleeping
//! (yielding the CPU between polls) until something is due or the spin has passed. A spin that
//! finds nothing turns spinning off until a pause measured asleep is shorter than the spin, so a
//! dispatcher fed slowly sleeps as usual.
//!
//! The spin gives way to the rest of the outer loop: it does not start while that loop has work
//! due (a timer, an immediate), ends before its next timer or the next alarm, and (on Linux) ends
//! as soon as the outer loop's own poller has an event, so a pool's parent can spin for its
//! results without holding up the application's sockets and timers.

use crate::dispatcher::Dispatcher;
use std::os::fd::RawFd;
use std::time::{Duration, Instant};

/// What a spin needs of the loop it runs inside (Node's libuv loop, for the binding).
pub trait OuterLoop {
    /// The outer loop's poller descriptor, readable when any of its descriptors has news
    /// (libuv's `uv_backend_fd`). Polled only, on Linux.
    fn backend_fd(&self) -> RawFd;

    /// How long until the outer loop's next timer, counted from now: zero when it has work due
    /// now, `None` when no timer is set (libuv's `uv_backend_timeout`).
    fn next_timer(&mut self) -> Option<Duration>;
}

/// The spin policy of one dispatcher.
#[derive(Debug, Clone)]
pub struct Spin {
    /// How long to poll before sleeping (zero: never).
    spin: Duration,
    /// Whether the next idle moment spins: no after a spin that found nothing, yes again once a
    /// pause measured asleep (from `asleep_since`) was shorter than `spin`.
    spinning: bool,
    asleep_since: Option<Instant>,
}

impl Spin {
    /// Polls up to `spin` before sleeping; zero never spins.
    pub fn new(spin: Duration) -> Spin {
        Spin {
            spin,
            spinning: true,
            asleep_since: None,
        }
    }

    /// Whether the next idle moment spins.
    pub fn is_spinning(&self) -> bool {
        self.spinning
    }

    /// A turn woken by I/O begins at `now`: a pause since the dispatcher went to sleep that was
    /// shorter than the spin turns spinning back on. Only such a turn measures the pause: a
    /// timer or an immediate that comes soon after a fruitless spin is no peer answering quickly.
    pub fn woke(&mut self, now: Instant) {
        if let Some(since) = self.asleep_since.take() {
            self.spinning = now.saturating_duration_since(since) < self.spin;
        }
    }

    /// After a turn woken by I/O, with nothing of the dispatcher's due: spins, if the policy
    /// says so, until a poll finds news or the spin ends. Any news (a ready channel, a wake-up
    /// for a closed one, a flush that finished) then reaches the next turn through the outer
    /// loop as usual: a descriptor is polled, never the selector, so nothing is taken out of it.
    pub fn linger<H>(&mut self, dispatcher: &mut Dispatcher<H>, outer: &mut impl OuterLoop) {
        if self.spin.is_zero() || dispatcher.has_due() || dispatcher.is_idle() {
            return;
        }
        if !self.spinning {
            self.asleep_since = Some(Instant::now());
            return;
        }
        let Some((until, bounded)) = self.deadline(dispatcher, outer) else {
            return;
        };
        // On Linux the descriptor polled is the outer loop's poller, which holds the selector's:
        // it has news when any of the loop's descriptors has. Elsewhere a poller's descriptor
        // (kqueue) is not reliably pollable: the selector's is polled, and the spin gives way to
        // timers only.
        let fd = if cfg!(target_os = "linux") {
            outer.backend_fd()
        } else {
            dispatcher.fd()
        };
        let mut watched = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        loop {
            // SAFETY: one pollfd of ours, no wait.
            if unsafe { libc::poll(&mut watched, 1, 0) } > 0 {
                return;
            }
            if Instant::now() >= until {
                break;
            }
            std::thread::yield_now();
        }
        // Cut short by a timer: that found nothing, but says nothing of how fast peers answer.
        if !bounded {
            self.spinning = false;
            self.asleep_since = Some(Instant::now());
        }
    }

    /// When a spin starting now must end, and whether a timer (the outer loop's next, or an
    /// alarm) ends it before the spin has passed; `None` when the outer loop has work due now,
    /// which the spin would hold up.
    fn deadline<H>(
        &self,
        dispatcher: &mut Dispatcher<H>,
        outer: &mut impl OuterLoop,
    ) -> Option<(Instant, bool)> {
        let outer_timer = outer.next_timer();
        let now = Instant::now();
        let outer_timer = match outer_timer {
            Some(wait) if wait.is_zero() => return None,
            Some(wait) => Some(now + wait),
            None => None,
        };
        let timer = outer_timer
            .into_iter()
            .chain(dispatcher.next_deadline())
            .min();
        let spun = now + self.spin;
        Some(match timer {
            Some(t) if t < spun => (t, true),
            _ => (spun, false),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channel::{pipe, SharedChannel};
    use crate::dispatcher::Readiness;
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;

    /// An outer loop whose poller is one end of a socket pair, and whose next timer is fixed.
    struct Outer {
        poller: UnixStream,
        timer: Option<Duration>,
    }

    impl OuterLoop for Outer {
        fn backend_fd(&self) -> RawFd {
            self.poller.as_raw_fd()
        }

        fn next_timer(&mut self) -> Option<Duration> {
            self.timer
        }
    }

    /// A socket pair: `news` makes the outer loop's poller readable.
    fn outer(timer: Option<Duration>) -> (Outer, UnixStream) {
        let (poller, news) = UnixStream::pair().unwrap();
        (Outer { poller, timer }, news)
    }

    /// A dispatcher waiting for a channel that has nothing: not idle, nothing due.
    fn waiting() -> (Dispatcher<()>, SharedChannel, SharedChannel) {
        let (a, b) = pipe().unwrap();
        let (a, b) = (a.shared(), b.shared());
        let mut dispatcher = Dispatcher::new().unwrap();
        dispatcher.when(&b, Readiness::Read, ()).unwrap();
        (dispatcher, a, b)
    }

    const LONG: Duration = Duration::from_secs(30);

    #[test]
    fn news_in_the_outer_loop_ends_a_spin_and_keeps_spinning_on() {
        let (mut dispatcher, _a, _b) = waiting();
        let (mut outer, mut news) = outer(None);
        std::io::Write::write_all(&mut news, b"!").unwrap();
        let mut spin = Spin::new(LONG);
        // A spin that ignored the news would run its whole 30 s, then turn spinning off.
        spin.linger(&mut dispatcher, &mut outer);
        assert!(spin.is_spinning());
    }

    #[test]
    fn work_due_in_the_outer_loop_means_no_spin() {
        let (mut dispatcher, _a, _b) = waiting();
        let (mut outer, _news) = outer(Some(Duration::ZERO));
        let mut spin = Spin::new(LONG);
        // A spin that went ahead would run its whole 30 s, then turn spinning off.
        spin.linger(&mut dispatcher, &mut outer);
        assert!(spin.is_spinning());
    }

    #[test]
    fn a_spin_cut_short_by_a_timer_leaves_spinning_on() {
        let (mut dispatcher, _a, _b) = waiting();
        let (mut outer, _news) = outer(Some(Duration::from_millis(1)));
        let mut spin = Spin::new(LONG);
        spin.linger(&mut dispatcher, &mut outer);
        assert!(spin.is_spinning());
        // An alarm of the dispatcher's own cuts it short as well.
        let (mut outer, _news) = self::outer(None);
        dispatcher.alarm(Duration::from_millis(1), ());
        spin.linger(&mut dispatcher, &mut outer);
        assert!(spin.is_spinning());
    }

    #[test]
    fn a_fruitless_spin_turns_spinning_off_until_a_pause_shorter_than_the_spin() {
        let (mut dispatcher, _a, _b) = waiting();
        let (mut outer, _news) = outer(None);
        let spin_for = Duration::from_millis(2);
        let mut spin = Spin::new(spin_for);
        spin.linger(&mut dispatcher, &mut outer);
        assert!(!spin.is_spinning(), "a spin that found nothing");
        let slept = Instant::now();
        // Not spinning: the next idle moment sleeps at once, and the pause is measured.
        spin.linger(&mut dispatcher, &mut outer);
        spin.woke(slept + Duration::from_secs(1));
        assert!(!spin.is_spinning(), "a long pause leaves spinning off");
        spin.linger(&mut dispatcher, &mut outer);
        // The pause counts from no earlier than `slept`: waking at `slept` is a short one.
        spin.woke(slept);
        assert!(spin.is_spinning(), "a short pause turns spinning back on");
    }

    #[test]
    fn nothing_to_wait_for_or_something_due_means_no_spin() {
        let (mut outer, _news) = outer(None);
        let mut spin = Spin::new(LONG);
        let mut idle = Dispatcher::<()>::new().unwrap();
        spin.linger(&mut idle, &mut outer);
        let (mut dispatcher, a, _b) = waiting();
        a.borrow_mut().write(b"x").unwrap();
        let mut turn = crate::Turn::new();
        turn.begin(&mut dispatcher, Some(LONG)).unwrap();
        turn.end(&mut dispatcher);
        assert!(dispatcher.has_due());
        spin.linger(&mut dispatcher, &mut outer);
        assert!(spin.is_spinning());
    }
}
