//! Each command: its calls to ccrd, and what it prints (a table, or JSON
//! whose fields are documented in ccrctl/README.md).

use std::collections::BTreeMap;
use std::time::Duration;

use ccr_proto::client::Client;
use ccr_proto::v1 as pb;
use clap::{Subcommand, ValueEnum};
use serde_json::{json, Value};

use crate::table::Table;
use crate::target::Target;
use crate::{Failure, Output};

type Result<T> = anyhow::Result<T>;

/// A status from ccrd as the failure (and exit code) it means.
fn failed(status: pb::Status) -> anyhow::Error {
    Failure::of(&status).into()
}

fn json_text(value: Value) -> String {
    format!("{}\n", serde_json::to_string_pretty(&value).expect("JSON values serialise"))
}

/// "1h 2m 3s" to the second; "-" for nothing.
pub fn span(millis: u64) -> String {
    if millis == 0 {
        return "-".into();
    }
    humantime::format_duration(Duration::from_secs(millis.div_ceil(1000))).to_string().replace(' ', "")
}

pub fn percent(share: f64) -> String {
    format!("{:.1}%", 100.0 * share)
}

/// A map of names to counts in name order.
pub fn sorted(map: &std::collections::HashMap<String, u32>) -> BTreeMap<&str, u32> {
    map.iter().map(|(k, v)| (k.as_str(), *v)).collect()
}

/// The agent states a status line counts, in its order.
const STATES: [&str; 5] = ["available", "reserved", "busy", "wrap_up", "not_ready"];

/// "available 3, reserved 0, …" from Health's counts.
pub fn agents_by_state(h: &pb::HealthResponse, separator: &str) -> String {
    let by_state: Vec<String> =
        STATES.iter().map(|s| format!("{s} {}", h.agents_by_state.get(*s).copied().unwrap_or(0))).collect();
    by_state.join(separator)
}

/// "single node", or a cluster's active and epoch.
pub fn role(h: &pb::HealthResponse) -> String {
    match h.role.as_str() {
        "single" => "single node".to_owned(),
        role => format!("{role}, active at {} (epoch {})", h.active_address, h.epoch),
    }
}

/// The columns of a queue's row, as `queues` and `watch` show it.
pub const QUEUE_COLUMNS: [&str; 10] = [
    "QUEUE",
    "WAITING",
    "BY TIER",
    "OLDEST",
    "STAFFED FOR IT",
    "SL (WINDOW)",
    "TARGET",
    "ANSWERED (WINDOW)",
    "ABANDONED (WINDOW)",
    "SL (SINCE START)",
];

pub fn queue_cells(q: &pb::QueueStatsResponse) -> Vec<String> {
    let by_tier: Vec<String> = sorted(&q.waiting_by_tier).iter().map(|(t, n)| format!("{t} {n}")).collect();
    vec![
        q.queue.clone(),
        q.waiting_by_tier.values().sum::<u32>().to_string(),
        by_tier.join(", "),
        span(q.oldest_wait_millis),
        if q.oldest_wait_millis == 0 { "-".into() } else { q.agents_for_oldest.to_string() },
        q.window_service_level.map_or("-".into(), percent),
        percent(q.service_level_target),
        q.window_answered.to_string(),
        q.window_abandoned.to_string(),
        if q.answered + q.abandoned > 0 { percent(q.service_level) } else { "-".into() },
    ]
}

/// The columns of an agent's row, as `agents` and `watch` show it.
pub const AGENT_COLUMNS: [&str; 9] =
    ["AGENT", "STATE", "REASON", "FOR", "VOICE", "CHAT", "EMAIL", "SKILLS", "LANGUAGES"];

pub fn agent_cells(a: &pb::AgentRow) -> Vec<String> {
    let skills: Vec<String> = a.skills.iter().map(|s| format!("{}:{}", s.skill, s.proficiency)).collect();
    vec![
        a.agent_id.to_string(),
        a.state.clone(),
        if a.reason.is_empty() { "-".into() } else { a.reason.clone() },
        span(a.in_state_millis),
        format!("{}/{}", a.voice, a.voice_capacity),
        format!("{}/{}", a.chat, a.chat_capacity),
        format!("{}/{}", a.email, a.email_capacity),
        skills.join(","),
        a.languages.join(","),
    ]
}

pub async fn status(client: &Client, target: &Target, out: Output) -> Result<String> {
    let h = client.health(pb::HealthRequest {}).await.map_err(failed)?;
    let agents: u32 = h.agents_by_state.values().sum();
    if out == Output::Json {
        return Ok(json_text(json!({
            "version": h.version, "status": h.status, "uptime_seconds": h.uptime_seconds,
            "journal": if h.status == "journal_failed" { "failed" } else { "healthy" },
            "role": h.role, "active_address": h.active_address, "epoch": h.epoch,
            "waiting": h.waiting, "agents": agents, "agents_by_state": sorted(&h.agents_by_state),
            "sessions_live": h.sessions_live, "sessions_in_grace": h.sessions_in_grace,
            "open_connections": h.open_connections, "refused_connections": h.refused_connections,
            "refused_requests": h.refused_requests, "protocol_errors": h.protocol_errors,
        })));
    }
    let uptime = humantime::format_duration(Duration::from_secs(h.uptime_seconds));
    let mut text = format!("ccrd {} at {:?}: {}, up {uptime}\n", h.version, target.addrs, h.status);
    text.push_str(&format!(
        "journal:   {}\n",
        if h.status == "journal_failed" { "FAILED (nothing is acknowledged)" } else { "healthy" }
    ));
    text.push_str(&format!("role:      {}\n", role(&h)));
    text.push_str(&format!("waiting:   {} contacts\n", h.waiting));
    text.push_str(&format!("agents:    {agents} logged in: {}\n", agents_by_state(&h, ", ")));
    text.push_str(&format!(
        "sessions:  {} live, {} in grace; {} connections open\n",
        h.sessions_live, h.sessions_in_grace, h.open_connections
    ));
    text.push_str(&format!(
        "refused:   {} connections, {} requests; {} protocol errors\n",
        h.refused_connections, h.refused_requests, h.protocol_errors
    ));
    Ok(text)
}

pub async fn queues(client: &Client, out: Output) -> Result<String> {
    let r = client.queues(pb::QueuesRequest {}).await.map_err(failed)?;
    if out == Output::Json {
        let queues: Vec<Value> = r
            .queues
            .iter()
            .map(|q| {
                json!({
                    "queue": q.queue, "waiting": q.waiting_by_tier.values().sum::<u32>(),
                    "waiting_by_tier": sorted(&q.waiting_by_tier), "oldest_wait_millis": q.oldest_wait_millis,
                    "service_level": (q.answered + q.abandoned > 0).then_some(q.service_level),
                    "service_level_target": q.service_level_target,
                    "answered": q.answered, "abandoned": q.abandoned, "short_abandoned": q.short_abandoned,
                    "agents_for_oldest": q.agents_for_oldest,
                    "window_seconds": q.window_seconds, "window_answered": q.window_answered,
                    "window_abandoned": q.window_abandoned, "window_service_level": q.window_service_level,
                })
            })
            .collect();
        return Ok(json_text(json!({ "queues": queues })));
    }
    let mut t = Table::new(QUEUE_COLUMNS.to_vec());
    for q in &r.queues {
        t.row(queue_cells(q));
    }
    let window = r.queues.first().map_or(0, |q| q.window_seconds);
    let mut text = t.render();
    text.push_str(&format!(
        "(WINDOW: the last {}; STAFFED FOR IT: agents on duty who can serve the longest-waiting contact)\n",
        humantime::format_duration(Duration::from_secs(window))
    ));
    Ok(text)
}

/// The order of `ccrctl agents`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum AgentOrder {
    Id,
    State,
    Time,
}

pub async fn agents(
    client: &Client,
    queue: Option<String>,
    state: Option<String>,
    skill: Option<String>,
    order: AgentOrder,
    limit: usize,
    out: Output,
) -> Result<String> {
    let wanted = if limit == 0 { usize::MAX } else { limit };
    // Pages come in ccrd's order, not in any of ours: every page is read,
    // each a bounded call.
    let mut rows = Vec::new();
    let mut cursor = 0;
    let logged_in = loop {
        let request = pb::AgentsRequest {
            cursor,
            limit: 1000,
            state: state.clone().unwrap_or_default(),
            skill: skill.clone().unwrap_or_default(),
            queue: queue.clone().unwrap_or_default(),
        };
        let page = client.agents(request).await.map_err(failed)?;
        rows.extend(page.agents);
        if !page.more {
            break page.logged_in;
        }
        cursor = page.next_cursor;
    };
    // An agent that logged out and in while the pages were read can be in
    // two of them: once is enough.
    rows.sort_by_key(|a| a.agent_id);
    rows.dedup_by_key(|a| a.agent_id);
    match order {
        AgentOrder::Id => {}
        AgentOrder::State => {
            rows.sort_by(|a, b| (&a.state, &a.reason, a.agent_id).cmp(&(&b.state, &b.reason, b.agent_id)))
        }
        AgentOrder::Time => {
            rows.sort_by(|a, b| b.in_state_millis.cmp(&a.in_state_millis).then(a.agent_id.cmp(&b.agent_id)))
        }
    }
    let matching = rows.len();
    rows.truncate(wanted);
    if out == Output::Json {
        let agents: Vec<Value> = rows
            .iter()
            .map(|a| {
                json!({
                    "agent_id": a.agent_id, "state": a.state, "reason": a.reason,
                    "in_state_millis": a.in_state_millis,
                    "in_hand": { "voice": a.voice, "chat": a.chat, "email": a.email },
                    "capacity": { "voice": a.voice_capacity, "chat": a.chat_capacity, "email": a.email_capacity },
                    "skills": a.skills.iter().map(|s| json!({"skill": s.skill, "proficiency": s.proficiency})).collect::<Vec<_>>(),
                    "languages": a.languages,
                })
            })
            .collect();
        return Ok(json_text(json!({ "logged_in": logged_in, "matching": matching, "agents": agents })));
    }
    let mut t = Table::new(AGENT_COLUMNS.to_vec());
    for a in &rows {
        t.row(agent_cells(a));
    }
    let mut text = t.render();
    text.push_str(&format!("{} of {matching} matching agents shown; {logged_in} logged in\n", rows.len()));
    Ok(text)
}

fn requirements(skills: &[pb::SkillRequirement], languages: &[String]) -> String {
    let skills: Vec<String> = skills.iter().map(|s| format!("{}≥{}", s.skill, s.min_proficiency)).collect();
    let languages = if languages.is_empty() { "any".to_owned() } else { languages.join("|") };
    format!("{} {languages}", skills.join(","))
}

fn contact_json(c: &pb::ContactRow) -> Value {
    let reqs = |skills: &[pb::SkillRequirement]| -> Vec<Value> {
        skills.iter().map(|s| json!({"skill": s.skill, "min_proficiency": s.min_proficiency})).collect()
    };
    json!({
        "contact_id": c.contact_id, "queue": c.queue, "tier": c.tier, "state": c.state,
        "agent_id": (c.agent_id != 0).then_some(c.agent_id),
        "waited_millis": c.waited_millis, "position": c.position,
        "wait_estimate_millis": c.wait_estimate_millis, "wait_low_millis": c.wait_low_millis,
        "wait_high_millis": c.wait_high_millis, "uncertain": c.uncertain,
        "skills": reqs(&c.skills), "languages": c.languages, "relaxation_steps": c.relaxation_steps,
        "requested_skills": reqs(&c.requested_skills), "requested_languages": c.requested_languages,
        "agents_staffed": c.agents_staffed,
    })
}

pub async fn contacts(client: &Client, queue: Option<String>, limit: usize, out: Output) -> Result<String> {
    let queues = match queue {
        Some(q) => vec![q],
        None => {
            client.queues(pb::QueuesRequest {}).await.map_err(failed)?.queues.into_iter().map(|q| q.queue).collect()
        }
    };
    let wanted = if limit == 0 { usize::MAX } else { limit };
    let mut by_queue = Vec::new();
    for queue in queues {
        let mut rows = Vec::new();
        let mut cursor = String::new();
        let waiting = loop {
            let page_size = (wanted - rows.len()).min(1000) as u32;
            let request = pb::ContactsRequest { queue: queue.clone(), cursor, limit: page_size };
            let page = client.contacts(request).await.map_err(failed)?;
            rows.extend(page.contacts);
            if page.next_cursor.is_empty() || rows.len() >= wanted {
                break page.waiting;
            }
            cursor = page.next_cursor;
        };
        by_queue.push((queue, waiting, rows));
    }
    if out == Output::Json {
        let queues: Vec<Value> = by_queue
            .iter()
            .map(|(q, waiting, rows)| {
                json!({"queue": q, "waiting": waiting, "contacts": rows.iter().map(contact_json).collect::<Vec<_>>()})
            })
            .collect();
        return Ok(json_text(json!({ "queues": queues })));
    }
    let mut text = String::new();
    for (queue, waiting, rows) in &by_queue {
        text.push_str(&format!("{queue}: {waiting} waiting\n"));
        if rows.is_empty() {
            continue;
        }
        let mut t = Table::new(vec!["POS", "CONTACT", "TIER", "WAITED", "EWT", "NEEDS", "STEPS", "STAFFED"]);
        for c in rows {
            let ewt = format!("{}{}", span(c.wait_estimate_millis), if c.uncertain { "?" } else { "" });
            t.row(vec![
                c.position.to_string(),
                c.contact_id.to_string(),
                c.tier.clone(),
                span(c.waited_millis),
                ewt,
                requirements(&c.skills, &c.languages),
                c.relaxation_steps.to_string(),
                c.agents_staffed.to_string(),
            ]);
        }
        text.push_str(&t.render());
    }
    Ok(text)
}

pub async fn contact(client: &Client, id: u64, out: Output) -> Result<String> {
    let r = client.contact(pb::ContactRequest { contact_id: id }).await.map_err(failed)?;
    let c = r.contact.clone().unwrap_or_default();
    if out == Output::Json {
        return Ok(json_text(json!({
            "contact": contact_json(&c),
            "qualified_by_state": sorted(&r.qualified_by_state),
            "not_ready_reasons": sorted(&r.not_ready_reasons),
            "explanation": r.explanation,
            "history": r.history.iter().map(|h| json!({"at_unix_millis": h.at_unix_millis, "what": h.what})).collect::<Vec<_>>(),
            "history_dropped": r.history_dropped,
        })));
    }
    let mut text = format!("contact {} in {} ({}), {}", c.contact_id, c.queue, c.tier, c.state);
    if c.agent_id != 0 {
        text.push_str(&format!(" with agent {}", c.agent_id));
    }
    text.push('\n');
    text.push_str(&format!("waited:    {}\n", span(c.waited_millis)));
    if c.position > 0 {
        text.push_str(&format!(
            "position:  {}, estimated wait {} (between {} and {}){}\n",
            c.position,
            span(c.wait_estimate_millis),
            span(c.wait_low_millis),
            span(c.wait_high_millis),
            if c.uncertain { ", uncertain" } else { "" }
        ));
    }
    text.push_str(&format!(
        "needs:     {} (asked {}; {} relaxation step(s) taken)\n",
        requirements(&c.skills, &c.languages),
        requirements(&c.requested_skills, &c.requested_languages),
        c.relaxation_steps
    ));
    let qualified: Vec<String> = sorted(&r.qualified_by_state).iter().map(|(s, n)| format!("{s} {n}")).collect();
    text.push_str(&format!(
        "qualify:   {}\n",
        if qualified.is_empty() { "no agent logged in".into() } else { qualified.join(", ") }
    ));
    text.push_str(&format!("why:       {}\n", r.explanation));
    text.push_str("history (UTC; since ccrd last started):\n");
    for (i, h) in r.history.iter().enumerate() {
        let at = std::time::UNIX_EPOCH + Duration::from_millis(h.at_unix_millis);
        let clock = humantime::format_rfc3339_millis(at).to_string();
        text.push_str(&format!("  {}  {}\n", clock.get(11..23).unwrap_or(&clock), h.what));
        if i == 1 && r.history_dropped > 0 {
            text.push_str(&format!("  …  {} more not kept\n", r.history_dropped));
        }
    }
    Ok(text)
}

#[derive(Subcommand, Clone, Debug)]
pub enum ContactAction {
    /// Move it to another queue, keeping its requirements and tier.
    Move {
        /// The queue to move it to.
        queue: String,
    },
    /// Give it another tier, in its queue.
    Tier {
        /// The tier to give it.
        tier: String,
    },
    /// End it as abandoned.
    Abandon,
}

#[derive(Subcommand, Clone, Debug)]
pub enum AgentAction {
    /// Make it ready for work.
    Ready,
    /// Make it not ready: break, lunch, training, meeting, away or other.
    NotReady {
        /// break, lunch, training, meeting, away or other.
        reason: String,
    },
    /// Log it out (refused while it is on a contact).
    Logout,
}

fn done(out: Output, what: String, extra: Value) -> String {
    match out {
        Output::Json => json_text(json!({ "done": what, "result": extra })),
        Output::Table => format!("{what}\n"),
    }
}

pub async fn supervise_contact(client: &Client, id: u64, action: ContactAction, out: Output) -> Result<String> {
    let (name, queue, tier) = match &action {
        ContactAction::Move { queue } => ("move", queue.clone(), String::new()),
        ContactAction::Tier { tier } => ("tier", String::new(), tier.clone()),
        ContactAction::Abandon => ("abandon", String::new(), String::new()),
    };
    let r = pb::SuperviseContactRequest { contact_id: id, action: name.into(), queue, tier };
    let reply = client.supervise_contact(r).await.map_err(failed)?;
    let what = match action {
        ContactAction::Move { .. } => format!("contact {id} moved to {}", reply.queue),
        ContactAction::Tier { tier } => format!("contact {id} now {tier} in {}", reply.queue),
        ContactAction::Abandon => format!("contact {id} abandoned"),
    };
    Ok(done(out, what, json!({ "queue": reply.queue })))
}

pub async fn supervise_agent(client: &Client, id: u64, action: AgentAction, out: Output) -> Result<String> {
    use pb::NotReadyReason as R;
    let (name, reason, what) = match &action {
        AgentAction::Ready => ("ready", R::Unspecified, format!("agent {id} ready")),
        AgentAction::NotReady { reason } => {
            let r = match reason.as_str() {
                "break" => R::Break,
                "lunch" => R::Lunch,
                "training" => R::Training,
                "meeting" => R::Meeting,
                "away" => R::Away,
                "other" => R::Other,
                other => {
                    let m = format!("{other:?} is not break, lunch, training, meeting, away or other");
                    return Err(Failure::Invalid(m).into());
                }
            };
            ("not_ready", r, format!("agent {id} not ready ({reason})"))
        }
        AgentAction::Logout => ("logout", R::Unspecified, format!("agent {id} logged out")),
    };
    let r = pb::SuperviseAgentRequest { agent_id: id, action: name.into(), reason: reason as i32 };
    client.supervise_agent(r).await.map_err(failed)?;
    Ok(done(out, what, Value::Null))
}

pub async fn reload(client: &Client, out: Output) -> Result<String> {
    let r = client.reload_config(pb::ReloadConfigRequest {}).await.map_err(failed)?;
    Ok(done(out, format!("configuration reloaded: {} queues", r.queues), json!({ "queues": r.queues })))
}

pub async fn drain(client: &Client, out: Output) -> Result<String> {
    let r = client.drain(pb::DrainRequest {}).await.map_err(failed)?;
    let what = format!("drained: {} agents logged out", r.agents_logged_out);
    Ok(done(out, what, json!({ "agents_logged_out": r.agents_logged_out })))
}
