//! Election and fencing against a real etcd: three members on loopback,
//! started by the test (`etcd` from Debian's `etcd-server`, installed by
//! `scripts/install-etcd.sh`), stopped by process id when it ends.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ccr_cluster::journal::{self, Appender};
use ccr_cluster::{Candidate, ClusterError, Keys};
use etcd_client::Client;

/// Three etcd members on loopback, killed and removed on drop.
struct Etcd {
    members: Vec<Child>,
    dir: PathBuf,
    clients: Vec<String>,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Etcd {
    fn start() -> Etcd {
        let dir = std::env::temp_dir().join(format!("ccr-etcd-{}-{}", std::process::id(), free_port()));
        let peers: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let clients: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let cluster: Vec<String> =
            peers.iter().enumerate().map(|(i, p)| format!("m{i}=http://127.0.0.1:{p}")).collect();
        let members = (0..3)
            .map(|i| {
                let (peer, client) =
                    (format!("http://127.0.0.1:{}", peers[i]), format!("http://127.0.0.1:{}", clients[i]));
                Command::new("etcd")
                    .args(["--name", &format!("m{i}")])
                    .arg("--data-dir")
                    .arg(dir.join(format!("m{i}")))
                    .args(["--listen-peer-urls", &peer, "--initial-advertise-peer-urls", &peer])
                    .args(["--listen-client-urls", &client, "--advertise-client-urls", &client])
                    .args(["--initial-cluster", &cluster.join(","), "--initial-cluster-state", "new"])
                    .args([
                        "--initial-cluster-token",
                        "ccr-test",
                        "--heartbeat-interval",
                        "50",
                        "--election-timeout",
                        "500",
                    ])
                    .args(["--log-level", "error"])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("etcd runs (scripts/install-etcd.sh installs it)")
            })
            .collect();
        let clients = clients.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        Etcd { members, dir, clients }
    }

    /// A client once the cluster answers (bounded wait).
    async fn client(&self) -> Client {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(mut c) = Client::connect(&self.clients, None).await {
                if c.get("/ccr/ready", None).await.is_ok() {
                    return c;
                }
            }
            assert!(Instant::now() < deadline, "etcd did not come up within 20 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        for m in &mut self.members {
            let _ = m.kill();
            let _ = m.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

const TTL: Duration = Duration::from_secs(1);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_node_leads_and_another_takes_over_when_it_resigns() {
    let etcd = Etcd::start();
    let keys = Keys::new("test", "main").unwrap();
    let mut a = Candidate::new(etcd.client().await, keys.clone(), "a", "127.0.0.1:7001", TTL).unwrap();
    let mut b = Candidate::new(etcd.client().await, keys.clone(), "b", "127.0.0.1:7002", TTL).unwrap();
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
    let etcd = Etcd::start();
    let keys = Keys::new("test", "main").unwrap();
    let mut client = etcd.client().await;
    let mut a = Candidate::new(etcd.client().await, keys.clone(), "a", "127.0.0.1:7001", TTL).unwrap();
    let mut b = Candidate::new(etcd.client().await, keys.clone(), "b", "127.0.0.1:7002", TTL).unwrap();
    let a_leads = a.campaign().await.unwrap();
    let a_epoch = a_leads.epoch();
    journal::append(&mut client, &keys, a_epoch, 1, b"a:1".to_vec()).await.unwrap();
    // The same batch twice is refused, even under the right epoch.
    let again = journal::append(&mut client, &keys, a_epoch, 1, b"a:1 again".to_vec()).await;
    assert!(matches!(again, Err(ClusterError::Invalid(_))), "{again:?}");
    // a's lease goes (as when it is paused or cut off past its TTL); b leads.
    let mut admin = etcd.client().await;
    let lease = admin.leases().await.unwrap().leases()[0].id();
    admin.lease_revoke(lease).await.unwrap();
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
/// and the journal holds them all, in order, with no gap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_appends_are_reported_in_order_and_leave_no_gap() {
    let etcd = Etcd::start();
    let keys = Keys::new("test", "main").unwrap();
    let mut a = Candidate::new(etcd.client().await, keys.clone(), "a", "127.0.0.1:7001", TTL).unwrap();
    let leads = a.campaign().await.unwrap();
    let mut appender = Appender::new(etcd.client().await, keys.clone(), leads.epoch(), None, 8);
    let mut durable = Vec::new();
    for n in 0..200u64 {
        // Batches of several records: first sequence numbers 1, 4, 7, ...
        if let Some(done) = appender.push(1 + 3 * n, format!("batch {n}").into_bytes()).await {
            durable.push(done.unwrap());
        }
    }
    while let Some(done) = appender.next().await {
        durable.push(done.unwrap());
    }
    let expected: Vec<u64> = (0..200).map(|n| 1 + 3 * n).collect();
    assert_eq!(durable, expected, "reported in the order given");
    let mut client = etcd.client().await;
    let written = journal::read_from(&mut client, &keys, 1).await.unwrap();
    assert_eq!(written.iter().map(|(seq, _, _)| *seq).collect::<Vec<_>>(), expected);
    assert!(written.windows(2).all(|w| w[0].2 < w[1].2), "each batch written after the one it follows");
}

/// A batch whose predecessor is not in the journal is not written: it
/// waits (NotYet), so that no fence between two batches leaves a gap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_is_not_written_before_the_one_it_follows() {
    let etcd = Etcd::start();
    let keys = Keys::new("test", "main").unwrap();
    let mut a = Candidate::new(etcd.client().await, keys.clone(), "a", "127.0.0.1:7001", TTL).unwrap();
    let epoch = a.campaign().await.unwrap().epoch();
    let mut client = etcd.client().await;
    let early = journal::append_after(&mut client, &keys, epoch, Some(1), 5, b"second".to_vec()).await;
    assert!(matches!(early, Err(ClusterError::NotYet { first_seq: 5 })), "{early:?}");
    journal::append_after(&mut client, &keys, epoch, None, 1, b"first".to_vec()).await.unwrap();
    journal::append_after(&mut client, &keys, epoch, Some(1), 5, b"second".to_vec()).await.unwrap();
    let written = journal::read_from(&mut client, &keys, 1).await.unwrap();
    assert_eq!(written.iter().map(|(seq, _, _)| *seq).collect::<Vec<_>>(), vec![1, 5]);
}

/// The leader's lease goes while batches are in flight: what is reported
/// durable is a prefix of what was given, the journal holds exactly that
/// prefix, and nothing is reported after the first failure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fence_in_the_middle_of_a_pipeline_leaves_a_prefix() {
    let etcd = Etcd::start();
    let keys = Keys::new("test", "main").unwrap();
    let mut a = Candidate::new(etcd.client().await, keys.clone(), "a", "127.0.0.1:7001", TTL).unwrap();
    let leads = a.campaign().await.unwrap();
    let mut appender = Appender::new(etcd.client().await, keys.clone(), leads.epoch(), None, 8);
    let mut admin = etcd.client().await;
    let (mut durable, mut failures) = (Vec::new(), 0);
    for n in 1..=300u64 {
        if n == 100 {
            let lease = admin.leases().await.unwrap().leases()[0].id();
            admin.lease_revoke(lease).await.unwrap();
        }
        match appender.push(n, vec![n as u8]).await {
            Some(Ok(seq)) => durable.push(seq),
            Some(Err(ClusterError::Fenced { .. })) => failures += 1,
            Some(Err(other)) => panic!("{other}"),
            None => {}
        }
    }
    while let Some(done) = appender.next().await {
        match done {
            Ok(seq) => durable.push(seq),
            Err(_) => failures += 1,
        }
    }
    assert_eq!(failures, 1, "one failure reported, nothing after it");
    assert!(!durable.is_empty() && durable.len() < 100, "{} durable before the fence", durable.len());
    assert_eq!(durable, (1..=durable.len() as u64).collect::<Vec<_>>(), "a prefix, in order");
    let mut client = etcd.client().await;
    let written: Vec<u64> = journal::read_from(&mut client, &keys, 1).await.unwrap().iter().map(|b| b.0).collect();
    assert_eq!(written, durable, "the journal holds exactly what was reported durable");
}
