//! The distribution of single routing decisions, for the "median ≤ 1 µs"
//! question that a mean cannot answer. Each decision is timed on its own
//! (`Instant` pairs cost ~20–40 ns, included), in the three workloads of
//! `ccr_benches::scenarios`, and recorded in an HdrHistogram.
//!
//! `cargo bench -p ccr-benches --bench latency` (add `-- --quick` for a short run).

use std::time::Instant;

use ccr_benches::scenarios::{AgentsReady, Arrivals, Mixed, Workload};
use ccr_benches::Shape;
use hdrhistogram::Histogram;

ccr_benches::use_ccrd_allocator!();

fn report(name: &str, h: &Histogram<u64>, elapsed_decisions: f64) {
    let us = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "{name:<24} n={:<8} p50 {:>6.2} µs  p90 {:>6.2} µs  p99 {:>6.2} µs  p99.9 {:>7.2} µs  max {:>8.2} µs  ({:.0} decisions/s)",
        h.len(),
        us(0.5),
        us(0.9),
        us(0.99),
        us(0.999),
        h.max() as f64 / 1000.0,
        elapsed_decisions,
    );
}

fn measure(rounds: usize, w: &mut impl Workload) -> (Histogram<u64>, f64) {
    let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).expect("histogram");
    let mut busy = 0u128;
    for _ in 0..rounds {
        w.prepare(1000);
        for _ in 0..1000 {
            let t = Instant::now();
            w.decide();
            let ns = t.elapsed().as_nanos();
            busy += ns;
            h.record(ns.max(1) as u64).expect("in range");
        }
        w.reset();
    }
    let rate = h.len() as f64 / (busy as f64 / 1e9);
    (h, rate)
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let rounds = if quick { 20 } else { 200 };
    println!("shape: 10k agents × 200 skills × 20 languages × 3 tiers; {rounds} rounds of 1,000 decisions");

    let mut a = Arrivals::new(Shape::LARGE);
    let (h, rate) = measure(rounds, &mut a);
    report("routing/contact_arrival", &h, rate);
    drop(a);

    let mut r = AgentsReady::new(Shape::LARGE, 100_000);
    let (h, rate) = measure(rounds, &mut r);
    report("routing/agent_ready", &h, rate);
    drop(r);

    let mut m = Mixed::new(Shape::LARGE);
    let (h, rate) = measure(rounds, &mut m);
    report("routing/mixed", &h, rate);
}
