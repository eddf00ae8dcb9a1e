//! Invariants over random command sequences, checked after every step, and
//! the router's decisions compared with the brute-force reference.
//!
//! Each step first fires the timers due at its time (invariants checked),
//! then applies one command. For commands, every offer the command causes is
//! checked, in order, against [`reference`] on the state before the command
//! with the offers already made applied. Decisions made inside timer batches
//! are covered by the invariants (work conservation, capacity, rank order is
//! exercised by the scenarios).

mod reference;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use ccr_core::*;
use proptest::prelude::*;

const AGENTS: u64 = 6;
const CONTACTS: u64 = 24;
const SKILLS: u16 = 3;
const LANGUAGES: u16 = 3;

fn config(contact_policy: ContactPolicy, agent_policy: AgentPolicy) -> RouterConfig {
    let mut cfg = RouterConfig::default();
    let mut q0 = QueueConfig::new("q0");
    q0.contact_policy = contact_policy;
    q0.agent_policy = agent_policy;
    q0.offer_timeout = Duration::from_secs(8);
    q0.preferred_agent_window = Duration::from_secs(12);
    q0.relaxation = vec![
        RelaxStep { after: Duration::from_secs(10), action: RelaxAction::MinProficiencyAtMost(3) },
        RelaxStep { after: Duration::from_secs(20), action: RelaxAction::NextLanguage },
        RelaxStep { after: Duration::from_secs(40), action: RelaxAction::AnyLanguage },
        RelaxStep { after: Duration::from_secs(60), action: RelaxAction::OverflowTo(QueueId(1)) },
    ];
    let mut q1 = QueueConfig::new("q1");
    q1.contact_policy = contact_policy;
    q1.agent_policy = agent_policy;
    q1.wrap_up = Duration::from_secs(5);
    q1.offer_timeout = Duration::from_secs(15);
    q1.max_waiting = Some(6);
    q1.relaxation = vec![RelaxStep { after: Duration::from_secs(30), action: RelaxAction::AnyLanguage }];
    let mut q2 = QueueConfig::new("q2");
    q2.contact_policy = ContactPolicy::EarliestDeadline;
    q2.agent_policy = agent_policy;
    q2.max_waiting = Some(3);
    q2.when_full = WhenFull::OverflowTo(QueueId(1));
    cfg.queues = vec![q0, q1, q2];
    cfg.session_grace = Duration::from_secs(20);
    // Fewer than the ids the operations use: the limit is reached.
    cfg.max_contacts = 16;
    cfg
}

#[derive(Clone, Debug)]
enum Op {
    Advance(u8),
    Login {
        agent: u64,
        skills: Vec<(u16, u8)>,
        languages: Vec<u16>,
        capacity: [u8; 3],
        ready: bool,
    },
    Logout(u64),
    Disconnect(u64),
    Ready(u64),
    NotReady(u64),
    Accept {
        pick: usize,
        wrong_agent: bool,
    },
    Reject {
        pick: usize,
    },
    Complete {
        pick: usize,
    },
    EndWrapUp {
        pick: usize,
    },
    Enqueue {
        id: u64,
        channel: u8,
        queue: u16,
        tier: u8,
        skills: Vec<(u16, u8)>,
        languages: Vec<u16>,
        preferred: Option<u64>,
    },
    Abandon(u64),
    Transfer {
        id: u64,
        queue: u16,
        skills: Vec<(u16, u8)>,
    },
    Callback {
        id: u64,
        queue: u16,
        due_in: u8,
        slack: u8,
    },
    OpenSession,
    LoseSession(u8),
    ClaimContact(u64),
    Drain,
    /// A supervisor's action: 0 ready, 1 not ready, 2 logout (an agent);
    /// 3 abandon, 4 a new tier (a contact).
    Supervise(u8, u64),
}

fn skill_set() -> impl Strategy<Value = Vec<(u16, u8)>> {
    prop::collection::btree_map(0..SKILLS, 1u8..=10, 1..=2).prop_map(|m| m.into_iter().collect())
}

fn op() -> impl Strategy<Value = Op> {
    let agent = 0..AGENTS;
    let id = 0..CONTACTS;
    prop_oneof![
        4 => any::<u8>().prop_map(|s| Op::Advance(s % 25)),
        2 => (agent.clone(), prop::collection::btree_map(0..SKILLS, 1u8..=10, 1..=3),
              prop::collection::btree_set(0..LANGUAGES, 0..=2),
              prop_oneof![Just([1, 0, 0]), Just([0, 3, 0]), Just([1, 2, 1]), Just([0, 1, 2])], any::<bool>())
            .prop_map(|(agent, skills, languages, capacity, ready)| Op::Login {
                agent, skills: skills.into_iter().collect(), languages: languages.into_iter().collect(), capacity, ready }),
        1 => agent.clone().prop_map(Op::Logout),
        1 => agent.clone().prop_map(Op::Disconnect),
        2 => agent.clone().prop_map(Op::Ready),
        1 => agent.clone().prop_map(Op::NotReady),
        4 => (any::<usize>(), prop::bool::weighted(0.1)).prop_map(|(pick, wrong_agent)| Op::Accept { pick, wrong_agent }),
        1 => any::<usize>().prop_map(|pick| Op::Reject { pick }),
        3 => any::<usize>().prop_map(|pick| Op::Complete { pick }),
        1 => any::<usize>().prop_map(|pick| Op::EndWrapUp { pick }),
        5 => (id.clone(), 0u8..3, 0u16..3, 0u8..3, skill_set(), prop::collection::vec(0..LANGUAGES, 0..=2),
              prop::option::weighted(0.2, 0..AGENTS))
            .prop_map(|(id, channel, queue, tier, skills, mut languages, preferred)| {
                languages.dedup();
                Op::Enqueue { id, channel, queue, tier, skills, languages, preferred }
            }),
        2 => id.clone().prop_map(Op::Abandon),
        1 => (id.clone(), 0u16..3, skill_set()).prop_map(|(id, queue, skills)| Op::Transfer { id, queue, skills }),
        1 => (id.clone(), 0u16..3, any::<u8>(), any::<u8>()).prop_map(|(id, queue, due_in, slack)| Op::Callback {
            id, queue, due_in: due_in % 40, slack: slack % 60 }),
        2 => Just(Op::OpenSession),
        2 => any::<u8>().prop_map(Op::LoseSession),
        1 => id.clone().prop_map(Op::ClaimContact),
        2 => (0u8..5, 0..CONTACTS.max(AGENTS)).prop_map(|(kind, id)| Op::Supervise(kind, id)),
        // A drain one time in four of these: it empties the centre of agents.
        1 => any::<u8>().prop_map(|n| if n < 64 { Op::Drain } else { Op::Advance(1) }),
    ]
}

/// An op and the session it comes from: 0 is the centre's own, `n` the
/// n-th opened (lost ones included, whose commands are refused).
fn from_session() -> impl Strategy<Value = (Op, u8)> {
    (op(), prop_oneof![1 => Just(0u8), 4 => 1u8..6])
}

/// A floor of free agents, then contacts that most of them qualify for: the
/// agent policy decides each offer (in `op()`'s mix, two free agents that
/// both qualify are rare, and a wrong policy went unseen for thousands of
/// cases).
fn many_free_agents_then_arrivals() -> impl Strategy<Value = Vec<Op>> {
    let login = (
        prop::collection::btree_map(0..SKILLS, 1u8..=10, 1..=3),
        prop::collection::btree_set(0..LANGUAGES, 0..=2),
        prop_oneof![Just([1, 0, 0]), Just([0, 3, 0]), Just([1, 2, 1])],
    );
    let arrival = (
        0u8..2,
        0u16..3,
        0u8..3,
        prop::collection::btree_map(0..SKILLS, 1u8..=4, 1..=2),
        prop::collection::vec(0..LANGUAGES, 0..=1),
    );
    (prop::collection::vec(login, 2..=AGENTS as usize), prop::collection::vec(arrival, 1..CONTACTS as usize)).prop_map(
        |(logins, arrivals)| {
            let logins = logins.into_iter().enumerate().map(|(agent, (skills, languages, capacity))| Op::Login {
                agent: agent as u64,
                skills: skills.into_iter().collect(),
                languages: languages.into_iter().collect(),
                capacity,
                ready: true,
            });
            let arrivals =
                arrivals.into_iter().enumerate().flat_map(|(id, (channel, queue, tier, skills, languages))| {
                    let skills = skills.into_iter().collect();
                    let enqueue =
                        Op::Enqueue { id: id as u64, channel, queue, tier, skills, languages, preferred: None };
                    [Op::Advance(1), enqueue]
                });
            logins.chain(arrivals).collect()
        },
    )
}

fn reqs(skills: &[(u16, u8)]) -> SkillReqs {
    skills.iter().map(|&(s, p)| SkillReq { skill: SkillId(s), min_proficiency: p }).collect()
}

fn channel(i: u8) -> Channel {
    Channel::ALL[usize::from(i % 3)]
}

/// Turns an op into a command, given the current state (so that accept,
/// complete and the like mostly name real offers and contacts) and the
/// sessions opened so far.
fn command(op: &Op, snap: &Snapshot, now: Time, opened: u64) -> Option<Command> {
    let offered: Vec<(OfferId, AgentId)> = snap
        .contacts
        .iter()
        .filter_map(|c| match c.state {
            ContactViewState::Offered { offer, agent } => Some((offer, agent)),
            _ => None,
        })
        .collect();
    let connected: Vec<(ContactId, AgentId)> = snap
        .contacts
        .iter()
        .filter_map(|c| match c.state {
            ContactViewState::Connected { agent } => Some((c.id, agent)),
            _ => None,
        })
        .collect();
    let wrapping: Vec<(ContactId, AgentId)> =
        snap.agents.iter().flat_map(|a| a.wrap_ups.iter().map(move |w| (w.0, a.id))).collect();
    let spec = |id: u64, ch: u8, queue: u16, tier: u8, skills: &[(u16, u8)], languages: &[u16]| ContactSpec {
        id: ContactId(id),
        channel: channel(ch),
        queue: QueueId(queue),
        tier: TierId(tier),
        skills: reqs(skills),
        languages: languages.iter().map(|&l| LanguageId(l)).collect(),
        preferred_agents: Vec::new(),
        context: vec![("k".into(), id.to_string())],
    };
    Some(match op {
        Op::Advance(_) => return None,
        Op::Login { agent, skills, languages, capacity, ready } => Command::AgentLogin {
            agent: AgentId(*agent),
            profile: AgentProfile {
                skills: skills.iter().map(|&(s, p)| (SkillId(s), p)).collect(),
                languages: languages.iter().map(|&l| LanguageId(l)).collect(),
                capacity: *capacity,
            },
            ready: *ready,
        },
        Op::Logout(a) => Command::AgentLogout { agent: AgentId(*a) },
        Op::Disconnect(a) => Command::AgentDisconnected { agent: AgentId(*a) },
        Op::Ready(a) => Command::AgentReady { agent: AgentId(*a) },
        Op::NotReady(a) => Command::AgentNotReady { agent: AgentId(*a), reason: NotReadyReason::Break },
        Op::Accept { pick, wrong_agent } => {
            let &(offer, agent) = offered.get(pick % offered.len().max(1))?;
            let agent = if *wrong_agent { AgentId((agent.0 + 1) % AGENTS) } else { agent };
            Command::Accept { agent, offer }
        }
        Op::Reject { pick } => {
            let &(offer, agent) = offered.get(pick % offered.len().max(1))?;
            Command::Reject { agent, offer }
        }
        Op::Complete { pick } => {
            let &(contact, agent) = connected.get(pick % connected.len().max(1))?;
            Command::Complete { agent, contact }
        }
        Op::EndWrapUp { pick } => {
            let &(contact, agent) = wrapping.get(pick % wrapping.len().max(1))?;
            Command::EndWrapUp { agent, contact }
        }
        Op::Enqueue { id, channel, queue, tier, skills, languages, preferred } => {
            let mut s = spec(*id, *channel, *queue, *tier, skills, languages);
            s.preferred_agents = preferred.iter().map(|&a| AgentId(a)).collect();
            Command::Enqueue(s)
        }
        Op::Abandon(id) => Command::Abandon { contact: ContactId(*id) },
        Op::Transfer { id, queue, skills } => Command::Transfer(TransferSpec {
            contact: ContactId(*id),
            queue: QueueId(*queue),
            skills: reqs(skills),
            languages: Languages::new(),
            tier: None,
            context: vec![("transferred".into(), "yes".into())],
        }),
        Op::Callback { id, queue, due_in, slack } => Command::ScheduleCallback {
            spec: spec(*id, 0, *queue, 2, &[(0, 1)], &[]),
            due: now + Duration::from_secs(u64::from(*due_in)),
            deadline: now + Duration::from_secs(u64::from(*due_in) + u64::from(*slack)),
        },
        Op::OpenSession => Command::OpenSession { session: SessionId(opened + 1) },
        Op::LoseSession(pick) => Command::LoseSession { session: SessionId(u64::from(*pick) % (opened + 1)) },
        Op::ClaimContact(id) => Command::ClaimContact { contact: ContactId(*id) },
        Op::Drain => Command::Drain,
        Op::Supervise(kind, id) => {
            let (agent, contact) = (AgentId(id % AGENTS), ContactId(id % CONTACTS));
            let action = match kind {
                0 => Command::AgentReady { agent },
                1 => Command::AgentNotReady { agent, reason: NotReadyReason::Meeting },
                2 => Command::AgentLogout { agent },
                3 => Command::Abandon { contact },
                _ => {
                    let c = snap.contacts.iter().find(|c| c.id == contact)?;
                    Command::Transfer(TransferSpec {
                        contact,
                        queue: c.queue,
                        skills: c.skills.iter().copied().collect(),
                        languages: c.languages.iter().copied().collect(),
                        tier: Some(TierId((c.tier.0 + 1) % 3)),
                        context: Vec::new(),
                    })
                }
            };
            Command::Supervise(Box::new(action))
        }
    })
}

/// Every contact and agent is owned by the centre or by a session that is
/// live or within its grace; each session's chains list exactly what names
/// it as owner; a lost session's agents take no offer.
fn check_sessions(snap: &Snapshot) -> Result<(), TestCaseError> {
    let now = snap.now;
    let sessions: HashMap<SessionId, &SessionView> = snap.sessions.iter().map(|s| (s.id, s)).collect();
    let alive = |owner: SessionId| -> Result<(), TestCaseError> {
        if owner == SessionId::LOCAL {
            return Ok(());
        }
        let s = sessions.get(&owner);
        prop_assert!(s.is_some(), "owner {:?} is not an open session", owner);
        if let SessionState::Lost { until } = s.unwrap().state {
            prop_assert!(until > now, "{:?} outlived its grace (until {:?}, now {:?})", owner, until, now);
        }
        Ok(())
    };
    for c in &snap.contacts {
        alive(c.owner)?;
    }
    for a in &snap.agents {
        alive(a.owner)?;
        if let Some(SessionState::Lost { .. }) = sessions.get(&a.owner).map(|s| s.state) {
            prop_assert!(a.presence.is_some(), "{:?} of a lost session is ready", a.id);
            prop_assert!(a.state != AgentState::Reserved, "{:?} of a lost session has an offer ringing", a.id);
        }
    }
    for s in &snap.sessions {
        prop_assert!(s.id != SessionId::LOCAL);
        let mut contacts: Vec<ContactId> = snap.contacts.iter().filter(|c| c.owner == s.id).map(|c| c.id).collect();
        let mut agents: Vec<AgentId> = snap.agents.iter().filter(|a| a.owner == s.id).map(|a| a.id).collect();
        contacts.sort_unstable();
        agents.sort_unstable();
        prop_assert_eq!(&contacts, &s.contacts, "contacts of {:?}", s.id);
        prop_assert_eq!(&agents, &s.agents, "agents of {:?}", s.id);
        if let SessionState::Lost { .. } = s.state {
            prop_assert!(!(contacts.is_empty() && agents.is_empty()), "{:?}: lost, owning nothing, kept", s.id);
        }
    }
    Ok(())
}

/// Invariants that hold after every step.
fn check_invariants(cfg: &RouterConfig, snap: &Snapshot) -> Result<(), TestCaseError> {
    let now = snap.now;
    let mut offers = HashSet::new();
    let mut held_by: HashMap<AgentId, [u8; 3]> = HashMap::new();
    prop_assert!(snap.contacts.len() <= cfg.max_contacts as usize, "{} contacts held", snap.contacts.len());
    for c in &snap.contacts {
        match c.state {
            ContactViewState::Offered { offer, agent } => {
                prop_assert!(offers.insert(offer), "offer {offer:?} reserves two contacts");
                held_by.entry(agent).or_default()[c.channel.index()] += 1;
            }
            ContactViewState::Connected { agent } => held_by.entry(agent).or_default()[c.channel.index()] += 1,
            ContactViewState::Waiting { .. } => {
                // Relaxation as the reference computes it from the clock.
                let (skills, languages) = reference::effective(cfg, c, now);
                prop_assert_eq!(&skills, &c.effective_skills, "relaxed skills of {:?}", c.id);
                prop_assert_eq!(&languages, &c.effective_languages, "relaxed languages of {:?}", c.id);
            }
            ContactViewState::Scheduled { due } => prop_assert!(due > now, "callback {:?} overdue", c.id),
        }
    }
    for a in &snap.agents {
        let mut expected = held_by.get(&a.id).copied().unwrap_or_default();
        for &(_, ch, _) in &a.wrap_ups {
            expected[ch.index()] += 1;
        }
        prop_assert_eq!(expected, a.usage, "usage of {:?} matches its contacts", a.id);
        for ch in Channel::ALL {
            prop_assert!(a.usage[ch.index()] <= a.capacity[ch.index()], "{:?} over capacity on {:?}", a.id, ch);
        }
        if a.usage[0] > 0 {
            prop_assert!(a.usage[1] == 0 && a.usage[2] == 0, "{:?}: voice shares with other work", a.id);
        }
        prop_assert_eq!(a.idle_order != 0, Channel::ALL.iter().any(|&ch| reference::has_room(a, ch)));
    }
    // Work conservation: a waiting contact that is not held has no available
    // agent who qualifies. (Held contacts are the named exception.)
    for c in &snap.contacts {
        if c.state != (ContactViewState::Waiting { held_until: None }) {
            continue;
        }
        let (skills, languages) = reference::effective(cfg, c, now);
        for a in &snap.agents {
            prop_assert!(
                !(reference::has_room(a, c.channel) && reference::qualifies(a, &skills, &languages)),
                "{:?} waits while {:?} is available and qualifies",
                c.id,
                a.id
            );
        }
    }
    Ok(())
}

/// A waiting contact's position, as the router keeps it, against a count of
/// the contacts of its queue that wait with a better rank; and its
/// estimated wait: within its own range unless uncertain, and never shorter
/// than that of a contact ahead of it in the same queue and tier with the
/// same requirements (the same agents, rates and overtakers).
fn check_positions(router: &Router, snap: &Snapshot) -> Result<(), TestCaseError> {
    let waiting = |c: &&ContactView| matches!(c.state, ContactViewState::Waiting { .. });
    let mut estimates = Vec::new();
    for c in snap.contacts.iter().filter(waiting) {
        let ahead = snap.contacts.iter().filter(waiting).filter(|o| o.queue == c.queue && o.rank < c.rank).count();
        let estimate = router.estimate_wait(c.id).expect("a waiting contact is known");
        prop_assert_eq!(estimate.position as usize, ahead + 1, "position of {:?}", c.id);
        if estimate.method != EwtMethod::Stalled {
            prop_assert!(
                estimate.low <= estimate.estimated_wait && estimate.estimated_wait <= estimate.high,
                "{:?}: {:?}",
                c.id,
                estimate
            );
        }
        estimates.push((c, estimate));
    }
    for (c, e) in &estimates {
        for (o, f) in &estimates {
            let alike = o.queue == c.queue
                && o.tier == c.tier
                && o.channel == c.channel
                && o.effective_skills == c.effective_skills
                && o.effective_languages == c.effective_languages;
            if alike && o.rank < c.rank {
                prop_assert!(
                    f.estimated_wait <= e.estimated_wait,
                    "{:?} (position {}) is estimated to wait {:?}, less than {:?} ahead of it ({:?})",
                    c.id,
                    e.position,
                    e.estimated_wait,
                    o.id,
                    f.estimated_wait
                );
            }
        }
    }
    Ok(())
}

/// Each queue's oldest wait against a scan of its waiting contacts.
fn check_oldest_waits(cfg: &RouterConfig, router: &Router, snap: &Snapshot) -> Result<(), TestCaseError> {
    for q in (0..cfg.queues.len()).map(|q| QueueId(q as u16)) {
        let waiting =
            snap.contacts.iter().filter(|c| c.queue == q && matches!(c.state, ContactViewState::Waiting { .. }));
        let expected = waiting.map(|c| c.arrival).min().map(|a| snap.now.since(a));
        prop_assert_eq!(router.queue_stats(q).unwrap().oldest_wait, expected, "oldest wait of {:?}", q);
    }
    Ok(())
}

/// Compares each offer a command made with the reference, in order.
fn check_decisions(
    cfg: &RouterConfig,
    command: &Command,
    before: &Snapshot,
    after: &Snapshot,
    events: &[Event],
) -> Result<(), TestCaseError> {
    let now = after.now;
    let mut agents: Vec<AgentView> = before.agents.clone();
    let mut contacts: Vec<ContactView> = before.contacts.clone();
    let post = |id: ContactId| after.contacts.iter().find(|c| c.id == id).cloned();
    let mut next_order = after.agents.iter().map(|a| a.idle_order).max().unwrap_or(0) + 1;
    // The command's own effect, before any offer.
    match command {
        Command::AgentLogin { agent, .. } | Command::AgentReady { agent } => {
            let a = after.agents.iter().find(|a| a.id == *agent).expect("logged in");
            agents.retain(|x| x.id != *agent);
            let mut a = a.clone();
            a.usage = before.agents.iter().find(|x| x.id == *agent).map_or([0; 3], |x| x.usage);
            a.presence = None;
            agents.push(a);
        }
        Command::AgentLogout { agent } | Command::AgentDisconnected { agent } => agents.retain(|a| a.id != *agent),
        Command::Reject { agent, .. } => {
            if let Some(a) = agents.iter_mut().find(|a| a.id == *agent) {
                a.presence = Some(NotReadyReason::Declined);
            }
        }
        Command::Enqueue(spec) => contacts.extend(post(spec.id)),
        Command::Complete { agent, contact } => {
            let c = contacts.iter().find(|c| c.id == *contact).expect("connected contact");
            if cfg.queues[usize::from(c.queue.0)].wrap_up.is_zero() {
                let ch = c.channel;
                agents.iter_mut().find(|a| a.id == *agent).expect("agent").usage[ch.index()] -= 1;
            }
            contacts.retain(|c| c.id != *contact);
        }
        Command::EndWrapUp { agent, contact } => {
            let a = agents.iter_mut().find(|a| a.id == *agent).expect("agent");
            let pos = a.wrap_ups.iter().position(|w| w.0 == *contact).expect("wrap-up");
            a.usage[a.wrap_ups[pos].1.index()] -= 1;
            a.wrap_ups.remove(pos);
        }
        Command::Abandon { contact } => {
            if let Some(c) = contacts.iter().find(|c| c.id == *contact) {
                let freed = match c.state {
                    ContactViewState::Offered { agent, .. } => Some(agent),
                    // A hang-up during the call: wrap-up, if the queue has one.
                    ContactViewState::Connected { agent } => {
                        cfg.queues[usize::from(c.queue.0)].wrap_up.is_zero().then_some(agent)
                    }
                    _ => None,
                };
                if let Some(agent) = freed {
                    let ch = c.channel;
                    let a = agents.iter_mut().find(|a| a.id == agent).expect("agent");
                    a.usage[ch.index()] -= 1;
                }
            }
            contacts.retain(|c| c.id != *contact);
        }
        Command::Supervise(action) => return check_decisions(cfg, action, before, after, events),
        _ => return Ok(()), // transfers and callbacks: invariants only
    }
    for e in events {
        let Event::Offered { contact, agent, trigger, .. } = e else { continue };
        let c = contacts.iter().find(|c| c.id == *contact).cloned();
        prop_assert!(c.is_some(), "offered contact {:?} unknown to the reference", contact);
        let mut c = c.unwrap();
        // A contact returning after reject/withdrawal keeps its place; its
        // requirements are those of the clock.
        c.state = ContactViewState::Waiting { held_until: None };
        match trigger {
            Trigger::AgentAvailable => {
                let a = agents.iter().find(|a| a.id == *agent).expect("agent");
                let expected = reference::best_contact(cfg, now, a, contacts.iter());
                prop_assert_eq!(
                    expected,
                    Some(*contact),
                    "agent {:?} took the wrong contact\n{:?}\n{:?}",
                    agent,
                    a,
                    contacts
                );
            }
            Trigger::ContactWaiting => {
                let (skills, languages) = reference::effective(cfg, &c, now);
                let policy = cfg.queues[usize::from(c.queue.0)].agent_policy;
                let expected = reference::best_agent(agents.iter(), c.channel, &skills, &languages, policy);
                prop_assert_eq!(expected, Some(*agent), "contact {:?} got the wrong agent", contact);
            }
            Trigger::PreferredAgent => {
                prop_assert!(c.preferred.contains(agent), "{:?} is not preferred", agent);
            }
        }
        // Apply the offer.
        contacts.retain(|x| x.id != *contact);
        let a = agents.iter_mut().find(|a| a.id == *agent).expect("agent");
        a.usage[c.channel.index()] += 1;
        a.idle_order = if Channel::ALL.iter().any(|&ch| reference::has_room(a, ch)) {
            next_order += 1;
            next_order
        } else {
            0
        };
    }
    // For commands that only re-route one side, the reference agrees that
    // nothing more could have been offered.
    Ok(())
}

fn run(
    ops: &[(Op, u8)],
    contact_policy: ContactPolicy,
    agent_policy: AgentPolicy,
    check: bool,
) -> Result<Vec<String>, TestCaseError> {
    let cfg = config(contact_policy, agent_policy);
    let mut router = Router::new(cfg.clone()).expect("valid");
    let mut now = Time::ZERO;
    let mut log = Vec::new();
    let mut connected: HashSet<ContactId> = HashSet::new();
    let mut drain = |router: &mut Router, log: &mut Vec<String>| -> Result<Vec<Event>, TestCaseError> {
        let mut events = Vec::new();
        while let Some(e) = router.poll_event() {
            match &e {
                Event::Connected { contact, .. } => {
                    prop_assert!(connected.insert(*contact), "{:?} connected twice", contact)
                }
                Event::Completed { contact, .. } | Event::Transferred { contact, .. } => {
                    connected.remove(contact);
                }
                _ => {}
            }
            log.push(format!("{e:?}"));
            events.push(e);
        }
        Ok(events)
    };
    let mut opened = 0u64;
    for (op, from) in ops {
        if let Op::Advance(s) = op {
            now = now + Duration::from_millis(u64::from(*s) * 500);
        }
        router.handle_timeout(now);
        drain(&mut router, &mut log)?;
        let before = router.snapshot();
        if check {
            check_invariants(&cfg, &before)?;
            check_positions(&router, &before)?;
            check_oldest_waits(&cfg, &router, &before)?;
            check_sessions(&before)?;
            let in_grace = before.sessions.iter().filter(|s| matches!(s.state, SessionState::Lost { .. })).count();
            let counts = router.session_counts();
            prop_assert_eq!((counts.live, counts.in_grace), (before.sessions.len() - in_grace, in_grace));
            // The sampler's statistics of every queue against the per-queue query.
            let each: Vec<_> = (0..cfg.queues.len()).map(|q| router.queue_stats(QueueId(q as u16)).unwrap()).collect();
            prop_assert_eq!(router.all_queue_stats(), each);
        }
        let Some(cmd) = command(op, &before, now, opened) else { continue };
        let session = SessionId(u64::from(*from) % (opened + 1));
        let result = router.handle_from(now, session, cmd.clone());
        if let (Command::OpenSession { .. }, Ok(_)) = (&cmd, &result) {
            opened += 1;
        }
        log.push(format!("{cmd:?} -> {result:?}"));
        let events = drain(&mut router, &mut log)?;
        if !check {
            continue;
        }
        let after = router.snapshot();
        match result {
            Err(_) => {
                prop_assert_eq!(&before, &after, "a refused command changed the state");
                prop_assert!(events.is_empty());
            }
            Ok(_) => {
                check_invariants(&cfg, &after)?;
                check_sessions(&after)?;
                match cmd.names() {
                    Named::Agent(a) => {
                        let owner = after.agents.iter().find(|x| x.id == a).map(|x| x.owner);
                        prop_assert!(owner.is_none_or(|o| o == session), "{:?} not claimed by {:?}", a, session);
                    }
                    Named::Contact(c) => {
                        let owner = after.contacts.iter().find(|x| x.id == c).map(|x| x.owner);
                        prop_assert!(owner.is_none_or(|o| o == session), "{:?} not claimed by {:?}", c, session);
                    }
                    Named::Nothing => {}
                }
                // A supervisor's action claims nothing: every agent and
                // contact still there keeps its owner.
                if let Command::Supervise(_) = &cmd {
                    for a in &after.agents {
                        let was = before.agents.iter().find(|x| x.id == a.id).map(|x| x.owner);
                        prop_assert!(was.is_none_or(|o| o == a.owner), "supervision moved {:?}", a.id);
                    }
                    for c in &after.contacts {
                        let was = before.contacts.iter().find(|x| x.id == c.id).map(|x| x.owner);
                        prop_assert!(was.is_none_or(|o| o == c.owner), "supervision moved {:?}", c.id);
                    }
                }
                // A takeover is a login that changes hands, not a new agent.
                let took_over = matches!(cmd, Command::AgentLogin { agent, .. }
                    if before.agents.iter().any(|a| a.id == agent));
                if !took_over {
                    check_decisions(&cfg, &cmd, &before, &after, &events)?;
                }
            }
        }
    }
    Ok(log)
}

fn policies() -> impl Strategy<Value = (ContactPolicy, AgentPolicy)> {
    (
        prop_oneof![
            Just(ContactPolicy::StrictTier),
            Just(ContactPolicy::TierAging),
            Just(ContactPolicy::EarliestDeadline)
        ],
        prop_oneof![
            Just(AgentPolicy::LongestIdle),
            Just(AgentPolicy::MostProficient),
            Just(AgentPolicy::LeastOccupied)
        ],
    )
}

/// 400 cases a test in CI; `PROPTEST_CASES` raises it for a longer hunt
/// (`PROPTEST_CASES=20000 cargo test --release -p ccr-core --test properties`).
fn cases() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(400);
    ProptestConfig { cases, ..ProptestConfig::default() }
}

proptest! {
    #![proptest_config(cases())]

    /// Invariants 1–4 and 6 of the routing core, after every step.
    #[test]
    fn invariants_and_reference_hold_after_every_step(
        ops in prop::collection::vec(from_session(), 1..160),
        (cp, ap) in policies(),
    ) {
        run(&ops, cp, ap, true)?;
    }

    /// Invariant 6 where the agent policy decides: each arriving contact gets
    /// the reference's best of many free agents.
    #[test]
    fn arrivals_get_the_reference_agent_among_many_free(
        ops in many_free_agents_then_arrivals(),
        (cp, ap) in policies(),
    ) {
        let ops: Vec<(Op, u8)> = ops.into_iter().map(|op| (op, 0)).collect();
        run(&ops, cp, ap, true)?;
    }

    /// Invariant 5: the same inputs give the same outputs.
    #[test]
    fn same_inputs_give_same_outputs(ops in prop::collection::vec(from_session(), 1..160), (cp, ap) in policies()) {
        let first = run(&ops, cp, ap, false)?;
        let second = run(&ops, cp, ap, false)?;
        prop_assert_eq!(first, second);
    }
}

/// A router rebuilt from its exported records.
fn rebuilt(router: &Router) -> Result<Router, StateError> {
    let mut restore = Router::restore(router.export_header())?;
    for agent in router.export_agents() {
        restore.agent(agent)?;
    }
    for contact in router.export_contacts() {
        restore.contact(contact)?;
    }
    for timer in router.export_timers() {
        restore.timer(timer)?;
    }
    restore.finish()
}

/// Everything a router exports, agents and contacts by id (where records
/// sit in memory may differ after a rebuild).
fn exported(router: &Router) -> String {
    let mut agents: Vec<_> = router.export_agents().collect();
    agents.sort_unstable_by_key(|a| a.id);
    let mut contacts: Vec<_> = router.export_contacts().collect();
    contacts.sort_unstable_by_key(|c| c.id);
    format!("{:?}\n{agents:?}\n{contacts:?}\n{:?}", router.export_header(), router.export_timers())
}

/// Runs `ops` on one router, and on a second one rebuilt from its own
/// records wherever `rebuild_at` says; every few steps both are
/// reconfigured (which re-checks every waiting contact). Returns each one's
/// log of commands, replies and events.
fn run_with_rebuilds(
    ops: &[(Op, u8)],
    rebuild_at: &[bool],
    (cp, ap): (ContactPolicy, AgentPolicy),
) -> Result<(Vec<String>, Vec<String>), TestCaseError> {
    let cfg = config(cp, ap);
    let mut original = Router::new(cfg.clone()).expect("valid");
    let mut restored = Router::new(cfg.clone()).expect("valid");
    let (mut a, mut b) = (Vec::new(), Vec::new());
    let (mut now, mut opened) = (Time::ZERO, 0u64);
    let drain = |router: &mut Router, log: &mut Vec<String>| {
        while let Some(e) = router.poll_event() {
            log.push(format!("{e:?}"));
        }
    };
    for (i, (op, from)) in ops.iter().enumerate() {
        if rebuild_at.get(i).copied().unwrap_or(false) {
            restored = rebuilt(&restored).map_err(|e| TestCaseError::fail(format!("step {i}: {e}")))?;
            prop_assert_eq!(exported(&restored), exported(&original), "step {}: the rebuilt router's records", i);
        }
        if let Op::Advance(s) = op {
            now = now + Duration::from_millis(u64::from(*s) * 500);
        }
        for (router, log) in [(&mut original, &mut a), (&mut restored, &mut b)] {
            router.handle_timeout(now);
            drain(router, log);
        }
        let cmd = if i % 17 == 16 {
            // Every other time, relaxation that is due at once for most
            // waiting contacts: several become routable together, and
            // compete for the same agents.
            let mut changed = cfg.clone();
            if i % 2 == 0 {
                changed.queues[0].contact_policy = ContactPolicy::TierAging;
                changed.queues[0].relaxation = vec![
                    RelaxStep { after: Duration::from_secs(1), action: RelaxAction::MinProficiencyAtMost(1) },
                    RelaxStep { after: Duration::from_secs(2), action: RelaxAction::AnyLanguage },
                ];
                changed.queues[1].relaxation = changed.queues[0].relaxation.clone();
            }
            Some(Command::Reconfigure(Box::new(changed)))
        } else {
            command(op, &original.snapshot(), now, opened)
        };
        let Some(cmd) = cmd else { continue };
        let session = SessionId(u64::from(*from) % (opened + 1));
        for (router, log) in [(&mut original, &mut a), (&mut restored, &mut b)] {
            let result = router.handle_from(now, session, cmd.clone());
            log.push(format!("{cmd:?} -> {result:?}"));
            drain(router, log);
        }
        if let Command::OpenSession { .. } = cmd {
            opened = original.last_session().0;
        }
        prop_assert_eq!(exported(&restored), exported(&original), "after step {}: {:?}", i, cmd);
    }
    prop_assert_eq!(original.snapshot(), restored.snapshot());
    Ok((a, b))
}

proptest! {
    #![proptest_config(cases())]

    /// A router rebuilt from its records (a snapshot's content) decides
    /// exactly as the original: the same replies and events, command for
    /// command, through offers, wrap-ups, sessions in grace, timers due at
    /// one instant and reconfigurations, and the same records after.
    #[test]
    fn a_router_rebuilt_from_its_records_decides_as_the_original(
        ops in prop::collection::vec(from_session(), 1..200),
        rebuild_at in prop::collection::vec(prop::bool::weighted(0.15), 200),
        policies in policies(),
    ) {
        let (original, restored) = run_with_rebuilds(&ops, &rebuild_at, policies)?;
        prop_assert_eq!(original, restored);
    }
}
