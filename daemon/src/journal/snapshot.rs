//! Snapshots: written whole to a temporary file, synced, then renamed into
//! place, so a crash leaves either the old set or the new one. After each,
//! files no longer needed are deleted: all but the two newest snapshots, and
//! the segments wholly covered by the older of those two.

use std::fs::{self, File};
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use ccr_core::{Router, Time};

use super::format::{self, Names, SnapshotHeader};
use super::formats;
use super::recovery;
use super::writer::sync_dir;
use super::JournalError;

/// Snapshots kept: the newest, and one to fall back on if it is damaged.
const KEEP: usize = 2;

/// Writes the snapshot of `router` after record `seq`, durably. The state
/// is encoded straight into the file, its checksum and length counted on
/// the way and the header written last: no copy of the whole encoding is
/// ever held in memory (hundreds of MB at a million contacts, whose
/// allocation and release stalled the process's other threads).
pub fn write(dir: &Path, seq: u64, now: Time, names: &Names, router: &Router) -> Result<PathBuf, JournalError> {
    let path = format::snapshot_path(dir, seq);
    let tmp = path.with_extension("snap.tmp");
    let io = |e| JournalError::io(&tmp, e);
    let mut file = File::create(&tmp).map_err(io)?;
    file.write_all(&[0; format::SNAPSHOT_HEADER_LEN]).map_err(io)?;
    let counted = Counted { inner: BufWriter::with_capacity(1 << 20, &mut file), crc: 0, len: 0 };
    let mut counted =
        formats::snp14::write(counted, names, router).map_err(|e| io(std::io::Error::other(e.to_string())))?;
    counted.inner.flush().map_err(io)?;
    let header =
        format::encode_snapshot_header(SnapshotHeader { format: 13, seq, now, len: counted.len, crc: counted.crc });
    drop(counted);
    file.seek(SeekFrom::Start(0)).and_then(|_| file.write_all(&header)).and_then(|_| file.sync_all()).map_err(io)?;
    fs::rename(&tmp, &path).map_err(|e| JournalError::io(&path, e))?;
    sync_dir(dir)?;
    Ok(path)
}

/// Counts the bytes written through it and their CRC32C.
struct Counted<W> {
    inner: W,
    crc: u32,
    len: u64,
}

impl<W: Write> Write for Counted<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.crc = crc32c::crc32c_append(self.crc, &buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Deletes what the kept snapshots make unnecessary.
pub fn prune(dir: &Path) -> Result<(), JournalError> {
    let listing = recovery::list(dir)?;
    if listing.snapshots.len() < KEEP {
        return Ok(());
    }
    let (oldest_kept, _) = listing.snapshots[listing.snapshots.len() - KEEP];
    for (_, path) in &listing.snapshots[..listing.snapshots.len() - KEEP] {
        fs::remove_file(path).map_err(|e| JournalError::io(path, e))?;
    }
    // A segment is covered when the next one starts at or before the first
    // record the oldest kept snapshot needs.
    for pair in listing.segments.windows(2) {
        let ((_, path), (next_first, _)) = (&pair[0], &pair[1]);
        if *next_first <= oldest_kept + 1 {
            fs::remove_file(path).map_err(|e| JournalError::io(path, e))?;
        }
    }
    Ok(())
}
