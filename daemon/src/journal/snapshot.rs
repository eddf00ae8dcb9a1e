//! Snapshots: written whole to a temporary file, synced, then renamed into
//! place, so a crash leaves either the old set or the new one. After each,
//! files no longer needed are deleted: all but the two newest snapshots, and
//! the segments wholly covered by the older of those two.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use ccr_core::{Router, Time};
use serde::Serialize;

use super::format::{self, Names, SnapshotHeader};
use super::recovery;
use super::writer::sync_dir;
use super::JournalError;

/// Snapshots kept: the newest, and one to fall back on if it is damaged.
const KEEP: usize = 2;

#[derive(Serialize)]
struct SnapshotBodyRef<'a> {
    names: &'a Names,
    router: &'a Router,
}

/// Writes the snapshot of `router` after record `seq`, durably.
pub fn write(dir: &Path, seq: u64, now: Time, names: &Names, router: &Router) -> Result<PathBuf, JournalError> {
    let payload = postcard::to_allocvec(&SnapshotBodyRef { names, router }).expect("encoding into a Vec cannot fail");
    let header = format::encode_snapshot_header(SnapshotHeader {
        seq,
        now,
        len: payload.len() as u64,
        crc: crc32c::crc32c(&payload),
    });
    let path = format::snapshot_path(dir, seq);
    let tmp = path.with_extension("snap.tmp");
    let mut file = File::create(&tmp).map_err(|e| JournalError::io(&tmp, e))?;
    file.write_all(&header)
        .and_then(|_| file.write_all(&payload))
        .and_then(|_| file.sync_all())
        .map_err(|e| JournalError::io(&tmp, e))?;
    fs::rename(&tmp, &path).map_err(|e| JournalError::io(&path, e))?;
    sync_dir(dir)?;
    Ok(path)
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
