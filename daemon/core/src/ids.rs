//! Identifiers. Contacts, agents and offers are named by the outside world
//! (or, for offers, by the core); skills, languages, queues and tiers are small
//! interned numbers so that matching compares integers, never strings.

use std::fmt;

macro_rules! id {
    ($(#[$doc:meta])* $name:ident($inner:ty)) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, serde::Serialize, serde::Deserialize)]
        pub struct $name(pub $inner);

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }
    };
}

id!(
    /// A contact, named by the gateway that reported it.
    ContactId(u64)
);
id!(
    /// An agent, named by the CTI / desktop side.
    AgentId(u64)
);
id!(
    /// An offer: one reservation of one agent for one contact. Issued by the
    /// core, strictly increasing, and used as a fencing token: an accept or
    /// reject names the offer, so a late answer can never touch a newer one.
    OfferId(u64)
);
id!(
    /// A skill (interned by the driver from its configured name).
    SkillId(u16)
);
id!(
    /// A language (interned by the driver from its configured name).
    LanguageId(u16)
);
id!(
    /// Index of a queue in [`crate::RouterConfig::queues`].
    QueueId(u16)
);
id!(
    /// Index of a priority tier in [`crate::RouterConfig::tiers`]; 0 is the highest.
    TierId(u8)
);

/// The media a contact arrives on. Capacity is counted per channel.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, serde::Serialize, serde::Deserialize)]
pub enum Channel {
    Voice = 0,
    Chat = 1,
    Email = 2,
}

impl Channel {
    pub const ALL: [Channel; 3] = [Channel::Voice, Channel::Chat, Channel::Email];
    pub const COUNT: usize = 3;

    pub fn index(self) -> usize {
        self as usize
    }

    pub fn name(self) -> &'static str {
        match self {
            Channel::Voice => "voice",
            Channel::Chat => "chat",
            Channel::Email => "email",
        }
    }
}

/// One required skill and the lowest proficiency (1–10) that satisfies it.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, serde::Serialize, serde::Deserialize)]
pub struct SkillReq {
    pub skill: SkillId,
    pub min_proficiency: u8,
}

/// Proficiency bounds: 1 is a beginner, 10 an expert.
pub const MIN_PROFICIENCY: u8 = 1;
pub const MAX_PROFICIENCY: u8 = 10;
