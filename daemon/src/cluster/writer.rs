//! The active node's journal writer: the routing thread's batches appended
//! to the journal in etcd, each write a transaction fenced by this node's
//! epoch, several in flight, and released in order once etcd has them on a
//! quorum — the cluster's group commit.
//!
//! While the appends in flight fill the pipeline, what the routing thread
//! sends meanwhile gathers into the next write (up to
//! `cluster.max_batch_bytes`, cut at record boundaries), so that a busy
//! centre costs a few writes per round trip, not one per routing batch.
//! The first failed write (fenced off: another node leads) ends it: nothing
//! after it is released, and the node stops acting as the active.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use ccr_cluster::journal::Appender;
use tokio::sync::mpsc::UnboundedReceiver;
use tracing::error;

use crate::journal::format;
use crate::journal::replica::Feed;
use crate::journal::writer::{Release, ToWriter};
use crate::journal::Failure;

pub struct EtcdWriter {
    pub appender: Appender,
    pub max_batch_bytes: usize,
    /// The local snapshots' replica: fed every batch once durable.
    pub replica: Option<Feed>,
    pub failure: Arc<Failure>,
    pub append_seconds: metrics::Histogram,
    /// `ccr_journal_bytes_total`, as for a local journal.
    pub bytes: metrics::Counter,
}

/// One write to etcd: whole records, and what to release after them.
#[derive(Default)]
struct Write {
    records: u64,
    bytes: Vec<u8>,
    releases: Vec<Release>,
}

struct InFlight {
    bytes: Vec<u8>,
    releases: Vec<Release>,
    sent: Instant,
}

#[derive(Default)]
struct Pipeline {
    /// Gathering while the pipeline is full.
    open: Write,
    /// Cut off `open` at the size limit, in order.
    sealed: VecDeque<Write>,
    in_flight: VecDeque<InFlight>,
}

impl Pipeline {
    /// Adds a routing batch. One without records (replies to refused
    /// commands, say) is released after the last records before it.
    fn add(&mut self, bytes: Vec<u8>, release: Release, max: usize) {
        if bytes.is_empty() {
            if self.open.records > 0 {
                self.open.releases.push(release);
            } else if let Some(last) = self.sealed.back_mut() {
                last.releases.push(release);
            } else if let Some(last) = self.in_flight.back_mut() {
                last.releases.push(release);
            } else {
                release();
            }
            return;
        }
        let mut at = 0;
        for len in format::record_lengths(&bytes) {
            if self.open.records > 0 && self.open.bytes.len() + len > max {
                self.sealed.push_back(std::mem::take(&mut self.open));
            }
            self.open.bytes.extend_from_slice(&bytes[at..at + len]);
            self.open.records += 1;
            at += len;
        }
        self.open.releases.push(release);
    }

    fn next_write(&mut self) -> Option<Write> {
        self.sealed.pop_front().or_else(|| (self.open.records > 0).then(|| std::mem::take(&mut self.open)))
    }

    fn is_empty(&self) -> bool {
        self.open.records == 0 && self.sealed.is_empty() && self.in_flight.is_empty()
    }
}

impl EtcdWriter {
    /// Runs until the routing thread's end is gone and everything is
    /// released, or until a write fails; `_done` is dropped on the way out
    /// (what `Journal::close` waits for).
    pub async fn run(mut self, mut batches: UnboundedReceiver<ToWriter>, _done: crossbeam_channel::Sender<()>) {
        let mut pipeline = Pipeline::default();
        let mut closed = false;
        loop {
            while self.appender.has_room() {
                let Some(write) = pipeline.next_write() else { break };
                self.bytes.increment(write.bytes.len() as u64);
                let copy = if self.replica.is_some() { write.bytes.clone() } else { Vec::new() };
                // With room, `push` waits for nothing.
                let _ = self.appender.push(write.records, write.bytes).await;
                pipeline.in_flight.push_back(InFlight { bytes: copy, releases: write.releases, sent: Instant::now() });
            }
            if closed && pipeline.is_empty() {
                return;
            }
            tokio::select! {
                biased;
                outcome = self.appender.next(), if self.appender.in_flight() > 0 => match outcome {
                    Some(Ok(_)) => {
                        let done = pipeline.in_flight.pop_front().expect("one in flight per append");
                        self.append_seconds.record(done.sent.elapsed().as_secs_f64());
                        for release in done.releases {
                            release();
                        }
                        if let Some(replica) = &self.replica {
                            if !replica.send(done.bytes) {
                                self.replica = None;
                            }
                        }
                    }
                    Some(Err(e)) => {
                        // What was not released never will be: dropped
                        // here, its callers hear that the core stopped.
                        error!(error = %e, "journal append to etcd failed: this node acknowledges nothing more");
                        self.failure.set(format!("journal append to etcd: {e}"));
                        return;
                    }
                    None => {}
                },
                batch = batches.recv(), if !closed => match batch {
                    Some(ToWriter::Batch { bytes, release, .. }) => {
                        pipeline.add(bytes, release, self.max_batch_bytes)
                    }
                    None => closed = true,
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn records(n: u64, first: u64) -> Vec<u8> {
        let mut out = Vec::new();
        for seq in first..first + n {
            format::encode_record(&mut out, seq, ccr_core::Time::from_secs(seq), format::InputRef::Timers);
        }
        out
    }

    /// Batches gather into writes cut at record boundaries under the size
    /// limit; a batch without records is released after the records before
    /// it, and at once when there are none.
    #[test]
    fn batches_gather_into_writes_cut_at_records_and_release_in_order() {
        let released = Arc::new(AtomicUsize::new(0));
        let release = |n: usize| -> Release {
            let released = released.clone();
            Box::new(move || {
                released.fetch_add(n, Ordering::SeqCst);
            })
        };
        let max = records(3, 1).len();
        let mut p = Pipeline::default();
        p.add(Vec::new(), release(1), max);
        assert_eq!(released.load(Ordering::SeqCst), 1, "nothing before it: released at once");
        p.add(records(2, 1), release(10), max);
        p.add(records(2, 3), release(100), max);
        p.add(Vec::new(), release(1000), max);
        let first = p.next_write().unwrap();
        assert_eq!((first.records, first.releases.len()), (3, 1), "cut at three records: the first batch's release");
        assert_eq!(first.bytes, records(3, 1));
        let second = p.next_write().unwrap();
        assert_eq!((second.records, second.releases.len()), (1, 2), "the rest, then the empty batch's release");
        assert!(p.next_write().is_none());
        for r in first.releases.into_iter().chain(second.releases) {
            r();
        }
        assert_eq!(released.load(Ordering::SeqCst), 1111);
    }
}
