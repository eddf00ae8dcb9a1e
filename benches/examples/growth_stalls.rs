//! The slowest single commands while contacts pile up with no agent ready,
//! then while as many come and go at that level (each abandon of the oldest
//! followed by a new arrival). A stall that comes back at the same count
//! from run to run is a structure growing or being cleaned all at once (a
//! `Vec` doubling at a power of two, a hash table at seven eighths of one,
//! or rehashed in place once removals have filled it); the machine's noise
//! falls elsewhere each run. The latency bench does not see these: its
//! workloads are built before it measures and then held still.
//!
//! `cargo run --release -p ccr-benches --example growth_stalls -- 300000` (the
//! number of contacts; 300,000 when not a positive number)

use std::time::{Duration, Instant};

use ccr_benches::scenarios::{login_all, NOW};
use ccr_benches::{config, Generator, Shape};
use ccr_core::{Command, ContactId, Router};

ccr_benches::use_ccrd_allocator!();

const SHOWN: usize = 12;

fn main() {
    let contacts: usize = std::env::args().nth(1).and_then(|n| n.parse().ok()).filter(|&n| n > 0).unwrap_or(300_000);
    let shape = Shape::LARGE;
    let mut generator = Generator::new(shape, 2);
    let mut router = Router::new(config(shape)).expect("config");
    login_all(&mut router, &mut generator, false);
    while router.poll_event().is_some() {}
    let specs: Vec<_> = (0..2 * contacts).map(|_| generator.contact()).collect();
    let ids: Vec<ContactId> = specs.iter().map(|s| s.id).collect();
    let mut specs = specs.into_iter();
    let mut timed = |command: Command| {
        let start = Instant::now();
        router.handle(NOW, command).expect("accepted");
        let took = start.elapsed();
        while router.poll_event().is_some() {}
        took
    };
    let mut filling: Vec<(Duration, usize)> = Vec::with_capacity(contacts);
    for (waiting, spec) in specs.by_ref().take(contacts).enumerate() {
        filling.push((timed(Command::Enqueue(spec)), waiting));
    }
    let mut churning: Vec<(Duration, usize)> = Vec::with_capacity(2 * contacts);
    for (i, (spec, &oldest)) in specs.zip(&ids).enumerate() {
        churning.push((timed(Command::Abandon { contact: oldest }), 2 * i));
        churning.push((timed(Command::Enqueue(spec)), 2 * i + 1));
    }
    show(&format!("{contacts} enqueues with no agent ready"), "the contacts already waiting", filling);
    show(&format!("then {contacts} abandons and as many enqueues"), "the command's number", churning);
}

fn show(what: &str, place: &str, mut took: Vec<(Duration, usize)>) {
    took.sort_unstable();
    println!("{what}: median {:?}; the slowest, by {place}:", took[took.len() / 2].0);
    for (time, at) in took.iter().rev().take(SHOWN) {
        println!("{:>12.3} ms at {at}", time.as_secs_f64() * 1000.0);
    }
}
