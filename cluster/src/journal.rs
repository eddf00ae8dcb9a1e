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
    let leader = keys.leader();
    let entry = keys.journal_entry(first_seq);
    let fenced = Txn::new()
        .when([
            Compare::create_revision(leader.clone(), CompareOp::Equal, epoch),
            Compare::create_revision(entry.clone(), CompareOp::Equal, 0),
        ])
        .and_then([TxnOp::put(entry, batch, None)])
        .or_else([TxnOp::get(leader, None)]);
    let response = client.txn(fenced).await?;
    if response.succeeded() {
        return Ok(response.header().map_or(0, |h| h.revision()));
    }
    let current = response.op_responses().into_iter().find_map(|r| match r {
        TxnOpResponse::Get(g) => g.kvs().first().and_then(|kv| Leader::parse(kv.value(), kv.create_revision())),
        _ => None,
    });
    match current {
        Some(l) if l.epoch == epoch => {
            Err(ClusterError::Invalid(format!("journal batch {first_seq} was already written")))
        }
        current => Err(ClusterError::Fenced { epoch, current }),
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
