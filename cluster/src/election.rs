//! Leader election: one leader key, put only if absent, under the
//! candidate's lease.
//!
//! A candidate grants itself a lease, keeps it alive, and puts the leader
//! key if it does not exist; otherwise it watches the key until it is
//! deleted (its holder's lease ended, or it resigned) and tries again. The
//! winner's epoch is the key's create-revision. A leader whose lease cannot
//! be kept alive learns it from [`Leadership::lost`]; whether or not it
//! learns it in time, its writes are fenced (`journal::append`).

use std::time::Duration;

use etcd_client::{
    Client, Compare, CompareOp, EventType, PutOptions, Txn, TxnOp, TxnOpResponse, TxnResponse, WatchOptions,
};
use tokio::sync::watch;
use tracing::{debug, warn};

use crate::{ClusterError, Keys};

/// The node that leads, as its leader key says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Leader {
    pub node: String,
    /// Where clients reach it.
    pub address: String,
    /// The leader key's create-revision.
    pub epoch: i64,
}

impl Leader {
    fn value(node: &str, address: &str) -> String {
        format!("{node}\n{address}")
    }

    /// The leader a leader key's value and create-revision name.
    pub fn parse(value: &[u8], epoch: i64) -> Option<Leader> {
        let (node, address) = std::str::from_utf8(value).ok()?.split_once('\n')?;
        Some(Leader { node: node.to_owned(), address: address.to_owned(), epoch })
    }

    /// The leader that a failed transaction's `get` of the leader key found.
    pub(crate) fn found_in(response: &TxnResponse) -> Option<Leader> {
        response.op_responses().into_iter().find_map(|r| match r {
            TxnOpResponse::Get(g) => g.kvs().first().and_then(|kv| Leader::parse(kv.value(), kv.create_revision())),
            _ => None,
        })
    }
}

/// A node that wants to lead one partition.
pub struct Candidate {
    client: Client,
    keys: Keys,
    node: String,
    address: String,
    ttl: Duration,
}

impl Candidate {
    /// `ttl`: how long the leader key outlives its holder's last keep-alive
    /// (whole seconds, at least 1: etcd's unit).
    pub fn new(
        client: Client,
        keys: Keys,
        node: &str,
        address: &str,
        ttl: Duration,
    ) -> Result<Candidate, ClusterError> {
        if ttl < Duration::from_secs(1) || node.contains('\n') || address.contains('\n') {
            return Err(ClusterError::Invalid("a lease of at least 1 s, and names on one line".into()));
        }
        Ok(Candidate { client, keys, node: node.to_owned(), address: address.to_owned(), ttl })
    }

    /// Who leads now, if anyone.
    pub async fn leader(&mut self) -> Result<Option<Leader>, ClusterError> {
        let response = self.client.get(self.keys.leader(), None).await?;
        Ok(response.kvs().first().and_then(|kv| Leader::parse(kv.value(), kv.create_revision())))
    }

    /// Returns once this node leads: after putting the leader key, or after
    /// waiting for the one who held it to go.
    pub async fn campaign(&mut self) -> Result<Leadership, ClusterError> {
        let ttl = i64::try_from(self.ttl.as_secs()).unwrap_or(i64::MAX);
        let lease = self.client.lease_grant(ttl, None).await?.id();
        let lost = keep_alive(self.client.clone(), lease, self.ttl).await?;
        let key = self.keys.leader();
        loop {
            if *lost.borrow() {
                return Err(ClusterError::LeaseLost);
            }
            let put_if_absent = Txn::new()
                .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
                .and_then([TxnOp::put(
                    key.clone(),
                    Leader::value(&self.node, &self.address),
                    Some(PutOptions::new().with_lease(lease)),
                )])
                .or_else([TxnOp::get(key.clone(), None)]);
            let response = self.client.txn(put_if_absent).await?;
            let revision = response.header().map_or(0, |h| h.revision());
            if response.succeeded() {
                // The key was created by this transaction: its
                // create-revision is the transaction's revision.
                debug!(node = %self.node, epoch = revision, "leading");
                return Ok(Leadership { client: self.client.clone(), epoch: revision, lease, lost });
            }
            let holder = Leader::found_in(&response);
            debug!(node = %self.node, leader = ?holder, "another node leads: waiting for it to go");
            self.wait_for_deletion(&key, revision + 1).await?;
        }
    }

    /// Waits until `key` is deleted, watching from `revision`.
    async fn wait_for_deletion(&mut self, key: &str, revision: i64) -> Result<(), ClusterError> {
        let options = WatchOptions::new().with_start_revision(revision);
        let (_watcher, mut stream) = self.client.watch(key, Some(options)).await?;
        while let Some(response) = stream.message().await? {
            if response.events().iter().any(|e| e.event_type() == EventType::Delete) {
                return Ok(());
            }
        }
        Err(ClusterError::Invalid("the watch of the leader key ended".into()))
    }
}

/// Keeps `lease` alive in the background, a third of the TTL apart; the
/// flag turns true once it is lost, and stays true: when etcd says the
/// lease has expired, or when no keep-alive was confirmed for a whole TTL
/// (etcd may then have let it expire). A keep-alive stream that breaks (its
/// etcd member died) is opened again, on another member.
async fn keep_alive(mut client: Client, lease: i64, ttl: Duration) -> Result<watch::Receiver<bool>, ClusterError> {
    let mut stream = Some(client.lease_keep_alive(lease).await?);
    let (lost_tx, lost_rx) = watch::channel(false);
    tokio::spawn(async move {
        let every = ttl / 3;
        let mut confirmed = tokio::time::Instant::now();
        loop {
            let attempt = async {
                let (keeper, responses) = match stream.as_mut() {
                    Some(open) => open,
                    None => stream.insert(client.lease_keep_alive(lease).await?),
                };
                keeper.keep_alive().await?;
                responses.message().await
            };
            match tokio::time::timeout(every, attempt).await {
                Ok(Ok(Some(response))) if response.ttl() > 0 => confirmed = tokio::time::Instant::now(),
                Ok(Ok(Some(_))) => {
                    warn!(lease, "lease lost: etcd says it expired");
                    let _ = lost_tx.send(true);
                    return;
                }
                outcome => {
                    debug!(lease, ?outcome, "lease keep-alive failed; opening the stream again");
                    stream = None;
                }
            }
            if confirmed.elapsed() >= ttl {
                warn!(lease, "lease lost: no keep-alive confirmed for a whole TTL");
                let _ = lost_tx.send(true);
                return;
            }
            if lost_tx.is_closed() {
                return; // the leadership was dropped
            }
            let next = if stream.is_some() { every } else { Duration::from_millis(20) };
            tokio::time::sleep(next.min(ttl.saturating_sub(confirmed.elapsed()))).await;
        }
    });
    Ok(lost_rx)
}

/// This node leads, under `epoch`, for as long as its lease lives.
pub struct Leadership {
    client: Client,
    epoch: i64,
    lease: i64,
    lost: watch::Receiver<bool>,
}

impl Leadership {
    pub fn epoch(&self) -> i64 {
        self.epoch
    }

    /// Resolves once the lease is lost: from then on, this node's writes
    /// fail, and it must stop acting as the active.
    pub async fn lost(&mut self) {
        let _ = self.lost.wait_for(|&lost| lost).await;
    }

    pub fn is_lost(&self) -> bool {
        *self.lost.borrow()
    }

    /// Steps down at once (a planned handover): the lease is revoked, the
    /// leader key goes with it, and a waiting candidate takes over without
    /// waiting for the lease to run out.
    pub async fn resign(mut self) -> Result<(), ClusterError> {
        self.client.lease_revoke(self.lease).await?;
        Ok(())
    }
}
