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

use std::collections::{BTreeMap, VecDeque};
use std::hash::BuildHasher;
use std::hint::select_unpredictable;

use crate::hashing::{Keyed, KeyedMap};
use hashbrown::HashTable;
use smallvec::SmallVec;

use crate::agent::{Agent, AgentLists};
use crate::contact::{Filed, Rank};
use crate::ids::{Channel, LanguageId, SkillId, SkillReq, SkillSet, MAX_PROFICIENCY};
use crate::prefetch::prefetch;
use crate::ranked::RankedSet;
use crate::slab::Slab;
use crate::slots_by_id::{shard_of, SHARDS};

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
    fn to_key(self) -> BucketKey {
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

    fn list_keys(self) -> impl Iterator<Item = ListKey> + 'a {
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
    fn keys(self) -> impl Iterator<Item = ListKey> + 'a {
        let Lists { channel, skill, languages } = self;
        let languages: &[LanguageId] = languages.unwrap_or(&[LanguageId(ANY_LANGUAGE)]);
        languages.iter().map(move |l| ListKey { channel, skill, language: l.0 })
    }
}

/// Requirements shared by every contact of a multi-skill bucket.
#[derive(PartialEq, Eq, Debug, Clone, serde::Serialize, serde::Deserialize)]
struct BucketKey {
    channel: Channel,
    skills: Vec<SkillReq>,
    languages: Option<Vec<LanguageId>>,
}

impl BucketKey {
    fn requirements(&self) -> Requirements<'_> {
        Requirements { channel: self.channel, skills: &self.skills, languages: self.languages.as_deref() }
    }
}

impl Requirements<'_> {
    fn matches(&self, key: &BucketKey) -> bool {
        self.channel == key.channel
            && self.skills == key.skills.as_slice()
            && self.languages == key.languages.as_deref()
    }

    fn key_hash(&self, hasher: &Keyed) -> u64 {
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
struct BucketsByKey {
    tables: [HashTable<(u64, u32)>; SHARDS],
    hasher: Keyed,
}

impl BucketsByKey {
    fn find(&self, reqs: Requirements<'_>, buckets: &Slab<Bucket>) -> Option<u32> {
        let hash = reqs.key_hash(&self.hasher);
        let table = &self.tables[shard_of(hash)];
        table.find(hash, |&(h, id)| h == hash && reqs.matches(&buckets[id].key)).map(|&(_, id)| id)
    }

    fn insert(&mut self, reqs: Requirements<'_>, id: u32) {
        let hash = reqs.key_hash(&self.hasher);
        self.tables[shard_of(hash)].insert_unique(hash, (hash, id), |&(h, _)| h);
    }

    fn remove(&mut self, reqs: Requirements<'_>, id: u32) {
        let hash = reqs.key_hash(&self.hasher);
        if let Ok(entry) = self.tables[shard_of(hash)].find_entry(hash, |&(_, i)| i == id) {
            entry.remove();
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.tables.iter().map(HashTable::len).sum()
    }
}

#[derive(Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct Bucket {
    key: BucketKey,
    contacts: RankedSet,
    /// The lists this bucket is in (one per acceptable language, or `ANY`),
    /// in the record up to a common count: a take reads them next.
    lists: SmallVec<[u32; 2]>,
}

impl Bucket {
    /// The best-ranked contact: (rank, contact slot).
    pub(crate) fn head(&self) -> Option<(Rank, u32)> {
        self.contacts.first()
    }

    pub(crate) fn skills(&self) -> &[SkillReq] {
        &self.key.skills
    }
}

const LEVELS: usize = MAX_PROFICIENCY as usize;

/// Ranks below every real one are impossible; this one is above them all and
/// marks an empty [`SingleCell`] or [`MultiCell`].
const NO_RANK: Rank = Rank { value: u64::MAX, seq: u64::MAX };

/// What an agent of one proficiency needs from a list's single-skill
/// contacts: the best one it qualifies for (over levels 1..=p). Two to a
/// cache line: taking a level's first contact rewrites the cells of that
/// level and up, so the smaller they are the fewer lines a take writes.
#[derive(Clone, Copy, Debug)]
#[repr(C, align(32))]
pub(crate) struct SingleCell {
    rank: Rank,
    slot: u32,
}

const _: () = assert!(std::mem::size_of::<SingleCell>() == 32);

impl SingleCell {
    const EMPTY: SingleCell = SingleCell { rank: NO_RANK, slot: u32::MAX };

    /// The contact: (rank, contact slot).
    pub(crate) fn get(&self) -> Option<(Rank, u32)> {
        (self.slot != u32::MAX).then_some((self.rank, self.slot))
    }
}

/// What an agent needs of a list's multi-skill buckets, in one cache line:
/// the first bucket with its requirements and its head contact, the
/// second's requirements, and the third's rank. It is the same for every
/// proficiency, so a list keeps one and a change of a bucket's head writes
/// one line per list. Most agents fit none of a list's first buckets (they
/// lack a second skill), and hard-to-serve contacts gather at the front;
/// this spares them the walk along the list's B-tree behind, which is
/// touched only when the first two do not fit and the third could still
/// win (or the second fits, which is rare). An agent that fits the first
/// has its contact without reading the bucket.
#[derive(Clone, Copy, Debug)]
#[repr(C, align(64))]
pub(crate) struct MultiCell {
    rank: Rank,
    /// The third bucket's head rank ([`NO_RANK`]: none). A full rank, not its
    /// value alone: contacts that arrive in the same microsecond share one.
    third: Rank,
    bucket: u32,
    /// The first bucket's head: its contact slot.
    head: u32,
    reqs: InlineReqs,
    /// [`InlineReqs::EMPTY`] when there is no second bucket: no agent
    /// fits it.
    second_reqs: InlineReqs,
}

const _: () = assert!(std::mem::size_of::<MultiCell>() == 64);

impl MultiCell {
    const EMPTY: MultiCell = MultiCell {
        rank: NO_RANK,
        third: NO_RANK,
        bucket: u32::MAX,
        head: u32::MAX,
        reqs: InlineReqs::EMPTY,
        second_reqs: InlineReqs::EMPTY,
    };

    /// The cell of a list whose buckets by head rank are `buckets`.
    fn of<'a>(mut buckets: impl Iterator<Item = (Rank, u32, &'a Listed)>) -> MultiCell {
        let Some((rank, bucket, first)) = buckets.next() else { return MultiCell::EMPTY };
        let cell = MultiCell { rank, bucket, head: first.head, reqs: first.reqs, ..MultiCell::EMPTY };
        let Some((_, _, second)) = buckets.next() else { return cell };
        let third = buckets.next().map_or(NO_RANK, |(third, _, _)| third);
        MultiCell { third, second_reqs: second.reqs, ..cell }
    }

    fn is_empty(&self) -> bool {
        self.bucket == u32::MAX
    }
}

/// What searches read of a list: one single-skill cell per proficiency and
/// the multi-skill cell, six cache lines. An agent's search reads two of
/// them, its proficiency's single cell and the multi cell; the B-trees
/// behind are touched only when a contact is filed or taken.
#[derive(Clone, Copy, Debug)]
#[repr(C, align(64))]
pub(crate) struct Cells {
    singles: [SingleCell; LEVELS],
    multi: MultiCell,
}

const _: () = assert!(std::mem::size_of::<Cells>() == 6 * 64);

impl Default for Cells {
    fn default() -> Self {
        EMPTY_CELLS
    }
}

const EMPTY_CELLS: Cells = Cells { singles: [SingleCell::EMPTY; LEVELS], multi: MultiCell::EMPTY };

/// What an agent reads in place of a list it cannot take from: the search
/// reads it without a branch on whether the list is readable.
static NO_CELLS: Cells = EMPTY_CELLS;

/// The cold part of a list: what is needed to keep its cells in step.
#[derive(Default, Clone, serde::Serialize, serde::Deserialize)]
struct List {
    /// Single-skill contacts by minimum proficiency (index = min − 1), each
    /// level ordered by rank: (rank, contact slot).
    levels: [RankedSet; LEVELS],
    /// The first contact of each level, kept in step.
    level_heads: [Option<(Rank, u32)>; LEVELS],
    /// Multi-skill buckets by head rank: (rank, bucket), with their
    /// requirements and head inline so that a scan does not chase pointers.
    multi_skill: BTreeMap<(Rank, u32), Listed>,
}

/// A multi-skill bucket as its lists hold it.
#[derive(Clone, Copy, Debug, serde::Serialize, serde::Deserialize)]
struct Listed {
    reqs: InlineReqs,
    /// The head's contact slot.
    head: u32,
}

/// Up to [`InlineReqs::MAX`] skill requirements, stored in place: skills and
/// proficiencies apart, ten bytes, so that a [`MultiCell`] holds two sets.
#[derive(Clone, Copy, Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct InlineReqs {
    skills: [SkillId; InlineReqs::MAX],
    proficiencies: [u8; InlineReqs::MAX],
    /// `u8::MAX`: more than [`InlineReqs::MAX`], of which the first are held.
    len: u8,
}

const _: () = assert!(std::mem::size_of::<InlineReqs>() == 10);

impl InlineReqs {
    /// Three; contacts that need more skills are rare, and their bucket is
    /// read instead.
    const MAX: usize = 3;
    const EMPTY: InlineReqs = InlineReqs { skills: [SkillId(0); Self::MAX], proficiencies: [0; Self::MAX], len: 0 };

    /// The unused places repeat the first requirement, so that
    /// [`InlineReqs::may_be_met_by`] reads all of them without a branch.
    fn new(reqs: &[SkillReq]) -> Self {
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
    fn may_be_met_by(&self, skills: &SkillSet) -> bool {
        skills.may_contain_all(self.skills)
    }

    /// Whether `agent` meets the requirements, or `None` when that needs
    /// the requirements not held inline.
    fn fits(&self, agent: &Agent) -> Option<bool> {
        if !self.may_be_met_by(&agent.skill_set) {
            return Some(false);
        }
        (self.len != u8::MAX).then(|| {
            let mut held = self.skills.iter().zip(&self.proficiencies).take(usize::from(self.len));
            held.all(|(&skill, &min)| agent.proficiency(skill) >= min)
        })
    }
}

/// The level a contact with this requirement is filed in.
fn level_of(req: SkillReq) -> usize {
    level_of_proficiency(req.min_proficiency)
}

/// The level (and cell) of a proficiency in 1..=10.
fn level_of_proficiency(proficiency: u8) -> usize {
    usize::from(proficiency.clamp(1, MAX_PROFICIENCY) - 1)
}

/// The best candidate of a search so far, kept so that taking a better one
/// compiles to conditional moves: which list holds an agent's best contact
/// is unpredictable, and a mispredicted branch costs more than the compare.
struct Best {
    /// The rank as one integer (value, then seq); `u128::MAX` is no candidate.
    key: u128,
    /// The contact slot.
    slot: u32,
}

impl Best {
    const NONE: Best = Best { key: u128::MAX, slot: u32::MAX };

    /// Takes the candidate if it ranks before the best so far. An empty slot
    /// of a cell ranks [`NO_RANK`], after everything, so it is never taken.
    fn consider(&mut self, rank: Rank, slot: u32) {
        let key = rank.key();
        let better = key < self.key;
        self.key = select_unpredictable(better, key, self.key);
        self.slot = select_unpredictable(better, slot, self.slot);
    }

    /// Whether a candidate of this rank would be taken.
    fn beaten_by(&self, rank: Rank) -> bool {
        rank.key() < self.key
    }

    /// The best so far: (rank, contact slot).
    fn found(&self) -> Option<(Rank, u32)> {
        (self.key != u128::MAX).then_some((Rank { value: (self.key >> 64) as u64, seq: self.key as u64 }, self.slot))
    }
}

impl List {
    fn insert_single(&mut self, cells: &mut Cells, level: usize, entry: (Rank, u32)) {
        let inserted = self.levels[level].insert(entry);
        debug_assert!(inserted, "contact filed twice");
        if self.level_heads[level].is_none_or(|head| entry < head) {
            self.level_heads[level] = Some(entry);
            self.update_singles_from(cells, level);
        }
    }

    fn remove_single(&mut self, cells: &mut Cells, level: usize, entry: (Rank, u32)) {
        let level_set = &mut self.levels[level];
        if self.level_heads[level] == Some(entry) {
            // An agent takes the first contact of a level far more often
            // than any other: no search down the tree for it.
            level_set.pop_first();
            self.level_heads[level] = level_set.first();
            self.update_singles_from(cells, level);
        } else {
            let removed = level_set.remove(&entry);
            debug_assert!(removed, "contact not in its level");
        }
    }

    /// Recomputes the best single-skill contact of the cells at `level` and
    /// up. Each cell is the best of the one below and its own level's head,
    /// so once a cell comes out unchanged the cells above it are unchanged
    /// too: the update stops there, sparing the cache lines above.
    fn update_singles_from(&self, cells: &mut Cells, level: usize) {
        let mut best = if level == 0 { None } else { cells.singles[level - 1].get() };
        for (cell, &head) in cells.singles[level..].iter_mut().zip(&self.level_heads[level..]) {
            best = match (best, head) {
                (Some(b), Some(h)) => Some(b.min(h)),
                (b, h) => b.or(h),
            };
            let (rank, slot) = best.unwrap_or((NO_RANK, u32::MAX));
            if cell.slot == slot && cell.rank == rank {
                break;
            }
            *cell = SingleCell { rank, slot };
        }
    }

    /// Moves a bucket from its `old` head rank to its `new` head: (rank,
    /// contact slot).
    fn update_multi(
        &mut self,
        cells: &mut Cells,
        bucket: u32,
        skills: &[SkillReq],
        old: Option<Rank>,
        new: Option<(Rank, u32)>,
    ) {
        if let Some(old) = old {
            self.multi_skill.remove(&(old, bucket));
        }
        if let Some((rank, head)) = new {
            self.multi_skill.insert((rank, bucket), Listed { reqs: InlineReqs::new(skills), head });
        }
        cells.multi = self.multi_cell();
    }

    fn multi_cell(&self) -> MultiCell {
        MultiCell::of(self.buckets())
    }

    /// The multi-skill buckets by head rank: (rank, bucket, listing).
    fn buckets(&self) -> impl Iterator<Item = (Rank, u32, &Listed)> {
        self.multi_skill.iter().map(|(&(rank, bucket), listed)| (rank, bucket, listed))
    }

    /// The cells as they follow from the levels and buckets (for a restored
    /// index: cells are not in snapshots).
    fn cells(&self) -> Cells {
        let mut cells = EMPTY_CELLS;
        let mut best: Option<(Rank, u32)> = None;
        for (cell, &head) in cells.singles.iter_mut().zip(&self.level_heads) {
            best = best.into_iter().chain(head).min();
            if let Some((rank, slot)) = best {
                *cell = SingleCell { rank, slot };
            }
        }
        cells.multi = self.multi_cell();
        cells
    }
}

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
    /// A list's multi-skill buckets by head rank: (rank, bucket, listing).
    fn multi_skill(&self, list: u32) -> impl Iterator<Item = (Rank, u32, &Listed)> {
        self.lists[list as usize].buckets()
    }

    /// Whether a list holds anything: one bit per list, so an agent skips its
    /// empty lists without touching them.
    pub(crate) fn is_listed(&self, id: u32) -> bool {
        self.occupancy.is_listed(id)
    }

    /// The cells an agent reads from a list: the list's own if it holds
    /// anything and the agent has room on its channel, else empty ones. The
    /// choice is a select, not a branch: which of an agent's lists are empty
    /// is different for every agent, so a branch would mispredict half the
    /// time, and an empty list's cells are not worth a cache miss.
    fn readable_cells(&self, list: u32, room: bool) -> &Cells {
        let readable = room & self.is_listed(list);
        let cells = self.cells.get(list as usize).unwrap_or(&NO_CELLS);
        select_unpredictable(readable, cells, &NO_CELLS)
    }

    /// The best contact in the index that `agent` qualifies for and has room
    /// for: (rank, contact slot). Contacts held for preferred agents are not
    /// in the index; the caller weighs them.
    ///
    /// The agent's lists of any-language contacts are read only while one of
    /// them holds anything. Two cells per list hold what the agent needs
    /// from it: the best single-skill contact for its proficiency, and the
    /// list's first multi-skill buckets. The cells are located and prefetched
    /// first: they are a few dozen independent cache misses, which cost
    /// about one when they overlap (agent_ready −7 to −22 % of wall time).
    /// Singles are read first, so that the bound is tight before any multi-skill
    /// requirement is checked; the best of them is then handed to
    /// `prefetch_contact` (it usually wins, and its record is read next). The
    /// lists whose first bucket could still win are then picked out and
    /// checked, from cells that are in cache by then. A list's B-tree of
    /// buckets is walked only when neither of its first two buckets fits and
    /// the third could still win, or when the second fits (its rank is not
    /// in the cell). Candidates are compared on rank alone; a bucket's head
    /// contact is in the cell and in the tree, so the winner's record is
    /// prefetched as soon as it leads.
    pub(crate) fn best_for(&self, agent: &Agent, mut prefetch_contact: impl FnMut(u32)) -> Option<(Rank, u32)> {
        /// Lists read per round: the cells and notes of one round stay on
        /// the stack.
        const ROUND: usize = 32;
        let room = Channel::ALL.map(|ch| agent.has_room(ch));
        let mut best = Best::NONE;
        let lists = match self.occupancy.any_language_listed {
            0 => &agent.lists[..usize::from(agent.one_language_lists)],
            _ => &agent.lists[..],
        };
        for round in lists.chunks(ROUND) {
            let mut singles = [&NO_CELLS.singles[0]; ROUND];
            let mut multis = [&NO_CELLS.multi; ROUND];
            for ((single, multi), &(channel, list, proficiency)) in singles.iter_mut().zip(&mut multis).zip(round) {
                let cells = self.readable_cells(list, room[channel.index()]);
                *single = &cells.singles[level_of_proficiency(proficiency)];
                *multi = &cells.multi;
                prefetch(*single);
                prefetch(*multi);
            }
            for single in &singles[..round.len()] {
                best.consider(single.rank, single.slot);
            }
            if let Some((_, slot)) = best.found() {
                prefetch_contact(slot);
            }
            // The lists whose first bucket ranks before the best single-skill
            // contact: a few, found without a branch per list (which one is
            // unpredictable).
            let mut could_win = [0u8; ROUND];
            let mut n = 0;
            for (i, multi) in multis[..round.len()].iter().enumerate() {
                could_win[n] = i as u8;
                n += usize::from(best.beaten_by(multi.rank));
            }
            for &i in &could_win[..n] {
                let (_, list, _) = round[usize::from(i)];
                let multi = multis[usize::from(i)];
                if !best.beaten_by(multi.rank) {
                    continue; // a bucket of an earlier list ranks before it
                }
                let checked = match multi.reqs.fits(agent) {
                    Some(true) => {
                        best.consider(multi.rank, multi.head);
                        // It usually wins: what taking it reads first is
                        // fetched while the rest is checked.
                        prefetch_contact(multi.head);
                        self.buckets.prefetch(multi.bucket);
                        if let Some(taken_from) = self.lists.get(list as usize) {
                            prefetch(&taken_from.multi_skill);
                        }
                        continue;
                    }
                    None => 0, // too many requirements to hold inline
                    Some(false) => match multi.second_reqs.fits(agent) {
                        Some(false) if !best.beaten_by(multi.third) => continue,
                        Some(false) => 2,
                        // The second fits (rarely): its rank is in the B-tree.
                        Some(true) | None => 1,
                    },
                };
                // Nothing ranked after the best found so far can win, which
                // keeps this walk short.
                for (rank, bucket, listed) in self.multi_skill(list).skip(checked) {
                    if !best.beaten_by(rank) {
                        break;
                    }
                    if self.bucket_fits(agent, bucket, &listed.reqs) {
                        best.consider(rank, listed.head);
                        break;
                    }
                }
            }
        }
        best.found()
    }

    /// For an explanation: every candidate the agent's search weighs, as
    /// (rank, contact slot): each readable list's best single-skill contact
    /// and its first multi-skill bucket the agent qualifies for, unbounded by
    /// the best found. The decision itself is [`WaitingIndex::best_for`]'s.
    pub(crate) fn weigh_for(&self, agent: &Agent, weighed: &mut Vec<(Rank, u32)>) {
        let room = Channel::ALL.map(|ch| agent.has_room(ch));
        for &(channel, list, proficiency) in &agent.lists {
            let cells = self.readable_cells(list, room[channel.index()]);
            weighed.extend(cells.singles[level_of_proficiency(proficiency)].get());
            if !cells.multi.is_empty() {
                let first_fit =
                    self.multi_skill(list).find(|&(_, bucket, listed)| self.bucket_fits(agent, bucket, &listed.reqs));
                weighed.extend(first_fit.map(|(rank, _, listed)| (rank, listed.head)));
            }
        }
    }

    fn bucket_fits(&self, agent: &Agent, bucket: u32, reqs: &InlineReqs) -> bool {
        reqs.fits(agent).unwrap_or_else(|| agent.qualifies(self.buckets[bucket].skills()))
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
    pub(crate) fn insert(&mut self, reqs: Requirements<'_>, rank: Rank, slot: u32) -> Filed {
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
    pub(crate) fn remove<'a>(&mut self, filed: Filed, lists: impl FnOnce() -> Lists<'a>, rank: Rank, slot: u32) {
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

    fn remove_single(&mut self, list: u32, level: u8, entry: (Rank, u32)) {
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
        let first = index.insert(reqs(&skills), rank(1), 1);
        index.remove(first, || reqs(&skills).lists(), rank(1), 1);
        assert_eq!(index.insert(reqs(&skills), rank(2), 2), first);
        index.remove(first, || reqs(&skills).lists(), rank(2), 2);
        // Many different ones: emptied buckets never outnumber the bound.
        for i in 0..5_000u16 {
            let skills = two_skills(i);
            let filed = index.insert(reqs(&skills), rank(u64::from(i) + 10), 3);
            index.remove(filed, || reqs(&skills).lists(), rank(u64::from(i) + 10), 3);
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
            .map(|(i, s)| index.insert(reqs(s), Rank { value: 1, seq: i as u64 }, i as u32))
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
            assert_eq!(restored.insert(reqs(s), rank(1_000 + i as u64), 1_000 + i as u32), f, "bucket of {s:?}");
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
                filed.push((index.insert(f.requirements(), rank, slot as u32), rank));
            }
            // Some taken out again, so that buckets empty and heads move.
            for (slot, (f, &(where_filed, rank))) in filings.iter().zip(&filed).enumerate() {
                if taken[slot] {
                    let reqs = f.requirements();
                    index.remove(where_filed, || reqs.lists(), rank, slot as u32);
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
                    .map(|(slot, (_, &(_, rank)))| (rank, slot as u32))
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
            index.remove(f, || reqs(s).lists(), rank(i as u64), i as u32);
            most = most.max(before - index.buckets.len());
        }
        assert!(most <= DROPS_PER_EMPTYING, "one removal dropped {most} buckets");
        // Everything is empty now; new emptyings bring the kept ones down.
        for i in 0..10_000u16 {
            let s = two_skills(10_000 + i % 3_000);
            let f = index.insert(reqs(&s), rank(u64::from(i)), 0);
            index.remove(f, || reqs(&s).lists(), rank(u64::from(i)), 0);
        }
        assert!(index.buckets.len() <= EMPTIED_KEPT + 1, "{} buckets kept", index.buckets.len());
    }
}
