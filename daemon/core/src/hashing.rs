//! The hash of every table in the core. Clients choose the keys of several
//! (contact and agent ids, skill and language sets); under a known hash they
//! could choose ids that all land on one probe sequence and make every
//! lookup walk it, for every client (hash flooding). So the hash is keyed
//! with a secret the driver gives once per process.
//!
//! The key changes only where entries sit: no decision depends on a
//! table's order, and what snapshots need of a table (the id tables, the
//! buckets by requirements) is rebuilt when one is read.

use std::hash::BuildHasher;
use std::sync::OnceLock;

use foldhash::fast::{FoldHasher, SeedableRandomState};
use foldhash::SharedSeed;

static SECRET: OnceLock<(u64, &'static SharedSeed)> = OnceLock::new();

/// Keys the hash of every table made from now on, for the rest of the
/// process; ccrd calls it at start with a random secret, before it makes a
/// router. Without it tables use a fixed key: simulations, tests and
/// benchmarks, where nobody attacks. Returns false (and changes nothing)
/// when the key was set already.
pub fn key_hash_tables(secret: [u64; 2]) -> bool {
    let mut set = false;
    SECRET.get_or_init(|| {
        set = true;
        // Once per process, for the life of the process.
        (secret[0], Box::leak(Box::new(SharedSeed::from_u64(secret[1]))))
    });
    set
}

/// The core's `BuildHasher`: foldhash under the process's key.
#[derive(Clone, Debug)]
pub struct Keyed(SeedableRandomState);

impl Default for Keyed {
    fn default() -> Self {
        match SECRET.get() {
            Some(&(seed, shared)) => Keyed(SeedableRandomState::with_seed(seed, shared)),
            None => Keyed(SeedableRandomState::fixed()),
        }
    }
}

impl BuildHasher for Keyed {
    type Hasher = FoldHasher<'static>;

    #[inline(always)]
    fn build_hasher(&self) -> Self::Hasher {
        self.0.build_hasher()
    }
}

/// A hash map under the process's key.
pub type KeyedMap<K, V> = std::collections::HashMap<K, V, Keyed>;
