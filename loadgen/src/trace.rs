//! Traces: real (or generated) traffic as CSV, one contact per row, in
//! arrival order. Columns (loadgen/README.md):
//!
//! ```text
//! arrival_s,channel,queue,tier,skills,languages,handle_s,patience_s,answer_delay_s
//! 31.52,voice,billing,gold,billing:3|payments:2,en|zh,212.4,95.0,
//! ```
//! `skills` are `name:minimum proficiency` joined by `|`; `languages` in
//! order of preference joined by `|` (empty: any); an empty `patience_s`
//! means the caller never hangs up, an empty `answer_delay_s` that the
//! agent's own answer delay applies.

use std::path::Path;
use std::time::Duration;

use ccr_core::{Channel, SkillReq};
use ccr_daemon::config::Catalog;
use serde::{Deserialize, Serialize};

use crate::sim::Caller;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    pub arrival_s: f64,
    pub channel: String,
    pub queue: String,
    pub tier: String,
    pub skills: String,
    pub languages: String,
    pub handle_s: f64,
    pub patience_s: Option<f64>,
    pub answer_delay_s: Option<f64>,
}

#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error("{path}: {source}")]
    Csv { path: String, source: csv::Error },
    #[error("{path} line {line}: {why}")]
    Row { path: String, line: u64, why: String },
}

/// Reads a trace, resolving names against the routing configuration.
pub fn read(path: &Path, catalog: &Catalog) -> Result<Vec<Caller>, TraceError> {
    let name = path.display().to_string();
    let mut reader = csv::ReaderBuilder::new()
        .comment(Some(b'#'))
        .from_path(path)
        .map_err(|source| TraceError::Csv { path: name.clone(), source })?;
    let mut callers = Vec::new();
    let mut last = 0.0;
    for (i, row) in reader.deserialize::<Row>().enumerate() {
        let line = i as u64 + 2;
        let row = row.map_err(|source| TraceError::Csv { path: name.clone(), source })?;
        let bad = |why: String| TraceError::Row { path: name.clone(), line, why };
        if !(row.arrival_s.is_finite() && row.arrival_s >= last) {
            return Err(bad(format!("arrival_s {} is not in order (after {last})", row.arrival_s)));
        }
        last = row.arrival_s;
        callers.push(caller(&row, catalog).map_err(bad)?);
    }
    Ok(callers)
}

fn seconds(field: &str, v: f64) -> Result<Duration, String> {
    Duration::try_from_secs_f64(v).map_err(|_| format!("{field} {v} is not a number of seconds"))
}

fn caller(row: &Row, catalog: &Catalog) -> Result<Caller, String> {
    let channel = match row.channel.as_str() {
        "voice" => Channel::Voice,
        "chat" => Channel::Chat,
        "email" => Channel::Email,
        other => return Err(format!("channel {other:?} is not voice, chat or email")),
    };
    let queue = catalog.queue(&row.queue).ok_or_else(|| format!("no queue {:?} in the configuration", row.queue))?;
    let tier = catalog.tier(&row.tier).ok_or_else(|| format!("no tier {:?} in the configuration", row.tier))?;
    let mut skills = Vec::new();
    for part in row.skills.split('|').filter(|p| !p.is_empty()) {
        let (name, level) = part.split_once(':').unwrap_or((part, "1"));
        let skill = catalog.skill(name).ok_or_else(|| format!("no skill {name:?} in the configuration"))?;
        let min_proficiency = level.parse().map_err(|_| format!("skill {part:?}: write name:level"))?;
        skills.push(SkillReq { skill, min_proficiency });
    }
    if skills.is_empty() {
        return Err("a contact needs at least one skill".into());
    }
    let mut languages = Vec::new();
    for name in row.languages.split('|').filter(|p| !p.is_empty()) {
        languages.push(catalog.language(name).ok_or_else(|| format!("no language {name:?} in the configuration"))?);
    }
    Ok(Caller {
        arrival: seconds("arrival_s", row.arrival_s)?,
        channel,
        queue,
        tier,
        skills,
        languages,
        handle: seconds("handle_s", row.handle_s)?,
        patience: row.patience_s.map(|p| seconds("patience_s", p)).transpose()?,
        answer_delay: row.answer_delay_s.map(|d| seconds("answer_delay_s", d)).transpose()?,
    })
}

/// Writes callers as a trace.
pub fn write(path: &Path, callers: &[Caller], catalog: &Catalog) -> Result<(), TraceError> {
    let name = path.display().to_string();
    let mut writer = csv::Writer::from_path(path).map_err(|source| TraceError::Csv { path: name.clone(), source })?;
    for c in callers {
        let row = Row {
            arrival_s: (c.arrival.as_secs_f64() * 1000.0).round() / 1000.0,
            channel: match c.channel {
                Channel::Voice => "voice",
                Channel::Chat => "chat",
                Channel::Email => "email",
            }
            .into(),
            queue: catalog.queue_name(c.queue).to_owned(),
            tier: catalog.tier_name(c.tier).to_owned(),
            skills: c
                .skills
                .iter()
                .map(|r| format!("{}:{}", catalog.skills[usize::from(r.skill.0)], r.min_proficiency))
                .collect::<Vec<_>>()
                .join("|"),
            languages: c
                .languages
                .iter()
                .map(|l| catalog.languages[usize::from(l.0)].clone())
                .collect::<Vec<_>>()
                .join("|"),
            handle_s: (c.handle.as_secs_f64() * 10.0).round() / 10.0,
            patience_s: c.patience.map(|p| (p.as_secs_f64() * 10.0).round() / 10.0),
            answer_delay_s: c.answer_delay.map(|d| (d.as_secs_f64() * 10.0).round() / 10.0),
        };
        writer.serialize(row).map_err(|source| TraceError::Csv { path: name.clone(), source })?;
    }
    writer.flush().map_err(|e| TraceError::Csv { path: name, source: e.into() })
}
