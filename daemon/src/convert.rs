//! The one place where protobuf meets the core: requests (names) become core
//! commands (ids), core replies become responses, core errors become gRPC
//! statuses, core events become `RoutingEvent`s. Every rejected value gets `INVALID_ARGUMENT` or
//! `NOT_FOUND` with the field it is about.

use ccr_core::{
    AgentId, AgentProfile, AgentState, Channel, Command, CommandError, ContactId, ContactSpec, Event, EwtMethod,
    NotReadyReason, OfferId, QueueStats, Reply, SkillReq, Time, TransferSpec, WaitEstimate,
};
use ccr_proto::v1 as pb;
use ccr_proto::wire::Code;
use pb::Status;

use crate::config::Catalog;
use crate::metrics::WindowFigures;

fn invalid(message: String) -> Status {
    Status::new(Code::InvalidArgument, message)
}

/// The largest id a client may give a contact or an agent: ids fit a signed
/// 64-bit integer, for clients whose languages have no unsigned one; 0 is
/// protobuf's "not set".
pub const MAX_ID: u64 = i64::MAX as u64;

fn id_in_range(field: &str, value: u64) -> Result<u64, Status> {
    match value {
        1..=MAX_ID => Ok(value),
        _ => Err(invalid(format!("{field}: {value} is not in 1..={MAX_ID}"))),
    }
}

pub fn contact_id(value: u64) -> Result<ContactId, Status> {
    id_in_range("contact_id", value).map(ContactId)
}

pub fn agent_id(value: u64) -> Result<AgentId, Status> {
    id_in_range("agent_id", value).map(AgentId)
}

fn channel(value: i32) -> Result<Channel, Status> {
    match pb::Channel::try_from(value) {
        Ok(pb::Channel::Voice) => Ok(Channel::Voice),
        Ok(pb::Channel::Chat) => Ok(Channel::Chat),
        Ok(pb::Channel::Email) => Ok(Channel::Email),
        _ => Err(invalid(format!("channel: {value} is not voice (1), chat (2) or email (3)"))),
    }
}

pub fn channel_to_proto(channel: Channel) -> pb::Channel {
    match channel {
        Channel::Voice => pb::Channel::Voice,
        Channel::Chat => pb::Channel::Chat,
        Channel::Email => pb::Channel::Email,
    }
}

fn proficiency(field: &str, value: u32) -> Result<u8, Status> {
    match u8::try_from(value) {
        Ok(p @ 1..=10) => Ok(p),
        _ => Err(invalid(format!("{field}: proficiency {value} is not in 1..=10"))),
    }
}

fn skills(cat: &Catalog, reqs: &[pb::SkillRequirement]) -> Result<ccr_core::SkillReqs, Status> {
    reqs.iter()
        .map(|r| {
            let skill = cat.skill(&r.skill).ok_or_else(|| invalid(format!("skills: unknown skill {:?}", r.skill)))?;
            Ok(SkillReq { skill, min_proficiency: proficiency("skills.min_proficiency", r.min_proficiency)? })
        })
        .collect()
}

/// Into a contact's inline list or an agent profile's `Vec`.
fn languages<C: FromIterator<ccr_core::LanguageId>>(cat: &Catalog, names: &[String]) -> Result<C, Status> {
    names.iter().map(|n| cat.language(n).ok_or_else(|| invalid(format!("languages: unknown language {n:?}")))).collect()
}

fn queue(cat: &Catalog, name: &str) -> Result<ccr_core::QueueId, Status> {
    cat.queue(name).ok_or_else(|| Status::new(Code::NotFound, format!("queue: unknown queue {name:?}")))
}

fn tier(cat: &Catalog, name: &str) -> Result<ccr_core::TierId, Status> {
    cat.tier(name).ok_or_else(|| invalid(format!("tier: unknown tier {name:?}")))
}

fn context(entries: Vec<pb::ContextEntry>) -> Vec<(String, String)> {
    entries.into_iter().map(|e| (e.key, e.value)).collect()
}

pub fn contact_spec(cat: &Catalog, r: pb::EnqueueRequest) -> Result<ContactSpec, Status> {
    // An empty tier is the lowest configured one.
    let tier = if r.tier.is_empty() { ccr_core::TierId((cat.tiers.len() - 1) as u8) } else { tier(cat, &r.tier)? };
    Ok(ContactSpec {
        id: contact_id(r.contact_id)?,
        channel: channel(r.channel)?,
        queue: queue(cat, &r.queue)?,
        tier,
        skills: skills(cat, &r.skills)?,
        languages: languages(cat, &r.languages)?,
        preferred_agents: r.preferred_agents.into_iter().map(agent_id).collect::<Result<_, _>>()?,
        context: context(r.context),
    })
}

pub fn transfer(cat: &Catalog, r: pb::TransferRequest) -> Result<Command, Status> {
    Ok(Command::Transfer(TransferSpec {
        contact: contact_id(r.contact_id)?,
        queue: queue(cat, &r.queue)?,
        skills: skills(cat, &r.skills)?,
        languages: languages(cat, &r.languages)?,
        tier: if r.tier.is_empty() { None } else { Some(tier(cat, &r.tier)?) },
        context: context(r.context),
    }))
}

pub fn callback(cat: &Catalog, r: pb::ScheduleCallbackRequest) -> Result<Command, Status> {
    let spec = contact_spec(cat, r.contact.ok_or_else(|| invalid("contact: missing".into()))?)?;
    Ok(Command::ScheduleCallback {
        spec,
        due: Time::from_micros(r.due_unix_micros),
        deadline: Time::from_micros(r.deadline_unix_micros),
    })
}

pub fn login(cat: &Catalog, r: pb::LoginRequest) -> Result<Command, Status> {
    let skills = r
        .skills
        .iter()
        .map(|s| {
            let id = cat.skill(&s.skill).ok_or_else(|| invalid(format!("skills: unknown skill {:?}", s.skill)))?;
            Ok((id, proficiency("skills.proficiency", s.proficiency)?))
        })
        .collect::<Result<Vec<_>, Status>>()?;
    let cap = |field: &str, v: u32| u8::try_from(v).map_err(|_| invalid(format!("{field}: {v} is too large")));
    Ok(Command::AgentLogin {
        agent: agent_id(r.agent_id)?,
        profile: AgentProfile {
            skills,
            languages: languages(cat, &r.languages)?,
            capacity: [
                cap("voice_capacity", r.voice_capacity)?,
                cap("chat_capacity", r.chat_capacity)?,
                cap("email_capacity", r.email_capacity)?,
            ],
        },
        ready: r.ready,
    })
}

pub fn set_state(r: pb::SetStateRequest) -> Result<Command, Status> {
    let agent = agent_id(r.agent_id)?;
    if r.ready {
        return Ok(Command::AgentReady { agent });
    }
    let reason = match pb::NotReadyReason::try_from(r.reason) {
        Ok(pb::NotReadyReason::Break) => NotReadyReason::Break,
        Ok(pb::NotReadyReason::Lunch) => NotReadyReason::Lunch,
        Ok(pb::NotReadyReason::Training) => NotReadyReason::Training,
        Ok(pb::NotReadyReason::Meeting) => NotReadyReason::Meeting,
        Ok(pb::NotReadyReason::Away) => NotReadyReason::Away,
        Ok(pb::NotReadyReason::Other | pb::NotReadyReason::Unspecified) => NotReadyReason::Other,
        Err(_) => return Err(invalid(format!("reason: {} is not a not-ready reason", r.reason))),
    };
    Ok(Command::AgentNotReady { agent, reason })
}

pub fn accept(r: pb::AcceptRequest) -> Result<Command, Status> {
    Ok(Command::Accept { agent: agent_id(r.agent_id)?, offer: OfferId(r.offer_id) })
}

pub fn reject(r: pb::RejectRequest) -> Result<Command, Status> {
    Ok(Command::Reject { agent: agent_id(r.agent_id)?, offer: OfferId(r.offer_id) })
}

// ----- Replies -----------------------------------------------------------------

/// A reply the call cannot have had (a bug, not the client's doing).
pub fn unexpected(reply: &Reply) -> Status {
    Status::new(Code::Internal, format!("unexpected reply {reply:?}"))
}

/// The reply of a command that answers nothing but success.
pub fn done(reply: Reply) -> Result<(), Status> {
    match reply {
        Reply::Done => Ok(()),
        other => Err(unexpected(&other)),
    }
}

fn queue_of(cat: &Catalog, reply: Reply) -> Result<String, Status> {
    match reply {
        Reply::Enqueued { queue } => Ok(cat.queue_name(queue).to_owned()),
        other => Err(unexpected(&other)),
    }
}

pub fn enqueued(cat: &Catalog, reply: Reply) -> Result<pb::EnqueueResponse, Status> {
    Ok(pb::EnqueueResponse { queue: queue_of(cat, reply)? })
}

pub fn transferred(cat: &Catalog, reply: Reply) -> Result<pb::TransferResponse, Status> {
    Ok(pb::TransferResponse { queue: queue_of(cat, reply)? })
}

pub fn callback_scheduled(cat: &Catalog, reply: Reply) -> Result<pb::ScheduleCallbackResponse, Status> {
    Ok(pb::ScheduleCallbackResponse { queue: queue_of(cat, reply)? })
}

pub fn accepted(reply: Reply) -> Result<pb::AcceptResponse, Status> {
    match reply {
        Reply::Accepted { contact, duplicate } => Ok(pb::AcceptResponse { contact_id: contact.0, duplicate }),
        other => Err(unexpected(&other)),
    }
}

pub fn rejected(reply: Reply) -> Result<pb::RejectResponse, Status> {
    match reply {
        Reply::Rejected { duplicate } => Ok(pb::RejectResponse { duplicate }),
        other => Err(unexpected(&other)),
    }
}

/// The commands a `Gateway/Stream` carries besides `Position`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum GatewayCall {
    Enqueue,
    Abandon,
    Transfer,
    ScheduleCallback,
}

pub fn gateway_response(cat: &Catalog, call: GatewayCall, reply: Reply) -> Result<pb::gateway_reply::Response, Status> {
    use pb::gateway_reply::Response as R;
    Ok(match call {
        GatewayCall::Enqueue => R::Enqueue(enqueued(cat, reply)?),
        GatewayCall::Abandon => {
            done(reply)?;
            R::Abandon(pb::AbandonResponse {})
        }
        GatewayCall::Transfer => R::Transfer(transferred(cat, reply)?),
        GatewayCall::ScheduleCallback => R::ScheduleCallback(callback_scheduled(cat, reply)?),
    })
}

pub fn gateway_reply(id: u64, response: pb::gateway_reply::Response) -> pb::GatewayReply {
    pb::GatewayReply { id, status: Some(Status::ok()), response: Some(response) }
}

pub fn position_response(estimate: &WaitEstimate) -> pb::PositionResponse {
    pb::PositionResponse {
        position: estimate.position,
        estimated_wait_millis: estimate.estimated_wait.as_millis() as u64,
        method: match estimate.method {
            EwtMethod::QueueLength => "queue_length",
            EwtMethod::Staffing => "staffing",
            EwtMethod::Stalled => "stalled",
            EwtMethod::NotWaiting => "not_waiting",
        }
        .into(),
        wait_low_millis: estimate.low.as_millis() as u64,
        wait_high_millis: estimate.high.as_millis() as u64,
        uncertain: estimate.method == EwtMethod::Stalled,
    }
}

/// A queue's statistics, with the agents on duty who can serve its
/// longest-waiting contact (`None`: nobody waits) and its figures over the
/// service-level window as the metrics sampler last saw them.
pub fn queue_stats_response(
    cat: &Catalog,
    queue: String,
    stats: &QueueStats,
    staffed_for_oldest: Option<usize>,
    (window, in_window): (std::time::Duration, WindowFigures),
) -> pb::QueueStatsResponse {
    pb::QueueStatsResponse {
        agents_for_oldest: staffed_for_oldest.unwrap_or(0) as u32,
        window_seconds: window.as_secs(),
        window_answered: in_window.answered,
        window_abandoned: in_window.abandoned,
        window_service_level: in_window.service_level,
        queue,
        waiting_by_tier: stats
            .waiting_by_tier
            .iter()
            .enumerate()
            .map(|(i, n)| (cat.tier_name(ccr_core::TierId(i as u8)).to_owned(), *n))
            .collect(),
        oldest_wait_millis: stats.oldest_wait.map_or(0, |d| d.as_millis() as u64),
        answered: stats.counters.answered,
        abandoned: stats.counters.abandoned,
        short_abandoned: stats.counters.short_abandoned,
        service_level: stats.service_level.unwrap_or(1.0),
        service_level_target: stats.service_level_target,
        agents_by_state: AgentState::NAMES
            .iter()
            .zip(stats.agents_by_state)
            .map(|(name, n)| ((*name).to_owned(), n))
            .collect(),
    }
}

// ----- Errors and events ------------------------------------------------------

/// The gRPC status of a refused command.
pub fn command_error(e: &CommandError) -> Status {
    use CommandError::*;
    let code = match e {
        UnknownAgent(_) | UnknownContact(_) | UnknownQueue(_) | UnknownOffer(_) => Code::NotFound,
        AgentAlreadyLoggedIn(_) | DuplicateContact(_) => Code::AlreadyExists,
        QueueFull(_) | TooManyContacts { .. } | ContextTooLarge { .. } => Code::ResourceExhausted,
        UnknownTier(_) | Invalid { .. } | DuplicateSkill(_) | DuplicateLanguage(_) => Code::InvalidArgument,
        OfferNotForAgent { .. } => Code::PermissionDenied,
        OfferNotPending { .. }
        | NotConnected { .. }
        | NotInWrapUp { .. }
        | AgentBusy(_)
        | NotYetDue(_)
        | DesktopGone(_) => Code::FailedPrecondition,
        // The connection is going away: its calls race its own loss.
        UnknownSession(_) | SessionLost(_) => Code::Unavailable,
    };
    Status::new(code, e.to_string())
}

pub fn state_name(state: AgentState) -> (&'static str, String) {
    match state {
        AgentState::NotReady(reason) => ("not_ready", format!("{reason:?}").to_lowercase()),
        s => (AgentState::NAMES[s.index()], String::new()),
    }
}

/// Who must hear of an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Audience {
    /// The agent's desktop, and gateways.
    Agent(AgentId),
    /// Gateways only.
    Gateways,
}

/// A core event as the wire shows it; `None` for events no client needs.
pub fn event(cat: &Catalog, e: &Event, context: Option<&[(String, String)]>) -> Option<(Audience, pb::RoutingEvent)> {
    use pb::routing_event::Event as E;
    let (audience, event) = match e {
        Event::Offered { offer, contact, agent, queue, tier, channel, waited, expires_at, .. } => (
            Audience::Agent(*agent),
            E::Offer(pb::Offer {
                offer_id: offer.0,
                contact_id: contact.0,
                agent_id: agent.0,
                queue: cat.queue_name(*queue).to_owned(),
                tier: cat.tier_name(*tier).to_owned(),
                channel: channel_to_proto(*channel) as i32,
                waited_millis: waited.as_millis() as u64,
                expires_unix_micros: expires_at.as_micros(),
                context: context
                    .unwrap_or_default()
                    .iter()
                    .map(|(k, v)| pb::ContextEntry { key: k.clone(), value: v.clone() })
                    .collect(),
            }),
        ),
        Event::OfferEnded { offer, contact, agent, outcome } => (
            Audience::Agent(*agent),
            E::OfferEnded(pb::OfferEnded {
                offer_id: offer.0,
                contact_id: contact.0,
                agent_id: agent.0,
                outcome: outcome.to_string(),
            }),
        ),
        Event::Connected { offer, contact, agent, .. } => (
            Audience::Agent(*agent),
            E::Connected(pb::Connected { offer_id: offer.0, contact_id: contact.0, agent_id: agent.0 }),
        ),
        Event::Abandoned { contact, queue, waited, short, .. } => (
            Audience::Gateways,
            E::Abandoned(pb::Abandoned {
                contact_id: contact.0,
                queue: cat.queue_name(*queue).to_owned(),
                waited_millis: waited.as_millis() as u64,
                short: *short,
            }),
        ),
        Event::AgentStateChanged { agent, state } => {
            let (state, reason) = state_name(*state);
            (
                Audience::Agent(*agent),
                E::AgentState(pb::AgentStateChanged { agent_id: agent.0, state: state.into(), reason }),
            )
        }
        _ => return None,
    };
    Some((audience, pb::RoutingEvent { event: Some(event) }))
}
