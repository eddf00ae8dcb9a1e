//! The supervisor's calls (`Admin/Agents`, `Contacts`, `Contact`,
//! `SuperviseAgent`, `SuperviseContact`): bounded reads of the core's state
//! turned into rows, and actions that go through the core as
//! [`Command::Supervise`], journaled like every command.

use ccr_core::views::{AgentFilter, AgentRow, Diagnosis, WaitingRow};
use ccr_core::{AgentState, Command, NotReadyReason, Reply, SessionId, SkillReq, Time, TransferSpec};
use ccr_proto::v1 as pb;
use ccr_proto::wire::Code;
use pb::Status;

use super::rpc::{command, decode, shutting_down};
use super::Shared;
use crate::config::Catalog;
use crate::convert;

/// Rows per page when the request says 0.
const DEFAULT_PAGE: u32 = 100;

fn not_found(what: String) -> Status {
    Status::new(Code::NotFound, what)
}

fn invalid(what: String) -> Status {
    Status::new(Code::InvalidArgument, what)
}

fn page_size(limit: u32) -> usize {
    if limit == 0 {
        DEFAULT_PAGE as usize
    } else {
        (limit as usize).min(ccr_core::views::MAX_PAGE)
    }
}

pub(super) async fn agents(shared: &Shared, body: &[u8]) -> Result<pb::AgentsResponse, Status> {
    let r: pb::AgentsRequest = decode(body)?;
    let cat = shared.catalog.clone();
    let state = match r.state.as_str() {
        "" => None,
        name => Some(AgentState::NAMES.iter().position(|n| *n == name && *n != "offline").ok_or_else(|| {
            invalid(format!("state: {name:?} is not available, reserved, busy, wrap_up or not_ready"))
        })?),
    };
    let skill = match r.skill.as_str() {
        "" => None,
        name => Some(cat.skill(name).ok_or_else(|| not_found(format!("skill {name:?}")))?),
    };
    let queue = match r.queue.as_str() {
        "" => None,
        name => Some(cat.queue(name).ok_or_else(|| not_found(format!("queue {name:?}")))?),
    };
    let filter = AgentFilter { state, skill, queue };
    let (limit, cursor) = (page_size(r.limit), r.cursor);
    let (page, logged_in, now) = shared
        .core
        .query(move |router| (router.agents_page(cursor, limit, &filter), router.agent_count(), router.now()))
        .await
        .map_err(|_| shutting_down())?;
    let now = now.max(shared.clock.now());
    // Times in state count from this run's start at the earliest (a
    // snapshot of format 12 does not hold them).
    let started = shared.started_at;
    Ok(pb::AgentsResponse {
        agents: page.agents.iter().map(|row| agent_row(&cat, row, now, started)).collect(),
        next_cursor: page.next.unwrap_or(0),
        more: page.next.is_some(),
        logged_in: logged_in as u32,
    })
}

fn agent_row(cat: &Catalog, row: &AgentRow, now: Time, started: Time) -> pb::AgentRow {
    let a = &row.agent;
    let (state, reason) = convert::state_name(a.state);
    pb::AgentRow {
        agent_id: a.id.0,
        state: state.into(),
        reason,
        in_state_millis: now.since(row.since.max(started)).as_millis() as u64,
        voice: u32::from(a.usage[0]),
        chat: u32::from(a.usage[1]),
        email: u32::from(a.usage[2]),
        voice_capacity: u32::from(a.capacity[0]),
        chat_capacity: u32::from(a.capacity[1]),
        email_capacity: u32::from(a.capacity[2]),
        skills: a
            .skills
            .iter()
            .map(|&(s, p)| pb::AgentSkill { skill: cat.skills[usize::from(s.0)].clone(), proficiency: u32::from(p) })
            .collect(),
        languages: a.languages.iter().map(|l| cat.languages[usize::from(l.0)].clone()).collect(),
    }
}

/// A page cursor of `Admin/Contacts`: the last rank returned, "value:seq".
fn parse_cursor(cursor: &str) -> Result<Option<(u64, u64)>, Status> {
    if cursor.is_empty() {
        return Ok(None);
    }
    let wrong = || invalid(format!("cursor: {cursor:?} is not one of ccrd's"));
    let (value, seq) = cursor.split_once(':').ok_or_else(wrong)?;
    Ok(Some((value.parse().map_err(|_| wrong())?, seq.parse().map_err(|_| wrong())?)))
}

pub(super) async fn contacts(shared: &Shared, body: &[u8]) -> Result<pb::ContactsResponse, Status> {
    let r: pb::ContactsRequest = decode(body)?;
    let cat = shared.catalog.clone();
    let queue = cat.queue(&r.queue).ok_or_else(|| not_found(format!("queue {:?}", r.queue)))?;
    let after = parse_cursor(&r.cursor)?;
    let limit = page_size(r.limit);
    let (rows, stats, now) = shared
        .core
        .query(move |router| (router.waiting_in_queue(queue, after, limit), router.queue_stats(queue), router.now()))
        .await
        .map_err(|_| shutting_down())?;
    let rows = rows.map_err(|e| convert::command_error(&e))?;
    let waiting = stats.map_err(|e| convert::command_error(&e))?.waiting;
    let now = now.max(shared.clock.now());
    let next_cursor = match rows.last() {
        Some(last) if rows.len() == limit => format!("{}:{}", last.contact.rank.0, last.contact.rank.1),
        _ => String::new(),
    };
    Ok(pb::ContactsResponse {
        contacts: rows.iter().map(|row| contact_row(&cat, row, now)).collect(),
        next_cursor,
        waiting,
    })
}

fn skill_reqs(cat: &Catalog, reqs: &[SkillReq]) -> Vec<pb::SkillRequirement> {
    reqs.iter()
        .map(|r| pb::SkillRequirement {
            skill: cat.skills[usize::from(r.skill.0)].clone(),
            min_proficiency: u32::from(r.min_proficiency),
        })
        .collect()
}

fn contact_row(cat: &Catalog, row: &WaitingRow, now: Time) -> pb::ContactRow {
    use ccr_core::snapshot::ContactViewState as S;
    let c = &row.contact;
    let (state, agent) = match c.state {
        S::Scheduled { .. } => ("scheduled", 0),
        S::Waiting { held_until: Some(until) } if until > now => ("held", 0),
        S::Waiting { .. } => ("waiting", 0),
        S::Offered { agent, .. } => ("offered", agent.0),
        S::Connected { agent } => ("connected", agent.0),
    };
    let names = |ids: &[ccr_core::LanguageId]| ids.iter().map(|l| cat.languages[usize::from(l.0)].clone()).collect();
    let estimate = convert::position_response(&row.estimate);
    pb::ContactRow {
        contact_id: c.id.0,
        queue: cat.queue_name(c.queue).to_owned(),
        tier: cat.tier_name(c.tier).to_owned(),
        channel: convert::channel_to_proto(c.channel) as i32,
        state: state.into(),
        agent_id: agent,
        waited_millis: now.since(c.arrival).as_millis() as u64,
        position: estimate.position,
        wait_estimate_millis: estimate.estimated_wait_millis,
        wait_low_millis: estimate.wait_low_millis,
        wait_high_millis: estimate.wait_high_millis,
        uncertain: estimate.uncertain,
        skills: skill_reqs(cat, &c.effective_skills),
        languages: c.effective_languages.as_deref().map(names).unwrap_or_default(),
        relaxation_steps: u32::from(c.relaxation_steps_applied),
        agents_staffed: row.staffed as u32,
        requested_skills: skill_reqs(cat, &c.skills),
        requested_languages: names(&c.languages),
    }
}

pub(super) async fn contact(shared: &Shared, body: &[u8]) -> Result<pb::ContactResponse, Status> {
    let r: pb::ContactRequest = decode(body)?;
    let id = convert::contact_id(r.contact_id)?;
    let cat = shared.catalog.clone();
    let (diagnosis, now) =
        shared.core.query(move |router| (router.diagnose(id), router.now())).await.map_err(|_| shutting_down())?;
    let d = diagnosis.map_err(|e| convert::command_error(&e))?;
    let now = now.max(shared.clock.now());
    let row = contact_row(&cat, &d.row, now);
    let explanation = explain(&row, &d);
    let qualified_by_state = AgentState::NAMES
        .iter()
        .zip(d.qualified_by_state)
        .filter(|(_, n)| *n > 0)
        .map(|(name, n)| ((*name).to_owned(), n))
        .collect();
    let not_ready_reasons = d.not_ready.iter().map(|&(reason, n)| (reason_name(reason), n)).collect();
    // The dispatcher keeps what happened; a stopping one answers nothing.
    let (asked, kept) = tokio::sync::oneshot::channel();
    let _ = shared.subscribe.send(super::events::Change::History(id, asked));
    let (entries, history_dropped) = kept.await.unwrap_or_default();
    let millis = |t: Time| t.as_micros() / 1000;
    let arrival = pb::HistoryEntry {
        at_unix_millis: millis(d.row.contact.arrival),
        what: format!("arrived ({}, {})", row.queue, row.tier),
    };
    let history = std::iter::once(arrival)
        .chain(entries.into_iter().map(|e| pb::HistoryEntry { at_unix_millis: millis(e.at), what: e.what }))
        .collect();
    Ok(pb::ContactResponse {
        contact: Some(row),
        qualified_by_state,
        not_ready_reasons,
        explanation,
        history,
        history_dropped,
    })
}

fn reason_name(reason: NotReadyReason) -> String {
    convert::state_name(AgentState::NotReady(reason)).1
}

/// Why a contact is where it is, in a sentence a supervisor reads.
fn explain(row: &pb::ContactRow, d: &Diagnosis) -> String {
    let by = |state: AgentState| d.qualified_by_state[state.index()];
    let qualified: u32 = d.qualified_by_state.iter().sum();
    let wanted = {
        let skills: Vec<String> = row.skills.iter().map(|s| format!("{} ≥ {}", s.skill, s.min_proficiency)).collect();
        let languages = if row.languages.is_empty() { "any language".to_owned() } else { row.languages.join(" or ") };
        format!("{} in {languages}", skills.join(" and "))
    };
    match row.state.as_str() {
        "offered" => return format!("ringing at agent {}", row.agent_id),
        "connected" => return format!("connected to agent {}", row.agent_id),
        "scheduled" => return "a callback not yet due".into(),
        "held" => return "held for its preferred agents".into(),
        _ => {}
    }
    if qualified == 0 {
        return format!("waiting: no agent logged in has {wanted}");
    }
    let mut busy = Vec::new();
    for (state, label) in
        [(AgentState::Busy, "busy"), (AgentState::Reserved, "ringing"), (AgentState::WrapUp, "in wrap-up")]
    {
        if by(state) > 0 {
            busy.push(format!("{} {label}", by(state)));
        }
    }
    let not_ready: u32 = d.not_ready.iter().map(|(_, n)| n).sum();
    if not_ready > 0 {
        let reasons: Vec<String> = d.not_ready.iter().map(|&(r, n)| format!("{n} {}", reason_name(r))).collect();
        busy.push(format!("{not_ready} not ready ({})", reasons.join(", ")));
    }
    let available = by(AgentState::Available);
    let mut sentence = format!("waiting at position {}: {qualified} logged-in agent(s) have {wanted}", row.position);
    if available > 0 {
        // Available on a channel, not with room on this one (a voice
        // contact needs an agent with nothing else in hand).
        sentence.push_str(&format!("; {available} available, but without room for this contact's channel now"));
    }
    if !busy.is_empty() {
        sentence.push_str(&format!("; {}", busy.join(", ")));
    }
    sentence
}

pub(super) async fn supervise_agent(shared: &Shared, session: SessionId, body: &[u8]) -> Result<(), Status> {
    let r: pb::SuperviseAgentRequest = decode(body)?;
    let agent = convert::agent_id(r.agent_id)?;
    let action = match r.action.as_str() {
        "ready" => Command::AgentReady { agent },
        "not_ready" => {
            convert::set_state(pb::SetStateRequest { agent_id: r.agent_id, ready: false, reason: r.reason })?
        }
        "logout" => Command::AgentLogout { agent },
        other => return Err(invalid(format!("action: {other:?} is not ready, not_ready or logout"))),
    };
    convert::done(command(shared, session, Command::Supervise(Box::new(action))).await?)
}

pub(super) async fn supervise_contact(
    shared: &Shared,
    session: SessionId,
    body: &[u8],
) -> Result<pb::SuperviseContactResponse, Status> {
    let r: pb::SuperviseContactRequest = decode(body)?;
    let contact = convert::contact_id(r.contact_id)?;
    let cat = shared.catalog.clone();
    if r.action == "abandon" {
        convert::done(command(shared, session, Command::Supervise(Box::new(Command::Abandon { contact }))).await?)?;
        return Ok(pb::SuperviseContactResponse { queue: String::new() });
    }
    // A move or a change of tier is a transfer that keeps the contact's
    // requirements as requested.
    let view = shared
        .core
        .query(move |router| router.contact_view(contact))
        .await
        .map_err(|_| shutting_down())?
        .map_err(|e| convert::command_error(&e))?;
    let (queue, tier) = match r.action.as_str() {
        "move" => (cat.queue(&r.queue).ok_or_else(|| not_found(format!("queue {:?}", r.queue)))?, None),
        "tier" => (view.queue, Some(cat.tier(&r.tier).ok_or_else(|| not_found(format!("tier {:?}", r.tier)))?)),
        other => return Err(invalid(format!("action: {other:?} is not move, tier or abandon"))),
    };
    let transfer = Command::Transfer(TransferSpec {
        contact,
        queue,
        skills: view.skills.iter().copied().collect(),
        languages: view.languages.iter().copied().collect(),
        tier,
        context: Vec::new(),
    });
    let reply = command(shared, session, Command::Supervise(Box::new(transfer))).await?;
    match reply {
        Reply::Enqueued { queue } => Ok(pb::SuperviseContactResponse { queue: cat.queue_name(queue).to_owned() }),
        other => Err(convert::unexpected(&other)),
    }
}
