//! One stream: its header and first message, then the call it carries —
//! a unary call here, or a subscription or gateway stream handed over.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use ccr_core::{Command, CommandError, ContactId, Reply, SessionId};
use ccr_proto::v1 as pb;
use ccr_proto::wire::{self, Code, Frame};
use ccr_proto::Method;
use pb::Status;
use prost::Message;
use tracing::{debug, info, warn};

use super::connection::Connection;
use super::{describe_changes, events, gateway_stream, supervision, Refusal, Shared, StreamGuard};
use crate::convert;
use crate::metrics::ProtocolError;

/// Reads until `decode` yields an item, the stream ends, or it errs. When
/// ccrd stops, a read still waiting ends as if the stream had ended.
pub(super) async fn read_item<T>(
    recv: &mut quinn::RecvStream,
    buf: &mut wire::ReadBuf,
    limit: usize,
    shared: &Shared,
    mut decode: impl FnMut(&[u8]) -> Result<Option<(T, usize)>, wire::WireError>,
) -> Result<Option<T>, Status> {
    let mut stopping = shared.stopping.clone();
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
        let chunk = tokio::select! {
            chunk = recv.read_chunk(limit + 1 - buf.len(), true) => chunk,
            _ = stopping.wait_for(|stop| *stop) => return Err(shutting_down()),
        };
        match chunk {
            Ok(Some(chunk)) => buf.extend(&chunk.bytes),
            Ok(None) if buf.is_empty() => return Ok(None),
            Ok(None) => return Err(Status::new(Code::InvalidArgument, "stream ended inside a frame")),
            Err(e) => return Err(Status::new(Code::Cancelled, e.to_string())),
        }
    }
}

pub(super) fn shutting_down() -> Status {
    Status::new(Code::Unavailable, "shutting down")
}

pub(super) async fn serve_stream(
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
    shared: Shared,
    connection: Arc<Connection>,
) {
    // Counts the stream open until it ends, subscriptions and gateway
    // streams included (served from here).
    let _open = StreamGuard::new(&shared.streams);
    let started = Instant::now();
    let mut buf = wire::ReadBuf::default();
    let limit = shared.max_message + 8;
    let path = match read_item(&mut recv, &mut buf, limit, &shared, wire::decode_header).await {
        Ok(Some(m)) => m,
        Ok(None) => {
            // Every stream gets its trailer, an empty one too.
            shared.protocol_error(ProtocolError::BadHeader);
            return finish(&mut send, None, Status::new(Code::InvalidArgument, "empty stream: no header")).await;
        }
        Err(status) => {
            if status.code() != Code::Unavailable {
                warn!(%status, "protocol error");
                shared.protocol_error(ProtocolError::BadHeader);
            }
            return finish(&mut send, None, status).await;
        }
    };
    let Some(method) = Method::from_path(&path) else {
        shared.protocol_error(ProtocolError::UnknownMethod);
        return finish(&mut send, None, Status::new(Code::Unimplemented, format!("unknown method {path:?}"))).await;
    };
    let max = shared.max_message;
    let body = match read_item(&mut recv, &mut buf, limit, &shared, |b| wire::decode_frame(b, max)).await {
        Ok(Some(Frame::Message(body))) => body,
        Ok(Some(Frame::Trailer(_))) => {
            return finish(&mut send, None, Status::new(Code::InvalidArgument, "a request carries no trailer")).await
        }
        Ok(None) => return finish(&mut send, None, Status::new(Code::InvalidArgument, "no request message")).await,
        Err(status) => {
            if status.code() != Code::Unavailable {
                warn!(%status, "protocol error");
                let kind = match status.code() {
                    Code::ResourceExhausted => ProtocolError::TooLarge,
                    _ => ProtocolError::BadFrame,
                };
                shared.protocol_error(kind);
            }
            return finish(&mut send, None, status).await;
        }
    };
    if !connection.role.allows(method) {
        let status =
            Status::new(Code::PermissionDenied, format!("{method} is not allowed for role {:?}", connection.role));
        return finish(&mut send, None, status).await;
    }
    match method {
        Method::Subscribe => return events::subscribe(send, &body, &shared, &connection).await,
        Method::GatewayStream => return gateway_stream::serve(send, recv, buf, body, shared, connection).await,
        _ => {}
    }
    // A unary call is one message, then FIN: a second one is refused, not
    // ignored.
    let result = match read_item(&mut recv, &mut buf, limit, &shared, |b| wire::decode_frame(b, max)).await {
        Ok(None) => match admit(&shared, body.len()) {
            Ok(_admitted) => unary(method, &body, &shared, connection.session).await,
            Err(status) => Err(status),
        },
        Ok(Some(_)) => Err(Status::new(Code::InvalidArgument, "a unary call carries exactly one message")),
        Err(status) => Err(status),
    };
    let code = match result {
        Ok(response) => {
            finish(&mut send, Some(response), Status::ok()).await;
            Code::Ok
        }
        Err(status) => {
            info!(%method, %status, "call refused");
            let code = status.code();
            finish(&mut send, None, status).await;
            code
        }
    };
    shared.metrics.rpc(Some(method)).record(started.elapsed().as_secs_f64());
    shared.metrics.rpc_result(Some(method), code);
    debug!(%method, elapsed_us = started.elapsed().as_micros() as u64, "call done");
}

/// Writes the response (if any) and the trailer, then FIN.
pub(super) async fn finish(send: &mut quinn::SendStream, response: Option<Vec<u8>>, status: Status) {
    let mut out = response.unwrap_or_default();
    wire::encode_trailer(&status, &mut out);
    let _ = send.write_all(&out).await;
    let _ = send.finish();
}

pub(super) fn decode<T: Message + Default>(body: &[u8]) -> Result<T, Status> {
    T::decode(body).map_err(|e| Status::new(Code::InvalidArgument, format!("malformed request: {e}")))
}

fn framed(message: &impl Message) -> Vec<u8> {
    let mut out = Vec::new();
    wire::encode_message(message, &mut out);
    out
}

/// A place among the calls pending towards the core for a request of
/// `bytes` bytes (`server.max_pending_requests`, `server.max_pending_bytes`).
pub(super) fn admit(shared: &Shared, bytes: usize) -> Result<super::Admitted, Status> {
    shared.pending.try_admit(bytes).ok_or_else(|| {
        debug!("refused: too many pending requests");
        shared.refused(Refusal::PendingLimit);
        Status::new(Code::ResourceExhausted, "too many pending requests; retry")
    })
}

/// Runs a command from `session` on the core (the caller was admitted).
pub(super) async fn command(shared: &Shared, session: SessionId, command: Command) -> Result<Reply, Status> {
    match shared.core.command_from(session, command).await {
        Ok(Ok(reply)) => Ok(reply),
        Ok(Err(e)) => Err(command_error(shared, &e)),
        Err(_) => Err(shutting_down()),
    }
}

/// The status of a refused command, counting the refusals that are limits.
pub(super) fn command_error(shared: &Shared, e: &CommandError) -> Status {
    if let Some(refusal) = Refusal::of_command_error(e) {
        shared.refused(refusal);
    }
    convert::command_error(e)
}

/// Position and estimated wait of a contact. Naming a contact another
/// session owns claims it (the core decides; this only asks).
pub(super) async fn position(
    contact: ContactId,
    shared: &Shared,
    session: SessionId,
) -> Result<pb::PositionResponse, Status> {
    let (estimate, owner) = shared
        .core
        .query(move |router| (router.estimate_wait(contact), router.contact_owner(contact)))
        .await
        .map_err(|_| shutting_down())?;
    let estimate = estimate.map_err(|e: CommandError| convert::command_error(&e))?;
    if owner.is_some_and(|o| o != session) {
        command(shared, session, Command::ClaimContact { contact }).await?;
    }
    Ok(convert::position_response(&estimate))
}

async fn unary(method: Method, body: &[u8], shared: &Shared, session: SessionId) -> Result<Vec<u8>, Status> {
    let cat = &shared.catalog;
    Ok(match method {
        Method::Enqueue => {
            let spec = convert::contact_spec(cat, decode(body)?)?;
            framed(&convert::enqueued(cat, command(shared, session, Command::Enqueue(spec)).await?)?)
        }
        Method::Abandon => {
            let r: pb::AbandonRequest = decode(body)?;
            convert::done(
                command(shared, session, Command::Abandon { contact: convert::contact_id(r.contact_id)? }).await?,
            )?;
            framed(&pb::AbandonResponse {})
        }
        Method::Transfer => {
            let c = convert::transfer(cat, decode(body)?)?;
            framed(&convert::transferred(cat, command(shared, session, c).await?)?)
        }
        Method::ScheduleCallback => {
            let c = convert::callback(cat, decode(body)?)?;
            framed(&convert::callback_scheduled(cat, command(shared, session, c).await?)?)
        }
        Method::Position => {
            let r: pb::PositionRequest = decode(body)?;
            framed(&position(convert::contact_id(r.contact_id)?, shared, session).await?)
        }
        Method::Login => {
            convert::done(command(shared, session, convert::login(cat, decode(body)?)?).await?)?;
            framed(&pb::LoginResponse {})
        }
        Method::Logout => {
            let r: pb::LogoutRequest = decode(body)?;
            convert::done(
                command(shared, session, Command::AgentLogout { agent: convert::agent_id(r.agent_id)? }).await?,
            )?;
            framed(&pb::LogoutResponse {})
        }
        Method::SetState => {
            convert::done(command(shared, session, convert::set_state(decode(body)?)?).await?)?;
            framed(&pb::SetStateResponse {})
        }
        Method::Accept => framed(&convert::accepted(command(shared, session, convert::accept(decode(body)?)?).await?)?),
        Method::Reject => framed(&convert::rejected(command(shared, session, convert::reject(decode(body)?)?).await?)?),
        Method::Complete => {
            let r: pb::CompleteRequest = decode(body)?;
            let c = Command::Complete {
                agent: convert::agent_id(r.agent_id)?,
                contact: convert::contact_id(r.contact_id)?,
            };
            convert::done(command(shared, session, c).await?)?;
            framed(&pb::CompleteResponse {})
        }
        Method::EndWrapUp => {
            let r: pb::EndWrapUpRequest = decode(body)?;
            let c = Command::EndWrapUp {
                agent: convert::agent_id(r.agent_id)?,
                contact: convert::contact_id(r.contact_id)?,
            };
            convert::done(command(shared, session, c).await?)?;
            framed(&pb::EndWrapUpResponse {})
        }
        Method::QueueStats => {
            let r: pb::QueueStatsRequest = decode(body)?;
            let queue =
                cat.queue(&r.queue).ok_or_else(|| Status::new(Code::NotFound, format!("queue {:?}", r.queue)))?;
            let (stats, staffed) = shared
                .core
                .query(move |router| (router.queue_stats(queue), router.staffed_for_oldest(queue)))
                .await
                .map_err(|_| shutting_down())?;
            let stats = stats.map_err(|e| convert::command_error(&e))?;
            let (window, figures) = shared.metrics.window.get();
            let in_window = figures.get(usize::from(queue.0)).copied().unwrap_or_default();
            framed(&convert::queue_stats_response(cat, r.queue, &stats, staffed, (window, in_window)))
        }
        Method::ReloadConfig => {
            let _: pb::ReloadConfigRequest = decode(body)?;
            let changes = reload(shared).await?;
            info!(%changes, "configuration reloaded (Admin/ReloadConfig)");
            framed(&pb::ReloadConfigResponse { queues: cat.queues.len() as u32 })
        }
        Method::Drain => {
            let _: pb::DrainRequest = decode(body)?;
            let agents = match command(shared, session, Command::Drain).await? {
                Reply::Drained { agents } => agents,
                other => return Err(convert::unexpected(&other)),
            };
            warn!(agents, "drain: every agent logged out by the operator");
            framed(&pb::DrainResponse { agents_logged_out: agents })
        }
        Method::Health => {
            let _: pb::HealthRequest = decode(body)?;
            let (sessions, states, waiting) = shared
                .core
                .query(|router| {
                    let waiting = router.all_queue_stats().iter().map(|q| q.waiting).sum::<u32>();
                    (router.session_counts(), router.agent_state_counts(), waiting)
                })
                .await
                .map_err(|_| shutting_down())?;
            let cluster = shared.cluster.as_ref().map(|c| c.borrow().clone());
            let r = &shared.refusals;
            framed(&pb::HealthResponse {
                status: if shared.journal_failure.is_set() { "journal_failed" } else { "serving" }.into(),
                uptime_seconds: shared.started.elapsed().as_secs(),
                refused_connections: r.connections.load(Ordering::Relaxed),
                refused_requests: r.requests.load(Ordering::Relaxed),
                protocol_errors: r.protocol_errors.load(Ordering::Relaxed),
                open_connections: shared.open.load(Ordering::Relaxed) as u32,
                sessions_live: sessions.live as u32,
                sessions_in_grace: sessions.in_grace as u32,
                role: if shared.cluster.is_some() { "active" } else { "single" }.into(),
                active_address: cluster.as_ref().and_then(|c| c.active_address.clone()).unwrap_or_default(),
                epoch: cluster.map_or(0, |c| c.epoch),
                version: env!("CARGO_PKG_VERSION").into(),
                agents_by_state: ccr_core::AgentState::NAMES
                    .iter()
                    .zip(states)
                    .skip(1)
                    .map(|(name, n)| ((*name).to_owned(), n))
                    .collect(),
                waiting,
            })
        }
        Method::Queues => {
            let _: pb::QueuesRequest = decode(body)?;
            let (stats, staffed) = shared
                .core
                .query(|router| {
                    let stats = router.all_queue_stats();
                    let staffed: Vec<Option<usize>> =
                        (0..stats.len()).map(|q| router.staffed_for_oldest(ccr_core::QueueId(q as u16))).collect();
                    (stats, staffed)
                })
                .await
                .map_err(|_| shutting_down())?;
            let (window, figures) = shared.metrics.window.get();
            let queues = stats
                .iter()
                .zip(staffed)
                .enumerate()
                .map(|(i, (q, staffed))| {
                    let in_window = figures.get(i).copied().unwrap_or_default();
                    convert::queue_stats_response(cat, q.name.clone(), q, staffed, (window, in_window))
                })
                .collect();
            framed(&pb::QueuesResponse { queues })
        }
        Method::Agents => framed(&supervision::agents(shared, body).await?),
        Method::Contacts => framed(&supervision::contacts(shared, body).await?),
        Method::Contact => framed(&supervision::contact(shared, body).await?),
        Method::SuperviseAgent => {
            supervision::supervise_agent(shared, session, body).await?;
            framed(&pb::SuperviseAgentResponse {})
        }
        Method::SuperviseContact => framed(&supervision::supervise_contact(shared, session, body).await?),
        Method::Subscribe | Method::GatewayStream => unreachable!("streaming methods are served apart"),
    })
}

/// Re-reads the configuration file and applies its routing part; returns
/// what changed. Used by `Admin/ReloadConfig` and SIGHUP.
pub(super) async fn reload(shared: &Shared) -> Result<String, Status> {
    let cat = &shared.catalog;
    let path = shared
        .config_path
        .as_ref()
        .ok_or_else(|| Status::new(Code::FailedPrecondition, "ccrd was started without --config"))?;
    let text = std::fs::read_to_string(path)
        .map_err(|e| Status::new(Code::FailedPrecondition, format!("{}: {e}", path.display())))?;
    let fresh = crate::config::parse(&text)
        .map_err(|e| Status::new(Code::InvalidArgument, format!("{}: {e}", path.display())))?;
    if fresh.catalog.skills != cat.skills || fresh.catalog.languages != cat.languages {
        return Err(Status::new(Code::FailedPrecondition, "skills and languages change only on restart"));
    }
    let old = shared.core.query(|r| r.config().clone()).await.map_err(|_| shutting_down())?;
    let changes = describe_changes(&old, &fresh.router);
    convert::done(command(shared, SessionId::LOCAL, Command::Reconfigure(Box::new(fresh.router))).await?)?;
    Ok(changes)
}
