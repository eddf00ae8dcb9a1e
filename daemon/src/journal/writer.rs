//! The journal's writer thread: appends batches of records, makes them
//! durable as the fsync policy says, and only then releases what the routing
//! thread produced with them (replies and events).
//!
//! Group commit falls out of the loop: while one `fdatasync` runs, the
//! routing thread keeps deciding and sends more batches; the next round
//! writes all of them and one `fdatasync` covers them all.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::{Receiver, RecvTimeoutError};
use tracing::error;

use super::format;
use super::{FsyncPolicy, JournalError, JournalMetrics};

/// Runs once the records it came with are as durable as the policy asks.
pub type Release = Box<dyn FnOnce() + Send>;

pub enum ToWriter {
    /// Records (whole, in sequence) and what to release after them.
    Batch { bytes: Vec<u8>, release: Release },
    /// Close the current segment (durably) and start one at `first_seq`.
    Rotate { first_seq: u64 },
}

/// Creates a segment file starting at `first_seq` and makes it and its
/// directory entry durable. A file of that name can only be one a crash left
/// without records (recovery has read every record there is): it is replaced.
pub fn create_segment(dir: &Path, first_seq: u64) -> Result<File, JournalError> {
    let path = format::segment_path(dir, first_seq);
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&path)
        .map_err(|e| JournalError::io(&path, e))?;
    file.write_all(&format::segment_header(first_seq))
        .and_then(|_| file.sync_all())
        .map_err(|e| JournalError::io(&path, e))?;
    sync_dir(dir)?;
    Ok(file)
}

pub fn sync_dir(dir: &Path) -> Result<(), JournalError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| JournalError::io(dir, e))
}

pub struct Writer {
    pub dir: PathBuf,
    pub file: File,
    pub policy: FsyncPolicy,
    pub metrics: JournalMetrics,
    /// Set when a write or sync failed: nothing more is acknowledged.
    pub failed: Arc<AtomicBool>,
}

impl Writer {
    /// Runs until every sender is gone. On an I/O error it stops releasing:
    /// callers get no acknowledgement for what may not be durable.
    pub fn run(mut self, rx: Receiver<ToWriter>) {
        if let Err(e) = self.serve(&rx) {
            error!(error = %e, "journal write failed: ccrd stops acknowledging commands");
            self.failed.store(true, Ordering::Release);
        }
    }

    fn serve(&mut self, rx: &Receiver<ToWriter>) -> Result<(), JournalError> {
        let mut held: Vec<Release> = Vec::new();
        let mut dirty = false;
        let mut last_sync = Instant::now();
        loop {
            let first = match self.policy {
                FsyncPolicy::Interval(every) if dirty => {
                    match rx.recv_timeout(every.saturating_sub(last_sync.elapsed())) {
                        Ok(m) => Some(m),
                        Err(RecvTimeoutError::Timeout) => None,
                        Err(RecvTimeoutError::Disconnected) => return self.sync(),
                    }
                }
                _ => match rx.recv() {
                    Ok(m) => Some(m),
                    Err(_) => return if dirty { self.sync() } else { Ok(()) },
                },
            };
            for message in first.into_iter().chain(rx.try_iter()) {
                match message {
                    ToWriter::Batch { bytes, release } => {
                        self.file.write_all(&bytes).map_err(|e| self.error(e))?;
                        self.metrics.bytes.increment(bytes.len() as u64);
                        dirty = true;
                        held.push(release);
                    }
                    ToWriter::Rotate { first_seq } => {
                        if self.policy != FsyncPolicy::Never {
                            self.sync()?;
                        }
                        dirty = false;
                        self.file = create_segment(&self.dir, first_seq)?;
                    }
                }
            }
            match self.policy {
                FsyncPolicy::Always if dirty => {
                    self.sync()?;
                    dirty = false;
                }
                FsyncPolicy::Interval(every) if dirty && last_sync.elapsed() >= every => {
                    self.sync()?;
                    dirty = false;
                    last_sync = Instant::now();
                }
                _ => {}
            }
            for release in held.drain(..) {
                release();
            }
        }
    }

    fn sync(&mut self) -> Result<(), JournalError> {
        let started = Instant::now();
        self.file.sync_data().map_err(|e| self.error(e))?;
        self.metrics.fsync.record(started.elapsed().as_secs_f64());
        Ok(())
    }

    fn error(&self, e: std::io::Error) -> JournalError {
        JournalError::io(&self.dir, e)
    }
}
