//! The bridge's behaviour, scenario by scenario, and its invariants under
//! any order of events (property tests). No I/O: inputs in, outputs out.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use ccr_proto::v1::{self, routing_event::Event as Ev, Status};
use ccr_proto::wire::Code;
use ccr_sipgw::bridge::{Bridge, CallEnd, Input, Output, Record, Reply, ToCcrd};
use ccr_sipgw::config::{Agent, Number, Routing};
use ccr_sipgw::evapi::{Answer, AnswerTo, Event, NewCall, Relayed, Transaction};
use proptest::prelude::*;

const SEC: u64 = 1_000_000;
const T0: u64 = 1_800_000_000 * SEC;

fn routing() -> Routing {
    Routing {
        numbers: vec![
            Number {
                number: "1000".into(),
                queue: "billing".into(),
                tier: "".into(),
                skills: vec![("billing".into(), 5)],
                languages: vec!["en".into()],
            },
            Number {
                number: "*".into(),
                queue: "general".into(),
                tier: "".into(),
                skills: vec![("billing".into(), 1)],
                languages: vec![],
            },
        ],
        agents: vec![
            Agent {
                id: 101,
                sip_user: "alice".into(),
                skills: vec![("billing".into(), 8)],
                languages: vec!["en".into()],
            },
            Agent {
                id: 102,
                sip_user: "bob".into(),
                skills: vec![("billing".into(), 6)],
                languages: vec!["fr".into()],
            },
        ],
        max_wait: Duration::from_secs(60),
        max_talk: Duration::from_secs(3600),
        answer_margin: Duration::from_secs(1),
    }
}

struct Harness {
    bridge: Bridge,
    now: u64,
}

fn kam(event: Event) -> Input {
    Input::Kamailio(Relayed { started: "run-1".into(), event })
}

fn tx(n: u32) -> Transaction {
    Transaction { tindex: n, tlabel: n * 10 }
}

fn call(id: &str, number: &str, n: u32) -> Event {
    Event::Call(NewCall {
        call_id: id.into(),
        from: format!("sip:{id}@caller"),
        to: format!("sip:{number}@ccr"),
        number: number.into(),
        tier: "".into(),
        language: "".into(),
        skill: "".into(),
        transaction: tx(n),
    })
}

fn offer(offer: u64, contact: u64, agent: u64, expires: u64) -> Input {
    Input::Ccrd(Ev::Offer(v1::Offer {
        offer_id: offer,
        contact_id: contact,
        agent_id: agent,
        expires_unix_micros: expires,
        ..Default::default()
    }))
}

fn offer_ended(offer: u64, contact: u64, agent: u64, outcome: &str) -> Input {
    Input::Ccrd(Ev::OfferEnded(v1::OfferEnded {
        offer_id: offer,
        contact_id: contact,
        agent_id: agent,
        outcome: outcome.into(),
    }))
}

fn commands(out: &[Output]) -> Vec<ToCcrd> {
    out.iter().filter_map(|o| if let Output::Ccrd(c) = o { Some(c.clone()) } else { None }).collect()
}

fn answers(out: &[Output]) -> Vec<Answer> {
    out.iter().filter_map(|o| if let Output::Kamailio(a) = o { Some(a.clone()) } else { None }).collect()
}

fn records(out: &[Output]) -> Vec<Record> {
    out.iter().filter_map(|o| if let Output::Record(r) = o { Some(r.clone()) } else { None }).collect()
}

impl Harness {
    fn new() -> Harness {
        let mut h = Harness { bridge: Bridge::new(routing(), T0), now: T0 };
        h.step(Input::CcrdBack { generation: 1 });
        h
    }

    fn step(&mut self, input: Input) -> Vec<Output> {
        self.bridge.step(self.now, input)
    }

    fn at(&mut self, secs: f64, input: Input) -> Vec<Output> {
        self.now = T0 + (secs * SEC as f64) as u64;
        self.step(input)
    }

    /// Registers both phones; returns nothing of interest.
    fn phones(&mut self) {
        self.step(kam(Event::Register { user: "alice".into(), expires: 300 }));
        self.step(kam(Event::Register { user: "bob".into(), expires: 300 }));
    }

    /// A call to 1000, enqueued and confirmed: its contact id.
    fn queued_call(&mut self, id: &str, n: u32) -> u64 {
        let out = self.step(kam(call(id, "1000", n)));
        let [ToCcrd::Enqueue(e)] = &commands(&out)[..] else { panic!("no enqueue: {out:?}") };
        let command = ToCcrd::Enqueue(e.clone());
        self.step(Input::Replied { generation: 1, command, result: Ok(Reply::Done) });
        e.contact_id
    }
}

fn ring_of(out: &[Output]) -> (String, u64, Transaction) {
    match &answers(out)[..] {
        [Answer { to: AnswerTo::Agent { user, ring_ms }, transaction, .. }] => {
            (user.clone(), *ring_ms, transaction.clone())
        }
        other => panic!("expected one ring, got {other:?}"),
    }
}

#[test]
fn a_call_is_enqueued_with_its_numbers_routing_and_the_callers_headers_override_it() {
    let mut h = Harness::new();
    let out = h.step(kam(call("c1", "1000", 1)));
    let [ToCcrd::Enqueue(e)] = &commands(&out)[..] else { panic!("{out:?}") };
    assert_eq!((e.queue.as_str(), e.tier.as_str()), ("billing", ""));
    assert_eq!(e.skills, vec![v1::SkillRequirement { skill: "billing".into(), min_proficiency: 5 }]);
    assert_eq!(e.languages, vec!["en".to_owned()]);
    assert_eq!(e.channel, v1::Channel::Voice as i32);
    let context: HashMap<_, _> = e.context.iter().map(|c| (c.key.as_str(), c.value.as_str())).collect();
    assert_eq!(context["sip_call_id"], "c1");
    assert_eq!(context["sip_from"], "sip:c1@caller");

    let Event::Call(mut with_headers) = call("c2", "1000", 2) else { unreachable!() };
    with_headers.tier = "gold".into();
    with_headers.language = "fr, en".into();
    with_headers.skill = "billing:7,sales".into();
    let out = h.step(kam(Event::Call(with_headers)));
    let [ToCcrd::Enqueue(g)] = &commands(&out)[..] else { panic!("{out:?}") };
    assert_eq!(g.tier, "gold");
    assert_eq!(g.languages, vec!["fr".to_owned(), "en".to_owned()]);
    let skills: Vec<(&str, u32)> = g.skills.iter().map(|s| (s.skill.as_str(), s.min_proficiency)).collect();
    assert_eq!(skills, vec![("billing", 7), ("sales", 1)]);
    assert_ne!(g.contact_id, e.contact_id);

    let out = h.step(kam(call("c3", "5555", 3)));
    let [ToCcrd::Enqueue(other)] = &commands(&out)[..] else { panic!("{out:?}") };
    assert_eq!(other.queue, "general", "an unlisted number takes \"*\"");
}

#[test]
fn a_number_that_routes_nowhere_is_refused_with_404() {
    let mut routing = routing();
    routing.numbers.retain(|n| n.number != "*");
    let mut bridge = Bridge::new(routing, T0);
    let out = bridge.step(T0, kam(call("c1", "9999", 4)));
    assert!(commands(&out).is_empty());
    assert_eq!(answers(&out)[0].to, AnswerTo::End { code: 404, reason: "No Such Number".into() });
    assert_eq!(records(&out), vec![Record::CallEnded(CallEnd::NoRoute)]);
}

#[test]
fn a_phone_registering_logs_its_agent_in_and_unregistering_or_lapsing_logs_it_out() {
    let mut h = Harness::new();
    let out = h.step(kam(Event::Register { user: "alice".into(), expires: 60 }));
    let [ToCcrd::Login(login)] = &commands(&out)[..] else { panic!("{out:?}") };
    assert_eq!((login.agent_id, login.voice_capacity, login.ready), (101, 1, true));
    assert_eq!(login.skills, vec![v1::AgentSkill { skill: "billing".into(), proficiency: 8 }]);
    assert!(commands(&h.step(kam(Event::Register { user: "alice".into(), expires: 60 }))).is_empty(), "a refresh");
    let out = h.step(kam(Event::Register { user: "alice".into(), expires: 0 }));
    assert_eq!(commands(&out), vec![ToCcrd::Logout { agent: 101 }]);

    h.step(kam(Event::Register { user: "bob".into(), expires: 30 }));
    assert!(commands(&h.at(29.0, Input::Tick)).is_empty());
    assert_eq!(commands(&h.at(30.0, Input::Tick)), vec![ToCcrd::Logout { agent: 102 }], "lapsed");

    let out = h.step(kam(Event::Register { user: "mallory".into(), expires: 60 }));
    assert_eq!(records(&out), vec![Record::UnknownPhone]);
    assert!(commands(&out).is_empty());
}

#[test]
fn an_agent_logged_out_by_a_supervisor_is_logged_in_again_by_its_phones_next_registration() {
    let mut h = Harness::new();
    h.phones();
    h.step(Input::Ccrd(Ev::AgentState(v1::AgentStateChanged {
        agent_id: 101,
        state: "offline".into(),
        reason: String::new(),
    })));
    let out = h.step(kam(Event::Register { user: "alice".into(), expires: 300 }));
    let [ToCcrd::Login(login)] = &commands(&out)[..] else { panic!("{out:?}") };
    assert_eq!(login.agent_id, 101);
    let ready: Vec<bool> = commands(&h.step(Input::CcrdBack { generation: 2 }))
        .iter()
        .filter_map(|c| if let ToCcrd::Login(l) = c { Some(l.ready) } else { None })
        .collect();
    assert_eq!(ready, vec![true, true], "both phones' agents are logged in again after a reconnect");
}

#[test]
fn an_offer_rings_the_agents_phone_until_just_before_it_expires_and_the_answer_accepts_it() {
    let mut h = Harness::new();
    h.phones();
    let contact = h.queued_call("c1", 1);
    let out = h.at(2.0, offer(7, contact, 101, T0 + 17 * SEC));
    let (user, ring_ms, transaction) = ring_of(&out);
    assert_eq!((user.as_str(), ring_ms, transaction), ("alice", 14_000, tx(1)), "15 s left, less the 1 s margin");
    assert_eq!(records(&out), vec![Record::Routed(Duration::from_secs(2))]);

    let out = h.at(5.0, kam(Event::Answered { call_id: "c1".into() }));
    assert_eq!(commands(&out), vec![ToCcrd::Accept { agent: 101, offer: 7 }]);
    assert!(commands(&h.step(kam(Event::Answered { call_id: "c1".into() }))).is_empty(), "a repeated 200 OK");

    let out = h.at(65.0, kam(Event::Bye { call_id: "c1".into() }));
    assert_eq!(commands(&out), vec![ToCcrd::Complete { agent: 101, contact }]);
    assert_eq!(records(&out), vec![Record::CallEnded(CallEnd::Completed)]);
}

#[test]
fn a_busy_phone_rejects_the_offer_and_the_next_offer_rings_the_next_agent_on_the_same_transaction() {
    let mut h = Harness::new();
    h.phones();
    let contact = h.queued_call("c1", 1);
    ring_of(&h.step(offer(7, contact, 101, T0 + 15 * SEC)));
    let out = h.at(1.0, kam(Event::NoAnswer { call_id: "c1".into(), status: 486, transaction: tx(9) }));
    assert_eq!(commands(&out), vec![ToCcrd::Reject { agent: 101, offer: 7 }]);
    assert!(answers(&out).is_empty(), "held until ccrd offers again");
    h.step(offer_ended(7, contact, 101, "rejected"));
    let (user, _, transaction) = ring_of(&h.step(offer(8, contact, 102, T0 + 16 * SEC)));
    assert_eq!((user.as_str(), transaction), ("bob", tx(9)), "the transaction the failure route held");
}

#[test]
fn a_phone_that_rings_out_is_left_to_ccrds_expiry_so_the_agent_gets_rona() {
    let mut h = Harness::new();
    h.phones();
    let contact = h.queued_call("c1", 1);
    ring_of(&h.step(offer(7, contact, 101, T0 + 15 * SEC)));
    let out = h.at(14.0, kam(Event::NoAnswer { call_id: "c1".into(), status: 408, transaction: tx(1) }));
    assert!(commands(&out).is_empty(), "no reject: ccrd's own expiry makes it RONA: {out:?}");
    h.at(15.0, offer_ended(7, contact, 101, "expired"));
    let (user, _, _) = ring_of(&h.step(offer(8, contact, 102, T0 + 30 * SEC)));
    assert_eq!(user, "bob");
}

#[test]
fn an_offer_that_comes_while_a_withdrawn_offer_still_rings_waits_for_that_ring_to_end() {
    let mut h = Harness::new();
    h.phones();
    let contact = h.queued_call("c1", 1);
    ring_of(&h.step(offer(7, contact, 101, T0 + 15 * SEC)));
    h.step(offer_ended(7, contact, 101, "withdrawn"));
    let out = h.step(offer(8, contact, 102, T0 + 15 * SEC));
    assert!(answers(&out).is_empty(), "alice's phone still rings: {out:?}");
    let out = h.step(kam(Event::NoAnswer { call_id: "c1".into(), status: 408, transaction: tx(1) }));
    assert!(commands(&out).is_empty(), "a withdrawn offer is not rejected");
    assert_eq!(ring_of(&out).0, "bob");
}

#[test]
fn an_answer_after_the_offer_ended_keeps_the_caller_and_abandons_the_contact_in_ccrd() {
    let mut h = Harness::new();
    h.phones();
    let contact = h.queued_call("c1", 1);
    ring_of(&h.step(offer(7, contact, 101, T0 + 15 * SEC)));
    h.step(offer_ended(7, contact, 101, "withdrawn"));
    let out = h.step(kam(Event::Answered { call_id: "c1".into() }));
    assert_eq!(commands(&out), vec![ToCcrd::Abandon { contact }]);
    assert!(records(&out).contains(&Record::AnsweredOutsideCcrd));
    let out = h.step(kam(Event::Bye { call_id: "c1".into() }));
    assert!(commands(&out).is_empty(), "nothing to complete in ccrd");

    // The same when ccrd refuses the accept.
    let contact = h.queued_call("c2", 2);
    ring_of(&h.step(offer(9, contact, 102, T0 + 15 * SEC)));
    let out = h.step(kam(Event::Answered { call_id: "c2".into() }));
    let [accept] = &commands(&out)[..] else { panic!("{out:?}") };
    let refused = Err(Status::new(Code::FailedPrecondition, "offer 9 expired"));
    let out = h.step(Input::Replied { generation: 1, command: accept.clone(), result: refused });
    assert_eq!(commands(&out), vec![ToCcrd::Abandon { contact }]);
}

#[test]
fn a_caller_who_hangs_up_while_queued_or_ringing_is_abandoned() {
    let mut h = Harness::new();
    h.phones();
    let queued = h.queued_call("c1", 1);
    let out = h.step(kam(Event::Cancel { call_id: "c1".into() }));
    assert_eq!(commands(&out), vec![ToCcrd::Abandon { contact: queued }]);
    assert_eq!(records(&out), vec![Record::CallEnded(CallEnd::Abandoned)]);
    let ringing = h.queued_call("c2", 2);
    ring_of(&h.step(offer(7, ringing, 101, T0 + 15 * SEC)));
    assert_eq!(
        commands(&h.step(kam(Event::Cancel { call_id: "c2".into() }))),
        vec![ToCcrd::Abandon { contact: ringing }]
    );
    assert!(h.step(offer(8, ringing, 102, T0 + 15 * SEC)).is_empty(), "a late offer for a call gone");
}

#[test]
fn an_offer_to_an_agent_without_a_registered_phone_is_rejected() {
    let mut h = Harness::new();
    h.step(kam(Event::Register { user: "alice".into(), expires: 300 }));
    let contact = h.queued_call("c1", 1);
    let out = h.step(offer(7, contact, 102, T0 + 15 * SEC));
    assert_eq!(commands(&out), vec![ToCcrd::Reject { agent: 102, offer: 7 }]);
    assert_eq!(records(&out), vec![Record::OfferWithoutPhone]);
    let out = h.step(offer(8, contact, 999, T0 + 15 * SEC));
    assert_eq!(commands(&out), vec![ToCcrd::Reject { agent: 999, offer: 8 }], "an agent no [[agents]] names");
}

#[test]
fn a_refused_enqueue_ends_the_call_with_the_matching_sip_response() {
    for (code, sip) in [(Code::ResourceExhausted, 503), (Code::NotFound, 404), (Code::InvalidArgument, 400)] {
        let mut h = Harness::new();
        let out = h.step(kam(call("c1", "1000", 1)));
        let [command] = &commands(&out)[..] else { panic!() };
        let result = Err(Status::new(code, "no"));
        let out = h.step(Input::Replied { generation: 1, command: command.clone(), result });
        let [Answer { to: AnswerTo::End { code: got, .. }, .. }] = &answers(&out)[..] else { panic!("{out:?}") };
        assert_eq!(*got, sip);
        assert_eq!(records(&out), vec![Record::CallEnded(CallEnd::Refused)]);
    }
}

#[test]
fn a_call_waiting_past_max_wait_is_ended_and_abandoned() {
    let mut h = Harness::new();
    let contact = h.queued_call("c1", 1);
    assert!(h.at(59.0, Input::Tick).is_empty());
    let out = h.at(60.0, Input::Tick);
    assert_eq!(commands(&out), vec![ToCcrd::Abandon { contact }]);
    assert_eq!(answers(&out)[0].to, AnswerTo::End { code: 480, reason: "Temporarily Unavailable".into() });
    assert!(h.at(61.0, Input::Tick).is_empty(), "once");
}

#[test]
fn a_call_ringing_at_max_wait_is_abandoned_and_ends_when_the_ring_does() {
    let mut h = Harness::new();
    h.phones();
    let contact = h.queued_call("c1", 1);
    ring_of(&h.at(59.0, offer(7, contact, 101, T0 + 74 * SEC)));
    let out = h.at(60.0, Input::Tick);
    assert_eq!(commands(&out), vec![ToCcrd::Abandon { contact }]);
    assert!(answers(&out).is_empty(), "the phone still rings");
    h.step(offer_ended(7, contact, 101, "abandoned"));
    let out = h.at(61.0, kam(Event::NoAnswer { call_id: "c1".into(), status: 408, transaction: tx(1) }));
    assert_eq!(answers(&out)[0].to, AnswerTo::End { code: 480, reason: "Temporarily Unavailable".into() });
    assert_eq!(records(&out).last(), Some(&Record::CallEnded(CallEnd::TimedOut)));
}

#[test]
fn a_call_talking_past_max_talk_without_a_bye_is_completed() {
    let mut h = Harness::new();
    h.phones();
    let contact = h.queued_call("c1", 1);
    ring_of(&h.at(1.0, offer(7, contact, 101, T0 + 16 * SEC)));
    h.at(2.0, kam(Event::Answered { call_id: "c1".into() }));
    let completes = |out: &[Output]| -> Vec<ToCcrd> {
        commands(out).into_iter().filter(|c| matches!(c, ToCcrd::Complete { .. })).collect()
    };
    assert!(completes(&h.at(3601.0, Input::Tick)).is_empty());
    let out = h.at(3602.0, Input::Tick);
    assert_eq!(completes(&out), vec![ToCcrd::Complete { agent: 101, contact }]);
    assert_eq!(records(&out), vec![Record::CallEnded(CallEnd::TalkLimit)]);
    assert!(h.at(3603.0, kam(Event::Bye { call_id: "c1".into() })).is_empty(), "a late BYE changes nothing");
}

#[test]
fn a_contact_ccrd_abandons_ends_its_call_at_once_or_when_its_ring_ends() {
    let mut h = Harness::new();
    h.phones();
    let contact = h.queued_call("c1", 1);
    let abandoned = |c: u64| Input::Ccrd(Ev::Abandoned(v1::Abandoned { contact_id: c, ..Default::default() }));
    let out = h.step(abandoned(contact));
    assert_eq!(answers(&out)[0].to, AnswerTo::End { code: 480, reason: "Temporarily Unavailable".into() });
    let ringing = h.queued_call("c2", 2);
    ring_of(&h.step(offer(7, ringing, 101, T0 + 15 * SEC)));
    h.step(offer_ended(7, ringing, 101, "abandoned"));
    assert!(answers(&h.step(abandoned(ringing))).is_empty(), "the phone still rings");
    let out = h.step(kam(Event::NoAnswer { call_id: "c2".into(), status: 408, transaction: tx(2) }));
    assert_eq!(answers(&out)[0].to, AnswerTo::End { code: 480, reason: "Temporarily Unavailable".into() });
    assert_eq!(records(&out).last(), Some(&Record::CallEnded(CallEnd::EndedByCcrd)));
}

#[test]
fn after_a_reconnect_agents_log_in_as_they_were_calls_are_claimed_and_lost_commands_sent_again() {
    let mut h = Harness::new();
    h.phones();
    h.step(Input::Ccrd(Ev::AgentState(v1::AgentStateChanged {
        agent_id: 102,
        state: "not_ready".into(),
        reason: "break".into(),
    })));
    let contact = h.queued_call("c1", 1);
    let out = h.step(kam(call("c2", "1000", 2)));
    let [unanswered] = &commands(&out)[..] else { panic!() };
    let lost = Err(Status::new(Code::Unavailable, "connection lost"));
    assert!(h.step(Input::Replied { generation: 1, command: unanswered.clone(), result: lost }).is_empty());
    let out = h.step(Input::CcrdBack { generation: 2 });
    let got = commands(&out);
    let ready: Vec<(u64, bool)> =
        got.iter().filter_map(|c| if let ToCcrd::Login(l) = c { Some((l.agent_id, l.ready)) } else { None }).collect();
    assert_eq!(ready, vec![(101, true), (102, false)], "bob stays on his break");
    assert!(got.contains(&ToCcrd::Position { contact }), "the enqueued call is claimed: {got:?}");
    assert!(got.contains(unanswered), "the enqueue that got no answer is sent again: {got:?}");
    let gone = Err(Status::new(Code::NotFound, "no such contact"));
    let out = h.step(Input::Replied { generation: 2, command: ToCcrd::Position { contact }, result: gone });
    assert_eq!(records(&out), vec![Record::CallEnded(CallEnd::EndedByCcrd)]);
    // A command of the old connection that fails after the re-sync goes at once.
    let late = ToCcrd::Complete { agent: 101, contact: 5 };
    let out = h.step(Input::Replied {
        generation: 1,
        command: late.clone(),
        result: Err(Status::new(Code::Unavailable, "lost")),
    });
    assert_eq!(commands(&out), vec![late]);
}

#[test]
fn a_restarted_kamailio_ends_every_call_and_registration() {
    let mut h = Harness::new();
    h.phones();
    let waiting = h.queued_call("c1", 1);
    let talking = h.queued_call("c2", 2);
    ring_of(&h.step(offer(7, talking, 101, T0 + 15 * SEC)));
    h.step(kam(Event::Answered { call_id: "c2".into() }));
    let out = h.step(Input::Kamailio(Relayed { started: "run-2".into(), event: Event::Hello }));
    let got = commands(&out);
    let want = [
        ToCcrd::Abandon { contact: waiting },
        ToCcrd::Complete { agent: 101, contact: talking },
        ToCcrd::Logout { agent: 101 },
        ToCcrd::Logout { agent: 102 },
    ];
    assert_eq!(got.len(), want.len(), "{got:?}");
    assert!(want.iter().all(|w| got.contains(w)), "{got:?}");
    assert_eq!(h.bridge.counts().phones_registered, 0);
}

#[test]
fn stopping_ends_the_waiting_calls_with_503() {
    let mut h = Harness::new();
    let contact = h.queued_call("c1", 1);
    let out = h.bridge.stop();
    assert_eq!(commands(&out), vec![ToCcrd::Abandon { contact }]);
    assert_eq!(answers(&out)[0].to, AnswerTo::End { code: 503, reason: "Service Unavailable".into() });
}

// ---- Invariants under any order of events -------------------------------

#[derive(Clone, Debug)]
enum Step {
    Call(u8),
    Register(u8, bool),
    Offer(u8, u8),
    OfferEnded(u8),
    Answered(u8),
    NoAnswer(u8, bool),
    Cancel(u8),
    Bye(u8),
    Abandoned(u8),
    Refuse(u8),
    Reconnect,
    Tick(u8),
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    let step = prop_oneof![
        (0u8..4).prop_map(Step::Call),
        (0u8..2, any::<bool>()).prop_map(|(p, on)| Step::Register(p, on)),
        (0u8..4, 0u8..3).prop_map(|(c, a)| Step::Offer(c, a)),
        (0u8..4).prop_map(Step::OfferEnded),
        (0u8..4).prop_map(Step::Answered),
        (0u8..4, any::<bool>()).prop_map(|(c, out)| Step::NoAnswer(c, out)),
        (0u8..4).prop_map(Step::Cancel),
        (0u8..4).prop_map(Step::Bye),
        (0u8..4).prop_map(Step::Abandoned),
        (0u8..4).prop_map(Step::Refuse),
        Just(Step::Reconnect),
        (1u8..40).prop_map(Step::Tick),
    ];
    proptest::collection::vec(step, 1..60)
}

proptest! {
    /// Whatever Kamailio and ccrd say, in whatever order: Kamailio gets at
    /// most one answer per hold of a call (an answer for a call it does not
    /// hold would be lost, two would ring two phones); an offer is accepted
    /// only after its phone was rung for it and answered; contact ids are
    /// never reused; and the gauges add up.
    #[test]
    fn kamailio_gets_one_answer_per_hold_and_only_rung_offers_are_accepted(steps in steps()) {
        let mut bridge = Bridge::new(routing(), T0);
        let mut now = T0;
        bridge.step(now, Input::CcrdBack { generation: 1 });
        let mut generation = 1;
        let mut holds: HashMap<String, i32> = HashMap::new();
        let mut contacts: HashMap<u8, u64> = HashMap::new();
        let mut seen_contacts: HashSet<u64> = HashSet::new();
        let mut rung: HashMap<String, Vec<(u64, u64)>> = HashMap::new();
        let mut offers: HashMap<u8, (u64, u64)> = HashMap::new();
        let mut next_offer = 1;
        let mut accepted = HashSet::new();
        for step in steps {
            let cid = |c: u8| format!("c{c}");
            let input = match step {
                // Each caller calls once (a Call-ID names one call).
                Step::Call(c) if holds.contains_key(&cid(c)) || rung.contains_key(&cid(c)) => continue,
                Step::Call(c) => kam(call(&cid(c), "1000", u32::from(c) + 1)),
                Step::Register(p, on) => kam(Event::Register { user: ["alice", "bob"][p as usize].into(), expires: if on { 300 } else { 0 } }),
                Step::Offer(c, a) => {
                    let Some(&contact) = contacts.get(&c) else { continue };
                    let agent = [101, 102, 103][a as usize];
                    next_offer += 1;
                    offers.insert(c, (next_offer, agent));
                    offer(next_offer, contact, agent, now + 15 * SEC)
                }
                Step::OfferEnded(c) => {
                    let (Some(&contact), Some(&(o, a))) = (contacts.get(&c), offers.get(&c)) else { continue };
                    offer_ended(o, contact, a, "withdrawn")
                }
                Step::Answered(c) => {
                    // Kamailio reports answers of phones it rang.
                    if rung.get(&cid(c)).is_none_or(|r| r.is_empty()) { continue; }
                    kam(Event::Answered { call_id: cid(c) })
                }
                Step::NoAnswer(c, out) => {
                    // Kamailio holds the call again only if a phone rang for it.
                    if rung.get(&cid(c)).is_none_or(|r| r.is_empty()) { continue; }
                    kam(Event::NoAnswer { call_id: cid(c), status: if out { 408 } else { 486 }, transaction: tx(u32::from(c) + 1) })
                }
                Step::Cancel(c) => kam(Event::Cancel { call_id: cid(c) }),
                Step::Bye(c) => kam(Event::Bye { call_id: cid(c) }),
                Step::Abandoned(c) => {
                    let Some(&contact) = contacts.get(&c) else { continue };
                    Input::Ccrd(Ev::Abandoned(v1::Abandoned { contact_id: contact, ..Default::default() }))
                }
                Step::Refuse(c) => {
                    let Some(&contact) = contacts.get(&c) else { continue };
                    let command = ToCcrd::Enqueue(v1::EnqueueRequest { contact_id: contact, ..Default::default() });
                    Input::Replied { generation, command, result: Err(Status::new(Code::ResourceExhausted, "full")) }
                }
                Step::Reconnect => { generation += 1; Input::CcrdBack { generation } }
                Step::Tick(s) => { now += u64::from(s) * SEC; Input::Tick }
            };
            // What Kamailio holds, before the step.
            match &input {
                Input::Kamailio(Relayed { event: Event::Call(c), .. }) => {
                    holds.insert(c.call_id.clone(), 1);
                }
                Input::Kamailio(Relayed { event: Event::NoAnswer { call_id, .. }, .. }) => {
                    *holds.entry(call_id.clone()).or_default() += 1;
                    rung.get_mut(call_id).map(|r| r.pop());
                }
                Input::Kamailio(Relayed { event: Event::Answered { call_id } | Event::Cancel { call_id } | Event::Bye { call_id }, .. }) => {
                    if matches!(&input, Input::Kamailio(Relayed { event: Event::Cancel { .. } | Event::Bye { .. }, .. })) {
                        holds.insert(call_id.clone(), 0);
                    }
                }
                _ => {}
            }
            let answered_call = match &input {
                Input::Kamailio(Relayed { event: Event::Answered { call_id }, .. }) => Some(call_id.clone()),
                _ => None,
            };
            let out = bridge.step(now, input);
            for o in &out {
                match o {
                    Output::Kamailio(a) => {
                        let held = holds.entry(a.call_id.clone()).or_default();
                        prop_assert!(*held >= 1, "an answer for {} which Kamailio does not hold", a.call_id);
                        *held -= 1;
                        if let AnswerTo::Agent { .. } = a.to {
                            let c: u8 = a.call_id[1..].parse().unwrap();
                            rung.entry(a.call_id.clone()).or_default().push(offers[&c]);
                        }
                    }
                    Output::Ccrd(ToCcrd::Enqueue(e)) => {
                        prop_assert!(seen_contacts.insert(e.contact_id), "contact id {} reused", e.contact_id);
                        let c: u8 = e.context.iter().find(|x| x.key == "sip_call_id").unwrap().value[1..].parse().unwrap();
                        contacts.insert(c, e.contact_id);
                    }
                    Output::Ccrd(ToCcrd::Accept { agent, offer }) => {
                        let call_id = answered_call.clone();
                        prop_assert!(call_id.is_some(), "an accept without an answer");
                        let was_rung = rung.get(&call_id.unwrap()).is_some_and(|r| r.contains(&(*offer, *agent)));
                        prop_assert!(was_rung, "offer {offer} accepted for agent {agent} without its phone ringing");
                        prop_assert!(accepted.insert(*offer), "offer {offer} accepted twice");
                    }
                    _ => {}
                }
            }
            if let Some(call_id) = answered_call {
                rung.insert(call_id.clone(), Vec::new());
                holds.insert(call_id, 0);
            }
            let counts = bridge.counts();
            prop_assert!(counts.phones_registered <= 2);
        }
    }
}
