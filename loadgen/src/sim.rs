//! The virtual-time engine: the routing core the daemon runs, driven by a
//! discrete-event clock instead of a wall clock.
//!
//! Callers arrive — from a trace, or from a Poisson process whose rate may
//! change through the day (by thinning) — and hang up if nobody answered
//! within their patience. Agents work their shifts, take their breaks,
//! answer an offer after an answer delay or let it ring out with the
//! scenario's RONA probability, handle the contact and wrap up as the queue
//! says. Every routing decision is the router's. Same scenario and seed,
//! same run.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::time::Duration;

use ccr_core::{
    AgentId, AgentState, Channel, Command, ContactId, ContactSpec, Event, EwtMethod, LanguageId, NotReadyReason,
    OfferId, QueueId, Router, SkillReq, TierId, Time,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha12Rng;

use crate::scenario::{Dist, RateProfile, Scenario, Traffic};

/// One caller, as a trace row holds it.
#[derive(Clone, Debug, PartialEq)]
pub struct Caller {
    /// Since the start of the run (midnight of day one).
    pub arrival: Duration,
    pub channel: Channel,
    pub queue: QueueId,
    pub tier: TierId,
    pub skills: Vec<SkillReq>,
    pub languages: Vec<LanguageId>,
    /// Talk time once answered.
    pub handle: Duration,
    /// Hangs up after this long unanswered; `None`: never.
    pub patience: Option<Duration>,
    /// The agent's delay in answering this one; `None`: the agent's own.
    pub answer_delay: Option<Duration>,
}

/// What happened to one contact.
#[derive(Clone, Debug)]
pub struct ContactRecord {
    pub queue: QueueId,
    pub tier: TierId,
    pub arrival: Time,
    /// Wait until an agent accepted it.
    pub answered: Option<Duration>,
    /// Wait until the caller hung up, and whether that was a short abandon.
    pub abandoned: Option<(Duration, bool)>,
    /// No agent took it at once: it queued.
    pub queued: bool,
    /// The wait estimates given at arrival, for contacts that queued.
    pub estimate: Option<Estimates>,
}

/// Wait estimates given to a contact on arrival.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Estimates {
    /// ccrd's (`Router::estimate_wait`).
    pub ccr: Duration,
    /// Position × (mean handle time + wrap-up) ÷ agents staffed (logged in,
    /// not on a break) who hold the contact's first skill.
    pub naive: Duration,
    /// The best predictor the scenario's model allows, where it is
    /// Markovian ([`ExactModel`]).
    pub exact: Option<Duration>,
    /// ccrd said its estimate was uncertain (`EwtMethod::Stalled`).
    pub uncertain: bool,
}

/// A scenario simple enough that queueing theory knows the expected wait
/// given the line ahead: Poisson arrivals at a constant rate, exponential
/// handle times and patience, agents who all serve every contact, around
/// the clock, answering at once, no wrap-up; one tier, or strict tiers
/// without abandonment.
#[derive(Clone, Debug)]
pub struct ExactModel {
    /// Service rate of all agents together, per second (cμ).
    pub capacity: f64,
    /// Abandonment rate of one waiting contact, per second (θ).
    pub abandonment: f64,
    /// Arrivals per second of the tiers above each tier (strict tiers),
    /// by tier id.
    pub higher: Vec<f64>,
}

impl ExactModel {
    /// The model of `scenario`, if it has one.
    pub fn of(scenario: &Scenario) -> Option<ExactModel> {
        let Traffic::Synthetic { rate, handle_time, patience, mix } = &scenario.traffic else { return None };
        let constant = rate.0.iter().all(|&(_, r)| r == rate.0[0].1);
        let Dist::Exponential { mean: handle } = *handle_time else { return None };
        let theta = match patience {
            None => 0.0,
            Some(Dist::Exponential { mean }) if !mean.is_zero() => 1.0 / mean.as_secs_f64(),
            Some(_) => return None,
        };
        let routing = &scenario.ccrd.router;
        let plain_agents = scenario.agents.iter().all(|g| {
            g.shift.is_none()
                && g.breaks.is_empty()
                && g.answer_delay == Dist::Fixed(Duration::ZERO)
                && g.rona_probability == 0.0
        });
        let first = mix.first()?;
        let one_line =
            mix.iter().all(|t| t.queue == first.queue && t.skills == first.skills && t.languages == first.languages);
        let queue = &routing.queues[usize::from(first.queue.0)];
        if !constant || !plain_agents || !one_line || !queue.wrap_up.is_zero() || handle.is_zero() {
            return None;
        }
        let serves = |g: &&crate::scenario::AgentGroup| {
            first.skills.iter().all(|r| g.profile.skills.iter().any(|&(s, p)| s == r.skill && p >= r.min_proficiency))
                && (first.languages.is_empty() || first.languages.iter().any(|l| g.profile.languages.contains(l)))
        };
        // Agents who cannot serve the line take nothing; those who can serve only it.
        let agents: u32 = scenario.agents.iter().filter(serves).map(|g| g.count).sum();
        let tiers: Vec<u8> = mix.iter().map(|t| t.tier.0).collect();
        let several_tiers = tiers.iter().any(|&t| t != tiers[0]);
        if agents == 0
            || (several_tiers && (queue.contact_policy != ccr_core::ContactPolicy::StrictTier || theta > 0.0))
        {
            return None;
        }
        let per_second = rate.0[0].1 / 3600.0;
        let total: f64 = mix.iter().map(|t| t.weight).sum();
        let mut higher = vec![0.0; routing.tiers.len()];
        for t in mix {
            // Strict tiers: a lower tier id ranks first.
            for h in higher.iter_mut().skip(usize::from(t.tier.0) + 1) {
                *h += per_second * t.weight / total;
            }
        }
        Some(ExactModel { capacity: f64::from(agents) / handle.as_secs_f64(), abandonment: theta, higher })
    }

    /// E[wait | answered] of a contact of `tier` with `ahead` before it, all
    /// agents busy: stage by stage, Σ 1/(cμ + (i + 1)θ) for i = 0..=ahead
    /// (its own patience outlasting each stage tilts it by θ; the Erlang A
    /// ASA's stages), or (n + 1)/(cμ − λ_higher) under strict tiers.
    pub fn expected_wait(&self, ahead: u32, tier: TierId) -> Option<Duration> {
        let drain = self.capacity - self.higher.get(usize::from(tier.0)).copied().unwrap_or(0.0);
        if drain <= 0.0 {
            return None;
        }
        let wait: f64 = (0..=ahead).map(|i| 1.0 / (drain + f64::from(i + 1) * self.abandonment)).sum();
        Some(Duration::from_secs_f64(wait))
    }
}

/// A whole run.
#[derive(Clone, Debug)]
pub struct Run {
    /// Contacts that arrived after the warm-up, in arrival order.
    pub contacts: Vec<ContactRecord>,
    /// Time agents spent per state after the warm-up ([`AgentState::index`]).
    pub agent_time: [Duration; 6],
    /// Contacts waiting, sampled every minute after the warm-up: (time, count).
    pub waiting: Vec<(Time, u32)>,
    /// Agents staffed (logged in, not on a break), sampled with `waiting`.
    pub staffed: Vec<(Time, u32)>,
    /// Time per state of each agent group of the scenario, after the warm-up.
    pub group_time: Vec<[Duration; 6]>,
    /// What routing did after the warm-up, beyond offers.
    pub routing: RoutingCounts,
    /// Inputs the router handled (commands and timer firings).
    pub decisions: u64,
    pub warm_up: Duration,
    pub duration: Duration,
}

/// Routing events after the warm-up.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RoutingCounts {
    pub overflows: u64,
    pub relaxation_steps: u64,
    /// Offers that rang out (redirect on no answer).
    pub ronas: u64,
    pub transfers: u64,
}

/// Share of staffed time occupied (ringing, talking, wrapping up), from the
/// time spent per state.
pub fn occupancy(time: &[Duration; 6]) -> f64 {
    let t = |s: usize| time[s].as_secs_f64();
    let (available, reserved, busy, wrap_up) = (t(2), t(3), t(4), t(5));
    let staffed = available + reserved + busy + wrap_up;
    if staffed == 0.0 {
        0.0
    } else {
        (reserved + busy + wrap_up) / staffed
    }
}

impl Run {
    /// Share of staffed time agents were occupied (ringing, talking, wrapping up).
    pub fn occupancy(&self) -> f64 {
        occupancy(&self.agent_time)
    }
}

/// Agents on duty per group, interval by interval: a staffing plan, worked
/// in place of the scenario's shifts and breaks (`crate::staffing`).
#[derive(Clone, Debug)]
pub struct Roster {
    pub width: Duration,
    /// `counts[interval][group]`; past the last interval, the last holds.
    pub counts: Vec<Vec<u32>>,
}

impl Roster {
    fn on_duty(&self, interval: usize, group: usize) -> u32 {
        let at = interval.min(self.counts.len().saturating_sub(1));
        self.counts.get(at).and_then(|c| c.get(group)).copied().unwrap_or(0)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Action {
    Arrival,
    Accept {
        agent: AgentId,
        offer: OfferId,
    },
    Complete {
        agent: AgentId,
        contact: ContactId,
    },
    HangUp {
        contact: ContactId,
    },
    ShiftStart {
        agent: AgentId,
    },
    ShiftEnd {
        agent: AgentId,
    },
    BreakStart {
        agent: AgentId,
    },
    BreakEnd {
        agent: AgentId,
    },
    /// An agent sent not ready by a RONA makes itself ready again.
    RonaRecovered {
        agent: AgentId,
    },
    /// A roster's interval starts: agents come on or go off duty.
    Restaff {
        interval: usize,
    },
    Sample,
}

/// Callers one after another, from a trace or drawn at random.
#[derive(Clone)]
enum Arrivals<'a> {
    Trace(std::slice::Iter<'a, Caller>),
    Synthetic,
}

/// A run in progress. Cloning it forks the run: the clone goes on from the
/// same state with the same random streams, which is how staffing tries
/// an interval's candidates.
#[derive(Clone)]
pub(crate) struct Engine<'a> {
    scenario: &'a Scenario,
    /// Staffing by interval in place of the scenario's shifts and breaks.
    roster: Option<Roster>,
    /// A roster's agents, group by group, in the order they come on duty.
    pool: Vec<Vec<AgentId>>,
    next_agent: u64,
    router: Router,
    /// Draws the traffic; agents' behaviour has its own stream, so that
    /// every policy sees the same callers.
    traffic_rng: ChaCha12Rng,
    rng: ChaCha12Rng,
    arrivals: Arrivals<'a>,
    /// The caller whose `Arrival` is scheduled.
    next: Option<Caller>,
    pending: BinaryHeap<Reverse<(Time, u64, Action)>>,
    seq: u64,
    next_contact: u64,
    /// Contact id → index in `records`, and its caller's handle time and answer delay.
    contacts: HashMap<ContactId, (usize, Duration, Option<Duration>)>,
    records: Vec<ContactRecord>,
    /// Agent id → its group in the scenario.
    group_of: HashMap<AgentId, usize>,
    logged_in: HashSet<AgentId>,
    /// Shift over, logging out once the current contact is done.
    leaving: HashSet<AgentId>,
    on_break: HashSet<AgentId>,
    state_since: HashMap<AgentId, (AgentState, Time)>,
    group_time: Vec<[Duration; 6]>,
    routing: RoutingCounts,
    waiting: Vec<(Time, u32)>,
    staffed_samples: Vec<(Time, u32)>,
    decisions: u64,
    /// Agents staffed (logged in, not on a break, not leaving), and how
    /// many of them hold each skill: the naive estimate's.
    staffed: HashSet<AgentId>,
    staffed_by_skill: HashMap<ccr_core::SkillId, u32>,
    mean_handle: Duration,
    exact: Option<ExactModel>,
}

/// Runs `scenario` in virtual time.
pub fn simulate(scenario: &Scenario) -> Result<Run, ccr_core::ConfigErrors> {
    let mut engine = Engine::new(scenario, None)?;
    engine.advance(Time::ZERO + scenario.duration + Duration::from_micros(1));
    Ok(engine.finish())
}

/// The callers of a scenario's traffic over its duration, without routing
/// them: what `ccr-loadgen generate` writes as a trace.
pub fn callers(scenario: &Scenario) -> Vec<Caller> {
    match &scenario.traffic {
        Traffic::Trace(callers) => callers.iter().filter(|c| c.arrival <= scenario.duration).cloned().collect(),
        Traffic::Synthetic { .. } => {
            let mut rng = ChaCha12Rng::seed_from_u64(scenario.seed);
            let mut out = Vec::new();
            let mut t = Duration::ZERO;
            while let Some(c) = draw(scenario, &mut rng, t) {
                t = c.arrival;
                out.push(c);
            }
            out
        }
    }
}

/// The next synthetic caller after `after`, or `None` past the run's end.
fn draw(scenario: &Scenario, rng: &mut ChaCha12Rng, after: Duration) -> Option<Caller> {
    let Traffic::Synthetic { rate, handle_time, patience, mix } = &scenario.traffic else { return None };
    let arrival = next_arrival(rate, rng, after, scenario.duration)?;
    let total: f64 = mix.iter().map(|t| t.weight).sum();
    let mut x = rng.random::<f64>() * total;
    let template = mix
        .iter()
        .find(|t| {
            let hit = x < t.weight;
            x -= t.weight;
            hit
        })
        .unwrap_or(&mix[mix.len() - 1]);
    Some(Caller {
        arrival,
        channel: template.channel,
        queue: template.queue,
        tier: template.tier,
        skills: template.skills.clone(),
        languages: template.languages.clone(),
        handle: handle_time.sample(rng),
        patience: patience.map(|p| p.sample(rng)),
        answer_delay: None,
    })
}

/// Thinning: candidates at the highest rate, kept in proportion to the rate
/// at their time.
fn next_arrival(rate: &RateProfile, rng: &mut ChaCha12Rng, after: Duration, end: Duration) -> Option<Duration> {
    let max = rate.max_rate();
    let mut t = after;
    loop {
        let gap: f64 = -(1.0 - rng.random::<f64>()).ln() / max;
        t += Duration::from_secs_f64(gap);
        if t > end {
            return None;
        }
        if rng.random::<f64>() * max <= rate.rate_at(t) {
            return Some(t);
        }
    }
}

const DAY: Duration = RateProfile::DAY;
/// Seeds the agents' random stream apart from the traffic's.
const AGENT_STREAM: u64 = 0x6167_656e_7473;

impl<'a> Engine<'a> {
    /// A run of `scenario` at its start, its agents working their shifts,
    /// or `roster` instead.
    pub(crate) fn new(scenario: &'a Scenario, roster: Option<Roster>) -> Result<Self, ccr_core::ConfigErrors> {
        let router = Router::new(scenario.ccrd.router.clone())?;
        let arrivals = match &scenario.traffic {
            Traffic::Trace(callers) => Arrivals::Trace(callers.iter()),
            Traffic::Synthetic { .. } => Arrivals::Synthetic,
        };
        let mut engine = Engine {
            scenario,
            roster,
            pool: vec![Vec::new(); scenario.agents.len()],
            next_agent: 0,
            router,
            traffic_rng: ChaCha12Rng::seed_from_u64(scenario.seed),
            rng: ChaCha12Rng::seed_from_u64(scenario.seed ^ AGENT_STREAM),
            arrivals,
            next: None,
            pending: BinaryHeap::new(),
            seq: 0,
            next_contact: 1,
            contacts: HashMap::new(),
            records: Vec::new(),
            group_of: HashMap::new(),
            logged_in: HashSet::new(),
            leaving: HashSet::new(),
            on_break: HashSet::new(),
            state_since: HashMap::new(),
            group_time: vec![[Duration::ZERO; 6]; scenario.agents.len()],
            routing: RoutingCounts::default(),
            waiting: Vec::new(),
            staffed_samples: Vec::new(),
            decisions: 0,
            staffed: HashSet::new(),
            staffed_by_skill: HashMap::new(),
            mean_handle: scenario.traffic.mean_handle_time(),
            exact: ExactModel::of(scenario),
        };
        engine.schedule_agents();
        engine.at(Time::ZERO + scenario.warm_up, Action::Sample);
        engine.schedule_arrival(Duration::ZERO);
        Ok(engine)
    }

    fn schedule_agents(&mut self) {
        if let Some(roster) = &self.roster {
            let width = roster.width.max(Duration::from_secs(1));
            let intervals = self.scenario.duration.as_micros().div_ceil(width.as_micros()) as usize;
            for interval in 0..intervals {
                self.at(Time::ZERO + width * interval as u32, Action::Restaff { interval });
            }
            return;
        }
        let days = self.scenario.duration.as_secs().div_ceil(DAY.as_secs()) as u32;
        for (g, group) in self.scenario.agents.iter().enumerate() {
            for _ in 0..group.count {
                let id = self.new_agent(g);
                for day in 0..days {
                    let midnight = Time::ZERO + DAY * day;
                    match group.shift {
                        Some((start, until)) => {
                            self.at(midnight + start, Action::ShiftStart { agent: id });
                            self.at(midnight + until, Action::ShiftEnd { agent: id });
                        }
                        None if day == 0 => self.at(Time::ZERO, Action::ShiftStart { agent: id }),
                        None => {}
                    }
                    for &(at, length) in &group.breaks {
                        self.at(midnight + at, Action::BreakStart { agent: id });
                        self.at(midnight + at + length, Action::BreakEnd { agent: id });
                    }
                }
            }
        }
    }

    fn new_agent(&mut self, group: usize) -> AgentId {
        self.next_agent += 1;
        let id = AgentId(self.next_agent);
        self.group_of.insert(id, group);
        self.pool[group].push(id);
        id
    }

    /// Sets the roster's staffing of `interval` (and, until set, of every
    /// later one). Only an interval not yet started takes effect.
    pub(crate) fn set_staffing(&mut self, interval: usize, counts: &[u32]) {
        if let Some(roster) = &mut self.roster {
            roster.counts.truncate(interval);
            let last = roster.counts.last().cloned().unwrap_or_else(|| vec![0; counts.len()]);
            roster.counts.resize(interval, last);
            roster.counts.push(counts.to_vec());
        }
    }

    /// Handles everything due before `before` (and not past the run's end).
    pub(crate) fn advance(&mut self, before: Time) {
        let end = Time::ZERO + self.scenario.duration;
        loop {
            let next_action = self.pending.peek().map(|Reverse((t, _, _))| *t);
            let next_timer = self.router.poll_timeout();
            let now = match (next_action, next_timer) {
                (Some(a), Some(t)) => a.min(t),
                (Some(a), None) => a,
                (None, Some(t)) => t,
                (None, None) => break,
            };
            if now > end || now >= before {
                break;
            }
            if next_timer == Some(now) && next_action != Some(now) {
                self.decisions += 1;
                self.router.handle_timeout(now);
            } else {
                let Some(Reverse((_, _, action))) = self.pending.pop() else { break };
                self.act(now, action);
            }
            self.drain(now);
        }
    }

    /// Every contact so far, in arrival order, warm-up included.
    pub(crate) fn records(&self) -> &[ContactRecord] {
        &self.records
    }

    /// Closes the books at the end of the run.
    pub(crate) fn finish(mut self) -> Run {
        let end = Time::ZERO + self.scenario.duration;
        let states: Vec<(AgentId, AgentState, Time)> =
            self.state_since.iter().map(|(&a, &(state, since))| (a, state, since)).collect();
        for (agent, state, since) in states {
            self.account(agent, state, since, end);
        }
        let warm_up = Time::ZERO + self.scenario.warm_up;
        let contacts = self.records.into_iter().filter(|r| r.arrival >= warm_up).collect();
        Run {
            contacts,
            agent_time: self.group_time.iter().fold([Duration::ZERO; 6], |mut all, group| {
                for (a, g) in all.iter_mut().zip(group) {
                    *a += *g;
                }
                all
            }),
            waiting: self.waiting,
            staffed: self.staffed_samples,
            group_time: self.group_time,
            routing: self.routing,
            decisions: self.decisions,
            warm_up: self.scenario.warm_up,
            duration: self.scenario.duration,
        }
    }

    fn at(&mut self, t: Time, action: Action) {
        self.seq += 1;
        self.pending.push(Reverse((t, self.seq, action)));
    }

    fn command(&mut self, now: Time, command: Command) -> bool {
        self.decisions += 1;
        let ok = self.router.handle(now, command).is_ok();
        self.drain(now);
        ok
    }

    fn schedule_arrival(&mut self, after: Duration) {
        self.next = match &mut self.arrivals {
            Arrivals::Trace(rows) => rows.next().cloned(),
            Arrivals::Synthetic => draw(self.scenario, &mut self.traffic_rng, after),
        };
        if let Some(c) = &self.next {
            let t = Time::ZERO + c.arrival;
            self.at(t, Action::Arrival);
        }
    }

    /// Counts `agent` in or out of the staffed agents after a change.
    fn refresh_staffed(&mut self, agent: AgentId) {
        let staffed =
            self.logged_in.contains(&agent) && !self.on_break.contains(&agent) && !self.leaving.contains(&agent);
        if staffed == self.staffed.contains(&agent) {
            return;
        }
        let group = &self.scenario.agents[self.group_of[&agent]];
        for &(skill, _) in &group.profile.skills {
            let n = self.staffed_by_skill.entry(skill).or_insert(0);
            *n = if staffed { *n + 1 } else { *n - 1 };
        }
        if staffed {
            self.staffed.insert(agent);
        } else {
            self.staffed.remove(&agent);
        }
    }

    fn act(&mut self, now: Time, action: Action) {
        let agent = match action {
            Action::Accept { agent, .. }
            | Action::Complete { agent, .. }
            | Action::ShiftStart { agent }
            | Action::ShiftEnd { agent }
            | Action::BreakStart { agent }
            | Action::BreakEnd { agent }
            | Action::RonaRecovered { agent } => Some(agent),
            Action::Arrival | Action::HangUp { .. } | Action::Restaff { .. } | Action::Sample => None,
        };
        self.act_on(now, action);
        if let Some(agent) = agent {
            self.refresh_staffed(agent);
        }
    }

    fn act_on(&mut self, now: Time, action: Action) {
        match action {
            Action::Arrival => {
                if let Some(caller) = self.next.take() {
                    self.schedule_arrival(caller.arrival);
                    self.arrive(now, caller);
                }
            }
            Action::Accept { agent, offer } => {
                self.command(now, Command::Accept { agent, offer });
            }
            Action::Complete { agent, contact } => {
                self.command(now, Command::Complete { agent, contact });
                if self.leaving.contains(&agent) {
                    self.log_out(now, agent);
                }
            }
            Action::HangUp { contact } => {
                let waiting = self.contacts.get(&contact).is_some_and(|&(i, _, _)| self.records[i].answered.is_none());
                if waiting {
                    self.command(now, Command::Abandon { contact });
                }
            }
            Action::ShiftStart { agent } => {
                let was_leaving = self.leaving.remove(&agent);
                let ready = !self.on_break.contains(&agent);
                if self.logged_in.insert(agent) {
                    let profile = self.scenario.agents[self.group_of[&agent]].profile.clone();
                    self.command(now, Command::AgentLogin { agent, profile, ready });
                } else if was_leaving && ready {
                    // Back on duty before its last contact ended.
                    self.command(now, Command::AgentReady { agent });
                }
            }
            Action::ShiftEnd { agent } => {
                if self.logged_in.contains(&agent) {
                    self.leaving.insert(agent);
                    self.command(now, Command::AgentNotReady { agent, reason: NotReadyReason::Other });
                    self.log_out(now, agent);
                }
            }
            Action::BreakStart { agent } => {
                self.on_break.insert(agent);
                if self.logged_in.contains(&agent) {
                    self.command(now, Command::AgentNotReady { agent, reason: NotReadyReason::Break });
                }
            }
            Action::BreakEnd { agent } => {
                self.on_break.remove(&agent);
                if self.logged_in.contains(&agent) && !self.leaving.contains(&agent) {
                    self.command(now, Command::AgentReady { agent });
                }
            }
            Action::RonaRecovered { agent } => {
                let working = self.logged_in.contains(&agent) && !self.leaving.contains(&agent);
                if working && !self.on_break.contains(&agent) {
                    self.command(now, Command::AgentReady { agent });
                }
            }
            Action::Restaff { interval } => self.restaff(now, interval),
            Action::Sample => {
                let waiting = self.router.all_queue_stats().iter().map(|s| s.waiting).sum();
                self.waiting.push((now, waiting));
                self.staffed_samples.push((now, self.staffed.len() as u32));
                self.at(now + Duration::from_secs(60), Action::Sample);
            }
        }
    }

    /// Brings each group to the roster's count for `interval`: the first
    /// agents of the group's pool on duty, the rest going off duty once
    /// their contact in hand is done (last on, first off).
    fn restaff(&mut self, now: Time, interval: usize) {
        let Some(roster) = &self.roster else { return };
        let wanted: Vec<u32> = (0..self.pool.len()).map(|g| roster.on_duty(interval, g)).collect();
        for (group, &want) in wanted.iter().enumerate() {
            while self.pool[group].len() < want as usize {
                self.new_agent(group);
            }
            for k in 0..self.pool[group].len() {
                let agent = self.pool[group][k];
                if k < want as usize {
                    self.act(now, Action::ShiftStart { agent });
                } else if self.logged_in.contains(&agent) && !self.leaving.contains(&agent) {
                    self.act(now, Action::ShiftEnd { agent });
                }
            }
        }
    }

    /// Logs an agent out, or leaves it to the end of its current contact.
    fn log_out(&mut self, now: Time, agent: AgentId) {
        if self.command(now, Command::AgentLogout { agent }) {
            self.logged_in.remove(&agent);
            self.leaving.remove(&agent);
        }
    }

    fn arrive(&mut self, now: Time, caller: Caller) {
        let id = ContactId(self.next_contact);
        self.next_contact += 1;
        let spec = ContactSpec {
            id,
            channel: caller.channel,
            queue: caller.queue,
            tier: caller.tier,
            skills: caller.skills.as_slice().into(),
            languages: caller.languages.as_slice().into(),
            preferred_agents: Vec::new(),
            context: Vec::new(),
        };
        let index = self.records.len();
        self.contacts.insert(id, (index, caller.handle, caller.answer_delay));
        self.records.push(ContactRecord {
            queue: caller.queue,
            tier: caller.tier,
            arrival: now,
            answered: None,
            abandoned: None,
            queued: false,
            estimate: None,
        });
        if !self.command(now, Command::Enqueue(spec)) {
            // Refused (queue full, no overflow): the caller is turned away.
            self.records[index].abandoned = Some((Duration::ZERO, true));
            return;
        }
        if let Ok(estimate) = self.router.estimate_wait(id) {
            if estimate.method != EwtMethod::NotWaiting {
                self.records[index].queued = true;
                let agents = self.staffed_by_skill.get(&caller.skills[0].skill).copied().unwrap_or(0).max(1);
                let wrap_up = self.scenario.ccrd.router.queues[usize::from(caller.queue.0)].wrap_up;
                let naive = (self.mean_handle + wrap_up).mul_f64(f64::from(estimate.position) / f64::from(agents));
                let exact = self.exact.as_ref().and_then(|m| m.expected_wait(estimate.position - 1, caller.tier));
                let uncertain = estimate.method == EwtMethod::Stalled;
                self.records[index].estimate =
                    Some(Estimates { ccr: estimate.estimated_wait, naive, exact, uncertain });
            }
        }
        if let Some(patience) = caller.patience {
            self.at(now + patience, Action::HangUp { contact: id });
        }
    }

    fn drain(&mut self, now: Time) {
        while let Some(event) = self.router.poll_event() {
            match event {
                Event::Offered { offer, agent, contact, .. } => {
                    let group = &self.scenario.agents[self.group_of[&agent]];
                    if self.rng.random::<f64>() < group.rona_probability {
                        continue; // lets it ring out
                    }
                    let own = self.contacts.get(&contact).and_then(|&(_, _, delay)| delay);
                    let delay = own.unwrap_or_else(|| group.answer_delay.sample(&mut self.rng));
                    self.at(now + delay, Action::Accept { agent, offer });
                }
                Event::Connected { contact, agent, waited, .. } => {
                    let handle = match self.contacts.get(&contact) {
                        Some(&(i, handle, _)) => {
                            self.records[i].answered = Some(waited);
                            handle
                        }
                        None => Duration::ZERO,
                    };
                    self.at(now + handle, Action::Complete { agent, contact });
                }
                Event::Abandoned { contact, waited, short, .. } => {
                    if let Some(&(i, _, _)) = self.contacts.get(&contact) {
                        self.records[i].abandoned = Some((waited, short));
                    }
                }
                Event::Completed { contact, .. } => {
                    self.contacts.remove(&contact);
                }
                Event::AgentStateChanged { agent, state } => {
                    if let Some((before, since)) = self.state_since.insert(agent, (state, now)) {
                        self.account(agent, before, since, now);
                    }
                }
                Event::OfferEnded { agent, outcome: ccr_core::OfferOutcome::Expired, .. } => {
                    let group = &self.scenario.agents[self.group_of[&agent]];
                    let recovery = group.rona_recovery.sample(&mut self.rng);
                    self.at(now + recovery, Action::RonaRecovered { agent });
                    if now >= Time::ZERO + self.scenario.warm_up {
                        self.routing.ronas += 1;
                    }
                }
                _ if now < Time::ZERO + self.scenario.warm_up => {}
                Event::Overflowed { .. } => self.routing.overflows += 1,
                Event::Relaxed { .. } => self.routing.relaxation_steps += 1,
                Event::Transferred { .. } => self.routing.transfers += 1,
                _ => {}
            }
        }
    }

    /// Adds the part of [since, until) after the warm-up to the state's time.
    fn account(&mut self, agent: AgentId, state: AgentState, since: Time, until: Time) {
        let from = since.max(Time::ZERO + self.scenario.warm_up);
        if until > from {
            self.group_time[self.group_of[&agent]][state.index()] += until.since(from);
        }
    }
}
