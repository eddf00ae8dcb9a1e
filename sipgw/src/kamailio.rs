//! The link to Kamailio's evapi: a TCP connection, connected again when
//! lost. Events go to the bridge as they come; answers are written in
//! order, and kept (up to [`MAX_UNSENT`]) while the link is down.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use crate::bridge::Input;
use crate::evapi::{self, Answer};
use crate::metrics::{Link, Metrics};

/// Answers kept while Kamailio is unreachable; past it the oldest are
/// dropped (counted): their calls end at `calls.max_wait`.
pub const MAX_UNSENT: usize = 10_000;

const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_MOST: Duration = Duration::from_secs(2);

/// Runs the link until `answers` closes.
pub async fn run(
    evapi_addr: SocketAddr,
    inputs: mpsc::UnboundedSender<Input>,
    mut answers: mpsc::UnboundedReceiver<Answer>,
    metrics: Arc<Metrics>,
) {
    let mut unsent: VecDeque<Answer> = VecDeque::new();
    let mut wait = RETRY_FIRST;
    loop {
        let connect = TcpStream::connect(evapi_addr);
        tokio::pin!(connect);
        let socket = loop {
            tokio::select! {
                s = &mut connect => break s,
                closed = keep(&mut answers, &mut unsent, &metrics) => if closed { return },
            }
        };
        let mut socket = match socket {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(%evapi_addr, error = %e, retry_in = ?wait, "kamailio: evapi not reachable");
                let kept = tokio::time::timeout(wait, async {
                    loop {
                        if keep(&mut answers, &mut unsent, &metrics).await {
                            return;
                        }
                    }
                });
                if kept.await.is_ok() {
                    return;
                }
                wait = (wait * 2).min(RETRY_MOST);
                continue;
            }
        };
        let _ = socket.set_nodelay(true);
        wait = RETRY_FIRST;
        tracing::info!(%evapi_addr, "kamailio: evapi connected");
        metrics.link(Link::Kamailio, true);
        let fd = std::os::fd::AsRawFd::as_raw_fd(&socket);
        let (mut reader, mut writer) = socket.split();
        let mut buf: Vec<u8> = Vec::with_capacity(8192);
        let mut chunk = vec![0u8; 8192];
        let why = 'connected: loop {
            while let Some(answer) = unsent.front() {
                if let Err(e) = writer.write_all(&answer.framed()).await {
                    break 'connected format!("write: {e}");
                }
                unsent.pop_front();
            }
            tokio::select! {
                read = reader.read(&mut chunk) => match read {
                    Ok(0) => break 'connected "closed by Kamailio".to_owned(),
                    Ok(n) => {
                        quick_ack(fd);
                        buf.extend_from_slice(&chunk[..n]);
                        loop {
                            match evapi::take_netstring(&buf) {
                                Ok(Some((payload, used))) => {
                                    match evapi::parse_event(payload) {
                                        Ok(event) => {
                                            if inputs.send(Input::Kamailio(event)).is_err() { return; }
                                        }
                                        Err(e) => {
                                            metrics.bad_events.increment(1);
                                            tracing::warn!(error = %e, "kamailio: event refused");
                                        }
                                    }
                                    buf.drain(..used);
                                }
                                Ok(None) => break,
                                Err(e) => break 'connected format!("{e}"),
                            }
                        }
                    }
                    Err(e) => break 'connected format!("read: {e}"),
                },
                answer = answers.recv() => match answer {
                    Some(answer) => unsent.push_back(answer),
                    // Stopping: what is left goes out first.
                    None => {
                        for answer in unsent.drain(..) {
                            if writer.write_all(&answer.framed()).await.is_err() {
                                break;
                            }
                        }
                        return;
                    }
                },
            }
        };
        metrics.link(Link::Kamailio, false);
        tracing::warn!(%why, "kamailio: evapi connection lost; reconnecting");
    }
}

/// Keeps the next answer for later; true when `answers` closed.
async fn keep(answers: &mut mpsc::UnboundedReceiver<Answer>, unsent: &mut VecDeque<Answer>, metrics: &Metrics) -> bool {
    match answers.recv().await {
        Some(answer) => {
            if unsent.len() == MAX_UNSENT {
                unsent.pop_front();
                metrics.answers_dropped.increment(1);
            }
            unsent.push_back(answer);
            false
        }
        None => true,
    }
}

/// Acknowledges what arrives at once (TCP_QUICKACK, which Linux clears
/// again as it sees fit): evapi's small writes, held back by Nagle until
/// the last is acknowledged, otherwise wait for the delayed ACK.
fn quick_ack(fd: std::os::fd::RawFd) {
    let on: libc::c_int = 1;
    // SAFETY: a valid socket descriptor and a c_int option of its size.
    unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_QUICKACK,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}
