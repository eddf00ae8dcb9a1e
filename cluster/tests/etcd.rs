//! Election and fencing against a real etcd: three members on loopback,
//! started by the test (`etcd` from Debian's `etcd-server`, installed by
//! `scripts/install-etcd.sh`), stopped by process id when it ends.

use std::time::Duration;

use ccr_cluster::journal::{self, Appender, Batch, Follower};
use ccr_cluster::local_etcd::Etcd;
use ccr_cluster::{Candidate, ClusterError, Keys};

const TTL: Duration = Duration::from_secs(1);

/// A batch of one record, numbered `first`.
fn one(first: u64, bytes: impl Into<Vec<u8>>) -> Batch {
    Batch { first, records: 1, bytes: bytes.into() }
}

/// The first record of each batch written from `from` on.
async fn firsts(client: &mut etcd_client::Client, keys: &Keys, from: u64) -> Vec<u64> {
    journal::read_from(client, keys, from).await.unwrap().iter().map(|b| b.first).collect()
}

/// Node `name` of the test partition, reached at a made-up address.
async fn candidate(etcd: &Etcd, keys: &Keys, name: &str) -> Candidate {
    let address = format!("127.0.0.1:{}", 7000 + u16::from(name.as_bytes()[0] - b'a' + 1));
    Candidate::new(etcd.client().await.unwrap(), keys.clone(), name, &address, TTL).unwrap()
}

/// Three etcd members, the test partition's keys, and candidates a and b.
async fn two_candidates() -> (Etcd, Keys, Candidate, Candidate) {
    let etcd = Etcd::start().expect("etcd starts");
    let keys = Keys::new("test", "main").unwrap();
    let a = candidate(&etcd, &keys, "a").await;
    let b = candidate(&etcd, &keys, "b").await;
    (etcd, keys, a, b)
}

/// Ends the leader's lease at once, as a pause or a cut-off past its TTL
/// would: the only lease granted is the leader's.
async fn revoke_the_leaders_lease(etcd: &Etcd) {
    let mut admin = etcd.client().await.unwrap();
    let leases = admin.leases().await.unwrap();
    assert_eq!(leases.leases().len(), 1, "only the leader holds a lease");
    admin.lease_revoke(leases.leases()[0].id()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_node_leads_and_another_takes_over_when_it_resigns() {
    let (_etcd, _keys, mut a, mut b) = two_candidates().await;
    let first = a.campaign().await.unwrap();
    let leader = b.leader().await.unwrap().expect("a leads");
    assert_eq!((leader.node.as_str(), leader.address.as_str(), leader.epoch), ("a", "127.0.0.1:7001", first.epoch()));
    // b waits while a leads.
    let waiting = tokio::spawn(async move { (b.campaign().await, b) });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiting.is_finished(), "b must not lead while a does");
    first.resign().await.unwrap();
    let (second, mut b) = tokio::time::timeout(Duration::from_secs(5), waiting).await.unwrap().unwrap();
    let second = second.unwrap();
    assert!(second.epoch() > 0 && second.epoch() != leader.epoch, "a new epoch: {}", second.epoch());
    assert_eq!(b.leader().await.unwrap().map(|l| l.node), Some("b".to_owned()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_former_leader_can_append_nothing_once_its_lease_is_gone() {
    let (etcd, keys, mut a, mut b) = two_candidates().await;
    let mut client = etcd.client().await.unwrap();
    let a_leads = a.campaign().await.unwrap();
    let a_epoch = a_leads.epoch();
    journal::append(&mut client, &keys, a_epoch, &one(1, "a:1")).await.unwrap();
    // The same batch twice is refused, even under the right epoch.
    let again = journal::append(&mut client, &keys, a_epoch, &one(1, "a:1 again")).await;
    assert!(matches!(again, Err(ClusterError::AlreadyWritten { first: 1 })), "{again:?}");
    // a's lease goes (as when it is paused or cut off past its TTL); b leads.
    revoke_the_leaders_lease(&etcd).await;
    let b_leads = tokio::time::timeout(Duration::from_secs(5), b.campaign()).await.unwrap().unwrap();
    // a, still believing it leads, tries to write: fenced off, naming b.
    match journal::append(&mut client, &keys, a_epoch, &one(2, "a:2")).await {
        Err(ClusterError::Fenced { epoch, current: Some(current) }) => {
            assert_eq!((epoch, current.node.as_str(), current.epoch), (a_epoch, "b", b_leads.epoch()));
        }
        other => panic!("a's append after losing its lease: {other:?}"),
    }
    journal::append(&mut client, &keys, b_leads.epoch(), &one(2, "b:2")).await.unwrap();
    let written = journal::read_from(&mut client, &keys, 1).await.unwrap();
    assert_eq!(written, vec![one(1, "a:1"), one(2, "b:2")]);
    // a learns it lost its lease from its keep-alive.
    let mut a_leads = a_leads;
    tokio::time::timeout(Duration::from_secs(5), a_leads.lost()).await.expect("a learns its lease is gone");
}

/// Batches written eight at a time come back durable in the order given,
/// and the journal holds them all, each starting where the one before ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_appends_are_reported_in_order() {
    let etcd = Etcd::start().expect("etcd starts");
    let keys = Keys::new("test", "main").unwrap();
    let mut a = candidate(&etcd, &keys, "a").await;
    let leads = a.campaign().await.unwrap();
    let mut client = etcd.client().await.unwrap();
    let next = journal::settle(&mut client, &keys, leads.epoch(), 1).await.unwrap().next;
    assert_eq!(next, 1, "an empty journal");
    let mut appender = Appender::new(etcd.client().await.unwrap(), keys.clone(), leads.epoch(), next, 8);
    let mut durable = Vec::new();
    // Batch n holds n % 3 + 1 records.
    let sizes: Vec<u64> = (0..200).map(|n| n % 3 + 1).collect();
    for (n, &records) in sizes.iter().enumerate() {
        if let Some(done) = appender.push(records, format!("batch {n}").into_bytes()).await {
            durable.push(done.unwrap());
        }
    }
    while let Some(done) = appender.next().await {
        durable.push(done.unwrap());
    }
    let expected_firsts: Vec<u64> =
        sizes.iter().scan(1, |first, n| Some(std::mem::replace(first, *first + n))).collect();
    assert_eq!(durable, expected_firsts, "reported in the order given");
    let written = journal::read_from(&mut client, &keys, 0).await.unwrap();
    let expected: Vec<Batch> = (0..200)
        .map(|n| Batch { first: expected_firsts[n], records: sizes[n], bytes: format!("batch {n}").into_bytes() })
        .collect();
    assert_eq!(written, expected);
}

/// A former leader's batches after a gap (one reached etcd before the one
/// it follows, and then the fence fell between them) are deleted by the
/// next leader before it writes; the former leader can fill nothing in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_leader_settles_the_journal_to_its_unbroken_run() {
    let (etcd, keys, mut a, mut b) = two_candidates().await;
    let a_epoch = a.campaign().await.unwrap().epoch();
    let mut client = etcd.client().await.unwrap();
    for first in [1, 2, 4, 5] {
        journal::append(&mut client, &keys, a_epoch, &one(first, vec![first as u8])).await.unwrap();
    }
    revoke_the_leaders_lease(&etcd).await;
    let b_epoch = tokio::time::timeout(Duration::from_secs(5), b.campaign()).await.unwrap().unwrap().epoch();
    // A former leader cannot settle either.
    assert!(matches!(journal::settle(&mut client, &keys, a_epoch, 1).await, Err(ClusterError::Fenced { .. })));
    let settled = journal::settle(&mut client, &keys, b_epoch, 1).await.unwrap();
    assert_eq!(settled.next, 3);
    assert_eq!(settled.batches, vec![one(1, [1]), one(2, [2])], "the unbroken run, for the new leader to apply");
    assert_eq!(firsts(&mut client, &keys, 0).await, vec![1, 2]);
    let late = journal::append(&mut client, &keys, a_epoch, &one(3, "a, late")).await;
    assert!(matches!(late, Err(ClusterError::Fenced { .. })), "{late:?}");
    journal::append(&mut client, &keys, b_epoch, &one(3, "b")).await.unwrap();
    assert_eq!(firsts(&mut client, &keys, 0).await, vec![1, 2, 3]);
    // Pruning what a snapshot after record 2 covers, under the leader's epoch only.
    assert!(matches!(journal::prune(&mut client, &keys, a_epoch, 2).await, Err(ClusterError::Fenced { .. })));
    journal::prune(&mut client, &keys, b_epoch, 2).await.unwrap();
    assert_eq!(firsts(&mut client, &keys, 0).await, vec![3]);
    assert_eq!(journal::first_held(&mut client, &keys).await.unwrap(), Some(3));
    // A node that needs record 2 can no longer follow.
    let behind = Follower::start(&mut client, &keys, 2).await;
    assert!(matches!(behind, Err(ClusterError::Behind { next: 2, first_held: 3 })), "{:?}", behind.err());
}

/// The leader's lease goes while batches are in flight: what is reported
/// durable is a run from the first, nothing is reported after the first
/// failure, and once the next leader has settled the journal it holds
/// exactly what was reported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fence_in_the_middle_of_a_pipeline_leaves_what_was_reported() {
    let (etcd, keys, mut a, mut b) = two_candidates().await;
    let leads = a.campaign().await.unwrap();
    let mut appender = Appender::new(etcd.client().await.unwrap(), keys.clone(), leads.epoch(), 1, 8);
    let (mut durable, mut failures) = (Vec::new(), 0);
    for n in 0..300u64 {
        if n == 100 {
            revoke_the_leaders_lease(&etcd).await;
        }
        match appender.push(1, vec![n as u8]).await {
            Some(Ok(batch)) => durable.push(batch),
            Some(Err(ClusterError::Fenced { .. })) => failures += 1,
            Some(Err(other)) => panic!("{other}"),
            None => {}
        }
    }
    while let Some(done) = appender.next().await {
        match done {
            Ok(batch) => durable.push(batch),
            Err(_) => failures += 1,
        }
    }
    assert_eq!(failures, 1, "one failure reported, nothing after it");
    // Batches 1 to 100 were given before the fence, the rest after.
    assert!(!durable.is_empty() && durable.len() <= 100, "{} durable before the fence", durable.len());
    assert_eq!(durable, (1..=durable.len() as u64).collect::<Vec<_>>(), "a run from the first, in order");
    let b_epoch = tokio::time::timeout(Duration::from_secs(5), b.campaign()).await.unwrap().unwrap().epoch();
    let mut client = etcd.client().await.unwrap();
    let next = journal::settle(&mut client, &keys, b_epoch, 1).await.unwrap().next;
    let written = firsts(&mut client, &keys, 0).await;
    assert_eq!((next, written), (durable.len() as u64 + 1, durable), "the journal holds exactly what was reported");
}

/// A standby following the journal gets each batch once, in order, both
/// those written before it started and those after; a batch a fenced
/// leader left after a gap never reaches it, and the new leader's batch
/// in that place does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_replays_only_the_unbroken_run_in_order() {
    let (etcd, keys, mut a, mut b) = two_candidates().await;
    let a_epoch = a.campaign().await.unwrap().epoch();
    let mut client = etcd.client().await.unwrap();
    for first in 1..4 {
        journal::append(&mut client, &keys, a_epoch, &one(first, format!("a{first}"))).await.unwrap();
    }
    let mut follower = Follower::start(&mut etcd.client().await.unwrap(), &keys, 2).await.unwrap();
    // a writes 4, and 6 after a gap; then a is fenced off.
    journal::append(&mut client, &keys, a_epoch, &one(4, "a4")).await.unwrap();
    journal::append(&mut client, &keys, a_epoch, &one(6, "a6, after a gap")).await.unwrap();
    revoke_the_leaders_lease(&etcd).await;
    let b_epoch = tokio::time::timeout(Duration::from_secs(5), b.campaign()).await.unwrap().unwrap().epoch();
    assert_eq!(journal::settle(&mut client, &keys, b_epoch, 1).await.unwrap().next, 5);
    // b writes two records at 5, then 7.
    journal::append(&mut client, &keys, b_epoch, &Batch { first: 5, records: 2, bytes: b"b5-6".to_vec() })
        .await
        .unwrap();
    journal::append(&mut client, &keys, b_epoch, &one(7, "b7")).await.unwrap();
    let mut seen = Vec::new();
    for _ in 0..5 {
        let batch = tokio::time::timeout(Duration::from_secs(5), follower.next()).await.unwrap().unwrap();
        seen.push((batch.first, String::from_utf8(batch.bytes).unwrap()));
    }
    let expected: Vec<(u64, String)> =
        [(2, "a2"), (3, "a3"), (4, "a4"), (5, "b5-6"), (7, "b7")].map(|(n, s)| (n, s.to_owned())).to_vec();
    assert_eq!(seen, expected);
}
