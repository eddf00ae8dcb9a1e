//! High availability, against real processes: three etcd members and two
//! `ccrd` on loopback, steady traffic from the failover driver
//! (`ccr_loadgen::failover`, which follows the active and re-syncs as
//! after a restart), and a failure: the active killed (three times, the
//! old one back as the standby), the active paused past its lease and
//! resumed, etcd's leader killed. Each test checks, against the client's
//! own record:
//! - every acknowledged contact is there exactly once (waiting, offered,
//!   connected or completed): none lost;
//! - no contact was connected through two offers, or offered while
//!   connected or after it was completed;
//! - routing resumed after every outage;
//! - every offer the client received is a decision that the replay of the
//!   journal in etcd makes again, with the same contact and agent: the
//!   decisions of every active, replayed by one router, agree (the
//!   determinism of the core across nodes), and nothing that the journal
//!   does not hold — from a fenced former active or anyone — reached a
//!   client.
//!
//! Bounded: about a minute in all, one test at a time (they share two
//! cores), and every process is killed on every way out.

mod child;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use ccr_cluster::local_etcd::Etcd;
use ccr_cluster::Keys;
use ccr_core::Event;
use ccr_loadgen::failover::{self, FailoverOptions, FailoverReport};
use child::Daemon;
use tokio::time::sleep;

/// One cluster test at a time: each runs five servers on the machine's two cores.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn free_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

const ROUTING: &str = r#"
skills = ["billing"]
languages = ["en"]

[routing]
session_grace = "60s"

[[queues]]
name = "support"
offer_timeout = "10s"
"#;

struct Node {
    name: &'static str,
    quic: SocketAddr,
    metrics: SocketAddr,
    daemon: Option<Daemon>,
    lives: usize,
}

struct Cluster {
    dir: PathBuf,
    etcd: Etcd,
    nodes: Vec<Node>,
}

impl Cluster {
    /// etcd, then node a (which becomes the active), then node b (the
    /// standby); `extra` is more TOML after the `[cluster]` keys.
    async fn start(tag: &str, extra: &str) -> Cluster {
        let dir = std::env::temp_dir().join(format!("ccr-cluster-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let etcd = Etcd::start().expect("etcd starts (scripts/install-etcd.sh)");
        etcd.client().await.expect("etcd answers");
        let endpoints: Vec<String> = etcd.endpoints().iter().map(|e| format!("{e:?}")).collect();
        let mut nodes = Vec::new();
        for name in ["a", "b", "c"] {
            let quic: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
            let metrics: SocketAddr = format!("127.0.0.1:{}", free_tcp_port()).parse().unwrap();
            let config = format!(
                "{ROUTING}\n[server]\nlisten = \"{quic}\"\nmetrics_listen = \"{metrics}\"\ndata_dir = \"{}\"\n\n\
                 [cluster]\nname = \"test\"\nnode = \"{name}\"\netcd = [{}]\n{}\n",
                dir.join(format!("data-{name}")).display(),
                endpoints.join(", "),
                if extra.contains("lease_ttl") { extra.to_owned() } else { format!("lease_ttl = \"1s\"\n{extra}") },
            );
            std::fs::write(dir.join(format!("{name}.toml")), config).unwrap();
            nodes.push(Node { name, quic, metrics, daemon: None, lives: 0 });
        }
        let mut cluster = Cluster { dir, etcd, nodes };
        cluster.start_node(0);
        cluster.wait_for_role(0, "active", Duration::from_secs(20)).await;
        cluster.start_node(1);
        cluster.wait_for_role(1, "standby", Duration::from_secs(20)).await;
        cluster
    }

    fn start_node(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        let log = self.dir.join(format!("ccrd-{}-{}.log", node.name, node.lives));
        node.lives += 1;
        let mut command = Command::new(env!("CARGO_BIN_EXE_ccrd"));
        command
            .arg("--config")
            .arg(self.dir.join(format!("{}.toml", node.name)))
            .env("RUST_LOG", "info")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        node.daemon = Some(Daemon::spawn(command, log));
    }

    /// The node's role from its metrics (`None`: not answering).
    fn role(&self, i: usize) -> Option<&'static str> {
        let page = child::http_get(self.nodes[i].metrics, "/metrics")?;
        if page.contains("ccr_cluster_role{role=\"active\"} 1") {
            Some("active")
        } else if page.contains("ccr_cluster_role{role=\"standby\"} 1") {
            Some("standby")
        } else {
            None
        }
    }

    async fn wait_for_role(&self, i: usize, role: &str, limit: Duration) {
        let deadline = Instant::now() + limit;
        while self.role(i) != Some(role) {
            assert!(Instant::now() < deadline, "node {} is not {role} after {limit:?}: see {}", i, self.dir.display());
            sleep(Duration::from_millis(25)).await;
        }
    }

    fn active(&self) -> usize {
        (0..self.nodes.len()).find(|&i| self.role(i) == Some("active")).expect("a node is active")
    }

    fn log(&self, i: usize) -> String {
        self.nodes[i].daemon.as_ref().map(Daemon::log).unwrap_or_default()
    }

    fn signal(&self, i: usize, name: &str) {
        self.nodes[i].daemon.as_ref().expect("running").signal(name);
    }

    fn kill(&mut self, i: usize) {
        let mut daemon = self.nodes[i].daemon.take().expect("running");
        daemon.child.kill().unwrap();
        daemon.child.wait().unwrap();
    }

    /// The failover driver's traffic for `duration`, on nodes a and b.
    fn start_traffic(&self, duration: Duration) -> tokio::task::JoinHandle<anyhow::Result<FailoverReport>> {
        let options = self.traffic(duration);
        tokio::spawn(async move { failover::run(&options).await })
    }

    /// The failover driver's options: nodes a and b, their certificates.
    fn traffic(&self, duration: Duration) -> FailoverOptions {
        let roots = ["a", "b"].map(|n| std::fs::read(self.dir.join(format!("data-{n}/cert.der"))).unwrap()).to_vec();
        FailoverOptions {
            addrs: self.nodes[..2].iter().map(|n| n.quic).collect(),
            server_name: "localhost".into(),
            roots,
            identity: None,
            rate: 150.0,
            agents: 12,
            duration,
            talk: Duration::from_millis(20),
            queue: "support".into(),
            skill: "billing".into(),
            language: "en".into(),
        }
    }

    /// Every offer in the client's record must be one the replay of the
    /// journal in etcd makes, to the same contact and agent.
    async fn check_against_the_journal(&self, report: &FailoverReport) -> Vec<String> {
        let text = std::fs::read_to_string(self.dir.join("a.toml")).unwrap();
        let config = ccr_daemon::config::parse(&text).unwrap();
        let mut client = self.etcd.client().await.unwrap();
        let keys = Keys::new("test", "main").unwrap();
        // Batches after a gap are an append still in flight, or strays of
        // a demoted active that the next one's settle deletes: either way
        // gone within seconds. One that stays is a hole in the journal.
        let deadline = Instant::now() + Duration::from_secs(15);
        let replayed = loop {
            let mut replayed = std::collections::BTreeMap::new();
            let mut on_event = |e: Event| {
                if let Event::Offered { offer, contact, agent, .. } = e {
                    replayed.insert(offer.0, (contact.0, agent.0));
                }
            };
            let replay = ccr_daemon::cluster::replay_journal(&mut client, &keys, &config, &mut on_event)
                .await
                .expect("the journal in etcd replays");
            assert!(replay.last > 0, "the journal holds records");
            if replay.after_gap == 0 {
                break replayed;
            }
            assert!(
                Instant::now() < deadline,
                "{} batch(es) after record {} stay after a gap (logs in {})",
                replay.after_gap,
                replay.last,
                self.dir.display()
            );
            println!("{} batch(es) after a gap at record {}: waiting", replay.after_gap, replay.last + 1);
            sleep(Duration::from_millis(200)).await;
        };
        let mut problems = Vec::new();
        for (offer, &(contact, agent)) in &report.offer_log {
            match replayed.get(offer) {
                Some(&decision) if decision == (contact, agent) => {}
                Some(decision) => {
                    problems.push(format!("offer {offer}: {:?} live, {decision:?} on replay", (contact, agent)))
                }
                None => problems.push(format!("offer {offer} ({contact} → {agent}) is not in the journal")),
            }
        }
        problems
    }

    fn keep_or_remove(&self, ok: bool) {
        if ok && std::env::var_os("CCR_KEEP_CLUSTER_DIR").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        } else {
            println!("logs in {}", self.dir.display());
        }
    }
}

/// One HTTP/1.0 GET on loopback (bounded: 1 s), the body if it answered 200.
/// A probe's answer: the status code and the body's first line.
fn probe(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
    stream.write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes()).ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let code = response.lines().next()?.split(' ').nth(1)?.parse().ok()?;
    let body = response.split("\r\n\r\n").nth(1)?.lines().next()?.to_owned();
    Some((code, body))
}

/// What every test requires of the client's record and of the journal.
async fn assert_nothing_lost_or_doubled(cluster: &Cluster, report: &FailoverReport, outages_at_least: usize) {
    let replayed = cluster.check_against_the_journal(report).await;
    assert_client_record(cluster, report, outages_at_least, replayed);
}

/// What every test requires of the client's record.
fn assert_client_record(cluster: &Cluster, report: &FailoverReport, outages_at_least: usize, more: Vec<String>) {
    println!(
        "{} acknowledged, {} completed, {} offers, {} outage(s): {:?}",
        report.acknowledged,
        report.completed,
        report.offers,
        report.outages.len(),
        report
            .outages
            .iter()
            .map(|o| o.first_offer_after_unix_ms.map(|f| f - o.last_offer_unix_ms))
            .collect::<Vec<_>>()
    );
    let mut problems: Vec<String> = report.problems.clone();
    problems.extend(report.lost.iter().map(|c| format!("acknowledged contact {c} lost")));
    problems.extend(report.doubled.iter().cloned());
    problems.extend(more);
    for (n, outage) in report.outages.iter().enumerate() {
        if outage.first_offer_after_unix_ms.is_none() {
            problems.push(format!("routing did not resume after outage {}", n + 1));
        }
    }
    cluster.keep_or_remove(problems.is_empty());
    assert!(report.acknowledged > 300, "traffic ran: {} contacts acknowledged", report.acknowledged);
    assert!(report.completed > 100, "and calls completed: {}", report.completed);
    assert!(report.outages.len() >= outages_at_least, "{} outage(s) seen", report.outages.len());
    assert!(problems.is_empty(), "{} problem(s):\n{}", problems.len(), problems.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_active_under_traffic_loses_nothing_and_the_standby_takes_over() {
    let _one_at_a_time = SERIAL.lock().await;
    let mut cluster = Cluster::start("kill", "").await;
    let traffic = cluster.start_traffic(Duration::from_secs(14));
    sleep(Duration::from_secs(2)).await;
    for _ in 0..3 {
        let victim = cluster.active();
        let other = 1 - victim;
        cluster.kill(victim);
        cluster.wait_for_role(other, "active", Duration::from_secs(10)).await;
        // The old active comes back, as the standby.
        cluster.start_node(victim);
        cluster.wait_for_role(victim, "standby", Duration::from_secs(10)).await;
        sleep(Duration::from_secs(2)).await;
    }
    let report = traffic.await.unwrap().expect("the traffic ran");
    assert_nothing_lost_or_doubled(&cluster, &report, 3).await;
}

/// The active is paused (SIGSTOP) past its lease while the standby takes
/// over, then resumed: its writes are fenced off, it says in its log that
/// it is no longer the active and starts again as a standby, and nothing
/// it decided after losing the lease reached a client (every offer the
/// client saw is in the journal).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_active_is_fenced_off_and_comes_back_as_the_standby() {
    let _one_at_a_time = SERIAL.lock().await;
    let cluster = Cluster::start("pause", "").await;
    let traffic = cluster.start_traffic(Duration::from_secs(10));
    sleep(Duration::from_secs(2)).await;
    let victim = cluster.active();
    cluster.signal(victim, "STOP");
    cluster.wait_for_role(1 - victim, "active", Duration::from_secs(10)).await;
    sleep(Duration::from_secs(1)).await;
    cluster.signal(victim, "CONT");
    let deadline = Instant::now() + Duration::from_secs(15);
    while !cluster.log(victim).contains("demoted: starting again as a standby") {
        assert!(Instant::now() < deadline, "the resumed node did not demote itself:\n{}", cluster.log(victim));
        sleep(Duration::from_millis(50)).await;
    }
    cluster.wait_for_role(victim, "standby", Duration::from_secs(15)).await;
    let log = cluster.log(victim);
    assert!(log.contains("no longer the active"), "the log says why:\n{log}");
    let report = traffic.await.unwrap().expect("the traffic ran");
    assert_nothing_lost_or_doubled(&cluster, &report, 1).await;
}

/// etcd's leader is killed under traffic and comes back: routing pauses
/// at most, and nothing is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_etcd_leader_under_traffic_loses_nothing() {
    let _one_at_a_time = SERIAL.lock().await;
    let mut cluster = Cluster::start("etcd", "").await;
    let traffic = cluster.start_traffic(Duration::from_secs(10));
    sleep(Duration::from_secs(2)).await;
    let leader = cluster.etcd.leader().await.expect("etcd has a leader");
    cluster.etcd.kill(leader).unwrap();
    sleep(Duration::from_secs(3)).await;
    cluster.etcd.restart(leader).unwrap();
    let report = traffic.await.unwrap().expect("the traffic ran");
    // Both nodes serve on, one of them the active (one may have been
    // demoted meanwhile and be starting again as the standby).
    let deadline = Instant::now() + Duration::from_secs(20);
    let roles = loop {
        let roles = [cluster.role(0), cluster.role(1)];
        let settled = roles.iter().all(Option::is_some) && roles.iter().filter(|r| **r == Some("active")).count() == 1;
        if settled || Instant::now() > deadline {
            break roles;
        }
        sleep(Duration::from_millis(100)).await;
    };
    assert!(
        roles.contains(&Some("active")) && roles.contains(&Some("standby")),
        "one active and one standby after etcd's leader came back: {roles:?} (logs in {})",
        cluster.dir.display()
    );
    assert_nothing_lost_or_doubled(&cluster, &report, 0).await;
}

/// A polite stop of the active (SIGTERM) hands over at once: it steps down
/// (its lease revoked), and the standby leads long before the lease could
/// have run out (10 s here); nothing is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_the_active_hands_over_at_once() {
    let _one_at_a_time = SERIAL.lock().await;
    let mut cluster = Cluster::start("handover", "lease_ttl = \"10s\"").await;
    // Probes: both alive, only the active ready.
    let (a, b) = (cluster.nodes[0].metrics, cluster.nodes[1].metrics);
    assert_eq!(probe(a, "/readyz"), Some((200, "ready: serving".into())));
    assert_eq!(probe(b, "/readyz"), Some((503, "not ready: a standby (clients go to the active)".into())));
    for node in [a, b] {
        assert_eq!(probe(node, "/healthz"), Some((200, "ok: alive".into())));
    }
    let traffic = cluster.start_traffic(Duration::from_secs(8));
    sleep(Duration::from_secs(2)).await;
    let victim = cluster.active();
    let stopped = Instant::now();
    cluster.signal(victim, "TERM");
    cluster.wait_for_role(1 - victim, "active", Duration::from_secs(8)).await;
    assert!(stopped.elapsed() < Duration::from_secs(8), "the standby led before the 10 s lease could have ended");
    let new_active = cluster.nodes[1 - victim].metrics;
    assert_eq!(probe(new_active, "/readyz"), Some((200, "ready: serving".into())));
    let mut daemon = cluster.nodes[victim].daemon.take().unwrap();
    let status = daemon.exit(Duration::from_secs(10)).await.expect("the old active exits");
    assert!(status.success(), "and cleanly: {status}");
    assert!(daemon.log().contains("stepped down"), "its log says so:\n{}", daemon.log());
    cluster.start_node(victim);
    cluster.wait_for_role(victim, "standby", Duration::from_secs(10)).await;
    let report = traffic.await.unwrap().expect("the traffic ran");
    assert_nothing_lost_or_doubled(&cluster, &report, 1).await;
}

/// With every node snapshotting each second, the active prunes the journal
/// in etcd to what every node's snapshot covers; nodes then start from
/// their snapshots and carry on (a takeover after the pruning loses
/// nothing), and a new node with no state gets a snapshot from the active
/// through etcd and follows from there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_journal_in_etcd_is_pruned_to_what_every_snapshot_covers() {
    let _one_at_a_time = SERIAL.lock().await;
    let extra = "prune_interval = \"1s\"\n[journal]\nsnapshot_interval = \"1s\"\n";
    let mut cluster = Cluster::start("prune", extra).await;
    let traffic = cluster.start_traffic(Duration::from_secs(10));
    let mut client = cluster.etcd.client().await.unwrap();
    let keys = Keys::new("test", "main").unwrap();
    let deadline = Instant::now() + Duration::from_secs(8);
    let first = loop {
        let first = ccr_cluster::journal::first_held(&mut client, &keys).await.unwrap();
        if first.is_some_and(|f| f > 1) || Instant::now() > deadline {
            break first;
        }
        sleep(Duration::from_millis(200)).await;
    };
    assert!(first.is_some_and(|f| f > 1), "the journal was pruned: it starts at {first:?}");
    // After the pruning: the active killed, the standby takes over from
    // what it follows, the old one comes back from its snapshot.
    let victim = cluster.active();
    cluster.kill(victim);
    cluster.wait_for_role(1 - victim, "active", Duration::from_secs(10)).await;
    cluster.start_node(victim);
    cluster.wait_for_role(victim, "standby", Duration::from_secs(10)).await;
    // A node with nothing cannot follow a journal that starts after record
    // 1: it gets a snapshot from the active through etcd, then follows —
    // with one etcd member (not the leader) down meanwhile, which the
    // node's etcd calls must ride out.
    let leader = cluster.etcd.leader().await.expect("etcd has a leader");
    let down = (leader + 1) % 3;
    cluster.etcd.kill(down).unwrap();
    cluster.start_node(2);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cluster.log(2).contains("bootstrapped from a snapshot of the active") {
        assert!(Instant::now() < deadline, "the new node did not get a snapshot:\n{}", cluster.log(2));
        sleep(Duration::from_millis(100)).await;
    }
    cluster.etcd.restart(down).unwrap();
    assert!(cluster.log(2).contains("asking the active for a snapshot"), "it says why:\n{}", cluster.log(2));
    // (Its role shows on /metrics once it follows: waited for, not slept
    // on — a loaded machine took more than 500 ms.)
    cluster.wait_for_role(2, "standby", Duration::from_secs(10)).await;
    assert!(!cluster.log(2).contains("ERROR"), "and follows from it:\n{}", cluster.log(2));
    let report = traffic.await.unwrap().expect("the traffic ran");
    assert_client_record(&cluster, &report, 1, Vec::new());
}

/// `[cluster]` with TLS to etcd: a member that serves only TLS and asks
/// for client certificates (all issued here by one CA, as PEM files) is
/// reached through `https://` endpoints, `etcd_ca`, `etcd_cert` and
/// `etcd_key`; without the client certificate it refuses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_is_reached_over_tls_with_a_client_certificate() {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let _one_at_a_time = SERIAL.lock().await;
    let dir = std::env::temp_dir().join(format!("ccr-cluster-tls-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let issue = |name: &str, sans: Vec<String>| {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(sans).unwrap().signed_by(&key, &issuer).unwrap();
        std::fs::write(dir.join(format!("{name}.pem")), cert.pem()).unwrap();
        std::fs::write(dir.join(format!("{name}.key.pem")), key.serialize_pem()).unwrap();
    };
    std::fs::write(dir.join("ca.pem"), ca_cert.pem()).unwrap();
    issue("server", vec!["127.0.0.1".into(), "localhost".into()]);
    issue("client", vec!["ccrd".into()]);
    let (client_port, peer_port) = (free_tcp_port(), free_tcp_port());
    let path = |f: &str| dir.join(f).display().to_string();
    let mut etcd = Command::new("etcd");
    etcd.args(["--name", "tls", "--data-dir", &path("etcd")])
        .args(["--listen-client-urls", &format!("https://127.0.0.1:{client_port}")])
        .args(["--advertise-client-urls", &format!("https://127.0.0.1:{client_port}")])
        .args(["--listen-peer-urls", &format!("http://127.0.0.1:{peer_port}")])
        .args(["--initial-advertise-peer-urls", &format!("http://127.0.0.1:{peer_port}")])
        .args(["--initial-cluster", &format!("tls=http://127.0.0.1:{peer_port}")])
        .args(["--cert-file", &path("server.pem"), "--key-file", &path("server.key.pem")])
        .args(["--trusted-ca-file", &path("ca.pem"), "--client-cert-auth", "--log-level", "error"])
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(dir.join("etcd.log")).unwrap());
    // Killed on every way out, as the ccrd children are.
    let etcd = Daemon::spawn(etcd, dir.join("etcd.log"));
    let config = |with_identity: bool| {
        let identity = if with_identity {
            format!("etcd_cert = \"{}\"\netcd_key = \"{}\"\n", path("client.pem"), path("client.key.pem"))
        } else {
            String::new()
        };
        let text = format!(
            "{ROUTING}\n[cluster]\nname = \"tls\"\nnode = \"a\"\netcd = [\"https://127.0.0.1:{client_port}\"]\n\
             etcd_ca = \"{}\"\n{identity}",
            path("ca.pem")
        );
        ccr_daemon::config::parse(&text).unwrap().cluster.unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut client = loop {
        let tried = async {
            let mut c = ccr_daemon::cluster::connect(&config(true)).await.map_err(|e| e.to_string())?;
            c.put("/ccr/tls/probe", "ok", None).await.map_err(|e| e.to_string())?;
            Ok::<_, String>(c)
        };
        match tried.await {
            Ok(c) => break c,
            Err(e) => assert!(Instant::now() < deadline, "etcd over TLS did not answer: {e}"),
        }
        sleep(Duration::from_millis(100)).await;
    };
    let got = client.get("/ccr/tls/probe", None).await.unwrap();
    assert_eq!(got.kvs()[0].value(), b"ok");
    // Without the client certificate, etcd refuses the connection.
    let refused = async {
        let mut c = ccr_daemon::cluster::connect(&config(false)).await.map_err(|e| e.to_string())?;
        c.get("/ccr/tls/probe", None).await.map_err(|e| e.to_string())
    };
    let refused = tokio::time::timeout(Duration::from_secs(10), refused).await;
    assert!(matches!(refused, Ok(Err(_))), "a client without a certificate is refused: {refused:?}");
    drop(etcd);
    let _ = std::fs::remove_dir_all(&dir);
}
