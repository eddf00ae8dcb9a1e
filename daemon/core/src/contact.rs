//! A contact inside the core: what it asked for, how far its requirements
//! have relaxed, and where it is in its lifecycle.

use crate::command::{Languages, SkillReqs};
use crate::config::{ContactPolicy, RelaxAction, RouterConfig};
use crate::ids::{AgentId, Channel, ContactId, LanguageId, OfferId, QueueId, SkillReq, TierId, MAX_PROFICIENCY};
use crate::positions::Place;
use crate::slab::AgentSlot;
use crate::time::{micros, Time};

/// Order among waiting contacts: lower is served first. The value is a
/// "virtual due time" in microseconds (see [`rank_value`]); `seq` breaks ties by
/// order of first arrival. It is fixed while the contact stays in one queue, so
/// a contact that comes back after RONA or a withdrawn offer regains its place.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, serde::Serialize, serde::Deserialize)]
pub struct Rank {
    pub value: u64,
    pub seq: u64,
}

impl Rank {
    /// The rank as one integer (value, then seq), in the same order.
    pub(crate) fn key(self) -> u128 {
        (u128::from(self.value) << 64) | u128::from(self.seq)
    }
}

const BIAS: u64 = 1 << 60;
const STRICT_STEP: u64 = 1 << 48; // ~8.9 years: larger than any wait

/// The virtual due time of a contact under its queue's policy. All policies
/// speak the same unit, so contacts of different queues compare sensibly when
/// one agent could serve both: the one nearest its service-level deadline wins.
pub fn rank_value(cfg: &RouterConfig, queue: QueueId, tier: TierId, arrival: Time, deadline: Option<Time>) -> u64 {
    let q = &cfg.queues[usize::from(queue.0)];
    let t = &cfg.tiers[usize::from(tier.0)];
    let threshold = micros(q.service_level.threshold);
    let base = BIAS.saturating_add(arrival.as_micros());
    match q.contact_policy {
        ContactPolicy::StrictTier => {
            let lower_tiers = (cfg.tiers.len() - 1 - usize::from(tier.0)) as u64;
            base.saturating_add(threshold).saturating_sub(lower_tiers * STRICT_STEP)
        }
        ContactPolicy::TierAging => base.saturating_add(threshold).saturating_sub(micros(t.aging_boost)),
        ContactPolicy::EarliestDeadline => match deadline {
            Some(d) => BIAS.saturating_add(d.as_micros()),
            None => base.saturating_add(micros(t.answer_target.unwrap_or(q.service_level.threshold))),
        },
    }
}

/// How far a contact's requirements have been relaxed in its current queue.
#[derive(Clone, Copy, PartialEq, Eq, Debug, serde::Serialize, serde::Deserialize)]
pub struct Relaxation {
    /// Required proficiencies are capped at this.
    pub proficiency_cap: u8,
    /// How many of the preferred languages are acceptable (from the front).
    pub languages: u8,
    pub any_language: bool,
    /// Index of the next step of the queue to apply.
    pub next_step: u8,
}

impl Relaxation {
    pub const NONE: Relaxation =
        Relaxation { proficiency_cap: MAX_PROFICIENCY, languages: 1, any_language: false, next_step: 0 };

    pub fn apply(&mut self, action: RelaxAction) {
        match action {
            RelaxAction::MinProficiencyAtMost(p) => self.proficiency_cap = self.proficiency_cap.min(p),
            RelaxAction::NextLanguage => self.languages = self.languages.saturating_add(1),
            RelaxAction::AnyLanguage => self.any_language = true,
            RelaxAction::OverflowTo(_) => {}
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug, serde::Serialize, serde::Deserialize)]
pub enum ContactState {
    /// A callback not yet due.
    Scheduled {
        due: Time,
    },
    /// Waiting, held for its preferred agents until `hold_until` if set.
    /// `filed` says where it is entered while it counts as waiting.
    Waiting {
        filed: Option<Filed>,
        hold_until: Option<Time>,
    },
    Offered {
        offer: OfferId,
        agent: AgentSlot,
    },
    Connected {
        agent: AgentSlot,
    },
}

/// Where a waiting contact is entered, so that it can be taken out again.
#[derive(Clone, Copy, PartialEq, Eq, Debug, serde::Serialize, serde::Deserialize)]
pub enum Filed {
    /// In its preferred agents' holds.
    Held,
    /// In one level of its lists (it requires one skill): the level (its
    /// minimum proficiency − 1) and the list, or [`Filed::MANY_LISTS`] when
    /// it accepts several languages and so is in several lists. Kept so that
    /// taking the contact out needs no lookup.
    Level { level: u8, list: u32 },
    /// In a bucket of multi-skill contacts.
    Bucket(u32),
}

/// The fields are in this order (`repr(C)`) so that what taking a contact
/// out of the index and offering it reads comes first, in the record's first
/// cache line (64-byte aligned, 192 bytes): most waiting contacts are cold in
/// cache when an agent takes one, and each line of the record is a miss.
/// Preferred agents and context are boxed slices (set once, 16 bytes each)
/// to keep the record at three lines.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
#[repr(C, align(64))]
pub struct Contact {
    // First cache line: 64 bytes.
    pub state: ContactState,
    pub rank: Rank,
    pub id: ContactId,
    /// Original arrival: kept through transfers and overflows.
    pub arrival: Time,
    pub queue: QueueId,
    pub channel: Channel,
    pub tier: TierId,
    /// Where its rank is filed in its queue's order while it waits (a hint).
    pub(crate) place: Place,
    /// As requested; the first is the primary skill. Held in the record
    /// itself up to the common counts, so that reading them does not chase
    /// two more cold cache lines.
    pub skills: SkillReqs,
    /// Preference order.
    pub languages: Languages,
    /// When it entered its current queue; relaxation steps count from here.
    pub entered_queue: Time,
    pub deadline: Option<Time>,
    /// The time of the wake-up timer that is current for this contact.
    pub next_wake: Option<Time>,
    pub preferred: Box<[AgentId]>,
    pub context: Box<[(String, String)]>,
    /// Bumped whenever the contact is re-created in a slot or its wake-up
    /// is set, so that timers of a previous occupant, or set before, are
    /// recognised as stale.
    pub gen: u32,
    /// Read when the contact routes or its timers fire, when the record is
    /// in cache or read anyway; not when an agent takes it.
    pub relax: Relaxation,
}

// The layout described on `Contact`: the first line ends where the
// requirements begin, and the record is three lines.
const _: () = assert!(std::mem::offset_of!(Contact, skills) == 64);
const _: () = assert!(std::mem::offset_of!(Contact, place) < 64);
const _: () = assert!(std::mem::size_of::<Contact>() == 192);

impl Filed {
    pub const MANY_LISTS: u32 = u32::MAX;
}

impl Contact {
    /// Writes the requirements in force now into `skills` and returns the
    /// acceptable languages (`None`: any).
    pub fn effective<'a>(&'a self, skills: &mut Vec<SkillReq>) -> Option<&'a [LanguageId]> {
        skills.clear();
        skills.extend(
            self.skills.iter().map(|r| SkillReq {
                skill: r.skill,
                min_proficiency: r.min_proficiency.min(self.relax.proficiency_cap),
            }),
        );
        self.effective_languages()
    }

    /// The languages acceptable now (`None`: any).
    pub fn effective_languages(&self) -> Option<&[LanguageId]> {
        if self.relax.any_language || self.languages.is_empty() {
            None
        } else {
            let n = usize::from(self.relax.languages).clamp(1, self.languages.len());
            Some(&self.languages[..n])
        }
    }

    pub fn is_waiting(&self) -> bool {
        matches!(self.state, ContactState::Waiting { .. })
    }
}
