//! How many contacts per second one gateway connection gets routed through
//! `Gateway/Stream`: from the first command sent to the last of their offers
//! delivered to an event subscriber (enqueue → offer), over loopback QUIC,
//! client and ccrd in this process. 500 chat agents with room for 255 chats
//! each take every contact, so each enqueue is one routing decision.
//!
//! Runs once per journal fsync policy — `never`, `interval` (10 ms),
//! `always` (group commit) — in one process, so their ratio is measured
//! under the same machine load. Every reply and offer leaves only once its
//! records are written (and, for `always`, synced).
//!
//! `cargo bench -p ccr-benches --bench stream` (targets: ≥ 50,000 /s;
//! `always` ≥ 50 % of `never`). `-- --no-decision-timing` switches off the
//! routing thread's only metrics work (timing each command); `-- --policy
//! always` runs one policy.

use std::time::{Duration, Instant};

use ccr_daemon::config;
use ccr_daemon::journal::FsyncPolicy;
use ccr_daemon::loopback::Loopback;
use ccr_proto::client::Client;
use ccr_proto::v1::gateway_command::Command as C;
use ccr_proto::v1::routing_event::Event as E;
use ccr_proto::v1::*;

ccr_benches::use_ccrd_allocator!();

const CONFIG: &str = r#"
skills = ["billing"]
[server]
max_pending_requests = 1000000
# The bench's one subscriber takes every event of a 50,000-contact burst
# while sharing two cores with everything else: enough room that a stall of
# its task is not mistaken for the throughput being measured.
subscriber_buffer = 262144
[[queues]]
name = "chat"
offer_timeout = "1h"
"#;

const AGENTS: u64 = 500;
const CONTACTS: u64 = 50_000;
const ROUNDS: u64 = 3;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list") {
        return; // cargo test --benches asks for a listing
    }
    let timing = !args.iter().any(|a| a == "--no-decision-timing");
    let only = args.iter().position(|a| a == "--policy").and_then(|i| args.get(i + 1)).cloned();
    let policies = [
        ("never", FsyncPolicy::Never),
        ("interval", FsyncPolicy::Interval(Duration::from_millis(10))),
        ("always", FsyncPolicy::Always),
    ];
    println!("decision timing (ccr_routing_decision_seconds): {}", if timing { "on" } else { "off" });
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let mut medians = Vec::new();
    for (name, policy) in policies {
        if only.as_deref().is_some_and(|o| o != name) {
            continue;
        }
        let median = runtime.block_on(measure(name, policy, timing));
        println!("fsync = {name}: median {median:.0} contacts/s (target ≥ 50,000)");
        medians.push((name, median));
    }
    if let Some(&(_, never)) = medians.iter().find(|(n, _)| *n == "never") {
        for (name, rate) in &medians {
            println!("{name} / never = {:.2}", rate / never);
        }
    }
}

/// Three rounds of `CONTACTS` contacts on a fresh ccrd; the median rate.
async fn measure(name: &str, policy: FsyncPolicy, timing: bool) -> f64 {
    let dir = std::env::temp_dir().join(format!("ccr-bench-stream-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut cfg = config::parse(CONFIG).unwrap();
    cfg.server.decision_timing = timing;
    cfg.server.data_dir = dir.clone();
    cfg.journal.options.fsync = policy;
    let ccrd = Loopback::start(cfg, None, false).await.unwrap();
    let client = Client::connect(ccrd.addr, "localhost", std::slice::from_ref(&ccrd.cert)).await.unwrap();
    for agent in 1..=AGENTS {
        client
            .login(LoginRequest {
                agent_id: agent,
                skills: vec![AgentSkill { skill: "billing".into(), proficiency: 5 }],
                chat_capacity: 255,
                ready: true,
                ..Default::default()
            })
            .await
            .unwrap();
    }
    let mut rates = Vec::new();
    for round in 0..ROUNDS {
        let mut events = client.subscribe(vec![]).await.unwrap();
        let base = 1 + round * CONTACTS;
        let start = Instant::now();
        let counter = tokio::spawn(async move {
            let mut offers = 0;
            while offers < CONTACTS {
                match events.next().await {
                    Ok(RoutingEvent { event: Some(E::Offer(_)) }) => offers += 1,
                    Ok(_) => {}
                    // The daemon drops a subscriber that falls 4,096 events
                    // behind: say so rather than wait for offers forever.
                    Err(status) => panic!("event stream ended after {offers} offers: {status:?}"),
                }
            }
            Instant::now()
        });
        let enqueue = |id| {
            C::Enqueue(EnqueueRequest {
                contact_id: id,
                channel: Channel::Chat as i32,
                queue: "chat".into(),
                skills: vec![SkillRequirement { skill: "billing".into(), min_proficiency: 1 }],
                ..Default::default()
            })
        };
        pipeline(&client, base, enqueue).await;
        let done = counter.await.unwrap();
        let rate = CONTACTS as f64 / done.duration_since(start).as_secs_f64();
        println!(
            "  {name} round {round}: {CONTACTS} contacts enqueue→offer on one connection in {:?}: {rate:.0} /s",
            done - start
        );
        rates.push(rate);
        // Free the agents for the next round.
        pipeline(&client, base, |id| C::Abandon(AbandonRequest { contact_id: id })).await;
    }
    rates.sort_by(f64::total_cmp);
    drop(client);
    let _ = ccrd.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
    rates[rates.len() / 2]
}

/// Sends `CONTACTS` commands on one gateway stream and reads every reply.
async fn pipeline(client: &Client, base: u64, command: impl Fn(u64) -> C) {
    let mut writer = client.gateway_stream().await.unwrap();
    for id in base..base + CONTACTS {
        writer.push(&GatewayCommand { id, command: Some(command(id)) });
        if id % 256 == 0 {
            writer.flush().await.unwrap();
        }
    }
    writer.finish().await.unwrap();
    for _ in 0..CONTACTS {
        let reply = writer.next_reply().await.unwrap();
        assert!(reply.status.as_ref().is_none_or(|s| s.code == 0), "refused: {reply:?}");
    }
}
