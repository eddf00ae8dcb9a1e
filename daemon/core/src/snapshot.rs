//! A plain copy of the router's state, for tests, debugging and recovery
//! checks. Built on demand in O(n); the hot path never builds one.

use crate::command::NotReadyReason;
use crate::event::AgentState;
use crate::ids::{AgentId, Channel, ContactId, LanguageId, OfferId, QueueId, SessionId, SkillId, SkillReq, TierId};
use crate::sessions::SessionState;
use crate::time::Time;

#[derive(Clone, Debug, PartialEq)]
pub struct Snapshot {
    pub now: Time,
    /// By id.
    pub contacts: Vec<ContactView>,
    pub agents: Vec<AgentView>,
    /// Open sessions, by id.
    pub sessions: Vec<SessionView>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionView {
    pub id: SessionId,
    pub state: SessionState,
    /// What it owns, sorted.
    pub contacts: Vec<ContactId>,
    pub agents: Vec<AgentId>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ContactViewState {
    Scheduled {
        due: Time,
    },
    /// `held_until`: held for a preferred agent until then.
    Waiting {
        held_until: Option<Time>,
    },
    Offered {
        offer: OfferId,
        agent: AgentId,
    },
    Connected {
        agent: AgentId,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContactView {
    pub id: ContactId,
    pub channel: Channel,
    pub queue: QueueId,
    pub tier: TierId,
    pub skills: Vec<SkillReq>,
    pub languages: Vec<LanguageId>,
    pub preferred: Vec<AgentId>,
    pub context: Vec<(String, String)>,
    pub arrival: Time,
    pub entered_queue: Time,
    pub deadline: Option<Time>,
    /// (virtual due time, arrival sequence): lower is served first.
    pub rank: (u64, u64),
    /// Requirements in force after relaxation.
    pub effective_skills: Vec<SkillReq>,
    /// `None`: any language.
    pub effective_languages: Option<Vec<LanguageId>>,
    pub relaxation_steps_applied: u8,
    pub state: ContactViewState,
    pub owner: SessionId,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentView {
    pub id: AgentId,
    pub skills: Vec<(SkillId, u8)>,
    pub languages: Vec<LanguageId>,
    pub capacity: [u8; Channel::COUNT],
    pub usage: [u8; Channel::COUNT],
    /// `None`: ready.
    pub presence: Option<NotReadyReason>,
    pub state: AgentState,
    /// Order in which agents with room are preferred under "longest idle"
    /// (lower first); 0 when the agent has no room.
    pub idle_order: u64,
    /// (contact, channel whose slot it holds, end).
    pub wrap_ups: Vec<(ContactId, Channel, Time)>,
    pub owner: SessionId,
}
