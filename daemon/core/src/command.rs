//! Inputs to the router: everything the outside world can ask of it.
//!
//! A command either applies completely or returns a [`CommandError`](crate::CommandError) and
//! changes nothing. Commands are plain data so that a journal can record them
//! and a replay can feed them back.

use crate::ids::{AgentId, Channel, ContactId, LanguageId, OfferId, QueueId, SessionId, SkillId, SkillReq, TierId};
use crate::time::Time;
use smallvec::SmallVec;

/// Why an agent is not ready. Reported in agent state and statistics.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, serde::Serialize, serde::Deserialize)]
pub enum NotReadyReason {
    /// Just logged in and has not said ready yet.
    LoggedIn,
    Break,
    Lunch,
    Training,
    Meeting,
    Away,
    /// Set by the core: an offer rang out (redirect on no answer).
    Rona,
    /// Set by the core: the agent rejected an offer.
    Declined,
    /// Set by the core on [`Command::Restart`]: the daemon restarted and waits
    /// for the agent's desktop to come back and say it is ready.
    Restart,
    /// Set by the core when the agent's session was lost: its desktop is
    /// gone, and the agent waits out the session grace for it to come back.
    Disconnected,
    Other,
}

/// What an agent can do, given at login.
#[derive(Clone, PartialEq, Eq, Debug, serde::Serialize, serde::Deserialize)]
pub struct AgentProfile {
    /// Skills with proficiency 1–10, each skill at most once.
    pub skills: Vec<(SkillId, u8)>,
    pub languages: Vec<LanguageId>,
    /// Concurrent contacts per channel (index = [`Channel::index`]). Voice is
    /// 0 or 1, and a voice contact blocks every other channel.
    pub capacity: [u8; Channel::COUNT],
}

/// A contact's skill requirements: inline up to four (most contacts need one
/// or two), so that they travel from the gateway into the core's contact
/// record without a heap allocation, and are read from that record without
/// another cache miss.
pub type SkillReqs = SmallVec<[SkillReq; 4]>;

/// A contact's languages in preference order: inline up to eight.
pub type Languages = SmallVec<[LanguageId; 8]>;

/// A contact as the gateway describes it.
#[derive(Clone, PartialEq, Eq, Debug, serde::Serialize, serde::Deserialize)]
pub struct ContactSpec {
    pub id: ContactId,
    pub channel: Channel,
    pub queue: QueueId,
    pub tier: TierId,
    /// At least one skill, each at most once.
    pub skills: SkillReqs,
    /// Preference order; empty means any language.
    pub languages: Languages,
    /// Agents to wait for during the queue's preferred-agent window.
    pub preferred_agents: Vec<AgentId>,
    /// Opaque key/values carried unchanged through transfers and overflows.
    pub context: Vec<(String, String)>,
}

/// New requirements for a transferred contact.
#[derive(Clone, PartialEq, Eq, Debug, serde::Serialize, serde::Deserialize)]
pub struct TransferSpec {
    pub contact: ContactId,
    pub queue: QueueId,
    pub skills: SkillReqs,
    pub languages: Languages,
    /// `None` keeps the tier.
    pub tier: Option<TierId>,
    /// Added to (or replacing, key by key) the context already carried.
    pub context: Vec<(String, String)>,
}

#[derive(Clone, PartialEq, Debug, serde::Serialize, serde::Deserialize)]
pub enum Command {
    // Agent side.
    AgentLogin {
        agent: AgentId,
        profile: AgentProfile,
        ready: bool,
    },
    /// Withdraws the agent's ringing offers (re-routing them at once) and ends
    /// its wrap-ups. Refused while the agent has a connected contact.
    AgentLogout {
        agent: AgentId,
    },
    /// The agent's desktop connection is gone: like a logout, but connected
    /// contacts are ended (completed) instead of refusing.
    AgentDisconnected {
        agent: AgentId,
    },
    AgentReady {
        agent: AgentId,
    },
    AgentNotReady {
        agent: AgentId,
        reason: NotReadyReason,
    },
    Accept {
        agent: AgentId,
        offer: OfferId,
    },
    Reject {
        agent: AgentId,
        offer: OfferId,
    },
    /// The agent finished a connected contact; wrap-up follows.
    Complete {
        agent: AgentId,
        contact: ContactId,
    },
    /// The agent ends wrap-up early.
    EndWrapUp {
        agent: AgentId,
        contact: ContactId,
    },

    // Gateway side.
    Enqueue(ContactSpec),
    /// The customer hung up. Before connection this is an abandon; after, it
    /// ends the contact as a completion would.
    Abandon {
        contact: ContactId,
    },
    /// Re-queue a waiting, offered or connected contact with new requirements,
    /// keeping its context and original arrival time.
    Transfer(TransferSpec),
    /// Replaces the routing configuration. The queues and tiers must keep
    /// their names and order (ids are baked into contacts and events); their
    /// parameters may change. Waiting contacts are re-ranked and re-checked
    /// against the new rules at once.
    Reconfigure(Box<crate::config::RouterConfig>),
    /// The driver restarted from saved state. The desktops that showed ringing
    /// offers are gone, so every ringing offer is withdrawn and its contact
    /// goes back to its place; every logged-in agent goes not ready
    /// ([`NotReadyReason::Restart`]) until its desktop reconnects and says it
    /// is ready, so that no offer rings on a screen nobody has. Connected
    /// contacts and wrap-ups carry on.
    Restart,
    /// A callback that becomes routable at `due` and should be answered by
    /// `deadline`.
    ScheduleCallback {
        spec: ContactSpec,
        due: Time,
        deadline: Time,
    },

    // Sessions (see `sessions.rs`).
    /// A client connection opened. The driver names it with an id higher
    /// than any before.
    OpenSession {
        session: SessionId,
    },
    /// The session's connection is gone: its agents go not ready
    /// ([`NotReadyReason::Disconnected`]) with their ringing offers
    /// withdrawn, and what it owns waits `session_grace` to be claimed.
    LoseSession {
        session: SessionId,
    },
    /// The calling session takes over a contact it named in a query.
    ClaimContact {
        contact: ContactId,
    },
    /// The operator's drain: every agent is logged out as if its desktop
    /// were gone for good (ringing offers re-routed, connected contacts
    /// ended, wrap-ups ended). Contacts stay queued.
    Drain,
    /// A supervisor's action on an agent or a contact whatever session owns
    /// it: `AgentReady`, `AgentNotReady`, `AgentLogout`, `Abandon` or
    /// `Transfer`, applied as such, except that the supervisor claims
    /// nothing: the desktop or gateway keeps what it owns.
    Supervise(Box<Command>),
}

impl Command {
    /// The agent or contact the command names, which the calling session
    /// takes over when the command is accepted (see `sessions.rs`). A
    /// completion names its agent: the contact stays its gateway's.
    pub fn names(&self) -> Named {
        match self {
            Command::AgentLogin { agent, .. }
            | Command::AgentLogout { agent }
            | Command::AgentDisconnected { agent }
            | Command::AgentReady { agent }
            | Command::AgentNotReady { agent, .. }
            | Command::Accept { agent, .. }
            | Command::Reject { agent, .. }
            | Command::Complete { agent, .. }
            | Command::EndWrapUp { agent, .. } => Named::Agent(*agent),
            Command::Enqueue(spec) | Command::ScheduleCallback { spec, .. } => Named::Contact(spec.id),
            Command::Transfer(spec) => Named::Contact(spec.contact),
            Command::Abandon { contact } | Command::ClaimContact { contact } => Named::Contact(*contact),
            Command::Reconfigure(_)
            | Command::Restart
            | Command::OpenSession { .. }
            | Command::LoseSession { .. }
            | Command::Drain
            | Command::Supervise(_) => Named::Nothing,
        }
    }
}

/// What a command names, for ownership.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Named {
    Agent(AgentId),
    Contact(ContactId),
    Nothing,
}

/// The successful answer to a command.
#[derive(Clone, PartialEq, Eq, Debug, serde::Serialize, serde::Deserialize)]
pub enum Reply {
    Done,
    /// The contact is in `queue` (which differs from the requested one after a
    /// full-queue overflow).
    Enqueued {
        queue: QueueId,
    },
    Accepted {
        contact: ContactId,
        duplicate: bool,
    },
    Rejected {
        duplicate: bool,
    },
    /// How many agents a [`Command::Drain`] logged out.
    Drained {
        agents: u32,
    },
}
