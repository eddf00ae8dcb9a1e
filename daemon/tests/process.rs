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

/// A client that holds every stream its connection may have and keeps
/// opening more does not hold up a stop: on SIGTERM every subscription and
/// gateway stream ends with UNAVAILABLE, every call past the limit has been
/// answered, and ccrd exits cleanly without cutting any stream off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_past_its_stream_limit_neither_hangs_nor_holds_up_the_stop() {
    let dir = scratch("streams");
    std::fs::write(dir.join("ccrd.toml"), CONFIG.replace("[server]", "[server]\nmax_streams_per_connection = 8"))
        .unwrap();
    let addr = free_addr();
    let mut daemon = start(&dir, addr, "ccrd", None);
    let greedy = connect(&dir, addr).await;
    let mut subscriptions = Vec::new();
    let mut streams = Vec::new();
    for agent in 1..=4 {
        subscriptions.push(greedy.subscribe(vec![agent]).await.unwrap());
        let mut stream = greedy.gateway_stream().await.unwrap();
        use ccr_proto::v1::gateway_command::Command as C;
        stream.push(&GatewayCommand { id: 1, command: Some(C::Enqueue(contact(agent))) });
        stream.flush().await.unwrap();
        streams.push(stream);
    }
    // Calls past the limit, opened without pause until the stop.
    let hammer = {
        let greedy = greedy.clone();
        tokio::spawn(async move {
            let (mut refused, mut other) = (0u32, Vec::new());
            loop {
                match timeout(Duration::from_secs(5), greedy.health(HealthRequest {})).await {
                    Ok(Err(s)) if s.code() == ccr_proto::wire::Code::ResourceExhausted => refused += 1,
                    Ok(Ok(_)) => other.push("served".to_owned()),
                    Ok(Err(s)) => return (refused, other, Some(s)),
                    Err(_) => return (refused, other, None),
                }
            }
        })
    };
    sleep(Duration::from_millis(200)).await;
    daemon.signal("TERM");
    for mut sub in subscriptions {
        let end = loop {
            match timeout(Duration::from_secs(5), sub.next()).await.expect("a subscription ends within 5 s") {
                Ok(_) => continue,
                Err(status) => break status,
            }
        };
        assert_eq!(end.code(), ccr_proto::wire::Code::Unavailable, "{end:?}");
    }
    for mut stream in streams {
        let end = loop {
            match timeout(Duration::from_secs(5), stream.next_reply()).await.expect("a gateway stream ends within 5 s")
            {
                Ok(_) => continue,
                Err(status) => break status,
            }
        };
        assert_eq!(end.code(), ccr_proto::wire::Code::Unavailable, "{end:?}");
    }
    let (refused, served, last) = hammer.await.unwrap();
    assert!(refused > 0, "calls past the limit were refused");
    assert!(served.is_empty(), "no call past the limit was served: {served:?}");
    assert!(last.is_some(), "the last call ended with the stop, not by hanging");
    let status = daemon.exit(Duration::from_secs(10)).await.expect("ccrd stops");
    assert!(status.success(), "{status}");
    let log = daemon.log();
    assert!(!log.contains("cut off") && !log.contains("not closed after"), "the stop waited on nobody:\n{log}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A configuration ccrd cannot use is the operator's to fix: one line with
/// the problem and its file, exit 1 — no backtrace, even with
/// `RUST_BACKTRACE` set (as on this project's CI machines).
#[test]
fn a_start_error_is_one_plain_message_without_a_backtrace() {
    let dir = scratch("start-error");
    std::fs::write(dir.join("broken.toml"), "skills = [\"billing\"]\n[[queues]]\nname = 7\n").unwrap();
    for (config, says) in [(dir.join("missing.toml"), "missing.toml"), (dir.join("broken.toml"), "broken.toml")] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_ccrd"))
            .arg("--config")
            .arg(&config)
            .env("RUST_BACKTRACE", "1")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains("ccrd: ") && stderr.contains(says), "{stderr}");
        assert!(!stderr.contains("backtrace") && !stderr.contains("panicked"), "{stderr}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
