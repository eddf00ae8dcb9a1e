//! The one error type of the core: why a command was refused. A refused
//! command has changed nothing.

use crate::ids::{AgentId, ContactId, LanguageId, OfferId, QueueId, SessionId, SkillId, TierId};

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error("unknown agent {0}")]
    UnknownAgent(AgentId),
    #[error("agent {0} is already logged in")]
    AgentAlreadyLoggedIn(AgentId),
    #[error("unknown contact {0}")]
    UnknownContact(ContactId),
    #[error("contact {0} already exists")]
    DuplicateContact(ContactId),
    #[error("unknown queue {0}")]
    UnknownQueue(QueueId),
    #[error("unknown tier {0}")]
    UnknownTier(TierId),
    #[error("queue {0} is full")]
    QueueFull(QueueId),
    #[error("invalid {field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error("skill {0} is listed twice")]
    DuplicateSkill(SkillId),
    #[error("language {0} is listed twice")]
    DuplicateLanguage(LanguageId),
    #[error("unknown offer {0}")]
    UnknownOffer(OfferId),
    #[error("offer {offer} is for agent {owner}, not {agent}")]
    OfferNotForAgent { offer: OfferId, owner: AgentId, agent: AgentId },
    #[error("offer {offer} is no longer pending: it was {outcome}")]
    OfferNotPending { offer: OfferId, outcome: OfferOutcome },
    #[error("contact {contact} is not connected to agent {agent}")]
    NotConnected { contact: ContactId, agent: AgentId },
    #[error("contact {contact} is not in wrap-up with agent {agent}")]
    NotInWrapUp { contact: ContactId, agent: AgentId },
    #[error("agent {0} still has a connected contact")]
    AgentBusy(AgentId),
    #[error("contact {0} cannot be transferred before it is due")]
    NotYetDue(ContactId),
    #[error("session {0} is not open")]
    UnknownSession(SessionId),
    #[error("session {0} was lost: it can no longer act")]
    SessionLost(SessionId),
    #[error("agent {0}'s desktop is gone: it is made ready again by its desktop, once back")]
    DesktopGone(AgentId),
    #[error("the router holds {limit} contacts, its limit (max_contacts)")]
    TooManyContacts { limit: u32 },
    #[error("context of {entries} entries and {bytes} bytes is over the limit of {max_entries} entries and {max_bytes} bytes")]
    ContextTooLarge { entries: usize, bytes: usize, max_entries: u16, max_bytes: u32 },
}

/// How an offer ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum OfferOutcome {
    Accepted,
    Rejected,
    /// Rang out: redirect on no answer.
    Expired,
    /// The customer hung up while it rang.
    Abandoned,
    /// The agent logged out, or the contact was transferred, while it rang.
    Withdrawn,
}

impl std::fmt::Display for OfferOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            OfferOutcome::Accepted => "accepted",
            OfferOutcome::Rejected => "rejected",
            OfferOutcome::Expired => "expired",
            OfferOutcome::Abandoned => "abandoned",
            OfferOutcome::Withdrawn => "withdrawn",
        })
    }
}
