//! Prometheus metrics: the names (a public interface: dashboards and alerts
//! depend on them), their handles registered once, and the `/metrics` page.
//!
//! No global recorder: a [`Metrics`] owns its Prometheus recorder, so several
//! daemons (tests) can live in one process. Label values come only from the
//! configuration (queues, tiers) or small fixed sets (outcome, state, role,
//! method, kind, reason) — never from client input.
//!
//! Who records what, off the routing thread's critical path:
//! - the core thread: `ccr_routing_decision_seconds` (an atomic histogram
//!   bucket per command; it never waits);
//! - the event dispatcher: `ccr_queue_wait_seconds`;
//! - stream tasks: `ccr_rpc_duration_seconds`, `ccr_protocol_errors_total`,
//!   `ccr_refused_total`; connection tasks: `ccr_connections`;
//! - a sampler task ([`sampler`]), once a second from the core's own
//!   counters: waiting, oldest wait, agents, `ccr_contacts_total`, service
//!   level over a window.
//!
//! [`exporter`] serves the page.

pub mod exporter;
pub mod health;
pub mod sampler;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use metrics::{Counter, Gauge, Histogram, Key, Label, Metadata, Recorder};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

use ccr_core::Time;
use ccr_proto::Method;

use crate::config::Catalog;

/// Every metric name ccrd exports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Name {
    QueueWaitSeconds,
    RoutingDecisionSeconds,
    RpcDurationSeconds,
    ContactsWaiting,
    OldestWaitSeconds,
    Agents,
    ContactsTotal,
    ServiceLevelRatio,
    ServiceLevelTargetRatio,
    Connections,
    ProtocolErrorsTotal,
    RefusedTotal,
    JournalBytesTotal,
    JournalFsyncSeconds,
    JournalSnapshotAgeSeconds,
    RecoveryDurationSeconds,
    CoreTimers,
    Sessions,
    ClusterRole,
    ClusterEpoch,
    ClusterLagRecords,
    ClusterLagSeconds,
    ClusterAppendSeconds,
    ClusterTakeoversTotal,
    RpcResultsTotal,
    AnsweredWithinThresholdTotal,
    JournalFailed,
    BuildInfo,
    AgentsBySkill,
}

impl Name {
    pub const ALL: [Name; 29] = [
        Name::QueueWaitSeconds,
        Name::RoutingDecisionSeconds,
        Name::RpcDurationSeconds,
        Name::ContactsWaiting,
        Name::OldestWaitSeconds,
        Name::Agents,
        Name::ContactsTotal,
        Name::ServiceLevelRatio,
        Name::ServiceLevelTargetRatio,
        Name::Connections,
        Name::ProtocolErrorsTotal,
        Name::RefusedTotal,
        Name::JournalBytesTotal,
        Name::JournalFsyncSeconds,
        Name::JournalSnapshotAgeSeconds,
        Name::RecoveryDurationSeconds,
        Name::CoreTimers,
        Name::Sessions,
        Name::ClusterRole,
        Name::ClusterEpoch,
        Name::ClusterLagRecords,
        Name::ClusterLagSeconds,
        Name::ClusterAppendSeconds,
        Name::ClusterTakeoversTotal,
        Name::RpcResultsTotal,
        Name::AnsweredWithinThresholdTotal,
        Name::JournalFailed,
        Name::BuildInfo,
        Name::AgentsBySkill,
    ];

    /// The HELP text of the metric.
    pub const fn help(self) -> &'static str {
        match self {
            Name::QueueWaitSeconds => "Time from arrival to offer (routed) or to hang-up (abandoned).",
            Name::RoutingDecisionSeconds => "Time the routing core spends on one command.",
            Name::RpcDurationSeconds => {
                "Server-side time per call; per command on Gateway/Stream, under the command's own method."
            }
            Name::ContactsWaiting => "Contacts waiting to be offered.",
            Name::OldestWaitSeconds => "Longest current wait, since original arrival.",
            Name::Agents => "Logged-in agents by state (an agent belongs to no queue: each counted once).",
            Name::ContactsTotal => "Contacts by outcome.",
            Name::ServiceLevelRatio => "Answered within the threshold over answered plus abandoned, over the window.",
            Name::ServiceLevelTargetRatio => "Configured service-level target.",
            Name::Connections => "Open QUIC connections by client role.",
            Name::ProtocolErrorsTotal => "Streams refused for breaking the protocol.",
            Name::RefusedTotal => "Connections and calls refused by admission control.",
            Name::JournalBytesTotal => "Bytes appended to the journal.",
            Name::JournalFsyncSeconds => "Time per journal fdatasync (one covers a whole group of commands).",
            Name::JournalSnapshotAgeSeconds => "Time since the last durable snapshot (what a restart would replay).",
            Name::RecoveryDurationSeconds => {
                "Time the last start spent loading the snapshot and replaying the journal."
            }
            Name::CoreTimers => {
                "Wake-ups the routing core holds (offer expiries, relaxation steps, callbacks, wrap-ups)."
            }
            Name::Sessions => "Client sessions the core knows: live, or lost and within their grace.",
            Name::ClusterRole => "1 for this node's role in its cluster (active or standby), 0 for the other.",
            Name::ClusterEpoch => "The epoch of the active this node knows of (the leader key's create-revision).",
            Name::ClusterLagRecords => "Journal records in etcd a standby has seen and not yet applied.",
            Name::ClusterLagSeconds => "How long the oldest batch a standby has not yet applied has waited.",
            Name::ClusterAppendSeconds => "Time from a journal batch sent to etcd to its acknowledgement.",
            Name::ClusterTakeoversTotal => "Times this node took over as the active.",
            Name::RpcResultsTotal => "Calls (and Gateway/Stream commands) by method and gRPC status code.",
            Name::AnsweredWithinThresholdTotal => {
                "Contacts answered within their queue's service-level threshold (the service level's numerator)."
            }
            Name::JournalFailed => "1 once the journal failed: nothing more is acknowledged; ccrd stops or demotes.",
            Name::BuildInfo => "Always 1; the version in its label.",
            Name::AgentsBySkill => {
                "Logged-in agents holding each skill, by state (an agent counts under each of its skills)."
            }
        }
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Name::QueueWaitSeconds => "ccr_queue_wait_seconds",
            Name::RoutingDecisionSeconds => "ccr_routing_decision_seconds",
            Name::RpcDurationSeconds => "ccr_rpc_duration_seconds",
            Name::ContactsWaiting => "ccr_contacts_waiting",
            Name::OldestWaitSeconds => "ccr_oldest_wait_seconds",
            Name::Agents => "ccr_agents",
            Name::ContactsTotal => "ccr_contacts_total",
            Name::ServiceLevelRatio => "ccr_service_level_ratio",
            Name::ServiceLevelTargetRatio => "ccr_service_level_target_ratio",
            Name::Connections => "ccr_connections",
            Name::ProtocolErrorsTotal => "ccr_protocol_errors_total",
            Name::RefusedTotal => "ccr_refused_total",
            Name::JournalBytesTotal => "ccr_journal_bytes_total",
            Name::JournalFsyncSeconds => "ccr_journal_fsync_seconds",
            Name::JournalSnapshotAgeSeconds => "ccr_journal_snapshot_age_seconds",
            Name::RecoveryDurationSeconds => "ccr_recovery_duration_seconds",
            Name::CoreTimers => "ccr_core_timers",
            Name::Sessions => "ccr_sessions",
            Name::ClusterRole => "ccr_cluster_role",
            Name::ClusterEpoch => "ccr_cluster_epoch",
            Name::ClusterLagRecords => "ccr_cluster_replication_lag_records",
            Name::ClusterLagSeconds => "ccr_cluster_replication_lag_seconds",
            Name::ClusterAppendSeconds => "ccr_cluster_append_seconds",
            Name::ClusterTakeoversTotal => "ccr_cluster_takeovers_total",
            Name::RpcResultsTotal => "ccr_rpc_results_total",
            Name::AnsweredWithinThresholdTotal => "ccr_answered_within_threshold_total",
            Name::JournalFailed => "ccr_journal_failed",
            Name::BuildInfo => "ccr_build_info",
            Name::AgentsBySkill => "ccr_agents_by_skill",
        }
    }
}

/// `ccr_contacts_total` outcomes: `routed` counts offers (re-offers after
/// RONA included), `answered` offers accepted.
pub const OUTCOMES: [&str; 7] =
    ["routed", "answered", "abandoned", "short_abandoned", "transferred", "overflowed", "rona"];
/// `ccr_rpc_results_total` codes: the gRPC status codes by their canonical names.
pub const CODES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];
/// `ccr_connections` roles.
pub const ROLES: [&str; 5] = ["gateway", "agent", "admin", "supervisor", "any"];

/// Why a stream was refused for breaking the protocol
/// (`ccr_protocol_errors_total{kind}`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ProtocolError {
    BadHeader,
    BadFrame,
    TooLarge,
    UnknownMethod,
}

impl ProtocolError {
    pub const ALL: [ProtocolError; 4] =
        [ProtocolError::BadHeader, ProtocolError::BadFrame, ProtocolError::TooLarge, ProtocolError::UnknownMethod];

    pub const fn label(self) -> &'static str {
        match self {
            ProtocolError::BadHeader => "bad_header",
            ProtocolError::BadFrame => "bad_frame",
            ProtocolError::TooLarge => "too_large",
            ProtocolError::UnknownMethod => "unknown_method",
        }
    }
}

/// Why admission control refused a connection or a call
/// (`ccr_refused_total{reason}`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Refusal {
    ConnectionLimit,
    NoRole,
    /// Handshakes refused: no client certificate, one from another CA, an
    /// expired one, any other unacceptable one.
    NoCertificate,
    UnknownCa,
    CertificateExpired,
    BadCertificate,
    PendingLimit,
    StreamLimit,
    SubscriptionLimit,
    ContactLimit,
    ContextLimit,
    MetricsLimit,
}

impl Refusal {
    pub const ALL: [Refusal; 12] = [
        Refusal::ConnectionLimit,
        Refusal::NoRole,
        Refusal::NoCertificate,
        Refusal::UnknownCa,
        Refusal::CertificateExpired,
        Refusal::BadCertificate,
        Refusal::PendingLimit,
        Refusal::StreamLimit,
        Refusal::SubscriptionLimit,
        Refusal::ContactLimit,
        Refusal::ContextLimit,
        Refusal::MetricsLimit,
    ];

    pub const fn label(self) -> &'static str {
        match self {
            Refusal::ConnectionLimit => "connection_limit",
            Refusal::NoRole => "no_role",
            Refusal::NoCertificate => "no_certificate",
            Refusal::UnknownCa => "unknown_ca",
            Refusal::CertificateExpired => "certificate_expired",
            Refusal::BadCertificate => "bad_certificate",
            Refusal::PendingLimit => "pending_limit",
            Refusal::StreamLimit => "stream_limit",
            Refusal::SubscriptionLimit => "subscription_limit",
            Refusal::ContactLimit => "contact_limit",
            Refusal::ContextLimit => "context_limit",
            Refusal::MetricsLimit => "metrics_limit",
        }
    }

    /// The refusal a core error stands for, if it is one of the limits.
    pub fn of_command_error(e: &ccr_core::CommandError) -> Option<Refusal> {
        match e {
            ccr_core::CommandError::TooManyContacts { .. } => Some(Refusal::ContactLimit),
            ccr_core::CommandError::ContextTooLarge { .. } => Some(Refusal::ContextLimit),
            _ => None,
        }
    }
}

static METADATA: Metadata<'static> = Metadata::new(module_path!(), metrics::Level::INFO, Some(module_path!()));

fn key(name: Name, labels: &[(&'static str, String)]) -> Key {
    Key::from_parts(name.as_str(), labels.iter().map(|(k, v)| Label::new(*k, v.clone())).collect::<Vec<_>>())
}

/// Handles of one queue.
pub struct QueueMetrics {
    /// Per tier: routed and abandoned waits.
    pub wait_routed: Vec<Histogram>,
    pub wait_abandoned: Vec<Histogram>,
    pub waiting: Vec<Gauge>,
    pub oldest_wait: Gauge,
    pub contacts: HashMap<&'static str, Counter>,
    pub service_level: Gauge,
    pub service_level_target: Gauge,
    pub answered_in_threshold: Counter,
}

pub struct Metrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    pub queues: Vec<QueueMetrics>,
    /// Logged-in agents by state: ccr routes by skill, so an agent belongs
    /// to no queue and is counted once.
    pub agents: Vec<Gauge>,
    /// By skill id, then state.
    pub agents_by_skill: Vec<Vec<Gauge>>,
    pub decision: Histogram,
    /// By [`Method`] (its discriminant).
    rpc: Vec<Histogram>,
    rpc_unknown: Histogram,
    /// By [`Method`], then code; the last row for unknown methods.
    rpc_results: Vec<Vec<Counter>>,
    pub journal_failed: Gauge,
    /// The process's own (CPU, memory, file descriptors, start time), read
    /// at each scrape.
    process: metrics_process::Collector,
    pub connections: HashMap<&'static str, Gauge>,
    protocol_errors: Vec<Counter>,
    refused: Vec<Counter>,
    pub journal_bytes: Counter,
    pub journal_fsync: Histogram,
    pub snapshot_age: Gauge,
    pub recovery_duration: Gauge,
    pub core_timers: Gauge,
    /// Live, then in grace.
    pub sessions: [Gauge; 2],
    /// Registered only in a cluster.
    pub cluster: Option<ClusterMetrics>,
    /// What `/readyz` answers.
    pub readiness: health::Readiness,
    /// Each queue's figures over the service-level window, as last sampled.
    pub window: LatestWindow,
}

/// A cluster node's metrics (docs/HA.md).
#[derive(Clone)]
pub struct ClusterMetrics {
    pub active: Gauge,
    pub standby: Gauge,
    pub epoch: Gauge,
    pub lag_records: Gauge,
    pub lag_seconds: Gauge,
    pub append: Histogram,
    pub takeovers: Counter,
}

impl ClusterMetrics {
    pub fn set_active(&self, active: bool) {
        self.active.set(f64::from(u8::from(active)));
        self.standby.set(f64::from(u8::from(!active)));
    }
}

impl Metrics {
    pub fn new(catalog: &Catalog) -> Arc<Metrics> {
        Self::build(catalog, false)
    }

    /// [`Metrics::new`] with the cluster's metrics registered too.
    pub fn for_cluster(catalog: &Catalog) -> Arc<Metrics> {
        Self::build(catalog, true)
    }

    fn build(catalog: &Catalog, cluster: bool) -> Arc<Metrics> {
        let wait_buckets = [0.1, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0];
        let decision_buckets = [1e-7, 2.5e-7, 5e-7, 1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 1e-4, 1e-3, 1e-2];
        let fsync_buckets = [1e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 0.1, 1.0];
        let rpc_buckets = [5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 0.1, 1.0];
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(Name::QueueWaitSeconds.as_str().into()), &wait_buckets)
            .and_then(|b| {
                b.set_buckets_for_metric(Matcher::Full(Name::RoutingDecisionSeconds.as_str().into()), &decision_buckets)
            })
            .and_then(|b| {
                b.set_buckets_for_metric(Matcher::Full(Name::RpcDurationSeconds.as_str().into()), &rpc_buckets)
            })
            .and_then(|b| {
                b.set_buckets_for_metric(Matcher::Full(Name::JournalFsyncSeconds.as_str().into()), &fsync_buckets)
            })
            .and_then(|b| {
                b.set_buckets_for_metric(Matcher::Full(Name::ClusterAppendSeconds.as_str().into()), &fsync_buckets)
            })
            .expect("bucket lists are non-empty")
            .build_recorder();
        let handle = recorder.handle();
        for name in Name::ALL {
            let unit = name.as_str().ends_with("_seconds").then_some(metrics::Unit::Seconds);
            let (key, help) = (metrics::KeyName::from_const_str(name.as_str()), name.help().into());
            match name {
                Name::QueueWaitSeconds
                | Name::RoutingDecisionSeconds
                | Name::RpcDurationSeconds
                | Name::JournalFsyncSeconds
                | Name::ClusterAppendSeconds => recorder.describe_histogram(key, unit, help),
                Name::ContactsTotal
                | Name::ProtocolErrorsTotal
                | Name::RefusedTotal
                | Name::JournalBytesTotal
                | Name::ClusterTakeoversTotal
                | Name::RpcResultsTotal
                | Name::AnsweredWithinThresholdTotal => recorder.describe_counter(key, unit, help),
                _ => recorder.describe_gauge(key, unit, help),
            }
        }
        let counter =
            |name, labels: &[(&'static str, String)]| recorder.register_counter(&key(name, labels), &METADATA);
        let gauge = |name, labels: &[(&'static str, String)]| recorder.register_gauge(&key(name, labels), &METADATA);
        let histogram =
            |name, labels: &[(&'static str, String)]| recorder.register_histogram(&key(name, labels), &METADATA);
        let states = ccr_core::AgentState::NAMES;
        let queues = catalog
            .queues
            .iter()
            .map(|q| {
                let per_tier = |outcome: &str| {
                    catalog
                        .tiers
                        .iter()
                        .map(|t| {
                            histogram(
                                Name::QueueWaitSeconds,
                                &[("queue", q.clone()), ("tier", t.clone()), ("outcome", outcome.to_owned())],
                            )
                        })
                        .collect()
                };
                QueueMetrics {
                    wait_routed: per_tier("routed"),
                    wait_abandoned: per_tier("abandoned"),
                    waiting: catalog
                        .tiers
                        .iter()
                        .map(|t| gauge(Name::ContactsWaiting, &[("queue", q.clone()), ("tier", t.clone())]))
                        .collect(),
                    oldest_wait: gauge(Name::OldestWaitSeconds, &[("queue", q.clone())]),
                    contacts: OUTCOMES
                        .iter()
                        .map(|o| {
                            (*o, counter(Name::ContactsTotal, &[("queue", q.clone()), ("outcome", (*o).to_owned())]))
                        })
                        .collect(),
                    service_level: gauge(Name::ServiceLevelRatio, &[("queue", q.clone())]),
                    service_level_target: gauge(Name::ServiceLevelTargetRatio, &[("queue", q.clone())]),
                    answered_in_threshold: counter(Name::AnsweredWithinThresholdTotal, &[("queue", q.clone())]),
                }
            })
            .collect();
        let rpc = Method::ALL
            .iter()
            .map(|m| histogram(Name::RpcDurationSeconds, &[("method", m.path().to_owned())]))
            .collect();
        let rpc_unknown = histogram(Name::RpcDurationSeconds, &[("method", "unknown".to_owned())]);
        let paths = Method::ALL.iter().map(|m| m.path()).chain(["unknown"]);
        let rpc_results = paths
            .map(|path| {
                CODES
                    .iter()
                    .map(|code| {
                        counter(Name::RpcResultsTotal, &[("method", path.to_owned()), ("code", (*code).to_owned())])
                    })
                    .collect()
            })
            .collect();
        let journal_failed = gauge(Name::JournalFailed, &[]);
        journal_failed.set(0.0);
        gauge(Name::BuildInfo, &[("version", env!("CARGO_PKG_VERSION").to_owned())]).set(1.0);
        let process = metrics_process::Collector::default();
        metrics::with_local_recorder(&recorder, || process.describe());
        let connections = ROLES.iter().map(|r| (*r, gauge(Name::Connections, &[("role", (*r).to_owned())]))).collect();
        let protocol_errors = ProtocolError::ALL
            .iter()
            .map(|k| counter(Name::ProtocolErrorsTotal, &[("kind", k.label().to_owned())]))
            .collect();
        let refused =
            Refusal::ALL.iter().map(|r| counter(Name::RefusedTotal, &[("reason", r.label().to_owned())])).collect();
        let decision = histogram(Name::RoutingDecisionSeconds, &[]);
        let agents = states.iter().map(|s| gauge(Name::Agents, &[("state", (*s).to_owned())])).collect();
        let agents_by_skill = catalog
            .skills
            .iter()
            .map(|k| {
                states
                    .iter()
                    .map(|s| gauge(Name::AgentsBySkill, &[("skill", k.clone()), ("state", (*s).to_owned())]))
                    .collect()
            })
            .collect();
        let (journal_bytes, journal_fsync) =
            (counter(Name::JournalBytesTotal, &[]), histogram(Name::JournalFsyncSeconds, &[]));
        let (snapshot_age, recovery_duration) =
            (gauge(Name::JournalSnapshotAgeSeconds, &[]), gauge(Name::RecoveryDurationSeconds, &[]));
        let core_timers = gauge(Name::CoreTimers, &[]);
        let sessions = ["live", "in_grace"].map(|s| gauge(Name::Sessions, &[("state", s.to_owned())]));
        let cluster = cluster.then(|| {
            let metrics = ClusterMetrics {
                active: gauge(Name::ClusterRole, &[("role", "active".to_owned())]),
                standby: gauge(Name::ClusterRole, &[("role", "standby".to_owned())]),
                epoch: gauge(Name::ClusterEpoch, &[]),
                lag_records: gauge(Name::ClusterLagRecords, &[]),
                lag_seconds: gauge(Name::ClusterLagSeconds, &[]),
                append: histogram(Name::ClusterAppendSeconds, &[]),
                takeovers: counter(Name::ClusterTakeoversTotal, &[]),
            };
            metrics.set_active(false);
            metrics.takeovers.increment(0);
            metrics
        });
        Arc::new(Metrics {
            recorder,
            handle,
            queues,
            agents,
            agents_by_skill,
            decision,
            rpc,
            rpc_unknown,
            rpc_results,
            journal_failed,
            process,
            connections,
            protocol_errors,
            refused,
            journal_bytes,
            journal_fsync,
            snapshot_age,
            recovery_duration,
            core_timers,
            sessions,
            cluster,
            readiness: health::Readiness::default(),
            window: LatestWindow::default(),
        })
    }

    /// The call-duration histogram of a method (`unknown` for one that is not ours).
    pub fn rpc(&self, method: Option<Method>) -> &Histogram {
        method.map_or(&self.rpc_unknown, |m| &self.rpc[m as usize])
    }

    /// Counts a call's (or a stream command's) result.
    pub fn rpc_result(&self, method: Option<Method>, code: ccr_proto::wire::Code) {
        let row = method.map_or(self.rpc_results.len() - 1, |m| m as usize);
        self.rpc_results[row][code as usize].increment(1);
    }

    pub fn protocol_error(&self, kind: ProtocolError) {
        self.protocol_errors[kind as usize].increment(1);
    }

    pub fn refusal(&self, reason: Refusal) {
        self.refused[reason as usize].increment(1);
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        metrics::with_local_recorder(&self.recorder, || self.process.collect());
        self.handle.render()
    }
}

/// A queue's cumulative counters: answered within the threshold, answered,
/// abandoned (short abandons left out).
pub type Totals = (u64, u64, u64);

/// A queue's figures over the service-level window.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct WindowFigures {
    pub answered: u64,
    pub abandoned: u64,
    /// Answered within the threshold ÷ (answered + abandoned); `None` when
    /// neither happened in the window.
    pub service_level: Option<f64>,
}

/// Service level over a rolling window, from the core's cumulative counters.
pub struct ServiceLevelWindow {
    window: Duration,
    /// (when, each queue's totals).
    samples: VecDeque<(Time, Vec<Totals>)>,
}

impl ServiceLevelWindow {
    pub fn new(window: Duration) -> Self {
        ServiceLevelWindow { window, samples: VecDeque::new() }
    }

    /// Adds a sample and returns each queue's figures over the window.
    pub fn update(&mut self, now: Time, totals: Vec<Totals>) -> Vec<WindowFigures> {
        while self.samples.len() > 1 && now.since(self.samples[1].0) >= self.window {
            self.samples.pop_front();
        }
        let oldest = self.samples.front().map(|(_, s)| s.clone());
        self.samples.push_back((now, totals.clone()));
        totals
            .iter()
            .enumerate()
            .map(|(i, &(good, answered, abandoned))| {
                let (good0, answered0, abandoned0) =
                    oldest.as_ref().and_then(|o| o.get(i).copied()).unwrap_or_default();
                let good = good.saturating_sub(good0);
                let (answered, abandoned) = (answered.saturating_sub(answered0), abandoned.saturating_sub(abandoned0));
                let all = answered + abandoned;
                WindowFigures { answered, abandoned, service_level: (all > 0).then(|| good as f64 / all as f64) }
            })
            .collect()
    }
}

/// The latest window figures, for `Admin/Queues`: the window's length and
/// each queue's figures, set by the sampler.
#[derive(Default)]
pub struct LatestWindow(std::sync::Mutex<(Duration, Vec<WindowFigures>)>);

impl LatestWindow {
    pub fn set(&self, window: Duration, figures: Vec<WindowFigures>) {
        *self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = (window, figures);
    }

    pub fn get(&self) -> (Duration, Vec<WindowFigures>) {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }
}
