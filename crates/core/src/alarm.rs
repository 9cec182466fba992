//! Alarms: a deadline heap. Cancelled entries are skipped when they surface, not searched for.

use crate::error::{Error, Result};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

/// The longest alarm interval, in seconds (exclusive): about 31 years.
const MAX_SECONDS: f64 = 1e9;

/// An alarm interval in seconds, from 0 to less than 1e9 (about 31 years), as a duration.
pub(crate) fn interval(seconds: f64) -> Option<Duration> {
    (0.0..MAX_SECONDS)
        .contains(&seconds)
        .then(|| Duration::from_secs_f64(seconds))
}

/// An alarm interval given in seconds by a foreign caller, or an error saying what it must be.
pub fn alarm_interval(seconds: f64) -> Result<Duration> {
    interval(seconds).ok_or_else(|| Error::InvalidArgValue {
        what: format!(
            "the alarm interval must be a non-negative number of seconds under 1e9, got {seconds}"
        ),
    })
}

/// Deadlines with a tie-breaking sequence number, so alarms set for the same instant fire in the
/// order they were set.
#[derive(Debug, Default)]
pub(crate) struct Alarms<K> {
    heap: BinaryHeap<Reverse<(Instant, u64, K)>>,
    seq: u64,
}

impl<K: Ord + Copy> Alarms<K> {
    /// No alarms.
    pub fn new() -> Alarms<K> {
        Alarms {
            heap: BinaryHeap::new(),
            seq: 0,
        }
    }

    /// Sets an alarm for `key` at `deadline`.
    pub fn set(&mut self, deadline: Instant, key: K) {
        self.seq += 1;
        self.heap.push(Reverse((deadline, self.seq, key)));
    }

    /// The earliest deadline whose key `live` accepts, dropping dead entries on the way.
    pub fn next(&mut self, live: impl Fn(K) -> bool) -> Option<Instant> {
        while let Some(Reverse((deadline, _, key))) = self.heap.peek() {
            if live(*key) {
                return Some(*deadline);
            }
            self.heap.pop();
        }
        None
    }

    /// Removes and returns the key of one alarm due at `now`, if any.
    pub fn pop_due(&mut self, now: Instant) -> Option<K> {
        match self.heap.peek() {
            Some(Reverse((deadline, _, key))) if *deadline <= now => {
                let key = *key;
                self.heap.pop();
                Some(key)
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_run_from_zero_to_under_a_billion_seconds() {
        assert_eq!(interval(0.0), Some(Duration::ZERO));
        assert_eq!(interval(1.5), Some(Duration::from_millis(1500)));
        for refused in [-0.001, 1e9, f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            assert_eq!(interval(refused), None, "{refused}");
        }
        let error = alarm_interval(-1.0).unwrap_err();
        assert_eq!(error.code(), "ERR_INVALID_ARG_VALUE");
        assert!(error.to_string().ends_with("got -1"), "{error}");
    }
}
