//! The QUIC server: accepts connections, runs each RPC on its own stream, and
//! fans routing events out to subscribers.
//!
//! ```text
//! quinn accept loop ─▶ connection task ─▶ stream task ─▶ CoreHandle ─▶ core thread
//!                                                                     │ events
//! subscribers ◀─ bounded channels ◀─ dispatcher task ◀── unbounded ◀──┘
//! ```
//! Only the core thread touches the router; the dispatcher alone owns the
//! subscriber table, so no lock is shared between them. Who owns which
//! contact and agent is the core's business (`ccr_core` sessions): a
//! connection is one session, opened and lost through core commands.
//!
//! # Layout
//! - this module: start-up, the accept loop, reloads and the stop.
//! - [`connection`]: one connection — its role, its session, its streams.
//! - [`handshake`]: why a handshake failed, counted and logged (bounded).
//! - [`rpc`]: one stream — the header, unary calls, admission.
//! - [`gateway_stream`]: the pipelined `Gateway/Stream`.
//! - [`events`]: `Events/Subscribe` and the dispatcher.
//! - [`standby`]: what a cluster's standby serves (refusals naming the
//!   active, and `Admin/Health`) until it takes over (`crate::cluster`).

mod connection;
mod event_budget;
mod events;
mod gateway_stream;
mod handshake;
mod history;
mod rpc;
mod standby;
mod supervision;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ccr_core::{Router, RouterConfig};
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{error, info, warn};

use crate::clock::{Clock, ManualClock, SystemClock};
use crate::config::{Catalog, Config};
use crate::core_thread::{self, CoreHandle};
use crate::journal::{self, Journal, JournalMetrics, Names};
use crate::metrics::{self, Metrics, Refusal};

pub use events::Outgoing;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("routing configuration: {0}")]
    Config(#[from] ccr_core::ConfigErrors),
    #[error("starting the core thread: {0}")]
    Thread(std::io::Error),
    #[error("journal: {0}")]
    Journal(#[from] crate::journal::JournalError),
    #[error("binding the metrics address {addr}: {source}")]
    Metrics { addr: std::net::SocketAddr, source: std::io::Error },
    #[error(transparent)]
    DataDir(#[from] crate::datadir::DataDirError),
    /// The journal could not write or sync: nothing more can be made
    /// durable, so ccrd stops rather than acknowledge what it may lose. The
    /// next start recovers what was acknowledged.
    #[error("the journal failed ({0}): stopped; a restart recovers every acknowledged command")]
    JournalFailed(String),
    #[error("cluster: {0}")]
    Cluster(#[from] crate::cluster::NodeError),
    /// This node led its cluster and no longer does (its lease ended, or a
    /// write was fenced off): it stopped serving as the active, and starts
    /// again as a standby. Nothing it acknowledged is lost: etcd has it.
    #[error("no longer the active ({0})")]
    Demoted(String),
}

/// What tells a running ccrd to stop or to reload its configuration, and
/// where its time comes from.
pub struct Control {
    pub shutdown: Pin<Box<dyn Future<Output = ()> + Send>>,
    /// Each message re-reads the configuration file (SIGHUP).
    pub reload: mpsc::UnboundedReceiver<()>,
    pub time: TimeSource,
}

impl Control {
    /// Stops when `shutdown` resolves; never reloads; runs on the system clock.
    pub fn on(shutdown: impl Future<Output = ()> + Send + 'static) -> Self {
        let (_, reload) = mpsc::unbounded_channel();
        Control { shutdown: Box::pin(shutdown), reload, time: TimeSource::System }
    }
}

/// Where the core's `now` comes from.
pub enum TimeSource {
    System,
    /// A clock that starts at the system time and then moves only by
    /// [`Advance`]: tests drive the grace, offer timeouts and the metrics
    /// sampler without sleeping on real timers.
    Manual(mpsc::UnboundedReceiver<Advance>),
}

/// Moves a manual clock forward; `done` is answered once the core has fired
/// every timer due by then and the metrics sampler has sampled.
pub struct Advance {
    pub by: Duration,
    pub done: oneshot::Sender<()>,
}

/// Refusals since start, reported by `Admin/Health` (and to metrics).
#[derive(Default)]
struct Refusals {
    connections: AtomicU64,
    requests: AtomicU64,
    protocol_errors: AtomicU64,
}

/// What every connection and stream task needs.
#[derive(Clone)]
struct Shared {
    core: CoreHandle,
    /// ccrd's clock: what a time in state or a wait is counted to.
    clock: Arc<dyn Clock>,
    /// Its time when this run started serving.
    started_at: ccr_core::Time,
    catalog: Arc<Catalog>,
    subscribe: mpsc::UnboundedSender<events::Change>,
    next_subscriber: Arc<AtomicU64>,
    max_message: usize,
    /// Calls open at once on one connection; QUIC's stream credit is twice
    /// this, so a call beyond it is refused with a status, not left waiting.
    max_streams: usize,
    subscriber_buffer: usize,
    started: Instant,
    /// Client certificates are required and carry the role.
    roles_from_certificates: bool,
    refusals: Arc<Refusals>,
    /// Log lines about refused handshakes, bounded.
    handshake_log: Arc<handshake::LogBudget>,
    open: Arc<AtomicUsize>,
    metrics: Arc<Metrics>,
    /// Where the configuration came from, for reloads.
    config_path: Option<std::path::PathBuf>,
    /// Streams being served, so that a stop can let them finish.
    streams: Arc<AtomicUsize>,
    /// Calls in flight towards the core, by number and by request bytes.
    pending: Arc<Pending>,
    /// Subscriptions open, over all connections.
    subscriptions: Arc<tokio::sync::Semaphore>,
    max_subscriptions_per_connection: usize,
    /// Set when the journal can no longer write: nothing is acknowledged.
    journal_failure: Arc<journal::Failure>,
    /// The next session id to hand out (above every one the core has seen).
    next_session: Arc<AtomicU64>,
    /// In a cluster: this node's role and who leads.
    cluster: Option<watch::Receiver<crate::cluster::Status>>,
    /// Becomes true when a demoted active closes its connections.
    closing: watch::Receiver<bool>,
    /// Becomes true when ccrd stops: streams stop reading new requests, and
    /// a connection that ends then is not a lost session (a stop is not a
    /// loss: the restart gives every session its grace).
    stopping: watch::Receiver<bool>,
}

impl Shared {
    /// Counts an admission refusal, for `Admin/Health` and for Prometheus.
    fn refused(&self, reason: Refusal) {
        let counter = match reason {
            Refusal::PendingLimit
            | Refusal::StreamLimit
            | Refusal::SubscriptionLimit
            | Refusal::ContactLimit
            | Refusal::ContextLimit => &self.refusals.requests,
            Refusal::MetricsLimit => return self.metrics.refusal(reason),
            Refusal::ConnectionLimit
            | Refusal::NoRole
            | Refusal::NoCertificate
            | Refusal::UnknownCa
            | Refusal::CertificateExpired
            | Refusal::BadCertificate => &self.refusals.connections,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        self.metrics.refusal(reason);
    }

    /// Counts a stream refused for breaking the protocol.
    fn protocol_error(&self, kind: metrics::ProtocolError) {
        self.refusals.protocol_errors.fetch_add(1, Ordering::Relaxed);
        self.metrics.protocol_error(kind);
    }

    fn is_stopping(&self) -> bool {
        *self.stopping.borrow()
    }
}

/// Calls in flight towards the core, bounded in number and in the bytes of
/// their requests (what they hold until the core has them), and the events
/// the dispatcher has yet to take: beyond any, a call is refused at once
/// instead of queueing.
struct Pending {
    calls: Arc<tokio::sync::Semaphore>,
    bytes: Arc<tokio::sync::Semaphore>,
    /// Events sent by the core and not yet taken by the dispatcher.
    events: Arc<AtomicUsize>,
    max_events: usize,
}

/// One call's place among the pending, held until its reply.
pub(super) struct Admitted {
    _call: tokio::sync::OwnedSemaphorePermit,
    _bytes: tokio::sync::OwnedSemaphorePermit,
}

impl Pending {
    /// A place for a call of `bytes` request bytes, if there is room.
    fn try_admit(&self, bytes: usize) -> Option<Admitted> {
        if self.events.load(Ordering::Relaxed) >= self.max_events {
            return None;
        }
        let call = self.calls.clone().try_acquire_owned().ok()?;
        let n = u32::try_from(bytes.max(1)).ok()?;
        let bytes = self.bytes.clone().try_acquire_many_owned(n).ok()?;
        Some(Admitted { _call: call, _bytes: bytes })
    }
}

/// Counts a stream as open while it lives.
struct StreamGuard(Arc<AtomicUsize>);

impl StreamGuard {
    fn new(streams: &Arc<AtomicUsize>) -> Self {
        streams.fetch_add(1, Ordering::AcqRel);
        StreamGuard(streams.clone())
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Runs ccrd on a bound endpoint, with metrics on the configured address,
/// until `shutdown` resolves; see [`serve`].
pub async fn run(endpoint: quinn::Endpoint, config: Config, control: Control) -> Result<(), ServerError> {
    let addr = config.server.metrics_listen;
    // After a demotion, the listener just closed may take a moment to go.
    let mut tries = 0;
    let metrics = loop {
        match tokio::net::TcpListener::bind(addr).await {
            Ok(listener) => break listener,
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && tries < 50 => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(source) => return Err(ServerError::Metrics { addr, source }),
        }
    };
    let bound = metrics.local_addr().map_or_else(|_| addr.to_string(), |a| a.to_string());
    info!(metrics = %bound, "metrics listening: /metrics, /healthz, /readyz");
    serve(endpoint, Some(metrics), config, control).await
}

/// [`run`] with the metrics listener bound by the caller (or none).
///
/// Stopping (`control.shutdown`) logs nobody out: it stops accepting, lets
/// the calls in flight finish, makes the journal durable, ends every stream
/// with a trailer, and closes. The next start gives every session its grace,
/// as after a crash. A journal failure stops it the same way, with
/// [`ServerError::JournalFailed`].
pub async fn serve(
    endpoint: quinn::Endpoint,
    metrics_listener: Option<tokio::net::TcpListener>,
    config: Config,
    mut control: Control,
) -> Result<(), ServerError> {
    // One writer per data directory: held until this function returns.
    let _lock = crate::datadir::lock(&config.server.data_dir)?;
    // Before the first router: clients choose ids, so they must not know
    // the hash behind the core's tables.
    ccr_core::key_hash_tables(random_secret());
    let catalog = Arc::new(config.catalog.clone());
    let metrics = match config.cluster {
        Some(_) => Metrics::for_cluster(&catalog),
        None => Metrics::new(&catalog),
    };
    let max_scrapes = config.server.max_metrics_connections;
    // Ends with this function on every way out (a demoted node binds the
    // address again at once).
    let _exporter =
        metrics_listener.map(|l| AbortOnDrop(tokio::spawn(metrics::exporter::run(l, metrics.clone(), max_scrapes))));
    let system = SystemClock::new();
    let (clock, mut advances): (Arc<dyn Clock>, _) = match control.time {
        TimeSource::System => (Arc::new(system), None),
        TimeSource::Manual(advances) => {
            let manual = ManualClock::default();
            manual.set(system.now());
            (Arc::new(manual.clone()), Some((manual, advances)))
        }
    };
    let last_snapshot_ms = Arc::new(AtomicU64::new(0));
    let failure = Arc::new(journal::Failure::default());
    let journal_metrics = JournalMetrics {
        bytes: metrics.journal_bytes.clone(),
        fsync: metrics.journal_fsync.clone(),
        last_snapshot_ms: last_snapshot_ms.clone(),
    };
    let mut cluster_node = None;
    let (router, journal, recovered) = if let Some(cluster_config) = &config.cluster {
        let (status, status_rx) = watch::channel(crate::cluster::Status::default());
        let cx = crate::cluster::Context {
            config: config.clone(),
            client: tokio::select! {
                client = crate::cluster::connect_when_up(cluster_config) => client?,
                _ = &mut control.shutdown => return Ok(()),
            },
            clock: clock.clone(),
            metrics: metrics.cluster.clone().expect("registered for a cluster"),
            journal_metrics,
            failure: failure.clone(),
            status,
        };
        let standby = standby::Standby {
            status: status_rx.clone(),
            max_message: config.server.max_message_bytes,
            max_connections: config.server.max_connections,
            open: Arc::default(),
            started: Instant::now(),
        };
        metrics.readiness.set(metrics::health::Ready::Standby);
        info!(
            addr = %endpoint.local_addr().map(|a| a.to_string()).unwrap_or_default(),
            node = %cluster_config.node,
            "ccrd listening as a standby (calls are refused with the active's address until this node leads)"
        );
        let takeover = tokio::select! {
            takeover = crate::cluster::stand_by(&cx) => match takeover {
                Ok(takeover) => takeover,
                // Start again as a standby (it resigned).
                Err(crate::cluster::NodeError::TakeoverFailed(why)) => return Err(ServerError::Demoted(why)),
                Err(e) => return Err(e.into()),
            },
            _ = standby::serve(&endpoint, standby) => return Ok(()),
            _ = &mut control.shutdown => {
                info!("stopped while a standby");
                endpoint.close(0u32.into(), b"shutdown");
                return Ok(());
            }
        };
        let crate::cluster::Takeover { router, journal, leadership, tasks } = takeover;
        cluster_node = Some(ActiveNode { leadership, _tasks: tasks, _status: cx.status, status: status_rx });
        (router, Some(journal), true)
    } else if config.journal.enabled {
        // Recovery reads and replays the whole journal tail: off the runtime's threads.
        let (dir, router_config, names) =
            (journal::dir_in(&config.server.data_dir), config.router.clone(), Names::of(&catalog));
        let (now, options, on_failure) = (clock.now(), config.journal.options.clone(), failure.clone());
        let opened = tokio::task::spawn_blocking(move || {
            Journal::open(&dir, &router_config, names, now, options, journal_metrics, on_failure)
        })
        .await
        .map_err(|e| ServerError::Thread(std::io::Error::other(e.to_string())))??;
        if let Some(report) = &opened.recovery {
            metrics.recovery_duration.set(report.duration.as_secs_f64());
        }
        let recovered = opened.recovery.is_some();
        (opened.router, Some(opened.journal), recovered)
    } else {
        warn!("journal disabled: a restart forgets every contact and agent");
        (Router::new(config.router.clone())?, None, false)
    };
    if recovered {
        let sessions = router.session_counts();
        info!(
            agents = router.agent_count(),
            contacts = router.contact_count(),
            sessions = sessions.live + sessions.in_grace,
            grace_seconds = router.config().session_grace.as_secs(),
            "waiting for desktops and gateways to claim what was recovered"
        );
    }
    let next_session = Arc::new(AtomicU64::new(router.last_session().0 + 1));
    let (event_tx, event_rx) = mpsc::unbounded_channel();
    // Events on their way to the dispatcher: the core never waits for it, so
    // while it is behind, calls are refused instead (`Pending`).
    let event_backlog = Arc::new(AtomicUsize::new(0));
    let backlog = event_backlog.clone();
    let deliver = move |outgoing: Outgoing| {
        backlog.fetch_add(1, Ordering::Relaxed);
        let _ = event_tx.send(outgoing);
    };
    let mut options = core_thread::Options::new(config.server.core_spin);
    options.journal = journal;
    if config.server.decision_timing {
        let decision = metrics.decision.clone();
        options.observe = Some(Box::new(move |d: Duration| decision.record(d.as_secs_f64())));
    }
    let (core, core_thread) =
        core_thread::spawn(router, clock.clone(), options, events::prepare, deliver).map_err(ServerError::Thread)?;
    let (subscribe, subscribe_rx) = mpsc::unbounded_channel();
    let budget = event_budget::EventBudget::new(config.server.max_queued_event_bytes);
    let inbox = events::Inbox { events: event_rx, backlog: event_backlog.clone(), changes: subscribe_rx };
    let dispatcher = tokio::spawn(events::dispatch(catalog.clone(), metrics.clone(), inbox, budget, clock.clone()));
    let snapshot_clock = config.journal.enabled.then_some(last_snapshot_ms);
    let (sample, cadence) = match advances {
        None => (None, metrics::sampler::Cadence::EverySecond),
        Some(_) => {
            let (sample, requests) = mpsc::unbounded_channel();
            (Some(sample), metrics::sampler::Cadence::OnRequest(requests))
        }
    };
    let sampler = tokio::spawn(metrics::sampler::run(
        core.clone(),
        metrics.clone(),
        clock.clone(),
        cadence,
        config.server.service_level_window,
        snapshot_clock,
    ));
    let (stop, stopping) = watch::channel(false);
    let (close, closing) = watch::channel(false);
    let shared = Shared {
        core: core.clone(),
        clock: clock.clone(),
        started_at: clock.now(),
        catalog,
        subscribe,
        next_subscriber: Arc::new(AtomicU64::new(0)),
        max_message: config.server.max_message_bytes,
        max_streams: config.server.max_streams_per_connection as usize,
        subscriber_buffer: config.server.subscriber_buffer,
        started: Instant::now(),
        roles_from_certificates: config.tls.client_ca.is_some(),
        pending: Arc::new(Pending {
            calls: Arc::new(tokio::sync::Semaphore::new(config.server.max_pending_requests)),
            bytes: Arc::new(tokio::sync::Semaphore::new(
                config.server.max_pending_bytes.min(tokio::sync::Semaphore::MAX_PERMITS),
            )),
            events: event_backlog,
            max_events: config.server.max_event_backlog,
        }),
        subscriptions: Arc::new(tokio::sync::Semaphore::new(config.server.max_subscriptions)),
        max_subscriptions_per_connection: config.server.max_subscriptions_per_connection as usize,
        streams: Arc::new(AtomicUsize::new(0)),
        config_path: config.server.config_path.clone(),
        refusals: Arc::default(),
        handshake_log: Arc::default(),
        open: Arc::new(AtomicUsize::new(0)),
        metrics,
        journal_failure: failure.clone(),
        next_session,
        cluster: cluster_node.as_ref().map(|n| n.status.clone()),
        closing,
        stopping,
    };
    let open = shared.open.clone();
    shared.metrics.readiness.set(metrics::health::Ready::Serving);
    info!(addr = %endpoint.local_addr().map(|a| a.to_string()).unwrap_or_default(), "ccrd listening");
    let mut failed = None;
    loop {
        let incoming = tokio::select! {
            incoming = endpoint.accept() => match incoming {
                Some(incoming) => incoming,
                None => break,
            },
            _ = &mut control.shutdown => {
                shared.metrics.readiness.set(metrics::health::Ready::Stopping);
                break;
            }
            why = failure.wait() => {
                shared.metrics.readiness.set(metrics::health::Ready::JournalFailed);
                shared.metrics.journal_failed.set(1.0);
                match cluster_node {
                    Some(_) => error!(error = %why, "journal append failed: no longer the active; demoting to standby"),
                    None => error!(error = %why, "journal failed: stopping (a restart recovers every acknowledged command)"),
                }
                failed = Some(why);
                break;
            }
            () = leadership_lost(&mut cluster_node) => {
                shared.metrics.readiness.set(metrics::health::Ready::JournalFailed);
                shared.metrics.journal_failed.set(1.0);
                let why = "the lease on the leader key was lost".to_owned();
                error!("{why}: no longer the active (nothing more is acknowledged); demoting to standby");
                failure.set(why.clone());
                failed = Some(why);
                break;
            }
            Some(advance) = next_advance(&mut advances) => {
                if let Some((manual, _)) = &advances {
                    move_clock(manual, advance, &core, sample.as_ref()).await;
                }
                continue;
            }
            Some(()) = control.reload.recv() => {
                match rpc::reload(&shared).await {
                    Ok(changes) => info!(%changes, "configuration reloaded (SIGHUP)"),
                    Err(status) => warn!(why = %status.message, "configuration not reloaded (SIGHUP)"),
                }
                continue;
            }
        };
        // Admission control before the handshake costs us anything.
        if open.load(Ordering::Relaxed) >= config.server.max_connections {
            warn!(remote = %incoming.remote_address(), "refused: connection limit");
            shared.refused(Refusal::ConnectionLimit);
            incoming.refuse();
            continue;
        }
        open.fetch_add(1, Ordering::Relaxed);
        let (shared, open) = (shared.clone(), open.clone());
        tokio::spawn(async move {
            connection::serve(incoming, shared).await;
            open.fetch_sub(1, Ordering::Relaxed);
        });
    }
    let demoting = failed.is_some() && cluster_node.is_some();
    let ending = if demoting { Ending::Demotion(close) } else { Ending::Stop };
    stop_serving(endpoint, shared, core, core_thread, stop, failed.is_some(), ending).await;
    dispatcher.abort();
    sampler.abort();
    match (failed, cluster_node) {
        (Some(why), Some(node)) => {
            // Nothing more is released: a standby may lead at once rather
            // than after the lease (a stray append of ours still in flight
            // is fenced off by its epoch, or deleted by its settle).
            match tokio::time::timeout(Duration::from_secs(2), node.leadership.resign()).await {
                Ok(Ok(())) => info!("resigned the leadership: a standby takes over at once"),
                _ => warn!("could not resign the leadership: a standby takes over when the lease ends"),
            }
            Err(ServerError::Demoted(why))
        }
        (Some(why), None) => Err(ServerError::JournalFailed(why)),
        (None, Some(node)) => {
            // A planned handover: everything acknowledged is in etcd; a
            // standby takes over now instead of after the lease's TTL.
            match node.leadership.resign().await {
                Ok(()) => info!("stepped down: a standby takes over at once"),
                Err(e) => warn!(error = %e, "could not step down: a standby takes over when the lease ends"),
            }
            Ok(())
        }
        (None, None) => Ok(()),
    }
}

/// A task aborted when this is dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// What a cluster's active holds while it serves.
struct ActiveNode {
    leadership: ccr_cluster::Leadership,
    _tasks: crate::cluster::Tasks,
    _status: watch::Sender<crate::cluster::Status>,
    status: watch::Receiver<crate::cluster::Status>,
}

/// Resolves when the active's lease is lost; never on a single node.
async fn leadership_lost(node: &mut Option<ActiveNode>) {
    match node {
        Some(node) => node.leadership.lost().await,
        None => std::future::pending().await,
    }
}

async fn next_advance(advances: &mut Option<(ManualClock, mpsc::UnboundedReceiver<Advance>)>) -> Option<Advance> {
    match advances {
        Some((_, requests)) => requests.recv().await,
        None => std::future::pending().await,
    }
}

/// Moves the manual clock, fires what is due, takes a metrics sample, and
/// answers once all of it is done.
async fn move_clock(clock: &ManualClock, advance: Advance, core: &CoreHandle, sample: Option<&SampleRequests>) {
    clock.advance(advance.by);
    if core.tick().is_err() {
        return;
    }
    // The query is served after the tick: the timers have fired.
    let _ = core.query(|_| ()).await;
    if let Some(sample) = sample {
        let (done, sampled) = oneshot::channel();
        if sample.send(done).is_ok() {
            let _ = sampled.await;
        }
    }
    let _ = advance.done.send(());
}

type SampleRequests = mpsc::UnboundedSender<oneshot::Sender<()>>;

/// How serving ends.
enum Ending {
    /// ccrd stops: the endpoint closes with everything on it.
    Stop,
    /// A cluster's active demoted: its connections close, one by one (on
    /// this signal); the endpoint stays open for the standby it becomes.
    Demotion(watch::Sender<bool>),
}

/// The stop: no new connection or request, the calls in flight answered,
/// the journal durable and closed, every stream ended with its trailer,
/// then the connections closed. Nobody is logged out.
async fn stop_serving(
    endpoint: quinn::Endpoint,
    shared: Shared,
    core: CoreHandle,
    core_thread: std::thread::JoinHandle<Router>,
    stop: watch::Sender<bool>,
    journal_failed: bool,
    ending: Ending,
) {
    info!("shutting down");
    if matches!(ending, Ending::Stop) {
        endpoint.set_server_config(None);
    }
    let _ = stop.send(true);
    // Calls already with the core get their answers: the core thread stops
    // after the requests queued before this, and the journal releases them
    // once durable.
    core.shutdown();
    let _ = tokio::task::spawn_blocking(move || core_thread.join()).await;
    drop(core);
    // Streams write what they hold and their trailers (bounded: a client
    // that does not read cannot hold the stop).
    let drain_until = Instant::now() + if journal_failed { Duration::ZERO } else { Duration::from_secs(2) };
    while shared.streams.load(Ordering::Acquire) > 0 && Instant::now() < drain_until {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let left = shared.streams.load(Ordering::Acquire);
    if left > 0 && !journal_failed {
        warn!(streams = left, "stop: streams whose clients do not read were cut off");
    }
    match ending {
        Ending::Stop => {
            endpoint.close(0u32.into(), b"shutdown");
            if tokio::time::timeout(Duration::from_secs(2), endpoint.wait_idle()).await.is_err() {
                warn!("stop: connections not closed after 2 s; stopping anyway");
            }
        }
        Ending::Demotion(close) => {
            let _ = close.send(true);
            let until = Instant::now() + Duration::from_secs(2);
            while shared.open.load(Ordering::Acquire) > 0 && Instant::now() < until {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    }
}

/// 128 bits the OS randomness behind std's `RandomState` makes unpredictable.
fn random_secret() -> [u64; 2] {
    use std::hash::BuildHasher;
    let state = std::collections::hash_map::RandomState::new();
    [state.hash_one(0x5eed_u64), state.hash_one(0xc0ffee_u64)]
}

/// What a reload changed, for the log.
fn describe_changes(old: &RouterConfig, new: &RouterConfig) -> String {
    let mut changed: Vec<String> =
        old.queues.iter().zip(&new.queues).filter(|(a, b)| a != b).map(|(q, _)| format!("queue {}", q.name)).collect();
    if old.tiers != new.tiers {
        changed.push("tiers".into());
    }
    for (field, differs) in [
        ("short_abandon", old.short_abandon != new.short_abandon),
        ("explain", old.explain != new.explain),
        ("offer_history", old.offer_history != new.offer_history),
        ("ewt_window", old.ewt_window != new.ewt_window),
        ("session_grace", old.session_grace != new.session_grace),
    ] {
        if differs {
            changed.push(field.into());
        }
    }
    if changed.is_empty() {
        "nothing".into()
    } else {
        changed.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(calls: usize, bytes: usize, max_events: usize) -> Pending {
        Pending {
            calls: Arc::new(tokio::sync::Semaphore::new(calls)),
            bytes: Arc::new(tokio::sync::Semaphore::new(bytes)),
            events: Arc::new(AtomicUsize::new(0)),
            max_events,
        }
    }

    /// A call is admitted while there is room in number, in bytes and in
    /// the dispatcher's backlog; its place comes back when it is done.
    #[test]
    fn admission_is_bounded_by_calls_bytes_and_the_event_backlog() {
        let p = pending(2, 100, 10);
        let first = p.try_admit(60).expect("room");
        assert!(p.try_admit(60).is_none(), "over the bytes");
        let second = p.try_admit(30).expect("bytes left");
        assert!(p.try_admit(1).is_none(), "over the calls, with bytes left");
        drop(first);
        drop(second);
        p.events.store(10, Ordering::Relaxed);
        assert!(p.try_admit(1).is_none(), "the dispatcher is behind");
        p.events.store(9, Ordering::Relaxed);
        assert!(p.try_admit(100).is_some());
        assert!(p.try_admit(101).is_none(), "one request larger than the whole budget");
    }
}
