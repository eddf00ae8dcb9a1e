//! Shared test helpers: a router with a clock, and short builders.
#![allow(dead_code)]

use std::time::Duration;

use ccr_core::*;

pub const EN: LanguageId = LanguageId(0);
pub const ZH: LanguageId = LanguageId(1);
pub const YUE: LanguageId = LanguageId(2);
pub const BILLING: SkillId = SkillId(1);
pub const REPAIR: SkillId = SkillId(2);
pub const GOLD: TierId = TierId(0);
pub const SILVER: TierId = TierId(1);
pub const STANDARD: TierId = TierId(2);
pub const Q0: QueueId = QueueId(0);
pub const Q1: QueueId = QueueId(1);

pub fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// A router and a clock, recording every event.
pub struct Harness {
    pub router: Router,
    pub now: Time,
    pub events: Vec<Event>,
}

impl Harness {
    pub fn new(cfg: RouterConfig) -> Self {
        Harness { router: Router::new(cfg).expect("valid config"), now: Time::ZERO, events: Vec::new() }
    }

    pub fn default_config() -> RouterConfig {
        RouterConfig { queues: vec![QueueConfig::new("sales"), QueueConfig::new("support")], ..Default::default() }
    }

    pub fn at(&mut self, secs: u64) -> &mut Self {
        self.now = Time::from_secs(secs);
        self.router.handle_timeout(self.now);
        self.drain();
        self
    }

    pub fn cmd(&mut self, command: Command) -> Result<Reply, CommandError> {
        let r = self.router.handle(self.now, command);
        self.drain();
        r
    }

    pub fn ok(&mut self, command: Command) -> Reply {
        let c = format!("{command:?}");
        self.cmd(command).unwrap_or_else(|e| panic!("{c} failed: {e}"))
    }

    fn drain(&mut self) {
        while let Some(e) = self.router.poll_event() {
            self.events.push(e);
        }
    }

    pub fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }

    /// (contact, agent, offer) of every offer made since the last take.
    pub fn take_offers(&mut self) -> Vec<(u64, u64, OfferId)> {
        self.take_events()
            .into_iter()
            .filter_map(|e| match e {
                Event::Offered { contact, agent, offer, .. } => Some((contact.0, agent.0, offer)),
                _ => None,
            })
            .collect()
    }

    pub fn login(&mut self, agent: u64, skills: &[(SkillId, u8)], languages: &[LanguageId]) {
        self.ok(login(agent, skills, languages, [1, 0, 0]));
    }

    pub fn enqueue(&mut self, spec: ContactSpec) {
        self.ok(Command::Enqueue(spec));
    }

    pub fn offer_of(&self, contact: u64) -> Option<(AgentId, OfferId)> {
        self.router.snapshot().contacts.iter().find(|c| c.id == ContactId(contact)).and_then(|c| match c.state {
            ContactViewState::Offered { offer, agent } => Some((agent, offer)),
            _ => None,
        })
    }

    pub fn state_of(&self, contact: u64) -> Option<ContactViewState> {
        self.router.snapshot().contacts.iter().find(|c| c.id == ContactId(contact)).map(|c| c.state.clone())
    }
}

pub fn login(agent: u64, skills: &[(SkillId, u8)], languages: &[LanguageId], capacity: [u8; 3]) -> Command {
    Command::AgentLogin {
        agent: AgentId(agent),
        profile: AgentProfile { skills: skills.to_vec(), languages: languages.to_vec(), capacity },
        ready: true,
    }
}

pub fn contact(
    id: u64,
    queue: QueueId,
    tier: TierId,
    skills: &[(SkillId, u8)],
    languages: &[LanguageId],
) -> ContactSpec {
    ContactSpec {
        id: ContactId(id),
        channel: Channel::Voice,
        queue,
        tier,
        skills: skills.iter().map(|&(skill, min_proficiency)| SkillReq { skill, min_proficiency }).collect(),
        languages: languages.into(),
        preferred_agents: Vec::new(),
        context: Vec::new(),
    }
}

pub fn ready(agent: u64) -> Command {
    Command::AgentReady { agent: AgentId(agent) }
}

pub fn not_ready(agent: u64) -> Command {
    Command::AgentNotReady { agent: AgentId(agent), reason: NotReadyReason::Break }
}

pub fn accept(agent: u64, offer: OfferId) -> Command {
    Command::Accept { agent: AgentId(agent), offer }
}

pub fn complete(agent: u64, contact: u64) -> Command {
    Command::Complete { agent: AgentId(agent), contact: ContactId(contact) }
}
