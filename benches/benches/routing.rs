//! Routing-core benchmarks at the size of a large centre: 10k agents × 200
//! skills × 20 languages × 3 tiers (see `Shape::LARGE`).
//!
//! - `routing/contact_arrival`: one `Enqueue` with most agents available: the
//!   contact-side search (find the best agent). Timed in batches of 1,000;
//!   the untimed clean-up answers and completes the offers so the next batch
//!   meets the same centre.
//! - `routing/agent_ready`: one `AgentReady` with 100k contacts waiting: the
//!   agent-side search (find the best contact it qualifies for). The untimed
//!   clean-up sends the agent back to not ready and tops the queue up.
//! - `routing/mixed`: a steady stream of four commands per iteration
//!   (enqueue, accept, complete — which makes the freed agent take the next
//!   contact —, and one of abandon / not-ready / ready), with the driver's
//!   bookkeeping and event draining included. Virtual time advances 100 µs
//!   per iteration, so relaxation steps fire as they would live (their work
//!   is included, not counted as commands). Throughput is in commands per
//!   second.
//!
//! Every command goes through `Router::handle` and every event is drained,
//! as the daemon does.

use std::collections::VecDeque;
use std::hint::black_box;
use std::time::{Duration, Instant};

use ccr_benches::{config, Generator, Shape};
use ccr_core::{AgentId, Command, ContactId, Event, NotReadyReason, OfferId, Router, Time};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const BATCH: u64 = 1_000;
const NOW: Time = Time::from_secs(1);

fn login_all(router: &mut Router, generator: &mut Generator, ready: bool) {
    for a in 0..generator.shape.agents {
        let profile = generator.agent();
        router.handle(NOW, Command::AgentLogin { agent: AgentId(a), profile, ready }).expect("login");
    }
}

fn drain(router: &mut Router, offers: &mut Vec<(AgentId, OfferId, ContactId)>) {
    while let Some(e) = router.poll_event() {
        if let Event::Offered { agent, offer, contact, .. } = e {
            offers.push((agent, offer, contact));
        }
    }
}

fn contact_arrival(c: &mut Criterion) {
    let shape = Shape::LARGE;
    let mut generator = Generator::new(shape, 1);
    let mut router = Router::new(config(shape)).expect("config");
    login_all(&mut router, &mut generator, true);
    drain(&mut router, &mut Vec::new());
    let mut group = c.benchmark_group("routing");
    group.throughput(Throughput::Elements(1));
    group.bench_function("contact_arrival", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut done = 0;
            let mut offers = Vec::with_capacity(BATCH as usize);
            while done < iters {
                let n = BATCH.min(iters - done);
                let specs: Vec<_> = (0..n).map(|_| generator.contact()).collect();
                let ids: Vec<_> = specs.iter().map(|s| s.id).collect();
                offers.clear();
                let start = Instant::now();
                for spec in specs {
                    black_box(router.handle(NOW, Command::Enqueue(spec)).is_ok());
                    drain(&mut router, &mut offers);
                }
                total += start.elapsed();
                done += n;
                // Untimed: answer and finish everything, so every agent is free again.
                while let Some((agent, offer, contact)) = offers.pop() {
                    router.handle(NOW, Command::Accept { agent, offer }).expect("accept");
                    router.handle(NOW, Command::Complete { agent, contact }).expect("complete");
                    drain(&mut router, &mut offers);
                }
                for id in ids {
                    let _ = router.handle(NOW, Command::Abandon { contact: id });
                }
                drain(&mut router, &mut offers);
                assert!(offers.is_empty());
            }
            total
        })
    });
    group.finish();
}

fn agent_ready(c: &mut Criterion) {
    let shape = Shape::LARGE;
    let mut generator = Generator::new(shape, 2);
    let mut router = Router::new(config(shape)).expect("config");
    login_all(&mut router, &mut generator, false);
    for _ in 0..100_000 {
        router.handle(NOW, Command::Enqueue(generator.contact())).expect("enqueue");
    }
    drain(&mut router, &mut Vec::new());
    let mut next_agent = 0u64;
    let mut group = c.benchmark_group("routing");
    group.throughput(Throughput::Elements(1));
    group.bench_function("agent_ready", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut done = 0;
            let mut offers = Vec::with_capacity(BATCH as usize);
            while done < iters {
                let n = BATCH.min(iters - done);
                let agents: Vec<_> = (0..n).map(|i| AgentId((next_agent + i) % shape.agents)).collect();
                next_agent += n;
                offers.clear();
                let start = Instant::now();
                for &agent in &agents {
                    black_box(router.handle(NOW, Command::AgentReady { agent }).is_ok());
                    drain(&mut router, &mut offers);
                }
                total += start.elapsed();
                done += n;
                // Untimed: agents back to not ready, their contacts served and replaced.
                for &agent in &agents {
                    let reason = NotReadyReason::Break;
                    router.handle(NOW, Command::AgentNotReady { agent, reason }).expect("not ready");
                }
                for &(agent, offer, contact) in &offers {
                    router.handle(NOW, Command::Accept { agent, offer }).expect("accept");
                    router.handle(NOW, Command::Complete { agent, contact }).expect("complete");
                    router.handle(NOW, Command::Enqueue(generator.contact())).expect("enqueue");
                }
                drain(&mut router, &mut Vec::new());
            }
            total
        })
    });
    group.finish();
}

fn mixed(c: &mut Criterion) {
    let shape = Shape::LARGE;
    let mut generator = Generator::new(shape, 3);
    let mut router = Router::new(config(shape)).expect("config");
    login_all(&mut router, &mut generator, true);
    let mut offers = Vec::new();
    for _ in 0..30_000 {
        router.handle(NOW, Command::Enqueue(generator.contact())).expect("enqueue");
    }
    drain(&mut router, &mut offers);
    let mut pending: VecDeque<_> = offers.drain(..).collect();
    let mut connected: VecDeque<(AgentId, ContactId)> = VecDeque::new();
    let mut recent: VecDeque<ContactId> = VecDeque::new();
    let mut step = 0u64;
    let mut now = NOW;
    let mut toggled: Option<AgentId> = None;
    let mut group = c.benchmark_group("routing");
    group.throughput(Throughput::Elements(4));
    group.bench_function("mixed", |b| {
        b.iter_custom(|iters| {
            let specs: Vec<_> = (0..iters).map(|_| generator.contact()).collect();
            let mut specs = specs.into_iter();
            let start = Instant::now();
            for _ in 0..iters {
                step += 1;
                now = now + Duration::from_micros(100);
                let spec = specs.next().expect("spec");
                recent.push_back(spec.id);
                black_box(router.handle(now, Command::Enqueue(spec)).is_ok());
                drain(&mut router, &mut offers);
                pending.extend(offers.drain(..));
                match pending.pop_front() {
                    Some((agent, offer, contact)) => {
                        let accepted = router.handle(now, Command::Accept { agent, offer }).is_ok();
                        if accepted {
                            connected.push_back((agent, contact));
                        }
                    }
                    None => {
                        black_box(router.handle(now, Command::AgentReady { agent: AgentId(0) }).is_ok());
                    }
                }
                drain(&mut router, &mut offers);
                pending.extend(offers.drain(..));
                match connected.pop_front() {
                    Some((agent, contact)) => {
                        black_box(router.handle(now, Command::Complete { agent, contact }).is_ok())
                    }
                    None => black_box(router.handle(now, Command::AgentReady { agent: AgentId(1) }).is_ok()),
                };
                drain(&mut router, &mut offers);
                pending.extend(offers.drain(..));
                let command = match step % 4 {
                    0 => {
                        let old = if recent.len() > 500 { recent.pop_front() } else { None };
                        Command::Abandon { contact: old.unwrap_or(ContactId(0)) }
                    }
                    _ => match toggled.take() {
                        Some(agent) => Command::AgentReady { agent },
                        None => {
                            let agent = AgentId(step % shape.agents);
                            toggled = Some(agent);
                            Command::AgentNotReady { agent, reason: NotReadyReason::Break }
                        }
                    },
                };
                black_box(router.handle(now, command).is_ok());
                drain(&mut router, &mut offers);
                pending.extend(offers.drain(..));
            }
            start.elapsed()
        })
    });
    group.finish();
}

criterion_group! {
    name = routing;
    config = Criterion::default().sample_size(30).measurement_time(Duration::from_secs(5));
    targets = contact_arrival, agent_ready, mixed
}
criterion_main!(routing);
