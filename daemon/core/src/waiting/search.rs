//! An agent's search: the best contact it qualifies for over its lists, branch-
//! free, with the cells it reads prefetched first; and every candidate it
//! weighs, for an explanation.

use super::*;
use crate::slab::ContactSlot;

/// The best candidate of a search so far, kept so that taking a better one
/// compiles to conditional moves: which list holds an agent's best contact
/// is unpredictable, and a mispredicted branch costs more than the compare.
pub(super) struct Best {
    /// The rank as one integer (value, then seq); `u128::MAX` is no candidate.
    pub(super) key: u128,
    /// The contact slot.
    pub(super) slot: ContactSlot,
}

impl Best {
    pub(super) const NONE: Best = Best { key: u128::MAX, slot: ContactSlot::NONE };

    /// Takes the candidate if it ranks before the best so far. An empty slot
    /// of a cell ranks [`NO_RANK`], after everything, so it is never taken.
    pub(super) fn consider(&mut self, rank: Rank, slot: ContactSlot) {
        let key = rank.key();
        let better = key < self.key;
        self.key = select_unpredictable(better, key, self.key);
        self.slot = select_unpredictable(better, slot, self.slot);
    }

    /// Whether a candidate of this rank would be taken.
    pub(super) fn beaten_by(&self, rank: Rank) -> bool {
        rank.key() < self.key
    }

    /// The best so far: (rank, contact slot).
    pub(super) fn found(&self) -> Option<(Rank, ContactSlot)> {
        (self.key != u128::MAX).then_some((Rank { value: (self.key >> 64) as u64, seq: self.key as u64 }, self.slot))
    }
}

impl WaitingIndex {
    /// A list's multi-skill buckets by head rank: (rank, bucket, listing).
    pub(super) fn multi_skill(&self, list: u32) -> impl Iterator<Item = (Rank, u32, &Listed)> {
        self.lists[list as usize].buckets()
    }

    /// The cells an agent reads from a list: the list's own if it holds
    /// anything and the agent has room on its channel, else empty ones. The
    /// choice is a select, not a branch: which of an agent's lists are empty
    /// is different for every agent, so a branch would mispredict half the
    /// time, and an empty list's cells are not worth a cache miss.
    pub(super) fn readable_cells(&self, list: u32, room: bool) -> &Cells {
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
    pub(crate) fn best_for(
        &self,
        agent: &Agent,
        mut prefetch_contact: impl FnMut(ContactSlot),
    ) -> Option<(Rank, ContactSlot)> {
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
    pub(crate) fn weigh_for(&self, agent: &Agent, weighed: &mut Vec<(Rank, ContactSlot)>) {
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

    pub(super) fn bucket_fits(&self, agent: &Agent, bucket: u32, reqs: &InlineReqs) -> bool {
        reqs.fits(agent).unwrap_or_else(|| agent.qualifies(self.buckets[bucket].skills()))
    }
}
