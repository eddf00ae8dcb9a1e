//! The bridge between SIP calls and ccrd: a deterministic state machine,
//! no I/O. Kamailio's events, ccrd's events and the answers to ccr-sipgw's
//! own calls come in with `now`; commands for ccrd, answers for Kamailio
//! and records for the metrics come out ([`Bridge::step`]).
//!
//! A call is held by Kamailio (a suspended transaction) while it waits for
//! an agent; the bridge rings an agent's phone when ccrd offers the call to
//! that agent, accepts the offer when the phone answers, and on no answer
//! declines it (busy, declined) or lets it expire (rang out: RONA), after
//! which ccrd offers the call to the next agent. An agent's phone logs the
//! agent in by registering.
//!
//! ccrd decides who takes a call; the bridge only keeps SIP and ccrd in
//! step, so it holds no rule of routing.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use ccr_proto::v1::Status;
use ccr_proto::v1::{self, routing_event, Channel, ContextEntry};
use ccr_proto::wire::Code;

use crate::config::Routing;
use crate::evapi::{Answer, AnswerTo, Event, NewCall, Relayed, Transaction};

/// A command for ccrd.
#[derive(Clone, Debug, PartialEq)]
pub enum ToCcrd {
    Enqueue(v1::EnqueueRequest),
    Abandon {
        contact: u64,
    },
    /// Names a contact after a reconnect, claiming it for this session.
    Position {
        contact: u64,
    },
    Login(v1::LoginRequest),
    Logout {
        agent: u64,
    },
    Accept {
        agent: u64,
        offer: u64,
    },
    Reject {
        agent: u64,
        offer: u64,
    },
    Complete {
        agent: u64,
        contact: u64,
    },
}

/// How a call ended, as counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CallEnd {
    /// Answered by the agent ccrd chose, then hung up.
    Completed,
    /// The caller hung up before an answer.
    Abandoned,
    /// ccrd refused it (queue full, unknown queue, bad X- header).
    Refused,
    /// Its number routes nowhere.
    NoRoute,
    /// Waited past `calls.max_wait`.
    TimedOut,
    /// ccrd ended it (a supervisor abandoned it, or its session's grace ran out).
    EndedByCcrd,
    /// Kamailio no longer had it (restarted, or the transaction ended).
    Lost,
    /// Answered longer ago than `calls.max_talk` with no BYE: completed.
    TalkLimit,
}

/// How a ring ended, as counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RingEnd {
    Answered,
    /// Rang out: ccrd's offer expires (RONA).
    RangOut,
    /// Busy, declined, or the phone was gone: the offer is rejected.
    Declined,
}

/// Something to count.
#[derive(Clone, Debug, PartialEq)]
pub enum Record {
    CallEnded(CallEnd),
    /// From the call's arrival to its first ring.
    Routed(Duration),
    /// From a ring's start to its end.
    Rang(Duration, RingEnd),
    /// ccrd offered a call to an agent with no registered phone: rejected.
    OfferWithoutPhone,
    /// A phone registered that no `[[agents]]` entry names.
    UnknownPhone,
    /// An agent answered after ccrd's offer had ended (withdrawn while
    /// ringing, or the accept came too late): the caller talks to that
    /// agent, and the contact is abandoned in ccrd.
    AnsweredOutsideCcrd,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Output {
    Ccrd(ToCcrd),
    Kamailio(Answer),
    Record(Record),
}

/// What comes in.
#[derive(Clone, Debug, PartialEq)]
pub enum Input {
    Kamailio(Relayed),
    Ccrd(routing_event::Event),
    /// Connected (again) to ccrd, subscribed: re-sync. `generation` counts
    /// the connections.
    CcrdBack {
        generation: u64,
    },
    /// ccrd's answer to a command sent on connection `generation`.
    Replied {
        generation: u64,
        command: ToCcrd,
        result: Result<Reply, Status>,
    },
    /// Once a second or so: calls waiting too long, registrations lapsed.
    Tick,
}

/// The parts of ccrd's answers the bridge reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reply {
    Done,
    /// Position: 0 = no longer waiting (offered, connected).
    Position(u32),
}

#[derive(Clone, Debug, PartialEq)]
struct Ring {
    offer: u64,
    agent: u64,
    /// ccrd's offer still stands (no `offer_ended` yet).
    live: bool,
    since: u64,
}

#[derive(Clone, Debug, PartialEq)]
struct Talk {
    agent: u64,
    /// ccrd knows the contact is with this agent (its accept stood).
    in_ccrd: bool,
    since: u64,
}

#[derive(Clone, Debug, PartialEq)]
struct Call {
    contact: u64,
    transaction: Transaction,
    arrived: u64,
    /// Kamailio holds the transaction for our answer.
    held: bool,
    /// ccrd took the enqueue (its reply came, or ALREADY_EXISTS).
    enqueued: bool,
    ring: Option<Ring>,
    /// An offer not rung yet (the phone of the last is still ringing).
    next: Option<(u64, u64, u64)>,
    talk: Option<Talk>,
    /// The first ring happened (for `Record::Routed`).
    routed: bool,
    /// The contact is over in ccrd (ended there, or given up on here) while
    /// a phone rang: the ring's outcome ends the call, counted as this.
    ended: Option<CallEnd>,
}

#[derive(Clone, Debug, PartialEq)]
struct Phone {
    id: u64,
    user: String,
    skills: Vec<v1::AgentSkill>,
    languages: Vec<String>,
    /// Registered until (unix µs); `None`: not registered.
    registered_until: Option<u64>,
    /// ccrd has the agent logged in from us (as far as we know).
    logged_in: bool,
    /// Whether the agent takes offers, as ccrd last said (re-sync keeps it).
    ready: bool,
}

/// See the module's doc.
pub struct Bridge {
    routing: Routing,
    calls: HashMap<String, Call>,
    by_contact: HashMap<u64, String>,
    phones: Vec<Phone>,
    phone_by_user: HashMap<String, usize>,
    phone_by_agent: HashMap<u64, usize>,
    next_contact: u64,
    kamailio_run: Option<String>,
    generation: u64,
    /// Commands lost with a connection, sent again after the re-sync.
    resend: Vec<ToCcrd>,
    out: Vec<Output>,
}

/// Counts for gauges.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub waiting: usize,
    pub ringing: usize,
    pub talking: usize,
    pub phones_registered: usize,
}

/// The largest contact id ccrd takes.
const MAX_ID: u64 = (1 << 63) - 1;

impl Bridge {
    /// `now` (unix µs) seeds the contact ids: they go up from it, so a
    /// restarted ccr-sipgw never reuses one (at under a call a microsecond).
    pub fn new(routing: Routing, now: u64) -> Bridge {
        let phones: Vec<Phone> = routing
            .agents
            .iter()
            .map(|a| Phone {
                id: a.id,
                user: a.sip_user.clone(),
                skills: a.skills.iter().map(|(s, p)| v1::AgentSkill { skill: s.clone(), proficiency: *p }).collect(),
                languages: a.languages.clone(),
                registered_until: None,
                logged_in: false,
                ready: true,
            })
            .collect();
        let phone_by_user = phones.iter().enumerate().map(|(i, p)| (p.user.clone(), i)).collect();
        let phone_by_agent = phones.iter().enumerate().map(|(i, p)| (p.id, i)).collect();
        Bridge {
            routing,
            calls: HashMap::new(),
            by_contact: HashMap::new(),
            phones,
            phone_by_user,
            phone_by_agent,
            next_contact: now.clamp(1, MAX_ID / 2),
            kamailio_run: None,
            generation: 0,
            resend: Vec::new(),
            out: Vec::new(),
        }
    }

    pub fn counts(&self) -> Counts {
        let mut c = Counts::default();
        for call in self.calls.values() {
            match (&call.talk, &call.ring) {
                (Some(_), _) => c.talking += 1,
                (None, Some(_)) => c.ringing += 1,
                (None, None) => c.waiting += 1,
            }
        }
        c.phones_registered = self.phones.iter().filter(|p| p.registered_until.is_some()).count();
        c
    }

    /// Feeds one input; returns what to do, in order.
    pub fn step(&mut self, now: u64, input: Input) -> Vec<Output> {
        match input {
            Input::Kamailio(relayed) => self.kamailio(now, relayed),
            Input::Ccrd(event) => self.ccrd(now, event),
            Input::CcrdBack { generation } => self.resync(generation),
            Input::Replied { generation, command, result } => self.replied(generation, command, result),
            Input::Tick => self.tick(now),
        }
        std::mem::take(&mut self.out)
    }

    /// ccr-sipgw stops: the calls still waiting are ended (503) and
    /// abandoned in ccrd, since no other ccr-sipgw knows them; answered
    /// calls go on (ccrd completes them when this session's grace ends).
    pub fn stop(&mut self) -> Vec<Output> {
        let mut waiting: Vec<(u64, String)> =
            self.calls.iter().filter(|(_, c)| c.talk.is_none()).map(|(id, c)| (c.contact, id.clone())).collect();
        waiting.sort();
        for (contact, call_id) in waiting {
            self.send(ToCcrd::Abandon { contact });
            self.end_held(&call_id, 503, "Service Unavailable", CallEnd::Lost);
        }
        std::mem::take(&mut self.out)
    }

    fn send(&mut self, command: ToCcrd) {
        self.out.push(Output::Ccrd(command));
    }

    fn record(&mut self, record: Record) {
        self.out.push(Output::Record(record));
    }

    fn answer(&mut self, call_id: &str, transaction: Transaction, to: AnswerTo) {
        self.out.push(Output::Kamailio(Answer { call_id: call_id.to_owned(), transaction, to }));
    }

    /// Ends a held call with a final response and forgets it.
    fn end_held(&mut self, call_id: &str, code: u16, reason: &str, end: CallEnd) {
        if let Some(call) = self.forget(call_id) {
            if call.held {
                self.answer(call_id, call.transaction, AnswerTo::End { code, reason: reason.into() });
            }
            self.record(Record::CallEnded(end));
        }
    }

    fn forget(&mut self, call_id: &str) -> Option<Call> {
        let call = self.calls.remove(call_id)?;
        self.by_contact.remove(&call.contact);
        Some(call)
    }

    // ---- Kamailio ---------------------------------------------------------

    fn kamailio(&mut self, now: u64, relayed: Relayed) {
        if self.kamailio_run.as_deref() != Some(relayed.started.as_str()) {
            if self.kamailio_run.is_some() {
                self.kamailio_restarted();
            }
            self.kamailio_run = Some(relayed.started);
        }
        match relayed.event {
            Event::Hello => {}
            Event::Register { user, expires } => self.register(now, &user, expires),
            Event::Call(call) => self.new_call(now, call),
            Event::Answered { call_id } => self.answered(now, &call_id),
            Event::NoAnswer { call_id, status, transaction } => self.no_answer(now, &call_id, status, transaction),
            Event::Cancel { call_id } => {
                if let Some(call) = self.calls.get(&call_id) {
                    if call.talk.is_none() {
                        let contact = call.contact;
                        self.forget(&call_id);
                        self.send(ToCcrd::Abandon { contact });
                        self.record(Record::CallEnded(CallEnd::Abandoned));
                    }
                }
            }
            Event::Bye { call_id } => {
                if let Some(call) = self.forget(&call_id) {
                    match call.talk {
                        Some(Talk { agent, in_ccrd: true, .. }) => {
                            self.send(ToCcrd::Complete { agent, contact: call.contact });
                            self.record(Record::CallEnded(CallEnd::Completed));
                        }
                        Some(Talk { in_ccrd: false, .. }) => self.record(Record::CallEnded(CallEnd::Completed)),
                        // A BYE before the answer reached us: the caller left.
                        None => {
                            self.send(ToCcrd::Abandon { contact: call.contact });
                            self.record(Record::CallEnded(CallEnd::Abandoned));
                        }
                    }
                }
            }
            Event::Gone { call_id } => {
                if let Some(call) = self.forget(&call_id) {
                    if call.talk.is_none() {
                        self.send(ToCcrd::Abandon { contact: call.contact });
                    }
                    self.record(Record::CallEnded(CallEnd::Lost));
                }
            }
        }
    }

    /// A new Kamailio run holds none of the old one's calls or registrations.
    fn kamailio_restarted(&mut self) {
        let mut ids: Vec<String> = self.calls.keys().cloned().collect();
        ids.sort();
        for call_id in ids {
            let Some(call) = self.forget(&call_id) else { continue };
            match call.talk {
                Some(Talk { agent, in_ccrd: true, .. }) => self.send(ToCcrd::Complete { agent, contact: call.contact }),
                Some(_) => {}
                None => self.send(ToCcrd::Abandon { contact: call.contact }),
            }
            self.record(Record::CallEnded(CallEnd::Lost));
        }
        for i in 0..self.phones.len() {
            self.unregister(i);
        }
    }

    fn register(&mut self, now: u64, user: &str, expires: u32) {
        let Some(&i) = self.phone_by_user.get(user) else {
            self.record(Record::UnknownPhone);
            return;
        };
        if expires == 0 {
            self.unregister(i);
            return;
        }
        let phone = &mut self.phones[i];
        phone.registered_until = Some(now + u64::from(expires) * 1_000_000);
        if !phone.logged_in {
            phone.logged_in = true;
            phone.ready = true;
            let login = self.login(i);
            self.send(login);
        }
    }

    fn login(&self, i: usize) -> ToCcrd {
        let phone = &self.phones[i];
        ToCcrd::Login(v1::LoginRequest {
            agent_id: phone.id,
            skills: phone.skills.clone(),
            languages: phone.languages.clone(),
            voice_capacity: 1,
            chat_capacity: 0,
            email_capacity: 0,
            ready: phone.ready,
        })
    }

    fn unregister(&mut self, i: usize) {
        let phone = &mut self.phones[i];
        phone.registered_until = None;
        if phone.logged_in {
            phone.logged_in = false;
            let agent = phone.id;
            self.send(ToCcrd::Logout { agent });
        }
    }

    fn new_call(&mut self, now: u64, call: NewCall) {
        if self.calls.contains_key(&call.call_id) {
            return; // Kamailio relays each INVITE once; a repeat changes nothing.
        }
        let Some(route) = self
            .routing
            .numbers
            .iter()
            .find(|n| n.number == call.number)
            .or_else(|| self.routing.numbers.iter().find(|n| n.number == "*"))
        else {
            self.answer(&call.call_id, call.transaction, AnswerTo::End { code: 404, reason: "No Such Number".into() });
            self.record(Record::CallEnded(CallEnd::NoRoute));
            return;
        };
        let contact = self.next_contact;
        self.next_contact = if contact >= MAX_ID { 1 } else { contact + 1 };
        let tier = if call.tier.is_empty() { route.tier.clone() } else { call.tier.clone() };
        let languages = match call.language.is_empty() {
            true => route.languages.clone(),
            false => call.language.split(',').map(|l| l.trim().to_owned()).filter(|l| !l.is_empty()).collect(),
        };
        let skills = match call.skill.is_empty() {
            true => route
                .skills
                .iter()
                .map(|(s, p)| v1::SkillRequirement { skill: s.clone(), min_proficiency: *p })
                .collect(),
            false => header_skills(&call.skill),
        };
        let context = [("sip_call_id", &call.call_id), ("sip_from", &call.from), ("sip_to", &call.to)]
            .into_iter()
            .map(|(k, v)| ContextEntry { key: k.into(), value: v.clone() })
            .collect();
        let enqueue = v1::EnqueueRequest {
            contact_id: contact,
            channel: Channel::Voice as i32,
            queue: route.queue.clone(),
            tier,
            skills,
            languages,
            preferred_agents: Vec::new(),
            context,
        };
        self.by_contact.insert(contact, call.call_id.clone());
        self.calls.insert(
            call.call_id,
            Call {
                contact,
                transaction: call.transaction,
                arrived: now,
                held: true,
                enqueued: false,
                ring: None,
                next: None,
                talk: None,
                routed: false,
                ended: None,
            },
        );
        self.send(ToCcrd::Enqueue(enqueue));
    }

    fn answered(&mut self, now: u64, call_id: &str) {
        let Some(call) = self.calls.get_mut(call_id) else { return };
        // Phones repeat a 200 OK until it is acknowledged: one counts.
        let Some(ring) = call.ring.take() else { return };
        let contact = call.contact;
        let live = ring.live && call.ended.is_none();
        call.talk = Some(Talk { agent: ring.agent, in_ccrd: live, since: now });
        call.next = None;
        self.record(Record::Rang(micros(now.saturating_sub(ring.since)), RingEnd::Answered));
        if live {
            self.send(ToCcrd::Accept { agent: ring.agent, offer: ring.offer });
        } else {
            self.answered_outside(contact);
        }
    }

    fn answered_outside(&mut self, contact: u64) {
        self.send(ToCcrd::Abandon { contact });
        self.record(Record::AnsweredOutsideCcrd);
    }

    fn no_answer(&mut self, now: u64, call_id: &str, status: u16, transaction: Transaction) {
        let Some(call) = self.calls.get_mut(call_id) else { return };
        call.held = true;
        call.transaction = transaction;
        let Some(ring) = call.ring.take() else { return };
        // Rang out (tm's own 408): ccrd's offer expires moments later, and
        // the agent goes not ready for RONA. Anything else the phone said
        // (busy, declined, not found): the offer is declined now.
        let rang_out = status == 408;
        let end = if rang_out { RingEnd::RangOut } else { RingEnd::Declined };
        self.record(Record::Rang(micros(now.saturating_sub(ring.since)), end));
        if ring.live && !rang_out {
            self.send(ToCcrd::Reject { agent: ring.agent, offer: ring.offer });
        }
        if let Some(end) = self.calls[call_id].ended {
            self.end_held(call_id, 480, "Temporarily Unavailable", end);
            return;
        }
        self.ring_next(now, call_id);
    }

    /// Rings the call's next offer if Kamailio holds the call.
    fn ring_next(&mut self, now: u64, call_id: &str) {
        let Some(call) = self.calls.get_mut(call_id) else { return };
        if !call.held || call.ring.is_some() {
            return;
        }
        let Some((offer, agent, expires)) = call.next.take() else { return };
        let Some(&i) = self.phone_by_agent.get(&agent) else { return };
        let user = self.phones[i].user.clone();
        let remaining = expires.saturating_sub(now);
        let margin = self.routing.answer_margin.as_micros() as u64;
        let ring_ms = remaining.saturating_sub(margin).max(remaining / 2) / 1000;
        call.held = false;
        call.ring = Some(Ring { offer, agent, live: true, since: now });
        let transaction = call.transaction.clone();
        let first = !std::mem::replace(&mut call.routed, true);
        let waited = now.saturating_sub(call.arrived);
        self.answer(call_id, transaction, AnswerTo::Agent { user, ring_ms: ring_ms.max(1) });
        if first {
            self.record(Record::Routed(micros(waited)));
        }
    }

    // ---- ccrd ---------------------------------------------------------------

    fn ccrd(&mut self, now: u64, event: routing_event::Event) {
        use routing_event::Event as E;
        match event {
            E::Offer(offer) => {
                let Some(call_id) = self.by_contact.get(&offer.contact_id).cloned() else { return };
                let registered = self
                    .phone_by_agent
                    .get(&offer.agent_id)
                    .is_some_and(|&i| self.phones[i].registered_until.is_some());
                if !registered {
                    self.send(ToCcrd::Reject { agent: offer.agent_id, offer: offer.offer_id });
                    self.record(Record::OfferWithoutPhone);
                    return;
                }
                let call = self.calls.get_mut(&call_id).expect("indexed calls exist");
                call.next = Some((offer.offer_id, offer.agent_id, offer.expires_unix_micros));
                self.ring_next(now, &call_id);
            }
            E::OfferEnded(ended) => {
                let Some(call_id) = self.by_contact.get(&ended.contact_id) else { return };
                let call = self.calls.get_mut(call_id).expect("indexed calls exist");
                if let Some(ring) = call.ring.as_mut().filter(|r| r.offer == ended.offer_id) {
                    ring.live = false;
                }
                if call.next.is_some_and(|(offer, _, _)| offer == ended.offer_id) {
                    call.next = None;
                }
            }
            E::Abandoned(abandoned) => {
                let Some(call_id) = self.by_contact.get(&abandoned.contact_id).cloned() else { return };
                self.ended_in_ccrd(&call_id);
            }
            E::AgentState(state) => {
                let Some(&i) = self.phone_by_agent.get(&state.agent_id) else { return };
                let phone = &mut self.phones[i];
                match state.state.as_str() {
                    // Logged out (a supervisor, a drain): the phone's next
                    // registration logs the agent in again.
                    "offline" => phone.logged_in = false,
                    // Not ready for a lost connection or a restart is
                    // ccrd's, not the agent's: a re-sync makes it ready again.
                    "not_ready" if !matches!(state.reason.as_str(), "disconnected" | "restart") => phone.ready = false,
                    "not_ready" => {}
                    _ => phone.ready = true,
                }
            }
            E::Connected(_) | E::Subscribed(_) => {}
        }
    }

    /// ccrd no longer has the contact (abandoned by a supervisor, its
    /// session's grace over, or not found after a reconnect).
    fn ended_in_ccrd(&mut self, call_id: &str) {
        let Some(call) = self.calls.get_mut(call_id) else { return };
        if call.talk.is_some() {
            return;
        }
        if call.ring.is_some() {
            call.ended = Some(CallEnd::EndedByCcrd);
            return;
        }
        self.end_held(call_id, 480, "Temporarily Unavailable", CallEnd::EndedByCcrd);
    }

    fn resync(&mut self, generation: u64) {
        self.generation = generation;
        for i in 0..self.phones.len() {
            if self.phones[i].logged_in {
                let login = self.login(i);
                self.send(login);
            }
        }
        let mut calls: Vec<(&String, &Call)> = self.calls.iter().collect();
        calls.sort_by_key(|(_, c)| c.contact);
        let claims: Vec<ToCcrd> = calls
            .into_iter()
            .filter(|(_, c)| c.enqueued)
            .map(|(_, c)| ToCcrd::Position { contact: c.contact })
            .collect();
        for claim in claims {
            self.send(claim);
        }
        for command in std::mem::take(&mut self.resend) {
            self.send(command);
        }
    }

    fn replied(&mut self, generation: u64, command: ToCcrd, result: Result<Reply, Status>) {
        let code = match &result {
            Ok(_) => Code::Ok,
            Err(status) => Code::from_i32(status.code),
        };
        if code == Code::Unavailable {
            // Lost with its connection (or refused by a standby): again once
            // re-synced, or now if that already happened.
            match generation < self.generation {
                true => self.send(command),
                false => self.resend.push(command),
            }
            return;
        }
        match command {
            ToCcrd::Enqueue(request) => {
                let Some(call_id) = self.by_contact.get(&request.contact_id).cloned() else { return };
                match code {
                    Code::Ok | Code::AlreadyExists => {
                        if let Some(call) = self.calls.get_mut(&call_id) {
                            call.enqueued = true;
                        }
                    }
                    refused => {
                        let (sip, reason) = match refused {
                            Code::ResourceExhausted => (503, "Queue Full"),
                            Code::NotFound => (404, "No Such Queue"),
                            Code::InvalidArgument => (400, "Bad Routing Headers"),
                            _ => (500, "Routing Failed"),
                        };
                        self.end_held(&call_id, sip, reason, CallEnd::Refused);
                    }
                }
            }
            ToCcrd::Position { contact } if code == Code::NotFound => {
                if let Some(call_id) = self.by_contact.get(&contact).cloned() {
                    self.ended_in_ccrd(&call_id);
                }
            }
            ToCcrd::Accept { agent, .. } if code != Code::Ok => {
                let Some(call_id) = self.calls.iter().find_map(|(id, c)| {
                    c.talk.as_ref().filter(|t| t.agent == agent && t.in_ccrd).map(|_| (id.clone(), c.contact))
                }) else {
                    return;
                };
                if let Some(talk) = self.calls.get_mut(&call_id.0).and_then(|c| c.talk.as_mut()) {
                    talk.in_ccrd = false;
                }
                self.answered_outside(call_id.1);
            }
            _ => {}
        }
    }

    fn tick(&mut self, now: u64) {
        let limit = self.routing.max_wait.as_micros() as u64;
        let mut late: Vec<(u64, String)> = self
            .calls
            .iter()
            .filter(|(_, c)| c.talk.is_none() && c.ended.is_none() && now.saturating_sub(c.arrived) >= limit)
            .map(|(id, c)| (c.contact, id.clone()))
            .collect();
        late.sort();
        for (contact, call_id) in late {
            self.send(ToCcrd::Abandon { contact });
            let call = self.calls.get_mut(&call_id).expect("listed");
            if call.ring.is_some() {
                // Ringing: the phone's answer or failure ends it.
                call.ended = Some(CallEnd::TimedOut);
                continue;
            }
            self.end_held(&call_id, 480, "Temporarily Unavailable", CallEnd::TimedOut);
        }
        // A call whose BYE never came (lost, or the phones went away
        // without one) would hold its agent busy for ever.
        let limit = self.routing.max_talk.as_micros() as u64;
        let mut long: Vec<(u64, String)> = self
            .calls
            .iter()
            .filter(|(_, c)| c.talk.as_ref().is_some_and(|t| now.saturating_sub(t.since) >= limit))
            .map(|(id, c)| (c.contact, id.clone()))
            .collect();
        long.sort();
        for (contact, call_id) in long {
            if let Some(Talk { agent, in_ccrd: true, .. }) = self.forget(&call_id).and_then(|c| c.talk) {
                self.send(ToCcrd::Complete { agent, contact });
            }
            self.record(Record::CallEnded(CallEnd::TalkLimit));
        }
        for i in 0..self.phones.len() {
            if self.phones[i].registered_until.is_some_and(|until| until <= now) {
                self.unregister(i);
            }
        }
    }
}

/// X-Skill: "billing" or "billing:6", comma-separated.
fn header_skills(header: &str) -> Vec<v1::SkillRequirement> {
    let mut skills: BTreeMap<String, u32> = BTreeMap::new();
    for part in header.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, level) = match part.split_once(':') {
            Some((name, level)) => (name.trim(), level.trim().parse().unwrap_or(1)),
            None => (part, 1),
        };
        skills.insert(name.to_owned(), level);
    }
    skills.into_iter().map(|(skill, min_proficiency)| v1::SkillRequirement { skill, min_proficiency }).collect()
}

fn micros(us: u64) -> Duration {
    Duration::from_micros(us)
}
