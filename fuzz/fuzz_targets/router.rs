//! Arbitrary sequences of client calls, as protobuf requests through
//! `convert` into the routing core, from several sessions, with the clock
//! moving: nothing panics, a refused command changes nothing, and the
//! core's invariants hold after every step.
//!
//! cargo fuzz run -s none -O router -- -max_total_time=600
#![no_main]

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use arbitrary::Arbitrary;
use ccr_core::*;
use ccr_daemon::config::{self, Config};
use ccr_daemon::convert;
use ccr_proto::v1 as pb;
use libfuzzer_sys::fuzz_target;

const CONFIG: &str = r#"
skills = ["billing", "repair"]
languages = ["en", "zh"]

[routing]
session_grace = "20s"
max_contacts = 12
max_context_entries = 3
max_context_bytes = 64

[[tiers]]
name = "gold"
aging_boost = "30s"

[[tiers]]
name = "standard"

[[queues]]
name = "sales"
offer_timeout = "30s"
max_waiting = 4
overflow_when_full = "support"

[[queues.relaxation]]
after = "10s"
next_language = true

[[queues]]
name = "support"
wrap_up = "5s"
"#;

#[derive(Arbitrary, Debug)]
enum Op {
    Enqueue {
        id: u8,
        queue: u8,
        tier: u8,
        skill: u8,
        min: u8,
        language: u8,
        channel: u8,
        preferred: Option<u8>,
        context: Vec<(u8, u8)>,
    },
    Callback {
        id: u8,
        queue: u8,
        skill: u8,
        due_in_s: u16,
        slack_s: u16,
    },
    Transfer {
        id: u8,
        queue: u8,
        skill: u8,
        tier: u8,
        context: Vec<(u8, u8)>,
    },
    Abandon {
        id: u8,
    },
    Position {
        id: u8,
    },
    Login {
        agent: u8,
        skills: Vec<(u8, u8)>,
        languages: Vec<u8>,
        voice: u8,
        chat: u8,
        email: u8,
        ready: bool,
    },
    Logout {
        agent: u8,
    },
    SetState {
        agent: u8,
        ready: bool,
        reason: i8,
    },
    Accept {
        agent: u8,
        pick: u8,
    },
    Reject {
        agent: u8,
        pick: u8,
    },
    Complete {
        agent: u8,
        contact: u8,
    },
    EndWrapUp {
        agent: u8,
        contact: u8,
    },
    Advance {
        ms: u16,
    },
    Open,
    Lose {
        session: u8,
    },
    From {
        session: u8,
    },
    Drain,
}

fn name(names: &[String], i: u8) -> String {
    names.get(usize::from(i)).cloned().unwrap_or_else(|| format!("unknown-{i}"))
}

fn context(entries: &[(u8, u8)]) -> Vec<pb::ContextEntry> {
    entries
        .iter()
        .map(|&(k, v)| pb::ContextEntry { key: format!("k{}", k % 5), value: "v".repeat(usize::from(v % 40)) })
        .collect()
}

struct Run {
    config: Config,
    router: Router,
    now: Time,
    session: SessionId,
    opened: u64,
    /// Offers seen, by agent: what accepts and rejects pick from.
    offers: HashMap<u64, Vec<u64>>,
}

impl Run {
    fn command(&self, op: &Op) -> Option<Result<Command, pb::Status>> {
        let cat = &self.config.catalog;
        let spec = |id: u8, queue: u8, tier: u8, skill: u8, min: u8, language: u8, channel: u8| pb::EnqueueRequest {
            contact_id: u64::from(id),
            channel: i32::from(channel % 4),
            queue: name(&cat.queues, queue % 3),
            tier: if tier % 3 == 2 { String::new() } else { name(&cat.tiers, tier % 3) },
            skills: vec![pb::SkillRequirement {
                skill: name(&cat.skills, skill % 3),
                min_proficiency: u32::from(min % 11),
            }],
            languages: if language % 3 == 2 { vec![] } else { vec![name(&cat.languages, language % 3)] },
            ..Default::default()
        };
        Some(match op {
            Op::Enqueue { id, queue, tier, skill, min, language, channel, preferred, context: c } => {
                let mut r = spec(*id, *queue, *tier, *skill, *min, *language, *channel);
                r.preferred_agents = preferred.map(u64::from).into_iter().collect();
                r.context = context(c);
                convert::contact_spec(cat, r).map(Command::Enqueue)
            }
            Op::Callback { id, queue, skill, due_in_s, slack_s } => {
                let due = self.now.as_micros() + u64::from(*due_in_s) * 1_000_000;
                convert::callback(
                    cat,
                    pb::ScheduleCallbackRequest {
                        contact: Some(spec(*id, *queue, 0, *skill, 1, 0, 1)),
                        due_unix_micros: due,
                        deadline_unix_micros: due + u64::from(*slack_s) * 1_000_000,
                    },
                )
            }
            Op::Transfer { id, queue, skill, tier, context: c } => convert::transfer(
                cat,
                pb::TransferRequest {
                    contact_id: u64::from(*id),
                    queue: name(&cat.queues, queue % 3),
                    skills: vec![pb::SkillRequirement { skill: name(&cat.skills, skill % 3), min_proficiency: 1 }],
                    tier: if tier % 3 == 2 { String::new() } else { name(&cat.tiers, tier % 3) },
                    context: context(c),
                    ..Default::default()
                },
            ),
            Op::Abandon { id } => convert::contact_id(u64::from(*id)).map(|contact| Command::Abandon { contact }),
            Op::Position { id } => convert::contact_id(u64::from(*id)).map(|contact| Command::ClaimContact { contact }),
            Op::Login { agent, skills, languages, voice, chat, email, ready } => convert::login(
                cat,
                pb::LoginRequest {
                    agent_id: u64::from(*agent),
                    skills: skills
                        .iter()
                        .take(3)
                        .map(|&(s, p)| pb::AgentSkill {
                            skill: name(&cat.skills, s % 3),
                            proficiency: u32::from(p % 12),
                        })
                        .collect(),
                    languages: languages.iter().take(3).map(|&l| name(&cat.languages, l % 3)).collect(),
                    voice_capacity: u32::from(voice % 3),
                    chat_capacity: u32::from(chat % 4),
                    email_capacity: u32::from(email % 3),
                    ready: *ready,
                },
            ),
            Op::Logout { agent } => convert::agent_id(u64::from(*agent)).map(|agent| Command::AgentLogout { agent }),
            Op::SetState { agent, ready, reason } => convert::set_state(pb::SetStateRequest {
                agent_id: u64::from(*agent),
                ready: *ready,
                reason: i32::from(*reason),
            }),
            Op::Accept { agent, pick } | Op::Reject { agent, pick } => {
                let seen = self.offers.get(&u64::from(*agent)).map_or(&[][..], Vec::as_slice);
                let offer_id = seen.get(usize::from(*pick) % seen.len().max(1)).copied().unwrap_or(u64::from(*pick));
                let agent_id = u64::from(*agent);
                match op {
                    Op::Accept { .. } => convert::accept(pb::AcceptRequest { agent_id, offer_id }),
                    _ => convert::reject(pb::RejectRequest { agent_id, offer_id }),
                }
            }
            Op::Complete { agent, contact } | Op::EndWrapUp { agent, contact } => {
                let (agent, contact) =
                    match (convert::agent_id(u64::from(*agent)), convert::contact_id(u64::from(*contact))) {
                        (Ok(a), Ok(c)) => (a, c),
                        (Err(s), _) | (_, Err(s)) => return Some(Err(s)),
                    };
                Ok(match op {
                    Op::Complete { .. } => Command::Complete { agent, contact },
                    _ => Command::EndWrapUp { agent, contact },
                })
            }
            Op::Open => Ok(Command::OpenSession { session: SessionId(self.opened + 1) }),
            Op::Lose { session } => {
                Ok(Command::LoseSession { session: SessionId(u64::from(*session) % (self.opened + 2)) })
            }
            Op::Drain => Ok(Command::Drain),
            Op::Advance { .. } | Op::From { .. } => return None,
        })
    }

    fn step(&mut self, op: &Op) {
        match op {
            Op::Advance { ms } => {
                self.now = self.now + Duration::from_millis(u64::from(*ms) * 20);
                self.router.handle_timeout(self.now);
                self.drain_events();
            }
            Op::From { session } => self.session = SessionId(u64::from(*session) % (self.opened + 1)),
            _ => {}
        }
        let Some(converted) = self.command(op) else { return self.check() };
        let Ok(command) = converted else { return };
        // Timers due now fire first, so that a refusal can be compared with
        // the state just before it.
        self.router.handle_timeout(self.now);
        self.drain_events();
        let before = self.router.snapshot();
        let session = match command {
            Command::OpenSession { .. } | Command::LoseSession { .. } | Command::Drain => SessionId::LOCAL,
            _ => self.session,
        };
        let opening = matches!(command, Command::OpenSession { .. });
        match self.router.handle_from(self.now, session, command) {
            Ok(_) => {
                if opening {
                    self.opened += 1;
                }
                self.drain_events();
                self.check();
            }
            Err(_) => {
                assert!(self.router.poll_event().is_none(), "a refused command emitted an event");
                assert!(self.router.snapshot() == before, "a refused command changed the state");
            }
        }
    }

    fn drain_events(&mut self) {
        while let Some(event) = self.router.poll_event() {
            if let Event::Offered { agent, offer, .. } = event {
                self.offers.entry(agent.0).or_default().push(offer.0);
            }
            // Every event converts for the wire.
            let _ = convert::event(&self.config.catalog, &event, None);
        }
    }

    /// What holds after every accepted step, from the core's own view.
    fn check(&self) {
        let cfg = &self.config.router;
        let snap = self.router.snapshot();
        assert!(snap.contacts.len() <= cfg.max_contacts as usize);
        let mut offers = HashSet::new();
        let mut held: HashMap<AgentId, [u8; 3]> = HashMap::new();
        for c in &snap.contacts {
            match c.state {
                ContactViewState::Offered { offer, agent } => {
                    assert!(offers.insert(offer), "{offer:?} reserves two contacts");
                    held.entry(agent).or_default()[c.channel.index()] += 1;
                }
                ContactViewState::Connected { agent } => held.entry(agent).or_default()[c.channel.index()] += 1,
                ContactViewState::Scheduled { due } => assert!(due > snap.now, "{:?} overdue", c.id),
                ContactViewState::Waiting { .. } => {}
            }
            let context = self.router.contact_context(c.id).unwrap_or_default();
            assert!(context.len() <= usize::from(cfg.max_context_entries));
            assert!(context.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>() <= cfg.max_context_bytes as usize);
        }
        let sessions: HashMap<SessionId, SessionState> = snap.sessions.iter().map(|s| (s.id, s.state)).collect();
        let alive = |owner: SessionId| match sessions.get(&owner) {
            _ if owner == SessionId::LOCAL => true,
            Some(SessionState::Live) => true,
            Some(SessionState::Lost { until }) => *until > snap.now,
            None => false,
        };
        for c in &snap.contacts {
            assert!(alive(c.owner), "{:?} owned by {:?}, gone", c.id, c.owner);
        }
        for a in &snap.agents {
            assert!(alive(a.owner), "{:?} owned by {:?}, gone", a.id, a.owner);
            let mut usage = held.get(&a.id).copied().unwrap_or_default();
            for &(_, channel, _) in &a.wrap_ups {
                usage[channel.index()] += 1;
            }
            assert_eq!(usage, a.usage, "usage of {:?}", a.id);
            for channel in Channel::ALL {
                assert!(a.usage[channel.index()] <= a.capacity[channel.index()], "{:?} over capacity", a.id);
            }
        }
    }
}

fuzz_target!(|ops: Vec<Op>| {
    let config = config::parse(CONFIG).expect("the fuzz configuration");
    let router = Router::new(config.router.clone()).expect("a valid routing configuration");
    let mut run = Run {
        config,
        router,
        now: Time::from_secs(1_000_000),
        session: SessionId::LOCAL,
        opened: 0,
        offers: HashMap::new(),
    };
    for op in ops.iter().take(200) {
        run.step(op);
    }
});
