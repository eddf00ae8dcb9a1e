//! A slab with free-slot reuse: dense storage addressed by `u32` slots, so
//! the indexes hold 4-byte handles instead of hashing external ids.
//!
//! The slots live in chunks of `CHUNK` that are allocated whole and never
//! move, so that growing the slab adds a chunk instead of copying every
//! entry: as one `Vec`, the contacts' slab doubled at each new high of
//! waiting contacts, and the doubling at 131,072 copied 25 MB inside one
//! decision (30 ms on the routing thread; 58 ms at 262,144).

use serde::de::{Deserialize, Deserializer, Error as _};
use serde::ser::{Serialize, SerializeSeq, SerializeStruct, Serializer};

/// A slot of a slab: a type of its own per kind of record, so that an
/// agent's slot cannot be passed where a contact's is meant. Four bytes
/// either way; snapshots hold the bare number.
pub(crate) trait Slot: Copy + Eq + Ord + std::hash::Hash + std::fmt::Debug {
    fn from_index(index: u32) -> Self;
    fn index(self) -> u32;
}

/// Buckets and other records with one kind of user keep bare numbers.
impl Slot for u32 {
    fn from_index(index: u32) -> u32 {
        index
    }
    fn index(self) -> u32 {
        self
    }
}

macro_rules! slot {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
        #[derive(serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        #[repr(transparent)]
        pub struct $name(pub u32);

        impl $name {
            /// No slot: the mark of an empty cell or entry.
            pub(crate) const NONE: $name = $name(u32::MAX);
        }

        // By hand, each comparison the number's own: derived, a search
        // through a sorted set of (rank, slot) cost 40 more instructions.
        impl PartialOrd for $name {
            #[inline(always)]
            fn partial_cmp(&self, other: &$name) -> Option<std::cmp::Ordering> {
                Some(self.cmp(other))
            }
            #[inline(always)]
            fn lt(&self, other: &$name) -> bool {
                self.0 < other.0
            }
            #[inline(always)]
            fn le(&self, other: &$name) -> bool {
                self.0 <= other.0
            }
            #[inline(always)]
            fn gt(&self, other: &$name) -> bool {
                self.0 > other.0
            }
            #[inline(always)]
            fn ge(&self, other: &$name) -> bool {
                self.0 >= other.0
            }
        }

        impl Ord for $name {
            #[inline(always)]
            fn cmp(&self, other: &$name) -> std::cmp::Ordering {
                self.0.cmp(&other.0)
            }
        }

        impl Slot for $name {
            fn from_index(index: u32) -> $name {
                $name(index)
            }
            fn index(self) -> u32 {
                self.0
            }
        }
    };
}

slot!(
    /// An agent's record in the router's slab of agents.
    AgentSlot
);
slot!(
    /// A contact's record in the router's slab of contacts.
    ContactSlot
);

/// Slots per chunk, a power of two: a slot's chunk is its high bits.
const CHUNK_BITS: u32 = 10;
const CHUNK: usize = 1 << CHUNK_BITS;

pub(crate) struct Slab<T, S: Slot = u32> {
    /// Slots `0..next` are handed out, in chunks of `CHUNK` allocated whole
    /// (every slot `None` until filed), so that a lookup reads the chunk's
    /// place and then the entry, with no second bound to check.
    chunks: Vec<Box<[Option<T>; CHUNK]>>,
    next: u32,
    free: Vec<u32>,
    len: usize,
    kind: std::marker::PhantomData<S>,
}

impl<T, S: Slot> Slab<T, S> {
    pub(crate) fn new() -> Self {
        Slab { chunks: Vec::new(), next: 0, free: Vec::new(), len: 0, kind: std::marker::PhantomData }
    }

    pub(crate) fn insert(&mut self, value: T) -> S {
        self.len += 1;
        if let Some(slot) = self.free.pop() {
            self.chunks[chunk_of(slot)][place_of(slot)] = Some(value);
            return S::from_index(slot);
        }
        let slot = self.next;
        self.next = slot.checked_add(1).expect("more than 2^32 live entries");
        if place_of(slot) == 0 {
            self.chunks.push(empty_chunk());
        }
        self.chunks[chunk_of(slot)][place_of(slot)] = Some(value);
        S::from_index(slot)
    }

    pub(crate) fn remove(&mut self, slot: S) -> Option<T> {
        let slot = slot.index();
        let value = self.chunks.get_mut(chunk_of(slot))?[place_of(slot)].take()?;
        self.free.push(slot);
        self.len -= 1;
        Some(value)
    }

    pub(crate) fn get(&self, slot: S) -> Option<&T> {
        let slot = slot.index();
        self.chunks.get(chunk_of(slot))?[place_of(slot)].as_ref()
    }

    pub(crate) fn get_mut(&mut self, slot: S) -> Option<&mut T> {
        let slot = slot.index();
        self.chunks.get_mut(chunk_of(slot))?[place_of(slot)].as_mut()
    }

    /// Where a slot's entry is or would be; `None` past the last chunk.
    fn entry_ptr(&self, slot: S) -> Option<*const Option<T>> {
        let slot = slot.index();
        Some(self.chunks.get(chunk_of(slot))?.as_ptr().wrapping_add(place_of(slot)))
    }

    /// Starts loading the first cache line of a slot's entry, which the
    /// caller is about to read (see [`crate::prefetch`]).
    pub(crate) fn prefetch(&self, slot: S) {
        if let Some(entry) = self.entry_ptr(slot) {
            crate::prefetch::prefetch(entry);
        }
    }

    /// Starts loading every cache line of a slot's entry, for a caller that
    /// will read fields all over a large record soon, but not at once.
    pub(crate) fn prefetch_all_lines(&self, slot: S) {
        let Some(entry) = self.entry_ptr(slot) else { return };
        let entry = entry.cast::<u8>();
        let first_line = entry.wrapping_sub(entry as usize % 64);
        let end = entry.wrapping_add(std::mem::size_of::<Option<T>>());
        let lines = (end as usize - first_line as usize).div_ceil(64);
        for line in 0..lines {
            crate::prefetch::prefetch(first_line.wrapping_add(line * 64));
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Live entries in slot order (deterministic).
    pub(crate) fn iter(&self) -> impl Iterator<Item = (S, &T)> {
        self.slots().enumerate().filter_map(|(i, s)| s.as_ref().map(|v| (S::from_index(i as u32), v)))
    }

    /// Live entries from slot `from` on, in slot order.
    pub(crate) fn iter_from(&self, from: S) -> impl Iterator<Item = (S, &T)> {
        let start = (from.index() as usize).min(self.next as usize);
        let chunks = self.chunks.iter().skip(start >> CHUNK_BITS);
        let slots = chunks.flat_map(|chunk| chunk.iter()).skip(start & (CHUNK - 1));
        let handed_out = slots.take(self.next as usize - start);
        handed_out.enumerate().filter_map(move |(i, s)| s.as_ref().map(|v| (S::from_index((start + i) as u32), v)))
    }

    /// Every slot handed out so far, live or free, in slot order.
    fn slots(&self) -> impl Iterator<Item = &Option<T>> {
        self.chunks.iter().flat_map(|chunk| chunk.iter()).take(self.next as usize)
    }
}

/// A chunk of empty slots, built on the heap (a `[None; CHUNK]` of contacts
/// would pass through 192 KiB of stack).
fn empty_chunk<T>() -> Box<[Option<T>; CHUNK]> {
    let slots: Box<[Option<T>]> = (0..CHUNK).map(|_| None).collect();
    slots.try_into().unwrap_or_else(|_| unreachable!("CHUNK slots were collected"))
}

fn chunk_of(slot: u32) -> usize {
    slot as usize >> CHUNK_BITS
}

fn place_of(slot: u32) -> usize {
    slot as usize & (CHUNK - 1)
}

impl<T, S: Slot> Default for Slab<T, S> {
    fn default() -> Self {
        Slab::new()
    }
}

/// Chunk by chunk on the heap: a derived clone of a boxed array may build
/// the copy on the stack first.
impl<T: Clone, S: Slot> Clone for Slab<T, S> {
    fn clone(&self) -> Self {
        let chunks = self
            .chunks
            .iter()
            .map(|chunk| {
                let mut copy = empty_chunk();
                copy.clone_from_slice(&chunk[..]);
                copy
            })
            .collect();
        Slab { chunks, next: self.next, free: self.free.clone(), len: self.len, kind: std::marker::PhantomData }
    }
}

/// Serialized as one sequence of slots, as the slab was before it was
/// chunked: the bytes of a snapshot do not depend on the chunk size.
impl<T: Serialize, K: Slot> Serialize for Slab<T, K> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        struct Slots<'a, T, K: Slot>(&'a Slab<T, K>);
        impl<T: Serialize, K: Slot> Serialize for Slots<'_, T, K> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let mut seq = serializer.serialize_seq(Some(self.0.next as usize))?;
                for slot in self.0.slots() {
                    seq.serialize_element(slot)?;
                }
                seq.end()
            }
        }
        let mut slab = serializer.serialize_struct("Slab", 3)?;
        slab.serialize_field("slots", &Slots(self))?;
        slab.serialize_field("free", &self.free)?;
        slab.serialize_field("len", &self.len)?;
        slab.end()
    }
}

impl<'de, T: Deserialize<'de>, K: Slot> Deserialize<'de> for Slab<T, K> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(serde::Deserialize)]
        #[serde(rename = "Slab")]
        struct Flat<T> {
            slots: Vec<Option<T>>,
            free: Vec<u32>,
            len: usize,
        }
        let Flat { slots, free, len } = Flat::deserialize(deserializer)?;
        let next = u32::try_from(slots.len()).map_err(|_| D::Error::custom("more than 2^32 slots"))?;
        let chunks = Vec::with_capacity(slots.len().div_ceil(CHUNK));
        let mut slab = Slab { chunks, next, free, len, kind: std::marker::PhantomData };
        for (slot, value) in (0..next).zip(slots) {
            if place_of(slot) == 0 {
                slab.chunks.push(empty_chunk());
            }
            slab.chunks[chunk_of(slot)][place_of(slot)] = value;
        }
        Ok(slab)
    }
}

impl<T, S: Slot> std::ops::Index<S> for Slab<T, S> {
    type Output = T;
    fn index(&self, slot: S) -> &T {
        self.get(slot).expect("slab slot is live")
    }
}

impl<T, S: Slot> std::ops::IndexMut<S> for Slab<T, S> {
    fn index_mut(&mut self, slot: S) -> &mut T {
        self.get_mut(slot).expect("slab slot is live")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(Clone, Debug)]
    enum Op {
        Insert(u64),
        Remove(usize),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![3 => any::<u64>().prop_map(Op::Insert), 2 => any::<usize>().prop_map(Op::Remove)]
    }

    proptest! {
        /// Against a map of slot to value: inserts reuse freed slots last
        /// freed first and otherwise take the next new slot, across chunk
        /// boundaries; lookups, removals, iteration and a serde round trip
        /// agree with the map.
        #[test]
        fn a_slab_is_a_map_of_slots_reusing_the_freed(ops in prop::collection::vec(op(), 1..3000)) {
            let mut slab = Slab::new();
            let mut model = std::collections::BTreeMap::new();
            let (mut freed, mut next) = (Vec::new(), 0u32);
            for op in ops {
                match op {
                    Op::Insert(v) => {
                        let expected = freed.pop().unwrap_or_else(|| { next += 1; next - 1 });
                        prop_assert_eq!(slab.insert(v), expected);
                        model.insert(expected, v);
                    }
                    Op::Remove(pick) if !model.is_empty() => {
                        let slot = *model.keys().nth(pick % model.len()).unwrap();
                        prop_assert_eq!(slab.remove(slot), model.remove(&slot));
                        prop_assert_eq!(slab.remove(slot), None);
                        freed.push(slot);
                    }
                    Op::Remove(_) => prop_assert_eq!(slab.remove(next), None),
                }
                prop_assert_eq!(slab.len(), model.len());
            }
            for slot in 0..next + 2 {
                prop_assert_eq!(slab.get(slot), model.get(&slot));
            }
            let live: Vec<(u32, u64)> = slab.iter().map(|(s, &v)| (s, v)).collect();
            prop_assert_eq!(&live, &model.iter().map(|(&s, &v)| (s, v)).collect::<Vec<_>>());
            for copy in [slab.clone(), postcard::from_bytes(&postcard::to_allocvec(&slab).unwrap()).unwrap()] {
                prop_assert_eq!(copy.iter().map(|(s, &v)| (s, v)).collect::<Vec<_>>(), live.clone());
                prop_assert_eq!(copy.next, slab.next);
            }
        }
    }

    /// The bytes are those of the slab as one `Vec` of slots, which
    /// snapshots written before the chunks hold.
    #[test]
    fn a_slab_serializes_as_one_sequence_of_slots() {
        #[derive(serde::Serialize)]
        struct Flat {
            slots: Vec<Option<u64>>,
            free: Vec<u32>,
            len: usize,
        }
        let mut slab = Slab::new();
        for v in 0..(CHUNK as u64 + 5) {
            slab.insert(v);
        }
        slab.remove(3);
        let mut slots: Vec<Option<u64>> = (0..(CHUNK as u64 + 5)).map(Some).collect();
        slots[3] = None;
        let flat = Flat { slots, free: vec![3], len: CHUNK + 4 };
        assert_eq!(postcard::to_allocvec(&slab).unwrap(), postcard::to_allocvec(&flat).unwrap());
    }
}
