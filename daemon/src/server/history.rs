//! What happened to each contact, for `Admin/Contact`: the routing events
//! that concern it, kept by the event dispatcher (off the routing thread),
//! stamped with ccrd's clock as they are delivered. Observability only —
//! no decision reads it — so it lives here, not in the core, and holds what
//! happened since ccrd last started.
//!
//! Bounded: at most [`PER_CONTACT`] entries a contact (the first and the
//! latest kept, the middle dropped and counted), at most [`MAX_TRACKED`]
//! contacts followed at once, and ended contacts kept for
//! [`ENDED_KEPT`] more endings, then forgotten oldest first.

use std::collections::{HashMap, VecDeque};

use ccr_core::{ContactId, Event, OfferOutcome, OverflowReason, Time};

use crate::config::Catalog;

/// Entries kept per contact.
pub const PER_CONTACT: usize = 32;
/// Contacts followed at once; past it, new ones are not.
pub const MAX_TRACKED: usize = 200_000;
/// Ended contacts remembered, the most recent.
pub const ENDED_KEPT: usize = 10_000;

/// One thing that happened to a contact.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub at: Time,
    pub what: String,
}

/// An entry as kept: the event, put in words only when asked for (the
/// dispatcher notes every event; few are ever read).
struct Noted {
    at: Time,
    event: Event,
}

#[derive(Default)]
struct Record {
    entries: VecDeque<Noted>,
    /// Entries dropped from the middle.
    dropped: u32,
}

#[derive(Default)]
pub struct ContactHistory {
    records: HashMap<ContactId, Record>,
    ended: VecDeque<ContactId>,
}

/// A contact's history as kept: its entries, and how many were dropped.
pub type Kept = (Vec<Entry>, u32);

impl ContactHistory {
    /// Notes `event` at `at`, if it concerns a contact.
    pub fn note(&mut self, at: Time, event: &Event) {
        let Some((contact, ends)) = concerns(event) else { return };
        if !self.records.contains_key(&contact) && self.records.len() >= MAX_TRACKED {
            return;
        }
        let record = self.records.entry(contact).or_default();
        if record.entries.len() == PER_CONTACT {
            // Keep the first (how it started) and the latest.
            record.entries.remove(1);
            record.dropped += 1;
        }
        record.entries.push_back(Noted { at, event: without_explanation(event) });
        if ends {
            self.ended.push_back(contact);
            if self.ended.len() > ENDED_KEPT {
                if let Some(old) = self.ended.pop_front() {
                    self.records.remove(&old);
                }
            }
        }
    }

    pub fn of(&self, catalog: &Catalog, contact: ContactId) -> Kept {
        let Some(r) = self.records.get(&contact) else { return (Vec::new(), 0) };
        let entries = r.entries.iter().map(|e| Entry { at: e.at, what: describe(catalog, &e.event) }).collect();
        (entries, r.dropped)
    }
}

/// The event to keep: an offer's explanation (when `routing.explain` is on)
/// is not part of the history, and not copied.
fn without_explanation(event: &Event) -> Event {
    match *event {
        Event::Offered { offer, contact, agent, queue, tier, channel, waited, expires_at, trigger, .. } => {
            Event::Offered {
                offer,
                contact,
                agent,
                queue,
                tier,
                channel,
                waited,
                expires_at,
                trigger,
                explanation: None,
            }
        }
        _ => event.clone(),
    }
}

/// The contact an event is about, and whether the contact ends with it.
fn concerns(event: &Event) -> Option<(ContactId, bool)> {
    Some(match event {
        Event::Completed { contact, .. }
        | Event::Abandoned { contact, .. }
        | Event::CallbackCancelled { contact, .. } => (*contact, true),
        Event::Offered { contact, .. }
        | Event::OfferEnded { contact, .. }
        | Event::Connected { contact, .. }
        | Event::CallbackDue { contact, .. }
        | Event::Overflowed { contact, .. }
        | Event::Transferred { contact, .. }
        | Event::Relaxed { contact, .. } => (*contact, false),
        Event::WrapUpEnded { .. } | Event::AgentStateChanged { .. } | Event::SessionExpired { .. } => return None,
    })
}

/// An event about a contact, for people.
fn describe(cat: &Catalog, event: &Event) -> String {
    let span = |d: std::time::Duration| humantime::format_duration(std::time::Duration::from_secs(d.as_secs()));
    match event {
        Event::Offered { agent, waited, .. } => {
            format!("offered to agent {} after {}", agent.0, span(*waited))
        }
        Event::OfferEnded { agent, outcome, .. } => {
            let why = match outcome {
                OfferOutcome::Expired => "rang out (RONA)",
                OfferOutcome::Rejected => "declined",
                OfferOutcome::Withdrawn => "withdrawn",
                OfferOutcome::Abandoned => "caller hung up",
                OfferOutcome::Accepted => "accepted",
            };
            format!("offer to agent {}: {why}", agent.0)
        }
        Event::Connected { agent, waited, .. } => {
            format!("answered by agent {} after {}", agent.0, span(*waited))
        }
        Event::Completed { agent, hung_up, .. } => {
            let by = if *hung_up { "the customer" } else { "the agent" };
            format!("completed with agent {} (ended by {by})", agent.0)
        }
        Event::Abandoned { waited, short, .. } => {
            let short = if *short { " (a short abandon)" } else { "" };
            format!("abandoned after {}{short}", span(*waited))
        }
        Event::CallbackCancelled { .. } => "callback cancelled".into(),
        Event::CallbackDue { queue, .. } => {
            format!("callback due in {}", cat.queue_name(*queue))
        }
        Event::Overflowed { from, to, reason, .. } => {
            let why = match reason {
                OverflowReason::QueueFull => "queue full",
                OverflowReason::Relaxation => "relaxation step",
            };
            format!("overflowed from {} to {} ({why})", cat.queue_name(*from), cat.queue_name(*to))
        }
        Event::Transferred { from, to, .. } => {
            format!("transferred from {} to {}", cat.queue_name(*from), cat.queue_name(*to))
        }
        Event::Relaxed { queue, step, .. } => {
            format!("relaxation step {} of {}", step + 1, cat.queue_name(*queue))
        }
        Event::WrapUpEnded { .. } | Event::AgentStateChanged { .. } | Event::SessionExpired { .. } => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ccr_core::{AgentId, QueueId, TierId};
    use std::time::Duration;

    fn catalog() -> Catalog {
        crate::config::parse("skills = [\"billing\"]\n[[queues]]\nname = \"sales\"\n").unwrap().catalog
    }

    fn abandoned(id: u64) -> Event {
        let (contact, queue, tier) = (ContactId(id), QueueId(0), TierId(0));
        Event::Abandoned { contact, queue, tier, waited: Duration::from_secs(90), short: false }
    }

    #[test]
    fn a_contact_keeps_its_first_and_latest_entries_and_counts_the_rest() {
        let (cat, mut h) = (catalog(), ContactHistory::default());
        for i in 0..40u64 {
            let (contact, agent) = (ContactId(1), AgentId(i));
            let ended =
                Event::OfferEnded { offer: ccr_core::OfferId(i), contact, agent, outcome: OfferOutcome::Expired };
            h.note(Time::from_secs(i), &ended);
        }
        let (entries, dropped) = h.of(&cat, ContactId(1));
        assert_eq!((entries.len(), dropped), (PER_CONTACT, 40 - PER_CONTACT as u32));
        assert_eq!(entries[0].what, "offer to agent 0: rang out (RONA)");
        assert_eq!(entries.last().unwrap().what, "offer to agent 39: rang out (RONA)");
        assert_eq!(h.of(&cat, ContactId(2)), (Vec::new(), 0), "nothing known of another");
    }

    #[test]
    fn ended_contacts_are_forgotten_oldest_first() {
        let (cat, mut h) = (catalog(), ContactHistory::default());
        for id in 0..(ENDED_KEPT as u64 + 5) {
            h.note(Time::from_secs(id), &abandoned(id));
        }
        assert!(h.of(&cat, ContactId(4)).0.is_empty(), "among the oldest ended: forgotten");
        assert_eq!(h.of(&cat, ContactId(5)).0[0].what, "abandoned after 1m 30s");
        assert_eq!(h.records.len(), ENDED_KEPT);
    }
}
