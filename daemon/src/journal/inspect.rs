//! `ccrd journal inspect`: what a journal directory holds, read-only, for
//! the operator who has to understand an incident.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use ccr_core::{Command, Time};

use super::format::{self, Decoded, Input};
use super::recovery;
use super::JournalError;

/// What [`inspect`] found: its report, and the damage in it (empty when
/// a start would recover everything without a word).
pub struct Inspection {
    pub text: String,
    pub damage: Vec<String>,
}

/// Describes every snapshot and segment in `dir` without changing anything.
/// A directory that does not exist is an error, not an empty journal.
pub fn inspect(dir: &Path) -> Result<Inspection, JournalError> {
    if !dir.is_dir() {
        let missing = std::io::Error::new(std::io::ErrorKind::NotFound, "no such directory");
        return Err(JournalError::io(dir, missing));
    }
    let listing = recovery::list(dir)?;
    let mut out = String::new();
    let mut damage = Vec::new();
    let _ = writeln!(out, "journal {}", dir.display());
    if listing.snapshots.is_empty() && listing.segments.is_empty() {
        let _ = writeln!(out, "  empty: no snapshot, no segment");
        return Ok(Inspection { text: out, damage });
    }
    let _ = writeln!(out, "snapshots ({}):", listing.snapshots.len());
    for (seq, path) in &listing.snapshots {
        let size = std::fs::metadata(path).map_or(0, |m| m.len());
        match recovery::read_snapshot(path) {
            Ok((header, names, router)) => {
                let _ = writeln!(
                    out,
                    "  seq {seq:>12}  at {}  {size} bytes  format {}  ok: {} agents, {} contacts, {} offers ringing, {} queues, {} skills",
                    clock(header.now),
                    header.format,
                    router.agent_count(),
                    router.contact_count(),
                    router.pending_offers(),
                    names.queues.len(),
                    names.skills.len(),
                );
            }
            Err(why) => {
                let _ = writeln!(out, "  seq {seq:>12}  {size} bytes  UNUSABLE: {why}");
                damage.push(format!("snapshot {} is unusable", path.display()));
            }
        }
    }
    let _ = writeln!(out, "segments ({}):", listing.segments.len());
    let mut kinds: BTreeMap<&'static str, u64> = BTreeMap::new();
    let (mut first_time, mut last_time, mut last_seq) = (None, None, None);
    let mut forks = Vec::new();
    // The last record of the segment before, to catch two writers: each
    // segment must start after it.
    let mut previous: Option<(u64, &Path)> = None;
    let segments = listing.segments.len();
    for (n, (first_seq, path)) in listing.segments.iter().enumerate() {
        let bytes = std::fs::read(path).map_err(|e| JournalError::io(path, e))?;
        if format::parse_segment_header(&bytes) != Some(*first_seq) {
            let _ = writeln!(out, "  first {first_seq:>12}  {} bytes  NO VALID HEADER", bytes.len());
            damage.push(format!("segment {} has no valid header", path.display()));
            continue;
        }
        let mut offset = format::SEGMENT_HEADER_LEN;
        let (mut records, mut span) = (0u64, None::<(Time, Time, u64, u64)>);
        let broken = loop {
            match format::decode_record(&bytes[offset..]) {
                Decoded::Eof => break None,
                Decoded::Record(entry, len) => {
                    records += 1;
                    *kinds.entry(kind(&entry.input)).or_default() += 1;
                    span = Some(match span {
                        None => (entry.now, entry.now, entry.seq, entry.seq),
                        Some((a, _, s, _)) => (a, entry.now, s, entry.seq),
                    });
                    first_time.get_or_insert(entry.now);
                    last_time = Some(entry.now);
                    last_seq = Some(entry.seq);
                    offset += len;
                }
                Decoded::Truncated => {
                    break Some((format!("ends inside a record at byte {offset} (a torn tail)"), true))
                }
                Decoded::Corrupt(why) => break Some((format!("damaged record at byte {offset}: {why}"), false)),
            }
        };
        let range = match span {
            Some((a, b, s, e)) => format!("records {s}..={e}  {} → {}", clock(a), clock(b)),
            None => "no records".to_owned(),
        };
        let unused = bytes.len() - offset;
        let size = match broken {
            None if unused > 0 => format!("{} bytes ({unused} zero-filled, not yet written)", bytes.len()),
            _ => format!("{} bytes", bytes.len()),
        };
        let _ = writeln!(out, "  first {first_seq:>12}  {size}  {records} records  {range}");
        if let Some((why, torn)) = &broken {
            let _ = writeln!(out, "    {why}");
            // A torn tail of the last segment is a crash mid-write, which
            // a start cuts off: nothing acknowledged was in it.
            if !(*torn && n + 1 == segments) {
                damage.push(format!("segment {}: {why}", path.display()));
            }
        }
        if let (Some((last, before)), Some((_, _, first, _))) = (previous, span) {
            if first <= last {
                forks.push(format!(
                    "{} starts at record {first}, but {} already holds records up to {last}",
                    path.display(),
                    before.display()
                ));
            }
        }
        if let Some((_, _, _, last)) = span {
            previous = Some((last, path.as_path()));
        }
    }
    if !forks.is_empty() {
        let _ = writeln!(out, "FORKED: segments overlap — two ccrd wrote this directory at once (or it was copied over a live one); a start refuses it:");
        for fork in &forks {
            let _ = writeln!(out, "  {fork}");
        }
        damage.push("segments overlap (forked)".to_owned());
    }
    let _ = writeln!(out, "records by kind:");
    for (kind, n) in &kinds {
        let _ = writeln!(out, "  {kind:<20} {n}");
    }
    match (last_seq, first_time, last_time) {
        (Some(seq), Some(a), Some(b)) => {
            let _ = writeln!(out, "last sequence number {seq}; records span {} → {}", clock(a), clock(b));
        }
        _ => {
            let _ = writeln!(out, "no records after the snapshots");
        }
    }
    Ok(Inspection { text: out, damage })
}

fn kind(input: &Input) -> &'static str {
    match input {
        Input::Timers => "timers",
        Input::Restart { .. } => "restart",
        Input::Command { command: c, .. } => match c {
            Command::AgentLogin { .. } => "agent_login",
            Command::AgentLogout { .. } => "agent_logout",
            Command::AgentDisconnected { .. } => "agent_disconnected",
            Command::AgentReady { .. } => "agent_ready",
            Command::AgentNotReady { .. } => "agent_not_ready",
            Command::Accept { .. } => "accept",
            Command::Reject { .. } => "reject",
            Command::Complete { .. } => "complete",
            Command::EndWrapUp { .. } => "end_wrap_up",
            Command::Enqueue(_) => "enqueue",
            Command::Abandon { .. } => "abandon",
            Command::Transfer(_) => "transfer",
            Command::Reconfigure(_) => "reconfigure",
            Command::Restart => "restart",
            Command::ScheduleCallback { .. } => "schedule_callback",
            Command::OpenSession { .. } => "open_session",
            Command::LoseSession { .. } => "lose_session",
            Command::ClaimContact { .. } => "claim_contact",
            Command::Drain => "drain",
            Command::Supervise(_) => "supervise",
        },
    }
}

/// A core time (microseconds since the Unix epoch in ccrd) as UTC.
fn clock(t: Time) -> String {
    humantime::format_rfc3339_millis(std::time::UNIX_EPOCH + std::time::Duration::from_micros(t.as_micros()))
        .to_string()
}
