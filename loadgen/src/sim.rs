//! The virtual-time engine: the routing core the daemon runs, driven by a
//! discrete-event clock instead of a wall clock.
//!
//! Customers arrive (a Poisson process whose rate may change through the day,
//! by thinning), wait with a patience of their own, and hang up if nobody
//! answered in time. Agents answer an offer after an answer delay, or let it
//! ring out with the scenario's RONA probability, handle the contact, and
//! wrap up as the queue says. Every decision is the router's. The same
//! scenario and seed give the same run.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::Duration;

use ccr_core::{
    AgentId, AgentState, Command, ContactId, ContactSpec, Event, EwtMethod, OfferId, QueueId, Router, TierId, Time,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::scenario::Scenario;

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
    /// The core's estimated wait at arrival, and the naive one (position ×
    /// mean handle time ÷ agents with the skill), for contacts that queued.
    pub estimate: Option<(Duration, Duration)>,
}

/// A whole run.
#[derive(Clone, Debug)]
pub struct Run {
    /// Contacts that arrived after the warm-up, in arrival order.
    pub contacts: Vec<ContactRecord>,
    /// Time agents spent per state after the warm-up ([`AgentState::index`]).
    pub agent_time: [Duration; 6],
    /// Inputs the router handled (commands and timer firings).
    pub decisions: u64,
    pub warm_up: Duration,
    pub duration: Duration,
}

impl Run {
    /// Share of staffed time agents were occupied (ringing, talking, wrapping up).
    pub fn occupancy(&self) -> f64 {
        let t = |s: usize| self.agent_time[s].as_secs_f64();
        let (available, reserved, busy, wrap_up) = (t(2), t(3), t(4), t(5));
        let staffed = available + reserved + busy + wrap_up;
        if staffed == 0.0 {
            0.0
        } else {
            (reserved + busy + wrap_up) / staffed
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Action {
    Arrival,
    Accept { agent: AgentId, offer: OfferId },
    Complete { agent: AgentId, contact: ContactId },
    HangUp { contact: ContactId },
}

struct Engine<'a> {
    scenario: &'a Scenario,
    router: Router,
    rng: StdRng,
    pending: BinaryHeap<Reverse<(Time, u64, Action)>>,
    seq: u64,
    next_contact: u64,
    /// Contact id → index in `records`.
    index: HashMap<ContactId, usize>,
    records: Vec<ContactRecord>,
    /// Agent id → its group in the scenario.
    group_of: HashMap<AgentId, usize>,
    state_since: HashMap<AgentId, (AgentState, Time)>,
    agent_time: [Duration; 6],
    decisions: u64,
    /// Agents holding each template's first skill, for the naive estimate.
    skilled_agents: Vec<u32>,
    total_weight: f64,
}

/// Runs `scenario` in virtual time.
pub fn simulate(scenario: &Scenario) -> Result<Run, ccr_core::ConfigErrors> {
    let router = Router::new(scenario.ccrd.router.clone())?;
    let skilled_agents = scenario
        .traffic
        .mix
        .iter()
        .map(|t| {
            let skill = t.skills[0].skill;
            scenario.agents.iter().filter(|g| g.profile.skills.iter().any(|&(s, _)| s == skill)).map(|g| g.count).sum()
        })
        .collect();
    let mut engine = Engine {
        scenario,
        router,
        rng: StdRng::seed_from_u64(scenario.seed),
        pending: BinaryHeap::new(),
        seq: 0,
        next_contact: 1,
        index: HashMap::new(),
        records: Vec::new(),
        group_of: HashMap::new(),
        state_since: HashMap::new(),
        agent_time: [Duration::ZERO; 6],
        decisions: 0,
        skilled_agents,
        total_weight: scenario.traffic.mix.iter().map(|t| t.weight).sum(),
    };
    engine.run();
    let warm_up = Time::ZERO + scenario.warm_up;
    let contacts = engine.records.into_iter().filter(|r| r.arrival >= warm_up).collect();
    Ok(Run {
        contacts,
        agent_time: engine.agent_time,
        decisions: engine.decisions,
        warm_up: scenario.warm_up,
        duration: scenario.duration,
    })
}

impl Engine<'_> {
    fn run(&mut self) {
        let start = Time::ZERO;
        let mut agent = 0u64;
        for (g, group) in self.scenario.agents.iter().enumerate() {
            for _ in 0..group.count {
                agent += 1;
                let id = AgentId(agent);
                self.group_of.insert(id, g);
                let login = Command::AgentLogin { agent: id, profile: group.profile.clone(), ready: true };
                self.command(start, login);
            }
        }
        self.schedule_arrival(start);
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
            if now > end {
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
        // Close the books on agent time at the end of the run.
        let states: Vec<(AgentState, Time)> = self.state_since.values().copied().collect();
        for (state, since) in states {
            self.account(state, since, end);
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

    /// The next arrival after `now`, by thinning a Poisson process at the
    /// profile's highest rate.
    fn schedule_arrival(&mut self, now: Time) {
        let rate = &self.scenario.traffic.rate;
        let max = rate.max_rate();
        let mut t = now;
        loop {
            let gap: f64 = -(1.0 - self.rng.random::<f64>()).ln() / max;
            t = t + Duration::from_secs_f64(gap);
            if t.as_micros() > (Time::ZERO + self.scenario.duration).as_micros() {
                return;
            }
            if self.rng.random::<f64>() * max <= rate.rate_at(t.since(Time::ZERO)) {
                break;
            }
        }
        self.at(t, Action::Arrival);
    }

    fn act(&mut self, now: Time, action: Action) {
        match action {
            Action::Arrival => {
                self.schedule_arrival(now);
                self.arrive(now);
            }
            Action::Accept { agent, offer } => {
                self.command(now, Command::Accept { agent, offer });
            }
            Action::Complete { agent, contact } => {
                self.command(now, Command::Complete { agent, contact });
            }
            Action::HangUp { contact } => {
                let waiting = self.index.get(&contact).is_some_and(|&i| self.records[i].answered.is_none());
                if waiting {
                    self.command(now, Command::Abandon { contact });
                }
            }
        }
    }

    fn arrive(&mut self, now: Time) {
        let template_index = {
            let mut x = self.rng.random::<f64>() * self.total_weight;
            let mix = &self.scenario.traffic.mix;
            mix.iter()
                .position(|t| {
                    let hit = x < t.weight;
                    x -= t.weight;
                    hit
                })
                .unwrap_or(mix.len() - 1)
        };
        let template = self.scenario.traffic.mix[template_index].clone();
        let id = ContactId(self.next_contact);
        self.next_contact += 1;
        let spec = ContactSpec {
            id,
            channel: template.channel,
            queue: template.queue,
            tier: template.tier,
            skills: template.skills.clone(),
            languages: template.languages.clone(),
            preferred_agents: Vec::new(),
            context: Vec::new(),
        };
        self.index.insert(id, self.records.len());
        self.records.push(ContactRecord {
            queue: template.queue,
            tier: template.tier,
            arrival: now,
            answered: None,
            abandoned: None,
            estimate: None,
        });
        if !self.command(now, Command::Enqueue(spec)) {
            // Refused (queue full, no overflow): the caller is turned away.
            let i = self.index[&id];
            self.records[i].abandoned = Some((Duration::ZERO, true));
            return;
        }
        if let Ok(estimate) = self.router.estimate_wait(id) {
            if estimate.method != EwtMethod::NotWaiting {
                let agents = self.skilled_agents[template_index].max(1);
                let aht = self.scenario.traffic.handle_time.mean();
                let naive = aht.mul_f64(f64::from(estimate.position) / f64::from(agents));
                let i = self.index[&id];
                self.records[i].estimate = Some((estimate.estimated_wait, naive));
            }
        }
        if let Some(patience) = self.scenario.traffic.patience {
            let wait = patience.sample(&mut self.rng);
            self.at(now + wait, Action::HangUp { contact: id });
        }
    }

    fn drain(&mut self, now: Time) {
        while let Some(event) = self.router.poll_event() {
            match event {
                Event::Offered { offer, agent, .. } => {
                    let group = &self.scenario.agents[self.group_of[&agent]];
                    if self.rng.random::<f64>() < group.rona_probability {
                        continue; // lets it ring out
                    }
                    let delay = group.answer_delay.sample(&mut self.rng);
                    self.at(now + delay, Action::Accept { agent, offer });
                }
                Event::Connected { contact, agent, waited, .. } => {
                    if let Some(&i) = self.index.get(&contact) {
                        self.records[i].answered = Some(waited);
                    }
                    let handle = self.scenario.traffic.handle_time.sample(&mut self.rng);
                    self.at(now + handle, Action::Complete { agent, contact });
                }
                Event::Abandoned { contact, waited, short, .. } => {
                    if let Some(&i) = self.index.get(&contact) {
                        self.records[i].abandoned = Some((waited, short));
                    }
                }
                Event::AgentStateChanged { agent, state } => {
                    if let Some((before, since)) = self.state_since.insert(agent, (state, now)) {
                        self.account(before, since, now);
                    }
                }
                _ => {}
            }
        }
    }

    /// Adds the part of [since, until) after the warm-up to the state's time.
    fn account(&mut self, state: AgentState, since: Time, until: Time) {
        let from = since.max(Time::ZERO + self.scenario.warm_up);
        if until > from {
            self.agent_time[state.index()] += until.since(from);
        }
    }
}
