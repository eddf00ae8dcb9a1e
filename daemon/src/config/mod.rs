//! ccrd's configuration: TOML in, a validated [`Config`] out.
//!
//! Parsing goes raw TOML → [`RawConfig`] (serde, unknown fields refused) →
//! [`Config`]: names resolved to the core's ids through a [`Catalog`], then
//! the core's own validation. Every problem found is returned, each with the
//! field it is about and, where the file has it, the line.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use ccr_core::{
    AgentPolicy, ContactPolicy, LanguageId, QueueConfig, QueueId, RelaxAction, RelaxStep, RouterConfig, ServiceLevel,
    SkillId, TierConfig, TierId, WhenFull,
};
use serde::Deserialize;
use toml::Spanned;

use crate::journal::{FsyncPolicy, JournalOptions};

pub mod document;
use document::{Checker, Document};

/// The largest `server.max_message_bytes`: a command decoded from one
/// message is journaled as one record, and recovery takes a record over
/// [`crate::journal::MAX_RECORD_LEN`] for damage, so a message stays well
/// inside it.
pub const MAX_MESSAGE_BYTES: usize = crate::journal::MAX_RECORD_LEN / 4;

/// The configuration ccrd starts with when given none.
pub const DEFAULT_CONFIG: &str = include_str!("../../../deploy/ccrd.example.toml");

/// One problem, located.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub field: String,
    /// 1-based line in the file, when known.
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "line {line}: {}: {}", self.field, self.message),
            None => write!(f, "{}: {}", self.field, self.message),
        }
    }
}

/// Everything wrong with a configuration file.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError(pub Vec<Problem>);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} problem(s) in the configuration", self.0.len())?;
        for p in &self.0 {
            write!(f, "\n  {p}")?;
        }
        Ok(())
    }
}

/// Names ↔ the core's small ids. Clients speak names; the core speaks ids.
#[derive(Clone, Debug, Default)]
pub struct Catalog {
    pub skills: Vec<String>,
    pub languages: Vec<String>,
    pub queues: Vec<String>,
    pub tiers: Vec<String>,
    skill_ids: HashMap<String, SkillId>,
    language_ids: HashMap<String, LanguageId>,
    queue_ids: HashMap<String, QueueId>,
    tier_ids: HashMap<String, TierId>,
}

impl Catalog {
    fn new(skills: Vec<String>, languages: Vec<String>, queues: Vec<String>, tiers: Vec<String>) -> Self {
        let index = |names: &[String]| names.iter().enumerate().map(|(i, n)| (n.clone(), i)).collect::<HashMap<_, _>>();
        Catalog {
            skill_ids: index(&skills).into_iter().map(|(n, i)| (n, SkillId(i as u16))).collect(),
            language_ids: index(&languages).into_iter().map(|(n, i)| (n, LanguageId(i as u16))).collect(),
            queue_ids: index(&queues).into_iter().map(|(n, i)| (n, QueueId(i as u16))).collect(),
            tier_ids: index(&tiers).into_iter().map(|(n, i)| (n, TierId(i as u8))).collect(),
            skills,
            languages,
            queues,
            tiers,
        }
    }

    pub fn skill(&self, name: &str) -> Option<SkillId> {
        self.skill_ids.get(name).copied()
    }
    pub fn language(&self, name: &str) -> Option<LanguageId> {
        self.language_ids.get(name).copied()
    }
    pub fn queue(&self, name: &str) -> Option<QueueId> {
        self.queue_ids.get(name).copied()
    }
    pub fn tier(&self, name: &str) -> Option<TierId> {
        self.tier_ids.get(name).copied()
    }
    pub fn queue_name(&self, id: QueueId) -> &str {
        self.queues.get(usize::from(id.0)).map_or("?", String::as_str)
    }
    pub fn tier_name(&self, id: TierId) -> &str {
        self.tiers.get(usize::from(id.0)).map_or("?", String::as_str)
    }
}

/// Server-side settings.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub metrics_listen: SocketAddr,
    pub data_dir: PathBuf,
    pub max_connections: usize,
    pub max_streams_per_connection: u32,
    pub max_message_bytes: usize,
    /// Calls waiting for the routing core at once, over all connections,
    /// and the bytes of their requests.
    pub max_pending_requests: usize,
    pub max_pending_bytes: usize,
    /// Events buffered for one `Events/Subscribe` stream; a subscriber that
    /// falls further behind is dropped with RESOURCE_EXHAUSTED.
    pub subscriber_buffer: usize,
    /// `Events/Subscribe` streams open at once, in all and per connection.
    pub max_subscriptions: usize,
    pub max_subscriptions_per_connection: u32,
    /// `/metrics` connections served at once; more are closed unanswered.
    pub max_metrics_connections: usize,
    /// A connection silent this long is closed; ccrd pings each a third as
    /// often, so only a client that is gone goes silent.
    pub idle_timeout: Duration,
    /// Bytes of events waiting in all subscribers' queues; a subscriber whose
    /// next event would go over is dropped, as one that falls behind.
    pub max_queued_event_bytes: usize,
    /// Events the core has sent that the dispatcher has yet to take; while
    /// more wait, calls are refused (the core never waits for the dispatcher).
    pub max_event_backlog: usize,
    /// How long the core thread keeps polling for work before it parks.
    pub core_spin: Duration,
    /// Window of `ccr_service_level_ratio`.
    pub service_level_window: Duration,
    /// Time every routing command for `ccr_routing_decision_seconds` (two
    /// clock reads and an atomic add per command on the routing thread).
    pub decision_timing: bool,
    /// The file this configuration came from, for `Admin/ReloadConfig`
    /// (set by ccrd, not read from the file).
    pub config_path: Option<PathBuf>,
}

/// Certificates. Without `cert`/`key`, a self-signed pair is generated in the
/// data directory; with `client_ca`, clients must present a certificate it
/// issued, whose subject OU (gateway, agent, admin) is their role.
#[derive(Clone, Debug, Default)]
pub struct TlsConfig {
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub client_ca: Option<PathBuf>,
    /// Where each was set, for the problems found in the files.
    pub lines: TlsLines,
}

#[derive(Clone, Debug, Default)]
pub struct TlsLines {
    pub cert: Option<usize>,
    pub key: Option<usize>,
    pub client_ca: Option<usize>,
}

/// Durability (see [`crate::journal`]). Without it, a restart forgets every
/// contact and agent.
#[derive(Clone, Debug)]
pub struct JournalConfig {
    pub enabled: bool,
    pub options: JournalOptions,
}

impl Default for JournalConfig {
    fn default() -> Self {
        JournalConfig { enabled: true, options: JournalOptions::default() }
    }
}

/// High availability on etcd (docs/HA.md): without it, one ccrd with its
/// local journal.
#[derive(Clone, Debug)]
pub struct ClusterConfig {
    /// The cluster's name: its keys in etcd are under `/ccr/<name>/`.
    pub name: String,
    /// The partition this node routes (one leader and journal each).
    pub partition: String,
    /// This node's name, unique in the cluster.
    pub node: String,
    /// Where clients reach this node (a standby names the active's).
    pub advertise: SocketAddr,
    /// etcd's client endpoints (`host:port`, or `https://host:port`).
    pub etcd: Vec<String>,
    pub etcd_tls: Option<EtcdTls>,
    /// How long the active's leadership outlives its last keep-alive: the
    /// longest a standby waits after the active dies (whole seconds).
    pub lease_ttl: Duration,
    /// Journal batches written to etcd at once.
    pub append_depth: usize,
    /// Largest journal batch sent to etcd in one write (under etcd's
    /// `--max-request-bytes`).
    pub max_batch_bytes: usize,
    /// How long the journal in etcd waits for a node that stopped
    /// reporting its snapshots before it drops what only that node needs.
    pub retention: Duration,
    /// How often the active deletes what every node's snapshot covers.
    pub prune_interval: Duration,
}

/// TLS to etcd (PEM files): its CA, and this node's certificate and key
/// when etcd asks for one.
#[derive(Clone, Debug)]
pub struct EtcdTls {
    pub ca: PathBuf,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

/// A validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    pub server: ServerConfig,
    pub tls: TlsConfig,
    pub journal: JournalConfig,
    pub cluster: Option<ClusterConfig>,
    pub router: RouterConfig,
    pub catalog: Catalog,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawServer {
    listen: Option<Spanned<String>>,
    metrics_listen: Option<Spanned<String>>,
    data_dir: Option<String>,
    max_connections: Option<Spanned<usize>>,
    max_streams_per_connection: Option<Spanned<u32>>,
    max_message_bytes: Option<Spanned<usize>>,
    gateway_grace: Option<Spanned<String>>,
    max_pending_requests: Option<Spanned<usize>>,
    max_pending_bytes: Option<Spanned<usize>>,
    subscriber_buffer: Option<Spanned<usize>>,
    max_subscriptions: Option<Spanned<usize>>,
    max_subscriptions_per_connection: Option<Spanned<u32>>,
    max_metrics_connections: Option<Spanned<usize>>,
    idle_timeout: Option<Spanned<String>>,
    max_queued_event_bytes: Option<Spanned<usize>>,
    max_event_backlog: Option<Spanned<usize>>,
    core_spin: Option<Spanned<String>>,
    service_level_window: Option<Spanned<String>>,
    decision_timing: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawJournal {
    enabled: Option<bool>,
    fsync: Option<Spanned<String>>,
    fsync_interval: Option<Spanned<String>>,
    snapshot_interval: Option<Spanned<String>>,
    snapshot_bytes: Option<Spanned<u64>>,
    segment_bytes: Option<Spanned<u64>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawCluster {
    name: Option<Spanned<String>>,
    partition: Option<Spanned<String>>,
    node: Option<Spanned<String>>,
    advertise: Option<Spanned<String>>,
    etcd: Option<Spanned<Vec<String>>>,
    etcd_ca: Option<String>,
    etcd_cert: Option<String>,
    etcd_key: Option<String>,
    lease_ttl: Option<Spanned<String>>,
    append_depth: Option<Spanned<usize>>,
    max_batch_bytes: Option<Spanned<usize>>,
    retention: Option<Spanned<String>>,
    prune_interval: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert: Option<Spanned<String>>,
    key: Option<Spanned<String>>,
    client_ca: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawRouting {
    short_abandon: Option<Spanned<String>>,
    explain: Option<bool>,
    ewt_window: Option<Spanned<String>>,
    session_grace: Option<Spanned<String>>,
    max_contacts: Option<Spanned<u32>>,
    max_context_entries: Option<Spanned<u16>>,
    max_context_bytes: Option<Spanned<u32>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTier {
    name: Spanned<String>,
    #[serde(default)]
    aging_boost: Option<Spanned<String>>,
    #[serde(default)]
    answer_target: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServiceLevel {
    target: f64,
    threshold: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    after: Spanned<String>,
    min_proficiency_at_most: Option<u8>,
    #[serde(default)]
    next_language: bool,
    #[serde(default)]
    any_language: bool,
    overflow_to: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawQueue {
    name: Spanned<String>,
    service_level: Option<RawServiceLevel>,
    contact_policy: Option<Spanned<String>>,
    agent_policy: Option<Spanned<String>>,
    #[serde(default)]
    relaxation: Vec<RawStep>,
    max_waiting: Option<u32>,
    overflow_when_full: Option<Spanned<String>>,
    wrap_up: Option<Spanned<String>>,
    offer_timeout: Option<Spanned<String>>,
    preferred_agent_window: Option<Spanned<String>>,
    expected_handle_time: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    server: RawServer,
    #[serde(default)]
    tls: RawTls,
    #[serde(default)]
    journal: RawJournal,
    cluster: Option<RawCluster>,
    #[serde(default)]
    routing: RawRouting,
    tiers: Option<Vec<RawTier>>,
    queues: Vec<RawQueue>,
    #[serde(default)]
    skills: Vec<String>,
    #[serde(default)]
    languages: Vec<String>,
}

/// A cluster node snapshots every [`CLUSTER_SNAPSHOT_BYTES`] of journal
/// unless told otherwise: the active prunes etcd's journal up to the
/// nodes' snapshots, and smaller prunes (and the compactions after them)
/// hold etcd's appends up for less at a time.
pub const CLUSTER_SNAPSHOT_BYTES: u64 = 16 << 20;

fn journal_config(c: &mut Checker<'_>, raw: &RawJournal, clustered: bool) -> JournalConfig {
    let mut defaults = JournalOptions::default();
    if clustered {
        defaults.snapshot_bytes = CLUSTER_SNAPSHOT_BYTES;
    }
    let interval = c.duration("journal.fsync_interval".into(), raw.fsync_interval.as_ref(), Duration::from_millis(10));
    let fsync = match raw.fsync.as_ref().map(|f| f.get_ref().as_str()) {
        None | Some("always") => FsyncPolicy::Always,
        Some("interval") if interval.is_zero() => {
            c.problem("journal.fsync_interval".into(), raw.fsync_interval.as_ref(), "must be more than zero".into());
            FsyncPolicy::Always
        }
        Some("interval") => FsyncPolicy::Interval(interval),
        Some("never") => FsyncPolicy::Never,
        Some(other) => {
            c.problem(
                "journal.fsync".into(),
                raw.fsync.as_ref(),
                format!("{other:?} is not a policy: always, interval or never"),
            );
            FsyncPolicy::Always
        }
    };
    let snapshot_bytes = raw.snapshot_bytes.as_ref().map_or(defaults.snapshot_bytes, |b| *b.get_ref());
    if snapshot_bytes < 1 << 20 {
        c.problem(
            "journal.snapshot_bytes".into(),
            raw.snapshot_bytes.as_ref(),
            "must be at least 1048576 (1 MiB)".into(),
        );
    }
    let segment_bytes = raw.segment_bytes.as_ref().map_or(defaults.segment_bytes, |b| *b.get_ref());
    if segment_bytes != 0 && segment_bytes < 1 << 20 {
        c.problem(
            "journal.segment_bytes".into(),
            raw.segment_bytes.as_ref(),
            "must be 0 (segments grow as written) or at least 1048576 (1 MiB)".into(),
        );
    }
    JournalConfig {
        enabled: raw.enabled.unwrap_or(true),
        options: JournalOptions {
            fsync,
            snapshot_interval: c.duration(
                "journal.snapshot_interval".into(),
                raw.snapshot_interval.as_ref(),
                defaults.snapshot_interval,
            ),
            snapshot_bytes,
            segment_bytes,
        },
    }
}

/// A name that becomes a segment of etcd keys.
fn key_name(c: &mut Checker<'_>, field: &str, value: Option<&Spanned<String>>, default: Option<&str>) -> String {
    let Some(v) = value else {
        return match default {
            Some(d) => d.to_owned(),
            None => {
                c.problem::<String>(field.into(), None, "required in [cluster]".into());
                String::new()
            }
        };
    };
    let name = v.get_ref();
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !ok {
        c.problem(field.into(), Some(v), format!("{name:?}: 1 to 64 ASCII letters, digits, '-' or '_'"));
    }
    name.clone()
}

fn cluster_config(c: &mut Checker<'_>, raw: &RawCluster, server: &ServerConfig) -> ClusterConfig {
    let name = key_name(c, "cluster.name", raw.name.as_ref(), None);
    let partition = key_name(c, "cluster.partition", raw.partition.as_ref(), Some("main"));
    let node = key_name(c, "cluster.node", raw.node.as_ref(), None);
    let advertise = match &raw.advertise {
        Some(_) => c.address("cluster.advertise".into(), raw.advertise.as_ref(), "127.0.0.1:4433"),
        None if server.listen.ip().is_unspecified() => {
            let message =
                format!("required when server.listen ({}) is not an address clients can reach", server.listen);
            c.problem::<String>("cluster.advertise".into(), None, message);
            server.listen
        }
        None => server.listen,
    };
    let etcd = match &raw.etcd {
        None => {
            c.problem::<String>("cluster.etcd".into(), None, "required in [cluster]: etcd's client endpoints".into());
            Vec::new()
        }
        Some(list) if list.get_ref().is_empty() => {
            c.problem("cluster.etcd".into(), Some(list), "at least one etcd endpoint".into());
            Vec::new()
        }
        Some(list) => list.get_ref().clone(),
    };
    let etcd_tls = match (&raw.etcd_ca, &raw.etcd_cert, &raw.etcd_key) {
        (None, None, None) => None,
        (Some(ca), cert, key) if cert.is_some() == key.is_some() => Some(EtcdTls {
            ca: PathBuf::from(ca),
            cert: cert.as_ref().map(PathBuf::from),
            key: key.as_ref().map(PathBuf::from),
        }),
        _ => {
            let message = "etcd_ca, with etcd_cert and etcd_key together or neither".to_owned();
            c.problem::<String>("cluster.etcd_ca".into(), None, message);
            None
        }
    };
    let lease_ttl = c.duration("cluster.lease_ttl".into(), raw.lease_ttl.as_ref(), Duration::from_secs(1));
    if lease_ttl.subsec_nanos() != 0 || lease_ttl.is_zero() || lease_ttl > Duration::from_secs(60) {
        let message = format!("{lease_ttl:?}: whole seconds from 1s to 60s (etcd's lease unit)");
        c.problem("cluster.lease_ttl".into(), raw.lease_ttl.as_ref(), message);
    }
    ClusterConfig {
        name,
        partition,
        node,
        advertise,
        etcd,
        etcd_tls,
        lease_ttl,
        append_depth: c.bounded("cluster.append_depth", raw.append_depth.as_ref(), 2, 1..=256),
        max_batch_bytes: c.bounded(
            "cluster.max_batch_bytes",
            raw.max_batch_bytes.as_ref(),
            1 << 20,
            64 << 10..=64 << 20,
        ),
        retention: c.duration("cluster.retention".into(), raw.retention.as_ref(), Duration::from_secs(3600)),
        prune_interval: c.duration(
            "cluster.prune_interval".into(),
            raw.prune_interval.as_ref(),
            Duration::from_secs(10),
        ),
    }
}

/// Parses and validates a configuration file's text.
pub fn parse(text: &str) -> Result<Config, ConfigError> {
    let mut document = Document::parse(text).map_err(|p| ConfigError(vec![p]))?;
    let (raw, shape) = document.read::<RawConfig>();
    let Some(raw) = raw else { return Err(ConfigError(shape)) };
    let mut c = Checker::new(text);

    let rs = &raw.server;
    let server = ServerConfig {
        listen: c.address("server.listen".into(), raw.server.listen.as_ref(), "127.0.0.1:4433"),
        metrics_listen: c.address("server.metrics_listen".into(), raw.server.metrics_listen.as_ref(), "127.0.0.1:9464"),
        data_dir: raw.server.data_dir.clone().map_or_else(|| PathBuf::from("ccrd-data"), PathBuf::from),
        max_connections: c.bounded("server.max_connections", rs.max_connections.as_ref(), 1024, 1..=1_000_000),
        max_streams_per_connection: c.bounded(
            "server.max_streams_per_connection",
            rs.max_streams_per_connection.as_ref(),
            256,
            1..=1 << 20,
        ),
        max_message_bytes: c.bounded(
            "server.max_message_bytes",
            rs.max_message_bytes.as_ref(),
            ccr_proto::wire::DEFAULT_MAX_MESSAGE,
            1024..=MAX_MESSAGE_BYTES,
        ),
        max_pending_requests: c.bounded(
            "server.max_pending_requests",
            rs.max_pending_requests.as_ref(),
            100_000,
            1..=10_000_000,
        ),
        max_pending_bytes: c.bounded("server.max_pending_bytes", rs.max_pending_bytes.as_ref(), 64 << 20, 1..=1 << 40),
        subscriber_buffer: c.bounded("server.subscriber_buffer", rs.subscriber_buffer.as_ref(), 4096, 1..=1 << 20),
        max_subscriptions: c.bounded("server.max_subscriptions", rs.max_subscriptions.as_ref(), 10_000, 1..=10_000_000),
        max_subscriptions_per_connection: c.bounded(
            "server.max_subscriptions_per_connection",
            rs.max_subscriptions_per_connection.as_ref(),
            16,
            1..=1 << 20,
        ),
        max_queued_event_bytes: c.bounded(
            "server.max_queued_event_bytes",
            rs.max_queued_event_bytes.as_ref(),
            256 << 20,
            1 << 20..=1 << 40,
        ),
        max_event_backlog: c.bounded(
            "server.max_event_backlog",
            rs.max_event_backlog.as_ref(),
            1_000_000,
            1000..=1 << 30,
        ),
        max_metrics_connections: c.bounded(
            "server.max_metrics_connections",
            rs.max_metrics_connections.as_ref(),
            16,
            1..=1024,
        ),
        idle_timeout: c.duration(
            "server.idle_timeout".into(),
            raw.server.idle_timeout.as_ref(),
            crate::tls::DEFAULT_IDLE_TIMEOUT,
        ),
        core_spin: c.duration("server.core_spin".into(), raw.server.core_spin.as_ref(), Duration::from_micros(200)),
        service_level_window: c.duration(
            "server.service_level_window".into(),
            raw.server.service_level_window.as_ref(),
            Duration::from_secs(15 * 60),
        ),
        decision_timing: raw.server.decision_timing.unwrap_or(true),
        config_path: None,
    };
    if !(Duration::from_secs(1)..=Duration::from_secs(600)).contains(&server.idle_timeout) {
        let message = format!("{:?} is not between 1s and 10m", server.idle_timeout);
        c.problem("server.idle_timeout".into(), rs.idle_timeout.as_ref(), message);
    }
    if server.max_pending_bytes < server.max_message_bytes {
        let message = format!("must hold at least one message of max_message_bytes ({})", server.max_message_bytes);
        c.problem("server.max_pending_bytes".into(), rs.max_pending_bytes.as_ref(), message);
    }

    let journal = journal_config(&mut c, &raw.journal, raw.cluster.is_some());
    let cluster = raw.cluster.as_ref().map(|raw| cluster_config(&mut c, raw, &server));
    if cluster.is_some() && !journal.enabled {
        let message = "must be true with [cluster]: a standby takes over only what the journal holds".into();
        c.problem::<String>("journal.enabled".into(), None, message);
    }

    let defaults = RouterConfig::default();
    let tiers: Vec<TierConfig> = match &raw.tiers {
        None => defaults.tiers.clone(),
        Some(tiers) => tiers
            .iter()
            .enumerate()
            .map(|(i, t)| TierConfig {
                name: t.name.get_ref().clone(),
                aging_boost: c.duration(format!("tiers[{i}].aging_boost"), t.aging_boost.as_ref(), Duration::ZERO),
                answer_target: t
                    .answer_target
                    .as_ref()
                    .map(|v| c.duration(format!("tiers[{i}].answer_target"), Some(v), Duration::ZERO)),
            })
            .collect(),
    };
    let queue_names: Vec<String> = raw.queues.iter().map(|q| q.name.get_ref().clone()).collect();
    let queue_id = |name: &str| queue_names.iter().position(|n| n == name).map(|i| QueueId(i as u16));

    let mut queues = Vec::new();
    for (i, q) in raw.queues.iter().enumerate() {
        let mut out = QueueConfig::new(q.name.get_ref());
        let at = |f: &str| format!("queues[{i}].{f}");
        if let Some(sl) = &q.service_level {
            out.service_level = ServiceLevel {
                target: sl.target,
                threshold: c.duration(at("service_level.threshold"), Some(&sl.threshold), Duration::from_secs(20)),
            };
        }
        if let Some(p) = &q.contact_policy {
            out.contact_policy = match p.get_ref().as_str() {
                "strict_tier" => ContactPolicy::StrictTier,
                "tier_aging" => ContactPolicy::TierAging,
                "earliest_deadline" => ContactPolicy::EarliestDeadline,
                other => {
                    c.problem(
                        at("contact_policy"),
                        Some(p),
                        format!("{other:?}: expected strict_tier, tier_aging or earliest_deadline"),
                    );
                    out.contact_policy
                }
            };
        }
        if let Some(p) = &q.agent_policy {
            out.agent_policy = match p.get_ref().as_str() {
                "longest_idle" => AgentPolicy::LongestIdle,
                "most_proficient" => AgentPolicy::MostProficient,
                "least_occupied" => AgentPolicy::LeastOccupied,
                other => {
                    c.problem(
                        at("agent_policy"),
                        Some(p),
                        format!("{other:?}: expected longest_idle, most_proficient or least_occupied"),
                    );
                    out.agent_policy
                }
            };
        }
        for (j, step) in q.relaxation.iter().enumerate() {
            let field = format!("queues[{i}].relaxation[{j}]");
            let after = c.duration(format!("{field}.after"), Some(&step.after), Duration::ZERO);
            let mut actions = Vec::new();
            if let Some(p) = step.min_proficiency_at_most {
                actions.push(RelaxAction::MinProficiencyAtMost(p));
            }
            if step.next_language {
                actions.push(RelaxAction::NextLanguage);
            }
            if step.any_language {
                actions.push(RelaxAction::AnyLanguage);
            }
            if let Some(to) = &step.overflow_to {
                match queue_id(to.get_ref()) {
                    Some(id) => actions.push(RelaxAction::OverflowTo(id)),
                    None => c.problem(
                        format!("{field}.overflow_to"),
                        Some(to),
                        format!("no queue named {:?}", to.get_ref()),
                    ),
                }
            }
            match actions.as_slice() {
                [action] => out.relaxation.push(RelaxStep { after, action: *action }),
                [] if step.overflow_to.is_some() => {}
                _ => c.problem(
                    field,
                    Some(&step.after),
                    "give exactly one of min_proficiency_at_most, next_language, any_language, overflow_to".into(),
                ),
            }
        }
        out.max_waiting = q.max_waiting;
        if let Some(to) = &q.overflow_when_full {
            match queue_id(to.get_ref()) {
                Some(id) => out.when_full = WhenFull::OverflowTo(id),
                None => c.problem(at("overflow_when_full"), Some(to), format!("no queue named {:?}", to.get_ref())),
            }
        }
        out.wrap_up = c.duration(at("wrap_up"), q.wrap_up.as_ref(), out.wrap_up);
        out.offer_timeout = c.duration(at("offer_timeout"), q.offer_timeout.as_ref(), out.offer_timeout);
        out.preferred_agent_window =
            c.duration(at("preferred_agent_window"), q.preferred_agent_window.as_ref(), out.preferred_agent_window);
        out.expected_handle_time =
            c.duration(at("expected_handle_time"), q.expected_handle_time.as_ref(), out.expected_handle_time);
        queues.push(out);
    }

    let router = RouterConfig {
        short_abandon: c.duration(
            "routing.short_abandon".into(),
            raw.routing.short_abandon.as_ref(),
            defaults.short_abandon,
        ),
        explain: raw.routing.explain.unwrap_or(false),
        ewt_window: c.duration("routing.ewt_window".into(), raw.routing.ewt_window.as_ref(), defaults.ewt_window),
        session_grace: match (&raw.routing.session_grace, &raw.server.gateway_grace) {
            (Some(_), Some(old)) => {
                let message = "the older name of routing.session_grace: give only one".to_owned();
                c.problem("server.gateway_grace".into(), Some(old), message);
                defaults.session_grace
            }
            (Some(grace), None) => c.duration("routing.session_grace".into(), Some(grace), defaults.session_grace),
            (None, Some(old)) => c.duration("server.gateway_grace".into(), Some(old), defaults.session_grace),
            (None, None) => defaults.session_grace,
        },
        max_contacts: c.bounded(
            "routing.max_contacts",
            raw.routing.max_contacts.as_ref(),
            defaults.max_contacts,
            1..=ccr_core::config::MAX_CONTACTS_LIMIT,
        ),
        max_context_entries: c.bounded(
            "routing.max_context_entries",
            raw.routing.max_context_entries.as_ref(),
            defaults.max_context_entries,
            0..=u16::MAX,
        ),
        max_context_bytes: c.bounded(
            "routing.max_context_bytes",
            raw.routing.max_context_bytes.as_ref(),
            defaults.max_context_bytes,
            0..=ccr_core::config::MAX_CONTEXT_BYTES_LIMIT,
        ),
        tiers,
        queues,
        ..defaults
    };
    // The core's own rules, located through the queue and tier names' lines
    // (its limits were checked above, with their own lines).
    if let Err(errors) = router.validate() {
        for e in errors.0.into_iter().filter(|e| !e.field.starts_with("max_")) {
            // The core names its fields; the file's key for `when_full`:
            let field = e.field.replace(".when_full", ".overflow_when_full");
            let line = document.line(&field);
            c.problems.push(Problem { field, line, message: e.message });
        }
    }
    for (list, what) in [(&raw.skills, "skills"), (&raw.languages, "languages")] {
        for (i, name) in list.iter().enumerate() {
            if name.is_empty() || list[..i].contains(name) {
                let field = format!("{what}[{i}]");
                let line = document.line(&field);
                c.problems.push(Problem { field, line, message: format!("{name:?} is empty or listed twice") });
            }
        }
        if list.len() > usize::from(u16::MAX - 1) {
            let line = document.line(what);
            c.problems.push(Problem { field: what.into(), line, message: "too many names".into() });
        }
    }
    if raw.tls.cert.is_some() != raw.tls.key.is_some() {
        c.problems.push(Problem {
            field: "tls".into(),
            line: document.line("tls"),
            message: "give both cert and key, or neither".into(),
        });
    }
    if !c.problems.is_empty() || !shape.is_empty() {
        return Err(ConfigError(together(shape, c.problems)));
    }
    let tier_names = router.tiers.iter().map(|t| t.name.clone()).collect();
    let catalog = Catalog::new(raw.skills, raw.languages, queue_names, tier_names);
    let line = |at: &Option<Spanned<String>>| at.as_ref().map(|s| c.line_of(s.span().start));
    let lines = TlsLines { cert: line(&raw.tls.cert), key: line(&raw.tls.key), client_ca: line(&raw.tls.client_ca) };
    let path = |at: Option<Spanned<String>>| at.map(|s| PathBuf::from(s.into_inner()));
    let tls = TlsConfig { cert: path(raw.tls.cert), key: path(raw.tls.key), client_ca: path(raw.tls.client_ca), lines };
    Ok(Config { server, tls, journal, cluster, router, catalog })
}

/// Byte offset of the queue or tier a core field path (`queues[3].…`) is about.
/// The problems of shape and those the later checks found, less those
/// about a field already reported (its stand-in's, not the file's), in the
/// order of their lines.
fn together(shape: Vec<Problem>, later: Vec<Problem>) -> Vec<Problem> {
    let about = |p: &Problem, field: &str| {
        p.field == field || p.field.starts_with(&format!("{field}.")) || p.field.starts_with(&format!("{field}["))
    };
    let later = later.into_iter().filter(|p| !shape.iter().any(|s| about(p, &s.field)));
    let mut all: Vec<Problem> = shape.iter().cloned().chain(later).collect();
    all.sort_by_key(|p| p.line.unwrap_or(usize::MAX));
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_example_is_valid() {
        let config = parse(DEFAULT_CONFIG).unwrap_or_else(|e| panic!("{e}"));
        assert!(config.catalog.queue("billing").is_some());
        assert!(config.catalog.skill("billing").is_some());
        assert_eq!(config.server.listen, "127.0.0.1:4433".parse().unwrap());
    }

    /// What `parse` says of `text`, one line per problem.
    fn problems_of(text: &str) -> Vec<String> {
        parse(text).unwrap_err().0.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn two_type_errors_are_both_reported_each_with_its_field_and_line() {
        let shown =
            problems_of("[server]\nmax_connections = \"many\"\n\n[journal]\nfsync = 5\n\n[[queues]]\nname = \"a\"\n");
        assert_eq!(shown.len(), 2, "{shown:#?}");
        assert!(shown[0].starts_with("line 2: server.max_connections: invalid type: string"), "{shown:#?}");
        assert!(shown[1].starts_with("line 5: journal.fsync: invalid type: integer"), "{shown:#?}");
    }

    #[test]
    fn a_misspelt_key_is_reported_with_the_likely_intended_one() {
        let shown = problems_of("[routing]\nexplian = true\n\n[sever]\nlisten = \"x\"\n[[queues]]\nname = \"a\"\n");
        assert_eq!(
            shown,
            vec![
                "line 2: routing.explian: unknown key `explian`: did you mean `explain`?",
                "line 4: sever: unknown key `sever`: did you mean `server`?",
            ],
        );
    }

    #[test]
    fn a_queue_fields_problem_is_on_the_fields_own_line() {
        let text = "[[queues]]\nname = \"a\"\nmax_waiting = 0\nservice_level = { target = 2.0, threshold = \"20s\" }\n";
        let shown = problems_of(text);
        assert!(
            shown.contains(&"line 3: queues[0].max_waiting: must be at least 1 (omit it for no limit)".into()),
            "{shown:#?}"
        );
        assert!(shown.iter().any(|p| p.starts_with("line 4: queues[0].service_level.target")), "{shown:#?}");
    }

    #[test]
    fn a_skill_listed_twice_is_reported_on_its_line() {
        let shown =
            problems_of("skills = [\n  \"billing\",\n  \"sales\",\n  \"billing\",\n]\n[[queues]]\nname = \"a\"\n");
        assert_eq!(shown, vec!["line 4: skills[2]: \"billing\" is empty or listed twice"]);
    }

    #[test]
    fn an_overflow_cycle_is_refused_naming_its_queues() {
        let text = r#"
[[queues]]
name = "billing"
[[queues.relaxation]]
after = "60s"
overflow_to = "general"

[[queues]]
name = "general"
overflow_when_full = "billing"

[[queues]]
name = "sales"
overflow_when_full = "general"
"#;
        let shown = problems_of(text);
        assert_eq!(
            shown,
            vec![
                "line 6: queues[0].relaxation[0].overflow_to: overflow cycle billing → general → billing: \
                 a contact would move round it for ever"
            ],
            "sales only leads into the cycle"
        );
        let chain = text.replace("overflow_when_full = \"billing\"", "");
        assert!(parse(&chain).is_ok(), "billing → general, sales → general: no cycle");
    }

    #[test]
    fn a_missing_queue_name_and_a_wrong_type_beside_it_are_both_reported() {
        let shown = problems_of("[[queues]]\nwrap_up = \"5s\"\n\n[[queues]]\nname = 7\n");
        assert!(shown.iter().any(|p| p.starts_with("line 1: queues[0].name: missing field `name`")), "{shown:#?}");
        assert!(shown.iter().any(|p| p.starts_with("line 5: queues[1].name: invalid type: integer")), "{shown:#?}");
        assert!(
            !shown.iter().any(|p| p.contains("empty") || p.contains("duplicate")),
            "no stand-in's problem: {shown:#?}"
        );
    }

    #[test]
    fn a_syntax_error_is_reported_with_its_line() {
        let shown = problems_of("[[queues]]\nname = \"a\"\nwrap_up = 5s\n");
        assert_eq!(shown.len(), 1);
        assert!(shown[0].starts_with("line 3: (syntax)"), "{shown:#?}");
    }

    #[test]
    fn every_problem_is_reported_with_its_line() {
        let text = r#"
skills = ["billing"]

[[queues]]
name = "a"
contact_policy = "fifo"
offer_timeout = "soon"

[[queues.relaxation]]
after = "30s"
overflow_to = "nowhere"

[[queues]]
name = "a"
"#;
        let problems = parse(text).unwrap_err().0;
        let shown: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert!(shown.iter().any(|p| p.starts_with("line 6: queues[0].contact_policy")), "{shown:#?}");
        assert!(shown.iter().any(|p| p.starts_with("line 7: queues[0].offer_timeout")), "{shown:#?}");
        assert!(shown.iter().any(|p| p.starts_with("line 11: queues[0].relaxation[0].overflow_to")), "{shown:#?}");
        assert!(
            shown.iter().any(|p| p.starts_with("line 14: queues[1].name") && p.contains("duplicate")),
            "{shown:#?}"
        );
    }

    #[test]
    fn limits_out_of_range_are_refused_with_their_line() {
        let text = "[server]
max_connections = 0
max_pending_requests = 0
subscriber_buffer = 0
max_message_bytes = 8388608
max_subscriptions = 0
max_subscriptions_per_connection = 0
max_metrics_connections = 0
max_queued_event_bytes = 1000
max_streams_per_connection = 0

[routing]
max_contacts = 0
max_context_bytes = 2000000

[[queues]]
name = \"a\"
";
        let shown: Vec<String> = parse(text).unwrap_err().0.iter().map(ToString::to_string).collect();
        for (line, field) in [
            (2, "server.max_connections"),
            (3, "server.max_pending_requests"),
            (4, "server.subscriber_buffer"),
            (5, "server.max_message_bytes"),
            (6, "server.max_subscriptions"),
            (7, "server.max_subscriptions_per_connection"),
            (8, "server.max_metrics_connections"),
            (9, "server.max_queued_event_bytes"),
            (10, "server.max_streams_per_connection"),
            (13, "routing.max_contacts"),
            (14, "routing.max_context_bytes"),
        ] {
            let found =
                shown.iter().any(|p| p.starts_with(&format!("line {line}: {field}:")) && p.contains("is not in"));
            assert!(found, "{field} on line {line}: {shown:#?}");
        }
        assert_eq!(shown.len(), 11, "one problem each: {shown:#?}");
        // A pending budget must hold at least one message.
        let text = "[server]\nmax_message_bytes = 65536\nmax_pending_bytes = 4096\n\n[[queues]]\nname = \"a\"\n";
        let shown: Vec<String> = parse(text).unwrap_err().0.iter().map(ToString::to_string).collect();
        assert!(shown[0].starts_with("line 3: server.max_pending_bytes"), "{shown:#?}");
        let defaults = parse("[[queues]]\nname = \"a\"\n").unwrap();
        assert_eq!(defaults.server.subscriber_buffer, 4096);
        assert!(defaults.server.max_message_bytes <= MAX_MESSAGE_BYTES);
        assert_eq!((defaults.router.max_contacts, defaults.router.max_context_bytes), (1_000_000, 2048));
    }

    #[test]
    fn journal_options_are_checked_with_their_line() {
        let text = "[journal]\nfsync = \"sometimes\"\nsnapshot_bytes = 10\nsnapshot_interval = \"often\"\nsegment_bytes = 4096\n\n[[queues]]\nname = \"a\"\n";
        let shown: Vec<String> = parse(text).unwrap_err().0.iter().map(ToString::to_string).collect();
        assert!(shown.iter().any(|p| p.starts_with("line 2: journal.fsync") && p.contains("always")), "{shown:#?}");
        assert!(shown.iter().any(|p| p.starts_with("line 3: journal.snapshot_bytes")), "{shown:#?}");
        assert!(shown.iter().any(|p| p.starts_with("line 4: journal.snapshot_interval")), "{shown:#?}");
        assert!(shown.iter().any(|p| p.starts_with("line 5: journal.segment_bytes")), "{shown:#?}");
        let ok =
            parse("[journal]\nfsync = \"interval\"\nfsync_interval = \"5ms\"\n[[queues]]\nname = \"a\"\n").unwrap();
        assert_eq!(ok.journal.options.fsync, FsyncPolicy::Interval(Duration::from_millis(5)));
        assert!(ok.journal.enabled);
    }

    #[test]
    fn cluster_options_are_checked_with_their_line() {
        let text = "[server]\nlisten = \"0.0.0.0:4433\"\n[journal]\nenabled = false\n[cluster]\nname = \"centre/1\"\n\
                    lease_ttl = \"1500ms\"\nappend_depth = 0\netcd = []\netcd_cert = \"c.pem\"\n[[queues]]\nname = \"a\"\n";
        let shown: Vec<String> = parse(text).unwrap_err().0.iter().map(ToString::to_string).collect();
        for expected in [
            "line 6: cluster.name",
            "cluster.node: required",
            "cluster.advertise: required when server.listen (0.0.0.0:4433)",
            "line 7: cluster.lease_ttl",
            "line 8: cluster.append_depth",
            "line 9: cluster.etcd: at least one",
            "cluster.etcd_ca: etcd_ca, with etcd_cert and etcd_key together",
            "journal.enabled: must be true with [cluster]",
        ] {
            assert!(shown.iter().any(|p| p.starts_with(expected)), "{expected:?} in {shown:#?}");
        }
        assert_eq!(shown.len(), 8, "{shown:#?}");
    }

    #[test]
    fn a_cluster_section_gives_every_setting_its_default() {
        let text = "[server]\nlisten = \"127.0.0.1:4501\"\n[cluster]\nname = \"centre-1\"\nnode = \"a\"\n\
                    etcd = [\"127.0.0.1:2379\"]\n[[queues]]\nname = \"a\"\n";
        let cluster = parse(text).unwrap().cluster.expect("a cluster");
        assert_eq!(
            (cluster.name.as_str(), cluster.partition.as_str(), cluster.node.as_str()),
            ("centre-1", "main", "a")
        );
        assert_eq!(cluster.advertise, "127.0.0.1:4501".parse().unwrap(), "clients reach it where it listens");
        assert_eq!(cluster.lease_ttl, Duration::from_secs(1));
        assert_eq!((cluster.append_depth, cluster.max_batch_bytes), (2, 1 << 20));
        assert!(cluster.etcd_tls.is_none());
        let journal = parse(text).unwrap().journal.options;
        assert_eq!(journal.snapshot_bytes, CLUSTER_SNAPSHOT_BYTES, "a cluster node snapshots more often");
        let single = parse("[[queues]]\nname = \"a\"\n").unwrap().journal.options;
        assert_eq!(single.snapshot_bytes, JournalOptions::default().snapshot_bytes, "a single node as before");
        assert!(parse("[[queues]]\nname = \"a\"\n").unwrap().cluster.is_none(), "no cluster without the section");
    }

    #[test]
    fn syntax_errors_and_unknown_fields_point_at_their_line() {
        let err = parse("[[queues]]\nname = \"a\"\ncolour = \"red\"\n").unwrap_err();
        assert_eq!(err.0[0].line, Some(3), "{err}");
        let err = parse("[[queues]\n").unwrap_err();
        assert_eq!(err.0[0].line, Some(1), "{err}");
    }
}
