//! A list: its single-skill levels and multi-skill buckets, and the cells
//! derived from them — what an agent's search reads, a few cache lines per
//! list.

use super::*;
use crate::slab::ContactSlot;

pub(super) const LEVELS: usize = MAX_PROFICIENCY as usize;

/// Ranks below every real one are impossible; this one is above them all and
/// marks an empty [`SingleCell`] or [`MultiCell`].
pub(super) const NO_RANK: Rank = Rank { value: u64::MAX, seq: u64::MAX };

/// What an agent of one proficiency needs from a list's single-skill
/// contacts: the best one it qualifies for (over levels 1..=p). Two to a
/// cache line: taking a level's first contact rewrites the cells of that
/// level and up, so the smaller they are the fewer lines a take writes.
#[derive(Clone, Copy, Debug)]
#[repr(C, align(32))]
pub(crate) struct SingleCell {
    pub(super) rank: Rank,
    pub(super) slot: ContactSlot,
}

const _: () = assert!(std::mem::size_of::<SingleCell>() == 32);

impl SingleCell {
    pub(super) const EMPTY: SingleCell = SingleCell { rank: NO_RANK, slot: ContactSlot::NONE };

    /// The contact: (rank, contact slot).
    pub(crate) fn get(&self) -> Option<(Rank, ContactSlot)> {
        (self.slot != ContactSlot::NONE).then_some((self.rank, self.slot))
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
    pub(super) rank: Rank,
    /// The third bucket's head rank ([`NO_RANK`]: none). A full rank, not its
    /// value alone: contacts that arrive in the same microsecond share one.
    pub(super) third: Rank,
    pub(super) bucket: u32,
    /// The first bucket's head: its contact slot.
    pub(super) head: ContactSlot,
    pub(super) reqs: InlineReqs,
    /// [`InlineReqs::EMPTY`] when there is no second bucket: no agent
    /// fits it.
    pub(super) second_reqs: InlineReqs,
}

const _: () = assert!(std::mem::size_of::<MultiCell>() == 64);

impl MultiCell {
    pub(super) const EMPTY: MultiCell = MultiCell {
        rank: NO_RANK,
        third: NO_RANK,
        bucket: u32::MAX,
        head: ContactSlot::NONE,
        reqs: InlineReqs::EMPTY,
        second_reqs: InlineReqs::EMPTY,
    };

    /// The cell of a list whose buckets by head rank are `buckets`.
    pub(super) fn of<'a>(mut buckets: impl Iterator<Item = (Rank, u32, &'a Listed)>) -> MultiCell {
        let Some((rank, bucket, first)) = buckets.next() else { return MultiCell::EMPTY };
        let cell = MultiCell { rank, bucket, head: first.head, reqs: first.reqs, ..MultiCell::EMPTY };
        let Some((_, _, second)) = buckets.next() else { return cell };
        let third = buckets.next().map_or(NO_RANK, |(third, _, _)| third);
        MultiCell { third, second_reqs: second.reqs, ..cell }
    }

    pub(super) fn is_empty(&self) -> bool {
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
    pub(super) singles: [SingleCell; LEVELS],
    pub(super) multi: MultiCell,
}

const _: () = assert!(std::mem::size_of::<Cells>() == 6 * 64);

impl Default for Cells {
    fn default() -> Self {
        EMPTY_CELLS
    }
}

pub(super) const EMPTY_CELLS: Cells = Cells { singles: [SingleCell::EMPTY; LEVELS], multi: MultiCell::EMPTY };

/// What an agent reads in place of a list it cannot take from: the search
/// reads it without a branch on whether the list is readable.
pub(super) static NO_CELLS: Cells = EMPTY_CELLS;

/// The cold part of a list: what is needed to keep its cells in step.
#[derive(Default, Clone, serde::Serialize, serde::Deserialize)]
pub(super) struct List {
    /// Single-skill contacts by minimum proficiency (index = min − 1), each
    /// level ordered by rank: (rank, contact slot).
    pub(super) levels: [RankedSet; LEVELS],
    /// The first contact of each level, kept in step.
    pub(super) level_heads: [Option<(Rank, ContactSlot)>; LEVELS],
    /// Multi-skill buckets by head rank: (rank, bucket), with their
    /// requirements and head inline so that a scan does not chase pointers.
    pub(super) multi_skill: BTreeMap<(Rank, u32), Listed>,
}

/// A multi-skill bucket as its lists hold it.
#[derive(Clone, Copy, Debug, serde::Serialize, serde::Deserialize)]
pub(super) struct Listed {
    pub(super) reqs: InlineReqs,
    /// The head's contact slot.
    pub(super) head: ContactSlot,
}

/// The level a contact with this requirement is filed in.
pub(super) fn level_of(req: SkillReq) -> usize {
    level_of_proficiency(req.min_proficiency)
}

/// The level (and cell) of a proficiency in 1..=10.
pub(super) fn level_of_proficiency(proficiency: u8) -> usize {
    usize::from(proficiency.clamp(1, MAX_PROFICIENCY) - 1)
}

impl List {
    pub(super) fn insert_single(&mut self, cells: &mut Cells, level: usize, entry: (Rank, ContactSlot)) {
        let inserted = self.levels[level].insert(entry);
        debug_assert!(inserted, "contact filed twice");
        if self.level_heads[level].is_none_or(|head| entry < head) {
            self.level_heads[level] = Some(entry);
            self.update_singles_from(cells, level);
        }
    }

    pub(super) fn remove_single(&mut self, cells: &mut Cells, level: usize, entry: (Rank, ContactSlot)) {
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
    pub(super) fn update_singles_from(&self, cells: &mut Cells, level: usize) {
        let mut best = if level == 0 { None } else { cells.singles[level - 1].get() };
        for (cell, &head) in cells.singles[level..].iter_mut().zip(&self.level_heads[level..]) {
            best = match (best, head) {
                (Some(b), Some(h)) => Some(b.min(h)),
                (b, h) => b.or(h),
            };
            let (rank, slot) = best.unwrap_or((NO_RANK, ContactSlot::NONE));
            if cell.slot == slot && cell.rank == rank {
                break;
            }
            *cell = SingleCell { rank, slot };
        }
    }

    /// Moves a bucket from its `old` head rank to its `new` head: (rank,
    /// contact slot).
    pub(super) fn update_multi(
        &mut self,
        cells: &mut Cells,
        bucket: u32,
        skills: &[SkillReq],
        old: Option<Rank>,
        new: Option<(Rank, ContactSlot)>,
    ) {
        if let Some(old) = old {
            self.multi_skill.remove(&(old, bucket));
        }
        if let Some((rank, head)) = new {
            self.multi_skill.insert((rank, bucket), Listed { reqs: InlineReqs::new(skills), head });
        }
        cells.multi = self.multi_cell();
    }

    pub(super) fn multi_cell(&self) -> MultiCell {
        MultiCell::of(self.buckets())
    }

    /// The multi-skill buckets by head rank: (rank, bucket, listing).
    pub(super) fn buckets(&self) -> impl Iterator<Item = (Rank, u32, &Listed)> {
        self.multi_skill.iter().map(|(&(rank, bucket), listed)| (rank, bucket, listed))
    }

    /// The cells as they follow from the levels and buckets (for a restored
    /// index: cells are not in snapshots).
    pub(super) fn cells(&self) -> Cells {
        let mut cells = EMPTY_CELLS;
        let mut best: Option<(Rank, ContactSlot)> = None;
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
