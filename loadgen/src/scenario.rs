//! The scenario file: who works, what arrives, and the routing configuration
//! they meet. TOML in, a validated [`Scenario`] out; every problem is
//! reported with the field it is about. Format: loadgen/README.md.

use std::path::Path;
use std::time::Duration;

use ccr_core::{AgentProfile, Channel, LanguageId, QueueId, SkillId, SkillReq, TierId};
use ccr_daemon::config::{self, Config};
use rand::Rng;
use rand_distr::{Distribution, Exp, LogNormal};
use serde::Deserialize;

/// How long an agent takes, by default, to make itself ready again after
/// a RONA sent it not ready.
pub const DEFAULT_RONA_RECOVERY: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
#[error("{} problem(s) in the scenario:{}", .0.len(), .0.iter().map(|p| format!("\n  {p}")).collect::<String>())]
pub struct ScenarioError(pub Vec<String>);

/// A duration drawn afresh for each use.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Dist {
    Fixed(Duration),
    Exponential {
        mean: Duration,
    },
    /// Lognormal with this mean and standard deviation (not those of the log).
    LogNormal {
        mean: Duration,
        sd: Duration,
    },
}

impl Dist {
    pub fn mean(&self) -> Duration {
        match *self {
            Dist::Fixed(d) => d,
            Dist::Exponential { mean } | Dist::LogNormal { mean, .. } => mean,
        }
    }

    pub fn sample(&self, rng: &mut impl Rng) -> Duration {
        match *self {
            Dist::Fixed(d) => d,
            Dist::Exponential { mean } if mean.is_zero() => Duration::ZERO,
            Dist::Exponential { mean } => {
                let x: f64 = Exp::new(1.0 / mean.as_secs_f64()).expect("positive rate").sample(rng);
                Duration::from_secs_f64(x)
            }
            Dist::LogNormal { mean, sd } => {
                let (m, s) = (mean.as_secs_f64(), sd.as_secs_f64());
                let sigma2 = (1.0 + (s * s) / (m * m)).ln();
                let mu = m.ln() - sigma2 / 2.0;
                let x: f64 = LogNormal::new(mu, sigma2.sqrt()).expect("finite parameters").sample(rng);
                Duration::from_secs_f64(x)
            }
        }
    }
}

/// `count` agents alike.
#[derive(Clone, Debug)]
pub struct AgentGroup {
    /// What reports call the group (`agents[i]` when the file names none).
    pub name: String,
    pub count: u32,
    pub profile: AgentProfile,
    /// Working hours each day (from, until); `None`: around the clock.
    pub shift: Option<(Duration, Duration)>,
    /// Not-ready breaks each day: (start, length).
    pub breaks: Vec<(Duration, Duration)>,
    /// From the offer ringing to the agent accepting it.
    pub answer_delay: Dist,
    /// Chance that an agent lets an offer ring out (RONA).
    pub rona_probability: f64,
    /// From a RONA (the router sets the agent not ready) to the agent
    /// making itself ready again.
    pub rona_recovery: Dist,
}

/// One kind of contact in the traffic mix.
#[derive(Clone, Debug)]
pub struct ContactTemplate {
    pub weight: f64,
    pub queue: QueueId,
    pub tier: TierId,
    pub channel: Channel,
    pub skills: Vec<SkillReq>,
    pub languages: Vec<LanguageId>,
}

/// Arrival rate through the day: `(start, contacts per hour)`, sorted by
/// start; each rate holds until the next start, and the day repeats.
#[derive(Clone, Debug)]
pub struct RateProfile(pub Vec<(Duration, f64)>);

impl RateProfile {
    pub const DAY: Duration = Duration::from_secs(86_400);

    /// Contacts per second at `t` (time since the start of the run, which
    /// starts at midnight).
    pub fn rate_at(&self, t: Duration) -> f64 {
        let of_day = Duration::from_secs(t.as_secs() % 86_400);
        let per_hour = self.0.iter().rev().find(|(from, _)| *from <= of_day).map_or(self.0[0].1, |(_, r)| *r);
        per_hour / 3600.0
    }

    pub fn max_rate(&self) -> f64 {
        self.0.iter().map(|(_, r)| *r).fold(0.0, f64::max) / 3600.0
    }
}

/// Where contacts come from.
#[derive(Clone, Debug)]
pub enum Traffic {
    /// Drawn afresh from distributions (the seed decides).
    Synthetic {
        rate: RateProfile,
        handle_time: Dist,
        /// How long a caller waits before hanging up; `None`: never.
        patience: Option<Dist>,
        mix: Vec<ContactTemplate>,
    },
    /// Replayed from a trace, contact by contact.
    Trace(Vec<crate::sim::Caller>),
}

impl Traffic {
    /// Mean handle time, for the naive wait estimate.
    pub fn mean_handle_time(&self) -> Duration {
        match self {
            Traffic::Synthetic { handle_time, .. } => handle_time.mean(),
            Traffic::Trace(callers) if callers.is_empty() => Duration::ZERO,
            Traffic::Trace(callers) => callers.iter().map(|c| c.handle).sum::<Duration>() / callers.len() as u32,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Scenario {
    /// The routing configuration (queues, tiers, skills, languages).
    pub ccrd: Config,
    pub duration: Duration,
    /// Contacts arriving before this are routed but not reported.
    pub warm_up: Duration,
    pub seed: u64,
    pub agents: Vec<AgentGroup>,
    pub traffic: Traffic,
}

impl Scenario {
    /// Each queue's service-level threshold, by queue id.
    pub fn thresholds(&self) -> Vec<Duration> {
        self.ccrd.router.queues.iter().map(|q| q.service_level.threshold).collect()
    }

    /// Each queue's name and service-level target, in queue order.
    pub fn queue_targets(&self) -> Vec<(String, f64)> {
        let targets = self.ccrd.router.queues.iter().map(|q| q.service_level.target);
        self.ccrd.catalog.queues.iter().cloned().zip(targets).collect()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    /// A ccrd configuration file, relative to the scenario; the built-in
    /// example configuration when absent.
    ccrd_config: Option<String>,
    simulation: RawSimulation,
    agents: Vec<RawAgents>,
    traffic: RawTraffic,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSimulation {
    duration: String,
    #[serde(default)]
    warm_up: Option<String>,
    #[serde(default)]
    seed: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDist {
    fixed: Option<String>,
    exponential: Option<String>,
    lognormal: Option<String>,
    sd: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawShift {
    start: String,
    end: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBreak {
    at: String,
    length: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAgents {
    name: Option<String>,
    count: u32,
    shift: Option<RawShift>,
    #[serde(default)]
    breaks: Vec<RawBreak>,
    skills: std::collections::BTreeMap<String, u8>,
    #[serde(default)]
    languages: Vec<String>,
    #[serde(default)]
    voice: Option<u8>,
    #[serde(default)]
    chat: u8,
    #[serde(default)]
    email: u8,
    answer_delay: Option<RawDist>,
    #[serde(default)]
    rona_probability: f64,
    rona_recovery: Option<RawDist>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRate {
    from: String,
    calls_per_hour: f64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTraffic {
    /// A trace file (relative to the scenario) instead of the fields below.
    trace: Option<String>,
    calls_per_hour: Option<f64>,
    #[serde(default)]
    rate: Vec<RawRate>,
    handle_time: Option<RawDist>,
    patience: Option<RawDist>,
    #[serde(default)]
    mix: Vec<RawMix>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMix {
    #[serde(default = "one")]
    weight: f64,
    queue: String,
    tier: String,
    #[serde(default = "voice")]
    channel: String,
    skills: std::collections::BTreeMap<String, u8>,
    #[serde(default)]
    languages: Vec<String>,
}

fn one() -> f64 {
    1.0
}

fn voice() -> String {
    "voice".into()
}

/// Reads a scenario file (its `ccrd_config` relative to it).
pub fn load(path: &Path) -> anyhow::Result<Scenario> {
    let text = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let base = path.parent().unwrap_or(Path::new("."));
    parse(&text, base).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// Parses a scenario; `base` is where a relative `ccrd_config` is looked up.
pub fn parse(text: &str, base: &Path) -> Result<Scenario, ScenarioError> {
    let raw: RawScenario = toml::from_str(text).map_err(|e| ScenarioError(vec![e.to_string()]))?;
    let ccrd_text = match &raw.ccrd_config {
        Some(file) => std::fs::read_to_string(base.join(file))
            .map_err(|e| ScenarioError(vec![format!("ccrd_config: {}: {e}", base.join(file).display())]))?,
        None => config::DEFAULT_CONFIG.to_owned(),
    };
    let ccrd = config::parse(&ccrd_text).map_err(|e| ScenarioError(vec![format!("ccrd_config: {e}")]))?;
    let trace = match &raw.traffic.trace {
        Some(file) => Some(
            crate::trace::read(&base.join(file), &ccrd.catalog)
                .map_err(|e| ScenarioError(vec![format!("traffic.trace: {e}")]))?,
        ),
        None => None,
    };
    validate(raw, ccrd, trace)
}

/// Parses a scenario against a ccrd configuration given directly (its
/// `ccrd_config` field, if any, is ignored).
pub fn parse_with(text: &str, ccrd: Config) -> Result<Scenario, ScenarioError> {
    let raw: RawScenario = toml::from_str(text).map_err(|e| ScenarioError(vec![e.to_string()]))?;
    if raw.traffic.trace.is_some() {
        return Err(ScenarioError(vec!["traffic.trace: read scenarios with traces through `load`".into()]));
    }
    validate(raw, ccrd, None)
}

fn validate(raw: RawScenario, ccrd: Config, trace: Option<Vec<crate::sim::Caller>>) -> Result<Scenario, ScenarioError> {
    let mut problems = Vec::new();
    let mut duration = |field: &str, text: &str| match humantime::parse_duration(text) {
        Ok(d) => d,
        Err(e) => {
            problems.push(format!("{field}: {text:?} is not a duration ({e})"));
            Duration::ZERO
        }
    };
    let run = duration("simulation.duration", &raw.simulation.duration);
    let warm_up = raw.simulation.warm_up.as_deref().map_or(Duration::ZERO, |w| duration("simulation.warm_up", w));
    let dist = |field: &str, d: &RawDist, problems: &mut Vec<String>| -> Dist {
        let mut parse = |f: &str, t: &str| match humantime::parse_duration(t) {
            Ok(d) => d,
            Err(e) => {
                problems.push(format!("{field}.{f}: {t:?} is not a duration ({e})"));
                Duration::ZERO
            }
        };
        match (&d.fixed, &d.exponential, &d.lognormal, &d.sd) {
            (Some(f), None, None, None) => Dist::Fixed(parse("fixed", f)),
            (None, Some(m), None, None) => Dist::Exponential { mean: parse("exponential", m) },
            (None, None, Some(m), Some(sd)) => {
                let (mean, sd) = (parse("lognormal", m), parse("sd", sd));
                if mean.is_zero() {
                    problems.push(format!("{field}.lognormal: the mean must be above zero"));
                    return Dist::Fixed(Duration::ZERO);
                }
                Dist::LogNormal { mean, sd }
            }
            _ => {
                problems.push(format!(
                    "{field}: give one of fixed = \"30s\", exponential = \"3m\", or lognormal = \"3m\" with sd = \"1m\""
                ));
                Dist::Fixed(Duration::ZERO)
            }
        }
    };
    let cat = &ccrd.catalog;
    let skills = |field: &str, map: &std::collections::BTreeMap<String, u8>, problems: &mut Vec<String>| {
        map.iter()
            .filter_map(|(name, level)| {
                if !(1..=10).contains(level) {
                    problems.push(format!("{field}.{name}: proficiency {level} is not 1–10"));
                }
                match cat.skill(name) {
                    Some(id) => Some((id, *level)),
                    None => {
                        problems.push(format!("{field}.{name}: no such skill in the ccrd configuration"));
                        None
                    }
                }
            })
            .collect::<Vec<(SkillId, u8)>>()
    };
    let languages = |field: &str, names: &[String], problems: &mut Vec<String>| {
        names
            .iter()
            .filter_map(|name| {
                let id = cat.language(name);
                if id.is_none() {
                    problems.push(format!("{field}: no language {name:?} in the ccrd configuration"));
                }
                id
            })
            .collect::<Vec<LanguageId>>()
    };
    let mut agents = Vec::new();
    for (i, a) in raw.agents.iter().enumerate() {
        let field = format!("agents[{i}]");
        if !(0.0..=1.0).contains(&a.rona_probability) {
            problems.push(format!("{field}.rona_probability: {} is not a probability", a.rona_probability));
        }
        let voice = a.voice.unwrap_or(u8::from(a.chat == 0 && a.email == 0));
        let clock = |f: String, text: &str, problems: &mut Vec<String>| match parse_clock(text) {
            Some(d) => d,
            None => {
                problems.push(format!("{f}: {text:?} is not a time of day like \"09:30\""));
                Duration::ZERO
            }
        };
        let shift = a.shift.as_ref().map(|s| {
            let start = clock(format!("{field}.shift.start"), &s.start, &mut problems);
            (start, clock(format!("{field}.shift.end"), &s.end, &mut problems))
        });
        let mut breaks = Vec::new();
        for (j, b) in a.breaks.iter().enumerate() {
            let at = clock(format!("{field}.breaks[{j}].at"), &b.at, &mut problems);
            let length = humantime::parse_duration(&b.length).unwrap_or_else(|e| {
                problems.push(format!("{field}.breaks[{j}].length: {:?} is not a duration ({e})", b.length));
                Duration::ZERO
            });
            breaks.push((at, length));
        }
        if let Some((start, end)) = shift {
            if start >= end {
                problems.push(format!("{field}.shift: start must come before end (night shifts: two groups)"));
            }
        }
        agents.push(AgentGroup {
            name: a.name.clone().unwrap_or_else(|| field.clone()),
            shift,
            breaks,
            count: a.count,
            profile: AgentProfile {
                skills: skills(&format!("{field}.skills"), &a.skills, &mut problems),
                languages: languages(&format!("{field}.languages"), &a.languages, &mut problems),
                capacity: [voice.min(1), a.chat, a.email],
            },
            answer_delay: a
                .answer_delay
                .as_ref()
                .map_or(Dist::Fixed(Duration::ZERO), |d| dist(&format!("{field}.answer_delay"), d, &mut problems)),
            rona_probability: a.rona_probability,
            rona_recovery: a.rona_recovery.as_ref().map_or(Dist::Fixed(DEFAULT_RONA_RECOVERY), |d| {
                dist(&format!("{field}.rona_recovery"), d, &mut problems)
            }),
        });
    }
    for (i, a) in agents.iter().enumerate() {
        if agents[..i].iter().any(|b| b.name == a.name) {
            problems.push(format!("agents[{i}].name: {:?} names an earlier group too", a.name));
        }
    }
    if agents.iter().map(|a| a.count).sum::<u32>() == 0 {
        problems.push("agents: no agents".into());
    }
    let t = &raw.traffic;
    let traffic = match trace {
        Some(callers) => {
            if t.calls_per_hour.is_some() || !t.rate.is_empty() || !t.mix.is_empty() || t.handle_time.is_some() {
                problems.push("traffic: with a trace, the trace alone says what arrives".into());
            }
            Traffic::Trace(callers)
        }
        None => {
            let mut rate = Vec::new();
            match (t.calls_per_hour, t.rate.is_empty()) {
                (Some(r), true) => rate.push((Duration::ZERO, r)),
                (None, false) => {
                    for (i, r) in t.rate.iter().enumerate() {
                        let from = match parse_clock(&r.from) {
                            Some(d) => d,
                            None => {
                                problems.push(format!(
                                    "traffic.rate[{i}].from: {:?} is not a time of day like \"09:30\"",
                                    r.from
                                ));
                                Duration::ZERO
                            }
                        };
                        rate.push((from, r.calls_per_hour));
                    }
                    rate.sort_by_key(|(from, _)| *from);
                }
                _ => problems.push("traffic: give calls_per_hour, or [[traffic.rate]] entries through the day".into()),
            }
            if rate.iter().any(|(_, r)| !(r.is_finite() && *r >= 0.0)) || rate.iter().all(|(_, r)| *r == 0.0) {
                problems.push("traffic: arrival rates must be non-negative, and not all zero".into());
            }
            let mut mix = Vec::new();
            for (i, m) in t.mix.iter().enumerate() {
                let field = format!("traffic.mix[{i}]");
                let queue = cat.queue(&m.queue);
                let tier = cat.tier(&m.tier);
                if queue.is_none() {
                    problems.push(format!("{field}.queue: no queue {:?} in the ccrd configuration", m.queue));
                }
                if tier.is_none() {
                    problems.push(format!("{field}.tier: no tier {:?} in the ccrd configuration", m.tier));
                }
                let channel = match m.channel.as_str() {
                    "voice" => Channel::Voice,
                    "chat" => Channel::Chat,
                    "email" => Channel::Email,
                    other => {
                        problems.push(format!("{field}.channel: {other:?} is not voice, chat or email"));
                        Channel::Voice
                    }
                };
                let skills: Vec<SkillReq> = skills(&format!("{field}.skills"), &m.skills, &mut problems)
                    .into_iter()
                    .map(|(skill, min_proficiency)| SkillReq { skill, min_proficiency })
                    .collect();
                if skills.is_empty() {
                    problems.push(format!("{field}.skills: a contact needs at least one skill"));
                }
                if !(m.weight.is_finite() && m.weight > 0.0) {
                    problems.push(format!("{field}.weight: must be above zero"));
                }
                mix.push(ContactTemplate {
                    weight: m.weight,
                    queue: queue.unwrap_or(QueueId(0)),
                    tier: tier.unwrap_or(TierId(0)),
                    channel,
                    skills,
                    languages: languages(&format!("{field}.languages"), &m.languages, &mut problems),
                });
            }
            if mix.is_empty() {
                problems.push("traffic.mix: at least one kind of contact".into());
            }
            let handle_time = match &t.handle_time {
                Some(h) => dist("traffic.handle_time", h, &mut problems),
                None => {
                    problems.push("traffic.handle_time: required without a trace".into());
                    Dist::Fixed(Duration::ZERO)
                }
            };
            let patience = t.patience.as_ref().map(|p| dist("traffic.patience", p, &mut problems));
            Traffic::Synthetic { rate: RateProfile(rate), handle_time, patience, mix }
        }
    };
    if run.is_zero() {
        problems.push("simulation.duration: must be more than zero".into());
    }
    if !problems.is_empty() {
        return Err(ScenarioError(problems));
    }
    Ok(Scenario { ccrd, duration: run, warm_up, seed: raw.simulation.seed, agents, traffic })
}

/// "09:30" → 9.5 h.
fn parse_clock(text: &str) -> Option<Duration> {
    let (h, m) = text.split_once(':')?;
    let (h, m): (u64, u64) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60).then(|| Duration::from_secs(h * 3600 + m * 60))
}
