//! Where each waiting contact stands in its queue.
//!
//! A gateway asks for a caller's position to announce it ("you are number 4
//! in line"), and asks again while the caller waits. Counting the contacts
//! ranked ahead by a scan costs a pass over every contact: half a millisecond
//! of the routing thread at 100k waiting. [`QueuePositions`] keeps, per tier
//! of a queue, a [`QueueOrder`]: the ranks of the waiting contacts in short
//! sorted chunks, each with a bitmap of the ranks still waiting.
//!
//! - taking a contact out clears its bit, and moves nothing. Where it was
//!   filed is kept in the contact's record as a [`Place`], so that taking it
//!   out reads two cache lines instead of searching the chunks' first keys
//!   and then the chunk (eight misses and as many mispredicted branches a
//!   decision at 100k waiting); a place made stale by a split or a sweep is
//!   noticed and the search made. A contact that comes back at its old rank
//!   (after RONA or a withdrawn offer) sets its bit again;
//! - filing a new contact appends to the last chunk of its tier: within a
//!   tier, ranks grow with arrival under every policy but explicit deadlines.
//!   A chunk filed in the middle that fills up drops its taken ranks, and
//!   splits only if it is still full;
//! - a position is the same search per tier plus a count of the bits before
//!   it: O(n / 16) additions, microseconds at 100k waiting.
//!
//! A counted B-tree would answer in O(log n), but it pays for that with a
//! write on every level of the tree for every contact filed and taken: the
//! hot path is what this has to spare, not the query.

use crate::contact::Rank;
use crate::ids::TierId;

/// Most ranks in one chunk, taken ones included: one bit each in `live`.
const CHUNK: usize = 64;
/// A sweep merges two neighbours with at most this many waiting ranks
/// together, so that the chunks stay a quarter full on average.
const HALF: u32 = CHUNK as u32 / 2;

#[derive(Clone, Default, Debug, serde::Serialize, serde::Deserialize)]
struct Chunk {
    /// Sorted; ranks taken out stay until the chunk is compacted.
    keys: Vec<u128>,
    /// Bit j: `keys[j]` is waiting. Zero once every rank in the chunk was
    /// taken out; the chunk stays until the next sweep.
    live: u64,
}

impl Chunk {
    fn waiting(&self) -> u32 {
        self.live.count_ones()
    }

    /// Waiting ranks among the first `n` keys.
    fn waiting_before(&self, n: usize) -> u32 {
        (self.live & below(n)).count_ones()
    }

    /// Drops the ranks taken out.
    fn compact(&mut self) {
        let mut j = 0;
        self.keys.retain(|_| {
            j += 1;
            self.live & (1 << (j - 1)) != 0
        });
        self.live = below(self.keys.len());
    }

    fn insert(&mut self, at: usize, key: u128) {
        self.keys.insert(at, key);
        let low = self.live & below(at);
        self.live = low | ((self.live & !below(at)) << 1) | (1 << at);
    }
}

/// Where a rank was filed in its order: its chunk and its index there, to
/// take it out again without a search. Only a hint: chunks split, compact and
/// are swept after it was given, so it is checked against the key it must
/// find there, and the rank searched for when it does not hold.
#[derive(Clone, Copy, PartialEq, Eq, Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct Place(u32);

impl Place {
    /// No hint: the rank is searched for.
    pub(crate) const UNKNOWN: Place = Place(u32::MAX);

    fn new(chunk: usize, at: usize) -> Place {
        debug_assert!(at < CHUNK);
        match u32::try_from(chunk) {
            Ok(chunk) if chunk < 1 << 24 => Place(chunk << 8 | at as u32),
            _ => Place::UNKNOWN,
        }
    }

    fn chunk(self) -> usize {
        (self.0 >> 8) as usize
    }

    fn at(self) -> usize {
        (self.0 & 0xff) as usize
    }
}

/// The bits of the first `n` keys of a chunk.
fn below(n: usize) -> u64 {
    ((1u128 << n) - 1) as u64
}

/// The waiting contacts of one queue, for their positions: one order per
/// tier, so that new arrivals append.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct QueuePositions {
    by_tier: Vec<QueueOrder>,
    /// Over all tiers.
    waiting: u32,
}

impl QueuePositions {
    pub(crate) fn new(tiers: usize) -> Self {
        QueuePositions { by_tier: vec![QueueOrder::default(); tiers], waiting: 0 }
    }

    /// Files a rank; returns where, for [`QueuePositions::remove`].
    pub(crate) fn insert(&mut self, tier: TierId, rank: Rank) -> Place {
        self.waiting += 1;
        self.by_tier[usize::from(tier.0)].insert(rank)
    }

    /// Returns whether the contact was filed. `place` is where it was filed,
    /// or [`Place::UNKNOWN`].
    pub(crate) fn remove(&mut self, tier: TierId, rank: Rank, place: Place) -> bool {
        let filed = self.by_tier[usize::from(tier.0)].remove(rank, place);
        self.waiting -= u32::from(filed);
        filed
    }

    pub(crate) fn waiting(&self) -> u32 {
        self.waiting
    }

    pub(crate) fn waiting_by_tier(&self) -> impl Iterator<Item = u32> + '_ {
        self.by_tier.iter().map(|order| order.waiting)
    }

    /// How many waiting contacts of the queue rank before `rank`.
    pub(crate) fn ahead_of(&self, rank: Rank) -> u32 {
        self.by_tier.iter().map(|order| order.count_before(rank)).sum()
    }
}

/// The ranks of some waiting contacts, in order, with counts.
#[derive(Clone, Default, Debug, serde::Serialize, serde::Deserialize)]
struct QueueOrder {
    /// Every key of a chunk ranks before every key of the next. A chunk may
    /// have no rank waiting until the next [`QueueOrder::sweep`].
    chunks: Vec<Chunk>,
    /// Where each chunk's keys begin: not after its first key, after every
    /// key of the chunks before it. Finding a key's chunk reads this one
    /// dense array and not the chunks.
    firsts: Vec<u128>,
    /// Ranks filed now.
    waiting: u32,
}

impl QueueOrder {
    /// Files a rank that is not filed now, and returns where. Each contact has
    /// its own rank (its `seq` is unique), and may be filed again after it was
    /// taken out.
    fn insert(&mut self, rank: Rank) -> Place {
        let key = rank.key();
        self.waiting += 1;
        // Most contacts arrive after all the others of their tier: no search.
        // (A chunk's keys, taken ones included, are only ever empty for the
        // moment of a compaction.)
        let tail = self.chunks.len().wrapping_sub(1);
        match self.chunks.last_mut() {
            None => return self.push_chunk(key),
            Some(chunk) if chunk.keys.len() < CHUNK && chunk.keys.last().is_some_and(|&k| k < key) => {
                let at = chunk.keys.len();
                chunk.insert(at, key);
                return Place::new(tail, at);
            }
            Some(_) => {}
        }
        let mut i = self.chunk_of(key);
        let last = i + 1 == self.chunks.len();
        let chunk = &mut self.chunks[i];
        let mut at = chunk.keys.partition_point(|&k| k < key);
        if chunk.keys.get(at) == Some(&key) {
            debug_assert!(chunk.live & (1 << at) == 0, "rank filed twice");
            chunk.live |= 1 << at;
            return Place::new(i, at);
        }
        if chunk.keys.len() == CHUNK {
            chunk.compact();
            at = chunk.keys.partition_point(|&k| k < key);
        }
        let full = chunk.keys.len() == CHUNK;
        let place = if full && last && at == CHUNK {
            // Arrivals come in rank order: start the next chunk.
            self.push_chunk(key)
        } else {
            if full {
                let mut keys = Vec::with_capacity(CHUNK);
                keys.extend(chunk.keys.drain(CHUNK / 2..));
                chunk.live = below(CHUNK / 2);
                self.firsts.insert(i + 1, keys[0]);
                self.chunks.insert(i + 1, Chunk { live: below(keys.len()), keys });
                if at > CHUNK / 2 {
                    (i, at) = (i + 1, at - CHUNK / 2);
                }
            }
            self.chunks[i].insert(at, key);
            self.firsts[i] = self.firsts[i].min(key);
            Place::new(i, at)
        };
        if full && self.sweep_if_sparse() {
            return Place::UNKNOWN;
        }
        place
    }

    /// Starts a chunk after all the others with `key`, the largest filed.
    fn push_chunk(&mut self, key: u128) -> Place {
        let mut chunk = Chunk { keys: Vec::with_capacity(CHUNK), live: 0 };
        chunk.insert(0, key);
        self.chunks.push(chunk);
        self.firsts.push(key);
        Place::new(self.chunks.len() - 1, 0)
    }

    /// Takes a filed rank out; returns whether it was filed. The rank stays in
    /// its chunk, marked as taken, so nothing moves. `place` is a hint of
    /// where it was filed.
    fn remove(&mut self, rank: Rank, place: Place) -> bool {
        let key = rank.key();
        let hinted = self.chunks.get(place.chunk()).filter(|c| c.keys.get(place.at()) == Some(&key));
        let (i, at) = match hinted {
            Some(_) => (place.chunk(), place.at()),
            None => {
                if self.chunks.is_empty() {
                    return false;
                }
                let i = self.chunk_of(key);
                let Ok(at) = self.chunks[i].keys.binary_search(&key) else { return false };
                (i, at)
            }
        };
        let chunk = &mut self.chunks[i];
        if chunk.live & (1 << at) == 0 {
            return false;
        }
        chunk.live &= !(1 << at);
        self.waiting -= 1;
        self.sweep_if_sparse();
        true
    }

    /// How many filed ranks come before `rank`.
    fn count_before(&self, rank: Rank) -> u32 {
        if self.chunks.is_empty() {
            return 0;
        }
        let key = rank.key();
        let i = self.chunk_of(key);
        let before: u32 = self.chunks[..i].iter().map(Chunk::waiting).sum();
        before + self.chunks[i].waiting_before(self.chunks[i].keys.partition_point(|&k| k < key))
    }

    /// The chunk that holds `key`, or would: the last one that begins at or
    /// before it (the first chunk for a key before everything).
    fn chunk_of(&self, key: u128) -> usize {
        self.firsts.partition_point(|&f| f <= key).saturating_sub(1)
    }

    /// Chunks thinned by removals are merged and empty ones dropped once there
    /// are more than twice as many as a sweep leaves. A sweep costs O(n) and
    /// comes after Ω(n / 16) changes, so the cost per change stays constant,
    /// and removals never move chunks. The one slow change is the sweep
    /// itself: a sequential pass over at most n / 8 + 8 chunks of 1 KiB,
    /// around a millisecond for 100k waiting in one tier (not measured).
    /// Returns whether it swept (which moves ranks: places given before are
    /// stale).
    #[inline]
    fn sweep_if_sparse(&mut self) -> bool {
        let sparse = self.chunks.len() > self.waiting as usize / 8 + 8;
        if sparse {
            self.sweep();
        }
        sparse
    }

    /// Drops taken ranks and empty chunks, and merges neighbours that hold
    /// at most [`HALF`] ranks together: afterwards every two neighbours hold
    /// more, so there are at most n / 16 + 1 chunks. In place, in one pass.
    fn sweep(&mut self) {
        let mut kept = 0;
        for i in 0..self.chunks.len() {
            self.chunks[i].compact();
            if self.chunks[i].keys.is_empty() {
                continue;
            }
            if kept > 0 && self.chunks[kept - 1].waiting() + self.chunks[i].waiting() <= HALF {
                let (before, from) = self.chunks.split_at_mut(i);
                let (into, from) = (&mut before[kept - 1], &mut from[0]);
                into.live |= below(from.keys.len()) << into.keys.len();
                into.keys.append(&mut from.keys);
                from.live = 0;
                continue;
            }
            self.chunks.swap(kept, i);
            self.firsts[kept] = self.chunks[kept].keys[0];
            kept += 1;
        }
        self.chunks.truncate(kept);
        self.firsts.truncate(kept);
    }

    /// Waiting ranks, counted; for tests.
    #[cfg(test)]
    fn len(&self) -> usize {
        let counted: usize = self.chunks.iter().map(|c| c.waiting() as usize).sum();
        assert_eq!(counted, self.waiting as usize);
        counted
    }

    /// Checks the layout the operations rely on; for tests.
    #[cfg(test)]
    fn check(&self) {
        assert_eq!(self.chunks.len(), self.firsts.len());
        assert!(self.chunks.len() <= self.waiting as usize / 8 + 8, "{} chunks not swept", self.chunks.len());
        for (i, chunk) in self.chunks.iter().enumerate() {
            assert!(chunk.keys.len() <= CHUNK, "chunk {i} holds {} keys", chunk.keys.len());
            assert_eq!(chunk.live & !below(chunk.keys.len()), 0, "chunk {i} has bits past its keys");
            assert!(chunk.keys.windows(2).all(|w| w[0] < w[1]), "chunk {i} is out of order");
            assert!(chunk.keys.first().is_none_or(|&k| k >= self.firsts[i]), "chunk {i} begins before its start");
            if let Some(&next) = self.firsts.get(i + 1) {
                assert!(self.firsts[i] < next, "chunks {i} and {} begin out of order", i + 1);
                assert!(chunk.keys.last().is_none_or(|&k| k < next), "chunk {i} runs into the next");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeSet, HashMap};

    use proptest::prelude::*;

    use super::*;

    fn rank(value: u64, seq: u64) -> Rank {
        Rank { value, seq }
    }

    #[derive(Debug, Clone)]
    enum Op {
        /// File a new rank: `value` from a small range so that contacts
        /// share values and `seq` decides.
        Insert {
            value: u64,
        },
        /// File a rank after every other, as arrivals of one tier come.
        Arrive,
        /// File again the n-th rank taken out (modulo their count), as a
        /// contact that comes back after RONA.
        Return {
            nth: usize,
        },
        /// Take the n-th filed rank (modulo the count), or the first.
        Remove {
            nth: usize,
        },
        RemoveFirst,
        /// Take a rank that is not filed (never, or no longer).
        RemoveAbsent {
            value: u64,
        },
        RemoveTaken {
            nth: usize,
        },
    }

    /// Operations where filing is `grow` times as likely as taking: a queue
    /// that builds up (chunks split) or drains (chunks merge).
    fn op(grow: u32) -> impl Strategy<Value = Op> {
        prop_oneof![
            2 * grow => (0..400u64).prop_map(|value| Op::Insert { value }),
            2 * grow => Just(Op::Arrive),
            grow => any::<usize>().prop_map(|nth| Op::Return { nth }),
            4 => any::<usize>().prop_map(|nth| Op::Remove { nth }),
            1 => Just(Op::RemoveFirst),
            1 => (0..400u64).prop_map(|value| Op::RemoveAbsent { value }),
            1 => any::<usize>().prop_map(|nth| Op::RemoveTaken { nth }),
        ]
    }

    /// A queue that builds up past several chunks, flows, then drains.
    fn build_up_then_drain() -> impl Strategy<Value = Vec<Op>> {
        let phase = |grow, most| prop::collection::vec(op(grow), 1..most);
        (phase(3, 500), phase(1, 300), phase(0, 500))
            .prop_map(|(up, flow, down)| up.into_iter().chain(flow).chain(down).collect())
    }

    proptest! {
        /// A differential test against a `BTreeSet`: after every operation
        /// the count before every filed rank, and before ranks that are not
        /// filed, is the reference's. Ranks are taken out with the place
        /// they were filed at (stale or not), no place, or another rank's.
        #[test]
        fn counts_as_a_sorted_set_does(ops in build_up_then_drain()) {
            let mut order = QueueOrder::default();
            let mut reference = BTreeSet::new();
            let mut places: HashMap<Rank, Place> = HashMap::new();
            let hint = |places: &HashMap<Rank, Place>, r: Rank, nth: usize| match nth % 3 {
                0 => places.get(&r).copied().unwrap_or(Place::UNKNOWN),
                1 => Place::UNKNOWN,
                _ => places.values().nth(nth / 3 % places.len().max(1)).copied().unwrap_or(Place::UNKNOWN),
            };
            let mut taken: Vec<Rank> = Vec::new();
            let mut seq = 0;
            let mut last_value = 400;
            for op in ops {
                match op {
                    Op::Insert { value } => {
                        seq += 1;
                        places.insert(rank(value, seq), order.insert(rank(value, seq)));
                        reference.insert(rank(value, seq));
                    }
                    Op::Arrive => {
                        seq += 1;
                        last_value += 1;
                        places.insert(rank(last_value, seq), order.insert(rank(last_value, seq)));
                        reference.insert(rank(last_value, seq));
                    }
                    Op::Return { nth } if !taken.is_empty() => {
                        let r = taken.swap_remove(nth % taken.len());
                        places.insert(r, order.insert(r));
                        reference.insert(r);
                    }
                    Op::Remove { nth } if !reference.is_empty() => {
                        let r = *reference.iter().nth(nth % reference.len()).unwrap();
                        prop_assert!(order.remove(r, hint(&places, r, nth)));
                        reference.remove(&r);
                        taken.push(r);
                    }
                    Op::RemoveFirst => {
                        let first = reference.pop_first();
                        let removed = first.is_some_and(|r| order.remove(r, hint(&places, r, 0)));
                        prop_assert_eq!(removed, first.is_some());
                        taken.extend(first);
                    }
                    Op::Remove { .. } | Op::Return { .. } => {}
                    Op::RemoveAbsent { value } => {
                        prop_assert!(!order.remove(rank(value, u64::MAX), hint(&places, rank(value, 0), value as usize)));
                    }
                    Op::RemoveTaken { nth } => {
                        if let Some(&r) = taken.get(nth % taken.len().max(1)) {
                            prop_assert!(!order.remove(r, hint(&places, r, nth)), "{:?} was taken out already", r);
                        }
                    }
                }
                order.check();
                prop_assert_eq!(order.len(), reference.len());
                for (i, &r) in reference.iter().enumerate() {
                    prop_assert_eq!(order.count_before(r), i as u32);
                }
                for value in [0, 133, 399, 400, last_value + 1] {
                    let probe = rank(value, 0);
                    prop_assert_eq!(order.count_before(probe), reference.range(..probe).count() as u32);
                }
            }
        }
    }

    /// An emptied chunk keeps its place until a sweep; a rank filed just
    /// below where it began must still be found where it was filed.
    #[test]
    fn a_rank_filed_below_an_emptied_last_chunk_is_found_again() {
        let mut order = QueueOrder::default();
        for seq in 0..=CHUNK as u64 {
            order.insert(rank(10 * seq, seq));
        }
        assert_eq!(order.chunks.len(), 2);
        let last = rank(10 * CHUNK as u64, CHUNK as u64);
        assert!(order.remove(last, Place::UNKNOWN));
        let between = rank(10 * CHUNK as u64 - 5, 1_000);
        order.insert(between);
        order.check();
        assert_eq!(order.count_before(between), CHUNK as u32);
        assert!(order.remove(between, Place::UNKNOWN));
        assert_eq!(order.len(), CHUNK);
    }

    /// The shape of a queue: contacts join at the back and leave from the
    /// front. The chunks stay few.
    #[test]
    fn a_queue_that_flows_keeps_few_chunks() {
        let mut order = QueueOrder::default();
        let mut places = std::collections::VecDeque::new();
        for seq in 0..10_000 {
            places.push_back(order.insert(rank(seq, seq)));
            if seq >= 1_000 {
                let place = places.pop_front().expect("filed");
                assert!(order.remove(rank(seq - 1_000, seq - 1_000), place));
            }
        }
        order.check();
        assert_eq!(order.len(), 1_000);
        assert!(order.chunks.len() <= 1_000 / 16 + 1, "{} chunks", order.chunks.len());
        assert_eq!(order.count_before(rank(9_500, 9_500)), 500);
    }
}
