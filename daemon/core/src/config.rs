//! The routing configuration the core runs with, and its validation.
//!
//! The daemon parses TOML into these types (resolving names to ids); the core
//! checks the result once, returning every problem with the field it concerns.

use std::fmt;
use std::time::Duration;

use crate::ids::{QueueId, MAX_PROFICIENCY, MIN_PROFICIENCY};

/// Everything the router needs to know before the first command.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RouterConfig {
    /// Priority tiers, highest first (index = [`crate::TierId`]).
    pub tiers: Vec<TierConfig>,
    /// Queues (index = [`crate::QueueId`]).
    pub queues: Vec<QueueConfig>,
    /// Abandons after less than this are "short" (silent calls, misdials): they
    /// are reported apart and do not count against the service level.
    pub short_abandon: Duration,
    /// Attach an [`crate::Explanation`] to every offer. Costs an allocation per
    /// decision, so it is off in benches and on where operators want the why.
    pub explain: bool,
    /// How many finished offers are remembered so that a repeated accept or
    /// reject gets the same answer (idempotency window).
    pub offer_history: usize,
    /// Time constant of the history behind the estimated wait (see
    /// [`crate::stats`]). 20 minutes: at 20 agents a shorter window's
    /// noise costs more than its speed gains (`ccr-loadgen simulate`).
    pub ewt_window: Duration,
    /// How long a lost session's contacts and agents wait for another
    /// session to claim them before they are abandoned and logged out.
    pub session_grace: Duration,
    /// Contacts held at once, scheduled callbacks included: what clients
    /// can make the core keep, whatever each queue's `max_waiting`.
    pub max_contacts: u32,
    /// A contact's context (the key/values a gateway attaches): entries,
    /// and bytes of keys and values together, transfers' additions included.
    pub max_context_entries: u16,
    pub max_context_bytes: u32,
}

/// Upper ends of the limits' settings: slots are `u32`, and a context is
/// journaled with its command, well inside a journal record.
pub const MAX_CONTACTS_LIMIT: u32 = 100_000_000;
pub const MAX_CONTEXT_BYTES_LIMIT: u32 = 1 << 20;
/// The ring of remembered offers is allocated whole at start: a bound keeps
/// a damaged or hostile journal from asking for terabytes.
pub const MAX_OFFER_HISTORY: usize = 1 << 20;

impl Default for RouterConfig {
    fn default() -> Self {
        RouterConfig {
            tiers: vec![
                TierConfig::new("gold", Duration::from_secs(60)),
                TierConfig::new("silver", Duration::from_secs(30)),
                TierConfig::new("standard", Duration::ZERO),
            ],
            queues: vec![QueueConfig::new("general")],
            short_abandon: Duration::from_secs(5),
            explain: false,
            offer_history: 65_536,
            ewt_window: Duration::from_secs(1200),
            session_grace: Duration::from_secs(30),
            max_contacts: 1_000_000,
            max_context_entries: 32,
            max_context_bytes: 2048,
        }
    }
}

/// A priority tier.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TierConfig {
    pub name: String,
    /// Head start under [`ContactPolicy::TierAging`]: a contact of this tier is
    /// ranked as if it had arrived this much earlier. The difference between two
    /// tiers' boosts bounds how long the lower one can be overtaken.
    pub aging_boost: Duration,
    /// Answer-time target for this tier under [`ContactPolicy::EarliestDeadline`];
    /// `None` takes the queue's service-level threshold.
    pub answer_target: Option<Duration>,
}

impl TierConfig {
    pub fn new(name: &str, aging_boost: Duration) -> Self {
        TierConfig { name: name.to_owned(), aging_boost, answer_target: None }
    }
}

/// "80 % answered within 20 s".
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ServiceLevel {
    pub target: f64,
    pub threshold: Duration,
}

/// Which waiting contact an agent takes when several qualify.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ContactPolicy {
    /// Highest tier first, FIFO within a tier. Lower tiers can starve while
    /// higher-tier contacts keep arriving: the overtaking bound is unbounded.
    StrictTier,
    /// Each tier ranks as if it had arrived `aging_boost` earlier. A contact is
    /// overtaken by later arrivals for at most `max(boost) - own boost`.
    TierAging,
    /// Earliest service-level deadline first (arrival + the tier's answer
    /// target, or a callback's own deadline). Nothing that becomes routable
    /// after a contact's deadline can overtake it.
    EarliestDeadline,
}

/// Which available agent a contact gets when several qualify.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum AgentPolicy {
    /// The agent whose workload changed longest ago (for voice: longest idle).
    LongestIdle,
    /// Highest proficiency in the contact's first required skill, then longest idle.
    MostProficient,
    /// Fewest contacts in progress on the contact's channel, then longest idle.
    LeastOccupied,
}

/// Relax a contact's requirements once it has waited `after` in its queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RelaxStep {
    pub after: Duration,
    pub action: RelaxAction,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum RelaxAction {
    /// Required proficiencies above this are lowered to it.
    MinProficiencyAtMost(u8),
    /// Accept the next language in the contact's preference list.
    NextLanguage,
    /// Accept an agent in any language.
    AnyLanguage,
    /// Move to another queue (keeping arrival time and context).
    OverflowTo(QueueId),
}

/// What happens to a contact offered to a queue that is at `max_waiting`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum WhenFull {
    Refuse,
    OverflowTo(QueueId),
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct QueueConfig {
    pub name: String,
    pub service_level: ServiceLevel,
    pub contact_policy: ContactPolicy,
    pub agent_policy: AgentPolicy,
    /// Steps ordered by `after`.
    pub relaxation: Vec<RelaxStep>,
    pub max_waiting: Option<u32>,
    pub when_full: WhenFull,
    /// After-contact work; zero sends the agent straight back to available.
    pub wrap_up: Duration,
    /// How long an offer rings before it is redirected (RONA).
    pub offer_timeout: Duration,
    /// How long a contact that names preferred agents waits for one of them
    /// before any qualified agent may take it.
    pub preferred_agent_window: Duration,
    /// Average handle time assumed for the estimated wait until the queue has
    /// a history of its own.
    pub expected_handle_time: Duration,
}

impl QueueConfig {
    pub fn new(name: &str) -> Self {
        QueueConfig {
            name: name.to_owned(),
            service_level: ServiceLevel { target: 0.8, threshold: Duration::from_secs(20) },
            contact_policy: ContactPolicy::TierAging,
            agent_policy: AgentPolicy::LongestIdle,
            relaxation: Vec::new(),
            max_waiting: None,
            when_full: WhenFull::Refuse,
            wrap_up: Duration::ZERO,
            offer_timeout: Duration::from_secs(20),
            preferred_agent_window: Duration::ZERO,
            expected_handle_time: Duration::from_secs(300),
        }
    }
}

/// One problem in a configuration, with the field it is about.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ConfigError {
    /// Path of the field, e.g. `queues[2].relaxation[0].action`.
    pub field: String,
    pub message: String,
}

/// All problems found in a configuration.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} configuration error(s)", self.0.len())?;
        for e in &self.0 {
            write!(f, "\n  {e}")?;
        }
        Ok(())
    }
}

impl RouterConfig {
    /// Checks every rule and returns all violations, not just the first.
    pub fn validate(&self) -> Result<(), ConfigErrors> {
        let mut errs = Vec::new();
        let mut err = |field: String, message: String| errs.push(ConfigError { field, message });

        if self.tiers.is_empty() {
            err("tiers".into(), "at least one tier is required".into());
        }
        if self.tiers.len() > usize::from(u8::MAX) {
            err("tiers".into(), format!("at most {} tiers", u8::MAX));
        }
        for (i, t) in self.tiers.iter().enumerate() {
            if t.name.is_empty() {
                err(format!("tiers[{i}].name"), "must not be empty".into());
            }
            if self.tiers[..i].iter().any(|o| o.name == t.name) {
                err(format!("tiers[{i}].name"), format!("duplicate tier name {:?}", t.name));
            }
            if t.aging_boost > Duration::from_secs(365 * 24 * 3600) {
                err(format!("tiers[{i}].aging_boost"), "must be at most one year".into());
            }
        }
        if !(1..=MAX_CONTACTS_LIMIT).contains(&self.max_contacts) {
            err("max_contacts".into(), format!("must be in 1..={MAX_CONTACTS_LIMIT}"));
        }
        if self.max_context_bytes > MAX_CONTEXT_BYTES_LIMIT {
            err("max_context_bytes".into(), format!("must be at most {MAX_CONTEXT_BYTES_LIMIT}"));
        }
        if self.queues.is_empty() {
            err("queues".into(), "at least one queue is required".into());
        }
        if self.queues.len() > usize::from(u16::MAX) {
            err("queues".into(), format!("at most {} queues", u16::MAX));
        }
        let nq = self.queues.len();
        let queue_ok = |q: QueueId| usize::from(q.0) < nq;
        for (i, q) in self.queues.iter().enumerate() {
            let at = |f: &str| format!("queues[{i}].{f}");
            if q.name.is_empty() {
                err(at("name"), "must not be empty".into());
            }
            if self.queues[..i].iter().any(|o| o.name == q.name) {
                err(at("name"), format!("duplicate queue name {:?}", q.name));
            }
            let sl = q.service_level;
            if !(sl.target > 0.0 && sl.target <= 1.0) {
                err(at("service_level.target"), format!("{} is not in (0, 1]", sl.target));
            }
            if sl.threshold.is_zero() {
                err(at("service_level.threshold"), "must be positive".into());
            }
            if q.offer_timeout.is_zero() {
                err(at("offer_timeout"), "must be positive".into());
            }
            if q.expected_handle_time.is_zero() {
                err(at("expected_handle_time"), "must be positive".into());
            }
            if q.max_waiting == Some(0) {
                err(at("max_waiting"), "must be at least 1 (omit it for no limit)".into());
            }
            if let WhenFull::OverflowTo(to) = q.when_full {
                if !queue_ok(to) {
                    err(at("when_full"), format!("overflow queue {} does not exist", to.0));
                } else if usize::from(to.0) == i {
                    err(at("when_full"), "a queue cannot overflow into itself".into());
                }
            }
            for (j, step) in q.relaxation.iter().enumerate() {
                let at = |f: &str| format!("queues[{i}].relaxation[{j}].{f}");
                if j > 0 && step.after < q.relaxation[j - 1].after {
                    err(at("after"), "steps must be in increasing order of `after`".into());
                }
                match step.action {
                    RelaxAction::MinProficiencyAtMost(p) if !(MIN_PROFICIENCY..=MAX_PROFICIENCY).contains(&p) => {
                        err(at("action"), format!("proficiency {p} is not in {MIN_PROFICIENCY}..={MAX_PROFICIENCY}"))
                    }
                    RelaxAction::OverflowTo(to) if !queue_ok(to) => {
                        err(at("overflow_to"), format!("overflow queue {} does not exist", to.0))
                    }
                    RelaxAction::OverflowTo(to) if usize::from(to.0) == i => {
                        err(at("overflow_to"), "a queue cannot overflow into itself".into())
                    }
                    _ => {}
                }
            }
        }
        for (field, cycle) in self.overflow_cycles() {
            let names: Vec<&str> = cycle.iter().map(|q| self.queues[usize::from(q.0)].name.as_str()).collect();
            let message = format!("overflow cycle {}: a contact would move round it for ever", names.join(" → "));
            err(field, message);
        }
        if self.ewt_window < Duration::from_secs(1) {
            err("ewt_window".into(), "must be at least 1 s".into());
        }
        if !(1..=MAX_OFFER_HISTORY).contains(&self.offer_history) {
            err("offer_history".into(), format!("must be in 1..={MAX_OFFER_HISTORY}"));
        }
        if errs.is_empty() {
            Ok(())
        } else {
            Err(ConfigErrors(errs))
        }
    }

    /// Each queue's overflows (relaxation steps and `when_full`) to another
    /// queue that exists, with the field that names it.
    fn overflows(&self) -> Vec<Vec<(QueueId, String)>> {
        let exists = |to: QueueId, i: usize| usize::from(to.0) < self.queues.len() && usize::from(to.0) != i;
        let mut edges = vec![Vec::new(); self.queues.len()];
        for (i, q) in self.queues.iter().enumerate() {
            for (j, step) in q.relaxation.iter().enumerate() {
                if let RelaxAction::OverflowTo(to) = step.action {
                    if exists(to, i) {
                        edges[i].push((to, format!("queues[{i}].relaxation[{j}].overflow_to")));
                    }
                }
            }
            if let WhenFull::OverflowTo(to) = q.when_full {
                if exists(to, i) {
                    edges[i].push((to, format!("queues[{i}].when_full")));
                }
            }
        }
        edges
    }

    /// The cycles of overflows (billing → general → billing), each once:
    /// the field of its first edge, and its queues from the lowest-numbered
    /// one back to it. Linear in queues and overflows per cycle found:
    /// queues that reach no cycle are peeled off (Kahn's algorithm), then a
    /// walk from what is left must come round.
    fn overflow_cycles(&self) -> Vec<(String, Vec<QueueId>)> {
        let edges = self.overflows();
        let n = edges.len();
        let mut into: Vec<Vec<usize>> = vec![Vec::new(); n];
        for (from, out) in edges.iter().enumerate() {
            for (to, _) in out {
                into[usize::from(to.0)].push(from);
            }
        }
        let mut gone = vec![false; n];
        let mut cycles = Vec::new();
        loop {
            // Peel the queues whose every overflow leads out of the rest.
            let mut out_degree: Vec<usize> =
                edges.iter().map(|out| out.iter().filter(|(to, _)| !gone[usize::from(to.0)]).count()).collect();
            let mut sinks: Vec<usize> = (0..n).filter(|&q| !gone[q] && out_degree[q] == 0).collect();
            let mut left = gone.clone();
            while let Some(q) = sinks.pop() {
                left[q] = true;
                for &from in &into[q] {
                    if !left[from] {
                        out_degree[from] -= 1;
                        if out_degree[from] == 0 {
                            sinks.push(from);
                        }
                    }
                }
            }
            // Every queue left overflows into another one left.
            let Some(start) = (0..n).find(|&q| !left[q]) else { return cycles };
            let mut seen_at = vec![usize::MAX; n];
            let mut walk = vec![start];
            let mut here = start;
            loop {
                seen_at[here] = walk.len() - 1;
                let next = edges[here].iter().map(|(to, _)| usize::from(to.0)).find(|&to| !left[to]);
                let Some(next) = next else { return cycles };
                if seen_at[next] != usize::MAX {
                    let mut cycle: Vec<usize> = walk[seen_at[next]..].to_vec();
                    let lowest = (0..cycle.len()).min_by_key(|&k| cycle[k]).unwrap_or(0);
                    cycle.rotate_left(lowest);
                    let (first, second) = (cycle[0], cycle.get(1).copied().unwrap_or(cycle[0]));
                    let field = edges[first]
                        .iter()
                        .find(|(to, _)| usize::from(to.0) == second)
                        .map_or_else(|| format!("queues[{first}]"), |(_, field)| field.clone());
                    for &q in &cycle {
                        gone[q] = true;
                    }
                    cycle.push(cycle[0]);
                    cycles.push((field, cycle.into_iter().map(|q| QueueId(q as u16)).collect()));
                    break;
                }
                walk.push(next);
                here = next;
            }
        }
    }
}
