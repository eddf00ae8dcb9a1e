//! Election and fencing against a real etcd: three members on loopback,
//! started by the test (`etcd` from Debian's `etcd-server`, installed by
//! `scripts/install-etcd.sh`), stopped by process id when it ends.

use std::time::Duration;

use ccr_cluster::journal::{self, Appender, Follower};
use ccr_cluster::local_etcd::Etcd;
use ccr_cluster::{Candidate, ClusterError, Keys};

const TTL: Duration = Duration::from_secs(1);

/// Node `name` of the test partition, reached at a made-up address.
async fn candidate(etcd: &Etcd, keys: &Keys, name: &str) -> Candidate {
    let address = format!("127.0.0.1:{}", 7000 + u16::from(name.as_bytes()[0] - b'a' + 1));
    Candidate::new(etcd.client().await.unwrap(), keys.clone(), name, &address, TTL).unwrap()
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
    let etcd = Etcd::start().expect("etcd starts");
    let keys = Keys::new("test", "main").unwrap();
    let mut a = candidate(&etcd, &keys, "a").await;
    let mut b = candidate(&etcd, &keys, "b").await;
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
    let etcd = Etcd::start().expect("etcd starts");
    let keys = Keys::new("test", "main").unwrap();
    let mut client = etcd.client().await.unwrap();
    let mut a = candidate(&etcd, &keys, "a").await;
    let mut b = candidate(&etcd, &keys, "b").await;
    let a_leads = a.campaign().await.unwrap();
    let a_epoch = a_leads.epoch();
    journal::append(&mut client, &keys, a_epoch, 1, b"a:1".to_vec()).await.unwrap();
    // The same batch twice is refused, even under the right epoch.
    let again = journal::append(&mut client, &keys, a_epoch, 1, b"a:1 again".to_vec()).await;
    assert!(matches!(again, Err(ClusterError::Invalid(_))), "{again:?}");
    // a's lease goes (as when it is paused or cut off past its TTL); b leads.
    revoke_the_leaders_lease(&etcd).await;
    let b_leads = tokio::time::timeout(Duration::from_secs(5), b.campaign()).await.unwrap().unwrap();
    // a, still believing it leads, tries to write: fenced off, naming b.
    match journal::append(&mut client, &keys, a_epoch, 2, b"a:2".to_vec()).await {
        Err(ClusterError::Fenced { epoch, current: Some(current) }) => {
            assert_eq!((epoch, current.node.as_str(), current.epoch), (a_epoch, "b", b_leads.epoch()));
        }
        other => panic!("a's append after losing its lease: {other:?}"),
    }
    journal::append(&mut client, &keys, b_leads.epoch(), 2, b"b:2".to_vec()).await.unwrap();
    let written = journal::read_from(&mut client, &keys, 1).await.unwrap();
    let written: Vec<(u64, Vec<u8>)> = written.into_iter().map(|(seq, bytes, _)| (seq, bytes)).collect();
    assert_eq!(written, vec![(1, b"a:1".to_vec()), (2, b"b:2".to_vec())]);
    // a learns it lost its lease from its keep-alive.
    let mut a_leads = a_leads;
    tokio::time::timeout(Duration::from_secs(5), a_leads.lost()).await.expect("a learns its lease is gone");
}

/// Batches written eight at a time come back durable in the order given,
/// and the journal holds them all, numbered one after another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_appends_are_reported_in_order() {
    let etcd = Etcd::start().expect("etcd starts");
    let keys = Keys::new("test", "main").unwrap();
    let mut a = candidate(&etcd, &keys, "a").await;
    let leads = a.campaign().await.unwrap();
    let mut client = etcd.client().await.unwrap();
    let next = journal::settle(&mut client, &keys, leads.epoch(), 0).await.unwrap();
    let mut appender = Appender::new(etcd.client().await.unwrap(), keys.clone(), leads.epoch(), next, 8);
    let mut durable = Vec::new();
    for n in 0..200u64 {
        if let Some(done) = appender.push(format!("batch {n}").into_bytes()).await {
            durable.push(done.unwrap());
        }
    }
    while let Some(done) = appender.next().await {
        durable.push(done.unwrap());
    }
    assert_eq!(durable, (0..200).collect::<Vec<u64>>(), "reported in the order given");
    let written = journal::read_from(&mut client, &keys, 0).await.unwrap();
    let expected: Vec<(u64, Vec<u8>)> = (0..200).map(|n| (n, format!("batch {n}").into_bytes())).collect();
    assert_eq!(written.into_iter().map(|(n, bytes, _)| (n, bytes)).collect::<Vec<_>>(), expected);
}

/// A former leader's batches after a gap (one reached etcd before the one
/// it follows, and then the fence fell between them) are deleted by the
/// next leader before it writes; the former leader can fill nothing in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_leader_settles_the_journal_to_its_unbroken_run() {
    let etcd = Etcd::start().expect("etcd starts");
    let keys = Keys::new("test", "main").unwrap();
    let mut a = candidate(&etcd, &keys, "a").await;
    let mut b = candidate(&etcd, &keys, "b").await;
    let a_epoch = a.campaign().await.unwrap().epoch();
    let mut client = etcd.client().await.unwrap();
    for batch in [0, 1, 3, 4] {
        journal::append(&mut client, &keys, a_epoch, batch, vec![batch as u8]).await.unwrap();
    }
    revoke_the_leaders_lease(&etcd).await;
    let b_epoch = tokio::time::timeout(Duration::from_secs(5), b.campaign()).await.unwrap().unwrap().epoch();
    // A former leader cannot settle either.
    assert!(matches!(journal::settle(&mut client, &keys, a_epoch, 0).await, Err(ClusterError::Fenced { .. })));
    assert_eq!(journal::settle(&mut client, &keys, b_epoch, 0).await.unwrap(), 2);
    let batches = |w: Vec<(u64, Vec<u8>, i64)>| w.into_iter().map(|(n, _, _)| n).collect::<Vec<u64>>();
    assert_eq!(batches(journal::read_from(&mut client, &keys, 0).await.unwrap()), vec![0, 1]);
    let late = journal::append(&mut client, &keys, a_epoch, 2, b"a, late".to_vec()).await;
    assert!(matches!(late, Err(ClusterError::Fenced { .. })), "{late:?}");
    journal::append(&mut client, &keys, b_epoch, 2, b"b".to_vec()).await.unwrap();
    assert_eq!(batches(journal::read_from(&mut client, &keys, 0).await.unwrap()), vec![0, 1, 2]);
}

/// The leader's lease goes while batches are in flight: what is reported
/// durable is a run from the first, nothing is reported after the first
/// failure, and once the next leader has settled the journal it holds
/// exactly what was reported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fence_in_the_middle_of_a_pipeline_leaves_what_was_reported() {
    let etcd = Etcd::start().expect("etcd starts");
    let keys = Keys::new("test", "main").unwrap();
    let mut a = candidate(&etcd, &keys, "a").await;
    let mut b = candidate(&etcd, &keys, "b").await;
    let leads = a.campaign().await.unwrap();
    let mut appender = Appender::new(etcd.client().await.unwrap(), keys.clone(), leads.epoch(), 0, 8);
    let (mut durable, mut failures) = (Vec::new(), 0);
    for n in 0..300u64 {
        if n == 100 {
            revoke_the_leaders_lease(&etcd).await;
        }
        match appender.push(vec![n as u8]).await {
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
    // Batches 0 to 99 were given before the fence, the rest after.
    assert!(!durable.is_empty() && durable.len() <= 100, "{} durable before the fence", durable.len());
    assert_eq!(durable, (0..durable.len() as u64).collect::<Vec<_>>(), "a run from the first, in order");
    let b_epoch = tokio::time::timeout(Duration::from_secs(5), b.campaign()).await.unwrap().unwrap().epoch();
    let mut client = etcd.client().await.unwrap();
    let next = journal::settle(&mut client, &keys, b_epoch, 0).await.unwrap();
    let written: Vec<u64> = journal::read_from(&mut client, &keys, 0).await.unwrap().iter().map(|w| w.0).collect();
    assert_eq!((next, written), (durable.len() as u64, durable), "the journal holds exactly what was reported");
}

/// A standby following the journal gets each batch once, in order, both
/// those written before it started and those after; a batch a fenced
/// leader left after a gap never reaches it, and the new leader's batch
/// in that place does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_replays_only_the_unbroken_run_in_order() {
    let etcd = Etcd::start().expect("etcd starts");
    let keys = Keys::new("test", "main").unwrap();
    let mut a = candidate(&etcd, &keys, "a").await;
    let mut b = candidate(&etcd, &keys, "b").await;
    let a_epoch = a.campaign().await.unwrap().epoch();
    let mut client = etcd.client().await.unwrap();
    for batch in 0..3 {
        journal::append(&mut client, &keys, a_epoch, batch, format!("a{batch}").into_bytes()).await.unwrap();
    }
    let mut follower = Follower::start(&mut etcd.client().await.unwrap(), &keys, 1).await.unwrap();
    // a writes 3, and 5 after a gap; then a is fenced off.
    journal::append(&mut client, &keys, a_epoch, 3, b"a3".to_vec()).await.unwrap();
    journal::append(&mut client, &keys, a_epoch, 5, b"a5, after a gap".to_vec()).await.unwrap();
    revoke_the_leaders_lease(&etcd).await;
    let b_epoch = tokio::time::timeout(Duration::from_secs(5), b.campaign()).await.unwrap().unwrap().epoch();
    assert_eq!(journal::settle(&mut client, &keys, b_epoch, 0).await.unwrap(), 4);
    for batch in 4..7 {
        journal::append(&mut client, &keys, b_epoch, batch, format!("b{batch}").into_bytes()).await.unwrap();
    }
    let mut seen = Vec::new();
    for _ in 0..6 {
        let (batch, bytes) = tokio::time::timeout(Duration::from_secs(5), follower.next()).await.unwrap().unwrap();
        seen.push((batch, String::from_utf8(bytes).unwrap()));
    }
    let expected: Vec<(u64, String)> =
        [(1, "a1"), (2, "a2"), (3, "a3"), (4, "b4"), (5, "b5"), (6, "b6")].map(|(n, s)| (n, s.to_owned())).to_vec();
    assert_eq!(seen, expected);
}
