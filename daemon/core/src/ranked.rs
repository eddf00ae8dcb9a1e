//! A set of waiting contacts by rank, as the waiting index keeps them (one per
//! level of a list, one per multi-skill bucket).
//!
//! Almost every such set is small — a few contacts of one skill, language
//! and minimum proficiency — and is read at its first entry, which an agent
//! then takes. A sorted ring buffer does both with no tree to walk down and
//! one cache line to touch, and takes the first entry without shifting the
//! rest (a sorted `Vec` moved them all: agent_ready −2 cache misses a
//! decision). A set that grows past [`SMALL_MAX`] becomes a
//! B-tree, so that no operation costs more than O(log n), or a shift of at
//! most half of [`SMALL_MAX`] entries.

use std::collections::{BTreeSet, VecDeque};

use crate::contact::Rank;
use crate::slab::ContactSlot;

/// (rank, contact slot).
pub(crate) type Ranked = (Rank, ContactSlot);

/// A small set grows into a B-tree beyond this many entries.
const SMALL_MAX: usize = 64;
/// A B-tree set shrinks back to a vector below this many (well under
/// [`SMALL_MAX`], so that a set hovering at the bound does not convert back
/// and forth).
const SMALL_AGAIN: usize = 16;

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub(crate) enum RankedSet {
    /// Sorted, no duplicates.
    Small(VecDeque<Ranked>),
    Large(BTreeSet<Ranked>),
}

impl Default for RankedSet {
    fn default() -> Self {
        RankedSet::Small(VecDeque::new())
    }
}

impl RankedSet {
    pub(crate) fn first(&self) -> Option<Ranked> {
        match self {
            RankedSet::Small(v) => v.front().copied(),
            RankedSet::Large(s) => s.first().copied(),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        match self {
            RankedSet::Small(v) => v.is_empty(),
            RankedSet::Large(s) => s.is_empty(),
        }
    }

    /// Adds an entry; false if it was there already.
    pub(crate) fn insert(&mut self, entry: Ranked) -> bool {
        match self {
            RankedSet::Small(v) => {
                let Err(at) = v.binary_search(&entry) else { return false };
                if v.len() < SMALL_MAX {
                    v.insert(at, entry);
                } else {
                    let mut set: BTreeSet<Ranked> = v.drain(..).collect();
                    set.insert(entry);
                    *self = RankedSet::Large(set);
                }
                true
            }
            RankedSet::Large(s) => s.insert(entry),
        }
    }

    /// Removes an entry; false if it was not there.
    pub(crate) fn remove(&mut self, entry: &Ranked) -> bool {
        match self {
            RankedSet::Small(v) => match v.binary_search(entry) {
                Ok(at) => {
                    v.remove(at);
                    true
                }
                Err(_) => false,
            },
            RankedSet::Large(s) => {
                let removed = s.remove(entry);
                self.shrink_if_small();
                removed
            }
        }
    }

    pub(crate) fn pop_first(&mut self) -> Option<Ranked> {
        match self {
            RankedSet::Small(v) => v.pop_front(),
            RankedSet::Large(s) => {
                let first = s.pop_first();
                self.shrink_if_small();
                first
            }
        }
    }

    fn shrink_if_small(&mut self) {
        if let RankedSet::Large(s) = self {
            if s.len() < SMALL_AGAIN {
                *self = RankedSet::Small(std::mem::take(s).into_iter().collect());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Whatever the sequence of operations, and across both forms, the
        /// set answers as a B-tree set of the same entries would.
        #[test]
        fn behaves_as_a_btree_set(ops in prop::collection::vec((0u8..4, 0u64..150), 1..600)) {
            let mut set = RankedSet::default();
            let mut reference = BTreeSet::new();
            for (op, value) in ops {
                let entry = (Rank { value: value / 3, seq: value }, ContactSlot(value as u32));
                match op {
                    0 | 1 => prop_assert_eq!(set.insert(entry), reference.insert(entry)),
                    2 => prop_assert_eq!(set.remove(&entry), reference.remove(&entry)),
                    _ => prop_assert_eq!(set.pop_first(), reference.pop_first()),
                }
                prop_assert_eq!(set.first(), reference.first().copied());
                prop_assert_eq!(set.is_empty(), reference.is_empty());
                let small = matches!(set, RankedSet::Small(_));
                prop_assert!(small || reference.len() >= SMALL_AGAIN);
                prop_assert!(!small || reference.len() <= SMALL_MAX);
            }
        }
    }
}
