//! The QUIC server: accepts connections, runs each RPC on its own stream, and
//! fans routing events out to subscribers.
//!
//! ```text
//! quinn accept loop ─▶ connection task ─▶ stream task ─▶ CoreHandle ─▶ core thread
//!                                                                     │ events
//! subscribers ◀─ bounded channels ◀─ dispatcher task ◀── unbounded ◀──┘
//! ```
//! Only the core thread touches the router; the dispatcher alone owns the
//! subscriber table, so no lock is shared between them.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ccr_core::{AgentId, CommandError, ContactId, Event, Reply, Router};
use ccr_proto::v1 as pb;
use ccr_proto::wire::{self, Code, Frame};
use pb::Status;
use prost::Message;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use crate::clock::{Clock, SystemClock};
use crate::config::{Catalog, Config};
use crate::convert::{self, Audience};
use crate::core_thread::{self, CoreHandle};
use crate::journal::{self, Journal, JournalMetrics, Names};
use crate::metrics::{Metrics, ServiceLevelWindow, OUTCOMES};
use crate::tls::Role;

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
}

/// An event leaving the core thread, with the contact's context for offers.
type Outgoing = (Event, Option<Vec<(String, String)>>);

struct Subscriber {
    agents: Vec<AgentId>,
    tx: mpsc::Sender<pb::RoutingEvent>,
    /// Set by the dispatcher when it drops this subscriber for falling
    /// behind, so that the stream can end with the reason.
    lagged: Arc<AtomicBool>,
}

/// What one connection has set up, so that losing it can be cleaned up: the
/// agents it logged in and the contacts it enqueued. Touched by the calls that
/// change it, never by routing.
struct Session {
    role: Role,
    agents: Mutex<HashSet<AgentId>>,
    contacts: Mutex<Vec<ContactId>>,
    /// A sweep of `contacts` is under way (one at a time, see [`Session::own`]).
    sweeping: AtomicBool,
}

/// Clears [`Session::sweeping`] however the sweep ends, cancelled included.
struct SweepGuard<'a>(&'a AtomicBool);

impl Drop for SweepGuard<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// Contacts and agents nobody holds (their connection went away, or ccrd
/// restarted), with the end of their grace period. A call naming one from
/// any connection adopts it.
#[derive(Default)]
struct OrphanTable {
    contacts: HashMap<ContactId, Instant>,
    agents: HashMap<AgentId, Instant>,
}

type Orphans = Arc<Mutex<OrphanTable>>;

/// Refusals since start, reported by `Admin/Health` (and to metrics later).
#[derive(Default)]
struct Refusals {
    connections: AtomicU64,
    requests: AtomicU64,
    protocol_errors: AtomicU64,
}

impl Shared {
    /// Counts an admission refusal, for `Admin/Health` and for Prometheus.
    fn refused(&self, reason: &'static str) {
        let counter = if reason == "pending_limit" { &self.refusals.requests } else { &self.refusals.connections };
        counter.fetch_add(1, Ordering::Relaxed);
        self.metrics.refusal(reason);
    }

    /// Counts a stream refused for breaking the protocol.
    fn protocol_error(&self, kind: &'static str) {
        self.refusals.protocol_errors.fetch_add(1, Ordering::Relaxed);
        self.metrics.protocol_error(kind);
    }
}

/// What every stream task needs.
#[derive(Clone)]
struct Shared {
    core: CoreHandle,
    catalog: Arc<Catalog>,
    subscribe: mpsc::UnboundedSender<Subscriber>,
    max_message: usize,
    subscriber_buffer: usize,
    started: Instant,
    gateway_grace: Duration,
    orphans: Orphans,
    /// Client certificates are required and carry the role.
    roles_from_certificates: bool,
    refusals: Arc<Refusals>,
    open: Arc<AtomicUsize>,
    metrics: Arc<Metrics>,
    /// Where the configuration came from, for reloads.
    config_path: Option<std::path::PathBuf>,
    /// Unary calls being served, so that shutdown can let them finish.
    in_flight: Arc<AtomicUsize>,
    /// Commands and queries in flight towards the core; beyond the limit a
    /// call is refused at once instead of queueing without bound.
    pending: Arc<tokio::sync::Semaphore>,
    /// Set when the journal can no longer write: nothing is acknowledged.
    journal_failed: Option<Arc<AtomicBool>>,
}

/// Runs ccrd on a bound endpoint, with metrics on the configured address,
/// until `shutdown` resolves; then stops accepting, lets calls in flight
/// finish, closes connections, and stops the core thread.
pub async fn run(
    endpoint: quinn::Endpoint,
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServerError> {
    let addr = config.server.metrics_listen;
    let metrics = tokio::net::TcpListener::bind(addr).await.map_err(|source| ServerError::Metrics { addr, source })?;
    serve(endpoint, Some(metrics), config, shutdown).await
}

/// [`run`] with the metrics listener bound by the caller (or none).
pub async fn serve(
    endpoint: quinn::Endpoint,
    metrics_listener: Option<tokio::net::TcpListener>,
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServerError> {
    let catalog = Arc::new(config.catalog.clone());
    let metrics = Metrics::new(&catalog);
    let clock = SystemClock::new();
    let last_snapshot_ms = Arc::new(AtomicU64::new(0));
    let (router, journal, recovered) = if config.journal.enabled {
        let journal_metrics = JournalMetrics {
            bytes: metrics.journal_bytes.clone(),
            fsync: metrics.journal_fsync.clone(),
            last_snapshot_ms: last_snapshot_ms.clone(),
        };
        // Recovery reads and replays the whole journal tail: off the runtime's threads.
        let (dir, router_config, names) =
            (journal::dir_in(&config.server.data_dir), config.router.clone(), Names::of(&catalog));
        let (now, options) = (clock.now(), config.journal.options.clone());
        let opened = tokio::task::spawn_blocking(move || {
            Journal::open(&dir, &router_config, names, now, options, journal_metrics)
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
    let journal_failed = journal.as_ref().map(|j| j.failed());
    // Who was logged in and what was queued before a restart: their desktops
    // and gateways get the grace period to come back and claim them.
    let (recovered_agents, recovered_contacts) = if recovered {
        let snapshot = router.snapshot();
        (
            snapshot.agents.iter().map(|a| a.id).collect::<Vec<_>>(),
            snapshot.contacts.iter().map(|c| c.id).collect::<Vec<_>>(),
        )
    } else {
        (Vec::new(), Vec::new())
    };
    let (event_tx, event_rx) = mpsc::unbounded_channel();
    let prepare = |router: &Router, event: Event| -> Outgoing {
        let context = match &event {
            Event::Offered { contact, .. } => router.contact_context(*contact).map(<[_]>::to_vec),
            _ => None,
        };
        (event, context)
    };
    let deliver = move |outgoing: Outgoing| {
        let _ = event_tx.send(outgoing);
    };
    let mut options = core_thread::Options::new(config.server.core_spin);
    options.journal = journal;
    if config.server.decision_timing {
        let decision = metrics.decision.clone();
        options.observe = Some(Box::new(move |d: Duration| decision.record(d.as_secs_f64())));
    }
    let (core, core_thread) =
        core_thread::spawn(router, clock, options, prepare, deliver).map_err(ServerError::Thread)?;
    let (subscribe, subscribe_rx) = mpsc::unbounded_channel();
    let dispatcher = tokio::spawn(dispatch(catalog.clone(), metrics.clone(), event_rx, subscribe_rx));
    let snapshot_clock = config.journal.enabled.then_some(last_snapshot_ms);
    let sampler =
        tokio::spawn(sample(core.clone(), metrics.clone(), config.server.service_level_window, snapshot_clock));
    let exporter = metrics_listener.map(|l| tokio::spawn(export(l, metrics.clone())));
    let shared = Shared {
        core: core.clone(),
        catalog,
        subscribe,
        max_message: config.server.max_message_bytes,
        subscriber_buffer: config.server.subscriber_buffer,
        started: Instant::now(),
        gateway_grace: config.server.gateway_grace,
        orphans: Orphans::default(),
        roles_from_certificates: config.tls.client_ca.is_some(),
        pending: Arc::new(tokio::sync::Semaphore::new(config.server.max_pending_requests)),
        in_flight: Arc::new(AtomicUsize::new(0)),
        config_path: config.server.config_path.clone(),
        refusals: Arc::default(),
        open: Arc::new(AtomicUsize::new(0)),
        metrics,
        journal_failed,
    };
    if recovered {
        info!(
            agents = recovered_agents.len(),
            contacts = recovered_contacts.len(),
            grace_seconds = shared.gateway_grace.as_secs(),
            "waiting for desktops and gateways to claim what was recovered"
        );
    }
    orphan(&shared, recovered_contacts, recovered_agents);
    let open = shared.open.clone();
    info!(addr = %endpoint.local_addr().map(|a| a.to_string()).unwrap_or_default(), "ccrd listening");
    tokio::pin!(shutdown);
    loop {
        let incoming = tokio::select! {
            incoming = endpoint.accept() => match incoming {
                Some(incoming) => incoming,
                None => break,
            },
            _ = &mut shutdown => break,
        };
        // Admission control before the handshake costs us anything.
        if open.load(Ordering::Relaxed) >= config.server.max_connections {
            warn!(remote = %incoming.remote_address(), "refused: connection limit");
            shared.refused("connection_limit");
            incoming.refuse();
            continue;
        }
        open.fetch_add(1, Ordering::Relaxed);
        let (shared, open) = (shared.clone(), open.clone());
        tokio::spawn(async move {
            let remote = incoming.remote_address();
            match incoming.await {
                Ok(connection) => {
                    info!(%remote, "connection open");
                    serve_connection(connection, shared).await;
                    info!(%remote, "connection closed");
                }
                Err(e) => debug!(%remote, error = %e, "handshake failed"),
            }
            open.fetch_sub(1, Ordering::Relaxed);
        });
    }
    // Stop accepting, let calls in flight finish (bounded), then close.
    info!("shutting down");
    endpoint.set_server_config(None);
    let drain_until = Instant::now() + Duration::from_secs(5);
    while shared.in_flight.load(Ordering::Acquire) > 0 && Instant::now() < drain_until {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    endpoint.close(0u32.into(), b"shutdown");
    endpoint.wait_idle().await;
    core.shutdown();
    drop(shared);
    let _ = tokio::task::spawn_blocking(move || core_thread.join()).await;
    dispatcher.abort();
    sampler.abort();
    if let Some(e) = exporter {
        e.abort();
    }
    Ok(())
}

/// The role of a connection: from its client certificate when those are
/// required, else unrestricted.
fn role_of(connection: &quinn::Connection, shared: &Shared) -> Option<Role> {
    if !shared.roles_from_certificates {
        return Some(Role::Any);
    }
    let identity = connection.peer_identity()?;
    let chain = identity.downcast::<Vec<rustls::pki_types::CertificateDer<'static>>>().ok()?;
    Role::of_certificate(chain.first()?)
}

async fn serve_connection(connection: quinn::Connection, shared: Shared) {
    let Some(role) = role_of(&connection, &shared) else {
        warn!(remote = %connection.remote_address(), "refused: client certificate has no role (OU gateway, agent or admin)");
        shared.refused("no_role");
        connection.close(1u32.into(), b"no role");
        return;
    };
    let session = Arc::new(Session {
        role,
        agents: Mutex::default(),
        contacts: Mutex::default(),
        sweeping: AtomicBool::new(false),
    });
    let role_label = match role {
        Role::Gateway => "gateway",
        Role::Agent => "agent",
        Role::Admin => "admin",
        Role::Any => "any",
    };
    let connections = shared.metrics.connections.get(role_label).cloned();
    if let Some(g) = &connections {
        g.increment(1.0);
    }
    loop {
        match connection.accept_bi().await {
            Ok((send, recv)) => {
                let (shared, session) = (shared.clone(), session.clone());
                tokio::spawn(async move { serve_stream(send, recv, shared, session).await });
            }
            Err(e) => {
                debug!(error = %e, "connection ended");
                break;
            }
        }
    }
    if let Some(g) = &connections {
        g.decrement(1.0);
    }
    connection_lost(&shared, &session).await;
}

/// An agent whose desktop is gone goes offline at once (its offers are
/// re-routed); a gateway's contacts wait `gateway_grace` for it to come back.
async fn connection_lost(shared: &Shared, session: &Session) {
    let agents: Vec<AgentId> = session.agents.lock().expect("session lock").drain().collect();
    for agent in agents {
        info!(agent = agent.0, "agent connection lost: offline");
        let _ = shared.core.command(ccr_core::Command::AgentDisconnected { agent }).await;
    }
    let contacts: Vec<ContactId> = std::mem::take(&mut *session.contacts.lock().expect("session lock"));
    orphan(shared, contacts, Vec::new());
}

/// Gives contacts and agents `gateway_grace` to be claimed by a new
/// connection; the contacts left then are abandoned, the agents logged out.
fn orphan(shared: &Shared, contacts: Vec<ContactId>, agents: Vec<AgentId>) {
    if contacts.is_empty() && agents.is_empty() {
        return;
    }
    let deadline = Instant::now() + shared.gateway_grace;
    {
        let mut orphans = shared.orphans.lock().expect("orphans lock");
        orphans.contacts.extend(contacts.iter().map(|&c| (c, deadline)));
        orphans.agents.extend(agents.iter().map(|&a| (a, deadline)));
    }
    let (core, orphans, grace) = (shared.core.clone(), shared.orphans.clone(), shared.gateway_grace);
    tokio::spawn(async move {
        tokio::time::sleep(grace).await;
        let (contacts, agents) = {
            let mut orphans = orphans.lock().expect("orphans lock");
            let now = Instant::now();
            let contacts: Vec<ContactId> =
                contacts.into_iter().filter(|c| orphans.contacts.get(c).is_some_and(|d| *d <= now)).collect();
            let agents: Vec<AgentId> =
                agents.into_iter().filter(|a| orphans.agents.get(a).is_some_and(|d| *d <= now)).collect();
            for c in &contacts {
                orphans.contacts.remove(c);
            }
            for a in &agents {
                orphans.agents.remove(a);
            }
            (contacts, agents)
        };
        for contact in contacts {
            if let Ok(Ok(_)) = core.command(ccr_core::Command::Abandon { contact }).await {
                info!(contact = contact.0, "gateway did not come back: contact abandoned");
            }
        }
        for agent in agents {
            if let Ok(Ok(_)) = core.command(ccr_core::Command::AgentDisconnected { agent }).await {
                info!(agent = agent.0, "desktop did not come back after the restart: agent logged out");
            }
        }
    });
}

impl Session {
    /// Remembers a contact this connection is responsible for; now and then
    /// forgets the ones the router no longer has, so the list stays small.
    ///
    /// The sweep asks the routing thread about a copy of the list while other
    /// calls of the connection keep appending to it. One sweep at a time, and
    /// nothing but appends meanwhile (a lost connection takes the whole list),
    /// so what was appended after the copy is exactly what follows its length:
    /// it is kept, never overwritten by the sweep's answer.
    async fn own(&self, contact: ContactId, shared: &Shared) {
        let len = {
            let mut contacts = self.contacts.lock().expect("session lock");
            contacts.push(contact);
            contacts.len()
        };
        if len < 4096 || !len.is_power_of_two() || self.sweeping.swap(true, Ordering::AcqRel) {
            return;
        }
        let _sweeping = SweepGuard(&self.sweeping);
        let ids = self.contacts.lock().expect("session lock").clone();
        let copied = ids.len();
        let Ok(live) = shared
            .core
            .query(move |r| ids.into_iter().filter(|c| r.contact_context(*c).is_some()).collect::<Vec<_>>())
            .await
        else {
            return;
        };
        let mut contacts = self.contacts.lock().expect("session lock");
        if contacts.len() >= copied {
            let newer = contacts.split_off(copied);
            *contacts = live;
            contacts.extend(newer);
        }
    }
}

/// A call naming a contact takes responsibility for it if its gateway left.
async fn adopt(contact: ContactId, shared: &Shared, session: &Session) {
    let orphaned = shared.orphans.lock().expect("orphans lock").contacts.remove(&contact).is_some();
    if orphaned {
        session.own(contact, shared).await;
    }
}

/// Requests of agent desktops that name their agent.
trait DeskRequest: Message + Default {
    fn agent(&self) -> AgentId;
}

macro_rules! desk_request {
    ($($t:ty),*) => {$(
        impl DeskRequest for $t {
            fn agent(&self) -> AgentId {
                AgentId(self.agent_id)
            }
        }
    )*};
}
desk_request!(pb::AcceptRequest, pb::RejectRequest, pb::CompleteRequest, pb::EndWrapUpRequest);

/// Decodes an agent desktop's request, adopting its agent if ccrd restarted.
fn desk_call<R: DeskRequest>(body: &[u8], shared: &Shared, session: &Session) -> Result<R, Status> {
    let r: R = decode(body)?;
    adopt_agent(r.agent(), shared, session);
    Ok(r)
}

/// A call naming an agent recovered after a restart takes its desktop role
/// over; returns whether it did.
fn adopt_agent(agent: AgentId, shared: &Shared, session: &Session) -> bool {
    let orphaned = shared.orphans.lock().expect("orphans lock").agents.remove(&agent).is_some();
    if orphaned {
        session.agents.lock().expect("session lock").insert(agent);
    }
    orphaned
}

/// Reads until `decode` yields an item, the stream ends, or it errs.
async fn read_item<T>(
    recv: &mut quinn::RecvStream,
    buf: &mut wire::ReadBuf,
    limit: usize,
    decode: impl Fn(&[u8]) -> Result<Option<(T, usize)>, wire::WireError>,
) -> Result<Option<T>, Status> {
    loop {
        match decode(buf.pending()) {
            Ok(Some((item, used))) => {
                buf.consume(used);
                return Ok(Some(item));
            }
            Ok(None) => {}
            Err(e @ wire::WireError::TooLarge { .. }) => {
                return Err(Status::new(Code::ResourceExhausted, e.to_string()))
            }
            Err(e) => return Err(Status::new(Code::InvalidArgument, e.to_string())),
        }
        if buf.len() > limit {
            return Err(Status::new(Code::ResourceExhausted, "request too large"));
        }
        // At most the limit's worth beyond what is pending, so that a peer
        // cannot make the buffer grow past it in one chunk.
        match recv.read_chunk(limit + 1 - buf.len(), true).await {
            Ok(Some(chunk)) => buf.extend(&chunk.bytes),
            Ok(None) if buf.is_empty() => return Ok(None),
            Ok(None) => return Err(Status::new(Code::InvalidArgument, "stream ended inside a frame")),
            Err(e) => return Err(Status::new(Code::Cancelled, e.to_string())),
        }
    }
}

async fn serve_stream(mut send: quinn::SendStream, mut recv: quinn::RecvStream, shared: Shared, session: Arc<Session>) {
    let started = Instant::now();
    let mut buf = wire::ReadBuf::default();
    let limit = shared.max_message + 8;
    let method = match read_item(&mut recv, &mut buf, limit, wire::decode_header).await {
        Ok(Some(m)) => m,
        Ok(None) => return,
        Err(status) => {
            warn!(%status, "protocol error");
            shared.protocol_error("bad_header");
            return finish(&mut send, None, status).await;
        }
    };
    let max = shared.max_message;
    let body = match read_item(&mut recv, &mut buf, limit, |b| wire::decode_frame(b, max)).await {
        Ok(Some(Frame::Message(body))) => body,
        Ok(Some(Frame::Trailer(_))) => {
            return finish(&mut send, None, Status::new(Code::InvalidArgument, "a request carries no trailer")).await
        }
        Ok(None) => return finish(&mut send, None, Status::new(Code::InvalidArgument, "no request message")).await,
        Err(status) => {
            warn!(%status, "protocol error");
            shared.protocol_error(if status.code() == Code::ResourceExhausted { "too_large" } else { "bad_frame" });
            return finish(&mut send, None, status).await;
        }
    };
    if !session.role.allows(&method) {
        let status =
            Status::new(Code::PermissionDenied, format!("{method} is not allowed for role {:?}", session.role));
        return finish(&mut send, None, status).await;
    }
    if method == "/ccr.v1.Events/Subscribe" {
        return subscribe(send, &body, &shared).await;
    }
    if method == "/ccr.v1.Gateway/Stream" {
        return gateway_stream(send, recv, buf, body, shared, session).await;
    }
    shared.in_flight.fetch_add(1, Ordering::AcqRel);
    let result = unary(&method, &body, &shared, &session).await;
    match result {
        Ok(response) => finish(&mut send, Some(response), Status::ok()).await,
        Err(status) => {
            info!(%method, %status, "call refused");
            finish(&mut send, None, status).await
        }
    }
    shared.in_flight.fetch_sub(1, Ordering::AcqRel);
    shared.metrics.rpc(&method).record(started.elapsed().as_secs_f64());
    debug!(%method, elapsed_us = started.elapsed().as_micros() as u64, "call done");
}

async fn finish(send: &mut quinn::SendStream, response: Option<Vec<u8>>, status: Status) {
    let mut out = response.unwrap_or_default();
    wire::encode_trailer(&status, &mut out);
    let _ = send.write_all(&out).await;
    let _ = send.finish();
}

fn decode<T: Message + Default>(body: &[u8]) -> Result<T, Status> {
    T::decode(body).map_err(|e| Status::new(Code::InvalidArgument, format!("malformed request: {e}")))
}

fn framed(message: &impl Message) -> Vec<u8> {
    let mut out = Vec::new();
    wire::encode_message(message, &mut out);
    out
}

/// Position and estimated wait of a contact (reclaiming it from a lost gateway).
async fn position(contact: ContactId, shared: &Shared, session: &Session) -> Result<pb::PositionResponse, Status> {
    adopt(contact, shared, session).await;
    let _permit = admit(shared)?;
    let estimate = shared
        .core
        .query(move |router| router.estimate_wait(contact))
        .await
        .map_err(|_| Status::new(Code::Unavailable, "shutting down"))?
        .map_err(|e: CommandError| convert::command_error(&e))?;
    Ok(pb::PositionResponse {
        position: estimate.position,
        estimated_wait_millis: estimate.estimated_wait.as_millis() as u64,
        method: match estimate.method {
            ccr_core::EwtMethod::QueueVelocity => "queue_velocity",
            ccr_core::EwtMethod::HandleTimeModel => "handle_time_model",
            ccr_core::EwtMethod::NotWaiting => "not_waiting",
        }
        .into(),
    })
}

fn admit(shared: &Shared) -> Result<tokio::sync::SemaphorePermit<'_>, Status> {
    shared.pending.try_acquire().map_err(|_| {
        warn!("refused: too many pending requests");
        shared.refused("pending_limit");
        Status::new(Code::ResourceExhausted, "too many pending requests; retry")
    })
}

async fn command(shared: &Shared, command: ccr_core::Command) -> Result<Reply, Status> {
    let _permit = admit(shared)?;
    match shared.core.command(command).await {
        Ok(Ok(reply)) => Ok(reply),
        Ok(Err(e)) => Err(convert::command_error(&e)),
        Err(_) => Err(Status::new(Code::Unavailable, "shutting down")),
    }
}

fn done(reply: Reply) -> Result<(), Status> {
    match reply {
        Reply::Done => Ok(()),
        other => Err(Status::new(Code::Internal, format!("unexpected reply {other:?}"))),
    }
}

async fn unary(method: &str, body: &[u8], shared: &Shared, session: &Session) -> Result<Vec<u8>, Status> {
    let cat = &shared.catalog;
    let queue_of = |reply: Reply| match reply {
        Reply::Enqueued { queue } => Ok(cat.queue_name(queue).to_owned()),
        other => Err(Status::new(Code::Internal, format!("unexpected reply {other:?}"))),
    };
    Ok(match method {
        "/ccr.v1.Gateway/Enqueue" => {
            let spec = convert::contact_spec(cat, decode(body)?)?;
            let id = spec.id;
            let queue = queue_of(command(shared, ccr_core::Command::Enqueue(spec)).await?)?;
            session.own(id, shared).await;
            framed(&pb::EnqueueResponse { queue })
        }
        "/ccr.v1.Gateway/Abandon" => {
            let r: pb::AbandonRequest = decode(body)?;
            adopt(ContactId(r.contact_id), shared, session).await;
            done(command(shared, ccr_core::Command::Abandon { contact: ContactId(r.contact_id) }).await?)?;
            framed(&pb::AbandonResponse {})
        }
        "/ccr.v1.Gateway/Transfer" => {
            let r: pb::TransferRequest = decode(body)?;
            adopt(ContactId(r.contact_id), shared, session).await;
            let queue = queue_of(command(shared, convert::transfer(cat, r)?).await?)?;
            framed(&pb::TransferResponse { queue })
        }
        "/ccr.v1.Gateway/ScheduleCallback" => {
            let c = convert::callback(cat, decode(body)?)?;
            let id = match &c {
                ccr_core::Command::ScheduleCallback { spec, .. } => spec.id,
                _ => unreachable!("convert::callback builds a callback"),
            };
            let queue = queue_of(command(shared, c).await?)?;
            session.own(id, shared).await;
            framed(&pb::ScheduleCallbackResponse { queue })
        }
        "/ccr.v1.Gateway/Position" => {
            let r: pb::PositionRequest = decode(body)?;
            framed(&position(ContactId(r.contact_id), shared, session).await?)
        }
        "/ccr.v1.AgentDesk/Login" => {
            let r: pb::LoginRequest = decode(body)?;
            let agent = AgentId(r.agent_id);
            // After a restart the agent is still logged in: its desktop
            // claims it back, and says whether it is ready.
            if adopt_agent(agent, shared, session) {
                if r.ready {
                    done(command(shared, ccr_core::Command::AgentReady { agent }).await?)?;
                }
                info!(agent = agent.0, "agent resumed after restart");
                return Ok(framed(&pb::LoginResponse {}));
            }
            done(command(shared, convert::login(cat, r)?).await?)?;
            session.agents.lock().expect("session lock").insert(agent);
            framed(&pb::LoginResponse {})
        }
        "/ccr.v1.AgentDesk/Logout" => {
            let r: pb::LogoutRequest = decode(body)?;
            let agent = AgentId(r.agent_id);
            adopt_agent(agent, shared, session);
            done(command(shared, ccr_core::Command::AgentLogout { agent }).await?)?;
            session.agents.lock().expect("session lock").remove(&agent);
            framed(&pb::LogoutResponse {})
        }
        "/ccr.v1.AgentDesk/SetState" => {
            let r: pb::SetStateRequest = decode(body)?;
            adopt_agent(AgentId(r.agent_id), shared, session);
            done(command(shared, convert::set_state(r)?).await?)?;
            framed(&pb::SetStateResponse {})
        }
        "/ccr.v1.AgentDesk/Accept" => {
            match command(shared, convert::accept(desk_call(body, shared, session)?)).await? {
                Reply::Accepted { contact, duplicate } => {
                    framed(&pb::AcceptResponse { contact_id: contact.0, duplicate })
                }
                other => return Err(Status::new(Code::Internal, format!("unexpected reply {other:?}"))),
            }
        }
        "/ccr.v1.AgentDesk/Reject" => {
            match command(shared, convert::reject(desk_call(body, shared, session)?)).await? {
                Reply::Rejected { duplicate } => framed(&pb::RejectResponse { duplicate }),
                other => return Err(Status::new(Code::Internal, format!("unexpected reply {other:?}"))),
            }
        }
        "/ccr.v1.AgentDesk/Complete" => {
            let r: pb::CompleteRequest = desk_call(body, shared, session)?;
            let c = ccr_core::Command::Complete { agent: AgentId(r.agent_id), contact: ContactId(r.contact_id) };
            done(command(shared, c).await?)?;
            framed(&pb::CompleteResponse {})
        }
        "/ccr.v1.AgentDesk/EndWrapUp" => {
            let r: pb::EndWrapUpRequest = desk_call(body, shared, session)?;
            let c = ccr_core::Command::EndWrapUp { agent: AgentId(r.agent_id), contact: ContactId(r.contact_id) };
            done(command(shared, c).await?)?;
            framed(&pb::EndWrapUpResponse {})
        }
        "/ccr.v1.Admin/QueueStats" => {
            let r: pb::QueueStatsRequest = decode(body)?;
            let queue =
                cat.queue(&r.queue).ok_or_else(|| Status::new(Code::NotFound, format!("queue {:?}", r.queue)))?;
            let _permit = admit(shared)?;
            let stats = shared
                .core
                .query(move |router| router.queue_stats(queue))
                .await
                .map_err(|_| Status::new(Code::Unavailable, "shutting down"))?
                .map_err(|e| convert::command_error(&e))?;
            framed(&pb::QueueStatsResponse {
                queue: r.queue,
                waiting_by_tier: stats
                    .waiting_by_tier
                    .iter()
                    .enumerate()
                    .map(|(i, n)| (cat.tier_name(ccr_core::TierId(i as u8)).to_owned(), *n))
                    .collect(),
                oldest_wait_millis: stats.oldest_wait.map_or(0, |d| d.as_millis() as u64),
                answered: stats.counters.answered,
                abandoned: stats.counters.abandoned,
                short_abandoned: stats.counters.short_abandoned,
                service_level: stats.service_level.unwrap_or(1.0),
                service_level_target: stats.service_level_target,
                agents_by_state: ccr_core::AgentState::NAMES
                    .iter()
                    .zip(stats.agents_by_state)
                    .map(|(name, n)| ((*name).to_owned(), n))
                    .collect(),
            })
        }
        "/ccr.v1.Admin/ReloadConfig" => {
            let _: pb::ReloadConfigRequest = decode(body)?;
            let path = shared
                .config_path
                .as_ref()
                .ok_or_else(|| Status::new(Code::FailedPrecondition, "ccrd was started without --config"))?;
            let text = std::fs::read_to_string(path)
                .map_err(|e| Status::new(Code::FailedPrecondition, format!("{}: {e}", path.display())))?;
            let fresh = crate::config::parse(&text).map_err(|e| Status::new(Code::InvalidArgument, e.to_string()))?;
            if fresh.catalog.skills != cat.skills || fresh.catalog.languages != cat.languages {
                return Err(Status::new(Code::FailedPrecondition, "skills and languages change only on restart"));
            }
            let queues = fresh.router.queues.len() as u32;
            done(command(shared, ccr_core::Command::Reconfigure(Box::new(fresh.router))).await?)?;
            info!(path = %path.display(), "configuration reloaded");
            framed(&pb::ReloadConfigResponse { queues })
        }
        "/ccr.v1.Admin/Health" => {
            let _: pb::HealthRequest = decode(body)?;
            let r = &shared.refusals;
            let journal_failed = shared.journal_failed.as_ref().is_some_and(|f| f.load(Ordering::Acquire));
            framed(&pb::HealthResponse {
                status: if journal_failed { "journal_failed" } else { "serving" }.into(),
                uptime_seconds: shared.started.elapsed().as_secs(),
                refused_connections: r.connections.load(Ordering::Relaxed),
                refused_requests: r.requests.load(Ordering::Relaxed),
                protocol_errors: r.protocol_errors.load(Ordering::Relaxed),
                open_connections: shared.open.load(Ordering::Relaxed) as u32,
            })
        }
        other => {
            shared.protocol_error("unknown_method");
            return Err(Status::new(Code::Unimplemented, format!("unknown method {other:?}")));
        }
    })
}

type ReplyFuture = std::pin::Pin<Box<dyn Future<Output = pb::GatewayReply> + Send>>;

/// Bidirectional: commands are read and submitted to the core as they come
/// (pipelined, in order); a writer task awaits their replies in the same order
/// and writes them in batches. A refused command gets its status in its
/// reply; the stream goes on.
async fn gateway_stream(
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
    mut buf: wire::ReadBuf,
    first: Vec<u8>,
    shared: Shared,
    session: Arc<Session>,
) {
    let (tx, mut rx) = mpsc::channel::<ReplyFuture>(4096);
    let writer = tokio::spawn(async move {
        let mut out = Vec::new();
        while let Some(next) = rx.recv().await {
            wire::encode_message(&next.await, &mut out);
            while out.len() < 64 * 1024 {
                match rx.try_recv() {
                    Ok(next) => wire::encode_message(&next.await, &mut out),
                    Err(_) => break,
                }
            }
            if send.write_all(&out).await.is_err() {
                return;
            }
            out.clear();
        }
        finish(&mut send, None, Status::ok()).await;
    });
    let max = shared.max_message;
    let mut next_body = Some(first);
    loop {
        let body = match next_body.take() {
            Some(body) => body,
            None => match read_item(&mut recv, &mut buf, max + 8, |b| wire::decode_frame(b, max)).await {
                Ok(Some(Frame::Message(body))) => body,
                Ok(None) => break,
                Ok(Some(Frame::Trailer(_))) => {
                    let status = Status::new(Code::InvalidArgument, "a request carries no trailer");
                    let _ = tx.send(Box::pin(async move { refused(0, status) })).await;
                    break;
                }
                Err(status) => {
                    let _ = tx.send(Box::pin(async move { refused(0, status) })).await;
                    break;
                }
            },
        };
        let reply = stream_command(&body, &shared, &session);
        if tx.send(reply).await.is_err() {
            break;
        }
    }
    drop(tx);
    let _ = writer.await;
}

fn refused(id: u64, status: Status) -> pb::GatewayReply {
    pb::GatewayReply { id, status: Some(status), response: None }
}

/// Submits one stream command now and returns the future of its reply.
fn stream_command(body: &[u8], shared: &Shared, session: &Arc<Session>) -> ReplyFuture {
    use pb::gateway_command::Command as C;
    use pb::gateway_reply::Response as R;
    let command: pb::GatewayCommand = match decode(body) {
        Ok(c) => c,
        Err(status) => return Box::pin(async move { refused(0, status) }),
    };
    let id = command.id;
    let cat = &shared.catalog;
    let converted = match command.command {
        None => Err(Status::new(Code::InvalidArgument, "command: missing")),
        Some(C::Position(r)) => {
            let (shared, session) = (shared.clone(), session.clone());
            return Box::pin(async move {
                match position(ContactId(r.contact_id), &shared, &session).await {
                    Ok(p) => pb::GatewayReply { id, status: Some(Status::ok()), response: Some(R::Position(p)) },
                    Err(status) => refused(id, status),
                }
            });
        }
        Some(C::Enqueue(r)) => convert::contact_spec(cat, r).map(|s| (Some(s.id), ccr_core::Command::Enqueue(s), 0)),
        Some(C::Abandon(r)) => Ok((None, ccr_core::Command::Abandon { contact: ContactId(r.contact_id) }, 1)),
        Some(C::Transfer(r)) => convert::transfer(cat, r).map(|c| (None, c, 2)),
        Some(C::ScheduleCallback(r)) => convert::callback(cat, r).map(|c| {
            let id = match &c {
                ccr_core::Command::ScheduleCallback { spec, .. } => Some(spec.id),
                _ => None,
            };
            (id, c, 3)
        }),
    };
    let (owned, core_command, kind) = match converted {
        Ok(c) => c,
        Err(status) => return Box::pin(async move { refused(id, status) }),
    };
    let permit = match shared.pending.clone().try_acquire_owned() {
        Ok(p) => p,
        Err(_) => {
            return Box::pin(
                async move { refused(id, Status::new(Code::ResourceExhausted, "too many pending requests")) },
            )
        }
    };
    let receiver = shared.core.submit(core_command);
    let (shared, session) = (shared.clone(), session.clone());
    Box::pin(async move {
        let _permit = permit;
        let result = match receiver {
            Ok(rx) => rx.await.map_err(|_| Status::new(Code::Unavailable, "shutting down")),
            Err(_) => Err(Status::new(Code::Unavailable, "shutting down")),
        };
        match result {
            Ok(Ok(reply)) => {
                if let Some(contact) = owned {
                    session.own(contact, &shared).await;
                }
                let queue = match reply {
                    Reply::Enqueued { queue } => shared.catalog.queue_name(queue).to_owned(),
                    _ => String::new(),
                };
                let response = match kind {
                    0 => R::Enqueue(pb::EnqueueResponse { queue }),
                    1 => R::Abandon(pb::AbandonResponse {}),
                    2 => R::Transfer(pb::TransferResponse { queue }),
                    _ => R::ScheduleCallback(pb::ScheduleCallbackResponse { queue }),
                };
                pb::GatewayReply { id, status: Some(Status::ok()), response: Some(response) }
            }
            Ok(Err(e)) => refused(id, convert::command_error(&e)),
            Err(status) => refused(id, status),
        }
    })
}

/// Server streaming: events for the named agents (or all, for a gateway)
/// until the client goes away or the daemon stops.
async fn subscribe(mut send: quinn::SendStream, body: &[u8], shared: &Shared) {
    let request: pb::SubscribeRequest = match decode(body) {
        Ok(r) => r,
        Err(status) => return finish(&mut send, None, status).await,
    };
    let (tx, mut rx) = mpsc::channel(shared.subscriber_buffer);
    let agents = request.agent_ids.into_iter().map(AgentId).collect();
    let lagged = Arc::new(AtomicBool::new(false));
    if shared.subscribe.send(Subscriber { agents, tx, lagged: lagged.clone() }).is_err() {
        return finish(&mut send, None, Status::new(Code::Unavailable, "shutting down")).await;
    }
    // Whatever has queued up goes out in one write: under load a subscriber
    // keeps up by writing batches, not one QUIC write per event.
    const BATCH_BYTES: usize = 64 * 1024;
    let mut out = Vec::new();
    while let Some(event) = rx.recv().await {
        out.clear();
        wire::encode_message(&event, &mut out);
        while out.len() < BATCH_BYTES {
            let Ok(event) = rx.try_recv() else { break };
            wire::encode_message(&event, &mut out);
        }
        if send.write_all(&out).await.is_err() {
            return;
        }
    }
    let status = if lagged.load(Ordering::Relaxed) {
        let behind = shared.subscriber_buffer;
        Status::new(
            Code::ResourceExhausted,
            format!("fell more than {behind} events behind: dropped (server.subscriber_buffer)"),
        )
    } else {
        Status::new(Code::Unavailable, "event stream ended")
    };
    finish(&mut send, None, status).await;
}

async fn dispatch(
    catalog: Arc<Catalog>,
    metrics: Arc<Metrics>,
    mut events: mpsc::UnboundedReceiver<Outgoing>,
    mut subscribers: mpsc::UnboundedReceiver<Subscriber>,
) {
    let mut next_id = 0u64;
    let mut all: HashMap<u64, Subscriber> = HashMap::new();
    let mut by_agent: HashMap<AgentId, Vec<u64>> = HashMap::new();
    let mut gateways: Vec<u64> = Vec::new();
    let mut dropped: Vec<u64> = Vec::new();
    loop {
        tokio::select! {
            Some(sub) = subscribers.recv() => {
                next_id += 1;
                if sub.agents.is_empty() {
                    gateways.push(next_id);
                }
                for agent in &sub.agents {
                    by_agent.entry(*agent).or_default().push(next_id);
                }
                all.insert(next_id, sub);
            }
            Some((event, context)) = events.recv() => {
                match &event {
                    Event::Offered { queue, tier, waited, .. } => {
                        if let Some(h) = metrics.queues.get(usize::from(queue.0)).and_then(|q| q.wait_routed.get(usize::from(tier.0))) {
                            h.record(waited.as_secs_f64());
                        }
                    }
                    Event::Abandoned { queue, tier, waited, .. } => {
                        if let Some(h) = metrics.queues.get(usize::from(queue.0)).and_then(|q| q.wait_abandoned.get(usize::from(tier.0))) {
                            h.record(waited.as_secs_f64());
                        }
                    }
                    _ => {}
                }
                let Some((audience, message)) = convert::event(&catalog, &event, context.as_deref()) else { continue };
                let agent_subs = match audience {
                    Audience::Agent(agent) => by_agent.get(&agent).map_or(&[][..], Vec::as_slice),
                    Audience::Gateways => &[],
                };
                dropped.clear();
                for &id in gateways.iter().chain(agent_subs) {
                    if all.get(&id).is_some_and(|sub| sub.tx.try_send(message.clone()).is_err()) {
                        dropped.push(id);
                    }
                }
                for &id in &dropped {
                    warn!(subscriber = id, "event subscriber too slow or gone: dropped");
                    if let Some(sub) = all.remove(&id) {
                        sub.lagged.store(true, Ordering::Relaxed);
                        gateways.retain(|g| *g != id);
                        for agent in sub.agents {
                            if let Some(list) = by_agent.get_mut(&agent) {
                                list.retain(|s| *s != id);
                            }
                        }
                    }
                }
            }
            else => return,
        }
    }
}

/// Once a second: queue gauges, agent counts and outcome counters from the
/// core's own counters (authoritative, and nothing to record on the routing
/// thread), and the service level over the configured window.
async fn sample(core: CoreHandle, metrics: Arc<Metrics>, window: Duration, last_snapshot_ms: Option<Arc<AtomicU64>>) {
    let mut sl = ServiceLevelWindow::new(window);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        if let Some(at) = &last_snapshot_ms {
            let age_ms = journal::unix_millis().saturating_sub(at.load(Ordering::Relaxed));
            metrics.snapshot_age.set(age_ms as f64 / 1000.0);
        }
        let Ok((stats, timers)) = core.query(|r: &Router| (r.all_queue_stats(), r.timer_count())).await else {
            return;
        };
        metrics.core_timers.set(timers as f64);
        let totals =
            stats.iter().map(|s| (s.counters.answered_in_target, s.counters.answered + s.counters.abandoned)).collect();
        let levels = sl.update(Instant::now(), totals);
        for ((q, s), level) in metrics.queues.iter().zip(&stats).zip(levels) {
            for (gauge, n) in q.waiting.iter().zip(&s.waiting_by_tier) {
                gauge.set(f64::from(*n));
            }
            q.oldest_wait.set(s.oldest_wait.map_or(0.0, |d| d.as_secs_f64()));
            let c = &s.counters;
            let values = [c.offered, c.abandoned, c.short_abandoned, c.transferred_in, c.overflowed_out, c.rona];
            for (outcome, value) in OUTCOMES.iter().zip(values) {
                if let Some(counter) = q.contacts.get(outcome) {
                    counter.absolute(value);
                }
            }
            q.service_level.set(level.unwrap_or(1.0));
            q.service_level_target.set(s.service_level_target);
        }
        if let Some(s) = stats.first() {
            for (gauge, n) in metrics.agents.iter().zip(s.agents_by_state) {
                gauge.set(f64::from(n));
            }
        }
    }
}

/// The `/metrics` endpoint: a deliberately small HTTP/1.1 responder.
async fn export(listener: tokio::net::TcpListener, metrics: Arc<Metrics>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    loop {
        let Ok((mut socket, _)) = listener.accept().await else { return };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let mut request = Vec::new();
            let mut chunk = [0u8; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 8192 {
                match tokio::time::timeout(Duration::from_secs(5), socket.read(&mut chunk)).await {
                    Ok(Ok(n)) if n > 0 => request.extend_from_slice(&chunk[..n]),
                    _ => return,
                }
            }
            let ok = request.starts_with(b"GET /metrics ") || request.starts_with(b"GET /metrics?");
            let (status, body) =
                if ok { ("200 OK", metrics.render()) } else { ("404 Not Found", "try /metrics\n".into()) };
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = socket.write_all(head.as_bytes()).await;
            let _ = socket.write_all(body.as_bytes()).await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config;

    fn subscriber(buffer: usize) -> (Subscriber, mpsc::Receiver<pb::RoutingEvent>, Arc<AtomicBool>) {
        let (tx, rx) = mpsc::channel(buffer);
        let lagged = Arc::new(AtomicBool::new(false));
        (Subscriber { agents: Vec::new(), tx, lagged: lagged.clone() }, rx, lagged)
    }

    async fn drain(mut rx: mpsc::Receiver<pb::RoutingEvent>) -> usize {
        let mut n = 0;
        while rx.recv().await.is_some() {
            n += 1;
        }
        n
    }

    /// The dispatcher never waits for a subscriber: one whose buffer is full
    /// is dropped and marked, so that its stream ends saying why, while the
    /// others get every event.
    #[tokio::test]
    async fn a_subscriber_that_falls_behind_is_dropped_and_marked() {
        let config = config::parse(config::DEFAULT_CONFIG).expect("example config");
        let catalog = Arc::new(config.catalog.clone());
        let metrics = Metrics::new(&catalog);
        let (events, events_rx) = mpsc::unbounded_channel();
        let (subscribe, subscribe_rx) = mpsc::unbounded_channel();
        let dispatcher = tokio::spawn(dispatch(catalog, metrics, events_rx, subscribe_rx));
        let (slow, slow_rx, slow_lagged) = subscriber(2);
        let (roomy, roomy_rx, roomy_lagged) = subscriber(16);
        subscribe.send(slow).expect("dispatcher runs");
        subscribe.send(roomy).expect("dispatcher runs");
        // One runtime thread: the dispatcher registers both before any event.
        tokio::task::yield_now().await;
        for agent in 0..5 {
            let event = Event::AgentStateChanged { agent: AgentId(agent), state: ccr_core::AgentState::Available };
            events.send((event, None)).expect("dispatcher runs");
        }
        drop((events, subscribe));
        dispatcher.await.expect("dispatcher ends");
        assert_eq!(drain(slow_rx).await, 2, "the slow subscriber keeps what was buffered");
        assert!(slow_lagged.load(Ordering::Relaxed));
        assert_eq!(drain(roomy_rx).await, 5);
        assert!(!roomy_lagged.load(Ordering::Relaxed));
    }
}
