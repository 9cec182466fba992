//! Alarms: a deadline heap. Cancelled entries are skipped when they surface, not searched for.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

/// Deadlines with a tie-breaking sequence number, so alarms set for the same instant fire in the
/// order they were set.
#[derive(Debug, Default)]
pub(crate) struct Alarms<K> {
    heap: BinaryHeap<Reverse<(Instant, u64, K)>>,
    seq: u64,
}

impl<K: Ord + Copy> Alarms<K> {
    pub fn new() -> Alarms<K> {
        Alarms {
            heap: BinaryHeap::new(),
            seq: 0,
        }
    }

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
