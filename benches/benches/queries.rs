//! What the routing thread spends on the operator's and the gateway's
//! questions, at 10k agents and 100k contacts waiting (`Shape::LARGE`):
//! `Router::queue_stats` (Admin/QueueStats), `Router::all_queue_stats` (the
//! metrics sampler, once a second) and `Router::estimate_wait`
//! (Gateway/Position). Each is a scan over the contacts today; this bench
//! says what a scan costs at this size (docs/PERFORMANCE.md).

use ccr_benches::scenarios::AgentsReady;
use ccr_benches::Shape;
use ccr_core::{ContactId, QueueId};
use criterion::{criterion_group, criterion_main, Criterion};

ccr_benches::use_ccrd_allocator!();

fn queries(c: &mut Criterion) {
    let centre = AgentsReady::new(Shape::LARGE, 100_000);
    let router = &centre.router;
    // Waiting contacts, spread over the queue (the generator numbers them from 0).
    let waiting: Vec<ContactId> =
        (0..100_000u64).step_by(997).map(ContactId).filter(|&c| router.estimate_wait(c).is_ok()).collect();
    assert!(!waiting.is_empty(), "the bench's contacts are waiting");
    let mut group = c.benchmark_group("queries");
    group.sample_size(20);
    group.bench_function("queue_stats", |b| b.iter(|| router.queue_stats(QueueId(0)).unwrap()));
    group.bench_function("all_queue_stats", |b| b.iter(|| router.all_queue_stats()));
    let mut next = 0;
    group.bench_function("estimate_wait", |b| {
        b.iter(|| {
            next = (next + 1) % waiting.len();
            router.estimate_wait(waiting[next]).unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, queries);
criterion_main!(benches);
