//! The index of waiting contacts, for an agent looking for work.
//!
//! Waiting contacts are listed under (channel, primary skill, language) for
//! each language they accept, or under `ANY`. A *list* answers "the best
//! contact this agent qualifies for" with as few reads as possible:
//!
//! - Contacts that require only the list's skill are filed directly in one
//!   *level* per minimum proficiency, ordered by rank. Every contact of a
//!   level is as good a match as any other for an agent reading the list (it
//!   speaks the language, and its proficiency meets the level or not), so the
//!   level's first contact is all that counts. Each list keeps, per
//!   proficiency p, the best first contact over levels 1..=p: an agent of
//!   proficiency p reads one slot.
//! - Contacts that need more skills are grouped in *buckets* of identical
//!   requirements (an agent qualifies for all of a bucket or none of it), and
//!   each bucket is listed by its head's rank with its requirements inline.
//!   An agent reads them from the front until one qualifies; the grouping keeps
//!   that scan from walking past many identical contacts it cannot take.
//!
//! Lists are interned: an agent learns its list ids at login and never hashes
//! on the hot path.
//!
//! Here: the index itself, filing and taking out, and how full each list is.
//! [`keys`]: what contacts are filed under (list keys, requirements,
//! buckets); [`cells`]: a list and the cells searches read; [`search`]: an
//! agent's search.

use std::collections::{BTreeMap, VecDeque};
use std::hash::BuildHasher;
use std::hint::select_unpredictable;

use crate::hashing::{Keyed, KeyedMap};
use crate::slab::ContactSlot;
use hashbrown::HashTable;
use smallvec::SmallVec;

use crate::agent::{Agent, AgentLists};
use crate::contact::{Filed, Rank};
use crate::ids::{Channel, LanguageId, SkillId, SkillReq, SkillSet, MAX_PROFICIENCY};
use crate::prefetch::prefetch;
use crate::ranked::RankedSet;
use crate::slab::Slab;
use crate::slots_by_id::{shard_of, SHARDS};

mod cells;
mod keys;
mod search;

use cells::*;
use keys::*;
pub(crate) use keys::{ListKey, Lists, Requirements, ANY_LANGUAGE};

#[derive(Default, Clone, serde::Serialize, serde::Deserialize)]
#[serde(from = "WaitingIndexState")]
pub(crate) struct WaitingIndex {
    list_ids: KeyedMap<ListKey, u32>,
    /// Per list, what searches read, and the structures behind it. The cells
    /// are not in snapshots: they follow from the lists and are rebuilt, so
    /// that their layout can change without a new snapshot format.
    #[serde(skip_serializing)]
    cells: Vec<Cells>,
    lists: Vec<List>,
    occupancy: Occupancy,
    /// Not in snapshots: rebuilt from the buckets, so that a snapshot does
    /// not depend on the hash function.
    #[serde(skip_serializing)]
    by_key: BucketsByKey,
    buckets: Slab<Bucket>,
    /// Buckets emptied, oldest first. They stay in `by_key` for reuse: the
    /// same requirements tend to come back, and building and tearing down a
    /// bucket costs more than the routing decision around it. A bucket may
    /// be listed again (emptied, reused, emptied again) or be live again by
    /// its turn; it is then skipped.
    emptied: VecDeque<u32>,
}

/// A [`WaitingIndex`] as snapshots hold it: every field but `cells` and
/// `by_key`, in the same order.
#[derive(serde::Deserialize)]
struct WaitingIndexState {
    list_ids: KeyedMap<ListKey, u32>,
    lists: Vec<List>,
    occupancy: Occupancy,
    buckets: Slab<Bucket>,
    emptied: VecDeque<u32>,
}

impl From<WaitingIndexState> for WaitingIndex {
    fn from(state: WaitingIndexState) -> Self {
        let WaitingIndexState { list_ids, lists, occupancy, buckets, emptied } = state;
        let cells = lists.iter().map(List::cells).collect();
        let mut by_key = BucketsByKey::default();
        for (id, bucket) in buckets.iter() {
            by_key.insert(bucket.key.requirements(), id);
        }
        WaitingIndex { list_ids, cells, lists, occupancy, by_key, buckets, emptied }
    }
}

/// Emptied buckets are dropped once they are more than this, or than the
/// live ones.
const EMPTIED_KEPT: usize = 1024;

/// Emptied buckets dropped at most per emptying, oldest first: more than
/// one, so that the kept ones shrink back to the bound, and few, so that no
/// decision pays for many (dropping them all at once, 20,000 at the
/// benchmark's size, stalled one decision for 8–11 ms).
const DROPS_PER_EMPTYING: usize = 2;

impl WaitingIndex {
    /// Whether a list holds anything: one bit per list, so an agent skips its
    /// empty lists without touching them.
    pub(crate) fn is_listed(&self, id: u32) -> bool {
        self.occupancy.is_listed(id)
    }

    /// The id of a list, created empty if new. Used at login and when a
    /// contact is filed, never in an agent's search.
    pub(crate) fn list_id(&mut self, key: ListKey) -> u32 {
        let (lists, cells) = (&mut self.lists, &mut self.cells);
        let id = *self.list_ids.entry(key).or_insert_with(|| {
            lists.push(List::default());
            cells.push(Cells::default());
            (lists.len() - 1) as u32
        });
        self.occupancy.add_list(id, key.language == ANY_LANGUAGE);
        id
    }

    /// The lists an agent reads when it looks for work, as
    /// [`Agent::lists`] holds them, and how many of them are lists of one
    /// language: those of its own languages first, then the any-language
    /// lists. Lists are created as needed.
    pub(crate) fn lists_of(&mut self, agent: &Agent) -> (AgentLists, u16) {
        let mut lists = AgentLists::new();
        let mut one_language_lists = 0;
        for (pass, languages) in [&agent.languages[..], &[LanguageId(ANY_LANGUAGE)]].into_iter().enumerate() {
            for channel in Channel::ALL.into_iter().filter(|c| agent.capacity[c.index()] > 0) {
                for &(skill, proficiency) in &agent.skills {
                    for language in languages.iter().map(|l| l.0) {
                        let list = self.list_id(ListKey { channel, skill, language });
                        lists.push((channel, list, proficiency));
                    }
                }
            }
            if pass == 0 {
                one_language_lists = u16::try_from(lists.len()).expect("3 channels × 256 skills × 32 languages");
            }
        }
        (lists, one_language_lists)
    }

    /// Files a waiting contact under its requirements.
    pub(crate) fn insert(&mut self, reqs: Requirements<'_>, rank: Rank, slot: ContactSlot) -> Filed {
        if let [only] = reqs.skills {
            let level = level_of(*only);
            let mut filed_in = Filed::MANY_LISTS;
            for (i, key) in reqs.list_keys().enumerate() {
                let list = self.list_id(key);
                self.lists[list as usize].insert_single(&mut self.cells[list as usize], level, (rank, slot));
                self.occupancy.count(list, 1);
                filed_in = if i == 0 { list } else { Filed::MANY_LISTS };
            }
            return Filed::Level { level: level as u8, list: filed_in };
        }
        let id = match self.by_key.find(reqs, &self.buckets) {
            Some(id) => id,
            None => {
                let lists = reqs.list_keys().map(|key| self.list_id(key)).collect();
                let id = self.buckets.insert(Bucket { key: reqs.to_key(), contacts: RankedSet::default(), lists });
                self.by_key.insert(reqs, id);
                id
            }
        };
        let old_head = self.buckets[id].head().map(|(r, _)| r);
        let inserted = self.buckets[id].contacts.insert((rank, slot));
        debug_assert!(inserted, "contact inserted twice");
        self.head_changed(id, old_head);
        Filed::Bucket(id)
    }

    /// Takes a contact out again; `rank` is the one it was filed with, and
    /// `lists` gives the lists it was filed in (asked only for a contact in
    /// several, so that the common case does not read them from the contact).
    /// An emptied bucket is kept for reuse, within bounds.
    pub(crate) fn remove<'a>(
        &mut self,
        filed: Filed,
        lists: impl FnOnce() -> Lists<'a>,
        rank: Rank,
        slot: ContactSlot,
    ) {
        match filed {
            Filed::Level { level, list } if list != Filed::MANY_LISTS => self.remove_single(list, level, (rank, slot)),
            Filed::Level { level, .. } => {
                for key in lists().keys() {
                    let list = *self.list_ids.get(&key).expect("a filed contact's list exists");
                    self.remove_single(list, level, (rank, slot));
                }
            }
            Filed::Held => unreachable!("held contacts are not in the index"),
            Filed::Bucket(id) => {
                let bucket = &mut self.buckets[id];
                let old_head = bucket.head().map(|(r, _)| r);
                let removed = bucket.contacts.remove(&(rank, slot));
                debug_assert!(removed, "contact not in its bucket");
                self.head_changed(id, old_head);
                if self.buckets[id].contacts.is_empty() {
                    self.emptied.push_back(id);
                    self.drop_emptied();
                }
            }
        }
    }

    fn remove_single(&mut self, list: u32, level: u8, entry: (Rank, ContactSlot)) {
        self.lists[list as usize].remove_single(&mut self.cells[list as usize], usize::from(level), entry);
        self.occupancy.count(list, -1);
    }

    /// While more emptied buckets are kept than the bound, takes up to
    /// [`DROPS_PER_EMPTYING`] of the oldest off the list and drops those
    /// still empty.
    fn drop_emptied(&mut self) {
        for _ in 0..DROPS_PER_EMPTYING {
            let kept = self.emptied.len();
            if kept <= EMPTIED_KEPT.max(self.buckets.len().saturating_sub(kept)) {
                return;
            }
            let Some(id) = self.emptied.pop_front() else { return };
            if self.buckets.get(id).is_some_and(|b| b.contacts.is_empty()) {
                let bucket = self.buckets.remove(id).expect("bucket is live");
                self.by_key.remove(bucket.key.requirements(), id);
            }
        }
    }

    /// Keeps a bucket's place in its lists in step with its head.
    fn head_changed(&mut self, id: u32, old: Option<Rank>) {
        let bucket = &self.buckets[id];
        let new = bucket.head();
        if new.map(|(rank, _)| rank) == old {
            return;
        }
        for &list in &bucket.lists {
            let cells = &mut self.cells[list as usize];
            self.lists[list as usize].update_multi(cells, id, &bucket.key.skills, old, new);
            match (old, new) {
                (None, Some(_)) => self.occupancy.count(list, 1),
                (Some(_), None) => self.occupancy.count(list, -1),
                _ => {}
            }
        }
    }
}

/// How full the lists are: entries per list (contacts in levels, multi-skill
/// buckets), one bit per list that has any, and how many lists of
/// any-language contacts have any. Those lists fill only once a contact's
/// relaxation accepts any language, so while none does an agent's search
/// skips its own (a third of its lists in a typical profile).
#[derive(Default, Clone, serde::Serialize, serde::Deserialize)]
struct Occupancy {
    len: Vec<u32>,
    non_empty: Vec<u64>,
    /// One bit per list of any-language contacts.
    any_language: Vec<u64>,
    any_language_listed: u32,
}

impl Occupancy {
    /// Makes room for list `id` (new, or known already).
    fn add_list(&mut self, id: u32, any_language: bool) {
        let lists = self.len.len().max(id as usize + 1);
        self.len.resize(lists, 0);
        self.non_empty.resize(lists.div_ceil(64), 0);
        self.any_language.resize(lists.div_ceil(64), 0);
        if any_language {
            self.any_language[id as usize / 64] |= 1 << (id % 64);
        }
    }

    fn is_listed(&self, id: u32) -> bool {
        self.non_empty.get(id as usize / 64).is_some_and(|w| w & (1 << (id % 64)) != 0)
    }

    /// Adds `delta` to a list's entry count and keeps the rest in step.
    fn count(&mut self, list: u32, delta: i32) {
        let len = &mut self.len[list as usize];
        let was_listed = *len != 0;
        *len = len.wrapping_add_signed(delta);
        let listed = *len != 0;
        let bit = 1u64 << (list % 64);
        let word = &mut self.non_empty[list as usize / 64];
        if listed {
            *word |= bit;
        } else {
            *word &= !bit;
        }
        if listed != was_listed && self.any_language[list as usize / 64] & bit != 0 {
            if listed {
                self.any_language_listed += 1;
            } else {
                self.any_language_listed -= 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn reqs(skills: &[SkillReq]) -> Requirements<'_> {
        Requirements { channel: Channel::Voice, skills, languages: None }
    }

    fn two_skills(i: u16) -> [SkillReq; 2] {
        [SkillReq { skill: SkillId(i), min_proficiency: 1 }, SkillReq { skill: SkillId(i + 1), min_proficiency: 1 }]
    }

    #[test]
    fn emptied_buckets_are_reused_then_dropped_within_bounds() {
        let mut index = WaitingIndex::default();
        let rank = |seq| Rank { value: 1, seq };
        // The same requirements again: the emptied bucket is taken back.
        let skills = two_skills(0);
        let first = index.insert(reqs(&skills), rank(1), ContactSlot(1));
        index.remove(first, || reqs(&skills).lists(), rank(1), ContactSlot(1));
        assert_eq!(index.insert(reqs(&skills), rank(2), ContactSlot(2)), first);
        index.remove(first, || reqs(&skills).lists(), rank(2), ContactSlot(2));
        // Many different ones: emptied buckets never outnumber the bound.
        for i in 0..5_000u16 {
            let skills = two_skills(i);
            let filed = index.insert(reqs(&skills), rank(u64::from(i) + 10), ContactSlot(3));
            index.remove(filed, || reqs(&skills).lists(), rank(u64::from(i) + 10), ContactSlot(3));
            assert!(index.buckets.len() <= EMPTIED_KEPT + 1, "{} buckets kept", index.buckets.len());
            assert_eq!(index.buckets.len(), index.by_key.len());
        }
        // Nothing waits, so no list is listed.
        assert!((0..index.lists.len() as u32).all(|l| !index.is_listed(l)));
    }

    /// An index of `n` two-skill contacts, each in a bucket of its own (contact
    /// `i` in slot `i`, of rank (1, `i`)): the index, each bucket's skills and
    /// where each contact was filed.
    fn one_contact_per_bucket(n: u16) -> (WaitingIndex, Vec<[SkillReq; 2]>, Vec<Filed>) {
        let mut index = WaitingIndex::default();
        let skills: Vec<[SkillReq; 2]> = (0..n).map(two_skills).collect();
        let filed = skills
            .iter()
            .enumerate()
            .map(|(i, s)| index.insert(reqs(s), Rank { value: 1, seq: i as u64 }, ContactSlot(i as u32)))
            .collect();
        (index, skills, filed)
    }

    /// Buckets are found by their requirements after a snapshot's round trip
    /// (the table that finds them is rebuilt, not stored).
    #[test]
    fn a_restored_index_finds_its_buckets() {
        let (index, skills, filed) = one_contact_per_bucket(50);
        let rank = |seq| Rank { value: 1, seq };
        let bytes = postcard::to_allocvec(&index).expect("serialize");
        let mut restored: WaitingIndex = postcard::from_bytes(&bytes).expect("deserialize");
        assert_eq!(restored.by_key.len(), 50);
        for (i, (s, f)) in skills.iter().zip(filed).enumerate() {
            assert_eq!(
                restored.insert(reqs(s), rank(1_000 + i as u64), ContactSlot(1_000 + i as u32)),
                f,
                "bucket of {s:?}"
            );
        }
        assert_eq!(restored.buckets.len(), 50);
    }

    /// A contact as the differential test files it.
    #[derive(Clone, Debug)]
    struct Filing {
        skills: Vec<SkillReq>,
        language: Option<LanguageId>,
        value: u64,
    }

    impl Filing {
        fn requirements(&self) -> Requirements<'_> {
            let languages = self.language.as_ref().map(std::slice::from_ref);
            Requirements { channel: Channel::Voice, skills: &self.skills, languages }
        }
    }

    fn filing() -> impl Strategy<Value = Filing> {
        // Few skills, languages and rank values: lists hold many buckets, and
        // ranks tie on their value (contacts of one microsecond).
        let req = (0u16..5, 1u8..=10).prop_map(|(s, p)| SkillReq { skill: SkillId(s), min_proficiency: p });
        let skills = proptest::collection::vec(req, 1..=5).prop_map(|mut reqs| {
            let mut seen = Vec::new();
            reqs.retain(|r| {
                !seen.contains(&r.skill) && {
                    seen.push(r.skill);
                    true
                }
            });
            reqs
        });
        (skills, proptest::option::weighted(0.8, (0u16..2).prop_map(LanguageId)), 0u64..3)
            .prop_map(|(skills, language, value)| Filing { skills, language, value })
    }

    fn agent(index: &mut WaitingIndex, skills: &[(u16, u8)], language: u16) -> Agent {
        let mut skills: Vec<(SkillId, u8)> = skills.iter().map(|&(s, p)| (SkillId(s), p)).collect();
        skills.sort_unstable();
        skills.dedup_by_key(|&mut (s, _)| s);
        let mut agent = Agent {
            id: crate::ids::AgentId(1),
            skill_set: SkillSet::of(skills.iter().map(|&(s, _)| s)),
            skills: skills.into(),
            languages: vec![LanguageId(language)],
            capacity: [1, 0, 0],
            usage: [0; Channel::COUNT],
            ringing: 0,
            connected: 0,
            wrap_ups: Vec::new(),
            work: Vec::new(),
            presence: crate::agent::Presence::Ready,
            memberships: Vec::new(),
            lists: AgentLists::new(),
            one_language_lists: 0,
            reported: None,
            reported_since: crate::time::Time::ZERO,
        };
        (agent.lists, agent.one_language_lists) = index.lists_of(&agent);
        agent
    }

    proptest! {
        /// An agent's search finds the best-ranked contact it qualifies for,
        /// as a scan of every filed contact does, however many buckets a list
        /// holds ahead of it and however ranks tie; and so it does in the
        /// index restored from a snapshot (whose cells are rebuilt).
        #[test]
        fn an_agent_finds_the_best_contact_it_qualifies_for(
            filings in proptest::collection::vec(filing(), 1..60),
            taken in proptest::collection::vec(any::<bool>(), 60),
            agents in proptest::collection::vec((proptest::collection::vec((0u16..5, 1u8..=10), 1..5), 0u16..2), 1..8),
        ) {
            let mut index = WaitingIndex::default();
            let mut filed = Vec::new();
            for (slot, f) in filings.iter().enumerate() {
                let rank = Rank { value: f.value, seq: slot as u64 };
                filed.push((index.insert(f.requirements(), rank, ContactSlot(slot as u32)), rank));
            }
            // Some taken out again, so that buckets empty and heads move.
            for (slot, (f, &(where_filed, rank))) in filings.iter().zip(&filed).enumerate() {
                if taken[slot] {
                    let reqs = f.requirements();
                    index.remove(where_filed, || reqs.lists(), rank, ContactSlot(slot as u32));
                }
            }
            let bytes = postcard::to_allocvec(&index).expect("serialize");
            let mut restored: WaitingIndex = postcard::from_bytes(&bytes).expect("deserialize");
            for (skills, language) in &agents {
                let agent = agent(&mut index, skills, *language);
                prop_assert_eq!(&agent.lists, &self::agent(&mut restored, skills, *language).lists);
                let expected = filings
                    .iter()
                    .zip(&filed)
                    .enumerate()
                    .filter(|&(slot, (f, _))| {
                        !taken[slot]
                            && agent.qualifies(&f.skills)
                            && f.language.is_none_or(|l| agent.languages.contains(&l))
                    })
                    .map(|(slot, (_, &(_, rank)))| (rank, ContactSlot(slot as u32)))
                    .min();
                prop_assert_eq!(index.best_for(&agent, |_| {}), expected);
                prop_assert_eq!(restored.best_for(&agent, |_| {}), expected);
            }
        }
    }

    /// Many buckets emptied in a row: no one removal drops more than a few,
    /// and the kept ones come back within the bound.
    #[test]
    fn no_removal_drops_more_than_a_few_emptied_buckets() {
        let (mut index, skills, filed) = one_contact_per_bucket(5_000);
        let rank = |seq| Rank { value: 1, seq };
        assert_eq!(index.buckets.len(), 5_000);
        let mut most = 0;
        for (i, (s, f)) in skills.iter().zip(filed).enumerate() {
            let before = index.buckets.len();
            index.remove(f, || reqs(s).lists(), rank(i as u64), ContactSlot(i as u32));
            most = most.max(before - index.buckets.len());
        }
        assert!(most <= DROPS_PER_EMPTYING, "one removal dropped {most} buckets");
        // Everything is empty now; new emptyings bring the kept ones down.
        for i in 0..10_000u16 {
            let s = two_skills(10_000 + i % 3_000);
            let f = index.insert(reqs(&s), rank(u64::from(i)), ContactSlot(0));
            index.remove(f, || reqs(&s).lists(), rank(u64::from(i)), ContactSlot(0));
        }
        assert!(index.buckets.len() <= EMPTIED_KEPT + 1, "{} buckets kept", index.buckets.len());
    }
}
