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
    /// A client's session: one connection of a gateway, desktop or tool,
    /// named by the driver with a number higher than any before it.
    /// [`SessionId::LOCAL`] (0) is the centre itself: always open, never
    /// lost (the simulator, benches and tools run everything in it).
    SessionId(u64)
);

impl SessionId {
    pub const LOCAL: SessionId = SessionId(0);
}

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

/// A set of skills held as bits, skill id modulo 256: a filter that says in
/// one bit test that a skill is missing (the common answer when agents are
/// weighed against contacts needing several skills). Ids 256 apart share a
/// bit, so a hit is confirmed against the skills themselves.
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug, serde::Serialize, serde::Deserialize)]
pub struct SkillSet([u64; 4]);

impl SkillSet {
    pub fn of(skills: impl IntoIterator<Item = SkillId>) -> Self {
        let mut set = SkillSet::default();
        for skill in skills {
            let (word, bit) = Self::place(skill);
            set.0[word] |= bit;
        }
        set
    }

    pub fn may_contain(&self, skill: SkillId) -> bool {
        let (word, bit) = Self::place(skill);
        self.0[word] & bit != 0
    }

    /// A skill's word and bit in the set.
    fn place(skill: SkillId) -> (usize, u64) {
        let bit = usize::from(skill.0 % 256);
        (bit / 64, 1 << (bit % 64))
    }

    /// Whether every one of `skills` may be in the set, without a branch per
    /// skill.
    pub fn may_contain_all(&self, skills: impl IntoIterator<Item = SkillId>) -> bool {
        skills.into_iter().fold(true, |all, skill| all & self.may_contain(skill))
    }
}

/// Proficiency bounds: 1 is a beginner, 10 an expert.
pub const MIN_PROFICIENCY: u8 = 1;
pub const MAX_PROFICIENCY: u8 = 10;

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// A skill set never says a skill is missing when it is held, and
        /// says so for a skill whose bit no held skill shares.
        #[test]
        fn a_skill_set_misses_only_skills_it_lacks(held in proptest::collection::vec(0u16..1024, 0..12), other in 0u16..1024) {
            let set = SkillSet::of(held.iter().map(|&s| SkillId(s)));
            for &s in &held {
                prop_assert!(set.may_contain(SkillId(s)));
            }
            if held.iter().all(|&s| s % 256 != other % 256) {
                prop_assert!(!set.may_contain(SkillId(other)));
            }
            prop_assert!(set.may_contain_all(held.iter().map(|&s| SkillId(s))));
        }
    }
}
