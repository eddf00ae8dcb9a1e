//! The index of waiting contacts, for an agent looking for work.
//!
//! Waiting contacts are grouped in *buckets* of identical effective
//! requirements: channel, skills with minimum proficiency, and acceptable
//! languages. An agent either qualifies for every contact of a bucket or for
//! none, so it only ever needs a bucket's head (its best-ranked contact).
//! Buckets span queues: the rank is comparable across queues.
//!
//! Each bucket is listed under (channel, first required skill, language) for
//! each acceptable language, or `ANY`. In a *list*, buckets that require only
//! that skill sit in one level per minimum proficiency, and each level keeps
//! its best head in a plain array: an agent with proficiency *p* reads *p*
//! array slots and has the list's best single-skill contact for it, with no
//! scanning past contacts it cannot take. Buckets that need more skills are
//! kept by head rank and read from the front until one qualifies.
//! Lists are interned: an agent learns its list ids at login and never hashes
//! on the hot path.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{Hash, Hasher};

use hashbrown::{Equivalent, HashMap};
use rustc_hash::{FxBuildHasher, FxHashMap};

use crate::contact::Rank;
use crate::ids::{Channel, LanguageId, SkillId, SkillReq, MAX_PROFICIENCY};
use crate::slab::Slab;

/// Language slot of a list key for buckets that accept any language.
pub(crate) const ANY_LANGUAGE: u16 = u16::MAX;

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct ListKey {
    pub channel: Channel,
    pub skill: SkillId,
    pub language: u16,
}

/// Requirements shared by every contact of a bucket.
#[derive(PartialEq, Eq, Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct BucketKey {
    pub channel: Channel,
    pub skills: Vec<SkillReq>,
    pub languages: Option<Vec<LanguageId>>,
}

/// Borrowed form of [`BucketKey`], so a lookup does not allocate.
#[derive(Clone, Copy, Hash)]
pub(crate) struct BucketKeyRef<'a> {
    pub channel: Channel,
    pub skills: &'a [SkillReq],
    pub languages: Option<&'a [LanguageId]>,
}

impl Hash for BucketKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_ref().hash(state)
    }
}

impl BucketKey {
    fn as_ref(&self) -> BucketKeyRef<'_> {
        BucketKeyRef { channel: self.channel, skills: &self.skills, languages: self.languages.as_deref() }
    }
}

impl BucketKeyRef<'_> {
    fn to_owned(self) -> BucketKey {
        BucketKey {
            channel: self.channel,
            skills: self.skills.to_vec(),
            languages: self.languages.map(<[LanguageId]>::to_vec),
        }
    }
}

impl Equivalent<BucketKey> for BucketKeyRef<'_> {
    fn equivalent(&self, key: &BucketKey) -> bool {
        self.channel == key.channel
            && self.skills == key.skills.as_slice()
            && self.languages == key.languages.as_deref()
    }
}

#[derive(Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct Bucket {
    pub key: BucketKey,
    pub contacts: BTreeSet<(Rank, u32)>,
    /// The lists this bucket is in (one per acceptable language, or `ANY`).
    lists: Vec<u32>,
}

impl Bucket {
    fn head(&self) -> Option<Rank> {
        self.contacts.first().map(|&(rank, _)| rank)
    }
}

/// Non-empty buckets of one (channel, skill, language).
#[derive(Default, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct List {
    /// Single-skill buckets by minimum proficiency (index = min − 1), each
    /// level ordered by head rank.
    levels: [BTreeSet<(Rank, u32)>; MAX_PROFICIENCY as usize],
    /// The first entry of each level, kept in step.
    level_heads: [Option<(Rank, u32)>; MAX_PROFICIENCY as usize],
    /// `best_up_to[p - 1]`: the best head over levels 1..=p, so an agent of
    /// proficiency p reads one slot.
    pub best_up_to: [Option<(Rank, u32)>; MAX_PROFICIENCY as usize],
    /// Buckets that require other skills too, by head rank, with their
    /// requirements inline so that a scan does not chase pointers.
    pub multi_skill: BTreeMap<(Rank, u32), InlineReqs>,
    /// The first entry of `multi_skill`, kept in step: most searches stop at
    /// it (it either qualifies or ranks behind what was already found).
    pub multi_first: Option<((Rank, u32), InlineReqs)>,
}

/// Up to [`InlineReqs::MAX`] skill requirements, stored in place.
#[derive(Clone, Copy, Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct InlineReqs {
    reqs: [SkillReq; InlineReqs::MAX],
    len: u8,
}

impl InlineReqs {
    const MAX: usize = 4;

    fn new(skills: &[SkillReq]) -> Self {
        let mut reqs = [SkillReq { skill: SkillId(0), min_proficiency: 0 }; Self::MAX];
        let len = skills.len().min(Self::MAX);
        reqs[..len].copy_from_slice(&skills[..len]);
        InlineReqs { reqs, len: if skills.len() > Self::MAX { u8::MAX } else { len as u8 } }
    }

    /// The requirements, or `None` when there are too many to hold inline.
    pub(crate) fn get(&self) -> Option<&[SkillReq]> {
        (self.len != u8::MAX).then(|| &self.reqs[..usize::from(self.len)])
    }
}

impl List {
    fn update(&mut self, bucket: u32, skills: &[SkillReq], old: Option<Rank>, new: Option<Rank>) {
        if let [only] = skills {
            let level = usize::from(only.min_proficiency.clamp(1, MAX_PROFICIENCY) - 1);
            let set = &mut self.levels[level];
            if let Some(old) = old {
                set.remove(&(old, bucket));
            }
            if let Some(new) = new {
                set.insert((new, bucket));
            }
            self.level_heads[level] = set.first().copied();
            let mut best = if level == 0 { None } else { self.best_up_to[level - 1] };
            for p in level..usize::from(MAX_PROFICIENCY) {
                best = match (best, self.level_heads[p]) {
                    (Some(b), Some(h)) => Some(b.min(h)),
                    (b, h) => b.or(h),
                };
                self.best_up_to[p] = best;
            }
        } else {
            if let Some(old) = old {
                self.multi_skill.remove(&(old, bucket));
            }
            if let Some(new) = new {
                self.multi_skill.insert((new, bucket), InlineReqs::new(skills));
            }
            self.multi_first = self.multi_skill.first_key_value().map(|(&k, &v)| (k, v));
        }
    }
}

#[derive(Default, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct BucketIndex {
    by_key: HashMap<BucketKey, u32, FxBuildHasher>,
    buckets: Slab<Bucket>,
    list_ids: FxHashMap<ListKey, u32>,
    lists: Vec<List>,
    /// Buckets per list, and one bit per list that has any.
    list_len: Vec<u32>,
    non_empty: Vec<u64>,
}

impl BucketIndex {
    pub(crate) fn bucket(&self, id: u32) -> &Bucket {
        &self.buckets[id]
    }

    pub(crate) fn list(&self, id: u32) -> &List {
        &self.lists[id as usize]
    }

    /// Whether a list holds any bucket: one bit per list, so an agent skips
    /// its empty lists without touching them.
    pub(crate) fn is_listed(&self, id: u32) -> bool {
        self.non_empty.get(id as usize / 64).is_some_and(|w| w & (1 << (id % 64)) != 0)
    }

    /// The id of a list, created empty if new. Used at login, not per decision.
    pub(crate) fn list_id(&mut self, key: ListKey) -> u32 {
        let lists = &mut self.lists;
        let id = *self.list_ids.entry(key).or_insert_with(|| {
            lists.push(List::default());
            (lists.len() - 1) as u32
        });
        self.list_len.resize(self.lists.len(), 0);
        self.non_empty.resize(self.lists.len().div_ceil(64), 0);
        id
    }

    /// Adds a contact and returns its bucket.
    pub(crate) fn insert(&mut self, key: BucketKeyRef<'_>, rank: Rank, slot: u32) -> u32 {
        let id = match self.by_key.get(&key) {
            Some(&id) => id,
            None => {
                let skill = key.skills[0].skill;
                let languages: Vec<u16> = match key.languages {
                    None => vec![ANY_LANGUAGE],
                    Some(ls) => ls.iter().map(|l| l.0).collect(),
                };
                let lists = languages
                    .into_iter()
                    .map(|language| self.list_id(ListKey { channel: key.channel, skill, language }));
                let lists = lists.collect();
                let id = self.buckets.insert(Bucket { key: key.to_owned(), contacts: BTreeSet::new(), lists });
                self.by_key.insert(key.to_owned(), id);
                id
            }
        };
        let old_head = self.buckets[id].head();
        let inserted = self.buckets[id].contacts.insert((rank, slot));
        debug_assert!(inserted, "contact inserted twice");
        self.head_changed(id, old_head);
        id
    }

    /// Removes a contact; an emptied bucket is dropped.
    pub(crate) fn remove(&mut self, id: u32, rank: Rank, slot: u32) {
        let bucket = &mut self.buckets[id];
        let old_head = bucket.head();
        let removed = bucket.contacts.remove(&(rank, slot));
        debug_assert!(removed, "contact not in its bucket");
        self.head_changed(id, old_head);
        if self.buckets[id].contacts.is_empty() {
            let bucket = self.buckets.remove(id).expect("bucket is live");
            self.by_key.remove(&bucket.key.as_ref());
        }
    }

    /// Keeps the bucket's place in its lists in step with its head.
    fn head_changed(&mut self, id: u32, old: Option<Rank>) {
        let bucket = &self.buckets[id];
        let new = bucket.head();
        if new == old {
            return;
        }
        for &list in &bucket.lists {
            self.lists[list as usize].update(id, &bucket.key.skills, old, new);
            let len = &mut self.list_len[list as usize];
            match (old, new) {
                (None, Some(_)) => *len += 1,
                (Some(_), None) => *len -= 1,
                _ => continue,
            }
            let bit = 1u64 << (list % 64);
            let word = &mut self.non_empty[list as usize / 64];
            if *len == 0 {
                *word &= !bit;
            } else {
                *word |= bit;
            }
        }
    }
}
