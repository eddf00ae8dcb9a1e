//! What a fenced journal append costs on etcd: three members on loopback
//! (started and stopped here), one leader, then
//! - one append at a time: latency per append (p50, p99);
//! - pipelined with [`Appender`] at depths 1, 8 and 32: batches a second.
//!
//! `cargo run --release -p ccr-cluster --example append_bench [-- BATCH_BYTES]`
//! (default 4096: a group-commit batch of a few dozen commands).

use std::time::{Duration, Instant};

use ccr_cluster::journal::{self, Appender, Batch};
use ccr_cluster::local_etcd::Etcd;
use ccr_cluster::{Candidate, Keys};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let bytes: usize = std::env::args().nth(1).map_or(Ok(4096), |a| a.parse())?;
    let etcd = Etcd::start()?;
    let keys = Keys::new("bench", "main")?;
    let mut candidate = Candidate::new(etcd.client().await?, keys.clone(), "a", "127.0.0.1:1", Duration::from_secs(2))?;
    let leads = candidate.campaign().await?;
    let mut client = etcd.client().await?;
    let mut first = 1u64;

    let mut latencies = Vec::new();
    for _ in 0..1_000 {
        let started = Instant::now();
        journal::append(&mut client, &keys, leads.epoch(), &Batch { first, records: 1, bytes: vec![7; bytes] }).await?;
        latencies.push(started.elapsed());
        first += 1;
    }
    latencies.sort_unstable();
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
    println!("one at a time, {bytes}-byte batches: p50 {:?}, p99 {:?}, max {:?}", at(0.5), at(0.99), at(1.0));

    for depth in [1, 8, 32] {
        let mut appender = Appender::new(etcd.client().await?, keys.clone(), leads.epoch(), first, depth);
        let (count, started) = (3_000u64, Instant::now());
        for _ in 0..count {
            if let Some(done) = appender.push(1, vec![7; bytes]).await {
                done?;
            }
            first += 1;
        }
        while let Some(done) = appender.next().await {
            done?;
        }
        let secs = started.elapsed().as_secs_f64();
        println!(
            "pipelined, depth {depth:>2}: {:>6.0} batches/s ({:.1} MB/s)",
            count as f64 / secs,
            count as f64 * bytes as f64 / secs / 1e6
        );
    }
    Ok(())
}
