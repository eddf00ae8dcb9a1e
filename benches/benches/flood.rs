//! Hash flooding: contact ids chosen to collide under a known hash (FxHash,
//! which keyed the core's id tables before they were keyed with a secret)
//! against random ids.
//!
//! - `flood/fx_table/{random,crafted}`: inserting 10,000 ids into a plain
//!   FxHashMap — the attack works there: every crafted id lands on the same
//!   bucket and tag, and each insert walks all those before it.
//! - `flood/enqueue_abandon/{random,crafted}`: with 30,000 contacts of those
//!   ids waiting in the router, one `Enqueue` of another such id and its
//!   `Abandon`: the core's own tables, under their keyed hash, cost the
//!   same whatever the ids.
//!
//! `cargo bench -p ccr-benches --bench flood`

use std::hash::BuildHasher;
use std::time::Duration;

use ccr_benches::{config, Generator, Shape};
use ccr_core::{Command, ContactId, Router, Time};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use rustc_hash::{FxBuildHasher, FxHashMap};

ccr_benches::use_ccrd_allocator!();

const WAITING: usize = 30_000;
/// Ids in the FxHashMap control: quadratic when crafted, so fewer.
const CONTROL: usize = 10_000;

/// `rustc-hash` 2's multiplier; its hash of a `u64` is `(x * K).rotate_left(26)`.
const K: u64 = 0xf135_7aea_2e62_a9c5;

/// The inverse of an odd number modulo 2^64 (Newton's iteration).
fn inverse(k: u64) -> u64 {
    let mut x = k;
    for _ in 0..6 {
        x = x.wrapping_mul(2u64.wrapping_sub(k.wrapping_mul(x)));
    }
    x
}

/// Ids whose FxHash shares the low 24 bits (the bucket of any table up to
/// 16 million places), the top 7 (hashbrown's tag) and the shard the core's
/// id tables used: one probe sequence for all of them.
fn crafted(n: usize) -> Vec<u64> {
    let k_inv = inverse(K);
    let shard = |h: u64| h.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 60;
    let (low, top) = (0x00ab_cdef_u64, 0x55u64 << 57);
    let mut ids = Vec::with_capacity(n);
    let mut middle = 1u64;
    while ids.len() < n {
        let h = top | (middle << 24) | low;
        middle += 1;
        if shard(h) != 0 {
            continue;
        }
        let id = h.rotate_right(26).wrapping_mul(k_inv);
        debug_assert_eq!(FxBuildHasher.hash_one(id), h);
        if (1..1 << 63).contains(&id) {
            ids.push(id);
        }
    }
    ids
}

fn random(n: usize) -> Vec<u64> {
    let mut rng = ccr_benches::Rng::new(11);
    (0..n).map(|_| rng.next_u64() >> 1 | 1).collect()
}

/// A router with `WAITING` contacts of `ids` waiting (nobody logged in), and
/// the specs to enqueue and abandon one more, again and again.
struct Flooded {
    router: Router,
    generator: Generator,
    spare: Vec<u64>,
    now: Time,
}

impl Flooded {
    fn new(ids: &[u64]) -> Flooded {
        let mut router = Router::new(config(Shape::LARGE)).unwrap();
        let mut generator = Generator::new(Shape::LARGE, 3);
        for _ in 0..1000 {
            generator.agent();
        }
        let now = Time::from_secs(1_000_000);
        for &id in &ids[..WAITING] {
            let mut spec = generator.contact();
            spec.id = ContactId(id);
            router.handle(now, Command::Enqueue(spec)).unwrap();
        }
        while router.poll_event().is_some() {}
        Flooded { router, generator, spare: ids[WAITING..].to_vec(), now }
    }

    fn enqueue_abandon(&mut self, i: usize) {
        let id = ContactId(self.spare[i % self.spare.len()]);
        let mut spec = self.generator.contact();
        spec.id = id;
        self.router.handle(self.now, Command::Enqueue(spec)).unwrap();
        self.router.handle(self.now, Command::Abandon { contact: id }).unwrap();
        while self.router.poll_event().is_some() {}
    }
}

fn flood(c: &mut Criterion) {
    let ids = [("random", random(WAITING + 1000)), ("crafted", crafted(WAITING + 1000))];
    let mut group = c.benchmark_group("flood");
    for (name, ids) in &ids {
        group.bench_with_input(BenchmarkId::new("fx_table", name), ids, |b, ids| {
            b.iter(|| {
                let mut table = FxHashMap::default();
                for (slot, &id) in ids[..CONTROL].iter().enumerate() {
                    table.insert(id, slot as u32);
                }
                table
            })
        });
    }
    for (name, ids) in &ids {
        let mut flooded = Flooded::new(ids);
        let mut i = 0;
        group.bench_function(BenchmarkId::new("enqueue_abandon", name), |b| {
            b.iter(|| {
                flooded.enqueue_abandon(i);
                i += 1;
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(3));
    targets = flood
}
criterion_main!(benches);
