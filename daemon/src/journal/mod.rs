//! Durability: a write-ahead journal of the core's inputs, and snapshots.
//!
//! The routing core is deterministic, so its state is a function of its
//! inputs. The routing thread appends every input that changed something
//! (an accepted command, or timers that were due) with the `now` it gave the
//! core, and holds the replies and events those inputs produced until the
//! writer thread says the records are durable. Recovery loads the newest
//! good snapshot and feeds the records after it to the same core again.
//!
//! ```text
//! routing thread ─ records + held replies/events ─▶ writer thread ─ write, fdatasync ─▶ release
//!                                                        └─ durable records ─▶ replica thread ─ apply, snapshot, prune
//! ```
//!
//! Files in `<data dir>/journal/` (byte layout in [`format`], the types
//! inside in [`formats`]):
//! - `snapshot-<seq>.snap`: the state after record `seq`. The two newest are
//!   kept, so one damaged snapshot still leaves a way back.
//! - `journal-<first seq>.wal`: records from `first seq` on, then zeros up
//!   to `segment_bytes` (written ahead of need, see [`writer`]). A new
//!   segment starts after every snapshot, at every start, and when one is
//!   full; segments wholly covered by the older kept snapshot are deleted.
//! - `next-segment.tmp`: the next segment while it is zero-filled.
//!
//! A fresh directory starts with a snapshot of the empty router at sequence 0.
//! A restart appends a `Restart` record (new configuration and names, offers
//! withdrawn, agents not ready until their desktops return) and takes a
//! snapshot in the background; a stop takes one of everything.

pub mod format;
pub mod formats;
pub mod inspect;
pub mod recovery;
pub(crate) mod replica;
mod snapshot;
pub(crate) mod writer;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use ccr_core::{Command, Router, RouterConfig, SessionId, Time};
use crossbeam_channel::Sender;
use tracing::{info, warn};

pub use format::{Entry, Input, Names, MAX_RECORD_LEN};
pub use recovery::{Recovered, RecoveryReport};
pub use snapshot::write as write_snapshot;
pub use writer::Release;

use format::InputRef;
use writer::ToWriter;

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error(
        "{}: the journal has {segments} segment(s) but no usable snapshot to replay them from{}",
        dir.display(),
        unusable.iter().map(|u| format!("\n  {u}")).collect::<String>()
    )]
    NoSnapshot { dir: PathBuf, segments: usize, unusable: Vec<String> },
    #[error("{} at byte {offset}: {why}; the damage is not at the end of the journal, so records after it would be lost — restore the file or move the journal aside", path.display())]
    Corrupt { path: PathBuf, offset: u64, why: String },
    #[error("{}: expected record {expected}, found {found}: records are missing", path.display())]
    Gap { path: PathBuf, expected: u64, found: u64 },
    #[error("{}: record {seq} was already read from an earlier segment: two ccrd wrote this journal at once and its history forked; `ccrd journal inspect` shows the overlap — keep one history (move the other's segments aside)", path.display())]
    Forked { path: PathBuf, seq: u64 },
    #[error("{}: replaying record {seq}: {why}", path.display())]
    Diverged { path: PathBuf, seq: u64, why: String },
    #[error("the configuration does not fit the journal: {0}")]
    Incompatible(String),
}

impl JournalError {
    fn io(path: &Path, source: std::io::Error) -> Self {
        JournalError::Io { path: path.to_owned(), source }
    }
}

/// When the writer makes records durable before releasing their replies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// `fdatasync` before any reply leaves (group commit). Nothing
    /// acknowledged is lost, even on power loss.
    Always,
    /// Replies leave once written; `fdatasync` every period. A crash of the
    /// process loses nothing; power loss can lose up to one period.
    Interval(Duration),
    /// Written, never synced: for tests and benchmarks.
    Never,
}

#[derive(Clone, Debug)]
pub struct JournalOptions {
    pub fsync: FsyncPolicy,
    /// A snapshot at least this often while records are written...
    pub snapshot_interval: Duration,
    /// ...and whenever this many journal bytes were written since the last.
    pub snapshot_bytes: u64,
    /// Segments are zero-filled to this size ahead of need, so that a sync
    /// flushes only the records (0: segments grow as written).
    pub segment_bytes: u64,
}

impl Default for JournalOptions {
    fn default() -> Self {
        JournalOptions {
            fsync: FsyncPolicy::Always,
            snapshot_interval: Duration::from_secs(300),
            snapshot_bytes: 64 << 20,
            segment_bytes: 64 << 20,
        }
    }
}

/// Metric handles the journal reports to (no-ops unless given).
#[derive(Clone)]
pub struct JournalMetrics {
    pub bytes: metrics::Counter,
    pub fsync: metrics::Histogram,
    /// Unix time of the last durable snapshot, in milliseconds (the sampler
    /// turns it into an age).
    pub last_snapshot_ms: Arc<AtomicU64>,
}

impl Default for JournalMetrics {
    fn default() -> Self {
        JournalMetrics {
            bytes: metrics::Counter::noop(),
            fsync: metrics::Histogram::noop(),
            last_snapshot_ms: Arc::default(),
        }
    }
}

impl JournalMetrics {
    fn snapshot_written(&self) {
        self.last_snapshot_ms.store(unix_millis(), Ordering::Relaxed);
    }
}

/// How the writer thread tells the server that the journal failed: nothing
/// more can be made durable, so ccrd must stop.
#[derive(Default)]
pub struct Failure {
    why: std::sync::OnceLock<String>,
    notify: tokio::sync::Notify,
}

impl Failure {
    pub fn set(&self, why: String) {
        let _ = self.why.set(why);
        self.notify.notify_one();
    }

    /// Whether the journal has failed (nothing more is acknowledged).
    pub fn is_set(&self) -> bool {
        self.why.get().is_some()
    }

    /// Resolves once the journal has failed, with why.
    pub async fn wait(&self) -> String {
        loop {
            if let Some(why) = self.why.get() {
                return why.clone();
            }
            self.notify.notified().await;
        }
    }
}

/// The journal directory inside a data directory.
pub fn dir_in(data_dir: &Path) -> PathBuf {
    data_dir.join("journal")
}

/// Where the routing thread's batches go.
enum Sink {
    /// The writer thread of the local journal.
    Local(Sender<ToWriter>),
    /// The cluster's writer task, which appends them to the journal in etcd
    /// (`crate::cluster::writer`).
    Replicated(tokio::sync::mpsc::UnboundedSender<ToWriter>),
}

/// The routing thread's end of the journal.
pub struct Journal {
    buf: Vec<u8>,
    /// The sequence number of the last record appended.
    seq: u64,
    /// The sequence number of the last record handed to the writer.
    committed_seq: u64,
    to_writer: Option<Sink>,
    /// Disconnects when a writer task (not a thread) has ended.
    writer_done: Option<crossbeam_channel::Receiver<()>>,
    /// The writer, then the snapshot replica: joined in that order.
    threads: Vec<JoinHandle<()>>,
}

/// A journal opened on a data directory, with the router it recovered.
pub struct Opened {
    pub journal: Journal,
    pub router: Router,
    /// `None` for a fresh directory.
    pub recovery: Option<RecoveryReport>,
}

impl Journal {
    /// Opens (or creates) the journal in `dir`: recovers the router it holds,
    /// or creates one from `config`; checks that `names` extends the journal's
    /// (skills and languages may be appended; queues and tiers must match);
    /// journals the restart; starts the writer and snapshot threads.
    pub fn open(
        dir: &Path,
        config: &RouterConfig,
        names: Names,
        now: Time,
        options: JournalOptions,
        metrics: JournalMetrics,
        on_failure: Arc<Failure>,
    ) -> Result<Opened, JournalError> {
        std::fs::create_dir_all(dir).map_err(|e| JournalError::io(dir, e))?;
        // A spare being zero-filled when ccrd stopped: never a segment.
        match std::fs::remove_file(writer::spare_path(dir)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(JournalError::io(dir, e)),
            _ => {}
        }
        let (router, seq, recovery, file) = match recovery::recover(dir)? {
            None => {
                let router = Router::new(config.clone())
                    .map_err(|e| JournalError::Incompatible(format!("routing configuration: {e}")))?;
                snapshot::write(dir, 0, now, &names, &router)?;
                metrics.snapshot_written();
                info!(dir = %dir.display(), "journal created");
                (router, 0, None, writer::create_segment(dir, 1)?)
            }
            Some(Recovered { mut router, names: old, last_seq, report }) => {
                log_report(&report, last_seq);
                if let Some(modified) = report.snapshot.as_ref().and_then(|(_, p)| p.metadata().ok()?.modified().ok()) {
                    let ms = modified.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
                    metrics.last_snapshot_ms.store(ms, Ordering::Relaxed);
                }
                check_names(&old, &names)?;
                let seq = last_seq + 1;
                let now = now.max(router.now());
                recovery::restart(&mut router, now, config.clone()).map_err(JournalError::Incompatible)?;
                while router.poll_event().is_some() {}
                let mut file = writer::create_segment(dir, seq)?;
                let mut bytes = Vec::new();
                format::encode_record(&mut bytes, seq, now, InputRef::Restart { names: &names, config });
                use std::io::Write;
                file.write_all(&bytes).and_then(|_| file.sync_data()).map_err(|e| JournalError::io(dir, e))?;
                (router, seq, Some(report), file)
            }
        };
        let (to_writer, rx) = crossbeam_channel::unbounded();
        let (to_replica, batches) = crossbeam_channel::unbounded();
        let rotate = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let lag = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        // Room for several snapshots' worth of journal behind.
        let max_lag = options.snapshot_bytes.saturating_mul(4).clamp(256 << 20, 4 << 30) as usize;
        let feed = replica::Feed { tx: to_replica, lag: lag.clone(), max: max_lag };
        let w = writer::Writer {
            dir: dir.to_owned(),
            segment: writer::Segment::growing(file).map_err(|e| JournalError::io(dir, e))?,
            policy: options.fsync,
            metrics: metrics.clone(),
            failure: on_failure,
            segment_bytes: options.segment_bytes,
            replica: Some(feed),
            rotate: rotate.clone(),
        };
        let spawn = |name: &str, f: Box<dyn FnOnce() + Send>| {
            std::thread::Builder::new().name(name.into()).spawn(f).map_err(|e| JournalError::io(dir, e))
        };
        let writer_thread = spawn("ccr-journal", Box::new(move || w.run(rx)))?;
        // The one copy of the state the routing thread makes: at start.
        let r = replica::Replica {
            dir: dir.to_owned(),
            router: router.clone(),
            names: names.clone(),
            seq,
            options: options.clone(),
            metrics,
            snapshot_first: recovery.is_some(),
            rotate,
            lag,
            eager: false,
            on_snapshot: None,
            applied: Arc::default(),
        };
        let replica_thread = spawn(
            "ccr-snapshot",
            Box::new(move || {
                r.run(batches);
            }),
        )?;
        let journal = Journal {
            buf: Vec::with_capacity(64 << 10),
            seq,
            committed_seq: seq,
            to_writer: Some(Sink::Local(to_writer)),
            writer_done: None,
            threads: vec![writer_thread, replica_thread],
        };
        Ok(Opened { journal, router, recovery })
    }

    /// The journal of a cluster's active node: records from `seq + 1` on go
    /// to the writer task on `to_writer`, which drops `writer_done`'s
    /// sender when it has released everything it was given; `replica` is
    /// the thread of the local snapshots, joined after it.
    pub(crate) fn replicated(
        seq: u64,
        to_writer: tokio::sync::mpsc::UnboundedSender<ToWriter>,
        writer_done: crossbeam_channel::Receiver<()>,
        replica: JoinHandle<()>,
    ) -> Journal {
        Journal {
            buf: Vec::with_capacity(64 << 10),
            seq,
            committed_seq: seq,
            to_writer: Some(Sink::Replicated(to_writer)),
            writer_done: Some(writer_done),
            threads: vec![replica],
        }
    }

    /// Appends a command about to be handled; [`Journal::retract`] takes it
    /// back if the core refuses it.
    pub fn append_command(&mut self, now: Time, session: SessionId, command: &Command) -> Mark {
        let mark = Mark(self.buf.len());
        self.seq += 1;
        format::encode_record(&mut self.buf, self.seq, now, InputRef::Command { session, command });
        mark
    }

    /// Takes back the last command appended (the core refused it: it changed nothing).
    pub fn retract(&mut self, mark: Mark) {
        self.buf.truncate(mark.0);
        self.seq -= 1;
    }

    /// Records that timers due at `now` fired.
    pub fn append_timers(&mut self, now: Time) {
        self.seq += 1;
        format::encode_record(&mut self.buf, self.seq, now, InputRef::Timers);
    }

    /// Whether anything was appended since the last [`Journal::commit`].
    pub fn has_pending(&self) -> bool {
        !self.buf.is_empty()
    }

    /// Hands the records appended so far to the writer; `release` runs once
    /// they are durable. With nothing appended, `release` still waits for the
    /// records before it (replies keep their order).
    pub fn commit(&mut self, release: Release) {
        let bytes = std::mem::replace(&mut self.buf, Vec::with_capacity(64 << 10));
        let first_seq = self.committed_seq + 1;
        self.committed_seq = self.seq;
        // A failed writer drops `release`: no acknowledgement goes out.
        let batch = ToWriter::Batch { first_seq, bytes, release };
        match &self.to_writer {
            Some(Sink::Local(tx)) => {
                let _ = tx.send(batch);
            }
            Some(Sink::Replicated(tx)) => {
                let _ = tx.send(batch);
            }
            None => {}
        }
    }

    /// Stops the writer and snapshot threads after what was sent to them.
    pub fn close(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        // The writer ends after what was sent to it, and the replica after
        // the writer (it holds the replica's only sender).
        self.to_writer = None;
        if let Some(done) = self.writer_done.take() {
            let _ = done.recv();
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Where a command's record starts in the pending buffer.
#[derive(Clone, Copy, Debug)]
pub struct Mark(usize);

pub fn unix_millis() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

fn log_report(report: &RecoveryReport, last_seq: u64) {
    for (path, why) in &report.unusable_snapshots {
        warn!(file = %path.display(), %why, "snapshot unusable; falling back to an older one");
    }
    for path in &report.removed_empty {
        warn!(file = %path.display(), "removed an empty journal segment (a crash while it was created)");
    }
    if let Some((path, offset, why)) = &report.truncated {
        warn!(file = %path.display(), offset, %why, "journal tail torn by a crash: cut off (it was never acknowledged)");
    }
    info!(
        snapshot = report.snapshot.as_ref().map_or(0, |(seq, _)| *seq),
        replayed = report.replayed,
        last_seq,
        millis = report.duration.as_millis() as u64,
        "state recovered from the journal"
    );
}

/// Ids in the journal are positions in these lists: a new configuration may
/// add skills and languages at the end, but not reorder or remove any, and
/// its queues and tiers must be the same (as for a reload).
pub(crate) fn check_names(old: &Names, new: &Names) -> Result<(), JournalError> {
    let prefix = |what: &str, old: &[String], new: &[String]| -> Result<(), JournalError> {
        match old.iter().zip(new).position(|(a, b)| a != b) {
            Some(i) => Err(JournalError::Incompatible(format!(
                "{what}[{i}] is {:?} in the journal but {:?} in the configuration; {what} may only be added at the end",
                old[i], new[i]
            ))),
            None if new.len() < old.len() => Err(JournalError::Incompatible(format!(
                "{what}: the journal knows {} but the configuration lists {}; {what} may only be added at the end",
                old.len(),
                new.len()
            ))),
            None => Ok(()),
        }
    };
    prefix("skills", &old.skills, &new.skills)?;
    prefix("languages", &old.languages, &new.languages)?;
    if old.queues != new.queues {
        return Err(JournalError::Incompatible(format!(
            "queues are {:?} in the journal but {:?} in the configuration; queues keep their names and order",
            old.queues, new.queues
        )));
    }
    if old.tiers != new.tiers {
        return Err(JournalError::Incompatible(format!(
            "tiers are {:?} in the journal but {:?} in the configuration; tiers keep their names and order",
            old.tiers, new.tiers
        )));
    }
    Ok(())
}
