//! Snapshots handed over through etcd, for a node that cannot follow the
//! journal because it was pruned past what the node holds (a new node, or
//! one away for longer than the retention).
//!
//! The node asks (`bootstrap/<node>`); the active answers with its newest
//! snapshot file, in chunks under etcd's request size (`snapshot/<seq>/…`),
//! then a manifest (`snapshot/<seq>`, the file's length), written last so
//! that a manifest means the chunks are all there. The node copies it,
//! checks it (the file carries its own checksum), withdraws its request;
//! the active deletes the snapshot once no request is left. A snapshot is
//! a state after a record, valid whoever hands it over; the journal after
//! it is in etcd (what every node's snapshot covers is all that is pruned).

use etcd_client::{Client, DeleteOptions, GetOptions};

use crate::{ClusterError, Keys};

/// Chunks of 1 MiB: under etcd's default request limit (1.5 MiB).
pub const CHUNK: usize = 1 << 20;

/// Asks for a snapshot for `node`.
pub async fn request(client: &mut Client, keys: &Keys, node: &str) -> Result<(), ClusterError> {
    client.put(keys.bootstrap_request(node), "", None).await?;
    Ok(())
}

/// Withdraws `node`'s request.
pub async fn withdraw(client: &mut Client, keys: &Keys, node: &str) -> Result<(), ClusterError> {
    client.delete(keys.bootstrap_request(node), None).await?;
    Ok(())
}

/// Whether any node asks for a snapshot.
pub async fn requested(client: &mut Client, keys: &Keys) -> Result<bool, ClusterError> {
    let range = GetOptions::new().with_range(Keys::range_end(&keys.bootstrap())).with_count_only();
    Ok(client.get(keys.bootstrap(), Some(range)).await?.count() > 0)
}

/// Offers the snapshot after record `seq` (the bytes of its file),
/// replacing any offered before.
pub async fn offer(client: &mut Client, keys: &Keys, seq: u64, file: &[u8]) -> Result<(), ClusterError> {
    clear(client, keys).await?;
    for (n, chunk) in file.chunks(CHUNK).enumerate() {
        let n = u32::try_from(n).map_err(|_| ClusterError::Invalid("a snapshot of over 4 PiB".into()))?;
        client.put(keys.snapshot_chunk(seq, n), chunk, None).await?;
    }
    client.put(keys.snapshot_manifest(seq), file.len().to_string(), None).await?;
    Ok(())
}

/// Deletes every snapshot offered.
pub async fn clear(client: &mut Client, keys: &Keys) -> Result<(), ClusterError> {
    let range = DeleteOptions::new().with_range(Keys::range_end(&keys.snapshots()));
    client.delete(keys.snapshots(), Some(range)).await?;
    Ok(())
}

/// The newest snapshot offered, if its manifest is there: (seq, the file's bytes).
pub async fn fetch(client: &mut Client, keys: &Keys) -> Result<Option<(u64, Vec<u8>)>, ClusterError> {
    let prefix = keys.snapshots();
    let range = GetOptions::new().with_range(Keys::range_end(&prefix)).with_keys_only();
    let listed = client.get(prefix.clone(), Some(range)).await?;
    // Manifests are the keys with no chunk number after the sequence.
    let newest =
        listed.kvs().iter().filter_map(|kv| kv.key_str().ok()?.strip_prefix(&prefix)?.parse::<u64>().ok()).max();
    let Some(seq) = newest else { return Ok(None) };
    let manifest = client.get(keys.snapshot_manifest(seq), None).await?;
    let Some(len) = manifest.kvs().first().and_then(|kv| kv.value_str().ok()?.parse::<usize>().ok()) else {
        return Ok(None);
    };
    let chunks = format!("{}/", keys.snapshot_manifest(seq));
    let range = GetOptions::new().with_range(Keys::range_end(&chunks));
    let got = client.get(chunks, Some(range)).await?;
    let mut file = Vec::with_capacity(len);
    for kv in got.kvs() {
        file.extend_from_slice(kv.value());
    }
    if file.len() != len {
        return Ok(None); // being replaced meanwhile: ask again
    }
    Ok(Some((seq, file)))
}
