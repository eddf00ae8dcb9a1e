//! How far each node's newest snapshot goes: what the journal in etcd must
//! still hold for it. A node that is away for longer than the retention is
//! not waited for (it starts again from a newer snapshot).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use etcd_client::{Client, GetOptions};

use crate::{ClusterError, Keys};

/// One node's newest snapshot, as it last said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotPosition {
    pub node: String,
    /// The last record the snapshot holds.
    pub seq: u64,
    /// When the node said so.
    pub at: SystemTime,
}

/// Says that `node`'s newest snapshot holds every record up to `seq`.
pub async fn publish(client: &mut Client, keys: &Keys, node: &str, seq: u64) -> Result<(), ClusterError> {
    let millis = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
    client.put(keys.member(node), format!("{seq} {millis}"), None).await?;
    Ok(())
}

/// Every node's newest snapshot (values that do not parse are skipped).
pub async fn positions(client: &mut Client, keys: &Keys) -> Result<Vec<SnapshotPosition>, ClusterError> {
    let range = GetOptions::new().with_range(Keys::range_end(&keys.members()));
    let response = client.get(keys.members(), Some(range)).await?;
    Ok(response
        .kvs()
        .iter()
        .filter_map(|kv| {
            let node = kv.key_str().ok()?.strip_prefix(&keys.members())?.to_owned();
            let (seq, millis) = kv.value_str().ok()?.split_once(' ')?;
            let at = UNIX_EPOCH + Duration::from_millis(millis.parse().ok()?);
            Some(SnapshotPosition { node, seq: seq.parse().ok()?, at })
        })
        .collect())
}

/// The last record the journal may drop: the oldest of the snapshots said
/// within `retention`, or `None` while no node has said one.
pub fn prunable(positions: &[SnapshotPosition], now: SystemTime, retention: Duration) -> Option<u64> {
    positions.iter().filter(|p| now.duration_since(p.at).map_or(true, |age| age <= retention)).map(|p| p.seq).min()
}

/// Forgets `node` (removed from the cluster: no longer waited for).
pub async fn remove(client: &mut Client, keys: &Keys, node: &str) -> Result<(), ClusterError> {
    client.delete(keys.member(node), None).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_journal_keeps_what_the_oldest_recent_snapshot_needs() {
        let now = UNIX_EPOCH + Duration::from_secs(10_000);
        let at = |node: &str, seq, ago| SnapshotPosition { node: node.into(), seq, at: now - Duration::from_secs(ago) };
        let hour = Duration::from_secs(3600);
        assert_eq!(prunable(&[], now, hour), None);
        assert_eq!(prunable(&[at("a", 900, 5), at("b", 400, 60)], now, hour), Some(400));
        // b has said nothing for longer than the retention: not waited for.
        assert_eq!(prunable(&[at("a", 900, 5), at("b", 400, 4000)], now, hour), Some(900));
    }
}
