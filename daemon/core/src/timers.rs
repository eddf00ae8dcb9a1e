//! Pending wake-ups, fired in (time, scheduling order).
//!
//! Most timers of a router have a constant delay per queue (offer timeout,
//! wrap-up, preferred-agent window, each relaxation step), so timers of one
//! kind and queue are scheduled in time order. They go into FIFO *lanes*:
//! O(1) to schedule and to fire, and cache-friendly, where a heap of every
//! waiting contact's wake-up would cost O(log n) misses each. Timers that
//! arrive out of order for their lane (a contact back from RONA keeps its old
//! relaxation times) and callbacks go into a binary heap. A small heap of
//! lane fronts finds the next lane to fire.
//!
//! Entries are never removed early: each is checked against the state it
//! refers to when it fires (a contact's `next_wake`, an offer still pending, a
//! wrap-up still running), which keeps rescheduling cheap and cancellation free.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

use rustc_hash::FxHashMap;

use crate::ids::{ContactId, OfferId};
use crate::time::Time;

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug, serde::Serialize, serde::Deserialize)]
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

type Entry = (Time, u64, Timer);

#[derive(Default, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct Timers {
    heap: BinaryHeap<Reverse<Entry>>,
    lanes: Vec<VecDeque<Entry>>,
    lane_ids: FxHashMap<u64, u32>,
    /// (time, seq) of lane fronts; stale once that entry has left its lane.
    fronts: BinaryHeap<Reverse<(Time, u64, u32)>>,
    seq: u64,
}

impl Timers {
    /// Schedules a timer with no particular order.
    pub(crate) fn schedule(&mut self, at: Time, timer: Timer) {
        self.seq += 1;
        self.heap.push(Reverse((at, self.seq, timer)));
    }

    /// Schedules a timer in `lane`, whose timers mostly come in time order.
    pub(crate) fn schedule_in_lane(&mut self, lane: u64, at: Time, timer: Timer) {
        let lanes = &mut self.lanes;
        let id = *self.lane_ids.entry(lane).or_insert_with(|| {
            lanes.push(VecDeque::new());
            (lanes.len() - 1) as u32
        });
        let fifo = &mut self.lanes[id as usize];
        if fifo.back().is_some_and(|&(t, _, _)| t > at) {
            return self.schedule(at, timer);
        }
        self.seq += 1;
        if fifo.is_empty() {
            self.fronts.push(Reverse((at, self.seq, id)));
        }
        fifo.push_back((at, self.seq, timer));
    }

    /// The earliest pending wake-up (possibly a stale one: firing it is a no-op).
    pub(crate) fn next(&self) -> Option<Time> {
        let heap = self.heap.peek().map(|Reverse((t, _, _))| *t);
        let lanes = self.fronts.peek().map(|Reverse((t, _, _))| *t);
        match (heap, lanes) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Removes and returns the earliest timer due at or before `now`.
    pub(crate) fn pop_due(&mut self, now: Time) -> Option<(Time, Timer)> {
        loop {
            let heap = self.heap.peek().map(|Reverse((t, s, _))| (*t, *s));
            let front = self.fronts.peek().map(|Reverse((t, s, lane))| (*t, *s, *lane));
            let take_lane = match (heap, front) {
                (Some(h), Some((t, s, _))) => (t, s) < h,
                (None, Some(_)) => true,
                _ => false,
            };
            if !take_lane {
                return match heap {
                    Some((t, _)) if t <= now => self.heap.pop().map(|Reverse((t, _, timer))| (t, timer)),
                    _ => None,
                };
            }
            let (t, s, lane) = front.expect("checked");
            if t > now {
                return None;
            }
            self.fronts.pop();
            let fifo = &mut self.lanes[lane as usize];
            if fifo.front().is_none_or(|&(_, fs, _)| fs != s) {
                continue; // stale front record
            }
            let (at, _, timer) = fifo.pop_front().expect("front exists");
            if let Some(&(nt, ns, _)) = fifo.front() {
                self.fronts.push(Reverse((nt, ns, lane)));
            }
            return Some((at, timer));
        }
    }
}

/// Lane keys: one lane per (kind, queue, step).
pub(crate) fn lane(kind: u8, queue: u16, step: u8) -> u64 {
    u64::from(kind) << 32 | u64::from(queue) << 8 | u64::from(step)
}

pub(crate) const LANE_OFFER: u8 = 0;
pub(crate) const LANE_WRAP_UP: u8 = 1;
pub(crate) const LANE_HOLD: u8 = 2;
pub(crate) const LANE_RELAX: u8 = 3;

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Lanes and heap together fire exactly what a sorted list of
        /// (time, scheduling order) would, whatever the order of scheduling.
        #[test]
        fn fires_in_time_then_scheduling_order(ops in prop::collection::vec((0u8..4, 0u64..50, 0u64..20), 1..300)) {
            let mut timers = Timers::default();
            let mut reference: Vec<(Time, u64, u32)> = Vec::new();
            let mut now = 0u64;
            for (i, (kind, delay, advance)) in ops.into_iter().enumerate() {
                let timer = Timer::ContactWake { slot: i as u32, gen: 0 };
                let at = Time::from_micros(now + delay);
                match kind {
                    0 => timers.schedule(at, timer),
                    k => timers.schedule_in_lane(u64::from(k), at, timer),
                }
                reference.push((at, i as u64, i as u32));
                now += advance;
                reference.sort();
                let mut fired = Vec::new();
                while let Some((t, Timer::ContactWake { slot, .. })) = timers.pop_due(Time::from_micros(now)) {
                    fired.push((t, slot));
                }
                let due = reference.iter().take_while(|(t, _, _)| t.as_micros() <= now).count();
                let expected: Vec<_> = reference.drain(..due).map(|(t, _, slot)| (t, slot)).collect();
                prop_assert_eq!(fired, expected);
                prop_assert_eq!(timers.next(), reference.first().map(|r| r.0));
            }
        }
    }
}
