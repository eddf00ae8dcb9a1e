//! The bytes on disk: journal records, segment files and snapshot files.
//!
//! ```text
//! segment  := "CCRJNL03" first_seq:u64le record*
//! record   := len:u32le crc:u32le payload[len]        crc = CRC32C(payload)
//! payload  := postcard(Entry { seq, now, input })
//! snapshot := "CCRSNP14" seq:u64le now:u64le len:u64le crc:u32le payload[len]
//! ```
//! A record's payload is a [`super::formats::jnl03::Entry`]; a snapshot's
//! is described in [`super::formats::snp14`] (formats 13 and 12, still
//! read, in [`super::formats::snp13`] and [`super::formats::snp12`]).
//! ```text
//! ```
//! Segments are named `journal-<first seq, 20 digits>.wal` and snapshots
//! `snapshot-<seq, 20 digits>.snap`, so that a directory listing sorts them.
//! A snapshot at `seq` holds the state after every record up to `seq`.

use std::path::{Path, PathBuf};

use std::borrow::Cow;

use ccr_core::{Command, RouterConfig, SessionId, Time};
use serde::{Deserialize, Serialize};

use super::formats::jnl03;

/// The number is the version of the records inside (version 2: commands
/// carry the session they came from; 3: the routing configuration carries
/// the contact and context limits).
pub const SEGMENT_MAGIC: &[u8; 8] = b"CCRJNL03";
/// Segment formats of earlier versions, recognised to say so.
const OLDER_SEGMENT_MAGICS: [&[u8; 8]; 2] = [b"CCRJNL01", b"CCRJNL02"];
pub const SEGMENT_HEADER_LEN: usize = 16;
/// The number is the version of the snapshot's content: 14, the router's
/// state as records with the queues' whole wait history
/// ([`super::formats::snp14`]).
pub const SNAPSHOT_MAGIC: &[u8; 8] = b"CCRSNP14";
/// Format 13, the same without the wait history, still read
/// ([`super::formats::snp13`]).
const SNAPSHOT_MAGIC_13: &[u8; 8] = b"CCRSNP13";
/// Format 12, the core's own structures, still read ([`super::formats::snp12`]).
const SNAPSHOT_MAGIC_12: &[u8; 8] = b"CCRSNP12";
/// Snapshot formats of earlier versions, recognised to say so.
const OLDER_SNAPSHOT_MAGICS: [&[u8; 8]; 11] = [
    b"CCRSNP01",
    b"CCRSNP02",
    b"CCRSNP03",
    b"CCRSNP04",
    b"CCRSNP05",
    b"CCRSNP06",
    b"CCRSNP07",
    b"CCRSNP08",
    b"CCRSNP09",
    b"CCRSNP10",
    b"CCRSNP11",
];
pub const SNAPSHOT_HEADER_LEN: usize = 36;
pub const RECORD_HEADER_LEN: usize = 8;
/// Larger than any command can be (`server.max_message_bytes` is at most a
/// quarter of it), so a length beyond it can only be damage.
pub const MAX_RECORD_LEN: usize = 16 << 20;

/// The names behind the core's small ids (skill 3 is `names.skills[3]`): a
/// snapshot and a restart carry them so that a later configuration that
/// renumbers skills cannot silently change what recovered contacts require.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Names {
    pub skills: Vec<String>,
    pub languages: Vec<String>,
    pub queues: Vec<String>,
    pub tiers: Vec<String>,
}

impl Names {
    pub fn of(catalog: &crate::config::Catalog) -> Names {
        Names {
            skills: catalog.skills.clone(),
            languages: catalog.languages.clone(),
            queues: catalog.queues.clone(),
            tiers: catalog.tiers.clone(),
        }
    }
}

/// One input of the core, as it was given.
#[derive(Clone, Debug, PartialEq)]
pub enum Input {
    /// `Router::handle_from(now, session, command)`, for a command the core
    /// accepted.
    Command { session: SessionId, command: Command },
    /// `Router::handle_timeout(now)`, when timers were due.
    Timers,
    /// ccrd restarted here: from now on these names and this configuration
    /// apply, and the core was given [`Command::Restart`].
    Restart { names: Names, config: Box<RouterConfig> },
}

/// [`Input`] by reference, so that the routing thread journals a command
/// without cloning it.
#[derive(Clone, Copy)]
pub enum InputRef<'a> {
    Command { session: SessionId, command: &'a Command },
    Timers,
    Restart { names: &'a Names, config: &'a RouterConfig },
}

impl<'a> From<InputRef<'a>> for jnl03::Input<'a> {
    fn from(input: InputRef<'a>) -> Self {
        match input {
            InputRef::Command { session, command } => jnl03::Input::Command { session, command: command.into() },
            InputRef::Timers => jnl03::Input::Timers,
            InputRef::Restart { names, config } => {
                jnl03::Input::Restart { names: Cow::Borrowed(names), config: Box::new(config.into()) }
            }
        }
    }
}

impl From<jnl03::Input<'_>> for Input {
    fn from(input: jnl03::Input<'_>) -> Self {
        match input {
            jnl03::Input::Command { session, command } => Input::Command { session, command: command.into() },
            jnl03::Input::Timers => Input::Timers,
            jnl03::Input::Restart { names, config } => {
                Input::Restart { names: names.into_owned(), config: Box::new((*config).into()) }
            }
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub seq: u64,
    pub now: Time,
    pub input: Input,
}

/// Appends one record for `input` to `out`.
pub fn encode_record(out: &mut Vec<u8>, seq: u64, now: Time, input: InputRef<'_>) {
    let start = out.len();
    out.extend_from_slice(&[0; RECORD_HEADER_LEN]);
    let mut out_vec = std::mem::take(out);
    let entry = jnl03::Entry { seq, now, input: input.into() };
    out_vec = postcard::to_extend(&entry, out_vec).expect("encoding into a Vec cannot fail");
    *out = out_vec;
    seal_record(out, start);
}

/// Appends one record for an owned entry (restart records, tests).
pub fn encode_entry(out: &mut Vec<u8>, entry: &Entry) {
    let input = match &entry.input {
        Input::Command { session, command } => InputRef::Command { session: *session, command },
        Input::Timers => InputRef::Timers,
        Input::Restart { names, config } => InputRef::Restart { names, config },
    };
    encode_record(out, entry.seq, entry.now, input);
}

fn seal_record(out: &mut [u8], start: usize) {
    let payload = &out[start + RECORD_HEADER_LEN..];
    let len = u32::try_from(payload.len()).expect("a record is under 4 GiB");
    let crc = crc32c::crc32c(payload);
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// What the bytes at an offset of a segment hold.
#[derive(Debug, PartialEq)]
pub enum Decoded {
    /// A whole, intact record of `len` bytes in all.
    Record(Entry, usize),
    /// The data ends inside a record (or exactly at a record boundary: `Eof`).
    Truncated,
    Eof,
    /// Length out of range, checksum mismatch, or an undecodable payload.
    Corrupt(&'static str),
}

/// Decodes the record at the start of `bytes`. The records of a segment end
/// where the file ends or where only zeros follow: a segment is written into
/// space zero-filled ahead of need (see `writer.rs`), and no record starts
/// with a zero length.
pub fn decode_record(bytes: &[u8]) -> Decoded {
    // Only a zero header can start the unwritten rest: the whole rest is
    // checked then, once per segment, not for every record.
    if bytes[..bytes.len().min(RECORD_HEADER_LEN)].iter().all(|&b| b == 0) {
        return if is_unwritten(bytes) {
            Decoded::Eof
        } else {
            Decoded::Corrupt("a zeroed record header with data after it")
        };
    }
    if bytes.len() < RECORD_HEADER_LEN {
        return Decoded::Truncated;
    }
    let len = u32::from_le_bytes(bytes[0..4].try_into().expect("4 bytes")) as usize;
    let crc = u32::from_le_bytes(bytes[4..8].try_into().expect("4 bytes"));
    if len == 0 || len > MAX_RECORD_LEN {
        return Decoded::Corrupt("record length out of range");
    }
    let Some(payload) = bytes.get(RECORD_HEADER_LEN..RECORD_HEADER_LEN + len) else {
        return Decoded::Truncated;
    };
    if crc32c::crc32c(payload) != crc {
        return Decoded::Corrupt("checksum mismatch");
    }
    match postcard::from_bytes::<jnl03::Entry>(payload) {
        Ok(e) => Decoded::Record(Entry { seq: e.seq, now: e.now, input: e.input.into() }, RECORD_HEADER_LEN + len),
        Err(_) => Decoded::Corrupt("checksum matches but the payload does not decode (written by another version?)"),
    }
}

/// The length of each whole record in `bytes` (records this process
/// encoded: their lengths are not checked again), in order.
pub fn record_lengths(bytes: &[u8]) -> impl Iterator<Item = usize> + '_ {
    let mut at = 0;
    std::iter::from_fn(move || {
        let header = bytes.get(at..at + RECORD_HEADER_LEN)?;
        let len = RECORD_HEADER_LEN + u32::from_le_bytes(header[0..4].try_into().expect("4 bytes")) as usize;
        at += len;
        Some(len)
    })
}

/// Whether `bytes` hold nothing but zeros (or nothing at all): the unwritten
/// rest of a segment.
pub fn is_unwritten(bytes: &[u8]) -> bool {
    // OR-folded a page at a time, which vectorises: a 64 MiB tail is
    // checked in milliseconds.
    bytes.chunks(4096).all(|page| page.iter().fold(0, |acc, &b| acc | b) == 0)
}

pub fn segment_header(first_seq: u64) -> [u8; SEGMENT_HEADER_LEN] {
    let mut h = [0; SEGMENT_HEADER_LEN];
    h[..8].copy_from_slice(SEGMENT_MAGIC);
    h[8..].copy_from_slice(&first_seq.to_le_bytes());
    h
}

/// The first sequence number a segment header names, if the header is whole.
pub fn parse_segment_header(bytes: &[u8]) -> Option<u64> {
    (bytes.len() >= SEGMENT_HEADER_LEN && &bytes[..8] == SEGMENT_MAGIC)
        .then(|| u64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes")))
}

pub fn segment_path(dir: &Path, first_seq: u64) -> PathBuf {
    dir.join(format!("journal-{first_seq:020}.wal"))
}

pub fn snapshot_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("snapshot-{seq:020}.snap"))
}

/// The sequence number in a segment or snapshot file name.
pub fn file_seq(name: &str, prefix: &str, suffix: &str) -> Option<u64> {
    name.strip_prefix(prefix)?.strip_suffix(suffix)?.parse().ok()
}

/// A snapshot's header fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnapshotHeader {
    /// The format of the payload: 14, or 13 or 12 for one written by an earlier version.
    pub format: u8,
    pub seq: u64,
    pub now: Time,
    pub len: u64,
    pub crc: u32,
}

/// The header of a snapshot of this version's format (`h.format` aside).
pub fn encode_snapshot_header(h: SnapshotHeader) -> [u8; SNAPSHOT_HEADER_LEN] {
    let mut out = [0; SNAPSHOT_HEADER_LEN];
    out[..8].copy_from_slice(SNAPSHOT_MAGIC);
    out[8..16].copy_from_slice(&h.seq.to_le_bytes());
    out[16..24].copy_from_slice(&h.now.as_micros().to_le_bytes());
    out[24..32].copy_from_slice(&h.len.to_le_bytes());
    out[32..36].copy_from_slice(&h.crc.to_le_bytes());
    out
}

/// Whether the bytes start like a segment of an earlier ccrd version.
pub fn is_older_segment(bytes: &[u8]) -> bool {
    OLDER_SEGMENT_MAGICS.iter().any(|magic| bytes.starts_with(&magic[..]))
}

/// Whether the bytes start like a snapshot of an earlier ccrd version.
pub fn is_older_snapshot(bytes: &[u8]) -> bool {
    OLDER_SNAPSHOT_MAGICS.iter().any(|magic| bytes.starts_with(&magic[..]))
}

pub fn parse_snapshot_header(bytes: &[u8]) -> Option<SnapshotHeader> {
    if bytes.len() < SNAPSHOT_HEADER_LEN {
        return None;
    }
    let format = match &bytes[..8] {
        m if m == SNAPSHOT_MAGIC => 14,
        m if m == SNAPSHOT_MAGIC_13 => 13,
        m if m == SNAPSHOT_MAGIC_12 => 12,
        _ => return None,
    };
    let u64_at = |i: usize| u64::from_le_bytes(bytes[i..i + 8].try_into().expect("8 bytes"));
    Some(SnapshotHeader {
        format,
        seq: u64_at(8),
        now: Time::from_micros(u64_at(16)),
        len: u64_at(24),
        crc: u32::from_le_bytes(bytes[32..36].try_into().expect("4 bytes")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ccr_core::{AgentId, OfferId};

    fn record(seq: u64) -> Vec<u8> {
        let mut out = Vec::new();
        let command = Command::Accept { agent: AgentId(7), offer: OfferId(seq) };
        encode_record(
            &mut out,
            seq,
            Time::from_secs(seq),
            InputRef::Command { session: SessionId(3), command: &command },
        );
        out
    }

    /// Everything one message of `server.max_message_bytes` at its largest
    /// can carry, as one context value, journals as a record recovery reads.
    #[test]
    fn the_largest_message_fits_in_a_record() {
        let big = "v".repeat(crate::config::MAX_MESSAGE_BYTES);
        let spec = ccr_core::ContactSpec {
            id: ccr_core::ContactId(1),
            channel: ccr_core::Channel::Voice,
            queue: ccr_core::QueueId(0),
            tier: ccr_core::TierId(0),
            skills: Default::default(),
            languages: Default::default(),
            preferred_agents: vec![],
            context: vec![("k".into(), big)],
        };
        let mut out = Vec::new();
        let command = Command::Enqueue(spec);
        encode_record(&mut out, 1, Time::from_secs(1), InputRef::Command { session: SessionId(1), command: &command });
        assert!(out.len() - RECORD_HEADER_LEN <= MAX_RECORD_LEN, "{} bytes", out.len());
        assert!(matches!(decode_record(&out), Decoded::Record(_, len) if len == out.len()));
    }

    #[test]
    fn a_record_reads_back_as_written() {
        let bytes = record(42);
        match decode_record(&bytes) {
            Decoded::Record(entry, len) => {
                assert_eq!(len, bytes.len());
                assert_eq!(entry.seq, 42);
                assert_eq!(entry.now, Time::from_secs(42));
                let command = Command::Accept { agent: AgentId(7), offer: OfferId(42) };
                assert_eq!(entry.input, Input::Command { session: SessionId(3), command });
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_borrowed_and_owned_forms_encode_alike() {
        let entry = Entry {
            seq: 9,
            now: Time::from_micros(5),
            input: Input::Restart { names: Names::default(), config: Box::new(RouterConfig::default()) },
        };
        let mut owned = Vec::new();
        encode_entry(&mut owned, &entry);
        let mut borrowed = Vec::new();
        let names = Names::default();
        let config = RouterConfig::default();
        encode_record(&mut borrowed, 9, Time::from_micros(5), InputRef::Restart { names: &names, config: &config });
        assert_eq!(owned, borrowed);
        let mut timers = Vec::new();
        encode_record(&mut timers, 3, Time::ZERO, InputRef::Timers);
        assert!(matches!(decode_record(&timers), Decoded::Record(Entry { input: Input::Timers, .. }, _)));
    }

    #[test]
    fn zeros_after_the_last_record_end_the_segment_but_a_zeroed_record_does_not() {
        let mut bytes = record(1);
        let first = bytes.len();
        bytes.resize(first + 100_000, 0);
        assert!(matches!(decode_record(&bytes), Decoded::Record(_, len) if len == first));
        assert_eq!(decode_record(&bytes[first..]), Decoded::Eof);
        // A record lost under zeros, with data after it, is damage.
        bytes[first + 50_000] = 1;
        assert!(matches!(decode_record(&bytes[first..]), Decoded::Corrupt(_)));
    }

    #[test]
    fn every_cut_of_a_record_is_truncated_and_every_flipped_bit_is_corrupt() {
        let bytes = record(1);
        assert_eq!(decode_record(&[]), Decoded::Eof);
        for cut in 1..bytes.len() {
            assert_eq!(decode_record(&bytes[..cut]), Decoded::Truncated, "cut at {cut}");
        }
        for bit in 0..bytes.len() * 8 {
            let mut damaged = bytes.clone();
            damaged[bit / 8] ^= 1 << (bit % 8);
            // A flipped length bit may also read as a longer, truncated record.
            assert!(
                matches!(decode_record(&damaged), Decoded::Corrupt(_) | Decoded::Truncated),
                "bit {bit} went unnoticed"
            );
        }
    }
}
