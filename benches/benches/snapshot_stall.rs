//! Whether taking a snapshot pauses routing, at the size of a big centre:
//! 100,000 agents and 1,100,000 contacts (`Shape::HUGE`).
//!
//! The state is journaled and recovered as ccrd does at start; then the
//! routing thread (with its journal, `fsync = "never"` so that the disk is
//! not what is measured) serves an enqueue and an abandon at a time while
//! the snapshot replica writes snapshot after snapshot (`snapshot_bytes`
//! small), and once more with snapshots off. Every round trip is timed;
//! the figures to compare are the longest and the 99.9th percentile of the
//! two runs. For scale: one clone of the router, what each snapshot used to
//! cost the routing thread.
//!
//! `cargo bench -p ccr-benches --bench snapshot_stall` (target: no stall
//! over 1 ms that the run without snapshots does not have too); `-- --purge`
//! lets the allocator hand freed memory back to the OS, as ccrd does not
//! (`host::keep_freed_memory`).

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use ccr_benches::scenarios::Mixed;
use ccr_benches::{config, Generator, Shape};
use ccr_core::{Command, ContactId, Router};
use ccr_daemon::clock::ManualClock;
use ccr_daemon::core_thread::{self, Options};
use ccr_daemon::journal::{write_snapshot, FsyncPolicy, Journal, JournalMetrics, JournalOptions, Names};
use hdrhistogram::Histogram;

ccr_benches::use_ccrd_allocator!();

const CONTACTS: usize = 1_100_000;
const RUN: Duration = Duration::from_secs(40);

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // cargo test --benches asks for a listing
    }
    // As ccrd runs; `-- --purge` leaves the allocator's default, which
    // hands freed memory back to the OS as it goes.
    if !std::env::args().any(|a| a == "--purge") {
        ccr_daemon::host::keep_freed_memory();
    }
    let shape = Shape::HUGE;
    let names = Names {
        skills: (0..shape.skills).map(|s| format!("skill{s}")).collect(),
        languages: (0..shape.languages).map(|l| format!("lang{l}")).collect(),
        queues: (0..shape.queues).map(|q| format!("queue{q}")).collect(),
        tiers: vec!["gold".into(), "silver".into(), "standard".into()],
    };
    let dir = std::env::temp_dir().join(format!("ccr-bench-stall-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let built = Instant::now();
    let mixed = Mixed::with_contacts(shape, CONTACTS);
    let clone = {
        let t = Instant::now();
        let copy = mixed.router.clone();
        let took = t.elapsed();
        drop(copy);
        took
    };
    write_snapshot(&dir, 0, mixed.router.now(), &names, &mixed.router).unwrap();
    let now = mixed.router.now();
    drop(mixed);
    println!("{} agents, {CONTACTS} contacts, built and snapshotted in {:?}", shape.agents, built.elapsed());
    println!("one clone of the router (the old per-snapshot stall): {clone:?}");

    let only_snapshots = std::env::args().any(|a| a == "--snapshots-only");
    let runs = [("snapshots every 4 MiB of journal", 4 << 20), ("no snapshots", u64::MAX)];
    for (label, snapshot_bytes) in runs.into_iter().take(if only_snapshots { 1 } else { 2 }) {
        run(&dir, label, snapshot_bytes, &names, now, shape);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn run(dir: &std::path::Path, label: &str, snapshot_bytes: u64, names: &Names, now: ccr_core::Time, shape: Shape) {
    let options = JournalOptions {
        fsync: FsyncPolicy::Never,
        snapshot_interval: Duration::from_secs(3600),
        snapshot_bytes,
        ..JournalOptions::default()
    };
    let metrics = JournalMetrics::default();
    let last_snapshot = metrics.last_snapshot_ms.clone();
    let started = Instant::now();
    let opened =
        Journal::open(dir, &config(shape), names.clone(), now, options, metrics, Default::default()).expect("opens");
    println!("\n{label}: recovered in {:?}", started.elapsed());
    let mut core_options = Options::new(Duration::from_micros(200));
    core_options.journal = Some(opened.journal);
    // The clock stays where the state was built: no relaxation step or
    // offer timeout of a million contacts fires in the middle of the run.
    let clock = ManualClock::default();
    clock.set(opened.router.now());
    let (core, thread) = core_thread::spawn(opened.router, clock, core_options, |_, e| e, |_| {}).unwrap();
    let mut generator = Generator::new(shape, 9);
    for _ in 0..1000 {
        generator.agent();
    }
    let mut histogram = Histogram::<u64>::new_with_bounds(1, 10_000_000_000, 3).unwrap();
    let mut snapshots = 0;
    let mut seen = last_snapshot.load(Ordering::Relaxed);
    let mut id = 50_000_000u64;
    let start = Instant::now();
    let mut stalls = Vec::new();
    let mut written_at = Vec::new();
    while start.elapsed() < RUN {
        id += 1;
        let mut spec = generator.contact();
        spec.id = ContactId(id);
        for command in [Command::Enqueue(spec), Command::Abandon { contact: ContactId(id) }] {
            let t = Instant::now();
            core.command_blocking(command).expect("core runs").expect("accepted");
            histogram.record(t.elapsed().as_nanos() as u64).unwrap();
            if t.elapsed() > Duration::from_millis(20) {
                stalls.push((t.duration_since(start), t.elapsed()));
            }
        }
        let at = last_snapshot.load(Ordering::Relaxed);
        if at != seen {
            seen = at;
            snapshots += 1;
            written_at.push(start.elapsed());
        }
    }
    core.shutdown();
    let router: Router = thread.join().unwrap();
    let us = |q: f64| histogram.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "{label}: {} round trips in {RUN:?}, {snapshots} snapshots written meanwhile; \
         p50 {:.0} µs, p99 {:.0} µs, p99.9 {:.0} µs, max {:.2} ms ({} contacts at the end)",
        histogram.len(),
        us(0.5),
        us(0.99),
        us(0.999),
        histogram.max() as f64 / 1e6,
        router.contact_count(),
    );
    println!("  round trips over 20 ms (started at, took): {stalls:?}");
    println!("  snapshots seen written at: {written_at:?}");
}
