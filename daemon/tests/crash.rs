//! Crash and stop tests: `ccrd` as a child process under steady traffic,
//! killed with SIGKILL (or stopped with SIGTERM) at random moments and
//! restarted on the same data directory. The client keeps its own record of
//! what was acknowledged and checks, after every restart and at the end,
//! that:
//! - every agent is still logged in after the restart (a stop logs nobody
//!   out: it is no worse than a crash);
//! - every acknowledged contact is still there (waiting, offered or
//!   connected) or was completed, exactly once;
//! - no contact was ever connected twice, and no completed contact was
//!   offered again;
//! - every offer ccrd sent is a decision the core makes again when it
//!   replays the journal (the recovered state decides as the live one did).
//!
//! Bounded: six lives of about a second of traffic each, loopback only, and
//! the child is killed on every path out.

mod child;

use child::{connect, Daemon};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ccr_core::Event;
use ccr_daemon::journal::{self, recovery};
use ccr_proto::client::{Client, Subscription};
use ccr_proto::v1::{routing_event::Event as E, *};
use ccr_proto::wire::Code;
use tokio::time::{sleep, timeout};

const LIVES: usize = 6;
const AGENTS: u64 = 8;

const CONFIG: &str = r#"
skills = ["billing"]
languages = ["en"]

[server]
core_spin = "0s"

[routing]
session_grace = "120s"

[journal]
fsync = "always"
# Snapshots only at restarts, so each copy of the journal still replays the
# whole of the life before it.
snapshot_interval = "1h"
snapshot_bytes = 1073741824
# Small zero-filled segments, so that kills land in them and across rotations.
segment_bytes = 1048576

[[queues]]
name = "support"
offer_timeout = "5s"
"#;

fn start(dir: &Path, addr: SocketAddr, life: usize) -> Daemon {
    let log = dir.join(format!("ccrd-{life}.log"));
    Daemon::spawn(child::command(dir, addr, &log), log)
}

/// What the client knows for certain: only acknowledged things count.
#[derive(Default)]
struct Record {
    acked: BTreeSet<u64>,
    completed: BTreeSet<u64>,
    /// Completes sent without an answer yet.
    completing: BTreeSet<u64>,
    /// Contact → the offer through which it was connected.
    connected: BTreeMap<u64, u64>,
    /// Offers received, with the life they came in: offer → (contact, agent, life).
    offers: BTreeMap<u64, (u64, u64, usize)>,
    /// Accepts sent without an answer yet: offer → (contact, agent).
    accepting: BTreeMap<u64, (u64, u64)>,
    problems: Vec<String>,
}

type Shared = Arc<Mutex<Record>>;

fn login(agent: u64) -> LoginRequest {
    LoginRequest {
        agent_id: agent,
        skills: vec![AgentSkill { skill: "billing".into(), proficiency: 5 }],
        languages: vec!["en".into()],
        voice_capacity: 1,
        ready: true,
        ..Default::default()
    }
}

fn enqueue(id: u64) -> EnqueueRequest {
    EnqueueRequest {
        contact_id: id,
        channel: Channel::Voice as i32,
        queue: "support".into(),
        tier: ["gold", "silver", "standard"][(id % 3) as usize].into(),
        skills: vec![SkillRequirement { skill: "billing".into(), min_proficiency: 1 }],
        languages: vec!["en".into()],
        ..Default::default()
    }
}

/// Connects `contact` through `offer`; a second connection of one contact is
/// the double assignment this test exists to catch.
fn connected(record: &Shared, contact: u64, offer: u64, duplicate: bool) {
    let mut r = record.lock().unwrap();
    r.accepting.remove(&offer);
    match r.connected.get(&contact) {
        Some(&first) if first != offer => {
            r.problems.push(format!("contact {contact} connected twice: offers {first} and {offer}"))
        }
        Some(_) => {}
        None if duplicate => {
            // Accepted before a crash, acknowledgement lost: now we know.
            r.connected.insert(contact, offer);
        }
        None => {
            r.connected.insert(contact, offer);
        }
    }
}

async fn complete(client: &Client, record: &Shared, agent: u64, contact: u64) {
    record.lock().unwrap().completing.insert(contact);
    let result = client.complete(CompleteRequest { agent_id: agent, contact_id: contact }).await;
    record.lock().unwrap().completing.remove(&contact);
    match result {
        Ok(_) => {
            record.lock().unwrap().completed.insert(contact);
        }
        // Completed before the crash with the acknowledgement lost.
        Err(s) if s.code == Code::NotFound as i32 => {
            record.lock().unwrap().completed.insert(contact);
        }
        Err(_) => {}
    }
}

/// The desktops: accept every offer, complete the call a little later.
async fn desks(client: Client, mut events: Subscription, record: Shared, life: usize) {
    let client = Arc::new(client);
    while let Ok(event) = events.next().await {
        let Some(E::Offer(offer)) = event.event else { continue };
        {
            let mut r = record.lock().unwrap();
            if r.completed.contains(&offer.contact_id) {
                r.problems
                    .push(format!("completed contact {} offered again (offer {})", offer.contact_id, offer.offer_id));
            }
            r.offers.insert(offer.offer_id, (offer.contact_id, offer.agent_id, life));
            r.accepting.insert(offer.offer_id, (offer.contact_id, offer.agent_id));
        }
        let (client, record) = (client.clone(), record.clone());
        tokio::spawn(async move {
            let accept = AcceptRequest { agent_id: offer.agent_id, offer_id: offer.offer_id };
            if let Ok(a) = client.accept(accept).await {
                connected(&record, a.contact_id, offer.offer_id, a.duplicate);
                sleep(Duration::from_millis(15)).await;
                complete(&client, &record, offer.agent_id, a.contact_id).await;
            }
        });
    }
}

/// The gateway: a steady stream of new contacts, faster than the agents
/// answer, so that some wait, some ring and some talk at every crash.
async fn gateway(client: Client, record: Shared, first_id: u64) {
    let mut id = first_id;
    let mut tick = tokio::time::interval(Duration::from_millis(2));
    loop {
        tick.tick().await;
        id += 1;
        let (client, record) = (client.clone(), record.clone());
        tokio::spawn(async move {
            if client.enqueue(enqueue(id)).await.is_ok() {
                record.lock().unwrap().acked.insert(id);
            }
        });
    }
}

/// After a restart: desktops claim their agents back, finish what they were
/// doing; the gateway names every contact it is waiting on.
async fn resync(client: &Client, record: &Shared) {
    for agent in 1..=AGENTS {
        client.login(login(agent)).await.expect("agent logs in or resumes");
    }
    let accepting: Vec<(u64, (u64, u64))> = record.lock().unwrap().accepting.iter().map(|(o, x)| (*o, *x)).collect();
    for (offer, (_, agent)) in accepting {
        // The answer to an accept that was in flight: idempotent per offer.
        if let Ok(a) = client.accept(AcceptRequest { agent_id: agent, offer_id: offer }).await {
            connected(record, a.contact_id, offer, a.duplicate);
        }
        record.lock().unwrap().accepting.remove(&offer);
    }
    let talking: Vec<(u64, u64)> = {
        let r = record.lock().unwrap();
        r.connected.iter().filter(|(c, _)| !r.completed.contains(c)).map(|(c, o)| (*c, r.offers[o].1)).collect()
    };
    for (contact, agent) in talking {
        complete(client, record, agent, contact).await;
    }
    let acked = record.lock().unwrap().acked.clone();
    for contact in acked {
        // The desktops keep completing calls meanwhile: a contact completed
        // before the question must be gone, one not completed by the answer
        // (nor being completed) must be there.
        let completed_before = record.lock().unwrap().completed.contains(&contact);
        let found = client.position(PositionRequest { contact_id: contact }).await;
        let mut r = record.lock().unwrap();
        let maybe_completed = r.completed.contains(&contact) || r.completing.contains(&contact);
        match found {
            Ok(_) if completed_before => {
                r.problems.push(format!("completed contact {contact} is back after the restart"))
            }
            Ok(_) => {}
            Err(s) if s.code == Code::NotFound as i32 && !maybe_completed => {
                r.problems.push(format!("acknowledged contact {contact} lost in the crash"))
            }
            Err(s) if s.code == Code::NotFound as i32 => {}
            Err(s) => r.problems.push(format!("position of {contact}: {}", s.message)),
        }
    }
}

/// Offers the recovered core makes again when it replays a copy of the journal.
/// The offers replayed from the oldest snapshot a life's journal keeps,
/// the one written at its start (the test's lives are too short for
/// another before the one a polite stop writes, which replays nothing).
fn replayed_offers(journal: &Path) -> BTreeMap<u64, (u64, u64)> {
    let mut snapshots: Vec<PathBuf> = std::fs::read_dir(journal)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "snap"))
        .collect();
    snapshots.sort();
    for newer in snapshots.iter().skip(1) {
        std::fs::remove_file(newer).unwrap();
    }
    let mut offers = BTreeMap::new();
    let mut on_event = |e: Event| {
        if let Event::Offered { offer, contact, agent, .. } = e {
            offers.insert(offer.0, (contact.0, agent.0));
        }
    };
    recovery::recover_observed(journal, &mut on_event).expect("the journal recovers").expect("not empty");
    offers
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

/// How each life but the last ends.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Stop {
    Kill,
    Term,
}

/// Sends SIGTERM and waits (bounded) for a clean exit.
async fn terminate(daemon: &mut Daemon) {
    daemon.signal("TERM");
    let status = daemon.exit(Duration::from_secs(15)).await.expect("ccrd stops on SIGTERM within 15 s");
    assert!(status.success(), "ccrd exits cleanly on SIGTERM: {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_contacts_survive_sigkill_and_decisions_replay() {
    lives("crash", Stop::Kill).await;
}

/// A polite stop under traffic keeps the centre as a crash does: every agent
/// and every acknowledged contact is there after the restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_traffic_keeps_every_agent_and_contact_across_the_restart() {
    lives("stop", Stop::Term).await;
}

async fn lives(tag: &str, stop: Stop) {
    let dir = std::env::temp_dir().join(format!("ccr-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("ccrd.toml"), CONFIG).unwrap();
    let addr = {
        let probe = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap()
    };
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1;
    let mut rng = seed;
    let mut next_random = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    println!("crash test in {} (kill-time seed {seed})", dir.display());
    let record: Shared = Arc::default();
    let mut copies: Vec<PathBuf> = Vec::new();
    for life in 0..LIVES {
        let mut daemon = start(&dir, addr, life);
        let client = connect(&dir, addr).await;
        // Desktops listen before their agents are ready, so no offer rings unseen.
        let desk_client = connect(&dir, addr).await;
        let events = desk_client.subscribe((1..=AGENTS).collect()).await.expect("subscribe");
        let desk = tokio::spawn(desks(desk_client, events, record.clone(), life));
        if life > 0 {
            let stats = client.queue_stats(QueueStatsRequest { queue: "support".into() }).await.expect("stats");
            let agents: u32 = stats.agents_by_state.values().sum();
            if agents != AGENTS as u32 {
                let problem = format!("life {life}: {agents} of {AGENTS} agents still logged in after the restart");
                record.lock().unwrap().problems.push(problem);
            }
            timeout(Duration::from_secs(20), resync(&client, &record)).await.expect("re-sync within 20 s");
        } else {
            for agent in 1..=AGENTS {
                client.login(login(agent)).await.expect("login");
            }
        }
        let first_id = 1_000_000 * (life as u64 + 1);
        let traffic = tokio::spawn(gateway(client, record.clone(), first_id));
        let run_for = Duration::from_millis(400 + next_random() % 1_100);
        sleep(run_for).await;
        if life + 1 < LIVES && stop == Stop::Kill {
            daemon.child.kill().expect("SIGKILL");
            daemon.child.wait().unwrap();
        } else {
            // SIGTERM under traffic: drain, exit 0.
            terminate(&mut daemon).await;
        }
        traffic.abort();
        desk.abort();
        let _ = traffic.await;
        let _ = desk.await;
        let copy = dir.join(format!("journal-after-life-{life}"));
        copy_dir(&journal::dir_in(&dir.join("data")), &copy);
        copies.push(copy);
        let r = record.lock().unwrap();
        println!(
            "life {life}: ran {run_for:?}; so far {} acknowledged, {} connected, {} completed, {} offers",
            r.acked.len(),
            r.connected.len(),
            r.completed.len(),
            r.offers.len()
        );
    }

    let record = record.lock().unwrap();
    let mut problems = record.problems.clone();
    // Every offer ccrd sent in a life is a decision the core makes again from
    // the journal as it was when that life ended.
    for (life, copy) in copies.iter().enumerate() {
        let replayed = replayed_offers(copy);
        for (offer, &(contact, agent, seen_in)) in &record.offers {
            if seen_in != life {
                continue;
            }
            match replayed.get(offer) {
                Some(&decision) if decision == (contact, agent) => {}
                Some(decision) => problems
                    .push(format!("offer {offer} went to {:?} live but {decision:?} on replay", (contact, agent))),
                None => problems.push(format!("offer {offer} (life {life}) is not in the replayed journal")),
            }
        }
    }
    assert!(record.acked.len() > 200, "the test ran traffic: {} contacts acknowledged", record.acked.len());
    assert!(record.completed.len() > 50, "and completed calls: {}", record.completed.len());
    assert!(problems.is_empty(), "{} problem(s):\n{}", problems.len(), problems.join("\n"));
    drop(record);
    if std::env::var_os("CCR_KEEP_CRASH_DIR").is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
}
