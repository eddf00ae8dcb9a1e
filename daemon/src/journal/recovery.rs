//! Start-up: load the newest good snapshot, replay the journal after it.
//!
//! The core is deterministic, so recovery is the same inputs fed again: each
//! record carries the `now` the core was given, timer firings included, and
//! the replayed router ends in the state the live one had, decision for
//! decision. What recovery will not do is guess: a damaged record with good
//! records after it (damage in the middle), a gap in the sequence numbers or
//! a journal with no snapshot to start from stops start-up with an error
//! naming the file and offset. Only a torn tail (the last, unacknowledged
//! write of a crash) is cut off, and that is logged.

use std::fs::{self, File, OpenOptions};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ccr_core::{Command, Event, Router};

use super::format::{self, Decoded, Entry, Input, Names, SnapshotHeader};
use super::formats;
use super::JournalError;

/// What a data directory holds, by file name.
#[derive(Debug, Default)]
pub struct Listing {
    /// (seq, path), oldest first.
    pub snapshots: Vec<(u64, PathBuf)>,
    /// (first seq, path), oldest first.
    pub segments: Vec<(u64, PathBuf)>,
}

pub fn list(dir: &Path) -> Result<Listing, JournalError> {
    let mut listing = Listing::default();
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(listing),
        Err(e) => return Err(JournalError::io(dir, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| JournalError::io(dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(seq) = format::file_seq(name, "snapshot-", ".snap") {
            listing.snapshots.push((seq, entry.path()));
        } else if let Some(seq) = format::file_seq(name, "journal-", ".wal") {
            listing.segments.push((seq, entry.path()));
        }
    }
    listing.snapshots.sort();
    listing.segments.sort();
    Ok(listing)
}

/// The state recovered from a data directory.
pub struct Recovered {
    pub router: Router,
    pub names: Names,
    /// The last sequence number applied.
    pub last_seq: u64,
    pub report: RecoveryReport,
}

/// What recovery did, for the log and for metrics.
#[derive(Debug, Default, Clone)]
pub struct RecoveryReport {
    /// The snapshot recovery started from.
    pub snapshot: Option<(u64, PathBuf)>,
    /// Newer snapshots that could not be used, and why.
    pub unusable_snapshots: Vec<(PathBuf, String)>,
    /// Records applied after the snapshot.
    pub replayed: u64,
    /// A torn tail cut off: file, offset, why.
    pub truncated: Option<(PathBuf, u64, String)>,
    /// Empty or header-less segment files removed (a crash while creating one).
    pub removed_empty: Vec<PathBuf>,
    pub duration: Duration,
}

/// Reads and checks one snapshot file.
pub fn read_snapshot(path: &Path) -> Result<(SnapshotHeader, Names, Router), String> {
    let bytes = fs::read(path).map_err(|e| e.to_string())?;
    if format::is_older_snapshot(&bytes) {
        return Err("a snapshot of an earlier ccrd version, whose router state this one cannot read".into());
    }
    let header = format::parse_snapshot_header(&bytes).ok_or("not a ccr snapshot (bad header)")?;
    let payload = &bytes[format::SNAPSHOT_HEADER_LEN..];
    if payload.len() as u64 != header.len {
        return Err(format!("{} bytes of state where the header says {}", payload.len(), header.len));
    }
    if crc32c::crc32c(payload) != header.crc {
        return Err("checksum mismatch".into());
    }
    let (names, router) = match header.format {
        12 => formats::snp12::read(payload)?,
        13 => formats::snp13::read(payload)?,
        _ => formats::snp14::read(payload)?,
    };
    Ok((header, names, router))
}

/// Recovers the state held in `dir`; `None` when it holds no journal yet.
pub fn recover(dir: &Path) -> Result<Option<Recovered>, JournalError> {
    recover_observed(dir, &mut |_| {})
}

/// [`recover`], showing every event the replay produces to `on_event` (the
/// decisions the recovered core made again: tests compare them with the
/// ones the live core sent out).
pub fn recover_observed(dir: &Path, on_event: &mut dyn FnMut(Event)) -> Result<Option<Recovered>, JournalError> {
    let started = Instant::now();
    let listing = list(dir)?;
    if listing.snapshots.is_empty() && listing.segments.is_empty() {
        return Ok(None);
    }
    let mut report = RecoveryReport::default();
    let mut base = None;
    for (seq, path) in listing.snapshots.iter().rev() {
        match read_snapshot(path) {
            Ok((header, names, router)) if header.seq == *seq => {
                base = Some((*seq, names, router));
                report.snapshot = Some((*seq, path.clone()));
                break;
            }
            Ok((header, ..)) => report
                .unusable_snapshots
                .push((path.clone(), format!("holds sequence {} but is named {seq}", header.seq))),
            Err(why) => report.unusable_snapshots.push((path.clone(), why)),
        }
    }
    let Some((snapshot_seq, mut names, mut router)) = base else {
        return Err(JournalError::NoSnapshot {
            dir: dir.to_owned(),
            segments: listing.segments.len(),
            unusable: report.unusable_snapshots.iter().map(|(p, why)| format!("{}: {why}", p.display())).collect(),
        });
    };

    // One thread reads, checks and decodes; this one replays. Decoding is a
    // small share of recovery, but off the replay thread it costs nothing.
    let mut expected = snapshot_seq + 1;
    let (tx, rx) = crossbeam_channel::bounded::<Chunk>(64);
    let segments = &listing.segments;
    let outcome = std::thread::scope(|scope| {
        scope.spawn(move || read_segments(segments, snapshot_seq + 1, &tx));
        for chunk in rx {
            match chunk {
                Chunk::Segment { path, first_seq } if first_seq > expected => {
                    return Err(JournalError::Gap { path, expected, found: first_seq });
                }
                Chunk::Segment { .. } => {}
                Chunk::Entries { path, entries } => {
                    for entry in entries {
                        if entry.seq <= snapshot_seq {
                            continue; // already in the snapshot
                        }
                        if entry.seq < expected {
                            // Applied already from an earlier segment: two
                            // writers forked the history.
                            return Err(JournalError::Forked { path: path.to_path_buf(), seq: entry.seq });
                        }
                        if entry.seq != expected {
                            return Err(JournalError::Gap { path: path.to_path_buf(), expected, found: entry.seq });
                        }
                        apply(&mut router, &mut names, entry, on_event).map_err(|why| JournalError::Diverged {
                            path: path.to_path_buf(),
                            seq: expected,
                            why,
                        })?;
                        expected += 1;
                        report.replayed += 1;
                    }
                }
                Chunk::Truncated { path, offset, why } => report.truncated = Some((path, offset, why)),
                Chunk::RemovedEmpty(path) => report.removed_empty.push(path),
                Chunk::Failed(e) => return Err(e),
            }
        }
        Ok(())
    });
    outcome?;
    report.duration = started.elapsed();
    Ok(Some(Recovered { router, names, last_seq: expected - 1, report }))
}

/// What the reading thread hands the replaying one, in file order.
enum Chunk {
    Segment { path: PathBuf, first_seq: u64 },
    Entries { path: Arc<Path>, entries: Vec<Entry> },
    Truncated { path: PathBuf, offset: u64, why: String },
    RemovedEmpty(PathBuf),
    Failed(JournalError),
}

/// Records per chunk: large enough that the hand-over costs nothing.
const CHUNK: usize = 4096;

/// Reads every segment that may hold records from `from` on, in order,
/// cutting a torn tail of the last one; stops at the first error or when the
/// replaying side hangs up.
fn read_segments(segments: &[(u64, PathBuf)], from: u64, tx: &crossbeam_channel::Sender<Chunk>) {
    if let Err(e) = read_segments_inner(segments, from, tx) {
        let _ = tx.send(Chunk::Failed(e));
    }
}

fn read_segments_inner(
    segments: &[(u64, PathBuf)],
    from: u64,
    tx: &crossbeam_channel::Sender<Chunk>,
) -> Result<(), JournalError> {
    let hung_up = |_| JournalError::Incompatible("recovery stopped".into());
    // The journal's end is the last segment holding anything after its
    // header: segments after it hold no record (a crash while rotating can
    // leave one), and damage can only be a torn tail in that one.
    let written: Vec<bool> = segments
        .iter()
        .map(|(_, path)| written_past_header(path).map_err(|e| JournalError::io(path, e)))
        .collect::<Result<_, _>>()?;
    let end = written.iter().rposition(|&w| w).unwrap_or(0);
    let mut next_seq = from;
    for (i, (first_seq, path)) in segments.iter().enumerate() {
        let last = i >= end;
        // Wholly before the snapshot: the next segment starts at or before
        // the first record we need.
        if segments.get(i + 1).is_some_and(|(next, _)| *next <= from) {
            continue;
        }
        let mut bytes = Vec::new();
        File::open(path).and_then(|mut f| f.read_to_end(&mut bytes)).map_err(|e| JournalError::io(path, e))?;
        match format::parse_segment_header(&bytes) {
            Some(seq) if seq == *first_seq => {}
            Some(seq) => {
                return Err(JournalError::Corrupt {
                    path: path.clone(),
                    offset: 8,
                    why: format!("header says the segment starts at {seq}, its name says {first_seq}"),
                })
            }
            None if last && bytes.len() < format::SEGMENT_HEADER_LEN => {
                // Created, then the crash came before its header was durable.
                fs::remove_file(path).map_err(|e| JournalError::io(path, e))?;
                tx.send(Chunk::RemovedEmpty(path.clone())).map_err(hung_up)?;
                continue;
            }
            None => {
                let why = match format::is_older_segment(&bytes) {
                    true => {
                        "a segment of an earlier ccrd version, whose records this one cannot read: \
                             start the earlier version and drain it, or move the data directory aside"
                    }
                    false => "not a ccr journal segment",
                };
                return Err(JournalError::Corrupt { path: path.clone(), offset: 0, why: why.into() });
            }
        }
        tx.send(Chunk::Segment { path: path.clone(), first_seq: *first_seq }).map_err(hung_up)?;
        let shared_path: Arc<Path> = Arc::from(path.as_path());
        let mut entries = Vec::with_capacity(CHUNK);
        let mut offset = format::SEGMENT_HEADER_LEN;
        loop {
            match format::decode_record(&bytes[offset..]) {
                Decoded::Eof => break,
                Decoded::Record(entry, len) => {
                    next_seq = next_seq.max(entry.seq + 1);
                    entries.push(entry);
                    offset += len;
                    if entries.len() == CHUNK {
                        let full = std::mem::replace(&mut entries, Vec::with_capacity(CHUNK));
                        tx.send(Chunk::Entries { path: shared_path.clone(), entries: full }).map_err(hung_up)?;
                    }
                }
                damage @ (Decoded::Truncated | Decoded::Corrupt(_)) => {
                    let why = match damage {
                        Decoded::Corrupt(why) => why.to_owned(),
                        _ => "the file ends inside a record".to_owned(),
                    };
                    // Replay what came before the damage first.
                    tx.send(Chunk::Entries { path: shared_path.clone(), entries: std::mem::take(&mut entries) })
                        .map_err(hung_up)?;
                    let corrupt = |why| JournalError::Corrupt { path: path.clone(), offset: offset as u64, why };
                    if !last {
                        return Err(corrupt(why));
                    }
                    let why = match first_record_after(&bytes, offset, next_seq) {
                        None => why,
                        // A block that never reached the disk: the power went
                        // before the sync that would have covered it, and so
                        // before any reply for the records from here on.
                        Some(record) if zero_block_between(&bytes, offset, record) => format!(
                            "{why}, then a block of zeros where records were written: they were not yet durable \
                             when the machine stopped (never acknowledged)"
                        ),
                        Some(_) => return Err(corrupt(why)),
                    };
                    truncate(path, offset as u64)?;
                    tx.send(Chunk::Truncated { path: path.clone(), offset: offset as u64, why }).map_err(hung_up)?;
                    // Record-less segments after the tail would name
                    // sequence numbers that are no longer next: remove them.
                    for (_, later) in &segments[i + 1..] {
                        fs::remove_file(later).map_err(|e| JournalError::io(later, e))?;
                        tx.send(Chunk::RemovedEmpty(later.clone())).map_err(hung_up)?;
                    }
                    return Ok(());
                }
            }
        }
        if !entries.is_empty() {
            tx.send(Chunk::Entries { path: shared_path, entries }).map_err(hung_up)?;
        }
    }
    Ok(())
}

/// Whether a segment holds a byte other than zero after its header (its
/// space may be preallocated, so its length does not tell).
fn written_past_header(path: &Path) -> std::io::Result<bool> {
    let mut first = Vec::new();
    File::open(path)?.take((format::SEGMENT_HEADER_LEN + format::RECORD_HEADER_LEN) as u64).read_to_end(&mut first)?;
    Ok(!format::is_unwritten(first.get(format::SEGMENT_HEADER_LEN..).unwrap_or_default()))
}

/// Where the first intact record continuing the sequence lies after the
/// damage at `from`, if anywhere: then the damage is in the middle, not a
/// torn tail — unless the disk never got the bytes in between.
fn first_record_after(bytes: &[u8], from: usize, expected: u64) -> Option<usize> {
    // No record has a length of zero: offsets where one would be read (the
    // zero-filled rest of a segment, above all) are skipped without decoding.
    (from + 1..bytes.len()).find(|&at| {
        bytes.get(at..at + 4).is_some_and(|len| len != [0; 4])
            && matches!(format::decode_record(&bytes[at..]), Decoded::Record(entry, _) if entry.seq >= expected)
    })
}

/// Whether a whole disk sector of zeros lies between the damage and the next
/// intact record. Records never hold 512 zero bytes in a row, so such a
/// sector was written but never reached the disk: appended after the last
/// completed sync, in a file whose space was zero-filled (or allocated)
/// beforehand. Bit rot flips bits; it does not blank aligned sectors.
fn zero_block_between(bytes: &[u8], damage: usize, record: usize) -> bool {
    const SECTOR: usize = 512;
    let first = damage.next_multiple_of(SECTOR);
    (first..record.saturating_sub(SECTOR - 1)).step_by(SECTOR).any(|at| format::is_unwritten(&bytes[at..at + SECTOR]))
}

fn truncate(path: &Path, len: u64) -> Result<(), JournalError> {
    let file = OpenOptions::new().write(true).open(path).map_err(|e| JournalError::io(path, e))?;
    file.set_len(len).and_then(|_| file.sync_all()).map_err(|e| JournalError::io(path, e))
}

/// Feeds one journaled input to the router, exactly as the routing thread did.
pub fn apply(
    router: &mut Router,
    names: &mut Names,
    entry: Entry,
    on_event: &mut dyn FnMut(Event),
) -> Result<(), String> {
    match entry.input {
        Input::Command { session, command } => {
            router
                .handle_from(entry.now, session, command)
                .map_err(|e| format!("a journaled command was refused on replay: {e}"))?;
        }
        Input::Timers => router.handle_timeout(entry.now),
        Input::Restart { names: new_names, config } => {
            restart(router, entry.now, *config).map_err(|e| format!("restart record: {e}"))?;
            *names = new_names;
        }
    }
    while let Some(event) = router.poll_event() {
        on_event(event);
    }
    Ok(())
}

/// What a restart does to the recovered router: take the (possibly new)
/// configuration, then [`Command::Restart`]. Live and on replay alike.
pub fn restart(router: &mut Router, now: ccr_core::Time, config: ccr_core::RouterConfig) -> Result<(), String> {
    if *router.config() != config {
        router.handle(now, Command::Reconfigure(Box::new(config))).map_err(|e| e.to_string())?;
    }
    router.handle(now, Command::Restart).map_err(|e| e.to_string())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ccr_core::{AgentId, OfferId, Time};

    fn record(seq: u64) -> Vec<u8> {
        let mut out = Vec::new();
        let command = Command::Accept { agent: AgentId(1), offer: OfferId(seq) };
        let input = format::InputRef::Command { session: ccr_core::SessionId::LOCAL, command: &command };
        format::encode_record(&mut out, seq, Time::from_secs(seq), input);
        out
    }

    /// A torn record in a zero-filled segment is followed by megabytes of
    /// zeros: the search for records after the damage skips them in one pass
    /// (decoding at every offset would read the whole rest each time).
    #[test]
    fn the_search_past_damage_skips_a_long_zero_fill_and_still_finds_a_record() {
        let mut bytes = record(7);
        let torn = bytes.len() - 3;
        bytes.truncate(torn);
        bytes.resize(16 << 20, 0);
        assert_eq!(first_record_after(&bytes, 0, 7), None, "nothing but zeros after the torn record");
        let at = bytes.len() - 4096;
        let later = record(8);
        bytes[at..at + later.len()].copy_from_slice(&later);
        assert_eq!(first_record_after(&bytes, 0, 7), Some(at), "a record after the zeros is found");
        assert!(zero_block_between(&bytes, 0, at), "with sectors of zeros before it");
        assert!(!zero_block_between(&later.repeat(20), 1, later.len() * 10), "records hold no zero sector");
    }
}
