//! The key layout in etcd.
//!
//! ```text
//! /ccr/<cluster>/<partition>/leader                 the active node (under its lease)
//! /ccr/<cluster>/<partition>/journal/<first record, 20 digits> one group-commit batch of records
//! /ccr/<cluster>/<partition>/members/<node>          the newest snapshot of each node
//! /ccr/<cluster>/<partition>/bootstrap/<node>        a node that needs a snapshot
//! /ccr/<cluster>/<partition>/snapshot/<seq>          a snapshot offered to it: its size
//! /ccr/<cluster>/<partition>/snapshot/<seq>/<chunk>  and its bytes, in chunks
//! ```

/// The keys of one partition of one cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    /// Names are ASCII letters, digits, `-` and `_`: they become path
    /// segments of keys.
    pub fn new(cluster: &str, partition: &str) -> Result<Keys, crate::ClusterError> {
        for (what, name) in [("cluster", cluster), ("partition", partition)] {
            let ok = !name.is_empty()
                && name.len() <= 64
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !ok {
                return Err(crate::ClusterError::Invalid(format!(
                    "{what} name {name:?}: 1 to 64 ASCII letters, digits, '-' or '_'"
                )));
            }
        }
        Ok(Keys { prefix: format!("/ccr/{cluster}/{partition}/") })
    }

    pub fn leader(&self) -> String {
        format!("{}leader", self.prefix)
    }

    /// The prefix of every journal key; they sort by sequence number.
    pub fn journal(&self) -> String {
        format!("{}journal/", self.prefix)
    }

    pub fn journal_entry(&self, first: u64) -> String {
        format!("{}journal/{first:020}", self.prefix)
    }

    /// The end (exclusive) of the journal's key range.
    pub fn journal_end(&self) -> String {
        Keys::range_end(&self.journal())
    }

    /// Where `node` says how far its newest snapshot goes.
    pub fn member(&self, node: &str) -> String {
        format!("{}members/{node}", self.prefix)
    }

    pub fn members(&self) -> String {
        format!("{}members/", self.prefix)
    }

    pub fn bootstrap(&self) -> String {
        format!("{}bootstrap/", self.prefix)
    }

    pub fn bootstrap_request(&self, node: &str) -> String {
        format!("{}bootstrap/{node}", self.prefix)
    }

    pub fn snapshots(&self) -> String {
        format!("{}snapshot/", self.prefix)
    }

    /// The end (exclusive) of a range that starts with `prefix`.
    pub fn range_end(prefix: &str) -> String {
        let mut end = prefix.as_bytes().to_vec();
        if let Some(last) = end.last_mut() {
            *last += 1; // prefixes end in '/', which has a successor
        }
        String::from_utf8(end).expect("ASCII")
    }

    pub fn snapshot_manifest(&self, seq: u64) -> String {
        format!("{}snapshot/{seq:020}", self.prefix)
    }

    pub fn snapshot_chunk(&self, seq: u64, chunk: u32) -> String {
        format!("{}snapshot/{seq:020}/{chunk:08}", self.prefix)
    }

    /// The first record's number in a journal key of this partition.
    pub fn journal_batch(&self, key: &[u8]) -> Option<u64> {
        std::str::from_utf8(key).ok()?.strip_prefix(&self.journal())?.parse().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_keys_sort_by_sequence_and_parse_back() {
        let keys = Keys::new("centre-1", "main").unwrap();
        assert_eq!(keys.leader(), "/ccr/centre-1/main/leader");
        let (a, b) = (keys.journal_entry(9), keys.journal_entry(10));
        assert!(a < b, "{a} sorts before {b}");
        assert_eq!(keys.journal_batch(b.as_bytes()), Some(10));
        assert_eq!(keys.journal_batch(b"/ccr/other/main/journal/00000000000000000010"), None);
    }

    #[test]
    fn names_that_would_change_the_key_layout_are_refused() {
        for (cluster, partition) in [("", "p"), ("a/b", "p"), ("c", "x y"), ("c", "..")] {
            assert!(Keys::new(cluster, partition).is_err(), "{cluster:?} {partition:?}");
        }
    }
}
