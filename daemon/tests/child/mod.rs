//! Helpers for tests that run `ccrd` as a child process.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use ccr_proto::client::Client;
use ccr_proto::v1::HealthRequest;
use tokio::time::{sleep, timeout};

/// A client of the ccrd whose data directory is `dir/data`, once it answers
/// `Health` (bounded: 20 s).
pub async fn connect(dir: &Path, addr: SocketAddr) -> Client {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(cert) = std::fs::read(dir.join("data/cert.der")) {
            if let Ok(Ok(client)) =
                timeout(Duration::from_secs(2), Client::connect(addr, "localhost", std::slice::from_ref(&cert))).await
            {
                if client.health(HealthRequest {}).await.is_ok() {
                    return client;
                }
            }
        }
        assert!(Instant::now() < deadline, "ccrd did not come up: see {}", dir.display());
        sleep(Duration::from_millis(50)).await;
    }
}
