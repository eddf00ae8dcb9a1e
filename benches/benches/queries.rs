//! What the routing thread spends on the operator's and the gateway's
//! questions, at 10k agents and 100k contacts waiting (`Shape::LARGE`):
//! `Router::queue_stats` (Admin/QueueStats), `Router::all_queue_stats` (the
//! metrics sampler, once a second) and `Router::estimate_wait`
//! (Gateway/Position). The statistics read each queue's oldest wait from its
//! entries by arrival; a position is counted from the queue's order of ranks.
//! The estimate is measured twice: before the queues have history (from the
//! staffing alone) and once they have departures to go by (the queue-length
//! predictor on measured rates, as in steady operation); both count the
//! agents who qualify (docs/PERFORMANCE.md). Then the supervisor's pages:
//! agents, a queue's waiting contacts in service order, one contact's
//! diagnosis — each call's whole cost on the routing thread.

use std::time::Duration;

use ccr_benches::scenarios::{AgentsReady, NOW};
use ccr_benches::Shape;
use ccr_core::stats::WARM_UP_DEPARTURES;
use ccr_core::{AgentId, Command, ContactId, Event, EwtMethod, QueueId, Router};
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion};

ccr_benches::use_ccrd_allocator!();

/// Agents become ready and answer their offers until every queue has seen
/// enough departures for its measured rates to count.
fn warm_up(router: &mut Router, queues: u16) {
    // Later than the contacts' arrival: they waited, so their offers are
    // departures from the line.
    let now = NOW + Duration::from_secs(5);
    let mut next_agent = 0;
    let warm = |router: &Router| {
        (0..queues).all(|q| router.queue_stats(QueueId(q)).expect("queue").counters.answered >= WARM_UP_DEPARTURES)
    };
    while !warm(router) {
        router.handle(now, Command::AgentReady { agent: AgentId(next_agent) }).expect("ready");
        next_agent += 1;
        while let Some(e) = router.poll_event() {
            if let Event::Offered { agent, offer, .. } = e {
                router.handle(now, Command::Accept { agent, offer }).expect("accept");
            }
        }
    }
}

fn bench_estimate(group: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>, name: &str, router: &Router) {
    // Waiting contacts, spread over the queues (the generator numbers them from 0).
    let waiting: Vec<ContactId> = (0..100_000u64)
        .step_by(997)
        .map(ContactId)
        .filter(|&c| router.estimate_wait(c).is_ok_and(|e| e.method != EwtMethod::NotWaiting))
        .collect();
    assert!(!waiting.is_empty(), "the bench's contacts are waiting");
    let mut next = 0;
    group.bench_function(name, |b| {
        b.iter(|| {
            next = (next + 1) % waiting.len();
            router.estimate_wait(waiting[next]).unwrap()
        })
    });
}

/// The supervisor's pages (Admin/Agents, Contacts, Contact): each call's
/// whole cost, since it holds the routing thread for as long.
fn bench_supervision(group: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>, router: &Router) {
    use ccr_core::views::{AgentFilter, MAX_PAGE};
    let all = AgentFilter::default();
    group.bench_function("agents_page_100", |b| b.iter(|| router.agents_page(0, 100, &all)));
    group.bench_function("agents_page_1000", |b| b.iter(|| router.agents_page(0, MAX_PAGE, &all)));
    let busy = AgentFilter { state: Some(ccr_core::AgentState::Busy.index()), ..AgentFilter::default() };
    let serving = AgentFilter { queue: Some(QueueId(0)), ..AgentFilter::default() };
    group.bench_function("agents_page_for_queue", |b| b.iter(|| router.agents_page(0, 100, &serving)));
    group.bench_function("staffed_for_oldest", |b| b.iter(|| router.staffed_for_oldest(QueueId(0))));
    group.bench_function("agent_states_by_skill", |b| b.iter(|| router.agent_states_by_skill(64)));
    group.bench_function("agents_page_filtered_scan", |b| b.iter(|| router.agents_page(0, 100, &busy)));
    group
        .bench_function("waiting_in_queue_100", |b| b.iter(|| router.waiting_in_queue(QueueId(0), None, 100).unwrap()));
    group.bench_function("waiting_in_queue_1000", |b| {
        b.iter(|| router.waiting_in_queue(QueueId(0), None, MAX_PAGE).unwrap())
    });
    let contact = (0..100_000u64)
        .map(ContactId)
        .find(|&c| router.estimate_wait(c).is_ok_and(|e| e.method != EwtMethod::NotWaiting))
        .expect("a waiting contact");
    group.bench_function("diagnose", |b| b.iter(|| router.diagnose(contact).unwrap()));
}

fn queries(c: &mut Criterion) {
    let mut centre = AgentsReady::new(Shape::LARGE, 100_000);
    let mut group = c.benchmark_group("queries");
    group.sample_size(20);
    group.bench_function("queue_stats", |b| b.iter(|| centre.router.queue_stats(QueueId(0)).unwrap()));
    group.bench_function("all_queue_stats", |b| b.iter(|| centre.router.all_queue_stats()));
    bench_estimate(&mut group, "estimate_wait_warming_up", &centre.router);
    warm_up(&mut centre.router, Shape::LARGE.queues);
    bench_estimate(&mut group, "estimate_wait", &centre.router);
    bench_supervision(&mut group, &centre.router);
    group.finish();
}

criterion_group!(benches, queries);
criterion_main!(benches);
