//! The slots of agents or contacts by their external ids, in sixteen hash
//! tables chosen by the id's hash. A table grows by rehashing everything it
//! holds in one insert; one table of contacts did so at 114,688 and 229,376
//! waiting, 3 and 5 ms inside one decision. Each of the sixteen holds about
//! a sixteenth of the ids and grows on its own, so one insert rehashes a
//! sixteenth at most.

use std::hash::{BuildHasher, Hash};

use crate::hashing::{Keyed, KeyedMap};
use serde::de::{Deserialize, Deserializer};
use serde::ser::{Serialize, SerializeMap, Serializer};

const SHARD_BITS: u32 = 4;
/// How many tables a growing index is split into (the id tables here, the
/// buckets by requirements in `waiting`).
pub(crate) const SHARDS: usize = 1 << SHARD_BITS;

/// The table of a key with this hash: the top bits of the hash multiplied
/// once more (Fibonacci hashing), which depend on every bit of it, where a
/// table's own place and tag are fixed bit ranges of it; so the keys of one
/// shard still spread over its table.
pub(crate) fn shard_of(hash: u64) -> usize {
    (hash.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - SHARD_BITS)) as usize
}

#[derive(Clone)]
pub(crate) struct SlotsById<K, S> {
    shards: [KeyedMap<K, S>; SHARDS],
    /// Picks the shard; each shard's table hashes with its own copy.
    hasher: Keyed,
}

impl<K: Hash + Eq, S> SlotsById<K, S> {
    fn shard(&self, key: &K) -> usize {
        shard_of(self.hasher.hash_one(key))
    }

    pub(crate) fn get(&self, key: &K) -> Option<&S> {
        self.shards[self.shard(key)].get(key)
    }

    pub(crate) fn contains_key(&self, key: &K) -> bool {
        self.shards[self.shard(key)].contains_key(key)
    }

    pub(crate) fn insert(&mut self, key: K, slot: S) -> Option<S> {
        let shard = self.shard(&key);
        self.shards[shard].insert(key, slot)
    }

    pub(crate) fn remove(&mut self, key: &K) -> Option<S> {
        let shard = self.shard(key);
        self.shards[shard].remove(key)
    }

    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| s.len()).sum()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&K, &S)> {
        self.shards.iter().flatten()
    }
}

impl<K, S> Default for SlotsById<K, S> {
    fn default() -> Self {
        SlotsById { shards: std::array::from_fn(|_| KeyedMap::default()), hasher: Keyed::default() }
    }
}

/// Serialized as one map, as the single table was: snapshots do not depend
/// on the shards.
impl<K: Serialize + Hash + Eq, V: Serialize> Serialize for SlotsById<K, V> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.len()))?;
        for (key, slot) in self.iter() {
            map.serialize_entry(key, slot)?;
        }
        map.end()
    }
}

impl<'de, K: Deserialize<'de> + Hash + Eq, S: Deserialize<'de>> Deserialize<'de> for SlotsById<K, S> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let all = KeyedMap::<K, S>::deserialize(deserializer)?;
        let mut slots = SlotsById::default();
        for (key, slot) in all {
            slots.insert(key, slot);
        }
        Ok(slots)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Against one map: the same answers to every lookup after every
        /// step, and a serde round trip that reads back as the same map and
        /// as one plain map.
        #[test]
        fn slots_by_id_answer_as_one_map(ops in prop::collection::vec((any::<bool>(), 0u64..400, any::<u32>()), 1..2000)) {
            let mut slots = SlotsById::default();
            let mut model = KeyedMap::default();
            for (insert, key, slot) in ops {
                if insert {
                    prop_assert_eq!(slots.insert(key, slot), model.insert(key, slot));
                } else {
                    prop_assert_eq!(slots.remove(&key), model.remove(&key));
                }
                prop_assert_eq!(slots.get(&key), model.get(&key));
                prop_assert_eq!(slots.contains_key(&key), model.contains_key(&key));
                prop_assert_eq!(slots.len(), model.len());
            }
            let bytes = postcard::to_allocvec(&slots).unwrap();
            let back: SlotsById<u64, u32> = postcard::from_bytes(&bytes).unwrap();
            let plain: KeyedMap<u64, u32> = postcard::from_bytes(&bytes).unwrap();
            prop_assert_eq!(&plain, &model);
            for key in 0..400 {
                prop_assert_eq!(back.get(&key), model.get(&key));
            }
        }
    }

    /// Ids spread over every shard, none holding more than twice its share,
    /// whether they count up from 0, in steps of 1,024 or in their high
    /// bits: a skewed shard would grow all at once again.
    #[test]
    fn ids_spread_over_the_shards() {
        let patterns: [fn(u64) -> u64; 3] = [|i| i, |i| i * 1024, |i| i << 32];
        for pattern in patterns {
            let mut slots = SlotsById::default();
            for i in 0..160_000u64 {
                slots.insert(pattern(i), i as u32);
            }
            for s in &slots.shards {
                assert!((5_000..=20_000).contains(&s.len()), "a shard holds {} of 160,000", s.len());
            }
        }
    }
}
