//! Snapshots of format 13 (`CCRSNP13`): the router's state as records
//! (`ccr_core::state`), from which recovery rebuilds every index. Still
//! read; format 14 ([`super::snp14`]) extends its header and keeps the rest.
//!
//! ```text
//! payload := header agent{header.agents} contact{header.contacts} timer{header.timers}
//! ```
//! each item postcard-encoded, one after the other, so that a snapshot of
//! millions of contacts is written and read one record at a time, never
//! whole in memory a second time.

use std::borrow::Cow;
use std::io::Write;

use ccr_core::state::{
    AgentRecord, ContactRecord, ContactRecordState, EndedOfferRecord, OfferHistory, QueueRecord, SessionRecord,
    StateHeader, TimerRecord, TimerRef, WrapUpRecord,
};
use ccr_core::{
    AgentId, AgentState, ContactId, LanguageId, OfferId, OfferOutcome, QueueCounters, QueueId, Router, SessionId,
    SessionState, SkillId, TierId, Time,
};
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

use super::config::Config;
use super::jnl03::{ChannelV, Reason, Requirement, Skills};
use crate::journal::format::Names;

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Header<'a> {
    names: Cow<'a, Names>,
    config: Config,
    now: Time,
    next_rank_seq: u64,
    next_idle_order: u64,
    last_session: SessionId,
    sessions: Vec<Session>,
    queues: Vec<Queue>,
    offers_first: OfferId,
    offers_next: OfferId,
    ended_offers: Vec<EndedOffer>,
    agents: u64,
    contacts: u64,
    timers: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct Session {
    id: SessionId,
    lost_until: Option<Time>,
    /// The most recently taken first.
    contacts: Vec<ContactId>,
    agents: Vec<AgentId>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Queue {
    arrived: u64,
    offered: u64,
    answered: u64,
    answered_in_target: u64,
    abandoned: u64,
    short_abandoned: u64,
    rona: u64,
    overflowed_out: u64,
    overflowed_in: u64,
    transferred_in: u64,
    completed: u64,
    departures: u64,
    answers: f64,
    busy: f64,
    updated: Time,
}

#[derive(Debug, Serialize, Deserialize)]
struct EndedOffer {
    id: OfferId,
    agent: AgentId,
    contact: ContactId,
    outcome: Outcome,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
enum Outcome {
    Accepted,
    Rejected,
    Expired,
    Abandoned,
    Withdrawn,
}

#[derive(Debug, Serialize, Deserialize)]
struct Agent {
    id: AgentId,
    skills: Vec<(SkillId, u8)>,
    languages: Vec<LanguageId>,
    capacity: [u8; 3],
    not_ready: Option<Reason>,
    wrap_ups: Vec<WrapUp>,
    work: Vec<ContactId>,
    idle_order: Option<u64>,
    reported: Option<Reported>,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
enum Reported {
    Offline,
    NotReady(Reason),
    Available,
    Reserved,
    Busy,
    WrapUp,
}

#[derive(Debug, Serialize, Deserialize)]
struct WrapUp {
    contact: ContactId,
    channel: ChannelV,
    queue: QueueId,
    ends_at: Time,
}

#[derive(Debug, Serialize, Deserialize)]
struct Contact {
    id: ContactId,
    channel: ChannelV,
    queue: QueueId,
    tier: u8,
    skills: Skills,
    languages: SmallVec<[LanguageId; 8]>,
    preferred: Vec<AgentId>,
    context: Vec<(String, String)>,
    arrival: Time,
    entered_queue: Time,
    deadline: Option<Time>,
    rank_value: u64,
    rank_seq: u64,
    proficiency_cap: u8,
    languages_accepted: u8,
    any_language: bool,
    next_step: u8,
    next_wake: Option<Time>,
    state: ContactState,
}

#[derive(Debug, Serialize, Deserialize)]
enum ContactState {
    Scheduled { due: Time },
    Waiting { hold_until: Option<Time> },
    Offered { offer: OfferId, agent: AgentId, expires_at: Time },
    Connected { agent: AgentId },
}

#[derive(Debug, Serialize, Deserialize)]
struct Timer {
    at: Time,
    what: Wake,
}

#[derive(Debug, Serialize, Deserialize)]
enum Wake {
    Contact(ContactId),
    OfferExpiry(OfferId),
    WrapUpEnd { agent: AgentId, contact: ContactId },
    SessionGrace(SessionId),
}

/// The agents, contacts and timers after the header: the same in format 14,
/// which writes them (this version writes no format 13).
pub(super) fn write_records<W: Write>(mut out: W, router: &Router, timers: Vec<TimerRecord>) -> postcard::Result<W> {
    for agent in router.export_agents() {
        out = postcard::to_io(&Agent::from(agent), out)?;
    }
    for contact in router.export_contacts() {
        out = postcard::to_io(&Contact::from(contact), out)?;
    }
    for timer in timers {
        out = postcard::to_io(&Timer::from(timer), out)?;
    }
    Ok(out)
}

/// The names and the router a payload holds. Any bytes at all give either
/// those or an error, within memory about the payload's size. One thread
/// decodes the records while this one files them, as recovery replays.
pub fn read(payload: &[u8]) -> Result<(Names, Router), String> {
    let (header, rest) = take::<Header>(payload, "header")?;
    let counts = header.counts();
    let (names, state) = into_state(header);
    Ok((names, read_records(state, counts, rest)?))
}

impl Header<'_> {
    /// How many agents, contacts and timers follow.
    pub(super) fn counts(&self) -> [u64; 3] {
        [self.agents, self.contacts, self.timers]
    }
}

/// The router from its header's state and the records after it.
pub(super) fn read_records(state: StateHeader, counts: [u64; 3], rest: &[u8]) -> Result<Router, String> {
    let mut restore = Router::restore(state).map_err(|e| e.to_string())?;
    std::thread::scope(|scope| {
        let (tx, rx) = crossbeam_channel::bounded(16);
        scope.spawn(move || decode(rest, counts, &tx));
        for batch in rx {
            for item in batch? {
                match item {
                    Item::Agent(a) => restore.agent(a),
                    Item::Contact(c) => restore.contact(c),
                    Item::Timer(t) => restore.timer(t),
                }
                .map_err(|e| e.to_string())?;
            }
        }
        Ok::<(), String>(())
    })?;
    restore.finish().map_err(|e| e.to_string())
}

enum Item {
    Agent(AgentRecord),
    Contact(ContactRecord),
    Timer(TimerRecord),
}

/// Records decoded per message to the filing thread.
const BATCH: usize = 1024;

/// Decodes `counts` agents, contacts and timers from `rest`, in batches;
/// an error ends the stream. Stops early if the receiver is gone.
fn decode(mut rest: &[u8], counts: [u64; 3], tx: &crossbeam_channel::Sender<Result<Vec<Item>, String>>) {
    let mut batch = Vec::with_capacity(BATCH);
    let next = |rest: &mut &[u8], kind: usize| -> Result<Item, String> {
        let item = match kind {
            0 => take::<Agent>(rest, "agent").map(|(a, after)| (Item::Agent(a.into()), after)),
            1 => take::<Contact>(rest, "contact").map(|(c, after)| (Item::Contact(c.into()), after)),
            _ => take::<Timer>(rest, "timer").map(|(t, after)| (Item::Timer(t.into()), after)),
        };
        item.map(|(item, after)| {
            *rest = after;
            item
        })
    };
    for (kind, &count) in counts.iter().enumerate() {
        for _ in 0..count {
            match next(&mut rest, kind) {
                Ok(item) => batch.push(item),
                Err(why) => {
                    let _ = tx.send(Err(why));
                    return;
                }
            }
            if batch.len() == BATCH && tx.send(Ok(std::mem::replace(&mut batch, Vec::with_capacity(BATCH)))).is_err() {
                return;
            }
        }
    }
    let last = if rest.is_empty() { Ok(batch) } else { Err(format!("{} bytes after the last timer", rest.len())) };
    let _ = tx.send(last);
}

pub(super) fn take<'a, T: Deserialize<'a>>(bytes: &'a [u8], what: &str) -> Result<(T, &'a [u8]), String> {
    postcard::take_from_bytes(bytes).map_err(|e| format!("checksum matches but a {what} record does not decode: {e}"))
}

pub(super) fn header_of<'a>(names: &'a Names, h: StateHeader, router: &Router, timers: usize) -> Header<'a> {
    Header {
        names: Cow::Borrowed(names),
        config: Config::from(&h.config),
        now: h.now,
        next_rank_seq: h.next_rank_seq,
        next_idle_order: h.next_idle_order,
        last_session: h.last_session,
        sessions: h
            .sessions
            .into_iter()
            .map(|s| Session {
                id: s.id,
                lost_until: match s.state {
                    SessionState::Live => None,
                    SessionState::Lost { until } => Some(until),
                },
                contacts: s.contacts,
                agents: s.agents,
            })
            .collect(),
        queues: h
            .queues
            .into_iter()
            .map(|q| {
                let c = q.counters;
                Queue {
                    arrived: c.arrived,
                    offered: c.offered,
                    answered: c.answered,
                    answered_in_target: c.answered_in_target,
                    abandoned: c.abandoned,
                    short_abandoned: c.short_abandoned,
                    rona: c.rona,
                    overflowed_out: c.overflowed_out,
                    overflowed_in: c.overflowed_in,
                    transferred_in: c.transferred_in,
                    completed: c.completed,
                    departures: q.departures,
                    answers: q.answers,
                    busy: q.busy,
                    updated: q.updated,
                }
            })
            .collect(),
        offers_first: h.offers.first,
        offers_next: h.offers.next,
        ended_offers: h
            .offers
            .ended
            .into_iter()
            .map(|e| EndedOffer { id: e.id, agent: e.agent, contact: e.contact, outcome: e.outcome.into() })
            .collect(),
        agents: router.agent_count() as u64,
        contacts: router.contact_count() as u64,
        timers: timers as u64,
    }
}

pub(super) fn into_state(h: Header<'_>) -> (Names, StateHeader) {
    let state = StateHeader {
        config: h.config.into(),
        now: h.now,
        next_rank_seq: h.next_rank_seq,
        next_idle_order: h.next_idle_order,
        last_session: h.last_session,
        sessions: h
            .sessions
            .into_iter()
            .map(|s| SessionRecord {
                id: s.id,
                state: s.lost_until.map_or(SessionState::Live, |until| SessionState::Lost { until }),
                contacts: s.contacts,
                agents: s.agents,
            })
            .collect(),
        queues: h
            .queues
            .into_iter()
            .map(|q| QueueRecord {
                counters: QueueCounters {
                    arrived: q.arrived,
                    offered: q.offered,
                    answered: q.answered,
                    answered_in_target: q.answered_in_target,
                    abandoned: q.abandoned,
                    short_abandoned: q.short_abandoned,
                    rona: q.rona,
                    overflowed_out: q.overflowed_out,
                    overflowed_in: q.overflowed_in,
                    transferred_in: q.transferred_in,
                    completed: q.completed,
                },
                departures: q.departures,
                answers: q.answers,
                busy: q.busy,
                updated: q.updated,
                flow: None,
            })
            .collect(),
        offers: OfferHistory {
            first: h.offers_first,
            next: h.offers_next,
            ended: h
                .ended_offers
                .into_iter()
                .map(|e| EndedOfferRecord { id: e.id, agent: e.agent, contact: e.contact, outcome: e.outcome.into() })
                .collect(),
        },
    };
    (h.names.into_owned(), state)
}

impl From<AgentRecord> for Agent {
    fn from(a: AgentRecord) -> Agent {
        Agent {
            id: a.id,
            skills: a.skills,
            languages: a.languages,
            capacity: a.capacity,
            not_ready: a.not_ready.map(Reason::from),
            wrap_ups: a
                .wrap_ups
                .into_iter()
                .map(|w| WrapUp { contact: w.contact, channel: w.channel.into(), queue: w.queue, ends_at: w.ends_at })
                .collect(),
            work: a.work,
            idle_order: a.idle_order,
            reported: a.reported.map(|s| match s {
                AgentState::Offline => Reported::Offline,
                AgentState::NotReady(r) => Reported::NotReady(r.into()),
                AgentState::Available => Reported::Available,
                AgentState::Reserved => Reported::Reserved,
                AgentState::Busy => Reported::Busy,
                AgentState::WrapUp => Reported::WrapUp,
            }),
        }
    }
}

impl From<Agent> for AgentRecord {
    fn from(a: Agent) -> AgentRecord {
        AgentRecord {
            id: a.id,
            skills: a.skills,
            languages: a.languages,
            capacity: a.capacity,
            not_ready: a.not_ready.map(Into::into),
            wrap_ups: a
                .wrap_ups
                .into_iter()
                .map(|w| WrapUpRecord {
                    contact: w.contact,
                    channel: w.channel.into(),
                    queue: w.queue,
                    ends_at: w.ends_at,
                })
                .collect(),
            work: a.work,
            idle_order: a.idle_order,
            reported: a.reported.map(|s| match s {
                Reported::Offline => AgentState::Offline,
                Reported::NotReady(r) => AgentState::NotReady(r.into()),
                Reported::Available => AgentState::Available,
                Reported::Reserved => AgentState::Reserved,
                Reported::Busy => AgentState::Busy,
                Reported::WrapUp => AgentState::WrapUp,
            }),
        }
    }
}

impl From<ContactRecord> for Contact {
    fn from(c: ContactRecord) -> Contact {
        Contact {
            id: c.id,
            channel: c.channel.into(),
            queue: c.queue,
            tier: c.tier.0,
            skills: c
                .skills
                .iter()
                .map(|r| Requirement { skill: r.skill, min_proficiency: r.min_proficiency })
                .collect(),
            languages: c.languages,
            preferred: c.preferred,
            context: c.context,
            arrival: c.arrival,
            entered_queue: c.entered_queue,
            deadline: c.deadline,
            rank_value: c.rank.value,
            rank_seq: c.rank.seq,
            proficiency_cap: c.relaxation.proficiency_cap,
            languages_accepted: c.relaxation.languages,
            any_language: c.relaxation.any_language,
            next_step: c.relaxation.next_step,
            next_wake: c.next_wake,
            state: match c.state {
                ContactRecordState::Scheduled { due } => ContactState::Scheduled { due },
                ContactRecordState::Waiting { hold_until } => ContactState::Waiting { hold_until },
                ContactRecordState::Offered { offer, agent, expires_at } => {
                    ContactState::Offered { offer, agent, expires_at }
                }
                ContactRecordState::Connected { agent } => ContactState::Connected { agent },
            },
        }
    }
}

impl From<Contact> for ContactRecord {
    fn from(c: Contact) -> ContactRecord {
        ContactRecord {
            id: c.id,
            channel: c.channel.into(),
            queue: c.queue,
            tier: TierId(c.tier),
            skills: c
                .skills
                .iter()
                .map(|r| ccr_core::SkillReq { skill: r.skill, min_proficiency: r.min_proficiency })
                .collect(),
            languages: c.languages,
            preferred: c.preferred,
            context: c.context,
            arrival: c.arrival,
            entered_queue: c.entered_queue,
            deadline: c.deadline,
            rank: ccr_core::contact::Rank { value: c.rank_value, seq: c.rank_seq },
            relaxation: ccr_core::contact::Relaxation {
                proficiency_cap: c.proficiency_cap,
                languages: c.languages_accepted,
                any_language: c.any_language,
                next_step: c.next_step,
            },
            next_wake: c.next_wake,
            state: match c.state {
                ContactState::Scheduled { due } => ContactRecordState::Scheduled { due },
                ContactState::Waiting { hold_until } => ContactRecordState::Waiting { hold_until },
                ContactState::Offered { offer, agent, expires_at } => {
                    ContactRecordState::Offered { offer, agent, expires_at }
                }
                ContactState::Connected { agent } => ContactRecordState::Connected { agent },
            },
        }
    }
}

impl From<TimerRecord> for Timer {
    fn from(t: TimerRecord) -> Timer {
        let what = match t.timer {
            TimerRef::Contact(c) => Wake::Contact(c),
            TimerRef::OfferExpiry(o) => Wake::OfferExpiry(o),
            TimerRef::WrapUpEnd { agent, contact } => Wake::WrapUpEnd { agent, contact },
            TimerRef::SessionGrace(s) => Wake::SessionGrace(s),
        };
        Timer { at: t.at, what }
    }
}

impl From<Timer> for TimerRecord {
    fn from(t: Timer) -> TimerRecord {
        let timer = match t.what {
            Wake::Contact(c) => TimerRef::Contact(c),
            Wake::OfferExpiry(o) => TimerRef::OfferExpiry(o),
            Wake::WrapUpEnd { agent, contact } => TimerRef::WrapUpEnd { agent, contact },
            Wake::SessionGrace(s) => TimerRef::SessionGrace(s),
        };
        TimerRecord { at: t.at, timer }
    }
}

impl From<OfferOutcome> for Outcome {
    fn from(o: OfferOutcome) -> Outcome {
        match o {
            OfferOutcome::Accepted => Outcome::Accepted,
            OfferOutcome::Rejected => Outcome::Rejected,
            OfferOutcome::Expired => Outcome::Expired,
            OfferOutcome::Abandoned => Outcome::Abandoned,
            OfferOutcome::Withdrawn => Outcome::Withdrawn,
        }
    }
}

impl From<Outcome> for OfferOutcome {
    fn from(o: Outcome) -> OfferOutcome {
        match o {
            Outcome::Accepted => OfferOutcome::Accepted,
            Outcome::Rejected => OfferOutcome::Rejected,
            Outcome::Expired => OfferOutcome::Expired,
            Outcome::Abandoned => OfferOutcome::Abandoned,
            Outcome::Withdrawn => OfferOutcome::Withdrawn,
        }
    }
}
