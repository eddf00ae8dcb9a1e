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
//! Cancelling is free: an entry is checked against the state it refers to
//! when it fires (a contact's `next_wake`, an offer still pending, a wrap-up
//! still running). But most offers end long before they would expire, and
//! most contacts leave before their next relaxation step, so a lane would
//! hold every such dead entry until its time came: memory and snapshots
//! growing with rate × timeout, and the routing thread stalled each time the
//! lane's buffer doubled. So each scheduling in a lane also drops a couple of
//! dead entries from that lane's front (the caller says which are dead):
//! O(1) a call, and the lanes stay close to their live entries.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

use crate::hashing::KeyedMap;
use crate::slab::{AgentSlot, ContactSlot};

use crate::ids::{ContactId, OfferId, SessionId};
use crate::time::Time;

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug, serde::Serialize, serde::Deserialize)]
pub(crate) enum Timer {
    /// Relaxation step, end of a preferred-agent hold, or a callback coming due.
    ContactWake {
        slot: ContactSlot,
        gen: u32,
    },
    OfferExpiry {
        offer: OfferId,
    },
    WrapUpEnd {
        agent_slot: AgentSlot,
        contact: ContactId,
    },
    /// The end of a lost session's grace.
    SessionGrace {
        session: SessionId,
    },
}

pub(crate) type Entry = (Time, u64, Timer);

#[derive(Default, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct Timers {
    heap: BinaryHeap<Reverse<Entry>>,
    lanes: Vec<VecDeque<Entry>>,
    lane_ids: KeyedMap<u64, u32>,
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

    /// Schedules a timer in `lane`, whose timers mostly come in time order,
    /// and drops up to [`TRIM_PER_SCHEDULE`] entries from the lane's front
    /// for which `is_dead(at, timer)` holds: entries whose firing could no
    /// longer do anything, now or later.
    pub(crate) fn schedule_in_lane(
        &mut self,
        lane: u64,
        at: Time,
        timer: Timer,
        mut is_dead: impl FnMut(Time, Timer) -> bool,
    ) {
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
        // Never the last entry: a non-empty lane keeps its one record in
        // `fronts`, which `pop_due` moves on to the new front if need be.
        for _ in 0..TRIM_PER_SCHEDULE {
            match fifo.front() {
                Some(&(t, _, dead)) if fifo.len() > 1 && is_dead(t, dead) => fifo.pop_front(),
                _ => break,
            };
        }
    }

    /// Every entry held, dead ones included, as (time, order set, timer),
    /// in no particular order.
    pub(crate) fn entries(&self) -> impl Iterator<Item = Entry> + '_ {
        self.heap.iter().map(|Reverse(e)| *e).chain(self.lanes.iter().flatten().copied())
    }

    /// Entries held, dead ones not yet dropped included.
    pub(crate) fn len(&self) -> usize {
        self.heap.len() + self.lanes.iter().map(VecDeque::len).sum::<usize>()
    }

    /// The earliest pending wake-up (possibly a stale one: firing it is a no-op).
    pub(crate) fn next(&self) -> Option<Time> {
        let heap = self.heap.peek().map(|Reverse((t, _, _))| *t);
        let lanes = self.fronts.peek().map(|Reverse((t, _, _))| *t);
        heap.into_iter().chain(lanes).min()
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
            match fifo.front() {
                None => continue,
                // Its front was trimmed: the record moves on to the new one.
                Some(&(ft, fs, _)) if fs != s => {
                    self.fronts.push(Reverse((ft, fs, lane)));
                    continue;
                }
                Some(_) => {}
            }
            let (at, _, timer) = fifo.pop_front().expect("front exists");
            if let Some(&(nt, ns, _)) = fifo.front() {
                self.fronts.push(Reverse((nt, ns, lane)));
            }
            return Some((at, timer));
        }
    }
}

/// Dead entries a scheduling drops at most from its lane's front: more than
/// one, so that the lanes shrink back after a burst, and few, so that no
/// call does more than constant work.
const TRIM_PER_SCHEDULE: usize = 2;

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
        /// (time, scheduling order) would, whatever the order of scheduling,
        /// leaving out only timers declared dead (which may fire or not: the
        /// router ignores them).
        #[test]
        fn fires_in_time_then_scheduling_order(
            ops in prop::collection::vec((0u8..4, 0u64..50, 0u64..20, 0usize..6), 1..300)
        ) {
            let mut timers = Timers::default();
            let mut reference: Vec<(Time, u64, ContactSlot)> = Vec::new();
            let mut dead = std::collections::HashSet::new();
            let mut now = 0u64;
            for (i, (kind, delay, advance, cancel)) in ops.into_iter().enumerate() {
                let timer = Timer::ContactWake { slot: ContactSlot(i as u32), gen: 0 };
                let at = Time::from_micros(now + delay);
                match kind {
                    0 => timers.schedule(at, timer),
                    k => timers.schedule_in_lane(u64::from(k), at, timer, |_, t| match t {
                        Timer::ContactWake { slot, .. } => dead.contains(&slot),
                        _ => false,
                    }),
                }
                reference.push((at, i as u64, ContactSlot(i as u32)));
                if cancel < 2 {
                    let victim = reference[(i * 7 + cancel) % reference.len()].2;
                    dead.insert(victim);
                }
                now += advance;
                reference.sort();
                let mut fired = Vec::new();
                while let Some((t, Timer::ContactWake { slot, .. })) = timers.pop_due(Time::from_micros(now)) {
                    if !dead.contains(&slot) {
                        fired.push((t, slot));
                    }
                }
                let due = reference.iter().take_while(|(t, _, _)| t.as_micros() <= now).count();
                let expected: Vec<_> =
                    reference.drain(..due).filter(|r| !dead.contains(&r.2)).map(|(t, _, slot)| (t, slot)).collect();
                prop_assert_eq!(fired, expected);
                let first_live = reference.iter().find(|r| !dead.contains(&r.2)).map(|r| r.0);
                if let Some(first) = first_live {
                    prop_assert!(timers.next().is_some_and(|t| t <= first), "the next wake-up is not late");
                }
            }
        }
    }

    /// Offers mostly end long before they expire: their timers must not stay
    /// in the lane until then.
    #[test]
    fn dead_entries_do_not_pile_up_in_a_lane() {
        let mut timers = Timers::default();
        for n in 0..100_000u64 {
            let at = Time::from_micros(1_000_000_000 + n);
            let offer = OfferId(n);
            // Every offer but the newest has ended.
            timers.schedule_in_lane(7, at, Timer::OfferExpiry { offer }, |_, t| t != Timer::OfferExpiry { offer });
        }
        let longest = timers.lanes.iter().map(VecDeque::len).max();
        assert!(longest.is_some_and(|l| l <= 2), "lane length {longest:?}");
        // The one live timer still fires, at its time.
        let fired: Vec<_> = std::iter::from_fn(|| timers.pop_due(Time::from_micros(2_000_000_000))).collect();
        assert_eq!(fired, vec![(Time::from_micros(1_000_099_999), Timer::OfferExpiry { offer: OfferId(99_999) })]);
    }
}
