//! The distribution of single routing decisions, for the "median ≤ 1 µs"
//! question that a mean cannot answer. Each decision is timed on its own
//! (`Instant` pairs cost ~20–40 ns, included), in the three workloads of
//! `ccr_benches::scenarios`, and recorded in an HdrHistogram. The slowest
//! decision is named by round and place: one that is slowest in the same
//! place in every run is work the core does, not the machine's noise.
//!
//! `cargo bench -p ccr-benches --bench latency` (add `-- --quick` for a short run).

use std::time::Instant;

use ccr_benches::scenarios::{AgentsReady, Arrivals, Mixed, Workload, BACKLOG_SERVED};
use ccr_benches::Shape;
use hdrhistogram::Histogram;

ccr_benches::use_ccrd_allocator!();

/// What a run of one workload measured.
struct Measured {
    histogram: Histogram<u64>,
    decisions_per_second: f64,
    /// The slowest decision: (round, decision within the round).
    slowest_at: (usize, usize),
}

fn report(name: &str, m: &Measured) {
    let h = &m.histogram;
    let us = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    let (round, decision) = m.slowest_at;
    println!(
        "{name:<24} n={:<8} p50 {:>6.2} µs  p90 {:>6.2} µs  p99 {:>6.2} µs  p99.9 {:>7.2} µs  max {:>8.2} µs (round {round}, decision {decision})  ({:.0} decisions/s)",
        h.len(),
        us(0.5),
        us(0.9),
        us(0.99),
        us(0.999),
        h.max() as f64 / 1000.0,
        m.decisions_per_second,
    );
}

fn measure(rounds: usize, w: &mut impl Workload) -> Measured {
    let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).expect("histogram");
    let mut busy = 0u128;
    let (mut slowest, mut slowest_at) = (0, (0, 0));
    for round in 0..rounds {
        w.prepare(1000);
        for decision in 0..1000 {
            let t = Instant::now();
            w.decide();
            let ns = t.elapsed().as_nanos();
            busy += ns;
            histogram.record(ns.max(1) as u64).expect("in range");
            if ns > slowest {
                (slowest, slowest_at) = (ns, (round, decision));
            }
        }
        w.reset();
    }
    let decisions_per_second = histogram.len() as f64 / (busy as f64 / 1e9);
    Measured { histogram, decisions_per_second, slowest_at }
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let rounds = if quick { 20 } else { 200 };
    println!("shape: 10k agents × 200 skills × 20 languages × 3 tiers; {rounds} rounds of 1,000 decisions");

    let mut a = Arrivals::new(Shape::LARGE);
    report("routing/contact_arrival", &measure(rounds, &mut a));
    drop(a);

    let mut r = AgentsReady::new(Shape::LARGE, 100_000);
    report("routing/agent_ready", &measure(rounds, &mut r));
    drop(r);

    let mut r = AgentsReady::with_backlog(Shape::LARGE, 100_000, BACKLOG_SERVED);
    report("routing/agent_ready_backlog", &measure(rounds, &mut r));
    drop(r);

    let mut m = Mixed::new(Shape::LARGE);
    report("routing/mixed", &measure(rounds, &mut m));
}
