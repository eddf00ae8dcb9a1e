//! The journal in etcd: one key per group-commit batch, numbered one after
//! another, written only under the writer's epoch.

use std::collections::{BTreeMap, VecDeque};

use etcd_client::{
    Client, Compare, CompareOp, DeleteOptions, EventType, GetOptions, Txn, TxnOp, WatchOptions, WatchStream, Watcher,
};
use tracing::warn;

use crate::election::Leader;
use crate::{ClusterError, Keys};

/// Writes batch number `batch`, if and only if the leader key still has
/// `epoch` as its create-revision and the batch was not written before.
/// Returns the revision etcd gave the write (etcd has made it durable on a
/// quorum when this returns).
pub async fn append(
    client: &mut Client,
    keys: &Keys,
    epoch: i64,
    batch: u64,
    bytes: Vec<u8>,
) -> Result<i64, ClusterError> {
    let leader = keys.leader();
    let entry = keys.journal_entry(batch);
    let fenced = Txn::new()
        .when([
            Compare::create_revision(leader.clone(), CompareOp::Equal, epoch),
            Compare::create_revision(entry.clone(), CompareOp::Equal, 0),
        ])
        .and_then([TxnOp::put(entry, bytes, None)])
        .or_else([TxnOp::get(leader, None)]);
    let response = client.txn(fenced).await?;
    if response.succeeded() {
        return Ok(response.header().map_or(0, |h| h.revision()));
    }
    match Leader::found_in(&response) {
        Some(l) if l.epoch == epoch => Err(ClusterError::Invalid(format!("journal batch {batch} was already written"))),
        current => Err(ClusterError::Fenced { epoch, current }),
    }
}

/// Makes the journal from batch `from` on an unbroken run, as a new leader
/// must before it writes: batches written in flight together may reach
/// etcd out of order, so a former leader fenced off between two of them
/// can leave a later one without an earlier one. Such a batch was never
/// reported durable (reports go in order and stop at the first failure):
/// it is deleted, under this leader's `epoch`. Returns the number of the
/// next batch to write.
pub async fn settle(client: &mut Client, keys: &Keys, epoch: i64, from: u64) -> Result<u64, ClusterError> {
    let written = read_from(client, keys, from).await?;
    let unbroken = written.iter().zip(from..).take_while(|((batch, _, _), expected)| batch == expected).count();
    let next = from + unbroken as u64;
    if unbroken < written.len() {
        let stray = DeleteOptions::new().with_range(keys.journal_end());
        let fenced = Txn::new()
            .when([Compare::create_revision(keys.leader(), CompareOp::Equal, epoch)])
            .and_then([TxnOp::delete(keys.journal_entry(next), Some(stray))])
            .or_else([TxnOp::get(keys.leader(), None)]);
        let response = client.txn(fenced).await?;
        if !response.succeeded() {
            return Err(ClusterError::Fenced { epoch, current: Leader::found_in(&response) });
        }
        warn!(
            next,
            stray = written.len() - unbroken,
            "journal: deleted batches written after a gap (never reported durable)"
        );
    }
    Ok(next)
}

/// Writes batches with up to `depth` in flight, numbered one after another,
/// and reports each one durable in the order given: what a group-commit
/// writer releases replies and events on. After the first failure nothing
/// more is written or reported.
pub struct Appender {
    client: Client,
    keys: Keys,
    epoch: i64,
    depth: usize,
    next_batch: u64,
    in_flight: VecDeque<(u64, tokio::task::JoinHandle<Result<i64, ClusterError>>)>,
    failed: bool,
}

impl Appender {
    /// `next_batch`: the number the first batch given gets ([`settle`]'s).
    pub fn new(client: Client, keys: Keys, epoch: i64, next_batch: u64, depth: usize) -> Appender {
        Appender { client, keys, epoch, depth: depth.max(1), next_batch, in_flight: Default::default(), failed: false }
    }

    /// Starts writing the next batch; if `depth` are in flight already,
    /// first waits for the oldest and returns its outcome.
    pub async fn push(&mut self, bytes: Vec<u8>) -> Option<Result<u64, ClusterError>> {
        let done = if self.in_flight.len() >= self.depth { self.next().await } else { None };
        if !self.failed {
            let batch = self.next_batch;
            self.next_batch += 1;
            let (mut client, keys, epoch) = (self.client.clone(), self.keys.clone(), self.epoch);
            let write = tokio::spawn(async move { append(&mut client, &keys, epoch, batch, bytes).await });
            self.in_flight.push_back((batch, write));
        }
        done
    }

    /// The outcome of the oldest batch in flight, in order: its number once
    /// durable. `None` when none is in flight.
    pub async fn next(&mut self) -> Option<Result<u64, ClusterError>> {
        let (batch, write) = self.in_flight.pop_front()?;
        let outcome = write.await.unwrap_or_else(|e| Err(ClusterError::Invalid(format!("append task: {e}"))));
        if outcome.is_err() {
            self.failed = true;
            // Whatever of these reaches etcd is after a gap: the next
            // leader's `settle` deletes it.
            for (_, later) in self.in_flight.drain(..) {
                later.abort();
            }
        }
        Some(outcome.map(|_| batch))
    }
}

/// The batches from number `from` on, in order: (number, bytes, revision
/// written at).
pub async fn read_from(client: &mut Client, keys: &Keys, from: u64) -> Result<Vec<(u64, Vec<u8>, i64)>, ClusterError> {
    let range = GetOptions::new().with_range(keys.journal_end());
    let response = client.get(keys.journal_entry(from), Some(range)).await?;
    let mut batches = Vec::with_capacity(response.kvs().len());
    for kv in response.kvs() {
        let seq = keys
            .journal_batch(kv.key())
            .ok_or_else(|| ClusterError::Invalid(format!("a journal key that is not one: {:?}", kv.key_str())))?;
        batches.push((seq, kv.value().to_vec(), kv.mod_revision()));
    }
    Ok(batches)
}

/// What a standby replays: the journal from a batch on, each batch once and
/// in order, and only once every batch before it is there — a batch after
/// a gap waits, and goes if a new leader's [`settle`] deletes it. Reads
/// what is written, then watches from the revision of that read, so
/// nothing is missed between the two.
pub struct Follower {
    _watcher: Watcher,
    stream: WatchStream,
    keys: Keys,
    next: u64,
    /// Batches seen beyond `next`, waiting for the ones before them.
    waiting: BTreeMap<u64, Vec<u8>>,
    ready: VecDeque<(u64, Vec<u8>)>,
}

impl Follower {
    pub async fn start(client: &mut Client, keys: &Keys, from: u64) -> Result<Follower, ClusterError> {
        let range = GetOptions::new().with_range(keys.journal_end());
        let read = client.get(keys.journal_entry(from), Some(range)).await?;
        let revision = read.header().map_or(0, |h| h.revision());
        let options = WatchOptions::new().with_range(keys.journal_end()).with_start_revision(revision + 1);
        let (watcher, stream) = client.watch(keys.journal_entry(from), Some(options)).await?;
        let mut follower = Follower {
            _watcher: watcher,
            stream,
            keys: keys.clone(),
            next: from,
            waiting: BTreeMap::new(),
            ready: VecDeque::new(),
        };
        for kv in read.kvs() {
            follower.put(kv.key(), kv.value());
        }
        Ok(follower)
    }

    /// The next batch in order: (number, bytes). Waits for it.
    pub async fn next(&mut self) -> Result<(u64, Vec<u8>), ClusterError> {
        loop {
            if let Some(batch) = self.ready.pop_front() {
                return Ok(batch);
            }
            let response =
                self.stream.message().await?.ok_or_else(|| ClusterError::Invalid("the journal watch ended".into()))?;
            if response.canceled() {
                return Err(ClusterError::Invalid("the journal watch was cancelled (compacted past it?)".into()));
            }
            for event in response.events() {
                let Some(kv) = event.kv() else { continue };
                match event.event_type() {
                    EventType::Put => self.put(kv.key(), kv.value()),
                    EventType::Delete => {
                        if let Some(batch) = self.keys.journal_batch(kv.key()) {
                            self.waiting.remove(&batch);
                        }
                    }
                }
            }
        }
    }

    fn put(&mut self, key: &[u8], value: &[u8]) {
        let Some(batch) = self.keys.journal_batch(key) else { return };
        if batch >= self.next {
            self.waiting.insert(batch, value.to_vec());
        }
        while let Some(bytes) = self.waiting.remove(&self.next) {
            self.ready.push_back((self.next, bytes));
            self.next += 1;
        }
    }
}
