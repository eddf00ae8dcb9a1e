//! The journal in etcd: one key per group-commit batch, written only under
//! the writer's epoch.

use etcd_client::{Client, Compare, CompareOp, GetOptions, Txn, TxnOp, TxnOpResponse};

use crate::election::Leader;
use crate::{ClusterError, Keys};

/// Writes the batch of records starting at `first_seq`, if and only if the
/// leader key still has `epoch` as its create-revision and the batch was
/// not written before. Returns the revision etcd gave the write (etcd has
/// made it durable on a quorum when this returns).
pub async fn append(
    client: &mut Client,
    keys: &Keys,
    epoch: i64,
    first_seq: u64,
    batch: Vec<u8>,
) -> Result<i64, ClusterError> {
    append_after(client, keys, epoch, None, first_seq, batch).await
}

/// [`append`], only if the batch starting at `previous` is written too:
/// batches in flight together may reach etcd out of order, and one whose
/// predecessor is not there must not be, or a fence between them would
/// leave a gap in the journal. [`ClusterError::NotYet`] then: write it
/// again once the predecessor is.
pub async fn append_after(
    client: &mut Client,
    keys: &Keys,
    epoch: i64,
    previous: Option<u64>,
    first_seq: u64,
    batch: Vec<u8>,
) -> Result<i64, ClusterError> {
    let leader = keys.leader();
    let entry = keys.journal_entry(first_seq);
    let mut conditions = vec![
        Compare::create_revision(leader.clone(), CompareOp::Equal, epoch),
        Compare::create_revision(entry.clone(), CompareOp::Equal, 0),
    ];
    let mut checks = vec![TxnOp::get(leader, None), TxnOp::get(entry.clone(), None)];
    if let Some(previous) = previous {
        let previous = keys.journal_entry(previous);
        conditions.push(Compare::create_revision(previous.clone(), CompareOp::Greater, 0));
        checks.push(TxnOp::get(previous, None));
    }
    let response =
        client.txn(Txn::new().when(conditions).and_then([TxnOp::put(entry, batch, None)]).or_else(checks)).await?;
    if response.succeeded() {
        return Ok(response.header().map_or(0, |h| h.revision()));
    }
    // Which condition failed: the fence first, then the batch itself.
    let found: Vec<Option<(Vec<u8>, i64)>> = response
        .op_responses()
        .into_iter()
        .map(|r| match r {
            TxnOpResponse::Get(g) => g.kvs().first().map(|kv| (kv.value().to_vec(), kv.create_revision())),
            _ => None,
        })
        .collect();
    let current = found.first().cloned().flatten().and_then(|(value, epoch)| Leader::parse(&value, epoch));
    match current {
        Some(l) if l.epoch == epoch => {
            if found.get(1).is_some_and(Option::is_some) {
                Err(ClusterError::Invalid(format!("journal batch {first_seq} was already written")))
            } else {
                Err(ClusterError::NotYet { first_seq })
            }
        }
        current => Err(ClusterError::Fenced { epoch, current }),
    }
}

/// Writes batches with up to `depth` in flight, and reports each one
/// durable in the order given: what a group-commit writer releases replies
/// and events on. A batch that reached etcd before its predecessor is
/// written again after it; after the first failure nothing more is
/// written or reported, and the journal holds no gap.
pub struct Appender {
    client: Client,
    keys: Keys,
    epoch: i64,
    depth: usize,
    /// The last batch given, and those in flight in order.
    previous: Option<u64>,
    in_flight: std::collections::VecDeque<InFlight>,
    failed: bool,
}

struct InFlight {
    previous: Option<u64>,
    first_seq: u64,
    batch: Vec<u8>,
    write: tokio::task::JoinHandle<Result<i64, ClusterError>>,
}

impl Appender {
    /// `previous`: the last batch in the journal, which the first one
    /// given must follow (`None` for an empty journal).
    pub fn new(client: Client, keys: Keys, epoch: i64, previous: Option<u64>, depth: usize) -> Appender {
        Appender { client, keys, epoch, depth: depth.max(1), previous, in_flight: Default::default(), failed: false }
    }

    /// Starts writing a batch; if `depth` are in flight already, first
    /// waits for the oldest and returns its outcome.
    pub async fn push(&mut self, first_seq: u64, batch: Vec<u8>) -> Option<Result<u64, ClusterError>> {
        let done = if self.in_flight.len() >= self.depth { self.next().await } else { None };
        if !self.failed {
            let previous = self.previous.replace(first_seq);
            let write = self.start(previous, first_seq, batch.clone());
            self.in_flight.push_back(InFlight { previous, first_seq, batch, write });
        }
        done
    }

    /// The outcome of the oldest batch in flight, in order: its first
    /// sequence number once durable. `None` when none is in flight.
    pub async fn next(&mut self) -> Option<Result<u64, ClusterError>> {
        let f = self.in_flight.pop_front()?;
        let mut outcome = f.write.await.unwrap_or_else(|e| Err(ClusterError::Invalid(format!("append task: {e}"))));
        if let Err(ClusterError::NotYet { .. }) = outcome {
            // Its predecessor is durable now (reported before it): again.
            let mut client = self.client.clone();
            outcome = append_after(&mut client, &self.keys, self.epoch, f.previous, f.first_seq, f.batch).await;
        }
        if outcome.is_err() {
            // Nothing after a failure is reported; what is in flight may
            // fail with NotYet and is dropped.
            self.failed = true;
            for later in self.in_flight.drain(..) {
                later.write.abort();
            }
        }
        Some(outcome.map(|_| f.first_seq))
    }

    fn start(
        &self,
        previous: Option<u64>,
        first_seq: u64,
        batch: Vec<u8>,
    ) -> tokio::task::JoinHandle<Result<i64, ClusterError>> {
        let (mut client, keys, epoch) = (self.client.clone(), self.keys.clone(), self.epoch);
        tokio::spawn(async move { append_after(&mut client, &keys, epoch, previous, first_seq, batch).await })
    }
}

/// The batches from `first_seq` on, in order: (first sequence number,
/// bytes, revision written at).
pub async fn read_from(
    client: &mut Client,
    keys: &Keys,
    first_seq: u64,
) -> Result<Vec<(u64, Vec<u8>, i64)>, ClusterError> {
    let start = keys.journal_entry(first_seq);
    // Everything up to the end of the journal prefix ('/' + 1 is '0').
    let end = format!("{}0", keys.journal().trim_end_matches('/'));
    let response = client.get(start, Some(GetOptions::new().with_range(end))).await?;
    let mut batches = Vec::with_capacity(response.kvs().len());
    for kv in response.kvs() {
        let seq = keys
            .journal_seq(kv.key())
            .ok_or_else(|| ClusterError::Invalid(format!("a journal key that is not one: {:?}", kv.key_str())))?;
        batches.push((seq, kv.value().to_vec(), kv.mod_revision()));
    }
    Ok(batches)
}
