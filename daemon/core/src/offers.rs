//! Offers in flight, and a bounded memory of how recent ones ended so that a
//! repeated accept or reject is answered the same way instead of failing.

use std::collections::VecDeque;

use crate::hashing::KeyedMap;
use crate::slab::{AgentSlot, ContactSlot};

use crate::error::OfferOutcome;
use crate::ids::{AgentId, ContactId, OfferId};
use crate::time::Time;

#[derive(Clone, Copy, Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct Offer {
    pub contact_slot: ContactSlot,
    pub contact: ContactId,
    pub agent_slot: AgentSlot,
    pub agent: AgentId,
    pub expires_at: Time,
}

#[derive(Clone, Copy, Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct EndedOffer {
    pub agent: AgentId,
    pub contact: ContactId,
    pub outcome: OfferOutcome,
}

/// An offer id's entry: ids are issued in sequence, so offers are kept in a
/// ring indexed by id, not hashed.
#[derive(Clone, Copy, Debug, serde::Serialize, serde::Deserialize)]
enum Entry {
    Pending(Offer),
    Ended(EndedOffer),
}

/// Every offer from the oldest still remembered on, by id. An ended offer is
/// forgotten once it is at the front and more than `history` ended offers
/// are remembered. An offer still pending at the front then (it has rung
/// while `history` others ended) moves aside to `stragglers`, so that no
/// offer left ringing holds every later one in the ring.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct Offers {
    ring: VecDeque<Entry>,
    /// The id of `ring[0]`; the next id issued is `first + ring.len()`.
    first: u64,
    /// Pending offers in the ring.
    pending_in_ring: usize,
    stragglers: KeyedMap<OfferId, Offer>,
    history: usize,
}

/// Room in the ring for offers still ringing, on top of the history: a
/// ring past it grows (once, by doubling), as it would under a flood.
const RINGING_RESERVE: usize = 4096;

impl Offers {
    pub(crate) fn new(history: usize) -> Self {
        let mut offers =
            Offers { ring: VecDeque::new(), first: 1, pending_in_ring: 0, stragglers: KeyedMap::default(), history };
        offers.reserve();
        offers
    }

    pub(crate) fn set_history(&mut self, history: usize) {
        self.history = history;
        self.forget();
        self.reserve();
    }

    /// Sizes the ring for the history and the offers ringing beyond it
    /// up front: it fills within the first `history` offers, and growing it
    /// then would copy megabytes on the routing thread in one decision.
    fn reserve(&mut self) {
        self.ring.reserve((self.history + RINGING_RESERVE).saturating_sub(self.ring.len()));
    }

    pub(crate) fn open(&mut self, offer: Offer) -> OfferId {
        let id = OfferId(self.first + self.ring.len() as u64);
        self.ring.push_back(Entry::Pending(offer));
        self.pending_in_ring += 1;
        id
    }

    /// The index of an id in the ring, if it is there.
    fn index(&self, id: OfferId) -> Option<usize> {
        let i = usize::try_from(id.0.checked_sub(self.first)?).ok()?;
        (i < self.ring.len()).then_some(i)
    }

    fn in_ring(&self, id: OfferId) -> Option<&Entry> {
        self.index(id).map(|i| &self.ring[i])
    }

    pub(crate) fn pending(&self, id: OfferId) -> Option<&Offer> {
        match self.in_ring(id) {
            Some(Entry::Pending(offer)) => Some(offer),
            Some(Entry::Ended(_)) => None,
            None => self.stragglers.get(&id),
        }
    }

    /// Ids of the pending offers, oldest first (a deterministic order).
    pub(crate) fn pending_ids(&self) -> Vec<OfferId> {
        let mut ids: Vec<OfferId> = self.stragglers.keys().copied().collect();
        ids.sort_unstable();
        let in_ring = (self.first..).zip(&self.ring).filter(|(_, e)| matches!(e, Entry::Pending(_)));
        ids.extend(in_ring.map(|(id, _)| OfferId(id)));
        ids
    }

    pub(crate) fn pending_count(&self) -> usize {
        self.pending_in_ring + self.stragglers.len()
    }

    /// Closes a pending offer and remembers its outcome.
    pub(crate) fn close(&mut self, id: OfferId, outcome: OfferOutcome) -> Offer {
        let Some(i) = self.index(id) else {
            // Ended offers this old are not remembered.
            return self.stragglers.remove(&id).expect("closing a pending offer");
        };
        let Entry::Pending(offer) = self.ring[i] else { panic!("closing a pending offer") };
        self.ring[i] = Entry::Ended(EndedOffer { agent: offer.agent, contact: offer.contact, outcome });
        self.pending_in_ring -= 1;
        self.forget();
        offer
    }

    pub(crate) fn ended(&self, id: OfferId) -> Option<EndedOffer> {
        match self.in_ring(id)? {
            Entry::Ended(ended) => Some(*ended),
            Entry::Pending(_) => None,
        }
    }

    /// The ids remembered (`first`, and the next to be issued) and the ended
    /// offers among them, by id: with the pending offers, all a restore
    /// needs ([`Offers::restore`]).
    pub(crate) fn history(&self) -> (OfferId, OfferId, impl Iterator<Item = (OfferId, EndedOffer)> + '_) {
        let ended = (self.first..).zip(&self.ring).filter_map(|(id, e)| match e {
            Entry::Ended(ended) => Some((OfferId(id), *ended)),
            Entry::Pending(_) => None,
        });
        (OfferId(self.first), OfferId(self.first + self.ring.len() as u64), ended)
    }

    /// Offers as [`Offers::history`] described them, with the pending ones
    /// (by id). Every id from `first` to `next` must be pending or ended;
    /// a pending one before `first` was moved aside, and stays aside.
    pub(crate) fn restore(
        history: usize,
        (first, next): (OfferId, OfferId),
        mut pending: std::collections::BTreeMap<OfferId, Offer>,
        ended: impl IntoIterator<Item = (OfferId, EndedOffer)>,
    ) -> Result<Offers, String> {
        if first > next || first.0 == 0 {
            return Err(format!("offer ids from {first} to {next}"));
        }
        if let Some((&last, _)) = pending.last_key_value().filter(|(&id, _)| id >= next) {
            return Err(format!("pending offer {last} was never issued (the next id is {next})"));
        }
        let mut offers = Offers::new(history);
        offers.first = first.0;
        let ring_pending = pending.split_off(&first);
        offers.stragglers.extend(pending);
        let mut ended = ended.into_iter().peekable();
        let mut ring_pending = ring_pending.into_iter().peekable();
        for id in first.0..next.0 {
            let entry = match (ring_pending.peek(), ended.peek()) {
                (Some(&(p, _)), Some(&(e, _))) if p.0 == id && e.0 == id => {
                    return Err(format!("offer {p} is both pending and ended"))
                }
                (Some(&(p, offer)), _) if p.0 == id => {
                    ring_pending.next();
                    offers.pending_in_ring += 1;
                    Entry::Pending(offer)
                }
                (_, Some(&(e, offer))) if e.0 == id => {
                    ended.next();
                    Entry::Ended(offer)
                }
                _ => return Err(format!("offer {id} is neither pending nor ended")),
            };
            offers.ring.push_back(entry);
        }
        if let Some((id, _)) = ended.next() {
            return Err(format!("ended offer {id} is out of order or outside {first}..{next}"));
        }
        offers.forget();
        offers.reserve();
        Ok(offers)
    }

    /// Drops ended offers from the front beyond the history kept, moving
    /// pending ones in the way aside.
    fn forget(&mut self) {
        while self.ring.len() - self.pending_in_ring > self.history {
            match self.ring.pop_front() {
                Some(Entry::Pending(offer)) => {
                    self.stragglers.insert(OfferId(self.first), offer);
                    self.pending_in_ring -= 1;
                }
                Some(Entry::Ended(_)) | None => {}
            }
            self.first += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Time;

    fn offer(n: u64) -> Offer {
        Offer {
            contact_slot: ContactSlot(0),
            contact: ContactId(n),
            agent_slot: AgentSlot(0),
            agent: AgentId(n),
            expires_at: Time::ZERO,
        }
    }

    #[test]
    fn an_offer_left_ringing_does_not_hold_later_ones_in_memory() {
        let mut offers = Offers::new(4);
        let ringing = offers.open(offer(0));
        let mut last = ringing;
        for n in 1..1_000 {
            last = offers.open(offer(n));
            offers.close(last, OfferOutcome::Accepted);
            assert!(offers.ring.len() <= 5, "{} offers in the ring", offers.ring.len());
        }
        // The last `history` ended offers are remembered; older ones are not.
        assert_eq!(offers.ended(last).map(|e| e.outcome), Some(OfferOutcome::Accepted));
        assert!(offers.ended(OfferId(last.0 - 4)).is_none());
        // The one left ringing is still pending, and can be closed.
        assert_eq!(offers.pending_ids(), vec![ringing]);
        assert_eq!(offers.pending(ringing).map(|o| o.contact), Some(ContactId(0)));
        assert_eq!(offers.close(ringing, OfferOutcome::Expired).contact, ContactId(0));
        assert_eq!(offers.pending_count(), 0);
        assert!(offers.pending(ringing).is_none());
    }

    /// The ring is sized at start: filling the window, with offers ringing
    /// on top of it, never grows it during a decision.
    #[test]
    fn the_ring_does_not_grow_as_the_window_fills() {
        let mut offers = Offers::new(1_000);
        let capacity = offers.ring.capacity();
        let mut ringing = std::collections::VecDeque::new();
        for n in 0..20_000 {
            ringing.push_back(offers.open(offer(n)));
            // Up to a few thousand offers ring at a time.
            if ringing.len() > 3_000 {
                offers.close(ringing.pop_front().expect("ringing"), OfferOutcome::Accepted);
            }
        }
        assert_eq!(offers.ring.capacity(), capacity);
    }
}
