//! Behaviour of the router, one scenario per rule, named after the rule.

mod common;

use std::time::Duration;

use ccr_core::*;
use common::*;

fn harness() -> Harness {
    Harness::new(Harness::default_config())
}

/// One agent busy, then several contacts wait; returns the order in which the
/// agent is offered them as it completes each one.
fn service_order(h: &mut Harness, agent: u64, n: usize) -> Vec<u64> {
    let mut order = Vec::new();
    for _ in 0..n {
        let offers = h.take_offers();
        assert_eq!(offers.len(), 1, "one offer at a time: {offers:?}");
        let (c, a, offer) = offers[0];
        assert_eq!(a, agent);
        order.push(c);
        h.ok(accept(agent, offer));
        h.ok(complete(agent, c));
    }
    order
}

#[test]
fn gold_served_before_standard() {
    let mut h = harness();
    h.enqueue(contact(1, Q0, STANDARD, &[(BILLING, 1)], &[]));
    h.at(1).enqueue(contact(2, Q0, STANDARD, &[(BILLING, 1)], &[]));
    h.at(2).enqueue(contact(3, Q0, GOLD, &[(BILLING, 1)], &[]));
    h.at(3).enqueue(contact(4, Q0, SILVER, &[(BILLING, 1)], &[]));
    h.at(4).login(10, &[(BILLING, 5)], &[EN]);
    assert_eq!(service_order(&mut h, 10, 4), vec![3, 4, 1, 2]);
}

#[test]
fn fifo_within_a_tier() {
    let mut h = harness();
    for i in 1..=5 {
        h.at(i).enqueue(contact(i, Q0, SILVER, &[(BILLING, 1)], &[]));
    }
    h.at(10).login(10, &[(BILLING, 5)], &[EN]);
    assert_eq!(service_order(&mut h, 10, 5), vec![1, 2, 3, 4, 5]);
}

#[test]
fn tier_aging_bounds_how_long_standard_is_overtaken() {
    // Gold boost 60 s, standard 0 s: a standard contact that has waited 60 s
    // is not overtaken by any gold contact arriving later.
    let mut h = harness();
    h.login(10, &[(BILLING, 5)], &[EN]);
    h.ok(contact_enqueue(100, GOLD, 0)); // occupies the agent
    let (_, _, first) = h.take_offers()[0];
    h.ok(accept(10, first));
    h.at(1).ok(contact_enqueue(1, STANDARD, 1));
    // Gold contacts arrive every 10 s for five minutes.
    for t in (10..300).step_by(10) {
        h.at(t).ok(contact_enqueue(1000 + t, GOLD, t));
    }
    h.at(300).ok(complete(10, 100));
    let mut served_before_standard = Vec::new();
    loop {
        let (c, _, offer) = h.take_offers()[0];
        h.ok(accept(10, offer));
        h.ok(complete(10, c));
        if c == 1 {
            break;
        }
        served_before_standard.push(c - 1000);
    }
    // Only gold contacts that arrived before 1 s + 60 s overtook it.
    assert!(!served_before_standard.is_empty());
    assert!(served_before_standard.iter().all(|&arrival| arrival < 61), "{served_before_standard:?}");
}

fn contact_enqueue(id: u64, tier: TierId, _arrival: u64) -> Command {
    Command::Enqueue(contact(id, Q0, tier, &[(BILLING, 1)], &[]))
}

#[test]
fn strict_tier_lets_every_gold_contact_overtake() {
    let mut cfg = Harness::default_config();
    cfg.queues[0].contact_policy = ContactPolicy::StrictTier;
    let mut h = Harness::new(cfg);
    h.ok(contact_enqueue(1, STANDARD, 0));
    for t in 1..=5 {
        h.at(t * 100).ok(contact_enqueue(1000 + t, GOLD, t));
    }
    h.at(600).login(10, &[(BILLING, 5)], &[EN]);
    assert_eq!(service_order(&mut h, 10, 6), vec![1001, 1002, 1003, 1004, 1005, 1]);
}

#[test]
fn earliest_deadline_first_serves_the_nearest_deadline() {
    let mut cfg = Harness::default_config();
    cfg.queues[0].contact_policy = ContactPolicy::EarliestDeadline;
    let mut h = Harness::new(cfg);
    // Due now, deadline in 5 s: nearer than the 20 s threshold of a fresh call.
    h.ok(contact_enqueue(1, STANDARD, 0));
    h.at(1).ok(Command::ScheduleCallback {
        spec: contact(2, Q0, STANDARD, &[(BILLING, 1)], &[]),
        due: Time::from_secs(1),
        deadline: Time::from_secs(6),
    });
    h.at(2).login(10, &[(BILLING, 5)], &[EN]);
    assert_eq!(service_order(&mut h, 10, 2), vec![2, 1]);
}

#[test]
fn longest_idle_agent_gets_the_contact() {
    let mut h = harness();
    h.login(10, &[(BILLING, 5)], &[EN]);
    h.at(1).login(11, &[(BILLING, 9)], &[EN]);
    h.at(2).login(12, &[(BILLING, 5)], &[EN]);
    h.at(3).enqueue(contact(1, Q0, STANDARD, &[(BILLING, 1)], &[]));
    assert_eq!(h.take_offers()[0].1, 10);
}

#[test]
fn most_proficient_agent_gets_the_contact() {
    let mut cfg = Harness::default_config();
    cfg.queues[0].agent_policy = AgentPolicy::MostProficient;
    let mut h = Harness::new(cfg);
    h.login(10, &[(BILLING, 5)], &[EN]);
    h.at(1).login(11, &[(BILLING, 9)], &[EN]);
    h.at(2).login(12, &[(BILLING, 9)], &[EN]);
    h.at(3).enqueue(contact(1, Q0, STANDARD, &[(BILLING, 1)], &[]));
    assert_eq!(h.take_offers()[0].1, 11, "most proficient, then longest idle");
}

#[test]
fn least_occupied_chat_agent_gets_the_chat() {
    let mut cfg = Harness::default_config();
    cfg.queues[0].agent_policy = AgentPolicy::LeastOccupied;
    let mut h = Harness::new(cfg);
    h.ok(login(10, &[(BILLING, 5)], &[EN], [0, 3, 0]));
    h.ok(login(11, &[(BILLING, 5)], &[EN], [0, 3, 0]));
    let chat = |id| ContactSpec { channel: Channel::Chat, ..contact(id, Q0, STANDARD, &[(BILLING, 1)], &[]) };
    let mut counts = [0u32; 2];
    for i in 1..=6 {
        h.at(i).enqueue(chat(i));
        let (_, agent, offer) = h.take_offers()[0];
        h.ok(accept(agent, offer));
        counts[(agent - 10) as usize] += 1;
        let diff = counts[0].abs_diff(counts[1]);
        assert!(diff <= 1, "chats spread evenly: {counts:?}");
    }
    assert_eq!(counts, [3, 3]);
    h.at(7).enqueue(chat(7));
    assert!(h.take_offers().is_empty(), "both agents at capacity");
}

#[test]
fn chat_capacity_is_never_exceeded_and_voice_blocks_other_channels() {
    let mut h = harness();
    h.ok(login(10, &[(BILLING, 5)], &[EN], [1, 2, 0]));
    let chat = |id| ContactSpec { channel: Channel::Chat, ..contact(id, Q0, STANDARD, &[(BILLING, 1)], &[]) };
    h.enqueue(chat(1));
    h.enqueue(chat(2));
    h.enqueue(chat(3));
    h.enqueue(contact(4, Q0, STANDARD, &[(BILLING, 1)], &[]));
    let offers = h.take_offers();
    assert_eq!(offers.iter().map(|o| o.0).collect::<Vec<_>>(), vec![1, 2]);
    for (c, _, offer) in offers {
        h.ok(accept(10, offer));
        h.ok(complete(10, c));
    }
    // Free again: the voice call (waiting longer than chat 3? no: 3 came first).
    let next = h.take_offers();
    assert_eq!(next[0].0, 3);
    h.ok(accept(10, next[0].2));
    assert!(h.take_offers().is_empty(), "a chat in progress blocks the voice call");
    h.ok(complete(10, 3));
    let (c, _, offer) = h.take_offers()[0];
    assert_eq!(c, 4);
    h.ok(accept(10, offer));
    h.enqueue(chat(5));
    assert!(h.take_offers().is_empty(), "a voice call blocks chats");
}

#[test]
fn proficiency_relaxes_after_waiting() {
    let mut cfg = Harness::default_config();
    cfg.queues[0].relaxation = vec![RelaxStep { after: secs(30), action: RelaxAction::MinProficiencyAtMost(3) }];
    let mut h = Harness::new(cfg);
    h.login(10, &[(BILLING, 4)], &[EN]);
    h.enqueue(contact(1, Q0, STANDARD, &[(BILLING, 6)], &[]));
    h.at(29);
    assert!(h.take_offers().is_empty());
    h.at(30);
    let offers = h.take_offers();
    assert_eq!(offers.len(), 1, "relaxed to 3 at 30 s");
    assert_eq!(offers[0].1, 10);
}

#[test]
fn language_fallback_after_relaxation() {
    let mut cfg = Harness::default_config();
    cfg.queues[0].relaxation = vec![
        RelaxStep { after: secs(60), action: RelaxAction::NextLanguage },
        RelaxStep { after: secs(120), action: RelaxAction::AnyLanguage },
    ];
    let mut h = Harness::new(cfg);
    h.login(10, &[(BILLING, 5)], &[ZH]);
    h.login(11, &[(BILLING, 5)], &[EN]);
    h.enqueue(contact(1, Q0, STANDARD, &[(BILLING, 1)], &[YUE, ZH]));
    h.enqueue(contact(2, Q0, STANDARD, &[(BILLING, 1)], &[YUE]));
    h.at(59);
    assert!(h.take_offers().is_empty(), "nobody speaks Cantonese");
    h.at(60);
    assert_eq!(h.take_offers().iter().map(|o| (o.0, o.1)).collect::<Vec<_>>(), vec![(1, 10)]);
    h.at(120);
    assert_eq!(h.take_offers().iter().map(|o| (o.0, o.1)).collect::<Vec<_>>(), vec![(2, 11)]);
}

/// An agent's search skips its lists of any-language contacts while they
/// are all empty; once a contact relaxes to any language it must read them
/// again, and skip them again once that contact is gone.
#[test]
fn an_agent_coming_ready_takes_a_contact_relaxed_to_any_language() {
    let mut cfg = Harness::default_config();
    cfg.queues[0].relaxation = vec![RelaxStep { after: secs(30), action: RelaxAction::AnyLanguage }];
    let mut h = Harness::new(cfg);
    h.login(10, &[(BILLING, 5)], &[EN]);
    h.ok(not_ready(10));
    h.enqueue(contact(1, Q0, STANDARD, &[(BILLING, 1)], &[YUE]));
    h.at(30);
    assert!(h.take_offers().is_empty(), "agent 10 is not ready");
    h.ok(ready(10));
    assert_eq!(h.take_offers().iter().map(|o| (o.0, o.1)).collect::<Vec<_>>(), vec![(1, 10)]);
    // Nothing waits under any language now: the next contact is found in
    // the agent's own language, and one it cannot take is not offered.
    h.enqueue(contact(2, Q0, STANDARD, &[(BILLING, 1)], &[EN]));
    h.enqueue(contact(3, Q0, STANDARD, &[(BILLING, 1)], &[YUE]));
    h.login(11, &[(BILLING, 5)], &[EN]);
    assert_eq!(h.take_offers().iter().map(|o| (o.0, o.1)).collect::<Vec<_>>(), vec![(2, 11)]);
}

#[test]
fn overflow_to_another_queue_after_waiting_keeps_arrival() {
    let mut cfg = Harness::default_config();
    cfg.queues[0].relaxation = vec![RelaxStep { after: secs(120), action: RelaxAction::OverflowTo(Q1) }];
    let mut h = Harness::new(cfg);
    h.enqueue(contact(1, Q0, STANDARD, &[(BILLING, 1)], &[]));
    h.at(120);
    let events = h.take_events();
    assert!(events.iter().any(|e| matches!(
        e,
        Event::Overflowed { contact: ContactId(1), from: Q0, to: Q1, reason: OverflowReason::Relaxation }
    )));
    let snap = h.router.snapshot();
    assert_eq!(snap.contacts[0].queue, Q1);
    assert_eq!(snap.contacts[0].arrival, Time::ZERO);
    assert_eq!(h.router.queue_stats(Q1).unwrap().waiting, 1);
    assert_eq!(h.router.queue_stats(Q0).unwrap().waiting, 0);
}

#[test]
fn full_queue_overflows_or_refuses_and_changes_nothing() {
    let mut cfg = Harness::default_config();
    cfg.queues[0].max_waiting = Some(1);
    cfg.queues[0].when_full = WhenFull::OverflowTo(Q1);
    cfg.queues[1].max_waiting = Some(1);
    let mut h = Harness::new(cfg);
    assert_eq!(h.ok(Command::Enqueue(contact(1, Q0, STANDARD, &[(BILLING, 1)], &[]))), Reply::Enqueued { queue: Q0 });
    assert_eq!(h.ok(Command::Enqueue(contact(2, Q0, STANDARD, &[(BILLING, 1)], &[]))), Reply::Enqueued { queue: Q1 });
    let before = h.router.snapshot();
    let refused = h.cmd(Command::Enqueue(contact(3, Q0, STANDARD, &[(BILLING, 1)], &[])));
    assert_eq!(refused, Err(CommandError::QueueFull(Q0)));
    assert_eq!(h.router.snapshot(), before);
}

#[test]
fn rona_requeues_at_front_and_sends_the_agent_not_ready() {
    let mut h = harness();
    h.login(10, &[(BILLING, 5)], &[EN]);
    h.enqueue(contact(1, Q0, STANDARD, &[(BILLING, 1)], &[]));
    h.at(1).enqueue(contact(2, Q0, STANDARD, &[(BILLING, 1)], &[]));
    let (c, a, _) = h.take_offers()[0];
    assert_eq!((c, a), (1, 10));
    h.at(20); // offer timeout 20 s
    let events = h.take_events();
    assert!(events.iter().any(|e| matches!(e, Event::OfferEnded { outcome: OfferOutcome::Expired, .. })));
    assert_eq!(h.router.agent_state(AgentId(10)), AgentState::NotReady(NotReadyReason::Rona));
    assert_eq!(h.router.queue_stats(Q0).unwrap().counters.rona, 1);
    h.at(21).login(11, &[(BILLING, 5)], &[EN]);
    assert_eq!(h.take_offers()[0].0, 1, "contact 1 is back at the front, ahead of 2");
}

#[test]
fn oldest_wait_counts_from_first_arrival_after_a_rona() {
    let mut h = harness();
    h.login(10, &[(BILLING, 5)], &[EN]);
    h.enqueue(contact(1, Q0, STANDARD, &[(BILLING, 1)], &[]));
    h.at(5).enqueue(contact(2, Q0, STANDARD, &[(BILLING, 1)], &[]));
    let oldest = |h: &Harness| h.router.queue_stats(Q0).unwrap().oldest_wait;
    // Contact 1 rings at agent 10: only contact 2 waits.
    assert_eq!(oldest(&h), Some(Duration::ZERO));
    h.at(20); // the offer rings out: contact 1 waits again, since 0 s
    assert_eq!(oldest(&h), Some(Duration::from_secs(20)));
    h.at(21).login(11, &[(BILLING, 5)], &[EN]);
    assert_eq!(h.take_offers()[0].0, 1);
    assert_eq!(oldest(&h), Some(Duration::from_secs(16)), "contact 2, since 5 s");
    h.ok(Command::Abandon { contact: ContactId(2) });
    assert_eq!(oldest(&h), None);
}

#[test]
fn oldest_wait_is_the_longest_waiting_whatever_the_tier() {
    let mut h = harness();
    h.enqueue(contact(1, Q0, STANDARD, &[(BILLING, 1)], &[]));
    h.at(10).enqueue(contact(2, Q0, GOLD, &[(BILLING, 1)], &[]));
    h.at(30).login(10, &[(BILLING, 5)], &[EN]);
    let (c, _, _) = h.take_offers()[0];
    assert_eq!(c, 2, "gold first");
    let stats = h.router.queue_stats(Q0).unwrap();
    assert_eq!((stats.waiting, stats.oldest_wait), (1, Some(Duration::from_secs(30))));
}

#[test]
fn reject_requeues_at_front_and_is_idempotent() {
    let mut h = harness();
    h.login(10, &[(BILLING, 5)], &[EN]);
    h.enqueue(contact(1, Q0, STANDARD, &[(BILLING, 1)], &[]));
    h.enqueue(contact(2, Q0, STANDARD, &[(BILLING, 1)], &[]));
    let (_, _, offer) = h.take_offers()[0];
    let reject = Command::Reject { agent: AgentId(10), offer };
    assert_eq!(h.ok(reject.clone()), Reply::Rejected { duplicate: false });
    assert_eq!(h.ok(reject), Reply::Rejected { duplicate: true });
    assert_eq!(h.router.agent_state(AgentId(10)), AgentState::NotReady(NotReadyReason::Declined));
    assert_eq!(h.cmd(accept(10, offer)), Err(CommandError::OfferNotPending { offer, outcome: OfferOutcome::Rejected }));
    h.login(11, &[(BILLING, 5)], &[EN]);
    assert_eq!(h.take_offers()[0].0, 1);
}

#[test]
fn accept_at_the_timeout_instant_is_refused() {
    let mut h = harness();
    h.login(10, &[(BILLING, 5)], &[EN]);
    h.enqueue(contact(1, Q0, STANDARD, &[(BILLING, 1)], &[]));
    let (_, _, offer) = h.take_offers()[0];
    h.now = Time::from_secs(20);
    let r = h.cmd(accept(10, offer));
    assert_eq!(r, Err(CommandError::OfferNotPending { offer, outcome: OfferOutcome::Expired }));
    assert!(matches!(h.state_of(1), Some(ContactViewState::Waiting { .. })));
}

#[test]
fn accept_just_before_the_timeout_connects() {
    let mut h = harness();
    h.login(10, &[(BILLING, 5)], &[EN]);
    h.enqueue(contact(1, Q0, STANDARD, &[(BILLING, 1)], &[]));
    let (_, _, offer) = h.take_offers()[0];
    h.now = Time::from_micros(20_000_000 - 1);
    assert_eq!(h.cmd(accept(10, offer)), Ok(Reply::Accepted { contact: ContactId(1), duplicate: false }));
    h.at(30);
    assert_eq!(h.state_of(1), Some(ContactViewState::Connected { agent: AgentId(10) }));
}

#[test]
fn accept_after_abandon_is_refused() {
    let mut h = harness();
    h.login(10, &[(BILLING, 5)], &[EN]);
    h.enqueue(contact(1, Q0, STANDARD, &[(BILLING, 1)], &[]));
    let (_, _, offer) = h.take_offers()[0];
    h.ok(Command::Abandon { contact: ContactId(1) });
    assert_eq!(
        h.cmd(accept(10, offer)),
        Err(CommandError::OfferNotPending { offer, outcome: OfferOutcome::Abandoned })
    );
    assert_eq!(h.router.agent_state(AgentId(10)), AgentState::Available);
}

#[test]
fn duplicate_accept_is_idempotent() {
    let mut h = harness();
    h.login(10, &[(BILLING, 5)], &[EN]);
    h.enqueue(contact(1, Q0, STANDARD, &[(BILLING, 1)], &[]));
    let (_, _, offer) = h.take_offers()[0];
    assert_eq!(h.ok(accept(10, offer)), Reply::Accepted { contact: ContactId(1), duplicate: false });
    let before = h.router.snapshot();
    assert_eq!(h.ok(accept(10, offer)), Reply::Accepted { contact: ContactId(1), duplicate: true });
    assert_eq!(h.router.snapshot(), before);
    let connected = h.take_events().iter().filter(|e| matches!(e, Event::Connected { .. })).count();
    assert_eq!(connected, 1);
}

#[test]
fn accept_of_another_agents_offer_is_refused() {
    let mut h = harness();
    h.login(10, &[(BILLING, 5)], &[EN]);
    h.login(11, &[(BILLING, 5)], &[EN]);
    h.enqueue(contact(1, Q0, STANDARD, &[(BILLING, 1)], &[]));
    let (_, agent, offer) = h.take_offers()[0];
    let other = if agent == 10 { 11 } else { 10 };
    let before = h.router.snapshot();
    assert!(matches!(h.cmd(accept(other, offer)), Err(CommandError::OfferNotForAgent { .. })));
    assert_eq!(h.router.snapshot(), before);
}

#[test]
fn logout_while_reserved_reroutes_at_once() {
    let mut h = harness();
    h.login(10, &[(BILLING, 5)], &[EN]);
    h.enqueue(contact(1, Q0, STANDARD, &[(BILLING, 1)], &[]));
    h.login(11, &[(BILLING, 5)], &[EN]);
    let (_, a, offer) = h.take_offers()[0];
    assert_eq!(a, 10);
    h.ok(Command::AgentLogout { agent: AgentId(10) });
    let events = h.take_events();
    assert!(events
        .iter()
        .any(|e| matches!(e, Event::OfferEnded { outcome: OfferOutcome::Withdrawn, offer: o, .. } if *o == offer)));
    assert!(events.iter().any(|e| matches!(e, Event::Offered { agent: AgentId(11), contact: ContactId(1), .. })));
    assert_eq!(h.router.agent_state(AgentId(10)), AgentState::Offline);
}

#[test]
fn logout_while_connected_is_refused() {
    let mut h = harness();
    h.login(10, &[(BILLING, 5)], &[EN]);
    h.enqueue(contact(1, Q0, STANDARD, &[(BILLING, 1)], &[]));
    let (_, _, offer) = h.take_offers()[0];
    h.ok(accept(10, offer));
    assert_eq!(h.cmd(Command::AgentLogout { agent: AgentId(10) }), Err(CommandError::AgentBusy(AgentId(10))));
}

#[test]
fn completion_goes_through_wrap_up_then_available() {
    let mut cfg = Harness::default_config();
    cfg.queues[0].wrap_up = secs(30);
    let mut h = Harness::new(cfg);
    h.login(10, &[(BILLING, 5)], &[EN]);
    h.enqueue(contact(1, Q0, STANDARD, &[(BILLING, 1)], &[]));
    let (_, _, offer) = h.take_offers()[0];
    h.ok(accept(10, offer));
    h.at(100).ok(complete(10, 1));
    h.enqueue(contact(2, Q0, STANDARD, &[(BILLING, 1)], &[]));
    assert_eq!(h.router.agent_state(AgentId(10)), AgentState::WrapUp);
    assert!(h.take_offers().is_empty(), "no offers during wrap-up");
    h.at(129);
    assert!(h.take_offers().is_empty());
    h.at(130);
    assert_eq!(h.take_offers()[0].0, 2);
}

#[test]
fn wrap_up_can_be_ended_early() {
    let mut cfg = Harness::default_config();
    cfg.queues[0].wrap_up = secs(30);
    let mut h = Harness::new(cfg);
    h.login(10, &[(BILLING, 5)], &[EN]);
    h.enqueue(contact(1, Q0, STANDARD, &[(BILLING, 1)], &[]));
    let (_, _, offer) = h.take_offers()[0];
    h.ok(accept(10, offer));
    h.ok(complete(10, 1));
    h.at(5).ok(Command::EndWrapUp { agent: AgentId(10), contact: ContactId(1) });
    assert_eq!(h.router.agent_state(AgentId(10)), AgentState::Available);
    let again = h.cmd(Command::EndWrapUp { agent: AgentId(10), contact: ContactId(1) });
    assert_eq!(again, Err(CommandError::NotInWrapUp { contact: ContactId(1), agent: AgentId(10) }));
}

#[test]
fn abandon_while_queued_is_counted_and_short_abandons_apart() {
    let mut h = harness();
    h.enqueue(contact(1, Q0, STANDARD, &[(BILLING, 1)], &[]));
    h.enqueue(contact(2, Q0, STANDARD, &[(BILLING, 1)], &[]));
    h.at(3).ok(Command::Abandon { contact: ContactId(1) });
    h.at(40).ok(Command::Abandon { contact: ContactId(2) });
    let stats = h.router.queue_stats(Q0).unwrap();
    assert_eq!((stats.counters.short_abandoned, stats.counters.abandoned, stats.waiting), (1, 1, 0));
    assert_eq!(stats.service_level, Some(0.0), "the long abandon counts against the service level");
    assert_eq!(h.cmd(Command::Abandon { contact: ContactId(1) }), Err(CommandError::UnknownContact(ContactId(1))));
}

#[test]
fn transfer_keeps_context_and_original_arrival() {
    let mut h = harness();
    h.login(10, &[(BILLING, 5)], &[EN]);
    let mut spec = contact(1, Q0, STANDARD, &[(BILLING, 1)], &[]);
    spec.context = vec![("order".into(), "A-17".into())];
    h.enqueue(spec);
    let (_, _, offer) = h.take_offers()[0];
    h.ok(accept(10, offer));
    // Someone else is already waiting for repair.
    h.at(50).enqueue(contact(2, Q1, STANDARD, &[(REPAIR, 1)], &[]));
    h.at(100).ok(Command::Transfer(TransferSpec {
        contact: ContactId(1),
        queue: Q1,
        skills: SkillReqs::from_slice(&[SkillReq { skill: REPAIR, min_proficiency: 1 }]),
        languages: Languages::new(),
        tier: None,
        context: vec![("note".into(), "needs a technician".into())],
    }));
    let snap = h.router.snapshot();
    let c = snap.contacts.iter().find(|c| c.id == ContactId(1)).unwrap();
    assert_eq!(c.arrival, Time::ZERO);
    assert_eq!(c.queue, Q1);
    assert_eq!(c.context, vec![("order".into(), "A-17".into()), ("note".into(), "needs a technician".into())]);
    h.take_events();
    h.login(11, &[(REPAIR, 5)], &[EN]);
    assert_eq!(h.take_offers()[0].0, 1, "transferred contact keeps its place ahead of contact 2");
}

#[test]
fn callback_becomes_routable_when_due_and_can_be_cancelled() {
    let mut h = harness();
    h.login(10, &[(BILLING, 5)], &[EN]);
    let cb = |id| Command::ScheduleCallback {
        spec: contact(id, Q0, STANDARD, &[(BILLING, 1)], &[]),
        due: Time::from_secs(1800),
        deadline: Time::from_secs(3600),
    };
    h.ok(cb(1));
    h.ok(cb(2));
    h.at(100).ok(Command::Abandon { contact: ContactId(2) });
    assert!(h.take_events().iter().any(|e| matches!(e, Event::CallbackCancelled { contact: ContactId(2), .. })));
    h.at(1799);
    assert!(h.take_offers().is_empty());
    h.at(1800);
    assert_eq!(h.take_offers().iter().map(|o| o.0).collect::<Vec<_>>(), vec![1]);
}

#[test]
fn preferred_agent_gets_the_contact_within_the_window() {
    let mut cfg = Harness::default_config();
    cfg.queues[0].preferred_agent_window = secs(30);
    let mut h = Harness::new(cfg);
    h.login(10, &[(BILLING, 5)], &[EN]);
    h.ok(not_ready(10));
    h.login(11, &[(BILLING, 5)], &[EN]);
    h.take_events();
    let mut spec = contact(1, Q0, STANDARD, &[(BILLING, 1)], &[]);
    spec.preferred_agents = vec![AgentId(10)];
    h.enqueue(spec);
    assert!(h.take_offers().is_empty(), "held for agent 10 although 11 is free");
    h.at(10).ok(ready(10));
    assert_eq!(h.take_offers().iter().map(|o| (o.0, o.1)).collect::<Vec<_>>(), vec![(1, 10)]);
}

#[test]
fn preferred_window_expiry_releases_the_contact_to_any_agent() {
    let mut cfg = Harness::default_config();
    cfg.queues[0].preferred_agent_window = secs(30);
    let mut h = Harness::new(cfg);
    h.login(11, &[(BILLING, 5)], &[EN]);
    let mut spec = contact(1, Q0, STANDARD, &[(BILLING, 1)], &[]);
    spec.preferred_agents = vec![AgentId(10)]; // not even logged in
    h.enqueue(spec);
    h.at(29);
    assert!(h.take_offers().is_empty());
    h.at(30);
    assert_eq!(h.take_offers().iter().map(|o| (o.0, o.1)).collect::<Vec<_>>(), vec![(1, 11)]);
}

#[test]
fn staffing_estimate_counts_each_qualified_agent_once() {
    type Profile = (u64, &'static [(SkillId, u8)], &'static [LanguageId]);
    let mut h = harness();
    let agents: [Profile; 6] = [
        (10, &[(BILLING, 5)], &[EN, ZH]), // speaks two languages
        (11, &[(BILLING, 5)], &[YUE]),
        (12, &[(BILLING, 1)], &[EN]), // below the required proficiency
        (13, &[(REPAIR, 5)], &[EN]),  // lacks the skill
        (14, &[(BILLING, 5)], &[]),   // declared no language
        (15, &[(BILLING, 5)], &[EN]), // logs out below
    ];
    for (id, skills, languages) in agents {
        h.ok(login(id, skills, languages, [1, 0, 0]));
        h.ok(not_ready(id));
    }
    h.ok(Command::AgentLogout { agent: AgentId(15) });
    // Any language: 10 (once, though in two language groups), 11 and 14.
    h.enqueue(contact(1, Q0, STANDARD, &[(BILLING, 3)], &[]));
    let e = h.router.estimate_wait(ContactId(1)).unwrap();
    assert_eq!((e.position, e.method), (1, EwtMethod::Staffing));
    assert_eq!(e.estimated_wait, secs(100), "300 s AHT ÷ 3 agents");
    // English only: 10 alone.
    h.enqueue(contact(2, Q0, STANDARD, &[(BILLING, 3)], &[EN]));
    let e = h.router.estimate_wait(ContactId(2)).unwrap();
    assert_eq!(e.position, 2);
    assert_eq!(e.estimated_wait, secs(600), "2 × 300 s AHT ÷ 1 agent");
    // Billing and repair: nobody has both. As if one agent, and uncertain.
    h.enqueue(contact(3, Q0, STANDARD, &[(BILLING, 1), (REPAIR, 1)], &[EN]));
    let e = h.router.estimate_wait(ContactId(3)).unwrap();
    assert_eq!((e.estimated_wait, e.method), (secs(900), EwtMethod::Stalled), "3 × 300 s AHT ÷ 1");
}

/// One agent who handles each contact in `pace` seconds, from `t` on, for
/// `n` contacts of a queue that never empties; returns the time after.
fn serve_at_pace(h: &mut Harness, agent: u64, mut t: u64, pace: u64, n: usize) -> u64 {
    for _ in 0..n {
        let (c, _, offer) = h.take_offers()[0];
        h.ok(accept(agent, offer));
        t += pace;
        h.at(t).ok(complete(agent, c));
    }
    t
}

/// Contacts `first..first + n`, all waiting in queue 0 at the standard tier.
fn queue_up(h: &mut Harness, first: u64, n: u64) {
    for i in first..first + n {
        h.enqueue(contact(i, Q0, STANDARD, &[(BILLING, 1)], &[]));
    }
}

fn estimate(h: &Harness, contact: u64) -> WaitEstimate {
    h.router.estimate_wait(ContactId(contact)).unwrap()
}

#[test]
fn the_estimate_is_position_over_the_measured_drain_rate() {
    let mut cfg = Harness::default_config();
    cfg.queues[0].expected_handle_time = secs(10);
    let mut h = Harness::new(cfg);
    queue_up(&mut h, 1, 100);
    h.login(10, &[(BILLING, 5)], &[EN]);
    let t = serve_at_pace(&mut h, 10, 0, 10, 30);
    let e = estimate(&h, 100);
    // 31 offered (the 31st rings now).
    assert_eq!((e.position, e.method), (69, EwtMethod::QueueLength));
    // One agent, 10 s a contact: 69 × 10 s. Departures come at the end of
    // each 10 s, so the decayed rate is a little slow; within 3 %.
    let got = e.estimated_wait.as_secs_f64();
    assert!((got / 690.0 - 1.0).abs() < 0.03, "69 × 10 s, got {got} s at {t} s");
    assert!(e.low < e.estimated_wait && e.estimated_wait < e.high, "{e:?}");
}

#[test]
fn contacts_answered_on_arrival_do_not_speed_up_the_estimate() {
    // Ten agents answer at once for an hour (nobody waits), then one agent
    // is left and a line builds: the estimate is that of the one agent.
    let mut cfg = Harness::default_config();
    cfg.queues[0].expected_handle_time = secs(10);
    let mut h = Harness::new(cfg);
    for a in 10..20 {
        h.login(a, &[(BILLING, 5)], &[EN]);
    }
    let mut id = 1;
    for t in 0..360u64 {
        h.at(t * 10).enqueue(contact(id, Q0, STANDARD, &[(BILLING, 1)], &[]));
        let (c, a, offer) = h.take_offers()[0];
        h.ok(accept(a, offer));
        h.ok(complete(a, c));
        id += 1;
    }
    for a in 11..20 {
        h.ok(not_ready(a));
        h.ok(Command::AgentLogout { agent: AgentId(a) });
    }
    queue_up(&mut h, id, 40);
    let t = serve_at_pace(&mut h, 10, 3600, 10, 20);
    let e = estimate(&h, id + 39);
    assert_eq!(e.position, 19);
    let got = e.estimated_wait.as_secs_f64();
    assert!((got / 190.0 - 1.0).abs() < 0.1, "19 × 10 s, got {got} s at {t} s ({e:?})");
}

#[test]
fn history_outweighs_a_wrong_handle_time() {
    // Configured 300 s; the agent takes 10 s.
    let mut h = harness();
    queue_up(&mut h, 1, 200);
    h.login(10, &[(BILLING, 5)], &[EN]);
    serve_at_pace(&mut h, 10, 0, 10, 100);
    let e = estimate(&h, 200);
    assert_eq!(e.position, 99);
    let got = e.estimated_wait.as_secs_f64();
    assert!((got / 990.0 - 1.0).abs() < 0.12, "99 × 10 s, got {got} s ({e:?})");
}

#[test]
fn a_break_stalls_the_queue_without_inflating_the_estimates_after_it() {
    let mut cfg = Harness::default_config();
    cfg.queues[0].expected_handle_time = secs(10);
    let mut h = Harness::new(cfg);
    queue_up(&mut h, 1, 300);
    h.login(10, &[(BILLING, 5)], &[EN]);
    let t = serve_at_pace(&mut h, 10, 0, 10, 50);
    // A 10-minute break with the line waiting (two windows of history).
    let (c, _, offer) = h.take_offers()[0];
    h.ok(accept(10, offer));
    h.at(t + 10).ok(not_ready(10));
    h.ok(complete(10, c));
    h.at(t + 10 + 300);
    let during = estimate(&h, 300);
    assert_eq!(during.method, EwtMethod::Stalled, "{during:?}");
    assert!(during.estimated_wait >= secs(300), "at least as long again as the stall so far: {during:?}");
    // Back: five contacts at the old pace, and the estimate is that pace.
    let back = t + 10 + 600;
    h.at(back).ok(ready(10));
    serve_at_pace(&mut h, 10, back, 10, 5);
    let after = estimate(&h, 300);
    assert_eq!(after.method, EwtMethod::QueueLength, "{after:?}");
    let expected = f64::from(after.position) * 10.0;
    let got = after.estimated_wait.as_secs_f64();
    assert!((got / expected - 1.0).abs() < 0.2, "{} × 10 s, got {got} s ({after:?})", after.position);
}

#[test]
fn later_gold_arrivals_lengthen_a_standard_contacts_wait_under_strict_tiers() {
    let mut cfg = Harness::default_config();
    cfg.queues[0].contact_policy = ContactPolicy::StrictTier;
    cfg.queues[0].expected_handle_time = secs(10);
    let mut h = Harness::new(cfg);
    queue_up(&mut h, 1, 60);
    h.login(10, &[(BILLING, 5)], &[EN]);
    // Gold arrives every 40 s while the agent serves one every 10 s: a
    // quarter of the capacity goes to gold arriving later.
    let mut t = 0;
    for i in 0..60u64 {
        if i % 4 == 0 {
            h.enqueue(contact(1000 + i, Q0, GOLD, &[(BILLING, 1)], &[]));
        }
        t = serve_at_pace(&mut h, 10, t, 10, 1);
    }
    queue_up(&mut h, 2000, 1);
    h.enqueue(contact(3000, Q0, GOLD, &[(BILLING, 1)], &[]));
    let standard = estimate(&h, 2000);
    let gold = estimate(&h, 3000);
    let per_position = |e: &WaitEstimate| e.estimated_wait.as_secs_f64() / f64::from(e.position);
    // Gold: only those ahead now; standard: 10 s ÷ (1 − 1/4) a position.
    assert!((per_position(&gold) / 10.0 - 1.0).abs() < 0.1, "{gold:?}");
    assert!((per_position(&standard) / (10.0 / 0.75) - 1.0).abs() < 0.15, "{standard:?}");
}

#[test]
fn explanation_names_the_candidates_and_the_rule() {
    let mut cfg = Harness::default_config();
    cfg.explain = true;
    cfg.queues[0].agent_policy = AgentPolicy::MostProficient;
    let mut h = Harness::new(cfg);
    h.login(10, &[(BILLING, 4)], &[EN]);
    h.login(11, &[(BILLING, 8)], &[EN]);
    h.enqueue(contact(1, Q0, STANDARD, &[(BILLING, 2)], &[]));
    let events = h.take_events();
    let explanation = events
        .iter()
        .find_map(|e| match e {
            Event::Offered { explanation, .. } => explanation.clone(),
            _ => None,
        })
        .expect("explained");
    assert_eq!(explanation.rule, Rule::Agent(AgentPolicy::MostProficient));
    assert_eq!(explanation.trigger, Trigger::ContactWaiting);
    assert_eq!(explanation.candidates[0].agent, AgentId(11));
    assert_eq!(explanation.candidates[0].proficiency, 8);
}

#[test]
fn an_agent_with_many_skills_takes_the_best_contact_from_any_of_its_lists() {
    // 40 skills × (English + any language) = 80 lists, more than one round of
    // the agent's search: the best contact may be in any of them, single- or
    // multi-skill, and the explanation weighs them all.
    let mut cfg = Harness::default_config();
    cfg.explain = true;
    let mut h = Harness::new(cfg);
    let skills: Vec<(SkillId, u8)> = (10..50).map(|s| (SkillId(s), 5)).collect();
    h.login(10, &skills, &[EN]);
    h.ok(not_ready(10));
    // In the last lists the agent reads, first to arrive.
    h.enqueue(contact(1, Q0, STANDARD, &[(SkillId(49), 5)], &[EN]));
    // In the first lists, two skills the agent has.
    h.at(1).enqueue(contact(2, Q0, STANDARD, &[(SkillId(10), 1), (SkillId(49), 1)], &[EN]));
    // Ahead of contact 2 in the same list, but a skill the agent lacks.
    h.at(1).enqueue(contact(3, Q0, GOLD, &[(SkillId(10), 1), (SkillId(99), 1)], &[EN]));
    // Needs more proficiency than the agent has.
    h.at(1).enqueue(contact(4, Q0, GOLD, &[(SkillId(30), 6)], &[EN]));
    h.at(2).enqueue(contact(5, Q0, STANDARD, &[(SkillId(48), 1), (SkillId(12), 5)], &[EN]));
    h.take_events();
    h.ok(ready(10));
    let (contact, offer, explanation) = h
        .take_events()
        .into_iter()
        .find_map(|e| match e {
            Event::Offered { contact, offer, explanation, .. } => Some((contact, offer, explanation?)),
            _ => None,
        })
        .expect("explained");
    assert_eq!(contact, ContactId(1));
    assert_eq!(explanation.trigger, Trigger::AgentAvailable);
    let weighed: Vec<u64> = explanation.candidates.iter().map(|c| c.contact.0).collect();
    assert_eq!(weighed, vec![1, 2, 5], "best first, then by rank; 3 and 4 do not fit");
    h.ok(accept(10, offer));
    h.ok(complete(10, 1));
    assert_eq!(service_order(&mut h, 10, 2), vec![2, 5]);
    assert!(h.offer_of(3).is_none() && h.offer_of(4).is_none());
}

#[test]
fn an_agent_takes_the_second_multi_skill_contact_of_a_list_when_the_first_does_not_fit() {
    // Three contacts at the same instant and tier: equal rank values, told
    // apart by arrival order alone. The agent lacks a skill of the first,
    // fits the second, and the second arrived before its best single-skill
    // contact: it must be found behind the first, even on a tie of values.
    let mut h = harness();
    h.login(10, &[(BILLING, 5), (REPAIR, 5)], &[EN]);
    h.ok(not_ready(10));
    h.at(1).enqueue(contact(1, Q0, STANDARD, &[(BILLING, 1), (SkillId(99), 1)], &[EN]));
    h.at(1).enqueue(contact(2, Q0, STANDARD, &[(BILLING, 1), (REPAIR, 1)], &[EN]));
    h.at(1).enqueue(contact(3, Q0, STANDARD, &[(REPAIR, 1)], &[EN]));
    h.ok(ready(10));
    assert_eq!(service_order(&mut h, 10, 2), vec![2, 3]);
    assert!(h.offer_of(1).is_none());
}

#[test]
fn bad_input_is_refused_and_changes_nothing() {
    let mut h = harness();
    h.login(10, &[(BILLING, 5)], &[EN]);
    h.enqueue(contact(1, Q0, STANDARD, &[(BILLING, 1)], &[]));
    let (_, _, offer) = h.take_offers()[0];
    let before = h.router.snapshot();
    type Expect = fn(&CommandError) -> bool;
    let bad: Vec<(Command, Expect)> = vec![
        (Command::Enqueue(contact(1, Q0, STANDARD, &[(BILLING, 1)], &[])), |e| {
            matches!(e, CommandError::DuplicateContact(_))
        }),
        (Command::Enqueue(contact(2, QueueId(9), STANDARD, &[(BILLING, 1)], &[])), |e| {
            matches!(e, CommandError::UnknownQueue(_))
        }),
        (Command::Enqueue(contact(2, Q0, TierId(7), &[(BILLING, 1)], &[])), |e| {
            matches!(e, CommandError::UnknownTier(_))
        }),
        (Command::Enqueue(contact(2, Q0, STANDARD, &[], &[])), |e| matches!(e, CommandError::Invalid { .. })),
        (Command::Enqueue(contact(2, Q0, STANDARD, &[(BILLING, 11)], &[])), |e| {
            matches!(e, CommandError::Invalid { .. })
        }),
        (Command::Enqueue(contact(2, Q0, STANDARD, &[(BILLING, 1), (BILLING, 2)], &[])), |e| {
            matches!(e, CommandError::DuplicateSkill(_))
        }),
        (Command::Enqueue(contact(2, Q0, STANDARD, &[(BILLING, 1)], &[EN, EN])), |e| {
            matches!(e, CommandError::DuplicateLanguage(_))
        }),
        (login(10, &[(BILLING, 5)], &[EN], [1, 0, 0]), |e| matches!(e, CommandError::AgentAlreadyLoggedIn(_))),
        (login(12, &[(BILLING, 0)], &[EN], [1, 0, 0]), |e| matches!(e, CommandError::Invalid { .. })),
        (login(12, &[(BILLING, 5)], &[EN], [2, 0, 0]), |e| matches!(e, CommandError::Invalid { .. })),
        (login(12, &[(BILLING, 5)], &[EN], [0, 0, 0]), |e| matches!(e, CommandError::Invalid { .. })),
        (ready(99), |e| matches!(e, CommandError::UnknownAgent(_))),
        (accept(10, OfferId(999)), |e| matches!(e, CommandError::UnknownOffer(_))),
        (complete(10, 1), |e| matches!(e, CommandError::NotConnected { .. })),
        (Command::Abandon { contact: ContactId(77) }, |e| matches!(e, CommandError::UnknownContact(_))),
        (Command::AgentNotReady { agent: AgentId(10), reason: NotReadyReason::Rona }, |e| {
            matches!(e, CommandError::Invalid { .. })
        }),
        (
            Command::ScheduleCallback {
                spec: contact(3, Q0, STANDARD, &[(BILLING, 1)], &[]),
                due: Time::from_secs(10),
                deadline: Time::from_secs(5),
            },
            |e| matches!(e, CommandError::Invalid { .. }),
        ),
    ];
    for (command, expected) in bad {
        let shown = format!("{command:?}");
        let err = h.cmd(command).expect_err(&shown);
        assert!(expected(&err), "{shown} gave {err:?}");
        assert!(!err.to_string().is_empty());
        assert_eq!(h.router.snapshot(), before, "{shown} changed the state");
    }
    assert!(h.take_events().is_empty());
    // And the offer is still good.
    assert!(h.cmd(accept(10, offer)).is_ok());
}

/// Overflows that come round (a → b → c → a) are refused, each cycle once,
/// at its lowest-numbered queue's overflow; a queue that only leads into a
/// cycle, or a chain that ends, is not a cycle.
#[test]
fn overflow_cycles_are_refused_each_once() {
    let mut cfg = Harness::default_config();
    let base = cfg.queues[0].clone();
    cfg.queues = (0..7).map(|i| QueueConfig { name: format!("q{i}"), ..base.clone() }).collect();
    let over = |to: u16| vec![RelaxStep { after: secs(60), action: RelaxAction::OverflowTo(QueueId(to)) }];
    // q1 → q2 → q3 → q1 (q3's by when_full), q0 → q1 leads into it;
    // q4 ⇄ q5; q6 → q0 ends in the first cycle.
    cfg.queues[0].relaxation = over(1);
    cfg.queues[1].relaxation = over(2);
    cfg.queues[2].relaxation = over(3);
    cfg.queues[3].when_full = WhenFull::OverflowTo(QueueId(1));
    cfg.queues[4].relaxation = over(5);
    cfg.queues[5].when_full = WhenFull::OverflowTo(QueueId(4));
    cfg.queues[6].relaxation = over(0);
    let errs = Router::new(cfg.clone()).err().expect("cycles refused").0;
    let shown: Vec<(String, String)> = errs.iter().map(|e| (e.field.clone(), e.message.clone())).collect();
    assert_eq!(
        shown,
        vec![
            (
                "queues[1].relaxation[0].overflow_to".to_owned(),
                "overflow cycle q1 → q2 → q3 → q1: a contact would move round it for ever".to_owned()
            ),
            (
                "queues[4].relaxation[0].overflow_to".to_owned(),
                "overflow cycle q4 → q5 → q4: a contact would move round it for ever".to_owned()
            ),
        ]
    );
    cfg.queues[3].when_full = WhenFull::Refuse;
    cfg.queues[5].when_full = WhenFull::Refuse;
    assert!(Router::new(cfg).is_ok(), "chains that end are fine");
}

#[test]
fn config_errors_point_at_every_field() {
    let mut cfg = Harness::default_config();
    cfg.queues[0].service_level.target = 1.5;
    cfg.queues[1].relaxation = vec![
        RelaxStep { after: secs(60), action: RelaxAction::OverflowTo(QueueId(5)) },
        RelaxStep { after: secs(30), action: RelaxAction::MinProficiencyAtMost(0) },
    ];
    cfg.tiers[1].name = "gold".into();
    let errs = Router::new(cfg).err().expect("invalid").0;
    let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(
        fields,
        vec![
            "tiers[1].name",
            "queues[0].service_level.target",
            "queues[1].relaxation[0].overflow_to",
            "queues[1].relaxation[1].after",
            "queues[1].relaxation[1].action",
        ]
    );
}

#[test]
fn time_going_backwards_is_clamped() {
    let mut h = harness();
    h.at(100).enqueue(contact(1, Q0, STANDARD, &[(BILLING, 1)], &[]));
    h.now = Time::from_secs(50);
    h.enqueue(contact(2, Q0, STANDARD, &[(BILLING, 1)], &[]));
    let snap = h.router.snapshot();
    assert_eq!(snap.contacts[1].arrival, Time::from_secs(100));
    assert_eq!(h.router.now(), Time::from_secs(100));
    let _ = Duration::ZERO;
}

#[test]
fn earliest_deadline_contact_is_not_overtaken_after_its_deadline() {
    // Threshold 20 s: a contact's deadline is arrival + 20 s. Nothing that
    // arrives after that deadline may be served before it.
    let mut cfg = Harness::default_config();
    cfg.queues[0].contact_policy = ContactPolicy::EarliestDeadline;
    let mut h = Harness::new(cfg);
    h.login(10, &[(BILLING, 5)], &[EN]);
    h.ok(contact_enqueue(100, STANDARD, 0));
    let (_, _, offer) = h.take_offers()[0];
    h.ok(accept(10, offer));
    h.at(5).ok(contact_enqueue(1, STANDARD, 5)); // deadline 25 s
    for t in (10..200).step_by(5) {
        h.at(t).ok(contact_enqueue(1000 + t, GOLD, t));
    }
    h.at(200).ok(complete(10, 100));
    loop {
        let (c, _, offer) = h.take_offers()[0];
        h.ok(accept(10, offer));
        h.ok(complete(10, c));
        if c == 1 {
            break;
        }
        assert!(c - 1000 <= 25, "contact arriving at {} s overtook one due at 25 s", c - 1000);
    }
}

#[test]
fn extreme_times_and_capacities_do_not_panic() {
    let mut h = harness();
    h.ok(login(10, &[(BILLING, 5)], &[EN], [0, 255, 255]));
    for i in 0..600 {
        let channel = if i % 2 == 0 { Channel::Chat } else { Channel::Email };
        h.enqueue(ContactSpec { channel, ..contact(i, Q0, STANDARD, &[(BILLING, 1)], &[]) });
    }
    let ringing = h.take_offers().len();
    assert_eq!(ringing, 510, "255 chats and 255 emails ring at once, no more");
    h.now = Time::MAX;
    h.enqueue(contact(10_000, Q0, GOLD, &[(BILLING, 1)], &[]));
    assert!(h.router.estimate_wait(ContactId(10_000)).is_ok());
}

#[test]
fn disconnect_reroutes_offers_and_ends_calls_at_once() {
    let mut h = harness();
    h.ok(login(10, &[(BILLING, 5)], &[EN], [0, 2, 0]));
    let chat = |id| ContactSpec { channel: Channel::Chat, ..contact(id, Q0, STANDARD, &[(BILLING, 1)], &[]) };
    h.enqueue(chat(1));
    h.enqueue(chat(2));
    let offers = h.take_offers();
    h.ok(accept(10, offers[0].2));
    h.ok(login(11, &[(BILLING, 5)], &[EN], [0, 1, 0]));
    h.take_events();
    h.ok(Command::AgentDisconnected { agent: AgentId(10) });
    let events = h.take_events();
    assert!(events.iter().any(|e| matches!(e, Event::Completed { contact: ContactId(1), hung_up: false, .. })));
    assert!(events.iter().any(|e| matches!(e, Event::Offered { contact: ContactId(2), agent: AgentId(11), .. })));
    assert_eq!(h.router.agent_state(AgentId(10)), AgentState::Offline);
    assert_eq!(h.router.agent_state_counts().iter().sum::<u32>(), 1);
}

#[test]
fn reconfiguration_reranks_waiting_contacts_and_keeps_ids() {
    let mut h = harness();
    h.enqueue(contact(1, Q0, STANDARD, &[(BILLING, 6)], &[]));
    h.at(10).enqueue(contact(2, Q0, GOLD, &[(BILLING, 6)], &[]));
    // Switch queue 0 to strict tier and relax proficiency at 30 s.
    let mut cfg = Harness::default_config();
    cfg.queues[0].contact_policy = ContactPolicy::StrictTier;
    cfg.queues[0].relaxation = vec![RelaxStep { after: secs(30), action: RelaxAction::MinProficiencyAtMost(3) }];
    h.at(20).ok(Command::Reconfigure(Box::new(cfg)));
    h.login(10, &[(BILLING, 4)], &[EN]);
    assert!(h.take_offers().is_empty(), "proficiency 4 < 6 until the new step");
    // The new step relaxes contact 1 (in queue since 0 s) at 30 s.
    h.at(30);
    assert_eq!(h.take_offers().iter().map(|o| o.0).collect::<Vec<_>>(), vec![1]);
    // Under strict tier a gold contact overtakes a standard one that waited
    // far longer than the 60 s aging boost would allow.
    h.at(31).enqueue(contact(3, Q0, STANDARD, &[(BILLING, 1)], &[]));
    h.at(200).enqueue(contact(4, Q0, GOLD, &[(BILLING, 1)], &[]));
    h.login(11, &[(BILLING, 9)], &[EN]);
    let (c, _, offer) = h.take_offers()[0];
    assert_eq!(c, 2);
    h.ok(accept(11, offer));
    h.ok(complete(11, 2));
    assert_eq!(h.take_offers()[0].0, 4, "strict tier after the reload");

    let mut renamed = Harness::default_config();
    renamed.queues[1].name = "other".into();
    let before = h.router.snapshot();
    assert!(matches!(h.cmd(Command::Reconfigure(Box::new(renamed))), Err(CommandError::Invalid { .. })));
    assert_eq!(h.router.snapshot(), before);
}

/// Most offers end (answered, hung up) long before they would ring out, and
/// most contacts leave before their next relaxation step: their timers are
/// dropped along the way instead of being held until their time.
#[test]
fn ended_offers_and_departed_contacts_do_not_hold_timers() {
    let mut cfg = Harness::default_config();
    cfg.queues[0].offer_timeout = Duration::from_secs(3600);
    cfg.queues[1].relaxation =
        vec![RelaxStep { after: Duration::from_secs(3600), action: RelaxAction::MinProficiencyAtMost(1) }];
    let mut h = Harness::new(cfg);
    h.login(10, &[(BILLING, 5)], &[EN]);
    for i in 1..=10_000 {
        h.enqueue(contact(i, Q0, GOLD, &[(BILLING, 1)], &[]));
        assert!(h.offer_of(i).is_some(), "contact {i} offered");
        h.ok(Command::Abandon { contact: ContactId(i) });
        // Needs more than the agent has until the relaxation step.
        h.enqueue(contact(100_000 + i, Q1, GOLD, &[(BILLING, 9)], &[]));
        h.ok(Command::Abandon { contact: ContactId(100_000 + i) });
    }
    assert!(h.router.timer_count() <= 4, "{} timers held", h.router.timer_count());
    // The last of them still works: a ringing offer rings out at its time.
    h.enqueue(contact(1, Q0, GOLD, &[(BILLING, 1)], &[]));
    assert!(h.offer_of(1).is_some());
    h.at(3600);
    assert!(h.offer_of(1).is_none(), "the offer rang out");
    assert!(matches!(h.state_of(1), Some(ContactViewState::Waiting { .. })), "and the contact is back in line");
}

#[test]
fn a_two_skill_contact_passes_over_an_agent_busy_through_its_other_skill() {
    let mut h = harness();
    // Agent 10, idle longest, lacks repair; agent 11 has both skills.
    h.login(10, &[(BILLING, 5)], &[EN]);
    h.at(1).login(11, &[(BILLING, 5), (REPAIR, 5)], &[EN]);
    // A repair call takes 11: its billing entry, behind 10's, is now stale.
    h.at(2).enqueue(contact(1, Q0, SILVER, &[(REPAIR, 1)], &[EN]));
    let offers = h.take_offers();
    assert_eq!(offers.iter().map(|&(c, a, _)| (c, a)).collect::<Vec<_>>(), [(1, 11)]);
    h.ok(accept(11, offers[0].2));
    // The two-skill contact's walk passes 10 (no repair), then 11's stale
    // entry: 11 is on a call, so nobody can take it yet.
    h.at(3).enqueue(contact(2, Q0, SILVER, &[(BILLING, 1), (REPAIR, 1)], &[EN]));
    assert_eq!(h.take_offers(), [], "agent 11 is busy");
    assert!(matches!(h.state_of(2), Some(ContactViewState::Waiting { .. })));
    // Free again, 11 takes it.
    h.at(4).ok(complete(11, 1));
    assert_eq!(h.take_offers().iter().map(|&(c, a, _)| (c, a)).collect::<Vec<_>>(), [(2, 11)]);
}
