//! Offers in flight, and a bounded memory of how recent ones ended so that a
//! repeated accept or reject is answered the same way instead of failing.

use std::collections::VecDeque;

use rustc_hash::FxHashMap;

use crate::error::OfferOutcome;
use crate::ids::{AgentId, ContactId, OfferId};
use crate::time::Time;

#[derive(Clone, Copy, Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct Offer {
    pub contact_slot: u32,
    pub contact: ContactId,
    pub agent_slot: u32,
    pub agent: AgentId,
    pub expires_at: Time,
}

#[derive(Clone, Copy, Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct EndedOffer {
    pub agent: AgentId,
    pub contact: ContactId,
    pub outcome: OfferOutcome,
}

#[derive(Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct Offers {
    pending: FxHashMap<OfferId, Offer>,
    ended: FxHashMap<OfferId, EndedOffer>,
    ended_order: VecDeque<OfferId>,
    history: usize,
    next_id: u64,
}

impl Offers {
    pub(crate) fn new(history: usize) -> Self {
        Offers {
            pending: FxHashMap::default(),
            ended: FxHashMap::default(),
            ended_order: VecDeque::new(),
            history,
            next_id: 1,
        }
    }

    pub(crate) fn set_history(&mut self, history: usize) {
        self.history = history;
        while self.ended_order.len() > history {
            if let Some(old) = self.ended_order.pop_front() {
                self.ended.remove(&old);
            }
        }
    }

    pub(crate) fn open(&mut self, offer: Offer) -> OfferId {
        let id = OfferId(self.next_id);
        self.next_id += 1;
        self.pending.insert(id, offer);
        id
    }

    pub(crate) fn pending(&self, id: OfferId) -> Option<&Offer> {
        self.pending.get(&id)
    }

    /// Ids of the pending offers, oldest first (a deterministic order).
    pub(crate) fn pending_ids(&self) -> Vec<OfferId> {
        let mut ids: Vec<OfferId> = self.pending.keys().copied().collect();
        ids.sort_unstable();
        ids
    }

    pub(crate) fn pending_count(&self) -> usize {
        self.pending.len()
    }

    /// Closes a pending offer and remembers its outcome.
    pub(crate) fn close(&mut self, id: OfferId, outcome: OfferOutcome) -> Offer {
        let offer = self.pending.remove(&id).expect("closing a pending offer");
        if self.ended_order.len() >= self.history {
            if let Some(old) = self.ended_order.pop_front() {
                self.ended.remove(&old);
            }
        }
        self.ended.insert(id, EndedOffer { agent: offer.agent, contact: offer.contact, outcome });
        self.ended_order.push_back(id);
        offer
    }

    pub(crate) fn ended(&self, id: OfferId) -> Option<EndedOffer> {
        self.ended.get(&id).copied()
    }
}
