//! Runs one routing workload for a fixed number of decisions, for profilers
//! that need a steady, repeatable run (callgrind with `--toggle-collect` on
//! `decide`, perf). Not a benchmark: it prints nothing but the count.
//!
//! `cargo run --release -p ccr-benches --example profile_decisions -- agent_ready 20000`

use ccr_benches::scenarios::{AgentsReady, Arrivals, Mixed, Workload};
use ccr_benches::Shape;

fn run(w: &mut impl Workload, decisions: usize) {
    let mut done = 0;
    while done < decisions {
        w.prepare(1000);
        for _ in 0..1000 {
            w.decide();
        }
        w.reset();
        done += 1000;
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let workload = args.get(1).map_or("mixed", String::as_str);
    let decisions: usize = args.get(2).and_then(|n| n.parse().ok()).unwrap_or(20_000);
    match workload {
        "contact_arrival" => run(&mut Arrivals::new(Shape::LARGE), decisions),
        "agent_ready" => run(&mut AgentsReady::new(Shape::LARGE, 100_000), decisions),
        "mixed" => run(&mut Mixed::new(Shape::LARGE), decisions),
        other => panic!("unknown workload {other:?}: contact_arrival, agent_ready or mixed"),
    }
    println!("{decisions} decisions of {workload}");
}
