//! Outputs of the router: decisions and what happened, in order, for the
//! driver to carry out (send an offer to a desktop) and to report (metrics).

use std::time::Duration;

use crate::command::NotReadyReason;
use crate::config::{AgentPolicy, ContactPolicy};
use crate::error::OfferOutcome;
use crate::ids::{AgentId, Channel, ContactId, OfferId, QueueId, SessionId, TierId};
use crate::time::Time;

/// The state of an agent as supervisors see it. Derived from presence and
/// workload: a ringing offer shows as reserved even with chats in progress.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum AgentState {
    Offline,
    NotReady(NotReadyReason),
    Available,
    Reserved,
    Busy,
    WrapUp,
}

impl AgentState {
    /// Index into [`AgentState::NAMES`]; reasons collapse into `not_ready`.
    pub fn index(self) -> usize {
        match self {
            AgentState::Offline => 0,
            AgentState::NotReady(_) => 1,
            AgentState::Available => 2,
            AgentState::Reserved => 3,
            AgentState::Busy => 4,
            AgentState::WrapUp => 5,
        }
    }

    pub const NAMES: [&'static str; 6] = ["offline", "not_ready", "available", "reserved", "busy", "wrap_up"];
}

/// Which side's change led to a decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Trigger {
    /// A contact became routable (arrival, relaxation, return after RONA,
    /// transfer, callback due): it took the best available agent.
    ContactWaiting,
    /// An agent gained capacity (ready, completion, wrap-up end): it took the
    /// best waiting contact it qualifies for.
    AgentAvailable,
    /// A preferred agent was available when the contact arrived.
    PreferredAgent,
}

/// The rule that ordered the candidates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Rule {
    Contact(ContactPolicy),
    Agent(AgentPolicy),
    PreferredOrder,
}

/// One pairing the router weighed. Lower `rank` is served first; for agents,
/// higher `proficiency`, lower `occupancy` and lower `idle_order` (idle longer)
/// win according to the rule.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Candidate {
    pub contact: ContactId,
    pub agent: AgentId,
    pub rank: u64,
    pub proficiency: u8,
    pub occupancy: u8,
    pub idle_order: u64,
}

/// Why an offer went where it went.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Explanation {
    pub trigger: Trigger,
    pub rule: Rule,
    /// The best candidate of each group the router looked at (one per
    /// requirement bucket, or per agent pool); the chosen one first.
    pub candidates: Vec<Candidate>,
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Event {
    /// An agent is reserved for a contact: ring their desktop.
    Offered {
        offer: OfferId,
        contact: ContactId,
        agent: AgentId,
        queue: QueueId,
        tier: TierId,
        channel: Channel,
        /// Since arrival (original arrival for transfers).
        waited: Duration,
        expires_at: Time,
        trigger: Trigger,
        explanation: Option<Box<Explanation>>,
    },
    /// An offer ended without being accepted.
    OfferEnded {
        offer: OfferId,
        contact: ContactId,
        agent: AgentId,
        outcome: OfferOutcome,
    },
    /// The agent accepted: the contact is answered.
    Connected {
        offer: OfferId,
        contact: ContactId,
        agent: AgentId,
        queue: QueueId,
        tier: TierId,
        waited: Duration,
    },
    /// The contact ended after connection; `hung_up` when the customer ended it.
    Completed {
        contact: ContactId,
        agent: AgentId,
        queue: QueueId,
        hung_up: bool,
    },
    WrapUpEnded {
        contact: ContactId,
        agent: AgentId,
    },
    /// The customer hung up before being connected.
    Abandoned {
        contact: ContactId,
        queue: QueueId,
        tier: TierId,
        waited: Duration,
        short: bool,
    },
    /// A scheduled callback was cancelled before it was due.
    CallbackCancelled {
        contact: ContactId,
        queue: QueueId,
    },
    /// A scheduled callback became routable.
    CallbackDue {
        contact: ContactId,
        queue: QueueId,
    },
    Overflowed {
        contact: ContactId,
        from: QueueId,
        to: QueueId,
        reason: OverflowReason,
    },
    Transferred {
        contact: ContactId,
        from: QueueId,
        to: QueueId,
    },
    /// A relaxation step applied to a waiting contact (index into the queue's steps).
    Relaxed {
        contact: ContactId,
        queue: QueueId,
        step: u8,
    },
    AgentStateChanged {
        agent: AgentId,
        state: AgentState,
    },
    /// A lost session's grace ended with these still unclaimed (each with
    /// its own event before this one).
    SessionExpired {
        session: SessionId,
        /// Ended: abandoned, or completed if connected.
        contacts_ended: u32,
        /// Scheduled callbacks, which pass to the centre instead.
        callbacks_kept: u32,
        agents_logged_out: u32,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum OverflowReason {
    QueueFull,
    Relaxation,
}
