//! What waiting contacts are filed under: a list's key (channel, skill,
//! language), a contact's requirements and the lists they put it in, and the
//! multi-skill buckets of identical requirements, found by a keyed hash.

use super::*;
use crate::slab::ContactSlot;

/// Language slot of a list key for contacts that accept any language.
pub(crate) const ANY_LANGUAGE: u16 = u16::MAX;

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct ListKey {
    pub channel: Channel,
    pub skill: SkillId,
    pub language: u16,
}

/// What a waiting contact requires now (its effective requirements).
#[derive(Clone, Copy, Hash)]
pub(crate) struct Requirements<'a> {
    pub channel: Channel,
    pub skills: &'a [SkillReq],
    /// `None`: any language.
    pub languages: Option<&'a [LanguageId]>,
}

impl<'a> Requirements<'a> {
    pub(super) fn to_key(self) -> BucketKey {
        BucketKey {
            channel: self.channel,
            skills: self.skills.to_vec(),
            languages: self.languages.map(<[LanguageId]>::to_vec),
        }
    }

    /// The lists a contact with these requirements is listed in.
    pub(crate) fn lists(self) -> Lists<'a> {
        Lists { channel: self.channel, skill: self.skills[0].skill, languages: self.languages }
    }

    pub(super) fn list_keys(self) -> impl Iterator<Item = ListKey> + 'a {
        self.lists().keys()
    }
}

/// The lists a waiting contact is in: one per acceptable language (or the
/// `ANY` list) under its channel and primary skill.
#[derive(Clone, Copy)]
pub(crate) struct Lists<'a> {
    pub channel: Channel,
    pub skill: SkillId,
    /// `None`: any language.
    pub languages: Option<&'a [LanguageId]>,
}

impl<'a> Lists<'a> {
    pub(super) fn keys(self) -> impl Iterator<Item = ListKey> + 'a {
        let Lists { channel, skill, languages } = self;
        let languages: &[LanguageId] = languages.unwrap_or(&[LanguageId(ANY_LANGUAGE)]);
        languages.iter().map(move |l| ListKey { channel, skill, language: l.0 })
    }
}

/// Requirements shared by every contact of a multi-skill bucket.
#[derive(PartialEq, Eq, Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(super) struct BucketKey {
    pub(super) channel: Channel,
    pub(super) skills: Vec<SkillReq>,
    pub(super) languages: Option<Vec<LanguageId>>,
}

impl BucketKey {
    pub(super) fn requirements(&self) -> Requirements<'_> {
        Requirements { channel: self.channel, skills: &self.skills, languages: self.languages.as_deref() }
    }
}

impl Requirements<'_> {
    pub(super) fn matches(&self, key: &BucketKey) -> bool {
        self.channel == key.channel
            && self.skills == key.skills.as_slice()
            && self.languages == key.languages.as_deref()
    }

    pub(super) fn key_hash(&self, hasher: &Keyed) -> u64 {
        hasher.hash_one(self)
    }
}

/// The multi-skill buckets by requirements, as (hash of the requirements,
/// bucket): the requirements themselves are read from the bucket. Buckets
/// come and go, and a hash table that has seen many removals rehashes
/// every entry in one insert; with the hash kept in the entry that is one
/// pass over the table, where rehashing the requirements cost a cache miss
/// per bucket (400 µs to 1.5 ms at the benchmark's size, in one decision).
/// The entries are split over `SHARDS` tables by hash, as the id tables
/// are, so that one insert rehashes a sixteenth of them at most (one table
/// of 57,000 buckets took 1–1.6 ms to grow, docs/PERFORMANCE.md).
#[derive(Default, Clone)]
pub(super) struct BucketsByKey {
    pub(super) tables: [HashTable<(u64, u32)>; SHARDS],
    pub(super) hasher: Keyed,
}

impl BucketsByKey {
    pub(super) fn find(&self, reqs: Requirements<'_>, buckets: &Slab<Bucket>) -> Option<u32> {
        let hash = reqs.key_hash(&self.hasher);
        let table = &self.tables[shard_of(hash)];
        table.find(hash, |&(h, id)| h == hash && reqs.matches(&buckets[id].key)).map(|&(_, id)| id)
    }

    pub(super) fn insert(&mut self, reqs: Requirements<'_>, id: u32) {
        let hash = reqs.key_hash(&self.hasher);
        self.tables[shard_of(hash)].insert_unique(hash, (hash, id), |&(h, _)| h);
    }

    pub(super) fn remove(&mut self, reqs: Requirements<'_>, id: u32) {
        let hash = reqs.key_hash(&self.hasher);
        if let Ok(entry) = self.tables[shard_of(hash)].find_entry(hash, |&(_, i)| i == id) {
            entry.remove();
        }
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.tables.iter().map(HashTable::len).sum()
    }
}

#[derive(Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct Bucket {
    pub(super) key: BucketKey,
    pub(super) contacts: RankedSet,
    /// The lists this bucket is in (one per acceptable language, or `ANY`),
    /// in the record up to a common count: a take reads them next.
    pub(super) lists: SmallVec<[u32; 2]>,
}

impl Bucket {
    /// The best-ranked contact: (rank, contact slot).
    pub(crate) fn head(&self) -> Option<(Rank, ContactSlot)> {
        self.contacts.first()
    }

    pub(crate) fn skills(&self) -> &[SkillReq] {
        &self.key.skills
    }
}

/// Up to [`InlineReqs::MAX`] skill requirements, stored in place: skills and
/// proficiencies apart, ten bytes, so that a [`MultiCell`] holds two sets.
#[derive(Clone, Copy, Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct InlineReqs {
    pub(super) skills: [SkillId; InlineReqs::MAX],
    pub(super) proficiencies: [u8; InlineReqs::MAX],
    /// `u8::MAX`: more than [`InlineReqs::MAX`], of which the first are held.
    pub(super) len: u8,
}

const _: () = assert!(std::mem::size_of::<InlineReqs>() == 10);

impl InlineReqs {
    /// Three; contacts that need more skills are rare, and their bucket is
    /// read instead.
    pub(super) const MAX: usize = 3;
    pub(super) const EMPTY: InlineReqs =
        InlineReqs { skills: [SkillId(0); Self::MAX], proficiencies: [0; Self::MAX], len: 0 };

    /// The unused places repeat the first requirement, so that
    /// [`InlineReqs::may_be_met_by`] reads all of them without a branch.
    pub(super) fn new(reqs: &[SkillReq]) -> Self {
        let held = |i: usize| reqs[if i < reqs.len() { i } else { 0 }];
        InlineReqs {
            skills: std::array::from_fn(|i| held(i).skill),
            proficiencies: std::array::from_fn(|i| held(i).min_proficiency),
            len: if reqs.len() > Self::MAX { u8::MAX } else { reqs.len() as u8 },
        }
    }

    /// Whether an agent with these skills may meet the requirements: false
    /// means it lacks one of the skills held inline (the usual answer), true
    /// is to be confirmed with the proficiencies.
    pub(super) fn may_be_met_by(&self, skills: &SkillSet) -> bool {
        skills.may_contain_all(self.skills)
    }

    /// Whether `agent` meets the requirements, or `None` when that needs
    /// the requirements not held inline.
    pub(super) fn fits(&self, agent: &Agent) -> Option<bool> {
        if !self.may_be_met_by(&agent.skill_set) {
            return Some(false);
        }
        (self.len != u8::MAX).then(|| {
            let mut held = self.skills.iter().zip(&self.proficiencies).take(usize::from(self.len));
            held.all(|(&skill, &min)| agent.proficiency(skill) >= min)
        })
    }
}
