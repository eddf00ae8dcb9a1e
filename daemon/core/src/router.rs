//! The router: the state machine that owns agents, contacts, offers and
//! timers, and turns commands into decisions.
//!
//! Methods are sorted as in quinn-proto: inputs (`handle`, `handle_timeout`),
//! outputs (`poll_event`, `poll_timeout`), then read-only queries. Private
//! helpers are grouped by lifecycle: indexing, matching, offers, agents.
//!
//! Every mutation ends with the same promise (tested after every command):
//! no waiting contact that is not held for a preferred agent has an available
//! agent who qualifies for it. Whatever could break that (a contact becoming
//! routable, an agent gaining room) runs a search from its own side.

use std::collections::{BTreeSet, VecDeque};
use std::time::Duration;

use smallvec::SmallVec;

use crate::hashing::KeyedMap;

use crate::agent::{Agent, Presence, WrapUp};
use crate::command::{AgentProfile, Command, ContactSpec, Named, NotReadyReason, Reply, TransferSpec};
use crate::config::{RelaxAction, RouterConfig, WhenFull};
use crate::contact::{rank_value, Contact, ContactState, Filed, Rank, Relaxation};
use crate::error::{CommandError, OfferOutcome};
use crate::event::{AgentState, Candidate, Event, Explanation, OverflowReason, Rule, Trigger};
use crate::ewt;
use crate::ids::{
    AgentId, Channel, ContactId, LanguageId, OfferId, QueueId, SessionId, SkillId, SkillReq, SkillSet, TierId,
};
use crate::ids::{MAX_PROFICIENCY, MIN_PROFICIENCY};
use crate::offers::{Offer, Offers};
use crate::oldest::{Entry as WaitingSince, Stamps};
use crate::pools::{AgentCandidate, AgentPools};
use crate::positions::Place;
use crate::sessions::{Closed, Kind, SessionCounts, SessionState, Sessions};
use crate::slab::Slab;
use crate::slots_by_id::SlotsById;
use crate::snapshot::{AgentView, ContactView, SessionView, Snapshot};
use crate::stats::{EwtMethod, QueueState, QueueStats, WaitEstimate, WARM_UP_DEPARTURES};
use crate::time::Time;
use crate::timers::{lane, Timer, Timers, LANE_HOLD, LANE_OFFER, LANE_RELAX, LANE_WRAP_UP};
use crate::waiting::{Lists, Requirements, WaitingIndex, ANY_LANGUAGE};

mod restore;
pub mod views;
pub use restore::Restore;

/// Limits on what one command may carry, so that no input can make the core
/// do unbounded work per decision.
pub const MAX_SKILLS_PER_CONTACT: usize = 16;
pub const MAX_LANGUAGES_PER_CONTACT: usize = 16;
pub const MAX_PREFERRED_AGENTS: usize = 8;
pub const MAX_SKILLS_PER_AGENT: usize = 256;
pub const MAX_LANGUAGES_PER_AGENT: usize = 32;
/// How far ahead a callback may be scheduled (its deadline included): a year
/// and a day.
pub const MAX_CALLBACK_AHEAD: Duration = Duration::from_secs(366 * 86_400);

#[derive(Clone, serde::Serialize, serde::Deserialize)]
pub struct Router {
    cfg: RouterConfig,
    now: Time,
    agents: Slab<Agent>,
    agent_slots: SlotsById<AgentId>,
    contacts: Slab<Contact>,
    contact_slots: SlotsById<ContactId>,
    waiting: WaitingIndex,
    pools: AgentPools,
    /// Contacts held for a preferred agent, per agent id (logged in or not).
    holds: KeyedMap<AgentId, BTreeSet<(Rank, u32)>>,
    offers: Offers,
    timers: Timers,
    queues: Vec<QueueState>,
    /// Per contact slot, the stamp its current wait is entered under in its
    /// queue's [`crate::oldest::OldestWaiting`].
    waiting_stamps: Stamps,
    events: VecDeque<Event>,
    /// Logged-in agents by reported state ([`AgentState::index`]).
    agent_states: [u32; 6],
    next_rank_seq: u64,
    next_idle_order: u64,
    next_gen: u32,
    scratch: Vec<SkillReq>,
    /// Who answers for each contact and agent.
    sessions: Sessions,
}

impl Router {
    pub fn new(cfg: RouterConfig) -> Result<Router, crate::ConfigErrors> {
        cfg.validate()?;
        let queues = cfg.queues.iter().map(|_| QueueState::new(cfg.tiers.len())).collect();
        Ok(Router {
            offers: Offers::new(cfg.offer_history),
            cfg,
            now: Time::ZERO,
            agents: Slab::new(),
            agent_slots: SlotsById::default(),
            contacts: Slab::new(),
            contact_slots: SlotsById::default(),
            waiting: WaitingIndex::default(),
            pools: AgentPools::default(),
            holds: KeyedMap::default(),
            timers: Timers::default(),
            queues,
            waiting_stamps: Stamps::default(),
            events: VecDeque::new(),
            agent_states: [0; 6],
            next_rank_seq: 1,
            next_idle_order: 1,
            next_gen: 1,
            scratch: Vec::new(),
            sessions: Sessions::default(),
        })
    }

    // ----- Inputs -------------------------------------------------------------

    /// Applies one command at `now` in the centre's own session
    /// ([`SessionId::LOCAL`]): see [`Router::handle_from`].
    pub fn handle(&mut self, now: Time, command: Command) -> Result<Reply, CommandError> {
        self.handle_from(now, SessionId::LOCAL, command)
    }

    /// Applies one command at `now` from `session`. Timers due at or before
    /// `now` fire first, so an accept arriving exactly at an offer's expiry
    /// finds it expired. A lost or unknown session can no longer act; an
    /// accepted command makes `session` the owner of the contact or agent
    /// it names ([`Command::names`]).
    pub fn handle_from(&mut self, now: Time, session: SessionId, command: Command) -> Result<Reply, CommandError> {
        if let Command::Restart = command {
            return Ok(self.restart(now));
        }
        self.handle_timeout(now);
        if !matches!(command, Command::OpenSession { .. } | Command::LoseSession { .. }) {
            self.sessions.check_live(session).map_err(|closed| match closed {
                Closed::Unknown => CommandError::UnknownSession(session),
                Closed::Lost => CommandError::SessionLost(session),
            })?;
        }
        let named = command.names();
        if let Command::AgentLogin { agent, ready, .. } = command {
            if let Some(&slot) = self.agent_slots.get(&agent) {
                if self.sessions.owner(Kind::Agent, slot) != session {
                    return Ok(self.take_over_agent(slot, session, ready));
                }
            }
        }
        let reply = self.apply(command)?;
        if !self.sessions.is_empty() {
            self.claim(named, session);
        }
        Ok(reply)
    }

    fn apply(&mut self, command: Command) -> Result<Reply, CommandError> {
        match command {
            Command::AgentLogin { agent, profile, ready } => self.login(agent, profile, ready),
            Command::AgentLogout { agent } => self.logout(agent, false),
            Command::AgentDisconnected { agent } => self.logout(agent, true),
            Command::AgentReady { agent } => self.set_presence(agent, Presence::Ready),
            Command::AgentNotReady { agent, reason } => self.set_presence(agent, Presence::NotReady(reason)),
            Command::Accept { agent, offer } => self.accept(agent, offer),
            Command::Reject { agent, offer } => self.reject(agent, offer),
            Command::Complete { agent, contact } => self.complete(agent, contact, false),
            Command::EndWrapUp { agent, contact } => self.end_wrap_up_command(agent, contact),
            Command::Enqueue(spec) => self.enqueue(spec, None),
            Command::Abandon { contact } => self.abandon(contact),
            Command::Transfer(spec) => self.transfer(spec),
            Command::ScheduleCallback { spec, due, deadline } => self.enqueue(spec, Some((due, deadline))),
            Command::Reconfigure(cfg) => self.reconfigure(*cfg),
            Command::Restart => Ok(self.restart(self.now)),
            Command::OpenSession { session } => self.open_session(session),
            Command::LoseSession { session } => self.lose_session(session),
            Command::ClaimContact { contact } => self.contact_slot(contact).map(|_| Reply::Done),
            Command::Drain => Ok(self.drain()),
            Command::Supervise(action) => self.supervise(*action),
        }
    }

    /// Whether the session that owns `agent` was lost (its desktop is gone).
    fn desktop_gone(&self, agent: AgentId) -> bool {
        let Some(&slot) = self.agent_slots.get(&agent) else { return false };
        let owner = self.sessions.owner(Kind::Agent, slot);
        matches!(self.sessions.state(owner), Some(SessionState::Lost { .. }))
    }

    /// A supervisor's action ([`Command::Supervise`]): the few commands a
    /// supervisor may give on someone else's agent or contact.
    fn supervise(&mut self, action: Command) -> Result<Reply, CommandError> {
        match action {
            // Nobody would answer its offers.
            Command::AgentReady { agent } if self.desktop_gone(agent) => Err(CommandError::DesktopGone(agent)),
            Command::AgentReady { .. }
            | Command::AgentNotReady { .. }
            | Command::AgentLogout { .. }
            | Command::Abandon { .. }
            | Command::Transfer(_) => self.apply(action),
            _ => Err(invalid(
                "command",
                "a supervisor sets an agent's state, logs it out, or abandons or moves a contact".into(),
            )),
        }
    }

    /// Fires every timer due at or before `now`, each at its own time.
    pub fn handle_timeout(&mut self, now: Time) {
        while let Some((at, timer)) = self.timers.pop_due(now) {
            self.now = self.now.max(at);
            self.fire(timer);
        }
        self.now = self.now.max(now);
    }

    // ----- Outputs ------------------------------------------------------------

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When the core next needs [`Router::handle_timeout`]. May be early (a
    /// cancelled timer): waking then is harmless.
    pub fn poll_timeout(&self) -> Option<Time> {
        self.timers.next()
    }

    // ----- Queries ------------------------------------------------------------

    pub fn config(&self) -> &RouterConfig {
        &self.cfg
    }

    /// The last `now` the router has seen.
    pub fn now(&self) -> Time {
        self.now
    }

    pub fn agent_state(&self, agent: AgentId) -> AgentState {
        self.agent_slots.get(&agent).map_or(AgentState::Offline, |&s| self.agents[s].state())
    }

    /// Logged-in agents by [`AgentState::index`].
    pub fn agent_state_counts(&self) -> [u32; 6] {
        self.agent_states
    }

    /// The opaque key/values a contact carries (for the offer sent to a desktop).
    pub fn contact_context(&self, contact: ContactId) -> Option<&[(String, String)]> {
        let &slot = self.contact_slots.get(&contact)?;
        Some(&self.contacts[slot].context)
    }

    pub fn contact_count(&self) -> usize {
        self.contacts.len()
    }

    pub fn agent_count(&self) -> usize {
        self.agents.len()
    }

    pub fn pending_offers(&self) -> usize {
        self.offers.pending_count()
    }

    /// Timer entries held for future wake-ups, including some of those
    /// cancelled (dropped a few at a time, see `timers.rs`): for tests and
    /// memory monitoring.
    pub fn timer_count(&self) -> usize {
        self.timers.len()
    }

    pub fn queue_id(&self, name: &str) -> Option<QueueId> {
        self.cfg.queues.iter().position(|q| q.name == name).map(|i| QueueId(i as u16))
    }

    /// Operator's view of one queue, in O(tiers): no scan of the contacts.
    pub fn queue_stats(&self, queue: QueueId) -> Result<QueueStats, CommandError> {
        self.queues.get(usize::from(queue.0)).ok_or(CommandError::UnknownQueue(queue))?;
        Ok(self.stats_of(queue))
    }

    /// [`Router::queue_stats`] of every queue, in queue order: what a metrics
    /// sampler asks for every second, on the routing thread.
    pub fn all_queue_stats(&self) -> Vec<QueueStats> {
        (0..self.queues.len()).map(|q| self.stats_of(QueueId(q as u16))).collect()
    }

    fn stats_of(&self, queue: QueueId) -> QueueStats {
        let q = &self.queues[usize::from(queue.0)];
        QueueStats {
            name: self.cfg.queues[usize::from(queue.0)].name.clone(),
            waiting_by_tier: q.positions.waiting_by_tier().collect(),
            waiting: q.waiting(),
            oldest_wait: q.oldest.oldest().map(|a| self.now.since(a)),
            counters: q.counters,
            service_level: q.service_level(),
            service_level_target: self.cfg.queues[usize::from(queue.0)].service_level.target,
            agents_by_state: self.agent_states,
        }
    }

    /// Position in queue and estimated wait of a contact (see [`crate::stats`]
    /// and [`crate::ewt`]). O(tiers) beside the position and the count of
    /// the agents who qualify.
    pub fn estimate_wait(&self, contact: ContactId) -> Result<WaitEstimate, CommandError> {
        let &slot = self.contact_slots.get(&contact).ok_or(CommandError::UnknownContact(contact))?;
        let c = &self.contacts[slot];
        if !c.is_waiting() {
            let (zero, method) = (Duration::ZERO, EwtMethod::NotWaiting);
            return Ok(WaitEstimate { position: 0, estimated_wait: zero, low: zero, high: zero, method });
        }
        let qi = usize::from(c.queue.0);
        let (q, qc) = (&self.queues[qi], &self.cfg.queues[qi]);
        let position = q.positions.ahead_of(c.rank) + 1;
        let rates = q.rates(self.now, self.cfg.ewt_window);
        let mut skills = Vec::new();
        let languages = c.effective(&mut skills);
        let staffed = self.pools.staffed(&self.agents, c.channel, &skills, languages);
        // The staffing's rate: every agent who qualifies on this queue alone.
        let service = (qc.expected_handle_time + qc.wrap_up).as_secs_f64();
        let staffing_rate = staffed as f64 / service;
        let prior = WARM_UP_DEPARTURES as f64;
        // History and staffing, weighed by how many departures history has
        // seen against `prior` imagined ones.
        let measured = (rates.departures > 0.0 && rates.busy > 0.0).then(|| rates.departures / rates.busy);
        let drain = match (measured, staffing_rate > 0.0) {
            (Some(m), true) => {
                let weight = rates.departures / (rates.departures + prior);
                weight * m + (1.0 - weight) * staffing_rate
            }
            (Some(m), false) => m,
            (None, true) => staffing_rate,
            (None, false) => 0.0,
        };
        let mut method = if rates.departures >= prior { EwtMethod::QueueLength } else { EwtMethod::Staffing };
        let stalled_for = rates.stalled_for.unwrap_or(0.0);
        if drain <= 0.0 || stalled_for > 0.0 {
            method = EwtMethod::Stalled;
        }
        // Nothing to go by: as if one agent served the queue.
        let drain = if drain > 0.0 { drain } else { 1.0 / service };
        let overtakers = self.overtakers(c.queue, c.tier);
        let w = ewt::answered_wait(f64::from(position - 1), drain, rates.abandonment, &overtakers);
        if w.unbounded {
            method = EwtMethod::Stalled;
        }
        // A stall is assumed to last as long again (an exponential stage of
        // that mean), which an answered caller's patience outlasts: tilted
        // by θ like every other stage.
        let stall = if stalled_for > 0.0 { stalled_for / (1.0 + rates.abandonment * stalled_for) } else { 0.0 };
        // No wait is given as longer than a day (nor a figure that is not one).
        let secs = |s: f64| Duration::from_secs_f64(if s.is_nan() { 86_400.0 } else { s.clamp(0.0, 86_400.0) });
        Ok(WaitEstimate {
            position,
            estimated_wait: secs(w.mean + stall),
            low: secs(w.low),
            high: secs(w.high + 2.3 * stall),
            method,
        })
    }

    /// The tiers whose later arrivals rank before a waiting contact of
    /// `tier` in `queue`, at their measured rates.
    fn overtakers(&self, queue: QueueId, tier: TierId) -> SmallVec<[ewt::Overtaking; 4]> {
        let q = &self.queues[usize::from(queue.0)];
        let offset = |t: usize| rank_value(&self.cfg, queue, TierId(t as u8), Time::ZERO, None);
        let own = offset(usize::from(tier.0));
        (0..self.cfg.tiers.len())
            .filter_map(|t| {
                let head_start = own.checked_sub(offset(t)).filter(|&d| d > 0)?;
                let rate = q.arrival_rate(t);
                // Strict tiers: years apart, so always before.
                let within = if head_start >= 1 << 47 { f64::INFINITY } else { head_start as f64 / 1e6 };
                (rate > 0.0).then_some(ewt::Overtaking { rate, within })
            })
            .collect()
    }

    /// Everything the router holds, in a plain form: for tests, debugging and
    /// the journal. O(n); never on the hot path.
    pub fn snapshot(&self) -> Snapshot {
        let mut scratch = Vec::new();
        let mut contacts: Vec<ContactView> =
            self.contacts.iter().map(|(slot, c)| self.contact_view_of(slot, c, &mut scratch)).collect();
        let mut agents: Vec<AgentView> = self.agents.iter().map(|(slot, a)| self.agent_view_of(slot, a)).collect();
        // By id: where records sit in memory is not state.
        contacts.sort_unstable_by_key(|c| c.id);
        agents.sort_unstable_by_key(|a| a.id);
        let sessions = self
            .sessions
            .ids()
            .into_iter()
            .map(|id| {
                let mut contacts: Vec<ContactId> =
                    self.sessions.owned(Kind::Contact, id).into_iter().map(|s| self.contacts[s].id).collect();
                let mut agents: Vec<AgentId> =
                    self.sessions.owned(Kind::Agent, id).into_iter().map(|s| self.agents[s].id).collect();
                contacts.sort_unstable();
                agents.sort_unstable();
                let state = self.sessions.state(id).expect("listed");
                SessionView { id, state, contacts, agents }
            })
            .collect();
        Snapshot { now: self.now, contacts, agents, sessions }
    }

    // ----- Timers -------------------------------------------------------------

    fn fire(&mut self, timer: Timer) {
        match timer {
            Timer::ContactWake { slot, gen } => {
                let Some(c) = self.contacts.get_mut(slot) else { return };
                if c.gen != gen || c.next_wake != Some(self.now) {
                    return;
                }
                c.next_wake = None;
                match c.state {
                    ContactState::Scheduled { due } if due <= self.now => self.callback_due(slot),
                    ContactState::Waiting { .. } => self.settle(slot, Trigger::ContactWaiting),
                    _ => {}
                }
            }
            Timer::OfferExpiry { offer } => {
                if self.offers.pending(offer).is_some_and(|o| o.expires_at <= self.now) {
                    self.end_offer(offer, OfferOutcome::Expired);
                }
            }
            Timer::WrapUpEnd { agent_slot, contact } => {
                let Some(a) = self.agents.get(agent_slot) else { return };
                if a.wrap_ups.iter().any(|w| w.contact == contact && w.ends_at <= self.now) {
                    self.end_wrap_up(agent_slot, contact);
                }
            }
            Timer::SessionGrace { session } => {
                if let Some(SessionState::Lost { until }) = self.sessions.state(session) {
                    if until <= self.now {
                        self.expire_session(session);
                    }
                }
            }
        }
    }

    // ----- Sessions -----------------------------------------------------------

    fn open_session(&mut self, session: SessionId) -> Result<Reply, CommandError> {
        if !self.sessions.open(session) {
            let last = self.sessions.last_opened();
            return Err(invalid("session", format!("{session} is not above the last session opened, {last}")));
        }
        Ok(Reply::Done)
    }

    fn lose_session(&mut self, session: SessionId) -> Result<Reply, CommandError> {
        match self.sessions.state(session) {
            _ if session == SessionId::LOCAL => {
                return Err(invalid("session", "the centre's own is never lost".into()))
            }
            None => return Err(CommandError::UnknownSession(session)),
            Some(SessionState::Lost { .. }) => return Err(CommandError::SessionLost(session)),
            Some(SessionState::Live) => {}
        }
        self.start_grace(session, self.now + self.cfg.session_grace);
        for slot in self.sessions.owned(Kind::Agent, session) {
            self.agent_gone(slot, NotReadyReason::Disconnected);
        }
        Ok(Reply::Done)
    }

    /// A session owning nothing goes at once; any other waits out the grace.
    fn start_grace(&mut self, session: SessionId, until: Time) {
        if self.sessions.owns_nothing(session) {
            self.sessions.remove(session);
            return;
        }
        self.sessions.set_state(session, SessionState::Lost { until });
        self.timers.schedule(until, Timer::SessionGrace { session });
    }

    /// An agent whose desktop is gone takes no new offer: not ready, its
    /// ringing offers withdrawn and re-routed. Its connected contacts and
    /// wrap-ups carry on (the call is on the phone, not the desktop).
    fn agent_gone(&mut self, slot: u32, reason: NotReadyReason) {
        self.agents[slot].presence = Presence::NotReady(reason);
        self.agent_lost_room(slot);
        let ringing: Vec<OfferId> = self.agents[slot]
            .work
            .iter()
            .filter_map(|&c| match self.contacts[c].state {
                ContactState::Offered { offer, .. } => Some(offer),
                _ => None,
            })
            .collect();
        for offer in ringing {
            self.withdraw_offer(offer);
        }
    }

    /// The grace is over: what the session still owns goes. Agents first, so
    /// that their connected contacts end as completions.
    fn expire_session(&mut self, session: SessionId) {
        let (mut contacts_ended, mut callbacks_kept, mut agents_logged_out) = (0, 0, 0);
        while let Some(slot) = self.sessions.first(Kind::Agent, session) {
            let id = self.agents[slot].id;
            self.logout(id, true).expect("an owned agent is logged in");
            agents_logged_out += 1;
        }
        while let Some(slot) = self.sessions.first(Kind::Contact, session) {
            let c = &self.contacts[slot];
            if let ContactState::Scheduled { .. } = c.state {
                // A callback was promised to the customer: the centre keeps it.
                self.sessions.adopt(Kind::Contact, slot, SessionId::LOCAL);
                callbacks_kept += 1;
            } else {
                let id = c.id;
                self.abandon(id).expect("an owned contact is known");
                contacts_ended += 1;
            }
        }
        self.sessions.remove(session);
        self.events.push_back(Event::SessionExpired { session, contacts_ended, callbacks_kept, agents_logged_out });
    }

    /// A login from another session than the agent's: the newest desktop
    /// takes the agent over as it is (profile and work unchanged), and the
    /// old session's loss no longer touches it.
    fn take_over_agent(&mut self, slot: u32, session: SessionId, ready: bool) -> Reply {
        self.sessions.adopt(Kind::Agent, slot, session);
        let presence = match (ready, self.agents[slot].presence) {
            (true, _) => Presence::Ready,
            (false, Presence::Ready) => Presence::NotReady(NotReadyReason::LoggedIn),
            (false, kept) => kept,
        };
        self.change_presence(slot, presence);
        Reply::Done
    }

    /// After an accepted command: `session` answers for what it named.
    fn claim(&mut self, named: Named, session: SessionId) {
        match named {
            Named::Agent(id) => {
                if let Some(&slot) = self.agent_slots.get(&id) {
                    self.sessions.adopt(Kind::Agent, slot, session);
                }
            }
            Named::Contact(id) => {
                if let Some(&slot) = self.contact_slots.get(&id) {
                    self.sessions.adopt(Kind::Contact, slot, session);
                }
            }
            Named::Nothing => {}
        }
    }

    fn drain(&mut self) -> Reply {
        // In id order: no decision depends on where records sit.
        let mut ids: Vec<AgentId> = self.agents.iter().map(|(_, a)| a.id).collect();
        ids.sort_unstable();
        for &id in &ids {
            self.logout(id, true).expect("a listed agent is logged in");
        }
        Reply::Drained { agents: ids.len() as u32 }
    }

    /// Who answers for a contact, if the router has it.
    pub fn contact_owner(&self, contact: ContactId) -> Option<SessionId> {
        let &slot = self.contact_slots.get(&contact)?;
        Some(self.sessions.owner(Kind::Contact, slot))
    }

    /// Who answers for a logged-in agent.
    pub fn agent_owner(&self, agent: AgentId) -> Option<SessionId> {
        let &slot = self.agent_slots.get(&agent)?;
        Some(self.sessions.owner(Kind::Agent, slot))
    }

    /// The highest session id opened so far: a restarted driver numbers its
    /// sessions from the one after it.
    pub fn last_session(&self) -> SessionId {
        self.sessions.last_opened()
    }

    /// Sessions live and lost within their grace (the centre's not counted).
    pub fn session_counts(&self) -> SessionCounts {
        self.sessions.counts()
    }

    // ----- Agent commands -----------------------------------------------------

    fn login(&mut self, id: AgentId, profile: AgentProfile, ready: bool) -> Result<Reply, CommandError> {
        if self.agent_slots.contains_key(&id) {
            return Err(CommandError::AgentAlreadyLoggedIn(id));
        }
        let AgentProfile { mut skills, languages, capacity } = profile;
        check_profile(&mut skills, &languages, capacity)?;
        let presence = if ready { Presence::Ready } else { Presence::NotReady(NotReadyReason::LoggedIn) };
        let slot = self.file_agent(id, skills, languages, capacity, presence);
        self.agent_gained_room(slot);
        Ok(Reply::Done)
    }

    /// Enters a new agent with a checked profile: its record, its pools'
    /// rosters, its lists, its id.
    fn file_agent(
        &mut self,
        id: AgentId,
        skills: Vec<(SkillId, u8)>,
        languages: Vec<LanguageId>,
        capacity: [u8; Channel::COUNT],
        presence: Presence,
    ) -> u32 {
        let slots = capacity.iter().map(|&c| usize::from(c)).sum();
        let slot = self.agents.insert(Agent {
            id,
            skill_set: SkillSet::of(skills.iter().map(|&(s, _)| s)),
            skills: skills.into(),
            languages,
            capacity,
            usage: [0; Channel::COUNT],
            ringing: 0,
            connected: 0,
            // Sized at login (one slot per unit of capacity) so that no
            // decision has to grow them.
            wrap_ups: Vec::with_capacity(slots),
            work: Vec::with_capacity(slots),
            presence,
            memberships: Vec::new(),
            lists: Default::default(),
            one_language_lists: 0,
            reported: None,
            reported_since: self.now,
        });
        let memberships = self.pools.memberships(&self.agents[slot]);
        let (lists, one_language_lists) = self.waiting.lists_of(&self.agents[slot]);
        self.pools.enrol(slot, &memberships);
        let agent = &mut self.agents[slot];
        agent.memberships = memberships;
        agent.lists = lists;
        agent.one_language_lists = one_language_lists;
        self.agent_slots.insert(id, slot);
        slot
    }

    fn logout(&mut self, id: AgentId, disconnected: bool) -> Result<Reply, CommandError> {
        let slot = self.agent_slot(id)?;
        if self.agents[slot].connected > 0 && !disconnected {
            return Err(CommandError::AgentBusy(id));
        }
        // A lost desktop cannot finish its calls through us: they end here.
        let connected: Vec<u32> = self.agents[slot]
            .work
            .iter()
            .copied()
            .filter(|&c| self.contacts[c].state == (ContactState::Connected { agent: slot }))
            .collect();
        for cslot in connected {
            let c = self.remove_contact(cslot);
            self.queues[usize::from(c.queue.0)].counters.completed += 1;
            self.events.push_back(Event::Completed { contact: c.id, agent: id, queue: c.queue, hung_up: false });
            let agent = &mut self.agents[slot];
            agent.connected -= 1;
            agent.usage[c.channel.index()] -= 1;
            agent.work.retain(|&s| s != cslot);
        }
        self.sessions.release(Kind::Agent, slot);
        let agent = self.agents.remove(slot).expect("agent is live");
        self.agent_slots.remove(&id);
        self.pools.invalidate(slot);
        self.pools.withdraw(slot, &agent.memberships);
        if let Some(state) = agent.reported {
            self.agent_states[state.index()] -= 1;
        }
        for w in &agent.wrap_ups {
            self.events.push_back(Event::WrapUpEnded { contact: w.contact, agent: id });
        }
        self.events.push_back(Event::AgentStateChanged { agent: id, state: AgentState::Offline });
        // Re-route its ringing offers at once; it can no longer be chosen.
        for contact_slot in agent.work {
            if let ContactState::Offered { offer, .. } = self.contacts[contact_slot].state {
                self.offers.close(offer, OfferOutcome::Withdrawn);
                let contact = self.contacts[contact_slot].id;
                self.events.push_back(Event::OfferEnded {
                    offer,
                    contact,
                    agent: id,
                    outcome: OfferOutcome::Withdrawn,
                });
                self.return_to_queue(contact_slot);
            }
        }
        Ok(Reply::Done)
    }

    fn restart(&mut self, now: Time) -> Reply {
        // Every client session is lost at the restart, with a whole grace from
        // now: the time ccrd was down does not count against it. Set before
        // the timers fire, so that no grace that ran out meanwhile expires.
        let until = self.now.max(now) + self.cfg.session_grace;
        for session in self.sessions.ids() {
            self.start_grace(session, until);
        }
        self.handle_timeout(now);
        // Agents first, so that no withdrawn contact is offered straight back
        // to a desktop that is gone.
        let mut slots: Vec<(AgentId, u32)> = self.agents.iter().map(|(slot, a)| (a.id, slot)).collect();
        slots.sort_unstable();
        for &(_, slot) in &slots {
            self.agents[slot].presence = Presence::NotReady(NotReadyReason::Restart);
            self.agent_lost_room(slot);
        }
        for offer in self.offers.pending_ids() {
            self.withdraw_offer(offer);
        }
        Reply::Done
    }

    /// Withdraws a ringing offer from an agent who is still logged in (and
    /// has lost its room already): the contact goes back to its place.
    fn withdraw_offer(&mut self, offer: OfferId) {
        let o = self.offers.close(offer, OfferOutcome::Withdrawn);
        let contact = self.contacts[o.contact_slot].id;
        self.events.push_back(Event::OfferEnded { offer, contact, agent: o.agent, outcome: OfferOutcome::Withdrawn });
        self.release_agent_slot(o.agent_slot, o.contact_slot, true);
        self.return_to_queue(o.contact_slot);
    }

    fn set_presence(&mut self, id: AgentId, presence: Presence) -> Result<Reply, CommandError> {
        let slot = self.agent_slot(id)?;
        use NotReadyReason::{Declined, Disconnected, Restart, Rona};
        if let Presence::NotReady(Rona | Declined | Restart | Disconnected) = presence {
            return Err(invalid(
                "reason",
                "RONA, declined, restart and disconnected are set by the router only".into(),
            ));
        }
        self.change_presence(slot, presence);
        Ok(Reply::Done)
    }

    /// Sets an agent's presence and re-files it: work for it if it gained
    /// room, its pool entries gone stale if it lost it.
    fn change_presence(&mut self, slot: u32, presence: Presence) {
        let agent = &mut self.agents[slot];
        if agent.presence == presence {
            return;
        }
        agent.presence = presence;
        match presence {
            Presence::Ready => self.agent_gained_room(slot),
            Presence::NotReady(_) => self.agent_lost_room(slot),
        }
    }

    fn accept(&mut self, id: AgentId, offer_id: OfferId) -> Result<Reply, CommandError> {
        let slot = self.agent_slot(id)?;
        let offer = match self.offers.pending(offer_id) {
            Some(o) if o.agent != id => {
                return Err(CommandError::OfferNotForAgent { offer: offer_id, owner: o.agent, agent: id })
            }
            Some(&o) => o,
            None => return self.answer_ended_offer(id, offer_id, OfferOutcome::Accepted),
        };
        self.offers.close(offer_id, OfferOutcome::Accepted);
        let c = &mut self.contacts[offer.contact_slot];
        c.state = ContactState::Connected { agent: slot };
        let (contact, queue, tier, arrival) = (c.id, c.queue, c.tier, c.arrival);
        let waited = self.now.since(arrival);
        let agent = &mut self.agents[slot];
        agent.ringing -= 1;
        agent.connected += 1;
        let qi = usize::from(queue.0);
        let threshold = self.cfg.queues[qi].service_level.threshold;
        let q = &mut self.queues[qi];
        q.counters.answered += 1;
        if waited <= threshold {
            q.counters.answered_in_target += 1;
        }
        self.events.push_back(Event::Connected { offer: offer_id, contact, agent: id, queue, tier, waited });
        self.sync_agent_state(slot);
        Ok(Reply::Accepted { contact, duplicate: false })
    }

    fn reject(&mut self, id: AgentId, offer_id: OfferId) -> Result<Reply, CommandError> {
        self.agent_slot(id)?;
        match self.offers.pending(offer_id) {
            Some(o) if o.agent != id => {
                Err(CommandError::OfferNotForAgent { offer: offer_id, owner: o.agent, agent: id })
            }
            Some(_) => {
                self.end_offer(offer_id, OfferOutcome::Rejected);
                Ok(Reply::Rejected { duplicate: false })
            }
            None => self.answer_ended_offer(id, offer_id, OfferOutcome::Rejected),
        }
    }

    /// A repeated accept or reject gets the first answer again; anything else
    /// about an offer that is over is refused.
    fn answer_ended_offer(&self, id: AgentId, offer: OfferId, asked: OfferOutcome) -> Result<Reply, CommandError> {
        match self.offers.ended(offer) {
            None => Err(CommandError::UnknownOffer(offer)),
            Some(e) if e.agent != id => Err(CommandError::OfferNotForAgent { offer, owner: e.agent, agent: id }),
            Some(e) if e.outcome == asked && asked == OfferOutcome::Accepted => {
                Ok(Reply::Accepted { contact: e.contact, duplicate: true })
            }
            Some(e) if e.outcome == asked => Ok(Reply::Rejected { duplicate: true }),
            Some(e) => Err(CommandError::OfferNotPending { offer, outcome: e.outcome }),
        }
    }

    fn complete(&mut self, id: AgentId, contact: ContactId, hung_up: bool) -> Result<Reply, CommandError> {
        let slot = self.agent_slot(id)?;
        let cslot = self.contact_slot(contact)?;
        if self.contacts[cslot].state != (ContactState::Connected { agent: slot }) {
            return Err(CommandError::NotConnected { contact, agent: id });
        }
        let c = self.remove_contact(cslot);
        let qi = usize::from(c.queue.0);
        self.queues[qi].counters.completed += 1;
        self.events.push_back(Event::Completed { contact, agent: id, queue: c.queue, hung_up });
        let agent = &mut self.agents[slot];
        agent.connected -= 1;
        agent.work.retain(|&s| s != cslot);
        self.start_wrap_up(slot, contact, c.channel, c.queue);
        Ok(Reply::Done)
    }

    fn end_wrap_up_command(&mut self, id: AgentId, contact: ContactId) -> Result<Reply, CommandError> {
        let slot = self.agent_slot(id)?;
        if !self.agents[slot].wrap_ups.iter().any(|w| w.contact == contact) {
            return Err(CommandError::NotInWrapUp { contact, agent: id });
        }
        self.end_wrap_up(slot, contact);
        Ok(Reply::Done)
    }

    // ----- Gateway commands ---------------------------------------------------

    fn enqueue(&mut self, spec: ContactSpec, callback: Option<(Time, Time)>) -> Result<Reply, CommandError> {
        if self.contact_slots.contains_key(&spec.id) {
            return Err(CommandError::DuplicateContact(spec.id));
        }
        let ContactSpec { id, channel, queue, tier, skills, languages, preferred_agents, context } = spec;
        self.check_queue_and_tier(queue, tier)?;
        check_requirements(&skills, &languages)?;
        if preferred_agents.len() > MAX_PREFERRED_AGENTS {
            return Err(invalid("preferred_agents", format!("at most {MAX_PREFERRED_AGENTS}")));
        }
        self.check_context(&context)?;
        if let Some((due, deadline)) = callback {
            if deadline < due {
                return Err(invalid("deadline", "a callback's deadline cannot precede its due time".into()));
            }
            let horizon = self.now + MAX_CALLBACK_AHEAD;
            if deadline > horizon {
                let days = MAX_CALLBACK_AHEAD.as_secs() / 86_400;
                return Err(invalid("deadline", format!("a callback is due and answered within {days} days")));
            }
        }
        if self.contacts.len() >= self.cfg.max_contacts as usize {
            return Err(CommandError::TooManyContacts { limit: self.cfg.max_contacts });
        }
        // Callbacks were promised: they skip the waiting limit when they come due.
        let admitted = if callback.is_some() { queue } else { self.admit(queue)? };
        let gen = self.next_gen();
        let seq = self.next_rank_seq;
        self.next_rank_seq += 1;
        let (state, arrival, deadline) = match callback {
            None => (ContactState::Waiting { filed: None, hold_until: None }, self.now, None),
            Some((due, deadline)) => (ContactState::Scheduled { due }, due.max(self.now), Some(deadline)),
        };
        let slot = self.contacts.insert(Contact {
            id,
            channel,
            queue: admitted,
            tier,
            skills,
            languages,
            preferred: preferred_agents.into(),
            context: context.into(),
            arrival,
            entered_queue: arrival,
            deadline,
            rank: Rank { value: rank_value(&self.cfg, admitted, tier, arrival, deadline), seq },
            relax: Relaxation::NONE,
            place: Place::UNKNOWN,
            state,
            next_wake: None,
            gen,
        });
        self.contact_slots.insert(id, slot);
        if admitted != queue {
            self.queues[usize::from(queue.0)].counters.overflowed_out += 1;
            self.queues[usize::from(admitted.0)].counters.overflowed_in += 1;
            let reason = OverflowReason::QueueFull;
            self.events.push_back(Event::Overflowed { contact: id, from: queue, to: admitted, reason });
        }
        match callback {
            Some((due, _)) if due > self.now => self.schedule_wake(slot),
            Some(_) => self.callback_due(slot),
            None => {
                self.queues[usize::from(admitted.0)].counters.arrived += 1;
                self.arrive(slot);
            }
        }
        Ok(Reply::Enqueued { queue: admitted })
    }

    fn abandon(&mut self, contact: ContactId) -> Result<Reply, CommandError> {
        let cslot = self.contact_slot(contact)?;
        let c = &self.contacts[cslot];
        let (queue, tier, waited) = (c.queue, c.tier, self.now.since(c.arrival));
        match c.state {
            ContactState::Connected { agent } => {
                let agent_id = self.agents[agent].id;
                return self.complete(agent_id, contact, true);
            }
            ContactState::Scheduled { .. } => {
                self.remove_contact(cslot);
                self.events.push_back(Event::CallbackCancelled { contact, queue });
                return Ok(Reply::Done);
            }
            ContactState::Offered { offer, .. } => {
                let o = self.offers.close(offer, OfferOutcome::Abandoned);
                let agent = o.agent;
                self.events.push_back(Event::OfferEnded { offer, contact, agent, outcome: OfferOutcome::Abandoned });
                self.release_agent_slot(o.agent_slot, cslot, false);
            }
            ContactState::Waiting { .. } => {
                self.unindex(cslot);
                let in_queue = self.now.since(self.contacts[cslot].entered_queue);
                self.queues[usize::from(queue.0)].note_abandon(self.now, self.cfg.ewt_window, in_queue);
            }
        }
        self.remove_contact(cslot);
        let short = waited < self.cfg.short_abandon;
        let counters = &mut self.queues[usize::from(queue.0)].counters;
        if short {
            counters.short_abandoned += 1;
        } else {
            counters.abandoned += 1;
        }
        self.events.push_back(Event::Abandoned { contact, queue, tier, waited, short });
        Ok(Reply::Done)
    }

    fn transfer(&mut self, spec: TransferSpec) -> Result<Reply, CommandError> {
        let TransferSpec { contact, queue, skills, languages, tier, context } = spec;
        let cslot = self.contact_slot(contact)?;
        let tier = tier.unwrap_or(self.contacts[cslot].tier);
        self.check_queue_and_tier(queue, tier)?;
        check_requirements(&skills, &languages)?;
        let from = self.contacts[cslot].queue;
        if let ContactState::Scheduled { .. } = self.contacts[cslot].state {
            return Err(CommandError::NotYetDue(contact));
        }
        let merged = merge_context(&self.contacts[cslot].context, context);
        self.check_context(&merged)?;
        let was_waiting_here = self.contacts[cslot].is_waiting() && from == queue;
        let admitted = if was_waiting_here { queue } else { self.admit(queue)? };
        // Checks done: from here on nothing fails.
        let mut freed_agent = None;
        match self.contacts[cslot].state {
            ContactState::Waiting { .. } => self.unindex(cslot),
            ContactState::Offered { offer, .. } => {
                let o = self.offers.close(offer, OfferOutcome::Withdrawn);
                let agent = o.agent;
                self.events.push_back(Event::OfferEnded { offer, contact, agent, outcome: OfferOutcome::Withdrawn });
                freed_agent = Some(o.agent_slot);
            }
            ContactState::Connected { agent } => {
                let channel = self.contacts[cslot].channel;
                let a = &mut self.agents[agent];
                a.connected -= 1;
                a.work.retain(|&s| s != cslot);
                self.start_wrap_up(agent, contact, channel, from);
            }
            ContactState::Scheduled { .. } => unreachable!("refused above"),
        }
        let now = self.now;
        let c = &mut self.contacts[cslot];
        c.queue = admitted;
        c.tier = tier;
        c.skills = skills;
        c.languages = languages;
        c.preferred = Box::default();
        c.context = merged.into();
        c.entered_queue = now;
        c.relax = Relaxation::NONE;
        c.rank.value = rank_value(&self.cfg, admitted, tier, c.arrival, c.deadline);
        c.state = ContactState::Waiting { filed: None, hold_until: None };
        self.queues[usize::from(admitted.0)].counters.transferred_in += 1;
        self.events.push_back(Event::Transferred { contact, from, to: admitted });
        if admitted != queue {
            self.events.push_back(Event::Overflowed {
                contact,
                from: queue,
                to: admitted,
                reason: OverflowReason::QueueFull,
            });
        }
        self.settle(cslot, Trigger::ContactWaiting);
        if let Some(agent_slot) = freed_agent {
            self.release_agent_slot(agent_slot, cslot, false);
        }
        Ok(Reply::Enqueued { queue: admitted })
    }

    fn reconfigure(&mut self, cfg: RouterConfig) -> Result<Reply, CommandError> {
        cfg.validate().map_err(|e| invalid("config", e.to_string()))?;
        let names = |c: &RouterConfig| -> (Vec<String>, Vec<String>) {
            (c.queues.iter().map(|q| q.name.clone()).collect(), c.tiers.iter().map(|t| t.name.clone()).collect())
        };
        if names(&cfg) != names(&self.cfg) {
            return Err(invalid("config", "queues and tiers must keep their names and order on reload".into()));
        }
        self.cfg = cfg;
        self.offers.set_history(self.cfg.offer_history);
        // Ranks depend on policies and tier parameters: re-rank and re-check
        // every waiting contact under the new rules, in their order in line
        // (never in the order records sit in memory, which a snapshot does
        // not keep).
        let mut waiting: Vec<(Rank, u32)> =
            self.contacts.iter().filter(|(_, c)| c.is_waiting()).map(|(s, c)| (c.rank, s)).collect();
        waiting.sort_unstable();
        for (_, slot) in waiting {
            self.unindex(slot);
            let c = &mut self.contacts[slot];
            c.rank.value = rank_value(&self.cfg, c.queue, c.tier, c.arrival, c.deadline);
            c.next_wake = None;
            self.settle(slot, Trigger::ContactWaiting);
        }
        Ok(Reply::Done)
    }

    // ----- Contact lifecycle --------------------------------------------------

    /// A new contact enters its queue: preferred agents first, else the index.
    fn arrive(&mut self, slot: u32) {
        let window = self.cfg.queues[usize::from(self.contacts[slot].queue.0)].preferred_agent_window;
        if !self.contacts[slot].preferred.is_empty() && !window.is_zero() {
            if let Some(agent_slot) = self.free_preferred_agent(slot) {
                self.make_offer(slot, agent_slot, Trigger::PreferredAgent, None);
                self.agent_after_offer(agent_slot);
                return;
            }
            if let ContactState::Waiting { hold_until, .. } = &mut self.contacts[slot].state {
                *hold_until = Some(self.now + window);
            }
        }
        self.settle(slot, Trigger::ContactWaiting);
    }

    fn callback_due(&mut self, slot: u32) {
        let now = self.now;
        let c = &mut self.contacts[slot];
        let ContactState::Scheduled { due } = c.state else { return };
        let arrival = due.max(c.arrival);
        c.arrival = arrival;
        c.entered_queue = now;
        c.rank.value = rank_value(&self.cfg, c.queue, c.tier, arrival, c.deadline);
        c.state = ContactState::Waiting { filed: None, hold_until: None };
        let (contact, queue) = (c.id, c.queue);
        self.queues[usize::from(queue.0)].counters.arrived += 1;
        self.events.push_back(Event::CallbackDue { contact, queue });
        self.arrive(slot);
    }

    /// The first preferred agent, in the contact's order, who could take it now.
    fn free_preferred_agent(&mut self, slot: u32) -> Option<u32> {
        let mut skills = std::mem::take(&mut self.scratch);
        let c = &self.contacts[slot];
        let languages = c.effective(&mut skills);
        let found = c.preferred.iter().filter_map(|id| self.agent_slots.get(id).copied()).find(|&a| {
            let agent = &self.agents[a];
            agent.has_room(c.channel) && agent.qualifies(&skills) && agent.speaks_any(languages)
        });
        self.scratch = skills;
        found
    }

    /// Brings a waiting contact up to date: applies due relaxation steps, ends
    /// an expired hold, re-indexes it, looks for an agent, and schedules its
    /// next wake-up.
    fn settle(&mut self, slot: u32, trigger: Trigger) {
        debug_assert!(self.contacts[slot].is_waiting());
        self.unindex(slot);
        self.apply_due_steps(slot);
        let now = self.now;
        if let ContactState::Waiting { hold_until, .. } = &mut self.contacts[slot].state {
            if hold_until.is_some_and(|h| h <= now) {
                *hold_until = None;
            }
        }
        // Look for an agent before filing the contact: most contacts that
        // find one at once never touch the index.
        if self.route_contact(slot, trigger) {
            return;
        }
        self.index_waiting(slot);
        self.schedule_wake(slot);
    }

    fn apply_due_steps(&mut self, slot: u32) {
        loop {
            let c = &self.contacts[slot];
            let queue = &self.cfg.queues[usize::from(c.queue.0)];
            let Some(&step) = queue.relaxation.get(usize::from(c.relax.next_step)) else { return };
            if c.entered_queue + step.after > self.now {
                return;
            }
            let (contact, from, index) = (c.id, c.queue, c.relax.next_step);
            match step.action {
                RelaxAction::OverflowTo(to) if self.has_room(to) => {
                    let c = &mut self.contacts[slot];
                    c.queue = to;
                    c.entered_queue = self.now;
                    c.relax = Relaxation::NONE;
                    c.rank.value = rank_value(&self.cfg, to, c.tier, c.arrival, c.deadline);
                    self.queues[usize::from(from.0)].counters.overflowed_out += 1;
                    self.queues[usize::from(to.0)].counters.overflowed_in += 1;
                    let reason = OverflowReason::Relaxation;
                    self.events.push_back(Event::Overflowed { contact, from, to, reason });
                }
                // A full target: the contact stays where it is, nothing is lost.
                RelaxAction::OverflowTo(_) => self.contacts[slot].relax.next_step += 1,
                action => {
                    let c = &mut self.contacts[slot];
                    c.relax.apply(action);
                    c.relax.next_step += 1;
                    self.events.push_back(Event::Relaxed { contact, queue: from, step: index });
                }
            }
        }
    }

    fn schedule_wake(&mut self, slot: u32) {
        let c = &self.contacts[slot];
        let Some((at, lane)) = self.next_wake_of(c) else { return };
        if Some(at) == c.next_wake {
            return;
        }
        // A new generation: an earlier timer of this contact set for the
        // same instant stays dead, so the one that fires is always the one
        // set last, which a rebuilt router holds too.
        let gen = self.next_gen();
        let timer = Timer::ContactWake { slot, gen };
        let c = &mut self.contacts[slot];
        c.gen = gen;
        c.next_wake = Some(at);
        match lane {
            Some(lane) => {
                self.timers.schedule_in_lane(lane, at, timer, dead_timers(&self.contacts, &self.agents, &self.offers))
            }
            None => self.timers.schedule(at, timer),
        }
    }

    /// When a contact should next wake up, and the timer lane for it:
    /// callbacks have none, everything else one per queue and kind.
    fn next_wake_of(&self, c: &Contact) -> Option<(Time, Option<u64>)> {
        let step = self.cfg.queues[usize::from(c.queue.0)].relaxation.get(usize::from(c.relax.next_step));
        let next_step = step.map(|s| c.entered_queue + s.after);
        let relax_lane = lane(LANE_RELAX, c.queue.0, c.relax.next_step);
        match c.state {
            ContactState::Scheduled { due } => Some((due, None)),
            ContactState::Waiting { hold_until, .. } => match (hold_until, next_step) {
                (Some(h), Some(s)) if s < h => Some((s, Some(relax_lane))),
                (Some(h), _) => Some((h, Some(lane(LANE_HOLD, c.queue.0, 0)))),
                (None, Some(s)) => Some((s, Some(relax_lane))),
                (None, None) => None,
            },
            _ => None,
        }
    }

    /// Puts a contact whose offer ended back in line, at its old rank.
    fn return_to_queue(&mut self, slot: u32) {
        self.contacts[slot].state = ContactState::Waiting { filed: None, hold_until: None };
        self.settle(slot, Trigger::ContactWaiting);
    }

    fn remove_contact(&mut self, slot: u32) -> Contact {
        self.sessions.release(Kind::Contact, slot);
        let c = self.contacts.remove(slot).expect("contact is live");
        self.contact_slots.remove(&c.id);
        c
    }

    // ----- Indexing -----------------------------------------------------------

    /// Enters a waiting contact in the index (or in its preferred agents'
    /// holds) and counts it as waiting.
    fn index_waiting(&mut self, slot: u32) {
        let mut skills = std::mem::take(&mut self.scratch);
        let c = &self.contacts[slot];
        let ContactState::Waiting { filed, hold_until } = c.state else {
            unreachable!("only waiting contacts are indexed")
        };
        debug_assert!(filed.is_none());
        let (queue, tier, rank, arrival) = (c.queue, c.tier, c.rank, c.arrival);
        let filed = if hold_until.is_some() {
            for agent in &c.preferred {
                self.holds.entry(*agent).or_default().insert((rank, slot));
            }
            Filed::Held
        } else {
            let languages = c.effective(&mut skills);
            let reqs = Requirements { channel: c.channel, skills: &skills, languages };
            self.waiting.insert(reqs, rank, slot)
        };
        self.scratch = skills;
        let just_arrived = self.contacts[slot].entered_queue == self.now;
        let q = &mut self.queues[usize::from(queue.0)];
        if just_arrived {
            q.note_arrival(self.now, self.cfg.ewt_window, usize::from(tier.0));
        } else if q.waiting() == 0 {
            q.advance(self.now, self.cfg.ewt_window);
        }
        let place = q.positions.insert(tier, rank);
        let stamp = self.waiting_stamps.start(slot);
        q.oldest.started(WaitingSince { arrival, slot, stamp }, q.waiting(), &self.waiting_stamps);
        let c = &mut self.contacts[slot];
        c.state = ContactState::Waiting { filed: Some(filed), hold_until };
        c.place = place;
    }

    /// Takes a waiting contact out of the index and the waiting count; a no-op
    /// for a contact not yet indexed. Its requirements and rank must be those
    /// it was filed with: they change only while it is not indexed.
    fn unindex(&mut self, slot: u32) {
        let c = &self.contacts[slot];
        let ContactState::Waiting { filed: Some(filed), hold_until } = c.state else { return };
        let (queue, tier, rank, place) = (c.queue, c.tier, c.rank, c.place);
        match filed {
            Filed::Held => {
                for agent in &c.preferred {
                    if let Some(set) = self.holds.get_mut(agent) {
                        set.remove(&(rank, slot));
                        if set.is_empty() {
                            self.holds.remove(agent);
                        }
                    }
                }
            }
            Filed::Level { .. } | Filed::Bucket(_) => {
                let lists =
                    || Lists { channel: c.channel, skill: c.skills[0].skill, languages: c.effective_languages() };
                self.waiting.remove(filed, lists, rank, slot);
            }
        }
        let q = &mut self.queues[usize::from(queue.0)];
        if q.waiting() == 1 {
            q.advance(self.now, self.cfg.ewt_window);
        }
        let filed = q.positions.remove(tier, rank, place);
        debug_assert!(filed, "a waiting contact is in its queue's order");
        self.waiting_stamps.stop(slot);
        q.oldest.stopped(slot, &self.waiting_stamps);
        self.contacts[slot].state = ContactState::Waiting { filed: None, hold_until };
    }

    // ----- Matching -----------------------------------------------------------

    /// Contact side: offers a waiting contact that is not held to the best
    /// agent with room, if there is one.
    fn route_contact(&mut self, slot: u32, trigger: Trigger) -> bool {
        let c = &self.contacts[slot];
        if !matches!(c.state, ContactState::Waiting { hold_until: None, .. }) {
            return false;
        }
        let policy = self.cfg.queues[usize::from(c.queue.0)].agent_policy;
        let mut skills = std::mem::take(&mut self.scratch);
        let languages = c.effective(&mut skills);
        let mut weighed = self.cfg.explain.then(Vec::new);
        let found = self.pools.find(&self.agents, c.channel, &skills, languages, policy, weighed.as_mut());
        self.scratch = skills;
        let Some(best) = found else { return false };
        let explanation = weighed.map(|w| {
            let (contact, rank) = (c.id, c.rank.value);
            let candidate = |a: &AgentCandidate| Candidate {
                contact,
                agent: self.agents[a.slot].id,
                rank,
                proficiency: a.proficiency,
                occupancy: a.occupancy,
                idle_order: a.order,
            };
            let mut candidates = vec![candidate(&best)];
            candidates.extend(w.iter().filter(|a| **a != best).map(candidate));
            Box::new(Explanation { trigger, rule: Rule::Agent(policy), candidates })
        });
        self.make_offer(slot, best.slot, trigger, explanation);
        self.agent_after_offer(best.slot);
        true
    }

    /// Agent side: the best waiting contact this agent qualifies for and has
    /// room for, by rank: (rank, contact slot). Held contacts count for their
    /// preferred agents. With `weighed`, every candidate the search weighs is
    /// listed there too, for an explanation.
    fn best_contact_for(&mut self, agent_slot: u32, weighed: Option<&mut Vec<(Rank, u32)>>) -> Option<(Rank, u32)> {
        let a = &self.agents[agent_slot];
        // The best single-skill contact usually wins: its record, read
        // first when it is taken, loads while the search goes on.
        let contacts = &self.contacts;
        let mut best = self.waiting.best_for(a, |slot| contacts.prefetch(slot));
        let mut held_best = None;
        if !self.holds.is_empty() {
            if let Some(held) = self.holds.get(&a.id) {
                let mut skills = std::mem::take(&mut self.scratch);
                // Held contacts in rank order: the first that fits is this
                // agent's best of them.
                held_best = held.iter().copied().find(|&(_, slot)| {
                    let c = &self.contacts[slot];
                    let languages = c.effective(&mut skills);
                    a.has_room(c.channel) && a.qualifies(&skills) && a.speaks_any(languages)
                });
                self.scratch = skills;
            }
        }
        if let Some(held) = held_best {
            best = Some(best.map_or(held, |b| b.min(held)));
        }
        if let Some(weighed) = weighed {
            self.waiting.weigh_for(a, weighed);
            weighed.extend(held_best);
        }
        best
    }

    /// An agent gained room: give it work while it has room and something
    /// qualifies, then file it in the pools.
    fn agent_gained_room(&mut self, slot: u32) {
        loop {
            if !self.agents[slot].has_room_anywhere() {
                break;
            }
            let mut weighed = self.cfg.explain.then(Vec::new);
            let Some((_, contact_slot)) = self.best_contact_for(slot, weighed.as_mut()) else { break };
            let explanation = weighed.map(|mut w| {
                w.sort_unstable();
                let agent = self.agents[slot].id;
                let proficiency = |c: &Contact| self.agents[slot].proficiency(c.skills[0].skill);
                let candidates = w
                    .iter()
                    .map(|&(rank, s)| {
                        let c = &self.contacts[s];
                        Candidate {
                            contact: c.id,
                            agent,
                            rank: rank.value,
                            proficiency: proficiency(c),
                            occupancy: self.agents[slot].usage[c.channel.index()],
                            idle_order: self.pools.order(slot),
                        }
                    })
                    .collect();
                let policy = self.cfg.queues[usize::from(self.contacts[contact_slot].queue.0)].contact_policy;
                Box::new(Explanation { trigger: Trigger::AgentAvailable, rule: Rule::Contact(policy), candidates })
            });
            self.make_offer(contact_slot, slot, Trigger::AgentAvailable, explanation);
        }
        self.repool(slot);
        self.sync_agent_state(slot);
    }

    /// An agent lost room (not ready): its pool entries become stale.
    fn agent_lost_room(&mut self, slot: u32) {
        self.repool(slot);
        self.sync_agent_state(slot);
    }

    /// After an offer from the contact side: the agent's workload changed.
    fn agent_after_offer(&mut self, slot: u32) {
        self.repool(slot);
        self.sync_agent_state(slot);
    }

    /// Invalidates the agent's pool entries and files it again if it has room.
    fn repool(&mut self, slot: u32) {
        if self.agents[slot].has_room_anywhere() {
            let order = self.next_idle_order;
            self.next_idle_order += 1;
            self.pools.push(&self.agents, slot, order);
        } else {
            self.pools.invalidate(slot);
        }
    }

    // ----- Offers -------------------------------------------------------------

    fn make_offer(
        &mut self,
        contact_slot: u32,
        agent_slot: u32,
        trigger: Trigger,
        explanation: Option<Box<Explanation>>,
    ) {
        let filed = matches!(self.contacts[contact_slot].state, ContactState::Waiting { filed: Some(_), .. });
        self.unindex(contact_slot);
        let c = &self.contacts[contact_slot];
        let q = &mut self.queues[usize::from(c.queue.0)];
        if self.now > c.entered_queue {
            // It waited: its place in line is freed for those behind.
            q.note_departure(self.now, self.cfg.ewt_window, self.now.since(c.entered_queue));
        } else if !filed {
            // Offered as it arrived: an arrival all the same (those filed
            // were counted as they were).
            q.note_arrival(self.now, self.cfg.ewt_window, usize::from(c.tier.0));
        }
        let agent = &mut self.agents[agent_slot];
        let c = &self.contacts[contact_slot];
        let expires_at = self.now + self.cfg.queues[usize::from(c.queue.0)].offer_timeout;
        let offer = self.offers.open(Offer { contact_slot, contact: c.id, agent_slot, agent: agent.id, expires_at });
        agent.usage[c.channel.index()] += 1;
        agent.ringing += 1;
        agent.work.push(contact_slot);
        let agent_id = agent.id;
        // Stale pool entries until the caller re-pools the agent.
        self.pools.invalidate(agent_slot);
        self.queues[usize::from(c.queue.0)].counters.offered += 1;
        self.timers.schedule_in_lane(
            lane(LANE_OFFER, c.queue.0, 0),
            expires_at,
            Timer::OfferExpiry { offer },
            dead_timers(&self.contacts, &self.agents, &self.offers),
        );
        self.events.push_back(Event::Offered {
            offer,
            contact: c.id,
            agent: agent_id,
            queue: c.queue,
            tier: c.tier,
            channel: c.channel,
            waited: self.now.since(c.arrival),
            expires_at,
            trigger,
            explanation,
        });
        self.contacts[contact_slot].state = ContactState::Offered { offer, agent: agent_slot };
    }

    /// Ends a pending offer that was not accepted: rejected or rang out sends
    /// the agent not ready (RONA) and the contact back to its place.
    fn end_offer(&mut self, offer: OfferId, outcome: OfferOutcome) {
        let o = self.offers.close(offer, outcome);
        let contact = self.contacts[o.contact_slot].id;
        self.events.push_back(Event::OfferEnded { offer, contact, agent: o.agent, outcome });
        let reason = match outcome {
            OfferOutcome::Expired => NotReadyReason::Rona,
            _ => NotReadyReason::Declined,
        };
        if outcome == OfferOutcome::Expired {
            let queue = self.contacts[o.contact_slot].queue;
            self.queues[usize::from(queue.0)].counters.rona += 1;
        }
        // The contact takes its place in line back, if the offer took it
        // from the line (offered later than it entered the queue).
        let c = &self.contacts[o.contact_slot];
        let qi = usize::from(c.queue.0);
        let offered_at = Time::from_micros(
            o.expires_at.as_micros().saturating_sub(self.cfg.queues[qi].offer_timeout.as_micros() as u64),
        );
        if offered_at > c.entered_queue {
            self.queues[qi].note_return(self.now, self.cfg.ewt_window);
        }
        // Not ready first, so the contact cannot be offered straight back.
        self.agents[o.agent_slot].presence = Presence::NotReady(reason);
        self.release_agent_slot(o.agent_slot, o.contact_slot, true);
        self.return_to_queue(o.contact_slot);
    }

    /// Frees the channel slot an offered contact held on an agent.
    fn release_agent_slot(&mut self, agent_slot: u32, contact_slot: u32, quiet: bool) {
        let channel = self.contacts.get(contact_slot).map(|c| c.channel);
        let agent = &mut self.agents[agent_slot];
        if let Some(pos) = agent.work.iter().position(|&s| s == contact_slot) {
            agent.work.swap_remove(pos);
            agent.ringing -= 1;
            agent.usage[channel.expect("offered contact is live").index()] -= 1;
        }
        if quiet {
            self.agent_lost_room(agent_slot);
        } else {
            self.agent_gained_room(agent_slot);
        }
    }

    fn start_wrap_up(&mut self, slot: u32, contact: ContactId, channel: Channel, queue: QueueId) {
        let wrap_up = self.cfg.queues[usize::from(queue.0)].wrap_up;
        if wrap_up.is_zero() {
            self.agents[slot].usage[channel.index()] -= 1;
            self.agent_gained_room(slot);
        } else {
            let ends_at = self.now + wrap_up;
            self.agents[slot].wrap_ups.push(WrapUp { contact, channel, queue, ends_at });
            let timer = Timer::WrapUpEnd { agent_slot: slot, contact };
            let dead = dead_timers(&self.contacts, &self.agents, &self.offers);
            self.timers.schedule_in_lane(lane(LANE_WRAP_UP, queue.0, 0), ends_at, timer, dead);
            self.sync_agent_state(slot);
        }
    }

    fn end_wrap_up(&mut self, slot: u32, contact: ContactId) {
        let agent = &mut self.agents[slot];
        let pos = agent.wrap_ups.iter().position(|w| w.contact == contact).expect("wrap-up exists");
        let w = agent.wrap_ups.swap_remove(pos);
        agent.usage[w.channel.index()] -= 1;
        let id = agent.id;
        self.events.push_back(Event::WrapUpEnded { contact, agent: id });
        self.agent_gained_room(slot);
    }

    // ----- Helpers ------------------------------------------------------------

    /// Emits a state change if the agent's state differs from the last one
    /// reported, keeping the per-state counts.
    fn sync_agent_state(&mut self, slot: u32) {
        let agent = &mut self.agents[slot];
        let state = agent.state();
        if agent.reported == Some(state) {
            return;
        }
        agent.reported_since = self.now;
        if let Some(before) = agent.reported.replace(state) {
            self.agent_states[before.index()] -= 1;
        }
        self.agent_states[state.index()] += 1;
        self.events.push_back(Event::AgentStateChanged { agent: agent.id, state });
    }

    fn agent_slot(&self, id: AgentId) -> Result<u32, CommandError> {
        self.agent_slots.get(&id).copied().ok_or(CommandError::UnknownAgent(id))
    }

    fn contact_slot(&self, id: ContactId) -> Result<u32, CommandError> {
        self.contact_slots.get(&id).copied().ok_or(CommandError::UnknownContact(id))
    }

    /// A context within `max_context_entries` and `max_context_bytes`.
    fn check_context(&self, context: &[(String, String)]) -> Result<(), CommandError> {
        let (entries, bytes) = (context.len(), context.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>());
        let (max_entries, max_bytes) = (self.cfg.max_context_entries, self.cfg.max_context_bytes);
        if entries > usize::from(max_entries) || bytes > max_bytes as usize {
            return Err(CommandError::ContextTooLarge { entries, bytes, max_entries, max_bytes });
        }
        Ok(())
    }

    fn check_queue_and_tier(&self, queue: QueueId, tier: TierId) -> Result<(), CommandError> {
        if usize::from(queue.0) >= self.cfg.queues.len() {
            return Err(CommandError::UnknownQueue(queue));
        }
        if usize::from(tier.0) >= self.cfg.tiers.len() {
            return Err(CommandError::UnknownTier(tier));
        }
        Ok(())
    }

    fn has_room(&self, queue: QueueId) -> bool {
        let max = self.cfg.queues[usize::from(queue.0)].max_waiting;
        max.is_none_or(|m| self.queues[usize::from(queue.0)].waiting() < m)
    }

    /// The queue a new contact goes to: the one asked for, or where a full
    /// queue overflows to (following the chain, never in circles).
    fn admit(&self, queue: QueueId) -> Result<QueueId, CommandError> {
        let mut at = queue;
        for _ in 0..self.cfg.queues.len() {
            if self.has_room(at) {
                return Ok(at);
            }
            match self.cfg.queues[usize::from(at.0)].when_full {
                WhenFull::Refuse => break,
                WhenFull::OverflowTo(next) => at = next,
            }
        }
        Err(CommandError::QueueFull(queue))
    }

    fn next_gen(&mut self) -> u32 {
        self.next_gen = self.next_gen.wrapping_add(1);
        self.next_gen
    }
}

fn invalid(field: &'static str, reason: String) -> CommandError {
    CommandError::Invalid { field, reason }
}

/// Checks an agent's profile, sorting its skills by id.
fn check_profile(
    skills: &mut [(SkillId, u8)],
    languages: &[LanguageId],
    capacity: [u8; Channel::COUNT],
) -> Result<(), CommandError> {
    if skills.len() > MAX_SKILLS_PER_AGENT {
        return Err(invalid("skills", format!("at most {MAX_SKILLS_PER_AGENT}")));
    }
    if languages.len() > MAX_LANGUAGES_PER_AGENT {
        return Err(invalid("languages", format!("at most {MAX_LANGUAGES_PER_AGENT}")));
    }
    skills.sort_unstable_by_key(|&(s, _)| s);
    if let Some(w) = skills.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(CommandError::DuplicateSkill(w[0].0));
    }
    if let Some(&(s, p)) = skills.iter().find(|&&(_, p)| !(MIN_PROFICIENCY..=MAX_PROFICIENCY).contains(&p)) {
        return Err(invalid("proficiency", format!("{p} for skill {s} is not in 1..=10")));
    }
    check_unique_languages(languages)?;
    if languages.iter().any(|l| l.0 == ANY_LANGUAGE) {
        return Err(invalid("languages", format!("language id {ANY_LANGUAGE} is reserved")));
    }
    if capacity[Channel::Voice.index()] > 1 {
        return Err(invalid("capacity", "voice capacity is 0 or 1".into()));
    }
    if capacity.iter().all(|&c| c == 0) {
        return Err(invalid("capacity", "an agent needs room for at least one channel".into()));
    }
    Ok(())
}

fn check_unique_languages(languages: &[LanguageId]) -> Result<(), CommandError> {
    for (i, l) in languages.iter().enumerate() {
        if languages[..i].contains(l) {
            return Err(CommandError::DuplicateLanguage(*l));
        }
    }
    Ok(())
}

/// Validates a contact's requirements. The first skill is the primary one.
fn check_requirements(skills: &[SkillReq], languages: &[LanguageId]) -> Result<(), CommandError> {
    if skills.is_empty() {
        return Err(invalid("skills", "a contact needs at least one skill".into()));
    }
    if skills.len() > MAX_SKILLS_PER_CONTACT {
        return Err(invalid("skills", format!("at most {MAX_SKILLS_PER_CONTACT}")));
    }
    if languages.len() > MAX_LANGUAGES_PER_CONTACT {
        return Err(invalid("languages", format!("at most {MAX_LANGUAGES_PER_CONTACT}")));
    }
    if let Some(r) = skills.iter().find(|r| !(MIN_PROFICIENCY..=MAX_PROFICIENCY).contains(&r.min_proficiency)) {
        return Err(invalid(
            "min_proficiency",
            format!("{} for skill {} is not in 1..=10", r.min_proficiency, r.skill),
        ));
    }
    for (i, r) in skills.iter().enumerate() {
        if skills[..i].iter().any(|o| o.skill == r.skill) {
            return Err(CommandError::DuplicateSkill(r.skill));
        }
    }
    check_unique_languages(languages)?;
    if languages.iter().any(|l| l.0 == ANY_LANGUAGE) {
        return Err(invalid("languages", format!("language id {ANY_LANGUAGE} is reserved")));
    }
    Ok(())
}

/// Which timers can no longer do anything, for [`Timers::schedule_in_lane`]
/// to drop early: the mirror of [`Router::fire`]'s checks, restricted to
/// what cannot change back (offer ids are never reused; a contact's
/// `next_wake` returning to `at` comes with a timer of its own; so does a new
/// wrap-up).
fn dead_timers<'a>(
    contacts: &'a Slab<Contact>,
    agents: &'a Slab<Agent>,
    offers: &'a Offers,
) -> impl FnMut(Time, Timer) -> bool + 'a {
    move |at, timer| match timer {
        Timer::ContactWake { slot, gen } => contacts.get(slot).is_none_or(|c| c.gen != gen || c.next_wake != Some(at)),
        Timer::OfferExpiry { offer } => offers.pending(offer).is_none(),
        Timer::WrapUpEnd { agent_slot, contact } => {
            agents.get(agent_slot).is_none_or(|a| !a.wrap_ups.iter().any(|w| w.contact == contact))
        }
        // Never in a lane.
        Timer::SessionGrace { .. } => false,
    }
}

/// A transfer's context over the one carried: key by key, a new value
/// replaces the old, a new key is added at the end.
fn merge_context(carried: &[(String, String)], added: Vec<(String, String)>) -> Vec<(String, String)> {
    let mut merged = carried.to_vec();
    for (k, v) in added {
        match merged.iter_mut().find(|(ck, _)| *ck == k) {
            Some(entry) => entry.1 = v,
            None => merged.push((k, v)),
        }
    }
    merged
}
