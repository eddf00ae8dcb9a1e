//! The snapshot replica: a second router, on its own thread, fed every
//! journal record once it is durable, in order; when a snapshot is due it
//! applies what it was fed since the last one and snapshots itself.
//!
//! Replay is deterministic, so the replica holds exactly the routing
//! thread's state as of the last record it applied; a snapshot of it is a
//! snapshot of the centre. The routing thread never copies or serializes
//! anything for a snapshot, so a snapshot never pauses routing, at any size.
//! What it costs is a second copy of the state in memory and every command
//! decided a second time, on another core, once per snapshot period.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use ccr_core::Router;
use crossbeam_channel::{Receiver, Sender};
use tracing::{debug, error, info};

use super::format::{self, Decoded, Names};
use super::recovery;
use super::snapshot::{prune, write};
use super::{JournalMetrics, JournalOptions};

/// The writer's end of the replica's queue, bounded in bytes: a replica
/// that falls further behind than `max` (starved of a core, say) is cut
/// off, and snapshots stop until a restart, rather than let its queue grow
/// without bound. Recovery then replays more; nothing acknowledged is lost.
pub struct Feed {
    pub tx: Sender<Vec<u8>>,
    /// Bytes sent and not yet applied.
    pub lag: Arc<AtomicUsize>,
    pub max: usize,
}

impl Feed {
    /// Queues a durable batch; `false` once the replica is cut off.
    pub fn send(&self, batch: Vec<u8>) -> bool {
        let n = batch.len();
        let lag = self.lag.fetch_add(n, Ordering::AcqRel) + n;
        if lag > self.max {
            error!(behind_bytes = lag, "snapshot replica fell too far behind: no more snapshots until restart");
            return false;
        }
        self.tx.send(batch).is_ok()
    }
}

pub struct Replica {
    pub dir: PathBuf,
    pub router: Router,
    pub names: Names,
    /// The last record applied.
    pub seq: u64,
    pub options: JournalOptions,
    pub metrics: JournalMetrics,
    /// Snapshot before anything else (after a recovery: the next start
    /// then does not replay the same records again).
    pub snapshot_first: bool,
    /// Asks the writer for a new segment after each snapshot.
    pub rotate: Arc<AtomicBool>,
    /// The feed's count of bytes sent and not yet applied.
    pub lag: Arc<AtomicUsize>,
    /// Apply each batch as it comes (a cluster's hot standby, current
    /// within milliseconds), not only when a snapshot is due.
    pub eager: bool,
    /// Told the last record of each snapshot once it is durable.
    pub on_snapshot: Option<Box<dyn FnMut(u64) + Send>>,
    /// The last record applied, for whoever measures how far behind it is.
    pub applied: Arc<AtomicU64>,
}

/// What a replica holds when its feed ends: the state after record `seq`.
pub struct Replayed {
    pub router: Router,
    pub names: Names,
    pub seq: u64,
}

impl Replica {
    /// Collects batches until a snapshot is due, then applies them all and
    /// snapshots; until the writer is gone. Applying them in one go, not as
    /// they come, keeps the replica off the cores while the routing thread
    /// is busy between snapshots, and decodes and replays in bulk. When the
    /// writer is gone (ccrd stops) it snapshots what is left, so that the
    /// next start — of this version or a later one, whose rules may differ —
    /// replays nothing. Returns the state it ends with, or `None` if it had
    /// to stop (a batch it could not apply).
    pub fn run(mut self, batches: Receiver<Vec<u8>>) -> Option<Replayed> {
        // A standby's router too: on a shared host, the active's threads
        // come first; it keeps up on what they leave (its lag is measured).
        yield_to_routing();
        let mut since = Since { bytes: 0, at: Instant::now() };
        if self.snapshot_first {
            self.snapshot(&mut since);
        }
        let mut pending: Vec<Vec<u8>> = Vec::new();
        for batch in &batches {
            since.bytes += batch.len() as u64;
            pending.push(batch);
            if self.eager && !self.apply_all(&mut pending) {
                return None;
            }
            let due = since.bytes >= self.options.snapshot_bytes
                || (since.bytes > 0 && since.at.elapsed() >= self.options.snapshot_interval);
            if !due || !batches.is_empty() {
                continue;
            }
            if !self.apply_all(&mut pending) {
                return None;
            }
            self.snapshot(&mut since);
        }
        // (A standby's feed ends when it takes over: no snapshot to delay it.)
        if !pending.is_empty() {
            if !self.apply_all(&mut pending) {
                return None;
            }
            self.snapshot(&mut since);
        }
        Some(Replayed { router: self.router, names: self.names, seq: self.seq })
    }

    /// Applies what was collected; `false` if the replica had to stop.
    fn apply_all(&mut self, pending: &mut Vec<Vec<u8>>) -> bool {
        for batch in pending.drain(..) {
            if let Err(why) = self.apply(&batch) {
                // The journal still holds everything; the next start
                // replays more. Nothing the routing thread does depends
                // on this.
                error!(error = %why, seq = self.seq, "snapshot replica stopped: no more snapshots until restart");
                return false;
            }
            self.lag.fetch_sub(batch.len(), Ordering::AcqRel);
        }
        self.applied.store(self.seq, Ordering::Release);
        true
    }

    fn apply(&mut self, batch: &[u8]) -> Result<(), String> {
        apply_batch(&mut self.router, &mut self.names, &mut self.seq, batch, &mut |_| {})
    }

    fn snapshot(&mut self, since: &mut Since) {
        let started = Instant::now();
        match write(&self.dir, self.seq, self.router.now(), &self.names, &self.router).and_then(|_| prune(&self.dir)) {
            Ok(()) => {
                self.metrics.snapshot_written();
                if let Some(tell) = self.on_snapshot.as_mut() {
                    tell(self.seq);
                }
                self.rotate.store(true, Ordering::Release);
                debug!(seq = self.seq, millis = started.elapsed().as_millis() as u64, "snapshot written");
                if started.elapsed().as_secs() >= 1 {
                    info!(seq = self.seq, seconds = started.elapsed().as_secs_f64(), "snapshot written");
                }
            }
            Err(e) => error!(error = %e, seq = self.seq, "snapshot failed"),
        }
        *since = Since { bytes: 0, at: Instant::now() };
    }
}

/// Applies a batch of whole records, the first numbered `seq + 1`, and
/// moves `seq` to its last; `on_event` sees the decisions made again.
pub fn apply_batch(
    router: &mut Router,
    names: &mut Names,
    seq: &mut u64,
    batch: &[u8],
    on_event: &mut dyn FnMut(ccr_core::Event),
) -> Result<(), String> {
    let mut at = 0;
    while at < batch.len() {
        match format::decode_record(&batch[at..]) {
            Decoded::Record(entry, len) => {
                if entry.seq != *seq + 1 {
                    return Err(format!("record {} after {}", entry.seq, seq));
                }
                *seq = entry.seq;
                recovery::apply(router, names, entry, on_event)?;
                at += len;
            }
            Decoded::Truncated | Decoded::Eof => return Err("a batch ends inside a record".into()),
            Decoded::Corrupt(why) => return Err(why.into()),
        }
    }
    Ok(())
}

/// Lowers this thread's scheduling priority to the lowest (nice 19): on a
/// machine with fewer cores than busy threads, a snapshot's seconds of work
/// then wait for the routing, journal and network threads instead of
/// taking their turns. Best effort: if the host refuses, it runs at the
/// normal priority.
fn yield_to_routing() {
    // SAFETY: plain system calls on this thread's own id.
    let refused = unsafe {
        let tid = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 19) != 0
    };
    if refused {
        debug!("snapshot replica: could not lower its priority");
    }
}

struct Since {
    bytes: u64,
    at: Instant,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A replica that does not keep up is cut off at the bound, not fed
    /// without end; one that keeps up is fed for ever.
    #[test]
    fn the_feed_cuts_off_a_replica_that_falls_too_far_behind() {
        let (tx, rx) = crossbeam_channel::unbounded();
        let feed = Feed { tx, lag: Arc::default(), max: 100 };
        assert!(feed.send(vec![0; 40]) && feed.send(vec![0; 40]));
        assert!(!feed.send(vec![0; 40]), "120 bytes behind, over 100");
        // What was sent is applied (as `Replica::run` does): room again.
        for batch in rx.try_iter() {
            feed.lag.fetch_sub(batch.len(), Ordering::AcqRel);
        }
        for _ in 0..10 {
            assert!(feed.send(vec![0; 60]));
            let batch = rx.recv().unwrap();
            feed.lag.fetch_sub(batch.len(), Ordering::AcqRel);
        }
    }
}
