//! Runs one routing workload for a fixed number of decisions, for profilers
//! that need a steady, repeatable run (callgrind with `--toggle-collect` on
//! `decide`, perf). It prints the mean time per decision and that of the
//! median batch, handy to compare two builds (`scripts/ab-decisions.sh`); the
//! criterion benches remain the reference.
//!
//! `cargo run --release -p ccr-benches --example profile_decisions -- agent_ready 20000`

use ccr_benches::scenarios::{AgentsReady, Arrivals, Mixed, Workload, BACKLOG_SERVED};
use ccr_benches::Shape;
use std::time::{Duration, Instant};

ccr_benches::use_ccrd_allocator!();

/// Runs `decisions` decisions in batches of 1,000; returns the time each
/// batch spent deciding (not preparing or resetting).
fn run(w: &mut impl Workload, decisions: usize) -> Vec<Duration> {
    let mut batches = Vec::with_capacity(decisions.div_ceil(1000));
    let mut done = 0;
    while done < decisions {
        w.prepare(1000);
        let start = Instant::now();
        for _ in 0..1000 {
            w.decide();
        }
        batches.push(start.elapsed());
        w.reset();
        done += 1000;
    }
    batches
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let workload = args.get(1).map_or("mixed", String::as_str);
    let decisions: usize = args.get(2).and_then(|n| n.parse().ok()).unwrap_or(20_000);
    let mut batches = match workload {
        "contact_arrival" => run(&mut Arrivals::new(Shape::LARGE), decisions),
        "agent_ready" => run(&mut AgentsReady::new(Shape::LARGE, 100_000), decisions),
        "agent_ready_backlog" => run(&mut AgentsReady::with_backlog(Shape::LARGE, 100_000, BACKLOG_SERVED), decisions),
        "mixed" => run(&mut Mixed::new(Shape::LARGE), decisions),
        other => panic!("unknown workload {other:?}: contact_arrival, agent_ready, agent_ready_backlog or mixed"),
    };
    let per_decision = |d: Duration| d.as_nanos() as f64 / 1000.0;
    let mean = batches.iter().sum::<Duration>().as_nanos() as f64 / (batches.len() * 1000) as f64;
    // The median batch is steadier than the mean on a shared machine: a
    // burst of another tenant's work spoils a few batches, not the median.
    batches.sort_unstable();
    let median = per_decision(batches[batches.len() / 2]);
    // The fastest tenth: what the code costs when the neighbours are quiet.
    let fast = per_decision(batches[batches.len() / 10]);
    println!(
        "{decisions} decisions of {workload}: {mean:.0} ns per decision (median batch {median:.0} ns, fastest tenth {fast:.0} ns)"
    );
}
