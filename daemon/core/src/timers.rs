//! Pending wake-ups. A binary heap of (time, kind); entries are never removed
//! early, instead each is checked against the state it refers to when it
//! fires (a contact's `next_wake`, an offer still pending, a wrap-up still
//! running), which keeps every reschedule O(log n) and cancellation free.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::ids::{ContactId, OfferId};
use crate::time::Time;

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub(crate) enum Timer {
    /// Relaxation step, end of a preferred-agent hold, or a callback coming due.
    ContactWake {
        slot: u32,
        gen: u32,
    },
    OfferExpiry {
        offer: OfferId,
    },
    WrapUpEnd {
        agent_slot: u32,
        contact: ContactId,
    },
}

#[derive(Default)]
pub(crate) struct Timers {
    heap: BinaryHeap<Reverse<(Time, u64, Timer)>>,
    seq: u64,
}

impl Timers {
    pub(crate) fn schedule(&mut self, at: Time, timer: Timer) {
        self.seq += 1;
        self.heap.push(Reverse((at, self.seq, timer)));
    }

    /// The earliest pending wake-up (possibly a stale one: firing it is a no-op).
    pub(crate) fn next(&self) -> Option<Time> {
        self.heap.peek().map(|Reverse((t, _, _))| *t)
    }

    /// Removes and returns the earliest timer due at or before `now`.
    pub(crate) fn pop_due(&mut self, now: Time) -> Option<(Time, Timer)> {
        match self.heap.peek() {
            Some(Reverse((t, _, _))) if *t <= now => self.heap.pop().map(|Reverse((t, _, timer))| (t, timer)),
            _ => None,
        }
    }
}
