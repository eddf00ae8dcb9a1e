//! The router's state out as records, and a router rebuilt from them
//! (`crate::state` says what the records hold and why).

use std::collections::{BTreeMap, HashSet};

use super::{check_profile, check_requirements, dead_timers, Router, MAX_PREFERRED_AGENTS};
use crate::agent::{Presence, WrapUp};
use crate::contact::{Contact, ContactState, Rank};
use crate::error::CommandError;
use crate::ids::{AgentId, Channel, ContactId, OfferId};
use crate::offers::{EndedOffer, Offer, Offers};
use crate::positions::Place;
use crate::sessions::{Kind, SessionState};
use crate::slab::{AgentSlot, ContactSlot};
use crate::state::{
    inconsistent, AgentRecord, ContactRecord, ContactRecordState, EndedOfferRecord, OfferHistory, QueueRecord,
    SessionRecord, StateError, StateHeader, TimerRecord, TimerRef, WrapUpRecord,
};
use crate::time::Time;
use crate::timers::{lane, Timer, LANE_OFFER, LANE_WRAP_UP};

impl Router {
    /// Everything but the agents, contacts and timers.
    pub fn export_header(&self) -> StateHeader {
        let sessions = self
            .sessions
            .ids()
            .into_iter()
            .map(|id| SessionRecord {
                id,
                state: self.sessions.state(id).expect("listed"),
                contacts: self.sessions.owned(Kind::Contact, id).into_iter().map(|s| self.contacts[s].id).collect(),
                agents: self.sessions.owned(Kind::Agent, id).into_iter().map(|s| self.agents[s].id).collect(),
            })
            .collect();
        let queues = self
            .queues
            .iter()
            .map(|q| {
                let (answers, busy, updated) = q.rate();
                let flow = Some(q.flow_record());
                QueueRecord { counters: q.counters, departures: q.departures, answers, busy, updated, flow }
            })
            .collect();
        let (first, next, ended) = self.offers.history();
        let ended = ended
            .map(|(id, e)| EndedOfferRecord { id, agent: e.agent, contact: e.contact, outcome: e.outcome })
            .collect();
        StateHeader {
            config: self.cfg.clone(),
            now: self.now,
            next_rank_seq: self.next_rank_seq,
            next_idle_order: self.next_idle_order,
            last_session: self.sessions.last_opened(),
            sessions,
            queues,
            offers: OfferHistory { first, next, ended },
        }
    }

    /// Every logged-in agent ([`Router::agent_count`] of them).
    pub fn export_agents(&self) -> impl Iterator<Item = AgentRecord> + '_ {
        self.agents.iter().map(|(slot, a)| AgentRecord {
            id: a.id,
            skills: a.skills.to_vec(),
            languages: a.languages.clone(),
            capacity: a.capacity,
            not_ready: match a.presence {
                Presence::Ready => None,
                Presence::NotReady(reason) => Some(reason),
            },
            wrap_ups: a
                .wrap_ups
                .iter()
                .map(|w| WrapUpRecord { contact: w.contact, channel: w.channel, queue: w.queue, ends_at: w.ends_at })
                .collect(),
            work: a.work.iter().map(|&c| self.contacts[c].id).collect(),
            idle_order: Some(self.pools.order(slot)).filter(|&o| o != 0),
            reported: a.reported,
        })
    }

    /// Every contact ([`Router::contact_count`] of them), best-ranked first:
    /// the order a restore files them in its sorted structures fastest (at
    /// the end of each, never in the middle).
    pub fn export_contacts(&self) -> impl Iterator<Item = ContactRecord> + '_ {
        let mut by_rank: Vec<(Rank, ContactSlot)> = self.contacts.iter().map(|(slot, c)| (c.rank, slot)).collect();
        by_rank.sort_unstable();
        by_rank.into_iter().map(|(_, slot)| &self.contacts[slot]).map(|c| ContactRecord {
            id: c.id,
            channel: c.channel,
            queue: c.queue,
            tier: c.tier,
            skills: c.skills.clone(),
            languages: c.languages.clone(),
            preferred: c.preferred.to_vec(),
            context: c.context.to_vec(),
            arrival: c.arrival,
            entered_queue: c.entered_queue,
            deadline: c.deadline,
            rank: c.rank,
            relaxation: c.relax,
            next_wake: c.next_wake,
            state: match c.state {
                ContactState::Scheduled { due } => ContactRecordState::Scheduled { due },
                ContactState::Waiting { hold_until, .. } => ContactRecordState::Waiting { hold_until },
                ContactState::Offered { offer, agent } => ContactRecordState::Offered {
                    offer,
                    agent: self.agents[agent].id,
                    expires_at: self.offers.pending(offer).expect("an offered contact's offer is pending").expires_at,
                },
                ContactState::Connected { agent } => ContactRecordState::Connected { agent: self.agents[agent].id },
            },
        })
    }

    /// Every pending wake-up that can still do something, in firing order.
    pub fn export_timers(&self) -> Vec<TimerRecord> {
        let mut live: Vec<(Time, u64, TimerRef)> =
            self.timers.entries().filter_map(|(at, seq, timer)| Some((at, seq, self.live_timer(at, timer)?))).collect();
        live.sort_unstable_by_key(|&(at, seq, _)| (at, seq));
        // A wake-up set twice for one instant fires once: the second finds
        // the first's work done. (Not a contact's: each setting of its
        // wake-up has a generation of its own.)
        let mut seen = HashSet::new();
        live.into_iter()
            .filter(|&(_, _, t)| matches!(t, TimerRef::Contact(_)) || seen.insert(t))
            .map(|(at, _, timer)| TimerRecord { at, timer })
            .collect()
    }

    /// What a timer entry refers to, if its firing would do something:
    /// the mirror of [`Router::fire`]'s checks.
    fn live_timer(&self, at: Time, timer: Timer) -> Option<TimerRef> {
        match timer {
            Timer::ContactWake { slot, gen } => {
                let c = self.contacts.get(slot)?;
                (c.gen == gen && c.next_wake == Some(at)).then_some(TimerRef::Contact(c.id))
            }
            Timer::OfferExpiry { offer } => {
                (self.offers.pending(offer)?.expires_at == at).then_some(TimerRef::OfferExpiry(offer))
            }
            Timer::WrapUpEnd { agent_slot, contact } => {
                let a = self.agents.get(agent_slot)?;
                let running = a.wrap_ups.iter().any(|w| w.contact == contact && w.ends_at == at);
                running.then_some(TimerRef::WrapUpEnd { agent: a.id, contact })
            }
            Timer::SessionGrace { session } => (self.sessions.state(session) == Some(SessionState::Lost { until: at }))
                .then_some(TimerRef::SessionGrace(session)),
        }
    }

    /// Starts rebuilding a router from its records: feed it the agents, the
    /// contacts and the timers, in that order, then [`Restore::finish`].
    pub fn restore(header: StateHeader) -> Result<Restore, StateError> {
        let StateHeader { config, now, next_rank_seq, next_idle_order, last_session, sessions, queues, offers } =
            header;
        let mut router = Router::new(config)?;
        if queues.len() != router.queues.len() {
            let (found, expected) = (queues.len(), router.queues.len());
            return Err(inconsistent(format!("{found} queue records for {expected} queues")));
        }
        if next_rank_seq == 0 || next_idle_order == 0 {
            return Err(inconsistent("rank and idle sequences start at 1"));
        }
        router.now = now;
        router.next_rank_seq = next_rank_seq;
        router.next_idle_order = next_idle_order;
        router.sessions.set_last_opened(last_session);
        for s in &sessions {
            if !router.sessions.restore(s.id, s.state, last_session) {
                return Err(inconsistent(format!("session {} is listed twice, or above the last opened", s.id)));
            }
        }
        Ok(Restore {
            router,
            work: Vec::new(),
            idle: Vec::new(),
            pending: BTreeMap::new(),
            offer_history: Some(offers),
            sessions,
            queues,
            woken: Vec::new(),
            woken_count: 0,
            timers: HashSet::new(),
            last_timer: Time::ZERO,
            rank_seqs: Vec::new(),
        })
    }
}

/// A router being rebuilt from records ([`Router::restore`]).
pub struct Restore {
    router: Router,
    /// Per agent slot, its work in the order recorded.
    work: Vec<(AgentSlot, Vec<ContactId>)>,
    /// (idle order, agent slot) of agents with room.
    idle: Vec<(u64, AgentSlot)>,
    /// Pending offers, from the offered contacts.
    pending: BTreeMap<OfferId, Offer>,
    /// Taken when the offers are rebuilt, once every contact is in.
    offer_history: Option<OfferHistory>,
    sessions: Vec<SessionRecord>,
    queues: Vec<QueueRecord>,
    /// Per contact slot, whether its wake-up came (a bit each).
    woken: Vec<u64>,
    woken_count: usize,
    /// The other wake-ups that came (offers, wrap-ups, sessions: one per
    /// agent or session at most, where contacts are millions).
    timers: HashSet<TimerRef>,
    last_timer: Time,
    /// Every contact's rank sequence, checked for repeats at the end.
    rank_seqs: Vec<u64>,
}

impl Restore {
    pub fn agent(&mut self, record: AgentRecord) -> Result<(), StateError> {
        let AgentRecord { id, mut skills, languages, capacity, not_ready, wrap_ups, work, idle_order, reported } =
            record;
        let r = &mut self.router;
        if r.agent_slots.contains_key(&id) {
            return Err(StateError::DuplicateAgent(id));
        }
        if self.offer_history.is_none() {
            return Err(inconsistent("agents come before timers"));
        }
        check_profile(&mut skills, &languages, capacity).map_err(|source| StateError::Agent { agent: id, source })?;
        let mut usage = [0u8; Channel::COUNT];
        for w in &wrap_ups {
            if usize::from(w.queue.0) >= r.cfg.queues.len() {
                return Err(StateError::Agent { agent: id, source: CommandError::UnknownQueue(w.queue) });
            }
            add_use(&mut usage, capacity, w.channel).ok_or_else(|| over_capacity(id))?;
        }
        if idle_order.is_some_and(|order| order == 0 || order >= r.next_idle_order) {
            return Err(inconsistent(format!("agent {id}: idle order {idle_order:?} was never issued")));
        }
        let presence = not_ready.map_or(Presence::Ready, Presence::NotReady);
        let slot = r.file_agent(id, skills, languages, capacity, presence);
        if let Some(order) = idle_order {
            self.idle.push((order, slot));
        }
        let agent = &mut r.agents[slot];
        agent.usage = usage;
        agent.wrap_ups.extend(wrap_ups.iter().map(|w| WrapUp {
            contact: w.contact,
            channel: w.channel,
            queue: w.queue,
            ends_at: w.ends_at,
        }));
        agent.reported = reported;
        agent.reported_since = r.now;
        if let Some(state) = reported {
            r.agent_states[state.index()] += 1;
        }
        self.work.push((slot, work));
        Ok(())
    }

    pub fn contact(&mut self, record: ContactRecord) -> Result<(), StateError> {
        let ContactRecord {
            id,
            channel,
            queue,
            tier,
            skills,
            languages,
            preferred,
            context,
            arrival,
            entered_queue,
            deadline,
            rank,
            relaxation,
            next_wake,
            state,
        } = record;
        let r = &mut self.router;
        if r.contact_slots.contains_key(&id) {
            return Err(StateError::DuplicateContact(id));
        }
        if self.offer_history.is_none() {
            return Err(inconsistent("contacts come before timers"));
        }
        let invalid = |source: CommandError| StateError::Contact { contact: id, source };
        r.check_queue_and_tier(queue, tier).map_err(invalid)?;
        check_requirements(&skills, &languages).map_err(invalid)?;
        if preferred.len() > MAX_PREFERRED_AGENTS {
            return Err(invalid(super::invalid("preferred_agents", format!("at most {MAX_PREFERRED_AGENTS}"))));
        }
        if rank.seq == 0 || rank.seq >= r.next_rank_seq {
            return Err(inconsistent(format!("contact {id}: rank sequence {} was never issued", rank.seq)));
        }
        self.rank_seqs.push(rank.seq);
        let slot_of = |agent: AgentId, r: &Router| {
            r.agent_slots.get(&agent).copied().ok_or_else(|| {
                inconsistent(format!("contact {id} is offered to or connected with agent {agent}, not logged in"))
            })
        };
        let (state, busy_agent) = match state {
            ContactRecordState::Scheduled { due } => (ContactState::Scheduled { due }, None),
            ContactRecordState::Waiting { hold_until } => (ContactState::Waiting { filed: None, hold_until }, None),
            ContactRecordState::Offered { offer, agent, expires_at } => {
                let agent_slot = slot_of(agent, r)?;
                let pending = Offer { contact_slot: ContactSlot::NONE, contact: id, agent_slot, agent, expires_at };
                if self.pending.insert(offer, pending).is_some() {
                    return Err(inconsistent(format!("offer {offer} is held by two contacts")));
                }
                (ContactState::Offered { offer, agent: agent_slot }, Some((agent_slot, true)))
            }
            ContactRecordState::Connected { agent } => {
                let agent_slot = slot_of(agent, r)?;
                (ContactState::Connected { agent: agent_slot }, Some((agent_slot, false)))
            }
        };
        if let Some((agent_slot, ringing)) = busy_agent {
            let agent = &mut r.agents[agent_slot];
            add_use(&mut agent.usage, agent.capacity, channel).ok_or_else(|| over_capacity(agent.id))?;
            if ringing {
                agent.ringing += 1;
            } else {
                agent.connected += 1;
            }
        }
        let gen = r.next_gen();
        let slot = r.contacts.insert(Contact {
            id,
            channel,
            queue,
            tier,
            skills,
            languages,
            preferred: preferred.into(),
            context: context.into(),
            arrival,
            entered_queue,
            deadline,
            rank,
            relax: relaxation,
            place: Place::UNKNOWN,
            state,
            next_wake,
            gen,
        });
        r.contact_slots.insert(id, slot);
        match state {
            ContactState::Offered { offer, agent } => {
                r.agents[agent].work.push(slot);
                self.pending.get_mut(&offer).expect("just entered").contact_slot = slot;
            }
            ContactState::Connected { agent } => r.agents[agent].work.push(slot),
            ContactState::Waiting { .. } => r.index_waiting(slot),
            ContactState::Scheduled { .. } => {}
        }
        Ok(())
    }

    /// A pending wake-up, in firing order.
    pub fn timer(&mut self, record: TimerRecord) -> Result<(), StateError> {
        self.rebuild_offers()?;
        let TimerRecord { at, timer } = record;
        if at < self.last_timer {
            return Err(inconsistent(format!("timers out of order: {at:?} after {:?}", self.last_timer)));
        }
        self.last_timer = at;
        let twice = || inconsistent(format!("{timer:?} is set twice"));
        if !matches!(timer, TimerRef::Contact(_)) && !self.timers.insert(timer) {
            return Err(twice());
        }
        let r = &mut self.router;
        let not_pending = || inconsistent(format!("{timer:?} at {at:?} refers to nothing pending then"));
        let (entry, lane) = match timer {
            TimerRef::Contact(id) => {
                let &slot = r.contact_slots.get(&id).ok_or_else(not_pending)?;
                let c = &r.contacts[slot];
                if c.next_wake != Some(at) {
                    return Err(not_pending());
                }
                let lane = r.next_wake_of(c).and_then(|(t, lane)| lane.filter(|_| t == at));
                let (word, bit) = (slot.0 as usize / 64, 1u64 << (slot.0 % 64));
                if self.woken.len() <= word {
                    self.woken.resize(word + 1, 0);
                }
                if self.woken[word] & bit != 0 {
                    return Err(twice());
                }
                self.woken[word] |= bit;
                self.woken_count += 1;
                (Timer::ContactWake { slot, gen: c.gen }, lane)
            }
            TimerRef::OfferExpiry(offer) => {
                let o = r.offers.pending(offer).filter(|o| o.expires_at == at).ok_or_else(not_pending)?;
                let queue = r.contacts[o.contact_slot].queue;
                (Timer::OfferExpiry { offer }, Some(lane(LANE_OFFER, queue.0, 0)))
            }
            TimerRef::WrapUpEnd { agent, contact } => {
                let &agent_slot = r.agent_slots.get(&agent).ok_or_else(not_pending)?;
                let wrap_ups = &r.agents[agent_slot].wrap_ups;
                let w = wrap_ups.iter().find(|w| w.contact == contact && w.ends_at == at).ok_or_else(not_pending)?;
                (Timer::WrapUpEnd { agent_slot, contact }, Some(lane(LANE_WRAP_UP, w.queue.0, 0)))
            }
            TimerRef::SessionGrace(session) => {
                if r.sessions.state(session) != Some(SessionState::Lost { until: at }) {
                    return Err(not_pending());
                }
                (Timer::SessionGrace { session }, None)
            }
        };
        match lane {
            Some(lane) => r.timers.schedule_in_lane(lane, at, entry, dead_timers(&r.contacts, &r.agents, &r.offers)),
            None => r.timers.schedule(at, entry),
        }
        Ok(())
    }

    /// The router, once every record is in and they agree with each other.
    pub fn finish(mut self) -> Result<Router, StateError> {
        self.rebuild_offers()?;
        let r = &mut self.router;
        for (slot, recorded) in std::mem::take(&mut self.work) {
            let agent = &r.agents[slot];
            let mut ordered = Vec::with_capacity(recorded.len());
            for id in &recorded {
                ordered.push(*r.contact_slots.get(id).ok_or_else(|| {
                    inconsistent(format!("agent {}'s work names contact {id}, which is not in the state", agent.id))
                })?);
            }
            let (mut found, mut held) = (ordered.clone(), agent.work.clone());
            found.sort_unstable();
            held.sort_unstable();
            if found != held {
                return Err(inconsistent(format!("agent {}'s work is not the contacts it holds", agent.id)));
            }
            r.agents[slot].work = ordered;
        }
        let mut idle = std::mem::take(&mut self.idle);
        idle.sort_unstable();
        if idle.windows(2).any(|w| w[0].0 == w[1].0) {
            return Err(inconsistent("two agents share a place among the idle"));
        }
        let with_room = r.agents.iter().filter(|(_, a)| a.has_room_anywhere()).count();
        if with_room != idle.len() || idle.iter().any(|&(_, slot)| !r.agents[slot].has_room_anywhere()) {
            return Err(inconsistent("the agents with room are not those with a place among the idle"));
        }
        for (order, slot) in idle {
            r.pools.push(&r.agents, slot, order);
        }
        for s in std::mem::take(&mut self.sessions) {
            let missing =
                |what: String| inconsistent(format!("session {} owns {what}, which is not in the state", s.id));
            let contacts = s
                .contacts
                .iter()
                .map(|c| r.contact_slots.get(c).map(|s| s.0).ok_or_else(|| missing(format!("contact {c}"))));
            let contacts = contacts.collect::<Result<Vec<u32>, _>>()?;
            let agents =
                s.agents.iter().map(|a| r.agent_slots.get(a).map(|s| s.0).ok_or_else(|| missing(format!("agent {a}"))));
            let agents = agents.collect::<Result<Vec<u32>, _>>()?;
            // Adopted oldest first, so that each chain lists the newest first again.
            for (kind, slots) in [(Kind::Contact, contacts), (Kind::Agent, agents)] {
                for &slot in slots.iter().rev() {
                    if r.sessions.owner(kind, slot) != crate::ids::SessionId::LOCAL {
                        return Err(inconsistent(format!("session {}: a {kind:?} it owns has another owner", s.id)));
                    }
                    r.sessions.adopt(kind, slot, s.id);
                }
            }
        }
        for (i, record) in self.queues.iter().enumerate() {
            let flow = record.flow.iter().flat_map(|f| {
                [f.since_departure, f.at_departure.0, f.at_departure.1, f.abandons, f.exposure, f.elapsed]
                    .into_iter()
                    .chain(f.arrivals.iter().copied())
                    .chain([if f.gap == f64::INFINITY { 0.0 } else { f.gap }])
            });
            let mut figures = [record.answers, record.busy].into_iter().chain(flow);
            if figures.any(|x| !x.is_finite() || x < 0.0) {
                return Err(inconsistent(format!("queue {i}: its wait history has a negative or non-finite figure")));
            }
        }
        for (q, record) in r.queues.iter_mut().zip(&self.queues) {
            q.counters = record.counters;
            q.departures = record.departures;
            q.set_rate((record.answers, record.busy, record.updated));
            if let Some(flow) = &record.flow {
                q.set_flow(flow);
            }
        }
        let mut seqs = std::mem::take(&mut self.rank_seqs);
        seqs.sort_unstable();
        if let Some(w) = seqs.windows(2).find(|w| w[0] == w[1]) {
            return Err(inconsistent(format!("two contacts have rank sequence {}", w[0])));
        }
        // Every wake-up the state needs must have come (those that came
        // were each checked against what they wake).
        let contact_wakes = r.contacts.iter().filter(|(_, c)| c.next_wake.is_some()).count();
        if contact_wakes != self.woken_count {
            let given = self.woken_count;
            return Err(inconsistent(format!("{given} contact wake-ups for {contact_wakes} contacts that need one")));
        }
        let mut needed: HashSet<TimerRef> = HashSet::new();
        needed.extend(r.offers.pending_ids().into_iter().map(TimerRef::OfferExpiry));
        for (_, a) in r.agents.iter() {
            needed.extend(a.wrap_ups.iter().map(|w| TimerRef::WrapUpEnd { agent: a.id, contact: w.contact }));
        }
        for id in r.sessions.ids() {
            if matches!(r.sessions.state(id), Some(SessionState::Lost { .. })) {
                needed.insert(TimerRef::SessionGrace(id));
            }
        }
        if needed.len() != self.timers.len() {
            let missing = needed.difference(&self.timers).next();
            return Err(inconsistent(format!(
                "{} wake-ups for {} pending ({missing:?})",
                self.timers.len(),
                needed.len()
            )));
        }
        r.events.clear();
        Ok(self.router)
    }

    /// Builds the offers once every contact is in: the pending ones come
    /// from the offered contacts.
    fn rebuild_offers(&mut self) -> Result<(), StateError> {
        let Some(history) = self.offer_history.take() else { return Ok(()) };
        let ended =
            history.ended.iter().map(|e| (e.id, EndedOffer { agent: e.agent, contact: e.contact, outcome: e.outcome }));
        let pending = std::mem::take(&mut self.pending);
        self.router.offers =
            Offers::restore(self.router.cfg.offer_history, (history.first, history.next), pending, ended)
                .map_err(inconsistent)?;
        Ok(())
    }
}

/// Counts one more contact on `channel` against `capacity`; `None` past it.
fn add_use(usage: &mut [u8; Channel::COUNT], capacity: [u8; Channel::COUNT], channel: Channel) -> Option<()> {
    let used = &mut usage[channel.index()];
    *used = used.checked_add(1).filter(|&u| u <= capacity[channel.index()])?;
    Some(())
}

fn over_capacity(agent: AgentId) -> StateError {
    inconsistent(format!("agent {agent} holds more contacts than its capacity"))
}
