//! The index of agents with room, for a contact looking for an agent.
//!
//! Each agent with room on a channel is entered into one *pool* per (channel,
//! skill, language, proficiency in that skill, contacts in progress on the
//! channel). A contact that accepts any language (rare: after its last
//! relaxation step) reads the pools of every language for its skill. A pool
//! is a FIFO in the order agents entered it, which is the "longest idle"
//! order, so the best agent of a pool is the first one that
//! still holds that entry and meets the contact's other skills.
//!
//! Entries are never searched for and removed: any change to an agent gives it
//! a new order in the dense `orders` array (the one place an agent's order
//! is kept), which makes all its old entries stale at once (O(1)).
//! Stale entries are popped when they reach a pool's front and swept out when
//! a pool's buffer fills, so the cost stays amortised O(1) per push.
//!
//! Each (channel, skill, language) group also keeps a *roster*: every
//! logged-in agent in it, whatever its state, kept at login and logout. The
//! wait estimate counts a contact's staff from it while its queue warms up.

use std::collections::VecDeque;

use crate::hashing::KeyedMap;

use crate::agent::Agent;
use crate::config::AgentPolicy;
use crate::ids::{Channel, LanguageId, SkillId, SkillReq, SkillSet, MAX_PROFICIENCY};
use crate::slab::{AgentSlot, Slab};
use crate::waiting::ANY_LANGUAGE;

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Entry {
    slot: AgentSlot,
    order: u64,
}

/// The head of a pool that has none.
const NO_ENTRY: Entry = Entry { slot: AgentSlot::NONE, order: u64::MAX };

impl Entry {
    /// Whether this is an entry and not [`NO_ENTRY`]: the slot alone tells,
    /// one compare instead of two on every pool head a search reads.
    fn is_some(&self) -> bool {
        self.slot != AgentSlot::NONE
    }
}

/// One pool: a FIFO of entries whose first two sit in the same cache line
/// as the record of the rest. A stale head is dropped by moving the next
/// entry up within that line, and the search weighs it at once; the buffer
/// is read only to refill the second place. (With the head in a dense array
/// of heads and the rest behind a record of its own, each drop waited on
/// two more lines, one after the other: two fifths of the samples `perf`
/// took in the search of `contact_arrival`.)
#[derive(Clone, serde::Serialize, serde::Deserialize)]
#[repr(C, align(64))]
struct Pool {
    /// The head, then the next entry; [`NO_ENTRY`] where the pool has
    /// fewer. `front[1]` is empty only when `rest` is.
    front: [Entry; 2],
    rest: VecDeque<Entry>,
}

impl Default for Pool {
    fn default() -> Self {
        Pool { front: [NO_ENTRY; 2], rest: VecDeque::new() }
    }
}

impl Pool {
    fn head(&self) -> Entry {
        self.front[0]
    }

    /// Files `e` last. When `rest` is full its stale entries are swept out
    /// first, and it is left room for as many pushes as it keeps entries,
    /// so a sweep (O(entries)) comes at most once per that many pushes:
    /// amortised O(1), with a buffer of at most twice the most current
    /// entries it has held (or `VecDeque`'s smallest, four entries).
    fn push(&mut self, e: Entry, orders: &[u64]) {
        if !self.front[0].is_some() {
            self.front[0] = e;
        } else if !self.front[1].is_some() {
            self.front[1] = e;
        } else {
            if self.rest.len() == self.rest.capacity() {
                self.rest.retain(|&e| is_current(orders, e));
                self.rest.reserve_exact(self.rest.len());
            }
            self.rest.push_back(e);
        }
    }

    fn pop_head(&mut self) {
        self.front[0] = self.front[1];
        self.front[1] = self.rest.pop_front().unwrap_or(NO_ENTRY);
    }

    /// Drops stale entries from the front; the head is then current or
    /// absent.
    fn skip_stale(&mut self, orders: &[u64]) {
        while self.head().is_some() && !is_current(orders, self.head()) {
            self.pop_head();
        }
    }

    /// The first entry, in order, that `fits`, among those with an order
    /// below `limit` (orders grow along a pool, so the walk stops at the
    /// first at or past it; [`NO_ENTRY`]'s order stops it too).
    fn first_fit(&self, limit: u64, fits: impl Fn(&Entry) -> bool) -> Option<Entry> {
        let (front, back) = self.rest.as_slices();
        for part in [&self.front[..], front, back] {
            for e in part {
                if e.order >= limit {
                    return None;
                }
                if fits(e) {
                    return Some(*e);
                }
            }
        }
        None
    }
}

/// The pools of one (channel, skill, language), by proficiency and occupancy
/// (index = proficiency − 1 + 10 × occupancy), one cache line each.
#[derive(Default, Clone, serde::Serialize, serde::Deserialize)]
struct Group {
    pools: Vec<Pool>,
}

impl Group {
    fn index(proficiency: u8, occupancy: u8) -> usize {
        usize::from(proficiency - 1) + usize::from(MAX_PROFICIENCY) * usize::from(occupancy)
    }

    fn push(&mut self, i: usize, e: Entry, orders: &[u64]) {
        if i >= self.pools.len() {
            self.pools.resize_with(i + 1, Pool::default);
        }
        self.pools[i].push(e, orders);
    }
}

fn group_key(channel: Channel, skill: SkillId, language: u16) -> u64 {
    (channel as u64) << 32 | u64::from(skill.0) << 16 | u64::from(language)
}

/// An entry is current while its agent still has the order it was filed with.
/// Orders live in a dense array (8 bytes an agent, cache-resident) so this
/// check does not touch the agent record.
fn is_current(orders: &[u64], e: Entry) -> bool {
    orders.get(e.slot.0 as usize) == Some(&e.order)
}

/// An agent found for a contact, with what it was chosen on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct AgentCandidate {
    pub slot: AgentSlot,
    pub proficiency: u8,
    pub occupancy: u8,
    pub order: u64,
}

impl AgentCandidate {
    /// Lower is better: the policy's criterion, then the order (longest
    /// idle first), as one integer so that a comparison is one compare.
    fn score(&self, policy: AgentPolicy) -> u128 {
        let first = match policy {
            AgentPolicy::LongestIdle => 0,
            AgentPolicy::MostProficient => MAX_PROFICIENCY - self.proficiency,
            AgentPolicy::LeastOccupied => self.occupancy,
        };
        (u128::from(first) << 64) | u128::from(self.order)
    }
}

/// Where an agent is filed: one group per (channel, skill, language or ANY),
/// at its proficiency in that skill. Computed once at login.
#[derive(Clone, Copy, Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct Membership {
    pub channel: Channel,
    pub proficiency: u8,
    pub group: u32,
}

#[derive(Default, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct AgentPools {
    group_ids: KeyedMap<u64, u32>,
    groups: Vec<Group>,
    /// Every language group of a (channel, skill), for any-language contacts.
    by_skill: KeyedMap<u64, Vec<u32>>,
    /// Reused by `find` for the groups it reads.
    scratch: Vec<u32>,
    /// Current order of each agent slot; 0 while it is in no pool.
    orders: Vec<u64>,
    /// Per agent slot, its skills as bits: a scan for a multi-skill contact
    /// skips agents lacking a skill without touching their records. A hit
    /// is confirmed against the record.
    skill_sets: Vec<SkillSet>,
    /// Highest occupancy level ever entered, per channel: bounds the search.
    max_occupancy: [u8; Channel::COUNT],
    /// Per group, every logged-in agent that belongs to it, whatever its
    /// state, with its proficiency in the group's skill: the staff a wait
    /// estimate counts, found without a scan of all agents.
    rosters: Vec<Vec<RosterEntry>>,
    /// Per agent slot, where each of its memberships sits in its group's
    /// roster (in membership order): a logout takes the agent off in O(1)
    /// per roster, however many agents share a skill.
    roster_places: Vec<Vec<u32>>,
}

/// A logged-in agent in a group's roster.
#[derive(Clone, Copy, PartialEq, Eq, Debug, serde::Serialize, serde::Deserialize)]
struct RosterEntry {
    slot: AgentSlot,
    proficiency: u8,
    /// Which of the agent's memberships this is, to find its place.
    membership: u16,
}

impl AgentPools {
    /// The groups an agent with this profile belongs to (created if new).
    pub(crate) fn memberships(&mut self, agent: &Agent) -> Vec<Membership> {
        let mut out = Vec::new();
        for channel in Channel::ALL {
            if agent.capacity[channel.index()] == 0 {
                continue;
            }
            for &(skill, proficiency) in &agent.skills {
                // An agent who declared no language can still take contacts
                // that accept any: it is filed under ANY.
                let languages: &[LanguageId] =
                    if agent.languages.is_empty() { &[LanguageId(ANY_LANGUAGE)] } else { &agent.languages };
                for language in languages.iter().map(|l| l.0) {
                    let groups = &mut self.groups;
                    let by_skill = &mut self.by_skill;
                    let group = *self.group_ids.entry(group_key(channel, skill, language)).or_insert_with(|| {
                        groups.push(Group::default());
                        let id = (groups.len() - 1) as u32;
                        by_skill.entry(group_key(channel, skill, ANY_LANGUAGE)).or_default().push(id);
                        id
                    });
                    out.push(Membership { channel, proficiency, group });
                }
            }
        }
        out
    }

    /// Enters a logged-in agent in the rosters of its groups.
    pub(crate) fn enrol(&mut self, slot: AgentSlot, memberships: &[Membership]) {
        if self.roster_places.len() <= slot.0 as usize {
            self.roster_places.resize_with(slot.0 as usize + 1, Vec::new);
        }
        let mut places = Vec::with_capacity(memberships.len());
        for (k, m) in memberships.iter().enumerate() {
            let group = m.group as usize;
            if self.rosters.len() <= group {
                self.rosters.resize_with(group + 1, Vec::new);
            }
            let roster = &mut self.rosters[group];
            places.push(roster.len() as u32);
            let membership = u16::try_from(k).expect("an agent's memberships fit in u16");
            roster.push(RosterEntry { slot, proficiency: m.proficiency, membership });
        }
        self.roster_places[slot.0 as usize] = places;
    }

    /// Takes a logging-out agent off its groups' rosters: each entry is
    /// swapped with the roster's last, whose place is updated.
    pub(crate) fn withdraw(&mut self, slot: AgentSlot, memberships: &[Membership]) {
        let places = std::mem::take(&mut self.roster_places[slot.0 as usize]);
        for (m, place) in memberships.iter().zip(places) {
            let roster = &mut self.rosters[m.group as usize];
            let removed = roster.swap_remove(place as usize);
            debug_assert_eq!(removed.slot, slot, "a roster place is stale");
            if let Some(moved) = roster.get(place as usize) {
                self.roster_places[moved.slot.0 as usize][usize::from(moved.membership)] = place;
            }
        }
    }

    /// How many logged-in agents, whatever their state, have capacity on
    /// `channel`, meet `reqs` and speak one of `languages` (`None`: any):
    /// the staff of the wait estimate's handle-time model. It reads the
    /// rosters of the primary skill's groups for those languages, and an
    /// agent's record only when its proficiency there suffices and the
    /// contact needs more skills or accepts several languages. An agent in
    /// several of those groups (it speaks several of the languages) is
    /// counted in the first of them it speaks.
    pub(crate) fn staffed(
        &self,
        agents: &Slab<Agent, AgentSlot>,
        channel: Channel,
        reqs: &[SkillReq],
        languages: Option<&[LanguageId]>,
    ) -> usize {
        let primary = reqs[0];
        let roster = |language: u16| {
            let group = self.group_ids.get(&group_key(channel, primary.skill, language));
            group.and_then(|&g| self.rosters.get(g as usize)).map_or(&[][..], Vec::as_slice)
        };
        let meets_primary = move |e: &&RosterEntry| e.proficiency >= primary.min_proficiency;
        // The primary skill is the roster's: a record is read for the others.
        let qualifies = |e: &RosterEntry| reqs.len() == 1 || agents[e.slot].qualifies(reqs);
        match languages {
            Some([only]) => roster(only.0).iter().filter(meets_primary).filter(|e| qualifies(e)).count(),
            Some(languages) => languages
                .iter()
                .enumerate()
                .map(|(i, language)| {
                    let earlier = &languages[..i];
                    roster(language.0)
                        .iter()
                        .filter(meets_primary)
                        .filter(|e| !agents[e.slot].speaks_any(Some(earlier)) && qualifies(e))
                        .count()
                })
                .sum(),
            None => {
                let groups = self.by_skill.get(&group_key(channel, primary.skill, ANY_LANGUAGE));
                groups
                    .into_iter()
                    .flatten()
                    .flat_map(|&g| self.rosters.get(g as usize).into_iter().flatten().map(move |e| (g, e)))
                    .filter(|(_, e)| e.proficiency >= primary.min_proficiency)
                    .filter(|&(g, e)| {
                        // Counted in the group of its first language (or ANY).
                        let first = agents[e.slot].languages.first().map_or(ANY_LANGUAGE, |l| l.0);
                        self.group_ids.get(&group_key(channel, primary.skill, first)) == Some(&g) && qualifies(e)
                    })
                    .count()
            }
        }
    }

    /// The agent's current order ("longest idle" rank among agents with
    /// room); 0 while it is in no pool.
    pub(crate) fn order(&self, slot: AgentSlot) -> u64 {
        self.orders.get(slot.0 as usize).copied().unwrap_or(0)
    }

    /// Makes every entry of the agent stale (O(1)).
    pub(crate) fn invalidate(&mut self, slot: AgentSlot) {
        if let Some(o) = self.orders.get_mut(slot.0 as usize) {
            *o = 0;
        }
    }

    /// Files the agent in every pool it belongs to under a new `order`; its
    /// previous entries become stale.
    pub(crate) fn push(&mut self, agents: &Slab<Agent, AgentSlot>, slot: AgentSlot, order: u64) {
        let agent = &agents[slot];
        debug_assert!(order != 0);
        if self.orders.len() <= slot.0 as usize {
            self.orders.resize(slot.0 as usize + 1, 0);
            self.skill_sets.resize(slot.0 as usize + 1, SkillSet::default());
        }
        self.orders[slot.0 as usize] = order;
        self.skill_sets[slot.0 as usize] = agent.skill_set;
        let entry = Entry { slot, order };
        let mut room = [false; Channel::COUNT];
        for channel in Channel::ALL {
            room[channel.index()] = agent.has_room(channel);
            if room[channel.index()] {
                let max = &mut self.max_occupancy[channel.index()];
                *max = (*max).max(agent.usage[channel.index()]);
            }
        }
        for m in &agent.memberships {
            if !room[m.channel.index()] {
                continue;
            }
            let occupancy = agent.usage[m.channel.index()];
            let i = Group::index(m.proficiency, occupancy);
            self.groups[m.group as usize].push(i, entry, &self.orders);
        }
    }

    /// The best agent with room on `channel` that meets `reqs` and speaks one of
    /// `languages` (`None`: any), under `policy`. Every pool's best is pushed
    /// to `weighed` when given (for explanations).
    pub(crate) fn find(
        &mut self,
        agents: &Slab<Agent, AgentSlot>,
        channel: Channel,
        reqs: &[SkillReq],
        languages: Option<&[LanguageId]>,
        policy: AgentPolicy,
        weighed: Option<&mut Vec<AgentCandidate>>,
    ) -> Option<AgentCandidate> {
        let primary = reqs[0];
        let max_occupancy = if channel == Channel::Voice { 0 } else { self.max_occupancy[channel.index()] };
        let mut groups = std::mem::take(&mut self.scratch);
        groups.clear();
        match languages {
            Some(languages) => groups.extend(
                languages.iter().filter_map(|l| self.group_ids.get(&group_key(channel, primary.skill, l.0)).copied()),
            ),
            None => {
                groups.extend(self.by_skill.get(&group_key(channel, primary.skill, ANY_LANGUAGE)).into_iter().flatten())
            }
        }
        let best = match weighed {
            None if reqs.len() == 1 => self.find_by_heads(agents, &groups, primary, max_occupancy, policy),
            weighed => self.find_by_walks(agents, &groups, reqs, max_occupancy, policy, weighed),
        };
        self.scratch = groups;
        best
    }

    /// A single-skill contact: membership of a pool proves the skill and the
    /// language, so its current head is the pool's best. A head is checked
    /// for staleness only when it would beat the best so far; a stale one is
    /// dropped and the pool's next head weighed in its place, one test per
    /// head rather than a second loop that tests the stale one again.
    fn find_by_heads(
        &mut self,
        agents: &Slab<Agent, AgentSlot>,
        groups: &[u32],
        primary: SkillReq,
        max_occupancy: u8,
        policy: AgentPolicy,
    ) -> Option<AgentCandidate> {
        let mut best: Option<AgentCandidate> = None;
        let mut best_score = u128::MAX;
        for &g in groups {
            let group = &mut self.groups[g as usize];
            for occupancy in 0..=max_occupancy {
                for proficiency in primary.min_proficiency.max(1)..=MAX_PROFICIENCY {
                    let i = Group::index(proficiency, occupancy);
                    let Some(pool) = group.pools.get_mut(i) else { break };
                    while pool.head().is_some() {
                        let e = pool.head();
                        let candidate = AgentCandidate { slot: e.slot, proficiency, occupancy, order: e.order };
                        let score = candidate.score(policy);
                        if score >= best_score {
                            break;
                        }
                        if is_current(&self.orders, e) {
                            // The offer reads the record all over; most of
                            // the time the best so far is the one offered.
                            agents.prefetch_all_lines(e.slot);
                            (best, best_score) = (Some(candidate), score);
                            break;
                        }
                        pool.pop_head();
                    }
                }
            }
        }
        best
    }

    /// Multi-skill contacts (and explanations): each pool's first current
    /// entry that meets the other skills, then the best of those. Orders
    /// grow along a pool, so a pool's walk stops at the first entry that
    /// could not beat the best found so far; with `weighed` (for an
    /// explanation) there is no such bound, and every pool's first fit is
    /// listed there.
    fn find_by_walks(
        &mut self,
        agents: &Slab<Agent, AgentSlot>,
        groups: &[u32],
        reqs: &[SkillReq],
        max_occupancy: u8,
        policy: AgentPolicy,
        mut weighed: Option<&mut Vec<AgentCandidate>>,
    ) -> Option<AgentCandidate> {
        let AgentPools { groups: all_groups, orders, skill_sets, .. } = self;
        let others = &reqs[1..];
        // The skills first: most entries a walk passes lack one, and testing
        // them spares those entries the read of their order.
        let fits = |e: &Entry| {
            skill_sets[e.slot.0 as usize].may_contain_all(others.iter().map(|r| r.skill))
                && is_current(orders, *e)
                && agents[e.slot].qualifies(reqs)
        };
        let mut best: Option<AgentCandidate> = None;
        for &g in groups {
            let group = &mut all_groups[g as usize];
            for occupancy in 0..=max_occupancy {
                for proficiency in reqs[0].min_proficiency.max(1)..=MAX_PROFICIENCY {
                    let i = Group::index(proficiency, occupancy);
                    // Within a pool the score grows with the order alone.
                    let score =
                        |order| AgentCandidate { slot: AgentSlot(0), proficiency, occupancy, order }.score(policy);
                    let limit = match best {
                        Some(b) if weighed.is_none() => order_limit(score(0), b.score(policy)),
                        _ => u64::MAX,
                    };
                    // A pool's head, even a stale one, bounds what it holds.
                    let Some(pool) = group.pools.get_mut(i) else { break };
                    if pool.head().order >= limit {
                        continue;
                    }
                    pool.skip_stale(orders);
                    let Some(e) = pool.first_fit(limit, fits) else { continue };
                    let candidate = AgentCandidate { slot: e.slot, proficiency, occupancy, order: e.order };
                    if let Some(w) = weighed.as_deref_mut() {
                        w.push(candidate);
                    }
                    if best.is_none_or(|b| candidate.score(policy) < b.score(policy)) {
                        best = Some(candidate);
                    }
                }
            }
        }
        best
    }
}

/// The orders a pool whose scores start at `base` (its score at order 0)
/// may hold to beat `best`: those below the returned limit.
fn order_limit(base: u128, best: u128) -> u64 {
    if best >> 64 > base >> 64 {
        u64::MAX
    } else if best >> 64 < base >> 64 {
        0
    } else {
        best as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    /// Agent `slot`'s memberships: a few groups out of eight, some shared.
    fn memberships(slot: u32) -> Vec<Membership> {
        (0..1 + slot % 4)
            .map(|k| Membership {
                channel: Channel::Voice,
                proficiency: 1 + (slot % 10) as u8,
                group: (slot + 3 * k) % 8,
            })
            .collect()
    }

    #[derive(Clone, Debug)]
    enum PoolOp {
        /// The agent is filed (again) under a new order.
        File(u32),
        /// The agent is taken or changes: its entries go stale.
        Invalidate(u32),
        /// A search drops the stale head and takes the current one.
        Take,
    }

    fn pool_op() -> impl Strategy<Value = PoolOp> {
        prop_oneof![
            3 => (0u32..12).prop_map(PoolOp::File),
            2 => (0u32..12).prop_map(PoolOp::Invalidate),
            1 => Just(PoolOp::Take),
        ]
    }

    proptest! {
        /// A pool holds, in filing order, exactly the current entries of a
        /// plain FIFO of everything filed, whatever it swept or dropped; its
        /// front is filled before its buffer; and its buffer stays within
        /// twice the most current entries it has held (or four).
        #[test]
        fn a_pool_is_the_fifo_of_its_current_entries(ops in prop::collection::vec(pool_op(), 1..400)) {
            let mut pool = Pool::default();
            let mut orders = vec![0u64; 12];
            let mut filed: Vec<Entry> = Vec::new();
            let mut next_order = 1;
            let mut most_current = 0;
            for op in ops {
                match op {
                    PoolOp::File(slot) => {
                        orders[slot as usize] = next_order;
                        let e = Entry { slot: AgentSlot(slot), order: next_order };
                        next_order += 1;
                        pool.push(e, &orders);
                        filed.push(e);
                    }
                    PoolOp::Invalidate(slot) => orders[slot as usize] = 0,
                    PoolOp::Take => {
                        pool.skip_stale(&orders);
                        if pool.head().is_some() {
                            orders[pool.head().slot.0 as usize] = 0;
                            pool.pop_head();
                        }
                    }
                }
                let current: Vec<Entry> = filed.iter().copied().filter(|&e| is_current(&orders, e)).collect();
                let held: Vec<Entry> = pool
                    .front
                    .iter()
                    .chain(&pool.rest)
                    .copied()
                    .filter(|&e| e.is_some() && is_current(&orders, e))
                    .collect();
                prop_assert_eq!(&held, &current);
                prop_assert!(pool.front[0].is_some() || !pool.front[1].is_some(), "a hole at the head");
                prop_assert!(pool.front[1].is_some() || pool.rest.is_empty(), "a buffer behind an empty front");
                let first_current = pool.first_fit(u64::MAX, |&e| is_current(&orders, e));
                prop_assert_eq!(first_current, current.first().copied());
                most_current = most_current.max(current.len());
                prop_assert!(
                    pool.rest.capacity() <= (2 * most_current).max(4),
                    "buffer of {} for at most {} current", pool.rest.capacity(), most_current
                );
            }
        }

        /// Whatever the order of logins and logouts, each roster holds
        /// exactly the logged-in members of its group, and each agent's
        /// places point at its own entries.
        #[test]
        fn rosters_hold_exactly_the_logged_in_members(ops in prop::collection::vec(0u32..24, 1..200)) {
            let mut pools = AgentPools::default();
            let mut logged_in = BTreeSet::new();
            for slot in ops {
                if logged_in.insert(slot) {
                    pools.enrol(AgentSlot(slot), &memberships(slot));
                } else {
                    logged_in.remove(&slot);
                    pools.withdraw(AgentSlot(slot), &memberships(slot));
                }
                for group in 0..8u32 {
                    let mut expected: Vec<(u32, u8)> = logged_in
                        .iter()
                        .flat_map(|&s| memberships(s).into_iter().map(move |m| (s, m)))
                        .filter(|(_, m)| m.group == group)
                        .map(|(s, m)| (s, m.proficiency))
                        .collect();
                    let mut held: Vec<(u32, u8)> = pools
                        .rosters
                        .get(group as usize)
                        .into_iter()
                        .flatten()
                        .map(|e| (e.slot.0, e.proficiency))
                        .collect();
                    expected.sort_unstable();
                    held.sort_unstable();
                    prop_assert_eq!(held, expected, "roster of group {}", group);
                }
                for &s in &logged_in {
                    for (m, &place) in memberships(s).iter().zip(&pools.roster_places[s as usize]) {
                        prop_assert_eq!(pools.rosters[m.group as usize][place as usize].slot, AgentSlot(s));
                    }
                }
            }
        }
    }
}
