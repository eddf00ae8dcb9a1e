//! Routing-core benchmarks at the size of a large centre: 10k agents × 200
//! skills × 20 languages × 3 tiers (`Shape::LARGE`). The workloads are in
//! `ccr_benches::scenarios`:
//!
//! - `routing/contact_arrival`: one `Enqueue` with nearly every agent free
//!   (the contact-side search for the best agent).
//! - `routing/agent_ready`: one `AgentReady` with 100k contacts waiting (the
//!   agent-side search for the best contact it qualifies for).
//! - `routing/agent_ready_backlog`: the same after a million contacts were
//!   served and replaced, which leaves the contacts few agents qualify for
//!   at the front of the lists.
//! - `routing/mixed`: a steady stream of enqueue / accept / complete /
//!   abandon-or-state-change; throughput in commands per second.
//!
//!
//! `routing_100k/*`: `contact_arrival` and `agent_ready` at ten times the
//! agents (`Shape::HUGE`, 100k) with a million contacts waiting for
//! `agent_ready`.
//!
//! Each sample times batches of 1,000 commands; the untimed reset between
//! batches brings the centre back to the same state, so that a figure does
//! not depend on how many batches ran before it.

use std::time::{Duration, Instant};

use ccr_benches::scenarios::{AgentsReady, Arrivals, Mixed, Workload, BACKLOG_SERVED};
use ccr_benches::Shape;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

ccr_benches::use_ccrd_allocator!();

const BATCH: u64 = 1_000;

/// Runs `iters` decisions in batches, timing only `decide`.
fn batches(iters: u64, w: &mut impl Workload) -> Duration {
    let mut total = Duration::ZERO;
    let mut done = 0;
    while done < iters {
        let n = BATCH.min(iters - done);
        w.prepare(n as usize);
        let start = Instant::now();
        for _ in 0..n {
            w.decide();
        }
        total += start.elapsed();
        w.reset();
        done += n;
    }
    total
}

fn routing(c: &mut Criterion) {
    let mut group = c.benchmark_group("routing");
    group.throughput(Throughput::Elements(1));
    let mut arrivals = Arrivals::new(Shape::LARGE);
    group.bench_function("contact_arrival", |b| b.iter_custom(|iters| batches(iters, &mut arrivals)));
    drop(arrivals);
    let mut ready = AgentsReady::new(Shape::LARGE, 100_000);
    group.bench_function("agent_ready", |b| b.iter_custom(|iters| batches(iters, &mut ready)));
    drop(ready);
    let mut backlog = AgentsReady::with_backlog(Shape::LARGE, 100_000, BACKLOG_SERVED);
    group.bench_function("agent_ready_backlog", |b| b.iter_custom(|iters| batches(iters, &mut backlog)));
    drop(backlog);
    let mut mixed = Mixed::new(Shape::LARGE);
    group.bench_function("mixed", |b| b.iter_custom(|iters| batches(iters, &mut mixed)));
    group.finish();
    drop(mixed);

    let mut group = c.benchmark_group("routing_100k");
    group.throughput(Throughput::Elements(1));
    let mut arrivals = Arrivals::new(Shape::HUGE);
    group.bench_function("contact_arrival", |b| b.iter_custom(|iters| batches(iters, &mut arrivals)));
    drop(arrivals);
    let mut ready = AgentsReady::new(Shape::HUGE, 1_000_000);
    group.bench_function("agent_ready_1m_waiting", |b| b.iter_custom(|iters| batches(iters, &mut ready)));
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(Duration::from_secs(5));
    targets = routing
}
criterion_main!(benches);
