//! The routing configuration as journal format 3 and snapshot format 13
//! write it (a `Restart` or `Reconfigure` record, a snapshot's header).

use std::time::Duration;

use ccr_core::{
    AgentPolicy, ContactPolicy, QueueConfig, QueueId, RelaxAction, RelaxStep, RouterConfig, ServiceLevel, TierConfig,
    WhenFull,
};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Config {
    pub tiers: Vec<Tier>,
    pub queues: Vec<Queue>,
    pub short_abandon: Duration,
    pub explain: bool,
    pub offer_history: u64,
    pub ewt_window: Duration,
    pub session_grace: Duration,
    pub max_contacts: u32,
    pub max_context_entries: u16,
    pub max_context_bytes: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Tier {
    pub name: String,
    pub aging_boost: Duration,
    pub answer_target: Option<Duration>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Queue {
    pub name: String,
    pub service_level_target: f64,
    pub service_level_threshold: Duration,
    pub contact_policy: ContactPolicyV,
    pub agent_policy: AgentPolicyV,
    pub relaxation: Vec<Relax>,
    pub max_waiting: Option<u32>,
    pub when_full: WhenFullV,
    pub wrap_up: Duration,
    pub offer_timeout: Duration,
    pub preferred_agent_window: Duration,
    pub expected_handle_time: Duration,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum ContactPolicyV {
    StrictTier,
    TierAging,
    EarliestDeadline,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum AgentPolicyV {
    LongestIdle,
    MostProficient,
    LeastOccupied,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Relax {
    pub after: Duration,
    pub action: RelaxActionV,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum RelaxActionV {
    MinProficiencyAtMost(u8),
    NextLanguage,
    AnyLanguage,
    OverflowTo(QueueId),
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum WhenFullV {
    Refuse,
    OverflowTo(QueueId),
}

impl From<&RouterConfig> for Config {
    fn from(c: &RouterConfig) -> Config {
        Config {
            tiers: c
                .tiers
                .iter()
                .map(|t| Tier { name: t.name.clone(), aging_boost: t.aging_boost, answer_target: t.answer_target })
                .collect(),
            queues: c.queues.iter().map(Queue::from).collect(),
            short_abandon: c.short_abandon,
            explain: c.explain,
            offer_history: c.offer_history as u64,
            ewt_window: c.ewt_window,
            session_grace: c.session_grace,
            max_contacts: c.max_contacts,
            max_context_entries: c.max_context_entries,
            max_context_bytes: c.max_context_bytes,
        }
    }
}

impl From<&QueueConfig> for Queue {
    fn from(q: &QueueConfig) -> Queue {
        Queue {
            name: q.name.clone(),
            service_level_target: q.service_level.target,
            service_level_threshold: q.service_level.threshold,
            contact_policy: match q.contact_policy {
                ContactPolicy::StrictTier => ContactPolicyV::StrictTier,
                ContactPolicy::TierAging => ContactPolicyV::TierAging,
                ContactPolicy::EarliestDeadline => ContactPolicyV::EarliestDeadline,
            },
            agent_policy: match q.agent_policy {
                AgentPolicy::LongestIdle => AgentPolicyV::LongestIdle,
                AgentPolicy::MostProficient => AgentPolicyV::MostProficient,
                AgentPolicy::LeastOccupied => AgentPolicyV::LeastOccupied,
            },
            relaxation: q
                .relaxation
                .iter()
                .map(|s| Relax {
                    after: s.after,
                    action: match s.action {
                        RelaxAction::MinProficiencyAtMost(p) => RelaxActionV::MinProficiencyAtMost(p),
                        RelaxAction::NextLanguage => RelaxActionV::NextLanguage,
                        RelaxAction::AnyLanguage => RelaxActionV::AnyLanguage,
                        RelaxAction::OverflowTo(q) => RelaxActionV::OverflowTo(q),
                    },
                })
                .collect(),
            max_waiting: q.max_waiting,
            when_full: match q.when_full {
                WhenFull::Refuse => WhenFullV::Refuse,
                WhenFull::OverflowTo(q) => WhenFullV::OverflowTo(q),
            },
            wrap_up: q.wrap_up,
            offer_timeout: q.offer_timeout,
            preferred_agent_window: q.preferred_agent_window,
            expected_handle_time: q.expected_handle_time,
        }
    }
}

impl From<Config> for RouterConfig {
    fn from(c: Config) -> RouterConfig {
        RouterConfig {
            tiers: c
                .tiers
                .into_iter()
                .map(|t| TierConfig { name: t.name, aging_boost: t.aging_boost, answer_target: t.answer_target })
                .collect(),
            queues: c.queues.into_iter().map(QueueConfig::from).collect(),
            short_abandon: c.short_abandon,
            explain: c.explain,
            // Past the address space only on a damaged file, which the
            // configuration's own validation then refuses.
            offer_history: usize::try_from(c.offer_history).unwrap_or(usize::MAX),
            ewt_window: c.ewt_window,
            session_grace: c.session_grace,
            max_contacts: c.max_contacts,
            max_context_entries: c.max_context_entries,
            max_context_bytes: c.max_context_bytes,
        }
    }
}

impl From<Queue> for QueueConfig {
    fn from(q: Queue) -> QueueConfig {
        QueueConfig {
            name: q.name,
            service_level: ServiceLevel { target: q.service_level_target, threshold: q.service_level_threshold },
            contact_policy: match q.contact_policy {
                ContactPolicyV::StrictTier => ContactPolicy::StrictTier,
                ContactPolicyV::TierAging => ContactPolicy::TierAging,
                ContactPolicyV::EarliestDeadline => ContactPolicy::EarliestDeadline,
            },
            agent_policy: match q.agent_policy {
                AgentPolicyV::LongestIdle => AgentPolicy::LongestIdle,
                AgentPolicyV::MostProficient => AgentPolicy::MostProficient,
                AgentPolicyV::LeastOccupied => AgentPolicy::LeastOccupied,
            },
            relaxation: q
                .relaxation
                .into_iter()
                .map(|s| RelaxStep {
                    after: s.after,
                    action: match s.action {
                        RelaxActionV::MinProficiencyAtMost(p) => RelaxAction::MinProficiencyAtMost(p),
                        RelaxActionV::NextLanguage => RelaxAction::NextLanguage,
                        RelaxActionV::AnyLanguage => RelaxAction::AnyLanguage,
                        RelaxActionV::OverflowTo(q) => RelaxAction::OverflowTo(q),
                    },
                })
                .collect(),
            max_waiting: q.max_waiting,
            when_full: match q.when_full {
                WhenFullV::Refuse => WhenFull::Refuse,
                WhenFullV::OverflowTo(q) => WhenFull::OverflowTo(q),
            },
            wrap_up: q.wrap_up,
            offer_timeout: q.offer_timeout,
            preferred_agent_window: q.preferred_agent_window,
            expected_handle_time: q.expected_handle_time,
        }
    }
}
