//! The router's state as plain records: everything a decision can depend
//! on, and none of the indices built for speed. A snapshot is these records;
//! [`crate::Router::restore`] rebuilds the indices from them, and the
//! rebuilt router decides exactly as the original would have, event for
//! event (`tests/restore.rs`).
//!
//! What counts as state, besides the obvious: each contact's rank and
//! relaxation, each agent's place among the idle (`idle_order`), the order
//! of each agent's work, what each session owns in the order it took it
//! (a lost session's belongings go in that order), the offers remembered
//! for idempotent answers, and every pending wake-up in the order it fires.
//! Where a record sits in memory is not state: no decision depends on it.
//!
//! Export with [`crate::Router::export_header`], `export_agents`,
//! `export_contacts` and `export_timers`; restore in the same order:
//! header, agents, contacts, timers, then [`Restore::finish`]. The records
//! may come from a damaged or hostile file: every reference is checked, and
//! a state that is not one the router could be in is refused with a
//! [`StateError`], never a panic.

use crate::command::{Languages, NotReadyReason, SkillReqs};
use crate::config::{ConfigErrors, RouterConfig};
use crate::contact::{Rank, Relaxation};
use crate::error::{CommandError, OfferOutcome};
use crate::event::AgentState;
use crate::ids::{AgentId, Channel, ContactId, LanguageId, OfferId, QueueId, SessionId, SkillId, TierId};
use crate::sessions::SessionState;
use crate::stats::QueueCounters;
use crate::time::Time;

pub use crate::router::Restore;

/// The router as a whole, without its agents, contacts and timers (which
/// follow as streams of records: a big centre has millions).
#[derive(Clone, Debug, PartialEq)]
pub struct StateHeader {
    pub config: RouterConfig,
    pub now: Time,
    /// The next contact's rank sequence number (ties in rank value go to the
    /// earlier arrival).
    pub next_rank_seq: u64,
    /// The next place among idle agents.
    pub next_idle_order: u64,
    /// The highest session id ever opened.
    pub last_session: SessionId,
    /// Open sessions, by id.
    pub sessions: Vec<SessionRecord>,
    /// One per queue of the configuration, in order.
    pub queues: Vec<QueueRecord>,
    pub offers: OfferHistory,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionRecord {
    pub id: SessionId,
    pub state: SessionState,
    /// What it owns, the most recently taken first.
    pub contacts: Vec<ContactId>,
    pub agents: Vec<AgentId>,
}

/// A queue's counters and the history behind its wait estimate.
#[derive(Clone, Debug, PartialEq)]
pub struct QueueRecord {
    pub counters: QueueCounters,
    pub departures: u64,
    /// Decayed count of departures and decayed busy time (µs), as of `updated`.
    pub answers: f64,
    pub busy: f64,
    pub updated: Time,
    /// The rest of the estimate's history (`crate::stats`); `None` in a
    /// snapshot of a format that did not keep it: it is relearnt.
    pub flow: Option<FlowRecord>,
}

/// Abandonment, arrivals by tier and stalls of a queue (`crate::stats`).
#[derive(Clone, Debug, PartialEq, Default)]
pub struct FlowRecord {
    /// Busy µs since the last departure.
    pub since_departure: f64,
    /// Decayed departures and busy µs as of the last departure, and the
    /// expected gap between departures then (µs; infinite before any).
    pub at_departure: (f64, f64),
    pub gap: f64,
    /// Decayed abandons, and decayed µs waited by those who left the queue.
    pub abandons: f64,
    pub exposure: f64,
    /// Decayed µs, and decayed arrivals per tier.
    pub elapsed: f64,
    pub arrivals: Vec<f64>,
}

/// The offer ids issued and the ended offers still remembered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OfferHistory {
    /// Offers from this id on are remembered (pending or ended)...
    pub first: OfferId,
    /// ...up to this one, the next to be issued.
    pub next: OfferId,
    /// The ended ones among them, by id. Every id from `first` to `next`
    /// is either here or a pending offer (held by its contact's record).
    pub ended: Vec<EndedOfferRecord>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EndedOfferRecord {
    pub id: OfferId,
    pub agent: AgentId,
    pub contact: ContactId,
    pub outcome: OfferOutcome,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentRecord {
    pub id: AgentId,
    pub skills: Vec<(SkillId, u8)>,
    pub languages: Vec<LanguageId>,
    pub capacity: [u8; Channel::COUNT],
    /// `None`: ready.
    pub not_ready: Option<NotReadyReason>,
    pub wrap_ups: Vec<WrapUpRecord>,
    /// The contacts offered to or connected with it, in the order it holds
    /// them (a withdrawal goes through them in that order).
    pub work: Vec<ContactId>,
    /// Its place among agents with room ("longest idle" first); `None`
    /// while it has none.
    pub idle_order: Option<u64>,
    /// The state last reported in an event.
    pub reported: Option<AgentState>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WrapUpRecord {
    pub contact: ContactId,
    pub channel: Channel,
    pub queue: QueueId,
    pub ends_at: Time,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContactRecord {
    pub id: ContactId,
    pub channel: Channel,
    pub queue: QueueId,
    pub tier: TierId,
    pub skills: SkillReqs,
    pub languages: Languages,
    pub preferred: Vec<AgentId>,
    pub context: Vec<(String, String)>,
    pub arrival: Time,
    pub entered_queue: Time,
    pub deadline: Option<Time>,
    pub rank: Rank,
    pub relaxation: Relaxation,
    /// The time of its pending wake-up, if any.
    pub next_wake: Option<Time>,
    pub state: ContactRecordState,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContactRecordState {
    /// A callback not yet due.
    Scheduled {
        due: Time,
    },
    /// Held for its preferred agents until `hold_until`, if set.
    Waiting {
        hold_until: Option<Time>,
    },
    Offered {
        offer: OfferId,
        agent: AgentId,
        expires_at: Time,
    },
    Connected {
        agent: AgentId,
    },
}

/// A pending wake-up. Exported in the order they fire (time, then the order
/// they were set in): timers due at one instant fire in that order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimerRecord {
    pub at: Time,
    pub timer: TimerRef,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TimerRef {
    /// Its relaxation step, the end of its hold, or its callback coming due.
    Contact(ContactId),
    OfferExpiry(OfferId),
    WrapUpEnd {
        agent: AgentId,
        contact: ContactId,
    },
    SessionGrace(SessionId),
}

/// Why records cannot be a router's state.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("the configuration is invalid: {0}")]
    Config(#[from] ConfigErrors),
    #[error("agent {0} appears twice")]
    DuplicateAgent(AgentId),
    #[error("contact {0} appears twice")]
    DuplicateContact(ContactId),
    #[error("agent {agent}: {source}")]
    Agent { agent: AgentId, source: CommandError },
    #[error("contact {contact}: {source}")]
    Contact { contact: ContactId, source: CommandError },
    #[error("{0}")]
    Inconsistent(String),
}

pub(crate) fn inconsistent(why: impl Into<String>) -> StateError {
    StateError::Inconsistent(why.into())
}
