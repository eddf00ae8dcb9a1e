//! The cost of routing over QUIC: the unary round trip of `Gateway/Enqueue`
//! against ccrd, beside a bare quinn echo of the same bytes over the same TLS
//! configuration, measured in the same run (issue target: ccrd adds at most
//! 50 % to the echo). Client and server share this process and loopback.
//!
//! ccrd runs with `journal.fsync = "never"` here: this measures transport
//! and routing; `--bench stream` measures the fsync policies.
//!
//! `cargo bench -p ccr-benches --bench quic`

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ccr_daemon::config;
use ccr_daemon::journal::FsyncPolicy;
use ccr_daemon::loopback::{Echo, Loopback};
use ccr_proto::client::Client;
use ccr_proto::v1::{Channel, EnqueueRequest, SkillRequirement};
use ccr_proto::wire;
use criterion::{criterion_group, criterion_main, Criterion};

ccr_benches::use_ccrd_allocator!();

const CONFIG: &str = r#"
skills = ["billing"]
languages = ["zh"]
[[queues]]
name = "billing"
"#;

fn request(id: u64) -> EnqueueRequest {
    EnqueueRequest {
        contact_id: id,
        channel: Channel::Voice as i32,
        queue: "billing".into(),
        tier: "gold".into(),
        skills: vec![SkillRequirement { skill: "billing".into(), min_proficiency: 6 }],
        languages: vec!["zh".into()],
        ..Default::default()
    }
}

fn quic(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let dir = std::env::temp_dir().join(format!("ccr-bench-quic-{}", std::process::id()));
    let (client, echo_client, ccrd) = runtime.block_on(async {
        let mut cfg = config::parse(CONFIG).unwrap();
        cfg.server.data_dir = dir.clone();
        // The transport and the routing, not the disk: what a journal sync
        // costs is the stream bench's subject (fsync policies side by side).
        cfg.journal.options.fsync = FsyncPolicy::Never;
        let ccrd = Loopback::start(cfg, None, false).await.unwrap();
        let (ccrd_addr, cert) = (ccrd.addr, ccrd.cert.clone());
        let echo = Echo::start(&dir).await.unwrap();
        let echo_addr = echo.addr;
        let client = Client::connect(ccrd_addr, "localhost", std::slice::from_ref(&cert)).await.unwrap();
        let echo_client = Client::connect(echo_addr, "localhost", std::slice::from_ref(&cert)).await.unwrap();
        (client, echo_client, ccrd)
    });
    let next_id = Arc::new(AtomicU64::new(1));
    let mut bytes = Vec::new();
    wire::encode_header("/ccr.v1.Gateway/Enqueue", &mut bytes);
    wire::encode_message(&request(1), &mut bytes);

    let mut group = c.benchmark_group("quic");
    group.bench_function("echo_round_trip", |b| {
        b.iter_custom(|iters| {
            runtime.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let (mut send, mut recv) = echo_client.connection().open_bi().await.unwrap();
                    send.write_all(&bytes).await.unwrap();
                    send.finish().unwrap();
                    let back = recv.read_to_end(1 << 16).await.unwrap();
                    assert_eq!(back.len(), bytes.len());
                }
                start.elapsed()
            })
        })
    });
    group.bench_function("enqueue_round_trip", |b| {
        b.iter_custom(|iters| {
            runtime.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let id = next_id.fetch_add(1, Ordering::Relaxed);
                    client.enqueue(request(id)).await.unwrap();
                }
                start.elapsed()
            })
        })
    });
    group.finish();
    drop((client, echo_client));
    let _ = runtime.block_on(ccrd.stop());
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(Duration::from_secs(5));
    targets = quic
}
criterion_main!(benches);
