//! ccrctl against a ccrd on a loopback port, black box: the binary run as
//! an operator runs it, its tables, its JSON and its exit codes; a
//! supervisor's action seen in the agent's desktop stream and kept across
//! a restart (journal replay).

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use ccr_daemon::config;
use ccr_daemon::loopback::Loopback;
use ccr_proto::client::Client;
use ccr_proto::v1 as pb;
use serde_json::Value;

const CONFIG: &str = r#"
skills = ["billing", "repair", "sales"]
languages = ["en", "zh"]

[routing]
session_grace = "30s"

[[tiers]]
name = "gold"
[[tiers]]
name = "standard"

[[queues]]
name = "billing"
contact_policy = "strict_tier"
service_level = { target = 0.8, threshold = "20s" }
wrap_up = "0s"
offer_timeout = "1h"

[[queues]]
name = "repair"
service_level = { target = 0.9, threshold = "30s" }
wrap_up = "0s"
offer_timeout = "1h"
"#;

/// Runs ccrctl in `dir` (where `ccrd-data/cert.der` is its default CA).
async fn ccrctl(dir: &Path, addr: std::net::SocketAddr, args: &[&str]) -> Output {
    let (dir, mut all) = (dir.to_owned(), vec!["--addr".to_owned(), addr.to_string()]);
    all.extend(args.iter().map(|a| (*a).to_owned()));
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_ccrctl"))
            .args(&all)
            .current_dir(&dir)
            .env_remove("CCRCTL_ADDR")
            .env_remove("CCRCTL_CA")
            .env_remove("CCRCTL_CONFIG")
            .output()
            .expect("ccrctl runs")
    })
    .await
    .expect("joined")
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn json(o: &Output) -> Value {
    assert!(o.status.success(), "{o:?}");
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(o)))
}

fn login(id: u64, skills: &[(&str, u32)], ready: bool) -> pb::LoginRequest {
    pb::LoginRequest {
        agent_id: id,
        skills: skills.iter().map(|&(s, p)| pb::AgentSkill { skill: s.into(), proficiency: p }).collect(),
        languages: vec!["en".into()],
        voice_capacity: 1,
        ready,
        ..Default::default()
    }
}

fn enqueue(id: u64, queue: &str, tier: &str, skill: &str, min: u32) -> pb::EnqueueRequest {
    pb::EnqueueRequest {
        contact_id: id,
        channel: pb::Channel::Voice as i32,
        queue: queue.into(),
        tier: tier.into(),
        skills: vec![pb::SkillRequirement { skill: skill.into(), min_proficiency: min }],
        languages: vec!["en".into()],
        ..Default::default()
    }
}

fn data_config(dir: &Path) -> config::Config {
    let mut c = config::parse(CONFIG).expect("config");
    c.server.data_dir = dir.join("ccrd-data");
    c.journal.options.fsync = ccr_daemon::journal::FsyncPolicy::Never;
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ccrctl_shows_and_acts_as_a_supervisor_would() {
    let dir: PathBuf = std::env::temp_dir().join(format!("ccrctl-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let daemon = Loopback::start_with_manual_clock(data_config(&dir), None, false).await.expect("ccrd");
    let addr = daemon.addr;
    let desk = Client::connect(addr, "localhost", std::slice::from_ref(&daemon.cert)).await.unwrap();
    // Agent 1 takes the first billing call; 2 (billing 3) cannot take the
    // others (billing 5); 3 sells, on a break.
    desk.login(login(1, &[("billing", 7)], true)).await.unwrap();
    desk.login(login(2, &[("billing", 3), ("repair", 6)], true)).await.unwrap();
    desk.login(login(3, &[("sales", 5)], false)).await.unwrap();
    desk.set_state(pb::SetStateRequest { agent_id: 3, ready: false, reason: pb::NotReadyReason::Break as i32 })
        .await
        .unwrap();
    let mut events = desk.subscribe(vec![1, 2]).await.unwrap();
    desk.enqueue(enqueue(100, "billing", "standard", "billing", 5)).await.unwrap();
    let offer = loop {
        if let Some(pb::routing_event::Event::Offer(o)) = events.next().await.unwrap().event {
            break o;
        }
    };
    assert_eq!(offer.agent_id, 1);
    desk.accept(pb::AcceptRequest { agent_id: 1, offer_id: offer.offer_id }).await.unwrap();
    desk.enqueue(enqueue(101, "billing", "standard", "billing", 5)).await.unwrap();
    desk.enqueue(enqueue(102, "billing", "gold", "billing", 5)).await.unwrap();
    daemon.advance(Duration::from_secs(90)).await.unwrap();

    // status: the default CA is ./ccrd-data/cert.der.
    let status = ccrctl(&dir, addr, &["status"]).await;
    assert!(status.status.success(), "{status:?}");
    let s = text(&status);
    assert!(s.contains("waiting:   2 contacts") && s.contains("3 logged in") && s.contains("healthy"), "{s}");
    let status = json(&ccrctl(&dir, addr, &["status", "-o", "json"]).await);
    assert_eq!((status["waiting"].as_u64(), status["agents_by_state"]["busy"].as_u64()), (Some(2), Some(1)));

    // queues
    let queues = json(&ccrctl(&dir, addr, &["queues", "-o", "json"]).await);
    let billing = &queues["queues"][0];
    assert_eq!((billing["queue"].as_str(), billing["waiting"].as_u64()), (Some("billing"), Some(2)));
    assert_eq!(billing["waiting_by_tier"]["gold"].as_u64(), Some(1));
    assert_eq!(billing["agents_for_oldest"].as_u64(), Some(1), "agent 1 (busy) can serve the longest waiting");
    // Over the service-level window (15 min by default): one answered at once.
    assert_eq!((billing["window_seconds"].as_u64(), billing["window_answered"].as_u64()), (Some(900), Some(1)));
    assert_eq!(billing["window_service_level"].as_f64(), Some(1.0), "{billing}");
    assert!(billing["oldest_wait_millis"].as_u64().unwrap() >= 90_000, "{billing}");
    let table = text(&ccrctl(&dir, addr, &["queues"]).await);
    assert!(table.lines().next().unwrap().starts_with("QUEUE") && table.contains("gold 1, standard 1"), "{table}");
    assert!(table.contains("SL (WINDOW)") && table.contains("(WINDOW: the last 15m;"), "{table}");
    let billing_line = table.lines().find(|l| l.starts_with("billing")).unwrap();
    // waiting 2, oldest 1m30s, 1 staffed for it, SL 100 % in the window and since start, 1 answered, 0 abandoned.
    let cells: Vec<&str> = billing_line.split("  ").map(str::trim).filter(|c| !c.is_empty()).collect();
    assert_eq!(cells, ["billing", "2", "gold 1, standard 1", "1m30s", "1", "100.0%", "80.0%", "1", "0", "100.0%"]);

    // agents: the one on a break, for 90 s
    let agents = json(&ccrctl(&dir, addr, &["agents", "--state", "not_ready", "-o", "json"]).await);
    assert_eq!(agents["matching"].as_u64(), Some(1), "{agents}");
    let on_break = &agents["agents"][0];
    assert_eq!((on_break["agent_id"].as_u64(), on_break["reason"].as_str()), (Some(3), Some("break")));
    assert!(on_break["in_state_millis"].as_u64().unwrap() >= 90_000, "{on_break}");
    let by_time = text(&ccrctl(&dir, addr, &["agents", "--sort", "time", "--skill", "billing"]).await);
    assert!(by_time.contains("2 of 2 matching agents shown; 3 logged in"), "{by_time}");
    // Who can serve what waits in billing (billing ≥ 5): agent 1, not agent 2 (billing 3).
    let for_billing = json(&ccrctl(&dir, addr, &["agents", "--queue", "billing", "-o", "json"]).await);
    let ids: Vec<u64> =
        for_billing["agents"].as_array().unwrap().iter().map(|a| a["agent_id"].as_u64().unwrap()).collect();
    assert_eq!(ids, [1]);
    let for_repair = json(&ccrctl(&dir, addr, &["agents", "--queue", "repair", "-o", "json"]).await);
    assert_eq!(for_repair["matching"].as_u64(), Some(0), "nothing waits in repair: {for_repair}");

    // contacts, in the order they will be served: gold first
    let contacts = json(&ccrctl(&dir, addr, &["contacts", "--queue", "billing", "-o", "json"]).await);
    let rows = contacts["queues"][0]["contacts"].as_array().unwrap().clone();
    let order: Vec<(u64, u64)> =
        rows.iter().map(|c| (c["contact_id"].as_u64().unwrap(), c["position"].as_u64().unwrap())).collect();
    assert_eq!(order, vec![(102, 1), (101, 2)]);
    assert_eq!(rows[0]["agents_staffed"].as_u64(), Some(1), "agent 1 qualifies, and is busy");
    let one = json(&ccrctl(&dir, addr, &["contacts", "--queue", "billing", "--limit", "1", "-o", "json"]).await);
    assert_eq!(one["queues"][0]["contacts"].as_array().unwrap().len(), 1);

    // why is 101 still waiting?
    let why = text(&ccrctl(&dir, addr, &["contact", "101"]).await);
    assert!(why.contains("position:  2") && why.contains("1 busy"), "{why}");
    let why = json(&ccrctl(&dir, addr, &["contact", "101", "-o", "json"]).await);
    assert_eq!(why["qualified_by_state"]["busy"].as_u64(), Some(1), "{why}");
    // Its history: the answered one's, from arrival to answer.
    let answered = json(&ccrctl(&dir, addr, &["contact", "100", "-o", "json"]).await);
    let history: Vec<&str> =
        answered["history"].as_array().unwrap().iter().map(|h| h["what"].as_str().unwrap()).collect();
    assert_eq!(history, ["arrived (billing, standard)", "offered to agent 1 after 0s", "answered by agent 1 after 0s"]);

    // A supervisor's action reaches the desktop, which keeps the agent.
    let done = ccrctl(&dir, addr, &["agent", "2", "not-ready", "lunch"]).await;
    assert!(done.status.success(), "{done:?}");
    let seen = loop {
        if let Some(pb::routing_event::Event::AgentState(s)) = events.next().await.unwrap().event {
            if s.agent_id == 2 {
                break s;
            }
        }
    };
    assert_eq!((seen.state.as_str(), seen.reason.as_str()), ("not_ready", "lunch"));
    daemon.advance(Duration::from_secs(60)).await.unwrap(); // past ccrctl's session grace
    let agents = json(&ccrctl(&dir, addr, &["agents", "-o", "json"]).await);
    assert_eq!(agents["logged_in"].as_u64(), Some(3), "the desktop still owns agent 2: {agents}");

    // Refusals, each with its exit code.
    let busy = ccrctl(&dir, addr, &["agent", "1", "logout"]).await;
    assert_eq!(busy.status.code(), Some(5), "on a call: {busy:?}");
    let unknown = ccrctl(&dir, addr, &["contact", "999"]).await;
    assert_eq!(unknown.status.code(), Some(3), "{unknown:?}");
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("999"), "{unknown:?}");
    let no_queue = ccrctl(&dir, addr, &["contact", "101", "move", "nowhere"]).await;
    assert_eq!(no_queue.status.code(), Some(3), "{no_queue:?}");
    let careless = ccrctl(&dir, addr, &["drain"]).await;
    assert_eq!(careless.status.code(), Some(2), "a drain needs --yes: {careless:?}");

    // Contact actions.
    assert!(ccrctl(&dir, addr, &["contact", "101", "tier", "gold"]).await.status.success());
    let contacts = json(&ccrctl(&dir, addr, &["contacts", "--queue", "billing", "-o", "json"]).await);
    let rows = contacts["queues"][0]["contacts"].as_array().unwrap().clone();
    assert!(rows.iter().any(|c| c["contact_id"].as_u64() == Some(101) && c["tier"] == "gold"), "{contacts}");
    let moved = ccrctl(&dir, addr, &["contact", "102", "move", "repair", "-o", "json"]).await;
    assert_eq!(json(&moved)["result"]["queue"].as_str(), Some("repair"));
    assert!(ccrctl(&dir, addr, &["contact", "101", "abandon"]).await.status.success());
    let queues = json(&ccrctl(&dir, addr, &["queues", "-o", "json"]).await);
    assert_eq!(queues["queues"][0]["waiting"].as_u64(), Some(0), "{queues}");
    assert_eq!(queues["queues"][0]["abandoned"].as_u64(), Some(1), "{queues}");

    // The supervisor's actions are journaled: a restart replays them.
    drop(events);
    drop(desk);
    daemon.stop().await.expect("ccrd stops");
    let daemon = Loopback::start(data_config(&dir), None, false).await.expect("ccrd restarts");
    let addr = daemon.addr;
    // (A restart sends every agent not ready until its desktop is back; the
    // journal holds the four actions, and the contacts show them replayed.)
    let journal =
        ccr_daemon::journal::inspect::inspect(&ccr_daemon::journal::dir_in(&dir.join("ccrd-data"))).unwrap().text;
    let supervised = journal.lines().find(|l| l.trim_start().starts_with("supervise")).unwrap_or_default();
    assert!(supervised.trim_end().ends_with(" 4"), "{journal}");
    let contacts = json(&ccrctl(&dir, addr, &["contacts", "--queue", "repair", "-o", "json"]).await);
    assert_eq!(contacts["queues"][0]["contacts"][0]["contact_id"].as_u64(), Some(102), "{contacts}");
    daemon.stop().await.expect("ccrd stops");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ccrctl_says_when_ccrd_cannot_be_reached() {
    let dir = std::env::temp_dir().join(format!("ccrctl-unreachable-{}", std::process::id()));
    let data = dir.join("ccrd-data");
    std::fs::create_dir_all(&data).unwrap();
    // A certificate to trust, and nobody listening.
    let cert = ccr_daemon::tls::self_signed(&data).unwrap();
    assert!(cert.cert_path.exists());
    let free = std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let out = ccrctl(&dir, free, &["status", "--connect-timeout", "300ms"]).await;
    assert_eq!(out.status.code(), Some(6), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("connecting to ccrd"), "{out:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}
