//! Recovery time: how long ccrd takes to load a snapshot and replay a
//! journal of 1,000,000 commands after it.
//!
//! The journal is the `routing/mixed` workload (enqueue, accept, complete,
//! abandon / not ready / ready) at the routing-core issue's size — 10,000
//! agents, 200 skills, 20 languages, 30,000 contacts waiting at the snapshot
//! — written exactly as the routing thread writes it. Recovery is timed as
//! ccrd runs it at start-up (read, check, decode, replay), three times.
//!
//! `cargo bench -p ccr-benches --bench recovery` (target: ≤ 2 s);
//! `-- --commands N` writes a shorter journal (for profilers); `-- --huge`
//! starts from a snapshot of 100,000 agents and 1,100,000 contacts (one
//! offered to each agent, a million waiting; target: ≤ 5 s).

use std::io::Write;
use std::time::Instant;

use ccr_benches::scenarios::{Mixed, Workload};
use ccr_benches::Shape;
use ccr_daemon::journal::format::{self, InputRef};
use ccr_daemon::journal::{recovery, write_snapshot, JournalOptions, Names};

ccr_benches::use_ccrd_allocator!();

const DEFAULT_COMMANDS: u64 = 1_000_000;

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // cargo test --benches asks for a listing
    }
    // `-- --commands N` for a shorter journal (profiling).
    let args: Vec<String> = std::env::args().collect();
    let commands = args
        .iter()
        .position(|a| a == "--commands")
        .and_then(|i| args.get(i + 1)?.parse().ok())
        .unwrap_or(DEFAULT_COMMANDS);
    let dir = std::env::temp_dir().join(format!("ccr-bench-recovery-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();

    let huge = args.iter().any(|a| a == "--huge");
    let (shape, contacts, target) = if huge { (Shape::HUGE, 1_100_000, "5 s") } else { (Shape::LARGE, 30_000, "2 s") };
    let names = Names {
        skills: (0..shape.skills).map(|s| format!("skill{s}")).collect(),
        languages: (0..shape.languages).map(|l| format!("lang{l}")).collect(),
        queues: (0..shape.queues).map(|q| format!("queue{q}")).collect(),
        tiers: vec!["gold".into(), "silver".into(), "standard".into()],
    };
    let built = Instant::now();
    let mut mixed = Mixed::with_contacts(shape, contacts);
    // Room for the refused commands too (they use no record).
    mixed.prepare(commands as usize * 2);
    write_snapshot(&dir, 0, mixed.router.now(), &names, &mixed.router).unwrap();
    let mut segment = std::io::BufWriter::new(std::fs::File::create(format::segment_path(&dir, 1)).unwrap());
    segment.write_all(&format::segment_header(1)).unwrap();
    let (mut seq, mut buf, mut refused) = (0u64, Vec::with_capacity(1 << 16), 0u64);
    while seq < commands {
        let (now, command) = mixed.next_command();
        let mark = buf.len();
        format::encode_record(
            &mut buf,
            seq + 1,
            now,
            InputRef::Command { session: ccr_core::SessionId::LOCAL, command: &command },
        );
        if mixed.router.handle(now, command).is_ok() {
            seq += 1;
        } else {
            // As the routing thread does: a refused command is not journaled.
            buf.truncate(mark);
            refused += 1;
        }
        mixed.absorb_events();
        if buf.len() > 1 << 16 {
            segment.write_all(&buf).unwrap();
            buf.clear();
        }
    }
    segment.write_all(&buf).unwrap();
    // As ccrd leaves it: the rest of the zero-filled segment after the last
    // record (read and checked by recovery like the records).
    let written = segment.get_ref().metadata().unwrap().len() + segment.buffer().len() as u64;
    let segment_bytes = JournalOptions::default().segment_bytes;
    let zeros = vec![0; 1 << 20];
    let mut pad = written.next_multiple_of(segment_bytes) - written;
    while pad > 0 {
        let n = pad.min(zeros.len() as u64);
        segment.write_all(&zeros[..n as usize]).unwrap();
        pad -= n;
    }
    segment.flush().unwrap();
    drop(segment);
    let bytes: u64 = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().metadata().unwrap().len()).sum();
    println!(
        "journal: snapshot of {} agents and {} contacts + {commands} commands ({refused} refused, not journaled), \
         {:.1} MiB, built in {:?}",
        mixed.router.agent_count(),
        contacts,
        bytes as f64 / (1 << 20) as f64,
        built.elapsed()
    );
    // What a background snapshot costs the routing thread: one clone.
    let mut clones: Vec<_> = (0..5)
        .map(|_| {
            let t = Instant::now();
            let copy = mixed.router.clone();
            let took = t.elapsed();
            drop(copy);
            took
        })
        .collect();
    clones.sort();
    println!(
        "one clone of the router (what a snapshot cost the routing thread before the replica took them over): \
         median {:?} at this size",
        clones[2]
    );
    let expected = mixed.router.snapshot();
    drop(mixed);

    let mut times = Vec::new();
    for run in 0..3 {
        let started = Instant::now();
        let recovered = recovery::recover(&dir).unwrap().expect("journal present");
        let took = started.elapsed();
        assert_eq!(recovered.last_seq, commands);
        assert_eq!(recovered.report.replayed, commands);
        if run == 0 {
            assert!(recovered.router.snapshot() == expected, "the replayed state is the live one");
        }
        println!(
            "run {run}: recovered {commands} commands in {took:?} ({:.0} commands/s)",
            commands as f64 / took.as_secs_f64()
        );
        times.push(took);
        drop(recovered);
    }
    times.sort();
    println!("median: {:?} (target ≤ {target})", times[1]);
    breakdown(&dir, commands);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Where recovery's time goes apart from replaying: loading the snapshot,
/// reading the segment, checking and decoding its records.
fn breakdown(dir: &std::path::Path, commands: u64) {
    let listing = recovery::list(dir).unwrap();
    let t = Instant::now();
    let _ = recovery::read_snapshot(&listing.snapshots[0].1).unwrap();
    let snapshot = t.elapsed();
    let t = Instant::now();
    let bytes = std::fs::read(&listing.segments[0].1).unwrap();
    let read = t.elapsed();
    let t = Instant::now();
    let (mut offset, mut records) = (format::SEGMENT_HEADER_LEN, 0);
    while let format::Decoded::Record(_, len) = format::decode_record(&bytes[offset..]) {
        offset += len;
        records += 1;
    }
    assert_eq!(records, commands);
    println!(
        "of which, besides the replay itself: snapshot load {snapshot:?}, segment read {read:?}, CRC + decode of {records} records {:?}",
        t.elapsed()
    );
}
