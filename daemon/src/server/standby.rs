//! Serving while the node is a standby: every call is refused with
//! UNAVAILABLE and a message naming the active's address
//! (`standby; active=<address>`, or `standby; active=none` while no node
//! leads: docs/PROTOCOL.md), so that a client configured with every node
//! finds the active; `Admin/Health` answers, with the node's role. When the
//! node takes over, the connections it served as a standby are closed:
//! their clients reconnect and find it active.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ccr_proto::v1 as pb;
use ccr_proto::wire::{self, Code, Frame};
use ccr_proto::Method;
use pb::Status;
use tokio::sync::watch;
use tracing::debug;

use super::rpc::finish;
use crate::cluster;

/// What the standby's connections share.
#[derive(Clone)]
pub(super) struct Standby {
    pub status: watch::Receiver<cluster::Status>,
    pub max_message: usize,
    pub max_connections: usize,
    pub open: Arc<AtomicUsize>,
    pub started: Instant,
}

/// Accepts connections until the endpoint closes (or the future is dropped).
pub(super) async fn serve(endpoint: &quinn::Endpoint, standby: Standby) {
    while let Some(incoming) = endpoint.accept().await {
        if standby.open.load(Ordering::Relaxed) >= standby.max_connections {
            incoming.refuse();
            continue;
        }
        standby.open.fetch_add(1, Ordering::Relaxed);
        let standby = standby.clone();
        tokio::spawn(async move {
            connection(incoming, &standby).await;
            standby.open.fetch_sub(1, Ordering::Relaxed);
        });
    }
}

async fn connection(incoming: quinn::Incoming, standby: &Standby) {
    let Ok(connection) = incoming.await else { return };
    let mut status = standby.status.clone();
    loop {
        tokio::select! {
            stream = connection.accept_bi() => match stream {
                Ok((send, recv)) => {
                    let now = standby.status.borrow().clone();
                    tokio::spawn(answer(send, recv, now, standby.max_message, standby.started));
                }
                Err(e) => return debug!(error = %e, "standby: connection ended"),
            },
            _ = status.wait_for(|s| s.active) => {
                connection.close(2u32.into(), b"this node is the active now: connect again");
                return;
            }
        }
    }
}

/// The refusal of a call on a standby.
pub fn refusal(status: &cluster::Status) -> Status {
    let active = status.active_address.as_deref().unwrap_or("none");
    Status::new(Code::Unavailable, format!("standby; active={active}"))
}

/// Reads the call's header and request (bounded in size and time), then
/// answers it.
async fn answer(
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
    status: cluster::Status,
    max_message: usize,
    started: Instant,
) {
    let read = async {
        let mut buf = wire::ReadBuf::default();
        let mut path = None;
        loop {
            if path.is_none() {
                if let Some((p, used)) = wire::decode_header(buf.pending()).ok()? {
                    buf.consume(used);
                    path = Some(p);
                }
            }
            if path.is_some() {
                if let Some((Frame::Message(_), _)) = wire::decode_frame(buf.pending(), max_message).ok()? {
                    return path;
                }
            }
            if buf.len() > max_message + 1024 {
                return None;
            }
            let chunk = recv.read_chunk(max_message + 1024, true).await.ok()??;
            buf.extend(&chunk.bytes);
        }
    };
    let path = tokio::time::timeout(Duration::from_secs(5), read).await.ok().flatten();
    if path.as_deref().and_then(Method::from_path) == Some(Method::Health) {
        let health = pb::HealthResponse {
            status: "standby".into(),
            uptime_seconds: started.elapsed().as_secs(),
            role: "standby".into(),
            active_address: status.active_address.clone().unwrap_or_default(),
            epoch: status.epoch,
            ..Default::default()
        };
        let mut out = Vec::new();
        wire::encode_message(&health, &mut out);
        return finish(&mut send, Some(out), Status::ok()).await;
    }
    finish(&mut send, None, refusal(&status)).await
}
