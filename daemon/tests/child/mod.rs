//! Helpers for tests that run `ccrd` as a child process.
#![allow(dead_code)] // each test binary uses its own part

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use ccr_proto::client::Client;
use ccr_proto::v1::HealthRequest;
use tokio::time::{sleep, timeout};

/// The `ccrd` command for a test directory: configuration `dir/ccrd.toml`,
/// data `dir/data`, QUIC on `addr`, metrics on an ephemeral port, its log in
/// `log`.
pub fn command(dir: &Path, addr: SocketAddr, log: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ccrd"));
    command
        .arg("--config")
        .arg(dir.join("ccrd.toml"))
        .arg("--listen")
        .arg(addr.to_string())
        .arg("--metrics-listen")
        .arg("127.0.0.1:0")
        .arg("--data-dir")
        .arg(dir.join("data"))
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).expect("log file"));
    command
}

/// A running ccrd, killed on every way out of the test.
pub struct Daemon {
    pub child: Child,
    log: PathBuf,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Daemon {
    /// Starts `command` (from [`command`], which logs to `log`).
    pub fn spawn(mut command: Command, log: PathBuf) -> Daemon {
        Daemon { child: command.spawn().expect("ccrd starts"), log }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends a signal by name (`TERM`, `HUP`).
    pub fn signal(&self, name: &str) {
        let pid = self.child.id().to_string();
        Command::new("kill").args([&format!("-{name}"), &pid]).status().expect("kill");
    }

    /// The exit status, waiting at most `limit`.
    pub async fn exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            sleep(Duration::from_millis(20)).await;
        }
        None
    }
}

/// One HTTP/1.0 GET on loopback (bounded: 1 s): the response if it
/// answered 200.
pub fn http_get(addr: SocketAddr, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
    stream.write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes()).ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.lines().next()?;
    status.contains(" 200 ").then_some(response)
}

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
