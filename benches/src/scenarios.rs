//! The three routing workloads, shared by the criterion benches (mean cost)
//! and the latency bench (distribution per decision). Each has an untimed
//! `prepare`, a timed `decide` (exactly one command through `Router::handle`,
//! events drained as the daemon would) and an untimed `reset` that brings the
//! centre back to the same state.

use std::collections::VecDeque;
use std::time::Duration;

use ccr_core::{AgentId, Command, ContactId, ContactSpec, Event, NotReadyReason, OfferId, Router, Time};

use crate::{config, Generator, Shape};

pub const NOW: Time = Time::from_secs(1);

/// A workload: untimed `prepare` for `n` decisions, timed `decide` (one
/// command), untimed `reset`.
pub trait Workload {
    fn prepare(&mut self, n: usize);
    fn decide(&mut self);
    fn reset(&mut self) {}
}

type OfferRecord = (AgentId, OfferId, ContactId);

/// Logs in the shape's agents, with profiles from `generator`, ready or not.
pub fn login_all(router: &mut Router, generator: &mut Generator, ready: bool) {
    for a in 0..generator.shape.agents {
        let profile = generator.agent();
        router.handle(NOW, Command::AgentLogin { agent: AgentId(a), profile, ready }).expect("login");
    }
}

fn drain(router: &mut Router, offers: &mut Vec<OfferRecord>) {
    while let Some(e) = router.poll_event() {
        if let Event::Offered { agent, offer, contact, .. } = e {
            offers.push((agent, offer, contact));
        }
    }
}

/// `routing/contact_arrival`: contacts arrive while nearly every agent is free.
pub struct Arrivals {
    pub router: Router,
    generator: Generator,
    specs: Vec<ContactSpec>,
    ids: Vec<ContactId>,
    offers: Vec<OfferRecord>,
}

impl Arrivals {
    pub fn new(shape: Shape) -> Self {
        let mut generator = Generator::new(shape, 1);
        let mut router = Router::new(config(shape)).expect("config");
        login_all(&mut router, &mut generator, true);
        drain(&mut router, &mut Vec::new());
        Arrivals { router, generator, specs: Vec::new(), ids: Vec::new(), offers: Vec::new() }
    }
}

impl Workload for Arrivals {
    fn prepare(&mut self, n: usize) {
        self.specs = (0..n).map(|_| self.generator.contact()).collect();
        self.specs.reverse();
        self.ids = self.specs.iter().map(|s| s.id).collect();
        self.offers.clear();
    }

    #[inline(never)] // a symbol for profilers to count decisions by
    fn decide(&mut self) {
        let spec = self.specs.pop().expect("prepared");
        let _ = self.router.handle(NOW, Command::Enqueue(spec));
        drain(&mut self.router, &mut self.offers);
    }

    /// Answers and completes every offer and abandons what still waits.
    fn reset(&mut self) {
        while let Some((agent, offer, contact)) = self.offers.pop() {
            self.router.handle(NOW, Command::Accept { agent, offer }).expect("accept");
            self.router.handle(NOW, Command::Complete { agent, contact }).expect("complete");
            drain(&mut self.router, &mut self.offers);
        }
        for &contact in &self.ids {
            let _ = self.router.handle(NOW, Command::Abandon { contact });
        }
        drain(&mut self.router, &mut self.offers);
        assert!(self.offers.is_empty());
    }
}

/// Contacts served (and replaced) before `routing/agent_ready_backlog` is
/// measured, in every harness that runs it.
pub const BACKLOG_SERVED: usize = 1_000_000;

/// `routing/agent_ready`: agents become ready with 100k contacts waiting.
/// Each batch starts from the same waiting contacts (see
/// [`AgentsReady::reset`]).
pub struct AgentsReady {
    pub router: Router,
    generator: Generator,
    agents: Vec<AgentId>,
    next: usize,
    cursor: u64,
    offers: Vec<OfferRecord>,
}

impl AgentsReady {
    pub fn new(shape: Shape, waiting: usize) -> Self {
        let mut generator = Generator::new(shape, 2);
        let mut router = Router::new(config(shape)).expect("config");
        login_all(&mut router, &mut generator, false);
        for _ in 0..waiting {
            router.handle(NOW, Command::Enqueue(generator.contact())).expect("enqueue");
        }
        drain(&mut router, &mut Vec::new());
        AgentsReady { router, generator, agents: Vec::new(), next: 0, cursor: 0, offers: Vec::new() }
    }

    /// `routing/agent_ready_backlog`: as [`AgentsReady::new`], after `served`
    /// contacts were served, each replaced by a new one. The contacts that
    /// few agents qualify for are left behind, oldest first, and gather at
    /// the front of the lists, as they would in a centre whose relaxation
    /// steps have not reached them yet: every agent's search passes them.
    pub fn with_backlog(shape: Shape, waiting: usize, served: usize) -> Self {
        let mut w = AgentsReady::new(shape, waiting);
        for _ in 0..served / 1000 {
            w.prepare(1000);
            for _ in 0..1000 {
                w.decide();
            }
            w.serve_and_replace();
        }
        w
    }

    /// Agents back to not ready; their contacts served and replaced.
    fn serve_and_replace(&mut self) {
        self.agents_not_ready();
        for &(agent, offer, contact) in &self.offers {
            self.router.handle(NOW, Command::Accept { agent, offer }).expect("accept");
            self.router.handle(NOW, Command::Complete { agent, contact }).expect("complete");
            self.router.handle(NOW, Command::Enqueue(self.generator.contact())).expect("enqueue");
        }
        drain(&mut self.router, &mut Vec::new());
    }

    fn agents_not_ready(&mut self) {
        for &agent in &self.agents[..self.next] {
            let reason = NotReadyReason::Break;
            self.router.handle(NOW, Command::AgentNotReady { agent, reason }).expect("not ready");
        }
    }
}

impl Workload for AgentsReady {
    fn prepare(&mut self, n: usize) {
        let agents = self.generator.shape.agents;
        self.agents = (0..n as u64).map(|i| AgentId((self.cursor + i) % agents)).collect();
        self.cursor += n as u64;
        self.next = 0;
        self.offers.clear();
    }

    #[inline(never)] // a symbol for profilers to count decisions by
    fn decide(&mut self) {
        let agent = self.agents[self.next];
        self.next += 1;
        let _ = self.router.handle(NOW, Command::AgentReady { agent });
        drain(&mut self.router, &mut self.offers);
    }

    /// Agents back to not ready, and the contacts they were offered back in
    /// their places (a rejected contact returns at its rank), so that every
    /// batch starts from the same waiting contacts. Serving them and
    /// enqueueing new ones instead (as [`AgentsReady::with_backlog`] does
    /// before measuring) lets the contacts few agents take pile up at the
    /// front of the lists (the clock is frozen, so nothing relaxes): the
    /// cost of a decision then grew with the number of batches run before
    /// it, and a faster build, running more of them in criterion's fixed
    /// warm-up, was measured in a heavier state.
    fn reset(&mut self) {
        self.agents_not_ready();
        for &(agent, offer, _) in &self.offers {
            self.router.handle(NOW, Command::Reject { agent, offer }).expect("reject");
        }
        drain(&mut self.router, &mut Vec::new());
    }
}

/// `routing/mixed`: a steady stream cycling through four commands: enqueue,
/// accept the oldest offer, complete the oldest call (the freed agent takes
/// the next contact), then one of abandon / not ready / ready. Virtual time
/// advances 100 µs per cycle so relaxation timers fire as they would live.
pub struct Mixed {
    pub router: Router,
    generator: Generator,
    now: Time,
    step: u64,
    specs: Vec<ContactSpec>,
    offers: Vec<OfferRecord>,
    pending: VecDeque<OfferRecord>,
    connected: VecDeque<(AgentId, ContactId)>,
    recent: VecDeque<ContactId>,
    toggled: Option<AgentId>,
}

impl Mixed {
    /// Every agent ready, then 30,000 contacts: one offered to each of the
    /// 10,000 agents of `Shape::LARGE`, the rest waiting.
    pub fn new(shape: Shape) -> Self {
        Mixed::with_contacts(shape, 30_000)
    }

    /// As [`Mixed::new`] with `contacts` enqueued at the start.
    pub fn with_contacts(shape: Shape, contacts: usize) -> Self {
        let mut generator = Generator::new(shape, 3);
        let mut router = Router::new(config(shape)).expect("config");
        login_all(&mut router, &mut generator, true);
        let mut offers = Vec::new();
        for _ in 0..contacts {
            router.handle(NOW, Command::Enqueue(generator.contact())).expect("enqueue");
        }
        drain(&mut router, &mut offers);
        Mixed {
            router,
            generator,
            now: NOW,
            step: 0,
            specs: Vec::new(),
            pending: offers.drain(..).collect(),
            offers,
            connected: VecDeque::new(),
            recent: VecDeque::new(),
            toggled: None,
        }
    }
}

impl Workload for Mixed {
    fn prepare(&mut self, n: usize) {
        self.specs = (0..n.div_ceil(4)).map(|_| self.generator.contact()).collect();
    }

    /// One command of the cycle.
    #[inline(never)] // a symbol for profilers to count decisions by
    fn decide(&mut self) {
        let (now, command) = self.next_command();
        let _ = self.router.handle(now, command);
        self.absorb_events();
    }
}

impl Mixed {
    /// The next command of the cycle and its time, for a driver that feeds
    /// the router itself (the recovery bench journals each one); follow
    /// with [`Mixed::absorb_events`] after handling it.
    pub fn next_command(&mut self) -> (Time, Command) {
        self.step += 1;
        let command = match self.step % 4 {
            1 => {
                self.now = self.now + Duration::from_micros(100);
                let spec = self.specs.pop().expect("prepared");
                self.recent.push_back(spec.id);
                Command::Enqueue(spec)
            }
            2 => match self.pending.pop_front() {
                Some((agent, offer, contact)) => {
                    self.connected.push_back((agent, contact));
                    Command::Accept { agent, offer }
                }
                None => Command::AgentReady { agent: AgentId(0) },
            },
            3 => match self.connected.pop_front() {
                Some((agent, contact)) => Command::Complete { agent, contact },
                None => Command::AgentReady { agent: AgentId(1) },
            },
            _ => match (self.step % 8, self.toggled.take()) {
                (0, toggled) => {
                    self.toggled = toggled;
                    let old = if self.recent.len() > 500 { self.recent.pop_front() } else { None };
                    Command::Abandon { contact: old.unwrap_or(ContactId(0)) }
                }
                (_, Some(agent)) => Command::AgentReady { agent },
                (_, None) => {
                    let agent = AgentId(self.step % self.generator.shape.agents);
                    self.toggled = Some(agent);
                    Command::AgentNotReady { agent, reason: NotReadyReason::Break }
                }
            },
        };
        (self.now, command)
    }

    /// Takes in the router's events (new offers to answer later).
    pub fn absorb_events(&mut self) {
        drain(&mut self.router, &mut self.offers);
        self.pending.extend(self.offers.drain(..));
    }
}
