//! The metrics listener: `/metrics` for Prometheus, `/healthz` and
//! `/readyz` for probes ([`super::health`]); a deliberately small HTTP/1.1
//! responder, shared with `ccr-sipgw` through [`Page`].

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{Metrics, Refusal};

/// How long a scrape may take to send its request or read the page.
const TIMEOUT: Duration = Duration::from_secs(5);

/// What the listener serves.
pub trait Page: Send + Sync + 'static {
    /// The status line and body for a GET of `path`.
    fn respond(&self, path: &[u8]) -> (&'static str, String);
    /// One connection was closed unanswered: too many were open.
    fn refused(&self);
}

/// Serves `page` on `listener` until the task is aborted, at most
/// `max_connections` at once: one more is closed unanswered and counted
/// ([`Page::refused`]).
pub async fn run<P: Page>(listener: tokio::net::TcpListener, page: Arc<P>, max_connections: usize) {
    let places = Arc::new(tokio::sync::Semaphore::new(max_connections));
    loop {
        let Ok((mut socket, remote)) = listener.accept().await else { return };
        let Ok(place) = places.clone().try_acquire_owned() else {
            page.refused();
            tracing::debug!(%remote, "metrics connection refused: too many open");
            continue;
        };
        let page = page.clone();
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
            let path = request
                .strip_prefix(b"GET ")
                .and_then(|rest| rest.split(|&b| b == b' ' || b == b'?').next())
                .unwrap_or_default();
            let (status, body) = page.respond(path);
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

/// ccrd's page: `/metrics`, `/healthz`, `/readyz`.
impl Page for Metrics {
    fn respond(&self, path: &[u8]) -> (&'static str, String) {
        match path {
            b"/metrics" => ("200 OK", self.render()),
            b"/healthz" => ("200 OK", "ok: alive\n".into()),
            b"/readyz" => match self.readiness.get().answer() {
                (true, line) => ("200 OK", format!("{line}\n")),
                (false, line) => ("503 Service Unavailable", format!("{line}\n")),
            },
            _ => ("404 Not Found", "try /metrics, /healthz or /readyz\n".into()),
        }
    }

    fn refused(&self) {
        self.refusal(Refusal::MetricsLimit);
    }
}
