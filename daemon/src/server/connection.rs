//! One client connection: its role, its session in the core, its streams.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use ccr_core::{Command, SessionId};
use tracing::{debug, info, warn};

use ccr_proto::v1::Status;
use ccr_proto::wire::Code;

use super::{handshake, rpc, Refusal, Shared, StreamGuard};
use crate::tls::Role;

/// What every stream of a connection shares.
pub(super) struct Connection {
    pub role: Role,
    /// Opened in the core before any request of the connection reaches it.
    pub session: SessionId,
    /// `Events/Subscribe` streams open on this connection.
    pub subscriptions: AtomicUsize,
}

/// Handshake, then one task per stream until the connection ends; then the
/// session is lost (unless ccrd is stopping: a stop is not a loss).
pub(super) async fn serve(incoming: quinn::Incoming, shared: Shared) {
    let remote = incoming.remote_address();
    let connection = match incoming.await {
        Ok(c) => c,
        Err(e) => {
            if let Some(refusal) = handshake::report(handshake::classify(&e), remote, &shared.handshake_log) {
                shared.refused(refusal);
            }
            return;
        }
    };
    let Some(role) = role_of(&connection, &shared) else {
        warn!(%remote, "refused: client certificate has no role (OU gateway, agent, admin or supervisor)");
        shared.refused(Refusal::NoRole);
        connection.close(1u32.into(), b"no role");
        return;
    };
    // The id is ours to pick, and the core learns it before any request of
    // this connection (one channel, in order): no round trip to wait for.
    let session = SessionId(shared.next_session.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    if shared.core.submit(SessionId::LOCAL, Command::OpenSession { session }).is_err() {
        return;
    }
    info!(%remote, session = session.0, role = role.label(), "connection open");
    let connections = shared.metrics.connections.get(role.label()).cloned();
    if let Some(g) = &connections {
        g.increment(1.0);
    }
    let this = Arc::new(Connection { role, session, subscriptions: AtomicUsize::new(0) });
    // Only this loop adds to it: a load then an add cannot race.
    let streams = Arc::new(AtomicUsize::new(0));
    let mut closing = shared.closing.clone();
    loop {
        let accepted = tokio::select! {
            accepted = connection.accept_bi() => accepted,
            // A demoted active keeps its endpoint (the standby it becomes
            // serves on it) and closes its connections one by one.
            _ = closing.wait_for(|&closing| closing) => {
                connection.close(2u32.into(), b"no longer the active: connect again");
                break;
            }
        };
        match accepted {
            Ok((send, _)) if streams.load(Ordering::Acquire) >= shared.max_streams => {
                shared.refused(Refusal::StreamLimit);
                debug!(%remote, limit = shared.max_streams, "call refused: stream limit of the connection");
                tokio::spawn(refuse_stream(send, shared.max_streams));
            }
            Ok((send, recv)) => {
                let open = StreamGuard::new(&streams);
                let (shared, this) = (shared.clone(), this.clone());
                tokio::spawn(async move {
                    rpc::serve_stream(send, recv, shared, this).await;
                    drop(open);
                });
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
    if shared.is_stopping() {
        return info!(%remote, session = session.0, "connection closed by the stop");
    }
    info!(%remote, session = session.0, "connection lost: what it owns waits out the session grace");
    let _ = shared.core.submit(SessionId::LOCAL, Command::LoseSession { session });
}

/// Answers a call opened past the connection's limit at once (what it sent
/// is not read: dropping its receive side tells the client to stop sending).
async fn refuse_stream(mut send: quinn::SendStream, limit: usize) {
    let status = Status::new(
        Code::ResourceExhausted,
        format!("too many calls open on this connection (limit {limit}); retry when one ends"),
    );
    rpc::finish(&mut send, None, status).await;
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
