//! An agent inside the core: profile, presence and workload.

use crate::command::NotReadyReason;
use crate::event::AgentState;
use crate::ids::{AgentId, Channel, ContactId, LanguageId, QueueId, SkillId, SkillReq, SkillSet};
use crate::slab::ContactSlot;
use crate::time::Time;
use smallvec::SmallVec;

#[derive(Clone, Copy, PartialEq, Eq, Debug, serde::Serialize, serde::Deserialize)]
pub enum Presence {
    Ready,
    NotReady(NotReadyReason),
}

/// After-contact work in progress: it holds the contact's channel slot.
#[derive(Clone, Copy, PartialEq, Eq, Debug, serde::Serialize, serde::Deserialize)]
pub struct WrapUp {
    pub contact: ContactId,
    pub channel: Channel,
    pub queue: QueueId,
    pub ends_at: Time,
}

/// The contact lists an agent reads: (channel, list id, its proficiency in
/// the list's skill).
pub type AgentLists = SmallVec<[(Channel, u32, u8); 24]>;

#[derive(Clone, serde::Serialize, serde::Deserialize)]
pub struct Agent {
    pub id: AgentId,
    /// Sorted by skill id. Held in the record up to a common count: the
    /// check of a multi-skill contact reads them right after the record.
    pub skills: SmallVec<[(SkillId, u8); 8]>,
    /// The same skills as bits: most multi-skill buckets an agent's search
    /// weighs need a skill it lacks, and this says so without a search of
    /// `skills`.
    pub skill_set: SkillSet,
    pub languages: Vec<LanguageId>,
    pub capacity: [u8; Channel::COUNT],
    /// Slots in use per channel: ringing offers, connected contacts and wrap-ups.
    pub usage: [u8; Channel::COUNT],
    pub ringing: u16,
    pub connected: u16,
    pub wrap_ups: Vec<WrapUp>,
    /// Contact slots offered to or connected with this agent.
    pub work: Vec<ContactSlot>,
    pub presence: Presence,
    /// Agent pools this agent is filed in when it has room (fixed at login).
    pub memberships: Vec<crate::pools::Membership>,
    /// Contact lists it reads when it looks for work: (channel, list id, its
    /// proficiency in the list's skill). Held in the record up to a common
    /// count, so that its search reads them without another cold line first.
    /// The lists of one of its languages come first, those of any-language
    /// contacts after: a search skips the latter while they are all empty.
    pub lists: AgentLists,
    /// How many of `lists` are lists of one language.
    pub one_language_lists: u16,
    /// The state last reported in an event.
    pub reported: Option<AgentState>,
    /// Since when: for supervisors' time in state, never for decisions
    /// (not in snapshots: a restored agent counts from the restore; skipped
    /// by serde, whose form of the router snapshot format 12 was).
    #[serde(skip)]
    pub reported_since: Time,
}

impl Agent {
    pub fn proficiency(&self, skill: SkillId) -> u8 {
        match self.skills.binary_search_by_key(&skill, |&(s, _)| s) {
            Ok(i) => self.skills[i].1,
            Err(_) => 0,
        }
    }

    /// Holds every required skill at the required proficiency.
    pub fn qualifies(&self, reqs: &[SkillReq]) -> bool {
        reqs.iter().all(|r| self.proficiency(r.skill) >= r.min_proficiency)
    }

    /// Could serve a contact with these needs at all (room aside): the
    /// channel in its capacity, the skills, a language.
    pub fn could_serve(&self, channel: Channel, reqs: &[SkillReq], languages: Option<&[LanguageId]>) -> bool {
        self.capacity[channel.index()] > 0 && self.qualifies(reqs) && self.speaks_any(languages)
    }

    pub fn speaks_any(&self, languages: Option<&[LanguageId]>) -> bool {
        match languages {
            None => true,
            Some(ls) => ls.iter().any(|l| self.languages.contains(l)),
        }
    }

    /// Can take one more contact on `channel` right now. A voice contact needs
    /// the agent entirely free, and blocks every other channel.
    pub fn has_room(&self, channel: Channel) -> bool {
        if self.presence != Presence::Ready {
            return false;
        }
        let ch = channel.index();
        let voice = Channel::Voice.index();
        match channel {
            Channel::Voice => self.capacity[voice] > 0 && self.usage.iter().all(|&u| u == 0),
            _ => self.usage[voice] == 0 && self.usage[ch] < self.capacity[ch],
        }
    }

    pub fn has_room_anywhere(&self) -> bool {
        Channel::ALL.iter().any(|&c| self.has_room(c))
    }

    pub fn state(&self) -> AgentState {
        if self.ringing > 0 {
            AgentState::Reserved
        } else if self.connected > 0 {
            AgentState::Busy
        } else if !self.wrap_ups.is_empty() {
            AgentState::WrapUp
        } else {
            match self.presence {
                Presence::Ready => AgentState::Available,
                Presence::NotReady(r) => AgentState::NotReady(r),
            }
        }
    }
}
