//! `ccrd` as a child process: what an operator does to it with signals and
//! what the host does to it with a full disk. Loopback only, every wait
//! bounded, the child killed on every way out.

mod child;

use child::{connect, Daemon};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ccr_proto::v1::*;
use tokio::time::{sleep, timeout};

const CONFIG: &str = r#"
skills = ["billing"]
languages = ["en"]

[server]
core_spin = "0s"

[journal]
fsync = "always"
segment_bytes = 0

[[queues]]
name = "support"
offer_timeout = "5s"
"#;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ccr-process-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("ccrd.toml"), CONFIG).unwrap();
    dir
}

fn free_addr() -> SocketAddr {
    std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

/// Starts ccrd; `file_size_limit` caps the size of any file it writes
/// (RLIMIT_FSIZE), the way a full disk would stop its journal.
fn start(dir: &Path, addr: SocketAddr, name: &str, file_size_limit: Option<u64>) -> Daemon {
    let log = dir.join(format!("{name}.log"));
    let mut command = child::command(dir, addr, &log);
    if let Some(limit) = file_size_limit {
        // SAFETY: between fork and exec, only async-signal-safe calls.
        unsafe {
            command.pre_exec(move || {
                // Writes past the limit fail with EFBIG instead of killing.
                libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
                let rlimit = libc::rlimit { rlim_cur: limit, rlim_max: limit };
                if libc::setrlimit(libc::RLIMIT_FSIZE, &rlimit) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    Daemon::spawn(command, log)
}

fn contact(id: u64) -> EnqueueRequest {
    EnqueueRequest {
        contact_id: id,
        channel: Channel::Voice as i32,
        queue: "support".into(),
        skills: vec![SkillRequirement { skill: "billing".into(), min_proficiency: 1 }],
        context: vec![ContextEntry { key: "note".into(), value: "x".repeat(2000) }],
        ..Default::default()
    }
}

async fn wait_for_log(daemon: &Daemon, text: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if daemon.log().contains(text) {
            return true;
        }
        sleep(Duration::from_millis(20)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_configuration_and_ccrd_keeps_serving() {
    let dir = scratch("sighup");
    let addr = free_addr();
    let mut daemon = start(&dir, addr, "ccrd", None);
    let client = connect(&dir, addr).await;
    std::fs::write(dir.join("ccrd.toml"), CONFIG.replace("offer_timeout = \"5s\"", "offer_timeout = \"9s\"")).unwrap();
    daemon.signal("HUP");
    assert!(wait_for_log(&daemon, "configuration reloaded").await, "{}", daemon.log());
    assert!(daemon.log().contains("queue support"), "the log says what changed: {}", daemon.log());
    // A broken file is refused, said why, and changes nothing.
    std::fs::write(dir.join("ccrd.toml"), "skills = [").unwrap();
    daemon.signal("HUP");
    assert!(wait_for_log(&daemon, "configuration not reloaded").await, "{}", daemon.log());
    assert_eq!(client.health(HealthRequest {}).await.expect("still serving").status, "serving");
    assert!(daemon.child.try_wait().unwrap().is_none(), "SIGHUP does not kill ccrd");
    daemon.signal("TERM");
    let status = daemon.exit(Duration::from_secs(15)).await.expect("stops on SIGTERM");
    assert!(status.success(), "{status}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A journal that can no longer write stops ccrd with an error and a
/// non-zero exit, instead of routing on in memory; the next start recovers
/// every acknowledged contact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journal_write_failure_stops_ccrd_and_the_next_start_recovers() {
    let dir = scratch("full-disk");
    let addr = free_addr();
    let mut daemon = start(&dir, addr, "full", Some(512 << 10));
    let client = connect(&dir, addr).await;
    let mut acknowledged = Vec::new();
    for id in 1..=2000u64 {
        match timeout(Duration::from_secs(5), client.enqueue(contact(id))).await {
            Ok(Ok(_)) => acknowledged.push(id),
            _ => break,
        }
    }
    assert!(!acknowledged.is_empty() && acknowledged.len() < 2000, "the limit was reached: {}", acknowledged.len());
    let status = daemon.exit(Duration::from_secs(15)).await.expect("ccrd stops by itself");
    assert!(!status.success(), "with an error: {status}");
    assert!(daemon.log().contains("journal failed"), "{}", daemon.log());
    drop(client);
    drop(daemon);

    let restarted = start(&dir, addr, "restarted", None);
    let client = connect(&dir, addr).await;
    for &id in &acknowledged {
        let found = client.position(PositionRequest { contact_id: id }).await;
        assert!(found.is_ok(), "acknowledged contact {id} recovered: {found:?}\n{}", restarted.log());
    }
    drop(restarted);
    let _ = std::fs::remove_dir_all(&dir);
}
