//! The router: the state machine that owns agents, contacts, offers and
//! timers, and turns commands into decisions.
//!
//! This file holds the state, the inputs (`handle`, `handle_timeout`, as in
//! quinn-proto) and outputs (`poll_event`, `poll_timeout`), timers fired,
//! and the checks every part shares. The rest is one `impl Router` per
//! concern, where a reader looks for it:
//! - [`agents`]: log in and out, presence, accept, reject, complete, wrap-up;
//! - [`contacts`]: enqueue, abandon, transfer, reconfigure, and a contact's
//!   life in its queue (arrival, relaxation steps, wake-ups);
//! - [`matching`]: the waiting index kept up to date, and both searches with
//!   their explanations;
//! - [`offers`]: offers made and ended;
//! - [`ownership`]: sessions and what they own;
//! - [`queries`]: counts, statistics, wait estimates, the snapshot;
//! - [`views`]: the supervisor's pages; [`restore`]: a router from records.
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
use crate::slab::{AgentSlot, ContactSlot, Slab};
use crate::slots_by_id::SlotsById;
use crate::snapshot::{AgentView, ContactView, SessionView, Snapshot};
use crate::stats::{EwtMethod, QueueState, QueueStats, WaitEstimate, WARM_UP_DEPARTURES};
use crate::time::Time;
use crate::timers::{lane, Timer, Timers, LANE_HOLD, LANE_OFFER, LANE_RELAX, LANE_WRAP_UP};
use crate::waiting::{Lists, Requirements, WaitingIndex, ANY_LANGUAGE};

mod agents;
mod contacts;
mod matching;
mod offers;
mod ownership;
mod queries;
mod restore;
pub mod views;
pub use restore::Restore;

/// How an agent leaves: at its desktop's request (refused while it has a
/// connected contact), or forced — its desktop gone, the session expired,
/// a drain — when its connected contacts end with it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Leaving {
    Asked,
    Forced,
}

/// Who ended a connected contact: the agent (`Complete`) or the caller,
/// who hung up (an `Abandon` of a connected contact).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum EndedBy {
    Agent,
    Caller,
}

/// What an agent does once an offer it held has ended: look for work at
/// once, or not (it was just sent not ready, or has lost its room).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum AfterOffer {
    LookForWork,
    Rest,
}

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
    agents: Slab<Agent, AgentSlot>,
    agent_slots: SlotsById<AgentId, AgentSlot>,
    contacts: Slab<Contact, ContactSlot>,
    contact_slots: SlotsById<ContactId, ContactSlot>,
    waiting: WaitingIndex,
    pools: AgentPools,
    /// Contacts held for a preferred agent, per agent id (logged in or not).
    holds: KeyedMap<AgentId, BTreeSet<(Rank, ContactSlot)>>,
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
            Command::AgentLogout { agent } => self.logout(agent, Leaving::Asked),
            Command::AgentDisconnected { agent } => self.logout(agent, Leaving::Forced),
            Command::AgentReady { agent } => self.set_presence(agent, Presence::Ready),
            Command::AgentNotReady { agent, reason } => self.set_presence(agent, Presence::NotReady(reason)),
            Command::Accept { agent, offer } => self.accept(agent, offer),
            Command::Reject { agent, offer } => self.reject(agent, offer),
            Command::Complete { agent, contact } => self.complete(agent, contact, EndedBy::Agent),
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

    // ----- Helpers ------------------------------------------------------------

    /// Emits a state change if the agent's state differs from the last one
    /// reported, keeping the per-state counts.
    fn sync_agent_state(&mut self, slot: AgentSlot) {
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

    fn agent_slot(&self, id: AgentId) -> Result<AgentSlot, CommandError> {
        self.agent_slots.get(&id).copied().ok_or(CommandError::UnknownAgent(id))
    }

    fn contact_slot(&self, id: ContactId) -> Result<ContactSlot, CommandError> {
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
    contacts: &'a Slab<Contact, ContactSlot>,
    agents: &'a Slab<Agent, AgentSlot>,
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
