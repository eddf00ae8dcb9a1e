//! Sessions: who answers for each contact and agent, the grace a lost
//! session gets, and what happens when it ends. One test per behaviour.

mod common;

use common::*;
use std::time::Duration;

use ccr_core::*;

const GATEWAY: SessionId = SessionId(1);
const DESK: SessionId = SessionId(2);
const NEW_GATEWAY: SessionId = SessionId(3);
const NEW_DESK: SessionId = SessionId(4);

fn harness() -> Harness {
    let mut cfg = Harness::default_config();
    cfg.session_grace = secs(30);
    let mut h = Harness::new(cfg);
    for s in [GATEWAY, DESK, NEW_GATEWAY, NEW_DESK] {
        h.ok(Command::OpenSession { session: s });
    }
    h
}

fn from(h: &mut Harness, session: SessionId, command: Command) -> Result<Reply, CommandError> {
    let r = h.router.handle_from(h.now, session, command);
    while let Some(e) = h.router.poll_event() {
        h.events.push(e);
    }
    r
}

fn ok_from(h: &mut Harness, session: SessionId, command: Command) -> Reply {
    let c = format!("{command:?}");
    from(h, session, command).unwrap_or_else(|e| panic!("{c} from {session:?} failed: {e}"))
}

fn lose(h: &mut Harness, session: SessionId) {
    ok_from(h, SessionId::LOCAL, Command::LoseSession { session });
}

fn abandoned(events: &[Event]) -> Vec<u64> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Abandoned { contact, .. } => Some(contact.0),
            _ => None,
        })
        .collect()
}

#[test]
fn enqueue_makes_the_calling_session_the_owner() {
    let mut h = harness();
    ok_from(&mut h, GATEWAY, Command::Enqueue(contact(1, Q0, GOLD, &[(BILLING, 1)], &[])));
    ok_from(&mut h, DESK, login(10, &[(REPAIR, 5)], &[EN], [1, 0, 0]));
    assert_eq!(h.router.contact_owner(ContactId(1)), Some(GATEWAY));
    assert_eq!(h.router.agent_owner(AgentId(10)), Some(DESK));
}

#[test]
fn a_lost_gateways_contacts_are_abandoned_when_the_grace_ends() {
    let mut h = harness();
    ok_from(&mut h, GATEWAY, Command::Enqueue(contact(1, Q0, GOLD, &[(BILLING, 1)], &[])));
    ok_from(&mut h, GATEWAY, Command::Enqueue(contact(2, Q0, GOLD, &[(BILLING, 1)], &[])));
    h.at(5);
    lose(&mut h, GATEWAY);
    h.at(34);
    assert!(abandoned(&h.take_events()).is_empty(), "the grace runs 30 s from the loss");
    h.at(35);
    let events = h.take_events();
    let mut gone = abandoned(&events);
    gone.sort_unstable();
    assert_eq!(gone, [1, 2]);
    assert!(events.iter().any(|e| matches!(
        e,
        Event::SessionExpired { session: GATEWAY, contacts_ended: 2, callbacks_kept: 0, agents_logged_out: 0 }
    )));
    assert_eq!(h.router.contact_count(), 0);
    assert!(h.router.snapshot().sessions.iter().all(|s| s.id != GATEWAY), "the session is forgotten");
}

#[test]
fn a_contact_named_by_another_session_during_the_grace_is_kept() {
    let mut h = harness();
    ok_from(&mut h, GATEWAY, Command::Enqueue(contact(1, Q0, GOLD, &[(BILLING, 1)], &[])));
    ok_from(&mut h, GATEWAY, Command::Enqueue(contact(2, Q0, GOLD, &[(BILLING, 1)], &[])));
    lose(&mut h, GATEWAY);
    h.at(10);
    ok_from(&mut h, NEW_GATEWAY, Command::ClaimContact { contact: ContactId(1) });
    assert_eq!(h.router.contact_owner(ContactId(1)), Some(NEW_GATEWAY));
    h.at(30);
    assert_eq!(abandoned(&h.take_events()), [2], "only the contact nobody claimed");
    assert_eq!(h.router.contact_owner(ContactId(1)), Some(NEW_GATEWAY));
}

#[test]
fn a_command_from_a_lost_session_is_refused_and_changes_nothing() {
    let mut h = harness();
    ok_from(&mut h, GATEWAY, Command::Enqueue(contact(1, Q0, GOLD, &[(BILLING, 1)], &[])));
    lose(&mut h, GATEWAY);
    let before = h.router.snapshot();
    let late = from(&mut h, GATEWAY, Command::Enqueue(contact(2, Q0, GOLD, &[(BILLING, 1)], &[])));
    assert_eq!(late, Err(CommandError::SessionLost(GATEWAY)));
    assert_eq!(h.router.snapshot(), before, "no contact without an owner to answer for it");
    let unknown = from(&mut h, SessionId(99), Command::Abandon { contact: ContactId(1) });
    assert_eq!(unknown, Err(CommandError::UnknownSession(SessionId(99))));
    assert_eq!(h.router.snapshot(), before);
}

#[test]
fn a_session_that_owns_nothing_is_forgotten_when_lost() {
    let mut h = harness();
    lose(&mut h, GATEWAY);
    assert!(h.router.snapshot().sessions.iter().all(|s| s.id != GATEWAY));
    assert_eq!(from(&mut h, GATEWAY, ready(10)), Err(CommandError::UnknownSession(GATEWAY)));
    assert!(matches!(
        from(&mut h, SessionId::LOCAL, Command::OpenSession { session: GATEWAY }),
        Err(CommandError::Invalid { field: "session", .. })
    ));
}

#[test]
fn a_lost_desktops_agent_stops_taking_offers_at_once_and_is_logged_out_after_the_grace() {
    let mut h = harness();
    ok_from(&mut h, DESK, login(10, &[(BILLING, 5)], &[EN], [0, 2, 0]));
    ok_from(&mut h, DESK, login(11, &[(BILLING, 5)], &[EN], [0, 1, 0]));
    let chat = |id| ContactSpec { channel: Channel::Chat, ..contact(id, Q0, STANDARD, &[(BILLING, 1)], &[]) };
    ok_from(&mut h, GATEWAY, Command::Enqueue(chat(1)));
    ok_from(&mut h, GATEWAY, Command::Enqueue(chat(2)));
    let offers = h.take_offers();
    let on_10: Vec<_> = offers.iter().filter(|o| o.1 == 10).collect();
    ok_from(&mut h, DESK, accept(10, on_10[0].2));
    let ringing_on_10 = offers.iter().find(|o| o.1 == 10 && o.2 != on_10[0].2).map(|o| o.0);
    ok_from(&mut h, SessionId::LOCAL, Command::LoseSession { session: DESK });
    ok_from(&mut h, NEW_DESK, login(12, &[(BILLING, 5)], &[EN], [0, 1, 0]));
    let events = h.take_events();
    // The call in progress carries on; nothing new rings for 10 or 11.
    assert!(!events.iter().any(|e| matches!(e, Event::Completed { .. })), "{events:?}");
    assert_eq!(h.router.agent_state(AgentId(10)), AgentState::Busy);
    assert_eq!(h.router.agent_state(AgentId(11)), AgentState::NotReady(NotReadyReason::Disconnected));
    if let Some(c) = ringing_on_10 {
        assert!(events.iter().any(
            |e| matches!(e, Event::OfferEnded { contact, outcome: OfferOutcome::Withdrawn, .. } if contact.0 == c)
        ));
    }
    h.at(30);
    let events = h.take_events();
    assert!(events.iter().any(|e| matches!(e, Event::Completed { contact: ContactId(1), hung_up: false, .. })));
    assert_eq!(h.router.agent_state(AgentId(10)), AgentState::Offline);
    assert_eq!(h.router.agent_state(AgentId(11)), AgentState::Offline);
    assert!(events.iter().any(|e| matches!(e, Event::SessionExpired { session: DESK, agents_logged_out: 2, .. })));
}

/// A desktop that reconnects and logs in again on a new connection keeps its
/// agent when the old connection finally times out.
#[test]
fn a_stale_sessions_loss_leaves_an_agent_who_logged_in_elsewhere() {
    let mut h = harness();
    ok_from(&mut h, DESK, login(10, &[(BILLING, 5)], &[EN], [1, 0, 0]));
    ok_from(&mut h, GATEWAY, Command::Enqueue(contact(1, Q0, GOLD, &[(BILLING, 1)], &[])));
    let (_, _, offer) = h.take_offers()[0];
    ok_from(&mut h, DESK, accept(10, offer));
    // The desktop comes back on a new connection before the old one is
    // noticed gone, and logs in again: it takes the agent over as it is.
    h.at(3);
    assert_eq!(ok_from(&mut h, NEW_DESK, login(10, &[(REPAIR, 1)], &[ZH], [0, 3, 0])), Reply::Done);
    assert_eq!(h.router.agent_owner(AgentId(10)), Some(NEW_DESK));
    assert_eq!(h.router.agent_state(AgentId(10)), AgentState::Busy, "its call goes on");
    h.take_events();
    h.at(20);
    lose(&mut h, DESK);
    h.at(100);
    assert!(h.take_events().is_empty(), "the stale session's loss changes nothing");
    assert_eq!(h.router.agent_state(AgentId(10)), AgentState::Busy);
    assert_eq!(h.router.snapshot().agents[0].skills, [(BILLING, 5)], "its profile is the one it logged in with");
    // Logging in again on the same session is still refused.
    assert_eq!(
        from(&mut h, NEW_DESK, login(10, &[(BILLING, 5)], &[EN], [1, 0, 0])),
        Err(CommandError::AgentAlreadyLoggedIn(AgentId(10)))
    );
}

#[test]
fn a_desk_call_from_a_new_session_claims_its_agent_back() {
    let mut h = harness();
    ok_from(&mut h, DESK, login(10, &[(BILLING, 5)], &[EN], [1, 0, 0]));
    ok_from(&mut h, GATEWAY, Command::Enqueue(contact(1, Q0, GOLD, &[(BILLING, 1)], &[])));
    let (_, _, offer) = h.take_offers()[0];
    ok_from(&mut h, DESK, accept(10, offer));
    lose(&mut h, DESK);
    h.at(10);
    ok_from(&mut h, NEW_DESK, complete(10, 1));
    assert_eq!(h.router.agent_owner(AgentId(10)), Some(NEW_DESK));
    h.at(100);
    assert_ne!(h.router.agent_state(AgentId(10)), AgentState::Offline, "claimed: the grace no longer applies");
    assert_eq!(
        h.router.agent_state(AgentId(10)),
        AgentState::NotReady(NotReadyReason::Disconnected),
        "not ready until it says ready"
    );
    ok_from(&mut h, NEW_DESK, ready(10));
    assert_eq!(h.router.agent_state(AgentId(10)), AgentState::Available);
}

#[test]
fn a_scheduled_callback_outlives_its_gateways_session() {
    let mut h = harness();
    let spec = contact(1, Q0, GOLD, &[(BILLING, 1)], &[]);
    let callback = Command::ScheduleCallback { spec, due: Time::from_secs(3600), deadline: Time::from_secs(5400) };
    ok_from(&mut h, GATEWAY, callback);
    ok_from(&mut h, GATEWAY, Command::Enqueue(contact(2, Q0, GOLD, &[(BILLING, 1)], &[])));
    lose(&mut h, GATEWAY);
    h.at(30);
    let events = h.take_events();
    assert_eq!(abandoned(&events), [2]);
    assert!(events.iter().any(|e| matches!(e, Event::SessionExpired { callbacks_kept: 1, contacts_ended: 1, .. })));
    assert_eq!(h.router.contact_owner(ContactId(1)), Some(SessionId::LOCAL), "the centre keeps the promise");
    h.login(10, &[(BILLING, 5)], &[EN]);
    h.at(3600);
    assert_eq!(h.take_offers().iter().map(|o| o.0).collect::<Vec<_>>(), [1], "and it is routed when due");
}

#[test]
fn a_restart_gives_every_session_a_whole_grace_from_the_restart() {
    let mut h = harness();
    ok_from(&mut h, GATEWAY, Command::Enqueue(contact(1, Q0, GOLD, &[(BILLING, 1)], &[])));
    ok_from(&mut h, DESK, login(10, &[(REPAIR, 5)], &[EN], [1, 0, 0]));
    ok_from(&mut h, NEW_GATEWAY, Command::Enqueue(contact(2, Q0, GOLD, &[(BILLING, 1)], &[])));
    lose(&mut h, NEW_GATEWAY);
    // Down for an hour: NEW_GATEWAY's grace ran out meanwhile, but nobody
    // could have come back while ccrd was down.
    h.now = Time::from_secs(3600);
    h.ok(Command::Restart);
    let events = h.take_events();
    assert!(abandoned(&events).is_empty(), "{events:?}");
    for s in h.router.snapshot().sessions {
        assert_eq!(s.state, SessionState::Lost { until: Time::from_secs(3630) }, "{:?}", s.id);
    }
    assert_eq!(h.router.agent_state(AgentId(10)), AgentState::NotReady(NotReadyReason::Restart));
    // The gateway reconnects as a new session and names contact 1.
    h.ok(Command::OpenSession { session: SessionId(5) });
    ok_from(&mut h, SessionId(5), Command::ClaimContact { contact: ContactId(1) });
    h.at(3630);
    let events = h.take_events();
    assert_eq!(abandoned(&events), [2]);
    assert_eq!(h.router.agent_state(AgentId(10)), AgentState::Offline, "no desktop came back for it");
    assert_eq!(h.router.contact_owner(ContactId(1)), Some(SessionId(5)));
}

#[test]
fn a_drain_logs_every_agent_out_and_keeps_the_contacts() {
    let mut h = harness();
    ok_from(&mut h, DESK, login(10, &[(BILLING, 5)], &[EN], [1, 0, 0]));
    ok_from(&mut h, DESK, login(11, &[(REPAIR, 5)], &[EN], [1, 0, 0]));
    ok_from(&mut h, GATEWAY, Command::Enqueue(contact(1, Q0, GOLD, &[(BILLING, 1)], &[])));
    ok_from(&mut h, GATEWAY, Command::Enqueue(contact(2, Q0, GOLD, &[(BILLING, 9)], &[])));
    h.take_events();
    assert_eq!(h.ok(Command::Drain), Reply::Drained { agents: 2 });
    let events = h.take_events();
    assert!(events
        .iter()
        .any(|e| matches!(e, Event::OfferEnded { contact: ContactId(1), outcome: OfferOutcome::Withdrawn, .. })));
    assert_eq!(h.router.agent_count(), 0);
    assert_eq!(h.router.contact_count(), 2, "callers stay in line");
    assert!(h.router.snapshot().sessions.iter().any(|s| s.id == DESK && s.agents.is_empty()), "the desk stays open");
}

#[test]
fn the_grace_is_a_routing_setting_that_reconfiguration_changes() {
    let mut h = harness();
    let mut cfg = h.router.config().clone();
    cfg.session_grace = Duration::from_secs(5);
    h.ok(Command::Reconfigure(Box::new(cfg)));
    ok_from(&mut h, GATEWAY, Command::Enqueue(contact(1, Q0, GOLD, &[(BILLING, 1)], &[])));
    lose(&mut h, GATEWAY);
    h.at(5);
    assert_eq!(abandoned(&h.take_events()), [1]);
}

#[test]
fn a_callback_beyond_the_horizon_is_refused() {
    let mut h = harness();
    let spec = contact(1, Q0, GOLD, &[(BILLING, 1)], &[]);
    let far = Command::ScheduleCallback { spec, due: Time::MAX, deadline: Time::MAX };
    assert!(matches!(h.cmd(far), Err(CommandError::Invalid { field: "deadline", .. })));
}

#[test]
fn disconnected_is_a_reason_only_the_router_sets() {
    let mut h = harness();
    ok_from(&mut h, DESK, login(10, &[(BILLING, 5)], &[EN], [1, 0, 0]));
    let before = h.router.snapshot();
    let set = Command::AgentNotReady { agent: AgentId(10), reason: NotReadyReason::Disconnected };
    assert!(matches!(from(&mut h, DESK, set), Err(CommandError::Invalid { field: "reason", .. })));
    assert_eq!(h.router.snapshot(), before);
}
