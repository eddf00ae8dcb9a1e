//! The longest-waiting contact of each queue, for its statistics, without a
//! scan of the contacts.
//!
//! Rank order is not arrival order (deadlines, tiers, a reconfigured policy),
//! so the queue's order of ranks cannot say who has waited longest. Instead
//! each queue keeps an entry per contact that started waiting, by arrival:
//! a FIFO for those that arrive in order (nearly all), and a min-heap beside
//! it for the few that start waiting with an older arrival (back after an
//! offer rang out, transferred or overflowed in with their first arrival).
//!
//! An entry is current while its contact still waits under the stamp it was
//! entered with ([`Stamps`], one dense array for all queues). A contact that
//! stops waiting leaves its entry behind; when that entry is at the front, it
//! and the dead entries after it are dropped at once, so the fronts are
//! always current and the oldest wait is read in O(1). Dead entries further
//! back are swept once they outnumber the living: amortised O(1) per entry,
//! and as a contact starts waiting, at most twice as many entries as waiting
//! contacts plus a constant (stops only take entries away).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

use crate::slab::ContactSlot;
use crate::time::Time;

/// One contact's start of waiting in a queue.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct Entry {
    pub arrival: Time,
    pub slot: ContactSlot,
    pub stamp: u32,
}

/// Per contact slot, the stamp its contact waits under, 0 while it does not
/// wait. Stamps come from one counter, so an entry is current while its stamp
/// is still its slot's: one compare in a dense array (4 bytes a slot) tells,
/// without reading the contact, and a contact that stops waiting only stores
/// a 0. A stale entry would be taken for current only if it outlived
/// 2^32 − 1 more starts (50 days at 1,000 a second) and its own slot were
/// the one started when the counter came round to its stamp again.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct Stamps {
    by_slot: Vec<u32>,
    next: u32,
}

impl Default for Stamps {
    fn default() -> Self {
        Stamps { by_slot: Vec::new(), next: 1 }
    }
}

impl Stamps {
    /// The contact in `slot` starts waiting: its new stamp.
    pub(crate) fn start(&mut self, slot: ContactSlot) -> u32 {
        let i = slot.0 as usize;
        if self.by_slot.len() <= i {
            self.by_slot.resize(i + 1, 0);
        }
        let stamp = self.next;
        self.next = self.next.checked_add(1).unwrap_or(1);
        self.by_slot[i] = stamp;
        stamp
    }

    /// The contact in `slot` stops waiting.
    pub(crate) fn stop(&mut self, slot: ContactSlot) {
        self.by_slot[slot.0 as usize] = 0;
    }

    fn is_current(&self, e: &Entry) -> bool {
        self.by_slot.get(e.slot.0 as usize) == Some(&e.stamp)
    }
}

/// The entries of one queue's waiting contacts by arrival; see the module
/// documentation.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct OldestWaiting {
    in_order: VecDeque<Entry>,
    out_of_order: BinaryHeap<Reverse<Entry>>,
    /// The slots of the two fronts' contacts ([`NO_SLOT`]: empty). The fronts
    /// are current, so a contact that stops waiting holds a front exactly
    /// when its slot is one of these: the check reads no entry.
    front_slots: [ContactSlot; 2],
}

const NO_SLOT: ContactSlot = ContactSlot::NONE;

impl Default for OldestWaiting {
    fn default() -> Self {
        OldestWaiting { in_order: VecDeque::new(), out_of_order: BinaryHeap::new(), front_slots: [NO_SLOT; 2] }
    }
}

/// Dead entries are swept once all entries exceed twice the waiting contacts
/// plus this.
const SWEEP_SLACK: usize = 64;

impl OldestWaiting {
    /// A contact started waiting under `e.stamp`; `waiting` counts it.
    ///
    /// The fronts are read again only where they can have changed: the
    /// FIFO's front line is cold (it was written one queue's length ago).
    pub(crate) fn started(&mut self, e: Entry, waiting: u32, stamps: &Stamps) {
        if self.in_order.back().is_none_or(|back| back.arrival <= e.arrival) {
            if self.in_order.is_empty() {
                self.front_slots[0] = e.slot;
            }
            self.in_order.push_back(e);
        } else {
            self.out_of_order.push(Reverse(e));
            self.note_out_of_order_front();
        }
        if self.in_order.len() + self.out_of_order.len() > 2 * waiting as usize + SWEEP_SLACK {
            self.in_order.retain(|e| stamps.is_current(e));
            self.out_of_order.retain(|Reverse(e)| stamps.is_current(e));
            self.note_in_order_front();
            self.note_out_of_order_front();
        }
    }

    /// The contact in `slot` stopped waiting (its stamp is cleared): if it
    /// held a front, that entry and the dead ones behind it are dropped.
    pub(crate) fn stopped(&mut self, slot: ContactSlot, stamps: &Stamps) {
        if self.front_slots[0] == slot {
            self.in_order.pop_front();
            while self.in_order.front().is_some_and(|f| !stamps.is_current(f)) {
                self.in_order.pop_front();
            }
            self.note_in_order_front();
        }
        if self.front_slots[1] == slot {
            self.out_of_order.pop();
            while self.out_of_order.peek().is_some_and(|Reverse(f)| !stamps.is_current(f)) {
                self.out_of_order.pop();
            }
            self.note_out_of_order_front();
        }
    }

    fn note_in_order_front(&mut self) {
        self.front_slots[0] = self.in_order.front().map_or(NO_SLOT, |e| e.slot);
    }

    fn note_out_of_order_front(&mut self) {
        self.front_slots[1] = self.out_of_order.peek().map_or(NO_SLOT, |Reverse(e)| e.slot);
    }

    /// The arrival of the longest-waiting contact.
    pub(crate) fn oldest(&self) -> Option<Time> {
        let in_order = self.in_order.front().map(|e| e.arrival);
        let out_of_order = self.out_of_order.peek().map(|Reverse(e)| e.arrival);
        in_order.into_iter().chain(out_of_order).min()
    }

    /// The slot of the longest-waiting contact.
    pub(crate) fn oldest_slot(&self) -> Option<ContactSlot> {
        let in_order = self.in_order.front().map(|e| (e.arrival, e.slot));
        let out_of_order = self.out_of_order.peek().map(|Reverse(e)| (e.arrival, e.slot));
        in_order.into_iter().chain(out_of_order).min().map(|(_, slot)| slot)
    }

    /// The slots of the contacts waiting now, in no particular order: what a
    /// supervisor's list reads instead of every contact.
    pub(crate) fn waiting_slots<'a>(&'a self, stamps: &'a Stamps) -> impl Iterator<Item = ContactSlot> + 'a {
        let entries = self.in_order.iter().chain(self.out_of_order.iter().map(|Reverse(e)| e));
        entries.filter(move |e| stamps.is_current(e)).map(|e| e.slot)
    }

    /// Entries kept, live and dead (for tests of the bound).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.in_order.len() + self.out_of_order.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    #[derive(Debug, Clone)]
    enum Op {
        /// A contact in this slot starts waiting, arrived this many seconds
        /// before the latest arrival so far (0: in order).
        Start { slot: u8, earlier: u8 },
        /// The contact in this slot (if waiting) stops.
        Stop { slot: u8 },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => (0u8..40, prop_oneof![4 => Just(0u8), 1 => 1u8..30]).prop_map(|(slot, earlier)| Op::Start { slot, earlier }),
            2 => (0u8..40).prop_map(|slot| Op::Stop { slot }),
        ]
    }

    proptest! {
        /// The oldest arrival equals the minimum over the waiting contacts
        /// after every step, and the entries stay within the bound.
        #[test]
        fn finds_the_oldest_as_a_scan_does(ops in proptest::collection::vec(op(), 1..400)) {
            let mut stamps = Stamps::default();
            let mut oldest = OldestWaiting::default();
            let mut waiting: BTreeMap<ContactSlot, Entry> = BTreeMap::new();
            let mut latest = 1_000u64;
            for op in ops {
                match op {
                    Op::Start { slot, earlier } => {
                        let slot = ContactSlot(u32::from(slot));
                        if waiting.contains_key(&slot) {
                            continue;
                        }
                        latest += u64::from(earlier == 0);
                        let arrival = Time::from_secs(latest - u64::from(earlier));
                        let e = Entry { arrival, slot, stamp: stamps.start(slot) };
                        waiting.insert(slot, e);
                        oldest.started(e, waiting.len() as u32, &stamps);
                        // The bound holds as each contact starts; stops
                        // only take entries away.
                        prop_assert!(oldest.len() <= 2 * waiting.len() + SWEEP_SLACK);
                    }
                    Op::Stop { slot } => {
                        let Some(e) = waiting.remove(&ContactSlot(u32::from(slot))) else { continue };
                        stamps.stop(e.slot);
                        oldest.stopped(e.slot, &stamps);
                    }
                }
                prop_assert_eq!(oldest.oldest(), waiting.values().map(|e| e.arrival).min());
            }
        }
    }

    #[test]
    fn a_queue_served_out_of_arrival_order_keeps_its_entries_bounded() {
        // The first contact waits throughout while 10,000 others come and go:
        // their entries die behind it, and sweeps keep them few.
        let mut stamps = Stamps::default();
        let mut oldest = OldestWaiting::default();
        let first = Entry { arrival: Time::from_secs(1), slot: ContactSlot(0), stamp: stamps.start(ContactSlot(0)) };
        oldest.started(first, 1, &stamps);
        for i in 0..10_000u64 {
            let e =
                Entry { arrival: Time::from_secs(2 + i), slot: ContactSlot(1), stamp: stamps.start(ContactSlot(1)) };
            oldest.started(e, 2, &stamps);
            stamps.stop(ContactSlot(1));
            oldest.stopped(ContactSlot(1), &stamps);
            assert!(oldest.len() <= 2 * 2 + SWEEP_SLACK, "{} entries", oldest.len());
        }
        assert_eq!(oldest.oldest(), Some(Time::from_secs(1)));
        stamps.stop(ContactSlot(0));
        oldest.stopped(ContactSlot(0), &stamps);
        assert_eq!(oldest.oldest(), None);
    }
}
