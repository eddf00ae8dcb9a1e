//! What a `ccrd` process holds for the contexts clients send: a real ccrd
//! (the binary given), contacts with large contexts sent over one gateway
//! stream, its resident memory (VmRSS) read before and after, against the
//! bytes of context sent. The journal and its snapshot replica are on, as
//! in production (`fsync = "never"`, so that the disk does not pace it).
//!
//! `cargo build --release -p ccr-daemon --bin ccrd`
//! `cargo run --release -p ccr-benches --example context_memory -- target/release/ccrd [MiB] [KiB per context]`

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ccr_proto::client::Client;
use ccr_proto::v1::gateway_command::Command as C;
use ccr_proto::v1::*;

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(ccrd) = args.get(1) else {
        eprintln!("usage: context_memory CCRD_BINARY [MiB of context] [KiB per context]");
        std::process::exit(2);
    };
    let total_mib: u64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(330);
    let context_kib: u64 = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(60);
    let contacts = total_mib * 1024 / context_kib;
    let dir = std::env::temp_dir().join(format!("ccr-context-memory-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("ccrd.toml"),
        format!(
            "skills = [\"billing\"]\n[server]\nmax_message_bytes = {}\nmax_pending_bytes = {}\n\
             [journal]\nfsync = \"never\"\n[routing]\nmax_contacts = {}\nmax_context_entries = 4\n\
             max_context_bytes = {}\n[[queues]]\nname = \"support\"\n",
            context_kib * 1024 + 4096,
            256 << 20,
            contacts + 1000,
            context_kib * 1024 + 64,
        ),
    )
    .unwrap();
    let addr: SocketAddr = std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let mut child = Command::new(ccrd)
        .args(["--config", dir.join("ccrd.toml").to_str().unwrap(), "--listen", &addr.to_string()])
        .args(["--metrics-listen", "127.0.0.1:0", "--data-dir", dir.join("data").to_str().unwrap()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("ccrd starts");
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(20);
        let client = loop {
            if let Ok(cert) = std::fs::read(dir.join("data/cert.der")) {
                if let Ok(client) = Client::connect(addr, "localhost", std::slice::from_ref(&cert)).await {
                    if client.health(HealthRequest {}).await.is_ok() {
                        break client;
                    }
                }
            }
            assert!(Instant::now() < deadline, "ccrd did not come up");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let before = rss_kib(child.id());
        let value = "x".repeat((context_kib * 1024) as usize);
        let mut stream = client.gateway_stream().await.unwrap();
        let mut sent = 0u64;
        for batch in (1..=contacts).collect::<Vec<_>>().chunks(100) {
            for &id in batch {
                let request = EnqueueRequest {
                    contact_id: id,
                    channel: Channel::Voice as i32,
                    queue: "support".into(),
                    skills: vec![SkillRequirement { skill: "billing".into(), min_proficiency: 1 }],
                    context: vec![ContextEntry { key: "note".into(), value: value.clone() }],
                    ..Default::default()
                };
                stream.push(&GatewayCommand { id, command: Some(C::Enqueue(request)) });
                sent += value.len() as u64;
            }
            stream.flush().await.unwrap();
            for _ in batch {
                let reply = stream.next_reply().await.unwrap();
                assert!(reply.status.is_none_or(|s| s.code == 0), "refused");
            }
        }
        // The replica applies behind the writer: let it catch up.
        tokio::time::sleep(Duration::from_secs(5)).await;
        let after = rss_kib(child.id());
        let grew = (after - before) as f64 * 1024.0;
        println!(
            "{contacts} contacts with {context_kib} KiB of context each, {:.0} MiB of context sent: \
             ccrd's resident memory {:.0} → {:.0} MiB, +{:.0} MiB = {:.2} × what was sent",
            sent as f64 / 1048576.0,
            before as f64 / 1024.0,
            after as f64 / 1024.0,
            grew / 1048576.0,
            grew / sent as f64,
        );
    });
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
}
