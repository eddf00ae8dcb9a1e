//! The bytes of events waiting in subscribers' queues, bounded in all by
//! `server.max_queued_event_bytes`.
//!
//! Each event is framed once and shared by every queue it waits in; each
//! queue's share is counted in its own ledger as well as in the total. A
//! subscriber dropped for falling behind is written off at once — its bytes
//! leave the total on the dispatcher's thread, not when its task gets round
//! to emptying its queue (which a client that does not read can delay), so
//! that one laggard never makes the others look over the limit.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;

/// Set in a ledger once it is written off: its items' drops then leave the
/// total alone (the write-off took their bytes out already).
const WRITTEN_OFF: usize = 1 << (usize::BITS - 1);

/// One subscriber's share of the total.
#[derive(Default)]
pub(super) struct Ledger {
    bytes: AtomicUsize,
}

impl Ledger {
    /// Bytes waiting in this subscriber's queue.
    pub(super) fn queued(&self) -> usize {
        self.bytes.load(Ordering::Acquire) & !WRITTEN_OFF
    }
}

/// One event as it waits in one subscriber's queue.
pub(super) struct Queued {
    pub framed: Bytes,
    ledger: Arc<Ledger>,
    total: Arc<AtomicUsize>,
}

impl Drop for Queued {
    fn drop(&mut self) {
        let n = self.framed.len();
        // Whichever of this and the write-off comes first in the ledger's
        // order takes these bytes out of the total, never both.
        if self.ledger.bytes.fetch_sub(n, Ordering::AcqRel) & WRITTEN_OFF == 0 {
            self.total.fetch_sub(n, Ordering::AcqRel);
        }
    }
}

pub(super) struct EventBudget {
    total: Arc<AtomicUsize>,
    max: usize,
}

impl EventBudget {
    pub(super) fn new(max: usize) -> Self {
        EventBudget { total: Arc::new(AtomicUsize::new(0)), max }
    }

    /// `framed` counted for `ledger`'s queue, or `None` when the total would
    /// go over the limit.
    pub(super) fn reserve(&self, ledger: &Arc<Ledger>, framed: &Bytes) -> Option<Queued> {
        let n = framed.len();
        if self.total.fetch_add(n, Ordering::AcqRel) + n > self.max {
            self.total.fetch_sub(n, Ordering::AcqRel);
            return None;
        }
        ledger.bytes.fetch_add(n, Ordering::AcqRel);
        Some(Queued { framed: framed.clone(), ledger: ledger.clone(), total: self.total.clone() })
    }

    /// Takes what waits in `ledger`'s queue out of the total now.
    pub(super) fn write_off(&self, ledger: &Ledger) {
        let before = ledger.bytes.fetch_or(WRITTEN_OFF, Ordering::AcqRel);
        if before & WRITTEN_OFF == 0 {
            self.total.fetch_sub(before, Ordering::AcqRel);
        }
    }

    /// Bytes waiting in all queues.
    #[cfg(test)]
    pub(super) fn total(&self) -> usize {
        self.total.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_past_the_limit_are_refused_and_drops_give_back() {
        let budget = EventBudget::new(100);
        let ledger = Arc::new(Ledger::default());
        let event = Bytes::from(vec![0u8; 40]);
        let a = budget.reserve(&ledger, &event).unwrap();
        let b = budget.reserve(&ledger, &event).unwrap();
        assert!(budget.reserve(&ledger, &event).is_none());
        assert_eq!((budget.total(), ledger.queued()), (80, 80));
        drop(a);
        assert_eq!((budget.total(), ledger.queued()), (40, 40));
        drop(b);
        assert_eq!(budget.total(), 0);
    }

    /// A written-off queue leaves the total at once; its items, dropped
    /// later, do not take their bytes out a second time.
    #[test]
    fn a_written_off_queue_leaves_the_total_once() {
        let budget = EventBudget::new(1000);
        let (laggard, other) = (Arc::new(Ledger::default()), Arc::new(Ledger::default()));
        let event = Bytes::from(vec![0u8; 100]);
        let held: Vec<Queued> = (0..5).map(|_| budget.reserve(&laggard, &event).unwrap()).collect();
        let kept = budget.reserve(&other, &event).unwrap();
        assert_eq!(budget.total(), 600);
        budget.write_off(&laggard);
        assert_eq!(budget.total(), 100, "only the other queue's event is left");
        budget.write_off(&laggard);
        assert_eq!(budget.total(), 100, "a second write-off changes nothing");
        drop(held);
        assert_eq!(budget.total(), 100);
        drop(kept);
        assert_eq!(budget.total(), 0);
    }

    /// Drops on other threads racing the write-off: the total ends at zero
    /// whatever the interleaving.
    #[test]
    fn drops_racing_a_write_off_never_count_twice() {
        for _ in 0..200 {
            let budget = Arc::new(EventBudget::new(usize::MAX >> 2));
            let ledger = Arc::new(Ledger::default());
            let event = Bytes::from(vec![0u8; 7]);
            let items: Vec<Queued> = (0..64).map(|_| budget.reserve(&ledger, &event).unwrap()).collect();
            let dropper = std::thread::spawn(move || drop(items));
            budget.write_off(&ledger);
            dropper.join().unwrap();
            assert_eq!(budget.total(), 0);
        }
    }
}
