//! The journal in etcd: one key per group-commit batch of records, keyed by
//! the sequence number of its first record, written only under the
//! writer's epoch.
//!
//! A batch's value is its record count (8 bytes, big-endian) and then the
//! records, opaque here. Batches follow one another without a gap: the one
//! after `first` holding `records` starts at `first + records`. A batch
//! whose predecessor is missing is after a gap, and never counts.

use std::collections::{BTreeMap, VecDeque};

use etcd_client::{
    Client, Compare, CompareOp, DeleteOptions, EventType, GetOptions, Txn, TxnOp, WatchOptions, WatchStream, Watcher,
};
use tracing::warn;

use crate::election::Leader;
use crate::{ClusterError, Keys};

/// One group-commit batch: `records` journal records, the first numbered `first`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Batch {
    pub first: u64,
    pub records: u64,
    pub bytes: Vec<u8>,
}

impl Batch {
    /// The sequence number of the first record after this batch.
    pub fn end(&self) -> u64 {
        self.first + self.records
    }

    fn value(&self) -> Vec<u8> {
        let mut value = Vec::with_capacity(8 + self.bytes.len());
        value.extend_from_slice(&self.records.to_be_bytes());
        value.extend_from_slice(&self.bytes);
        value
    }

    fn parse(keys: &Keys, key: &[u8], value: &[u8]) -> Result<Batch, ClusterError> {
        let invalid = || ClusterError::Invalid(format!("not a journal batch: {:?}", String::from_utf8_lossy(key)));
        let first = keys.journal_batch(key).ok_or_else(invalid)?;
        let (count, bytes) = value.split_first_chunk::<8>().ok_or_else(invalid)?;
        let records = u64::from_be_bytes(*count);
        if records == 0 {
            return Err(invalid());
        }
        Ok(Batch { first, records, bytes: bytes.to_vec() })
    }
}

/// Writes `batch`, if and only if the leader key still has `epoch` as its
/// create-revision and no batch starting at the same record was written
/// before. Returns the revision etcd gave the write (etcd has made it
/// durable on a quorum when this returns).
pub async fn append(client: &mut Client, keys: &Keys, epoch: i64, batch: &Batch) -> Result<i64, ClusterError> {
    let leader = keys.leader();
    let entry = keys.journal_entry(batch.first);
    let fenced = Txn::new()
        .when([
            Compare::create_revision(leader.clone(), CompareOp::Equal, epoch),
            Compare::create_revision(entry.clone(), CompareOp::Equal, 0),
        ])
        .and_then([TxnOp::put(entry, batch.value(), None)])
        .or_else([TxnOp::get(leader, None)]);
    let response = client.txn(fenced).await?;
    if response.succeeded() {
        return Ok(response.header().map_or(0, |h| h.revision()));
    }
    match Leader::found_in(&response) {
        Some(l) if l.epoch == epoch => Err(ClusterError::AlreadyWritten { first: batch.first }),
        current => Err(ClusterError::Fenced { epoch, current }),
    }
}

/// [`append`], tried again while etcd cannot be reached (a member lost, an
/// election in etcd) until `limit`. A try that reached etcd without its
/// answer reaching us is found written under our own epoch by the next:
/// only this writer writes under it, and each batch once, so that is this
/// batch, durable.
pub async fn append_retrying(
    client: &mut Client,
    keys: &Keys,
    epoch: i64,
    batch: &Batch,
    limit: std::time::Duration,
) -> Result<(), ClusterError> {
    // A proposal in flight when etcd's leader dies is not failed but left
    // to etcd's request timeout (seconds): each try gets a second, then
    // goes again (to the new leader).
    const TRY: std::time::Duration = std::time::Duration::from_secs(1);
    let deadline = tokio::time::Instant::now() + limit;
    let mut tried = false;
    loop {
        let try_until = deadline.min(tokio::time::Instant::now() + TRY);
        let outcome = tokio::time::timeout_at(try_until, append(client, keys, epoch, batch)).await;
        let now = tokio::time::Instant::now();
        match outcome {
            Ok(Ok(_)) => return Ok(()),
            Ok(Err(ClusterError::AlreadyWritten { .. })) if tried => return Ok(()),
            Ok(Err(ClusterError::Etcd(e))) if now < deadline => {
                warn!(error = %e, first = batch.first, "journal append: etcd unreachable; trying again");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            Err(_) if now < deadline => warn!(first = batch.first, "journal append: no answer from etcd; trying again"),
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err(ClusterError::Timeout(limit)),
        }
        tried = true;
    }
}

/// What a new leader found in the journal from its position on.
#[derive(Debug)]
pub struct Settled {
    /// The unbroken run of batches from the position asked for.
    pub batches: Vec<Batch>,
    /// The first record to write next.
    pub next: u64,
}

/// Makes the journal from record `from` on an unbroken run, as a new leader
/// must before it writes, and returns that run: batches written in flight
/// together may reach etcd out of order, so a former leader fenced off
/// between two of them can leave a later one without an earlier one. Such a
/// batch was never reported durable (reports go in order and stop at the
/// first failure): it is deleted, under this leader's `epoch`.
pub async fn settle(client: &mut Client, keys: &Keys, epoch: i64, from: u64) -> Result<Settled, ClusterError> {
    let written = read_from(client, keys, from).await?;
    let mut next = from;
    let mut batches = Vec::new();
    for batch in &written {
        if batch.first != next {
            break;
        }
        next = batch.end();
        batches.push(batch.clone());
    }
    if batches.len() < written.len() {
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
            stray = written.len() - batches.len(),
            "journal: deleted batches written after a gap (never reported durable)"
        );
    }
    Ok(Settled { batches, next })
}

/// Batches deleted by one transaction when pruning: one delete of tens of
/// thousands of keys held etcd, and every append behind it, for hundreds of
/// milliseconds.
pub const PRUNE_STEP: i64 = 512;

/// Deletes the batches that start at or before record `upto` (those a
/// snapshot after record `upto` covers), under `epoch`, [`PRUNE_STEP`] at a
/// time with a pause between; returns the revision of the last delete,
/// which etcd may be compacted to (0: nothing to delete).
pub async fn prune(client: &mut Client, keys: &Keys, epoch: i64, upto: u64) -> Result<i64, ClusterError> {
    let end = keys.journal_entry(upto.saturating_add(1));
    let mut revision = 0;
    loop {
        let step = GetOptions::new().with_range(end.clone()).with_keys_only().with_limit(PRUNE_STEP);
        let found = client.get(keys.journal_entry(0), Some(step)).await?;
        let Some(last) = found.kvs().last() else { return Ok(revision) };
        let through = keys.journal_batch(last.key()).unwrap_or(upto).min(upto);
        let range = DeleteOptions::new().with_range(keys.journal_entry(through.saturating_add(1)));
        let fenced = Txn::new()
            .when([Compare::create_revision(keys.leader(), CompareOp::Equal, epoch)])
            .and_then([TxnOp::delete(keys.journal_entry(0), Some(range))])
            .or_else([TxnOp::get(keys.leader(), None)]);
        let response = client.txn(fenced).await?;
        if !response.succeeded() {
            return Err(ClusterError::Fenced { epoch, current: Leader::found_in(&response) });
        }
        revision = response.header().map_or(0, |h| h.revision());
        if (found.kvs().len() as i64) < PRUNE_STEP {
            return Ok(revision);
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Writes batches with up to `depth` in flight, each starting where the one
/// before it ends, and reports each one durable in the order given: what a
/// group-commit writer releases replies and events on. After the first
/// failure nothing more is written or reported.
pub struct Appender {
    client: Client,
    keys: Keys,
    epoch: i64,
    depth: usize,
    next: u64,
    in_flight: VecDeque<(u64, tokio::task::JoinHandle<Result<(), ClusterError>>)>,
    failed: bool,
    timeout: Option<std::time::Duration>,
}

impl Appender {
    /// `next`: the sequence number of the first record given ([`settle`]'s).
    pub fn new(client: Client, keys: Keys, epoch: i64, next: u64, depth: usize) -> Appender {
        let in_flight = Default::default();
        Appender { client, keys, epoch, depth: depth.max(1), next, in_flight, failed: false, timeout: None }
    }

    /// A write is tried again while etcd cannot be reached, and fails if it
    /// is not acknowledged within `limit` (etcd lost its quorum, say): the
    /// writer learns it instead of waiting.
    pub fn with_timeout(mut self, limit: std::time::Duration) -> Appender {
        self.timeout = Some(limit);
        self
    }

    /// Whether another batch can start without waiting for the oldest.
    pub fn has_room(&self) -> bool {
        self.in_flight.len() < self.depth
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Starts writing the next batch, `records` records (at least one) in
    /// `bytes`; if `depth` are in flight already, first waits for the
    /// oldest and returns its outcome.
    pub async fn push(&mut self, records: u64, bytes: Vec<u8>) -> Option<Result<u64, ClusterError>> {
        let done = if self.has_room() { None } else { self.next().await };
        if !self.failed && records > 0 {
            let batch = Batch { first: self.next, records, bytes };
            self.next = batch.end();
            let (mut client, keys, epoch, limit) = (self.client.clone(), self.keys.clone(), self.epoch, self.timeout);
            let first = batch.first;
            let write = tokio::spawn(async move {
                match limit {
                    Some(limit) => append_retrying(&mut client, &keys, epoch, &batch, limit).await,
                    None => append(&mut client, &keys, epoch, &batch).await.map(drop),
                }
            });
            self.in_flight.push_back((first, write));
        }
        done
    }

    /// The outcome of the oldest batch in flight, in order: the number of
    /// its first record once durable. `None` when none is in flight.
    /// Cancel-safe: dropped before it resolves, the batch stays in flight.
    pub async fn next(&mut self) -> Option<Result<u64, ClusterError>> {
        let (_, write) = self.in_flight.front_mut()?;
        let outcome = write.await.unwrap_or_else(|e| Err(ClusterError::Invalid(format!("append task: {e}"))));
        let (first, _) = self.in_flight.pop_front().expect("the batch just awaited");
        if outcome.is_err() {
            self.failed = true;
            // Whatever of these reaches etcd is after a gap: the next
            // leader's `settle` deletes it.
            for (_, later) in self.in_flight.drain(..) {
                later.abort();
            }
        }
        Some(outcome.map(|_| first))
    }
}

/// The batches that start at record `from` or later, in order.
pub async fn read_from(client: &mut Client, keys: &Keys, from: u64) -> Result<Vec<Batch>, ClusterError> {
    let range = GetOptions::new().with_range(keys.journal_end());
    let response = client.get(keys.journal_entry(from), Some(range)).await?;
    response.kvs().iter().map(|kv| Batch::parse(keys, kv.key(), kv.value())).collect()
}

/// The first record the journal holds, if it holds any.
pub async fn first_held(client: &mut Client, keys: &Keys) -> Result<Option<u64>, ClusterError> {
    let range = GetOptions::new().with_range(keys.journal_end()).with_limit(1).with_keys_only();
    let response = client.get(keys.journal_entry(0), Some(range)).await?;
    Ok(response.kvs().first().and_then(|kv| keys.journal_batch(kv.key())))
}

/// What a standby replays: the journal from a record on, each batch once
/// and in order, and only once every batch before it is there — a batch
/// after a gap waits, and goes if a new leader's [`settle`] deletes it.
/// Reads what is written, then watches from the revision of that read, so
/// nothing is missed between the two.
pub struct Follower {
    _watcher: Watcher,
    stream: WatchStream,
    keys: Keys,
    next: u64,
    /// Batches seen beyond `next`, waiting for the ones before them.
    waiting: BTreeMap<u64, Batch>,
    ready: VecDeque<Batch>,
}

impl Follower {
    /// Follows from record `from`. Refused with [`ClusterError::Behind`]
    /// when the journal no longer holds it (pruned after every other
    /// member's snapshot covered it).
    pub async fn start(client: &mut Client, keys: &Keys, from: u64) -> Result<Follower, ClusterError> {
        if let Some(first) = first_held(client, keys).await? {
            if first > from {
                return Err(ClusterError::Behind { next: from, first_held: first });
            }
        }
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
            follower.put(Batch::parse(keys, kv.key(), kv.value())?);
        }
        Ok(follower)
    }

    /// The next batch in order. Waits for it.
    pub async fn next(&mut self) -> Result<Batch, ClusterError> {
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
                    EventType::Put => self.put(Batch::parse(&self.keys, kv.key(), kv.value())?),
                    EventType::Delete => {
                        if let Some(first) = self.keys.journal_batch(kv.key()) {
                            self.waiting.remove(&first);
                        }
                    }
                }
            }
        }
    }

    fn put(&mut self, batch: Batch) {
        if batch.first >= self.next {
            self.waiting.insert(batch.first, batch);
        }
        while let Some(batch) = self.waiting.remove(&self.next) {
            self.next = batch.end();
            self.ready.push_back(batch);
        }
        // Strays that start inside a batch given: never given.
        self.waiting = self.waiting.split_off(&self.next);
    }
}
