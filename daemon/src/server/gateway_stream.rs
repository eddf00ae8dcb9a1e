//! `Gateway/Stream`: commands are read and submitted to the core as they
//! come (pipelined, in order); a writer task awaits their replies in the
//! same order and writes them in batches. A refused command — malformed,
//! unknown, too large — gets its status in its reply; the stream goes on.
//! When ccrd stops, reading stops, the replies of what was submitted are
//! written, then an UNAVAILABLE trailer.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use ccr_core::{Command, SessionId};
use ccr_proto::v1 as pb;
use ccr_proto::wire::{self, Code, Frame, WireError};
use ccr_proto::Method;
use pb::Status;
use tokio::sync::mpsc;

use super::connection::Connection;
use super::rpc::{decode, finish, position, read_item, shutting_down};
use super::{Refusal, Shared};
use crate::convert::{self, GatewayCall};
use crate::metrics::ProtocolError;

/// A reply, the limit it reports hitting, and the command's method and
/// start (each counted and timed by the writer as the reply goes out).
type Answer = (pb::GatewayReply, Option<Refusal>, Option<(Method, Instant)>);
type ReplyFuture = Pin<Box<dyn Future<Output = Answer> + Send>>;

/// Replies in flight on one stream before its reader waits for the writer.
const IN_FLIGHT: usize = 4096;

/// The next thing on the stream after a command.
enum Next {
    Command(Vec<u8>),
    /// A frame over the size limit, skipped whole: its command is refused.
    TooLarge {
        len: usize,
        max: usize,
    },
    /// The client finished its side.
    End,
    /// The stream cannot go on (broken framing, reset, ccrd stopping).
    Fail(Status),
}

pub(super) async fn serve(
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
    mut buf: wire::ReadBuf,
    first: Vec<u8>,
    shared: Shared,
    connection: Arc<Connection>,
) {
    let (tx, mut rx) = mpsc::channel::<ReplyFuture>(IN_FLIGHT);
    let counts = shared.clone();
    let writer = tokio::spawn(async move {
        let mut out = Vec::new();
        let write = |(reply, refusal, timed): Answer, out: &mut Vec<u8>| {
            if let Some(refusal) = refusal {
                counts.refused(refusal);
            }
            if let Some((method, since)) = timed {
                let code = reply.status.as_ref().map_or(Code::Ok, |s| s.code());
                counts.metrics.rpc(Some(method)).record(since.elapsed().as_secs_f64());
                counts.metrics.rpc_result(Some(method), code);
            }
            wire::encode_message(&reply, out);
        };
        while let Some(next) = rx.recv().await {
            write(next.await, &mut out);
            while out.len() < 64 * 1024 {
                match rx.try_recv() {
                    Ok(next) => write(next.await, &mut out),
                    Err(_) => break,
                }
            }
            if send.write_all(&out).await.is_err() {
                return None;
            }
            out.clear();
        }
        Some(send)
    });
    let mut next = Next::Command(first);
    let end = loop {
        let reply = match next {
            Next::Command(body) => submit(&body, &shared, connection.session),
            Next::TooLarge { len, max } => {
                shared.protocol_error(ProtocolError::TooLarge);
                let status =
                    Status::new(Code::ResourceExhausted, format!("command of {len} bytes is over the limit of {max}"));
                Box::pin(async move { refused(0, status) })
            }
            Next::End => break Status::ok(),
            Next::Fail(status) => break status,
        };
        if tx.send(reply).await.is_err() {
            break Status::new(Code::Cancelled, "stream reset");
        }
        next = read_next(&mut recv, &mut buf, &shared).await;
    };
    drop(tx);
    if let Ok(Some(mut send)) = writer.await {
        finish(&mut send, None, end).await;
    }
}

/// Reads the next command frame; a frame over the limit is skipped, byte
/// for byte, without being held.
async fn read_next(recv: &mut quinn::RecvStream, buf: &mut wire::ReadBuf, shared: &Shared) -> Next {
    let max = shared.max_message;
    let mut too_large = None;
    let read = read_item(recv, buf, max + 8, shared, |b| match wire::decode_frame(b, max) {
        Err(WireError::TooLarge { len, max }) => {
            too_large = Some((len, max));
            // Stop here: the caller skips the frame.
            Ok(Some((Frame::Message(Vec::new()), 0)))
        }
        other => other,
    })
    .await;
    if let Some((len, max)) = too_large {
        return match skip(recv, buf, 5 + len, shared).await {
            Ok(()) => Next::TooLarge { len, max },
            Err(status) => Next::Fail(status),
        };
    }
    match read {
        Ok(Some(Frame::Message(body))) => Next::Command(body),
        Ok(None) => Next::End,
        Ok(Some(Frame::Trailer(_))) => Next::Fail(Status::new(Code::InvalidArgument, "a request carries no trailer")),
        Err(status) => {
            if status.code() == Code::InvalidArgument {
                shared.protocol_error(ProtocolError::BadFrame);
            }
            Next::Fail(status)
        }
    }
}

/// Discards the next `n` bytes of the stream.
async fn skip(
    recv: &mut quinn::RecvStream,
    buf: &mut wire::ReadBuf,
    mut n: usize,
    shared: &Shared,
) -> Result<(), Status> {
    let held = n.min(buf.len());
    buf.consume(held);
    n -= held;
    let mut stopping = shared.stopping.clone();
    while n > 0 {
        let chunk = tokio::select! {
            chunk = recv.read_chunk(n, true) => chunk,
            _ = stopping.wait_for(|stop| *stop) => return Err(shutting_down()),
        };
        match chunk {
            Ok(Some(chunk)) => n -= chunk.bytes.len(),
            Ok(None) => return Err(Status::new(Code::InvalidArgument, "stream ended inside a frame")),
            Err(e) => return Err(Status::new(Code::Cancelled, e.to_string())),
        }
    }
    Ok(())
}

fn refused(id: u64, status: Status) -> Answer {
    (pb::GatewayReply { id, status: Some(status), response: None }, None, None)
}

/// Submits one stream command now and returns the future of its reply.
fn submit(body: &[u8], shared: &Shared, session: SessionId) -> ReplyFuture {
    use pb::gateway_command::Command as C;
    let command: pb::GatewayCommand = match decode(body) {
        Ok(c) => c,
        Err(status) => return Box::pin(async move { refused(0, status) }),
    };
    let id = command.id;
    let started = Instant::now();
    let method = match &command.command {
        Some(C::Position(_)) => Method::Position,
        Some(C::Enqueue(_)) => Method::Enqueue,
        Some(C::Abandon(_)) => Method::Abandon,
        Some(C::Transfer(_)) => Method::Transfer,
        Some(C::ScheduleCallback(_)) => Method::ScheduleCallback,
        None => Method::GatewayStream,
    };
    let timed = move |(reply, refusal, _): Answer| (reply, refusal, Some((method, started)));
    let admitted = match super::rpc::admit(shared, body.len()) {
        Ok(admitted) => admitted,
        Err(status) => return Box::pin(async move { timed(refused(id, status)) }),
    };
    let cat = &shared.catalog;
    let converted = match command.command {
        None => Err(Status::new(Code::InvalidArgument, "command: missing")),
        Some(C::Position(r)) => {
            let shared = shared.clone();
            return Box::pin(async move {
                let _admitted = admitted;
                let found = match convert::contact_id(r.contact_id) {
                    Ok(contact) => position(contact, &shared, session).await,
                    Err(status) => Err(status),
                };
                timed(match found {
                    Ok(p) => (convert::gateway_reply(id, pb::gateway_reply::Response::Position(p)), None, None),
                    Err(status) => refused(id, status),
                })
            });
        }
        Some(C::Enqueue(r)) => convert::contact_spec(cat, r).map(|s| (GatewayCall::Enqueue, Command::Enqueue(s))),
        Some(C::Abandon(r)) => {
            convert::contact_id(r.contact_id).map(|contact| (GatewayCall::Abandon, Command::Abandon { contact }))
        }
        Some(C::Transfer(r)) => convert::transfer(cat, r).map(|c| (GatewayCall::Transfer, c)),
        Some(C::ScheduleCallback(r)) => convert::callback(cat, r).map(|c| (GatewayCall::ScheduleCallback, c)),
    };
    let (call, core_command) = match converted {
        Ok(c) => c,
        Err(status) => return Box::pin(async move { timed(refused(id, status)) }),
    };
    let receiver = shared.core.submit(session, core_command);
    let catalog = shared.catalog.clone();
    Box::pin(async move {
        let _admitted = admitted;
        let result = match receiver {
            Ok(rx) => rx.await.map_err(|_| shutting_down()),
            Err(_) => Err(shutting_down()),
        };
        let (response, refusal) = match result {
            Ok(Ok(reply)) => (convert::gateway_response(&catalog, call, reply), None),
            Ok(Err(e)) => (Err(convert::command_error(&e)), Refusal::of_command_error(&e)),
            Err(status) => (Err(status), None),
        };
        timed(match response {
            Ok(response) => (convert::gateway_reply(id, response), None, None),
            Err(status) => (refused(id, status).0, refusal, None),
        })
    })
}
