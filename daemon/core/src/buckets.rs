//! The index of waiting contacts, for an agent looking for work.
//!
//! Waiting contacts are grouped in *buckets* of identical effective
//! requirements: same queue, channel, skills with minimum proficiency, and
//! acceptable languages. An agent either qualifies for every contact of a
//! bucket or for none, so it tests each bucket once and only ever looks at its
//! head (the best-ranked contact). A relaxation step moves a contact to the
//! bucket of its new requirements.
//!
//! Non-empty buckets are listed under (channel, first required skill,
//! language), with language `ANY` for buckets that accept every language. An
//! agent reads the lists of its own skills × its languages and `ANY`: every
//! bucket it could qualify for is on one of them.

use std::collections::BTreeSet;
use std::hash::{Hash, Hasher};

use hashbrown::{Equivalent, HashMap};
use rustc_hash::{FxBuildHasher, FxHashMap};

use crate::contact::Rank;
use crate::ids::{Channel, LanguageId, QueueId, SkillId, SkillReq};
use crate::slab::Slab;

/// Language slot of a list key for buckets that accept any language.
pub(crate) const ANY_LANGUAGE: u16 = u16::MAX;

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub(crate) struct ListKey {
    pub channel: Channel,
    pub skill: SkillId,
    pub language: u16,
}

/// Requirements shared by every contact of a bucket.
#[derive(PartialEq, Eq, Debug)]
pub(crate) struct BucketKey {
    pub queue: QueueId,
    pub channel: Channel,
    pub skills: Vec<SkillReq>,
    pub languages: Option<Vec<LanguageId>>,
}

/// Borrowed form of [`BucketKey`], so a lookup does not allocate.
#[derive(Clone, Copy, Hash)]
pub(crate) struct BucketKeyRef<'a> {
    pub queue: QueueId,
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
        BucketKeyRef {
            queue: self.queue,
            channel: self.channel,
            skills: &self.skills,
            languages: self.languages.as_deref(),
        }
    }
}

impl BucketKeyRef<'_> {
    fn to_owned(self) -> BucketKey {
        BucketKey {
            queue: self.queue,
            channel: self.channel,
            skills: self.skills.to_vec(),
            languages: self.languages.map(<[LanguageId]>::to_vec),
        }
    }
}

impl Equivalent<BucketKey> for BucketKeyRef<'_> {
    fn equivalent(&self, key: &BucketKey) -> bool {
        self.queue == key.queue
            && self.channel == key.channel
            && self.skills == key.skills.as_slice()
            && self.languages == key.languages.as_deref()
    }
}

pub(crate) struct Bucket {
    pub key: BucketKey,
    pub contacts: BTreeSet<(Rank, u32)>,
    /// Where this bucket sits in each list it is linked into.
    links: Vec<(ListKey, u32)>,
}

#[derive(Default)]
pub(crate) struct BucketIndex {
    by_key: HashMap<BucketKey, u32, FxBuildHasher>,
    buckets: Slab<Bucket>,
    lists: FxHashMap<ListKey, Vec<u32>>,
}

impl BucketIndex {
    pub(crate) fn bucket(&self, id: u32) -> &Bucket {
        &self.buckets[id]
    }

    pub(crate) fn list(&self, key: &ListKey) -> &[u32] {
        self.lists.get(key).map_or(&[], Vec::as_slice)
    }

    /// Adds a contact and returns its bucket.
    pub(crate) fn insert(&mut self, key: BucketKeyRef<'_>, rank: Rank, slot: u32) -> u32 {
        let id = match self.by_key.get(&key) {
            Some(&id) => id,
            None => {
                let id =
                    self.buckets.insert(Bucket { key: key.to_owned(), contacts: BTreeSet::new(), links: Vec::new() });
                self.by_key.insert(key.to_owned(), id);
                self.link(id);
                id
            }
        };
        let inserted = self.buckets[id].contacts.insert((rank, slot));
        debug_assert!(inserted, "contact inserted twice");
        id
    }

    /// Removes a contact; an emptied bucket is dropped from the index.
    pub(crate) fn remove(&mut self, id: u32, rank: Rank, slot: u32) {
        let bucket = &mut self.buckets[id];
        let removed = bucket.contacts.remove(&(rank, slot));
        debug_assert!(removed, "contact not in its bucket");
        if bucket.contacts.is_empty() {
            self.unlink(id);
            let bucket = self.buckets.remove(id).expect("bucket is live");
            self.by_key.remove(&bucket.key.as_ref());
        }
    }

    fn link(&mut self, id: u32) {
        let bucket = &self.buckets[id];
        let channel = bucket.key.channel;
        let skill = bucket.key.skills[0].skill;
        let languages: Vec<u16> = match &bucket.key.languages {
            None => vec![ANY_LANGUAGE],
            Some(ls) => ls.iter().map(|l| l.0).collect(),
        };
        let mut links = Vec::with_capacity(languages.len());
        for language in languages {
            let key = ListKey { channel, skill, language };
            let list = self.lists.entry(key).or_default();
            links.push((key, list.len() as u32));
            list.push(id);
        }
        self.buckets[id].links = links;
    }

    fn unlink(&mut self, id: u32) {
        let links = std::mem::take(&mut self.buckets[id].links);
        for (key, pos) in links {
            let list = self.lists.get_mut(&key).expect("linked list exists");
            debug_assert_eq!(list[pos as usize], id);
            list.swap_remove(pos as usize);
            if let Some(&moved) = list.get(pos as usize) {
                let link =
                    self.buckets[moved].links.iter_mut().find(|(k, _)| *k == key).expect("moved bucket is linked");
                link.1 = pos;
            }
        }
    }
}
