//! The journal's writer thread: appends batches of records, makes them
//! durable as the fsync policy says, and only then releases what the routing
//! thread produced with them (replies and events).
//!
//! Group commit falls out of the loop: while one `fdatasync` runs, the
//! routing thread keeps deciding and sends more batches; the next round
//! writes all of them and one `fdatasync` covers them all.
//!
//! Segments are written into space zero-filled ahead of need. Appending to
//! a growing file changes its size, so each `fdatasync` must also commit the
//! file system's own journal: a second write and cache flush, and with it
//! whatever metadata other files dirtied meanwhile. Overwriting blocks that
//! already exist leaves only the data to flush. A helper thread writes the
//! next segment's zeros while the current one fills (`Spares`).

use std::fs::{self, File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TryRecvError};
use tracing::{error, warn};

use super::format;
use super::{FsyncPolicy, JournalError, JournalMetrics};

/// Runs once the records it came with are as durable as the policy asks.
pub type Release = Box<dyn FnOnce() + Send>;

pub enum ToWriter {
    /// Records (whole, in sequence, the first numbered `first_seq`) and what
    /// to release after them.
    Batch { first_seq: u64, bytes: Vec<u8>, release: Release },
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

/// The segment being written.
pub struct Segment {
    file: File,
    /// Bytes in the file so far, header included.
    written: u64,
    /// Bytes zero-filled ahead of the writes (0: the file grows as written).
    capacity: u64,
}

impl Segment {
    /// A segment that grows as it is written.
    pub fn growing(file: File) -> Result<Segment, std::io::Error> {
        let written = file.metadata()?.len();
        Ok(Segment { file, written, capacity: 0 })
    }

    fn has_room(&self, bytes: usize) -> bool {
        self.written + bytes as u64 <= self.capacity
    }
}

pub struct Writer {
    pub dir: PathBuf,
    pub segment: Segment,
    pub policy: FsyncPolicy,
    pub metrics: JournalMetrics,
    /// Set, with why, when a write or sync failed: nothing more is
    /// acknowledged, and the server stops.
    pub failure: Arc<super::Failure>,
    /// Size of the zero-filled segments (0: segments grow as written).
    pub segment_bytes: u64,
    /// Gets every batch once it is durable, to keep the snapshot replica
    /// up to date (`replica.rs`).
    pub replica: Option<super::replica::Feed>,
    /// Set by the replica after each snapshot: the next batch starts a new
    /// segment, so that what is before the snapshot can be pruned.
    pub rotate: Arc<AtomicBool>,
}

impl Writer {
    /// Runs until every sender is gone. On an I/O error it stops releasing:
    /// callers get no acknowledgement for what may not be durable.
    pub fn run(mut self, rx: Receiver<ToWriter>) {
        let mut spares = match self.segment_bytes {
            0 => None,
            _ => Spares::start(&self.dir).map_err(|e| warn!(error = %e, "journal segments will grow as written")).ok(),
        };
        if let Err(e) = self.serve(&rx, &mut spares) {
            error!(error = %e, "journal write failed: ccrd acknowledges nothing more and stops");
            self.failure.set(e.to_string());
        }
    }

    fn serve(&mut self, rx: &Receiver<ToWriter>, spares: &mut Option<Spares>) -> Result<(), JournalError> {
        let mut held: Vec<Release> = Vec::new();
        let mut written: Vec<Vec<u8>> = Vec::new();
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
                {
                    let ToWriter::Batch { first_seq, bytes, release } = message;
                    {
                        // Into zero-filled space once there is some: a growing
                        // segment, or a full one, gives way to a ready spare
                        // (named after the batch's first record: not for a
                        // batch without records).
                        if !bytes.is_empty() && self.rotate.swap(false, Ordering::AcqRel) {
                            self.rotate(first_seq, spares.as_mut().and_then(Spares::take))?;
                        } else if !bytes.is_empty() && !self.segment.has_room(bytes.len()) {
                            if let Some(spare) = spares.as_mut().and_then(Spares::take) {
                                self.rotate(first_seq, Some(spare))?;
                            }
                        }
                        self.segment.file.write_all(&bytes).map_err(|e| self.error(e))?;
                        self.segment.written += bytes.len() as u64;
                        self.metrics.bytes.increment(bytes.len() as u64);
                        dirty = true;
                        held.push(release);
                        if !bytes.is_empty() {
                            written.push(bytes);
                        }
                        if let Some(spares) = spares.as_mut() {
                            self.prepare_next(spares);
                        }
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
            // What is durable (or written, under `never`) goes to the
            // replica; the routing thread never waits for it.
            for bytes in written.drain(..) {
                if self.replica.as_ref().is_some_and(|replica| !replica.send(bytes)) {
                    self.replica = None;
                }
            }
        }
    }

    /// Asks for the next zero-filled segment as soon as the current one is
    /// in use, and says when it is needed soon: from three quarters of a
    /// zero-filled segment on, or at once while the segment grows. A journal
    /// that sees little traffic (under `segment_bytes / 64`) never spends the
    /// space.
    fn prepare_next(&self, spares: &mut Spares) {
        let (due, urgent) = match self.segment.capacity {
            0 => (self.segment.written >= self.segment_bytes / 64, true),
            capacity => (true, self.segment.written >= capacity / 4 * 3),
        };
        if due {
            spares.request(self.segment_bytes);
        }
        if urgent {
            spares.hurry.store(true, Ordering::Relaxed);
        }
    }

    /// Makes the current segment durable (the records held for release are
    /// in it) and starts the next at `first_seq`: in `spare` if there is
    /// one, else in a new file that grows as written.
    fn rotate(&mut self, first_seq: u64, spare: Option<File>) -> Result<(), JournalError> {
        if self.policy != FsyncPolicy::Never {
            self.sync()?;
        }
        self.segment = match spare {
            Some(file) => install_spare(&self.dir, file, first_seq)?,
            None => Segment::growing(create_segment(&self.dir, first_seq)?).map_err(|e| self.error(e))?,
        };
        Ok(())
    }

    fn sync(&mut self) -> Result<(), JournalError> {
        let started = Instant::now();
        self.segment.file.sync_data().map_err(|e| self.error(e))?;
        self.metrics.fsync.record(started.elapsed().as_secs_f64());
        Ok(())
    }

    fn error(&self, e: std::io::Error) -> JournalError {
        JournalError::io(&self.dir, e)
    }
}

/// Where the next segment is zero-filled before it gets its name.
pub fn spare_path(dir: &Path) -> PathBuf {
    dir.join("next-segment.tmp")
}

/// Turns a zero-filled spare into the segment starting at `first_seq`: its
/// header is made durable before the rename, so a segment's name never
/// points at a file without one.
fn install_spare(dir: &Path, mut file: File, first_seq: u64) -> Result<Segment, JournalError> {
    let spare = spare_path(dir);
    let path = format::segment_path(dir, first_seq);
    let header = format::segment_header(first_seq);
    let capacity = file
        .write_all_at(&header, 0)
        .and_then(|_| file.sync_data())
        .and_then(|_| file.seek(SeekFrom::Start(header.len() as u64)))
        .and_then(|_| file.metadata())
        .map_err(|e| JournalError::io(&spare, e))?
        .len();
    fs::rename(&spare, &path).map_err(|e| JournalError::io(&path, e))?;
    sync_dir(dir)?;
    Ok(Segment { file, written: header.len() as u64, capacity })
}

/// Zero-filled segment files, made one at a time on a helper thread.
struct Spares {
    dir: PathBuf,
    requests: Option<Sender<u64>>,
    ready: Receiver<std::io::Result<File>>,
    /// A spare was asked for and not yet taken.
    pending: bool,
    /// The spare is needed soon: zero-fill without pauses.
    hurry: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Spares {
    fn start(dir: &Path) -> std::io::Result<Spares> {
        let (requests, jobs) = crossbeam_channel::bounded::<u64>(1);
        let (done, ready) = crossbeam_channel::bounded(1);
        let (stop, hurry) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
        let (path, halt, urgent) = (spare_path(dir), stop.clone(), hurry.clone());
        let thread = std::thread::Builder::new().name("ccr-prealloc".into()).spawn(move || {
            for size in jobs {
                // `None`: stopped while filling.
                let Some(made) = zero_fill(&path, size, &halt, &urgent).transpose() else { return };
                let _ = done.send(made);
            }
        })?;
        let dir = dir.to_owned();
        Ok(Spares { dir, requests: Some(requests), ready, pending: false, hurry, stop, thread: Some(thread) })
    }

    fn request(&mut self, size: u64) {
        if !self.pending {
            if let Some(requests) = &self.requests {
                self.hurry.store(false, Ordering::Relaxed);
                self.pending = requests.send(size).is_ok();
            }
        }
    }

    /// The spare, if it is ready.
    fn take(&mut self) -> Option<File> {
        match self.ready.try_recv() {
            Ok(Ok(file)) => {
                self.pending = false;
                Some(file)
            }
            Ok(Err(e)) => {
                // Keep `pending`: no more spares are asked for.
                warn!(error = %e, "could not prepare the next journal segment; segments grow as written");
                self.requests = None;
                None
            }
            Err(TryRecvError::Empty | TryRecvError::Disconnected) => None,
        }
    }
}

impl Drop for Spares {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        self.requests = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        // A spare made and not taken: the next start would remove it anyway.
        let _ = fs::remove_file(spare_path(&self.dir));
    }
}

/// Writes `size` bytes of zeros to a new file at `path` and makes them
/// durable, paced unless `hurry` is raised: 256 KiB per flush and a pause
/// after each, so that the spare never holds the disk for long against the
/// journal's own syncs (in a loaded hold at 50,000 contacts/s the two
/// slowest syncs fell within the zero-fill when it flushed 1 MiB at a time;
/// 64 MiB now take some 3 s, over a whole segment's time). `None` if `stop`
/// was raised meanwhile (the file is removed).
fn zero_fill(path: &Path, size: u64, stop: &AtomicBool, hurry: &AtomicBool) -> std::io::Result<Option<File>> {
    const CHUNK: usize = 256 << 10;
    const PAUSE: std::time::Duration = std::time::Duration::from_millis(10);
    let mut file = OpenOptions::new().create(true).truncate(true).write(true).open(path)?;
    let zeros = vec![0; CHUNK];
    let mut written = 0u64;
    while written < size {
        if stop.load(Ordering::Acquire) {
            drop(file);
            let _ = fs::remove_file(path);
            return Ok(None);
        }
        let n = (size - written).min(CHUNK as u64) as usize;
        file.write_all(&zeros[..n])?;
        file.sync_data()?;
        written += n as u64;
        if !hurry.load(Ordering::Relaxed) {
            std::thread::sleep(PAUSE);
        }
    }
    file.sync_all()?;
    Ok(Some(file))
}
