//! The metrics listener: `/metrics` for Prometheus, `/healthz` and
//! `/readyz` for probes ([`super::health`]); a deliberately small HTTP/1.1
//! responder.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{Metrics, Refusal};

/// How long a scrape may take to send its request or read the page.
const TIMEOUT: Duration = Duration::from_secs(5);

/// Serves `GET /metrics`, `/healthz` and `/readyz` on `listener` until the task is aborted, at most
/// `max_connections` at once: one more is closed unanswered and counted
/// (`ccr_refused_total{reason="metrics_limit"}`).
pub async fn run(listener: tokio::net::TcpListener, metrics: Arc<Metrics>, max_connections: usize) {
    let places = Arc::new(tokio::sync::Semaphore::new(max_connections));
    loop {
        let Ok((mut socket, remote)) = listener.accept().await else { return };
        let Ok(place) = places.clone().try_acquire_owned() else {
            metrics.refusal(Refusal::MetricsLimit);
            tracing::debug!(%remote, "metrics connection refused: too many open");
            continue;
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let _place = place;
            let mut request = Vec::new();
            let mut chunk = [0u8; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 8192 {
                match tokio::time::timeout(TIMEOUT, socket.read(&mut chunk)).await {
                    Ok(Ok(n)) if n > 0 => request.extend_from_slice(&chunk[..n]),
                    _ => return,
                }
            }
            let (status, body) = respond(&request, &metrics);
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            // A scraper that does not read cannot hold its place.
            let _ = tokio::time::timeout(TIMEOUT, async {
                socket.write_all(head.as_bytes()).await?;
                socket.write_all(body.as_bytes()).await
            })
            .await;
        });
    }
}

/// The status line and body for a request.
fn respond(request: &[u8], metrics: &Metrics) -> (&'static str, String) {
    let path = request
        .strip_prefix(b"GET ")
        .and_then(|rest| rest.split(|&b| b == b' ' || b == b'?').next())
        .unwrap_or_default();
    match path {
        b"/metrics" => ("200 OK", metrics.render()),
        b"/healthz" => ("200 OK", "ok: alive\n".into()),
        b"/readyz" => match metrics.readiness.get().answer() {
            (true, line) => ("200 OK", format!("{line}\n")),
            (false, line) => ("503 Service Unavailable", format!("{line}\n")),
        },
        _ => ("404 Not Found", "try /metrics, /healthz or /readyz\n".into()),
    }
}
