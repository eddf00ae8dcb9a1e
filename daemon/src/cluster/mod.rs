//! A node of a cluster on etcd (docs/HA.md).
//!
//! A node starts as a hot standby: it loads its newest local snapshot,
//! follows the journal in etcd from there through a router of its own (on
//! a thread, as the snapshot replica does), and campaigns for the leader
//! key. Once it leads it takes over ([`stand_by`] returns): it applies what
//! is left of the journal (settled: a former leader's batches after a gap
//! are deleted), journals a restart — offers ringing on the former active
//! are withdrawn and sessions get their grace, as after a restart — and
//! serves with a journal whose writer appends to etcd ([`writer`]). It
//! stays the active until its stop, or until it loses its lease or a write
//! is fenced off: then the server stops and ccrd starts again as a standby
//! (`ServerError::Demoted`), from its snapshot and the journal, forgetting
//! whatever it decided that etcd does not hold.
//!
//! Every node keeps snapshots of the state it replayed in its data
//! directory and says in etcd how far its newest goes; the active deletes
//! the journal's batches that every node's snapshot covers (a node silent
//! for longer than `cluster.retention` is not waited for) and compacts
//! etcd.

pub mod writer;

use std::collections::VecDeque;
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use ccr_cluster::journal::{self as etcd_journal, Batch, Follower};
use ccr_cluster::{bootstrap, members, Candidate, ClusterError, Keys, Leader, Leadership};
use ccr_core::Router;
use etcd_client::{Client, ConnectOptions, EventType};
use tokio::sync::{mpsc, watch};
use tracing::{error, info, warn};

use crate::clock::Clock;
use crate::config::{ClusterConfig, Config};
use crate::journal::format::{self, InputRef, Names};
use crate::journal::replica::{self, Feed, Replayed, Replica};
use crate::journal::{self, recovery, Failure, Journal, JournalError, JournalMetrics};
use crate::metrics::ClusterMetrics;

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("etcd: {0}")]
    Cluster(#[from] ClusterError),
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error("{0}")]
    Config(String),
    #[error("replaying the journal from etcd: {0}")]
    Replay(String),
    /// This node won the election and could not take over (it resigned).
    #[error("taking over failed: {0}")]
    TakeoverFailed(String),
}

impl From<etcd_client::Error> for NodeError {
    fn from(e: etcd_client::Error) -> Self {
        NodeError::Cluster(e.into())
    }
}

/// What a node is, for `Admin/Health`, metrics and the standby's refusals.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Status {
    pub active: bool,
    /// The active's epoch, when one is known.
    pub epoch: i64,
    /// Where clients reach the active (this node's own address when it leads).
    pub active_address: Option<String>,
}

/// A client of the cluster's etcd, once one can be made: while no endpoint
/// answers, it says so and tries again each second. A configuration it
/// cannot use (a missing certificate file) is an error at once.
pub async fn connect_when_up(config: &ClusterConfig) -> Result<Client, NodeError> {
    loop {
        match connect(config).await {
            Err(NodeError::Cluster(ClusterError::Etcd(e))) => {
                warn!(error = %e, endpoints = ?config.etcd, "etcd cannot be reached; trying again");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            outcome => return outcome,
        }
    }
}

/// A client of the cluster's etcd.
pub async fn connect(config: &ClusterConfig) -> Result<Client, NodeError> {
    let mut options = ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(2))
        // Not more often than etcd allows (`--grpc-keepalive-min-time`, 5 s).
        .with_keep_alive(Duration::from_secs(10), Duration::from_secs(3))
        .with_require_leader(true);
    if let Some(tls) = &config.etcd_tls {
        let read = |p: &Path| std::fs::read(p).map_err(|e| NodeError::Config(format!("{}: {e}", p.display())));
        let mut options_tls =
            etcd_client::TlsOptions::new().ca_certificate(etcd_client::Certificate::from_pem(read(&tls.ca)?));
        if let (Some(cert), Some(key)) = (&tls.cert, &tls.key) {
            options_tls = options_tls.identity(etcd_client::Identity::from_pem(read(cert)?, read(key)?));
        }
        options = options.with_tls(options_tls);
    }
    Ok(Client::connect(&config.etcd, Some(options)).await?)
}

/// What a standby hands to the active it has become.
pub struct Takeover {
    pub router: Router,
    pub journal: Journal,
    pub leadership: Leadership,
    /// The active's own work (position reports, pruning): aborted when dropped.
    pub tasks: Tasks,
}

/// Tasks that end with the role they serve.
#[derive(Default)]
pub struct Tasks(Vec<tokio::task::JoinHandle<()>>);

impl Drop for Tasks {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

/// What a standby needs.
pub struct Context {
    pub config: Config,
    pub client: Client,
    pub clock: Arc<dyn Clock>,
    pub metrics: ClusterMetrics,
    pub journal_metrics: JournalMetrics,
    pub failure: Arc<Failure>,
    pub status: watch::Sender<Status>,
}

impl Context {
    fn cluster(&self) -> &ClusterConfig {
        self.config.cluster.as_ref().expect("a cluster node has [cluster]")
    }

    fn keys(&self) -> Result<Keys, NodeError> {
        Ok(Keys::new(&self.cluster().name, &self.cluster().partition)?)
    }
}

/// Runs the node as a standby until it leads, then takes over.
pub async fn stand_by(cx: &Context) -> Result<Takeover, NodeError> {
    let cluster = cx.cluster().clone();
    let keys = cx.keys()?;
    let dir = journal::dir_in(&cx.config.server.data_dir);
    let config = cx.config.clone();
    let local_dir = dir.clone();
    let load = || {
        let (dir, config) = (local_dir.clone(), config.clone());
        async move {
            tokio::task::spawn_blocking(move || load_local(&dir, &config))
                .await
                .map_err(|e| NodeError::Replay(e.to_string()))?
        }
    };
    let (mut router, mut names, mut seq) = load().await?;
    let first_held = loop {
        match etcd_journal::first_held(&mut cx.client.clone(), &keys).await {
            Ok(first) => break first,
            Err(e) => {
                warn!(error = %e, "etcd does not answer; trying again");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    };
    if let Some(first) = first_held.filter(|&f| f > seq + 1) {
        warn!(
            node = %cluster.node,
            seq,
            first,
            "the journal in etcd starts after this node's state: asking the active for a snapshot"
        );
        fetch_snapshot(&mut cx.client.clone(), &keys, &cluster.node, &dir, first).await?;
        (router, names, seq) = load().await?;
        info!(node = %cluster.node, seq, "bootstrapped from a snapshot of the active");
    }
    info!(node = %cluster.node, seq, "standby: following the journal in etcd from the local state");
    // Until this node's first snapshot, the journal keeps what it needs.
    if let Err(e) = members::publish(&mut cx.client.clone(), &keys, &cluster.node, seq).await {
        warn!(error = %e, "could not say how far this node's state goes (pruning may leave it behind)");
    }
    let mut tasks = Tasks::default();
    let (positions, to_publish) = mpsc::unbounded_channel();
    tasks.0.push(tokio::spawn(publish_positions(cx.client.clone(), keys.clone(), cluster.node.clone(), to_publish)));

    // The standby's router, on its own thread, fed every batch in order.
    let (feed, standby_thread) = spawn_replica(cx, &dir, router, names, seq, true, positions, |r| r)?;
    let mut follow = tokio::spawn(follow(cx.client.clone(), keys.clone(), seq + 1, feed, cx.metrics.clone()));
    tasks.0.push(tokio::spawn(watch_leader(cx.client.clone(), keys.clone(), cx.status.clone(), cx.metrics.clone())));

    let mut candidate = Candidate::new(
        cx.client.clone(),
        keys.clone(),
        &cluster.node,
        &cluster.advertise.to_string(),
        cluster.lease_ttl,
    )?;
    let leadership = tokio::select! {
        leads = campaign(&mut candidate) => leads,
        ended = &mut follow => {
            let why = ended.map_err(|e| NodeError::Replay(e.to_string()))?;
            return Err(why);
        }
    };
    match take_over(cx, leadership, follow, tasks, standby_thread).await {
        Ok(takeover) => Ok(takeover),
        Err((why, leadership)) => {
            // Let another node lead at once rather than after the lease.
            if let Some(leadership) = leadership {
                let _ = leadership.resign().await;
            }
            Err(NodeError::TakeoverFailed(why.to_string()))
        }
    }
}

/// The takeover, once this node leads: the rest of the journal applied, a
/// restart journaled, the active's journal started. On failure, the
/// leadership is handed back to be resigned.
async fn take_over(
    cx: &Context,
    leadership: Leadership,
    follow: tokio::task::JoinHandle<NodeError>,
    tasks: Tasks,
    standby_thread: JoinHandle<Option<Replayed>>,
) -> Result<Takeover, (NodeError, Option<Leadership>)> {
    let cluster = cx.cluster().clone();
    let keys = cx.keys().map_err(|e| (e, None))?;
    let dir = journal::dir_in(&cx.config.server.data_dir);
    let started = Instant::now();
    let epoch = leadership.epoch();
    info!(node = %cluster.node, epoch, "won the election: taking over");
    follow.abort();
    let _ = follow.await; // drops the feed: the standby's thread ends
    drop(tasks);
    let replayed = tokio::task::spawn_blocking(move || standby_thread.join())
        .await
        .map_err(|e| NodeError::Replay(e.to_string()))
        .and_then(|joined| joined.map_err(|_| NodeError::Replay("the standby's thread panicked".into())))
        .and_then(|replayed| {
            replayed.ok_or_else(|| NodeError::Replay("the standby could not apply a batch (see its log)".into()))
        });
    let Replayed { router, names, seq } = match replayed {
        Ok(replayed) => replayed,
        Err(e) => return Err((e, Some(leadership))),
    };
    match start_active(cx, &cluster, &keys, &dir, epoch, router, names, seq).await {
        Ok((router, journal, tasks)) => {
            info!(
                node = %cluster.node,
                epoch,
                millis = started.elapsed().as_millis() as u64,
                "active: took over (offers ringing on the former active withdrawn; sessions wait out their grace)"
            );
            Ok(Takeover { router, journal, leadership, tasks })
        }
        Err(e) => Err((e, Some(leadership))),
    }
}

/// Applies what is left of the journal, journals the takeover as a
/// restart, and starts the active's journal and tasks.
#[allow(clippy::too_many_arguments)]
async fn start_active(
    cx: &Context,
    cluster: &ClusterConfig,
    keys: &Keys,
    dir: &Path,
    epoch: i64,
    mut router: Router,
    mut names: Names,
    mut seq: u64,
) -> Result<(Router, Journal, Tasks), NodeError> {
    // What the follower had not yet given, up to the last batch any
    // former leader wrote in an unbroken run.
    let mut client = cx.client.clone();
    let settled = etcd_journal::settle(&mut client, keys, epoch, seq + 1).await?;
    let caught_up = settled.batches.len();
    for batch in &settled.batches {
        replica::apply_batch(&mut router, &mut names, &mut seq, &batch.bytes, &mut |_| {})
            .map_err(NodeError::Replay)?;
    }
    let new_names = Names::of(&cx.config.catalog);
    journal::check_names(&names, &new_names)?;
    // The takeover, journaled as a restart.
    let now = cx.clock.now().max(router.now());
    recovery::restart(&mut router, now, cx.config.router.clone()).map_err(JournalError::Incompatible)?;
    while router.poll_event().is_some() {}
    let mut bytes = Vec::new();
    format::encode_record(&mut bytes, seq + 1, now, InputRef::Restart { names: &new_names, config: &cx.config.router });
    etcd_journal::append(&mut client, keys, epoch, &Batch { first: seq + 1, records: 1, bytes }).await?;
    seq += 1;

    // The active's journal: appends to etcd, snapshots kept locally.
    let mut tasks = Tasks::default();
    let (positions, to_publish) = mpsc::unbounded_channel();
    tasks.0.push(tokio::spawn(publish_positions(cx.client.clone(), keys.clone(), cluster.node.clone(), to_publish)));
    let pruning = prune(cx.client.clone(), keys.clone(), epoch, cluster.retention, cluster.prune_interval);
    tasks.0.push(tokio::spawn(pruning));
    tasks.0.push(tokio::spawn(offer_snapshots(cx.client.clone(), keys.clone(), dir.to_owned())));
    let (feed, replica_thread) = spawn_replica(cx, dir, router.clone(), new_names, seq, false, positions, drop)?;
    let timeout = (cluster.lease_ttl * 5).max(Duration::from_secs(5));
    let appender = etcd_journal::Appender::new(cx.client.clone(), keys.clone(), epoch, seq + 1, cluster.append_depth)
        .with_timeout(timeout);
    let writer = writer::EtcdWriter {
        appender,
        max_batch_bytes: cluster.max_batch_bytes,
        replica: Some(feed.feed),
        failure: cx.failure.clone(),
        append_seconds: cx.metrics.append.clone(),
        bytes: cx.journal_metrics.bytes.clone(),
    };
    let (to_writer, batches) = mpsc::unbounded_channel();
    let (done, writer_done) = crossbeam_channel::bounded(0);
    tokio::spawn(writer.run(batches, done));
    let journal = Journal::replicated(seq, to_writer, writer_done, replica_thread);

    cx.metrics.takeovers.increment(1);
    cx.metrics.set_active(true);
    cx.metrics.epoch.set(epoch as f64);
    cx.metrics.lag_records.set(0.0);
    cx.metrics.lag_seconds.set(0.0);
    cx.status.send_replace(Status { active: true, epoch, active_address: Some(cluster.advertise.to_string()) });
    info!(seq, caught_up_batches = caught_up, "the journal applied and the takeover journaled");
    Ok((router, journal, tasks))
}

/// Replays the whole journal in etcd, from its first record, through a
/// router made from `config` (its first record, the first active's
/// takeover, sets the configuration it was written under), showing
/// `on_event` every decision made again. Like a standby, it reads the
/// unbroken run of batches only: a batch after a gap was never reported
/// durable (an append in flight, or one the next active's settle deletes).
/// For tests and tools: the journal must still hold record 1.
pub async fn replay_journal(
    client: &mut Client,
    keys: &Keys,
    config: &Config,
    on_event: &mut dyn FnMut(ccr_core::Event),
) -> Result<JournalReplay, NodeError> {
    let mut router = Router::new(config.router.clone()).map_err(|e| NodeError::Config(e.to_string()))?;
    let (mut names, mut seq) = (Names::of(&config.catalog), 0);
    let batches = etcd_journal::read_from(client, keys, 1).await?;
    let mut applied = 0;
    for batch in &batches {
        if batch.first != seq + 1 {
            break;
        }
        replica::apply_batch(&mut router, &mut names, &mut seq, &batch.bytes, on_event).map_err(NodeError::Replay)?;
        applied += 1;
    }
    Ok(JournalReplay { last: seq, after_gap: batches.len() - applied })
}

/// What [`replay_journal`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JournalReplay {
    /// The last record of the unbroken run replayed.
    pub last: u64,
    /// Batches left unreplayed after a gap.
    pub after_gap: usize,
}

/// Gets a snapshot from the active through etcd (`ccr_cluster::bootstrap`)
/// that the journal can be followed from (`first`: its first record), and
/// makes it this node's newest, durably.
/// While etcd cannot be reached (a member down, an election in etcd), the
/// calls here are tried again every 200 ms: a node that is waiting anyway
/// does not give up on a member's hiccup.
async fn fetch_snapshot(client: &mut Client, keys: &Keys, node: &str, dir: &Path, first: u64) -> Result<(), NodeError> {
    const AGAIN: Duration = Duration::from_millis(200);
    let mut asked = Instant::now();
    let mut requested = false;
    loop {
        if !requested {
            match bootstrap::request(client, keys, node).await {
                Ok(()) => requested = true,
                Err(ClusterError::Etcd(e)) => {
                    warn!(error = %e, "asking for a snapshot: etcd unreachable; trying again")
                }
                Err(e) => return Err(e.into()),
            }
        }
        let offered = match bootstrap::fetch(client, keys).await {
            Ok(offered) if requested => offered,
            Ok(_) => None,
            Err(ClusterError::Etcd(e)) => {
                warn!(error = %e, "reading the snapshot offered: etcd unreachable; trying again");
                None
            }
            Err(e) => return Err(e.into()),
        };
        if let Some((seq, file)) = offered {
            if seq + 1 >= first {
                let dir = dir.to_owned();
                let kept = tokio::task::spawn_blocking(move || keep_snapshot(&dir, seq, &file))
                    .await
                    .map_err(|e| NodeError::Replay(e.to_string()))?;
                match kept {
                    Ok(()) => {
                        // Withdrawn, or the active goes on offering
                        // snapshots: tried for a few seconds.
                        for tries_left in (0..25).rev() {
                            match bootstrap::withdraw(client, keys, node).await {
                                Ok(()) => break,
                                Err(e) if tries_left == 0 => {
                                    warn!(error = %e, "could not withdraw the snapshot request")
                                }
                                Err(_) => tokio::time::sleep(AGAIN).await,
                            }
                        }
                        return Ok(());
                    }
                    Err(why) => warn!(seq, %why, "the snapshot from the active is unusable; asking again"),
                }
            }
        }
        if asked.elapsed() > Duration::from_secs(10) {
            warn!("still waiting for a snapshot from the active (is one running?)");
            asked = Instant::now();
        }
        tokio::time::sleep(AGAIN).await;
    }
}

/// Writes a snapshot file received from the active into `dir`, checked
/// (its header names `seq`, its checksum matches) before it is renamed in.
fn keep_snapshot(dir: &Path, seq: u64, file: &[u8]) -> Result<(), String> {
    use std::io::Write;
    let path = format::snapshot_path(dir, seq);
    let tmp = path.with_extension("snap.fetched");
    let written = std::fs::File::create(&tmp).and_then(|mut f| f.write_all(file).and_then(|_| f.sync_all()));
    written.map_err(|e| format!("{}: {e}", tmp.display()))?;
    match recovery::read_snapshot(&tmp) {
        Ok((header, _, _)) if header.seq == seq => {}
        Ok((header, _, _)) => return Err(format!("holds record {} where {seq} was offered", header.seq)),
        Err(why) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(why);
        }
    }
    std::fs::rename(&tmp, &path).map_err(|e| format!("{}: {e}", path.display()))?;
    crate::journal::writer::sync_dir(dir).map_err(|e| e.to_string())
}

/// The active's side of bootstrapping: while a node asks, its newest local
/// snapshot is offered through etcd; once none asks, it is deleted.
async fn offer_snapshots(mut client: Client, keys: Keys, dir: std::path::PathBuf) {
    let mut offered: Option<u64> = None;
    let mut every = tokio::time::interval(Duration::from_millis(500));
    loop {
        every.tick().await;
        let step = async {
            if !bootstrap::requested(&mut client, &keys).await? {
                if offered.take().is_some() {
                    bootstrap::clear(&mut client, &keys).await?;
                }
                return Ok(());
            }
            let dir = dir.clone();
            let newest = tokio::task::spawn_blocking(move || {
                let (seq, path) = recovery::list(&dir).ok()?.snapshots.pop()?;
                Some((seq, std::fs::read(path).ok()?))
            })
            .await
            .ok()
            .flatten();
            if let Some((seq, file)) = newest.filter(|(seq, _)| offered != Some(*seq)) {
                info!(seq, bytes = file.len(), "offering a snapshot to a node that asks for one");
                bootstrap::offer(&mut client, &keys, seq, &file).await?;
                offered = Some(seq);
            }
            Ok::<(), ClusterError>(())
        };
        if let Err(e) = step.await {
            warn!(error = %e, "offering a snapshot through etcd failed; trying again");
        }
    }
}

/// Campaigns until this node leads, through etcd's own failures (a member
/// lost, a leader election in etcd).
async fn campaign(candidate: &mut Candidate) -> Leadership {
    loop {
        match candidate.campaign().await {
            Ok(leadership) => return leadership,
            Err(e) => {
                warn!(error = %e, "campaign interrupted; campaigning again");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// The node's newest local snapshot, or the empty router of its
/// configuration. A cluster node's directory holds snapshots only: local
/// journal segments are a single-node ccrd's, whose records etcd lacks.
fn load_local(dir: &Path, config: &Config) -> Result<(Router, Names, u64), NodeError> {
    std::fs::create_dir_all(dir).map_err(|e| JournalError::Io { path: dir.to_owned(), source: e })?;
    let listing = recovery::list(dir)?;
    if let Some((_, segment)) = listing.segments.first() {
        return Err(NodeError::Config(format!(
            "{}: a single-node journal, whose records etcd does not hold. A cluster node keeps only snapshots: \
             start it on an empty data directory, or see docs/HA.md (moving a single ccrd into a cluster)",
            segment.display()
        )));
    }
    match recovery::recover(dir)? {
        None => {
            let router = Router::new(config.router.clone()).map_err(|e| NodeError::Config(e.to_string()))?;
            Ok((router, Names::of(&config.catalog), 0))
        }
        Some(recovered) => Ok((recovered.router, recovered.names, recovered.last_seq)),
    }
}

/// A replica on its own thread: eager (a standby's router, applying each
/// batch as it comes) or not (the active's snapshots). Tells `positions`
/// the last record of each snapshot.
#[allow(clippy::too_many_arguments)]
fn spawn_replica<T: Send + 'static>(
    cx: &Context,
    dir: &Path,
    router: Router,
    names: Names,
    seq: u64,
    eager: bool,
    positions: mpsc::UnboundedSender<u64>,
    then: impl FnOnce(Option<Replayed>) -> T + Send + 'static,
) -> Result<(Applying, JoinHandle<T>), NodeError> {
    let (tx, batches) = crossbeam_channel::unbounded();
    let lag = Arc::new(AtomicUsize::new(0));
    let applied = Arc::new(AtomicU64::new(seq));
    let replica = Replica {
        dir: dir.to_owned(),
        router,
        names,
        seq,
        options: cx.config.journal.options.clone(),
        metrics: cx.journal_metrics.clone(),
        // The active's first snapshot right after the takeover.
        snapshot_first: !eager,
        rotate: Arc::default(),
        lag: lag.clone(),
        applied: applied.clone(),
        eager,
        on_snapshot: Some(Box::new(move |seq| {
            let _ = positions.send(seq);
        })),
    };
    let name = if eager { "ccr-standby" } else { "ccr-snapshot" };
    let thread = std::thread::Builder::new()
        .name(name.into())
        .spawn(move || then(replica.run(batches)))
        .map_err(|e| JournalError::Io { path: dir.to_owned(), source: e })?;
    Ok((Applying { feed: Feed { tx, lag, max: 1 << 30 }, applied }, thread))
}

/// A replica's feed, and the last record it applied.
struct Applying {
    feed: Feed,
    applied: Arc<AtomicU64>,
}

/// Feeds the standby's router the journal from record `from` on, as etcd
/// gets it, and measures how far behind the router is; starts again after
/// a watch is lost. Returns only on what it cannot get past: the journal no
/// longer holds what this node needs, or the router could not apply a batch.
async fn follow(client: Client, keys: Keys, mut from: u64, router: Applying, metrics: ClusterMetrics) -> NodeError {
    // The last record of each batch sent and not yet applied, and when it came.
    let mut unapplied: VecDeque<(u64, Instant)> = VecDeque::new();
    let mut measure = tokio::time::interval(Duration::from_millis(250));
    loop {
        let mut follower = match Follower::start(&mut client.clone(), &keys, from).await {
            Ok(f) => f,
            Err(e @ ClusterError::Behind { .. }) => return e.into(),
            Err(e) => {
                warn!(error = %e, "standby: following the journal failed; trying again");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        loop {
            let next = tokio::select! {
                next = follower.next() => next,
                _ = measure.tick() => {
                    lag(&router, &mut unapplied, from, &metrics);
                    continue;
                }
            };
            match next {
                Ok(batch) => {
                    from = batch.end();
                    unapplied.push_back((from - 1, Instant::now()));
                    if !router.feed.send(batch.bytes) {
                        return NodeError::Replay("the standby's router stopped (see its log)".into());
                    }
                    lag(&router, &mut unapplied, from, &metrics);
                }
                Err(e) => {
                    warn!(error = %e, "standby: the journal watch ended; following again from record {from}");
                    break;
                }
            }
        }
    }
}

/// Sets the replication lag: records given and not applied, and the age of
/// the oldest of them.
fn lag(router: &Applying, unapplied: &mut VecDeque<(u64, Instant)>, from: u64, metrics: &ClusterMetrics) {
    let applied = router.applied.load(Ordering::Acquire);
    while unapplied.front().is_some_and(|&(last, _)| last <= applied) {
        unapplied.pop_front();
    }
    metrics.lag_records.set((from - 1).saturating_sub(applied) as f64);
    metrics.lag_seconds.set(unapplied.front().map_or(0.0, |(_, at)| at.elapsed().as_secs_f64()));
}

/// Keeps `status` told who leads, from the leader key.
async fn watch_leader(mut client: Client, keys: Keys, status: watch::Sender<Status>, metrics: ClusterMetrics) {
    loop {
        let watched = async {
            let current = client.get(keys.leader(), None).await?;
            let leader = current.kvs().first().and_then(|kv| Leader::parse(kv.value(), kv.create_revision()));
            tell(&status, leader, &metrics);
            let revision = current.header().map_or(0, |h| h.revision());
            let options = etcd_client::WatchOptions::new().with_start_revision(revision + 1);
            let (_watcher, mut stream) = client.watch(keys.leader(), Some(options)).await?;
            while let Some(response) = stream.message().await? {
                for event in response.events() {
                    let leader = match (event.event_type(), event.kv()) {
                        (EventType::Put, Some(kv)) => Leader::parse(kv.value(), kv.create_revision()),
                        _ => None,
                    };
                    tell(&status, leader, &metrics);
                }
            }
            Ok::<(), etcd_client::Error>(())
        };
        if let Err(e) = watched.await {
            warn!(error = %e, "watching the leader key failed; trying again");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn tell(status: &watch::Sender<Status>, leader: Option<Leader>, metrics: &ClusterMetrics) {
    metrics.epoch.set(leader.as_ref().map_or(0, |l| l.epoch) as f64);
    status.send_modify(|s| {
        s.epoch = leader.as_ref().map_or(0, |l| l.epoch);
        s.active_address = leader.map(|l| l.address);
    });
}

/// Says in etcd how far each of this node's snapshots goes.
async fn publish_positions(mut client: Client, keys: Keys, node: String, mut seqs: mpsc::UnboundedReceiver<u64>) {
    while let Some(mut seq) = seqs.recv().await {
        while let Ok(newer) = seqs.try_recv() {
            seq = newer;
        }
        if let Err(e) = members::publish(&mut client, &keys, &node, seq).await {
            warn!(error = %e, seq, "could not say how far this node's snapshot goes");
        }
    }
}

/// The active's pruning: every `interval`, the batches every node's
/// snapshot covers are deleted and etcd compacted to that revision.
async fn prune(mut client: Client, keys: Keys, epoch: i64, retention: Duration, interval: Duration) {
    let mut every = tokio::time::interval(interval.max(Duration::from_millis(100)));
    every.tick().await;
    loop {
        every.tick().await;
        let pruned = async {
            let positions = members::positions(&mut client, &keys).await?;
            let Some(upto) = members::prunable(&positions, SystemTime::now(), retention) else { return Ok(None) };
            if etcd_journal::first_held(&mut client, &keys).await?.is_none_or(|first| first > upto) {
                return Ok(None);
            }
            let revision = etcd_journal::prune(&mut client, &keys, epoch, upto).await?;
            if revision > 0 {
                client.compact(revision, None).await?;
            }
            Ok::<_, ClusterError>(Some((upto, revision)))
        };
        match pruned.await {
            Ok(Some((upto, revision))) => info!(upto, revision, "journal in etcd pruned and compacted"),
            Ok(None) => {}
            Err(ClusterError::Fenced { .. }) => return,
            Err(e) => error!(error = %e, "pruning the journal in etcd failed"),
        }
    }
}
