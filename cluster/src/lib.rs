//! `ccr-cluster`: ccr on etcd — which node is the active router, and the
//! journal writes that only the active can make.
//!
//! Each node campaigns for one leader key under a lease of its own
//! ([`election`]). The winner's *epoch* is the key's create-revision: it
//! changes with every new leader and only grows. Every journal append is a
//! transaction that succeeds only while the leader key still has that
//! create-revision ([`journal::append`]), so a former active — paused,
//! partitioned, slow — can write nothing once its lease is gone: etcd's
//! locks alone are not safe (Jepsen, etcd 3.4), the fence in every write is.
//!
//! Keys live under `/ccr/<cluster>/<partition>/` ([`Keys`]): one leader key
//! and one journal per partition, so that a process can later be active for
//! some partitions and standby for others.

pub mod bootstrap;
pub mod election;
pub mod journal;
mod keys;
pub mod local_etcd;
pub mod members;

pub use election::{Candidate, Leader, Leadership};
pub use keys::Keys;

/// What can go wrong talking to etcd, or when a write is fenced off.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("etcd: {0}")]
    Etcd(#[from] etcd_client::Error),
    /// The leader key no longer has this node's epoch: another node leads
    /// (or none does), and this node must not write.
    #[error("fenced off: epoch {epoch} no longer leads (leader now: {current:?})")]
    Fenced { epoch: i64, current: Option<Leader> },
    /// The journal no longer holds the records this node needs next: they
    /// were pruned once every other member's snapshot covered them.
    #[error("the journal starts at record {first_held}, after record {next} that this node needs next: it must start from a newer snapshot")]
    Behind { next: u64, first_held: u64 },
    /// A journal batch starting at this record is there already.
    #[error("a journal batch at record {first} was already written")]
    AlreadyWritten { first: u64 },
    #[error("etcd did not answer within {0:?}")]
    Timeout(std::time::Duration),
    #[error("the lease was lost (not kept alive in time, or revoked)")]
    LeaseLost,
    #[error("{0}")]
    Invalid(String),
}
