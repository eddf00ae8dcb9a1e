//! How many contacts per second one gateway connection gets routed through
//! `Gateway/Stream`: from the first command sent to the last of their offers
//! delivered to an event subscriber (enqueue → offer), over loopback QUIC,
//! client and ccrd in this process. 500 chat agents with room for 255 chats
//! each take every contact, so each enqueue is one routing decision.
//!
//! `cargo bench -p ccr-benches --bench stream` (target: ≥ 50,000 /s)

use std::time::Instant;

use ccr_daemon::config;
use ccr_daemon::loopback::Loopback;
use ccr_proto::client::Client;
use ccr_proto::v1::gateway_command::Command as C;
use ccr_proto::v1::routing_event::Event as E;
use ccr_proto::v1::*;

const CONFIG: &str = r#"
skills = ["billing"]
[server]
max_pending_requests = 1000000
[[queues]]
name = "chat"
offer_timeout = "1h"
"#;

const AGENTS: u64 = 500;
const CONTACTS: u64 = 50_000;

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // cargo test --benches asks for a listing
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        let dir = std::env::temp_dir().join(format!("ccr-bench-stream-{}", std::process::id()));
        // `-- --no-decision-timing`: the same run with the routing thread's
        // only metrics work (timing each command) switched off.
        let timing = !std::env::args().any(|a| a == "--no-decision-timing");
        let mut cfg = config::parse(CONFIG).unwrap();
        cfg.server.decision_timing = timing;
        println!("decision timing (ccr_routing_decision_seconds): {}", if timing { "on" } else { "off" });
        cfg.server.data_dir = dir.clone();
        let ccrd = Loopback::start(cfg, None, false).await.unwrap();
        let client = Client::connect(ccrd.addr, "localhost", std::slice::from_ref(&ccrd.cert)).await.unwrap();
        for agent in 0..AGENTS {
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
        for round in 0..3u64 {
            let mut events = client.subscribe(vec![]).await.unwrap();
            let base = 1 + round * CONTACTS;
            let start = Instant::now();
            let counter = tokio::spawn(async move {
                let mut offers = 0;
                while offers < CONTACTS {
                    if let Ok(RoutingEvent { event: Some(E::Offer(_)) }) = events.next().await {
                        offers += 1;
                    }
                }
                Instant::now()
            });
            let mut writer = client.gateway_stream().await.unwrap();
            let mut replies = 0;
            for id in base..base + CONTACTS {
                writer.push(&GatewayCommand {
                    id,
                    command: Some(C::Enqueue(EnqueueRequest {
                        contact_id: id,
                        channel: Channel::Chat as i32,
                        queue: "chat".into(),
                        skills: vec![SkillRequirement { skill: "billing".into(), min_proficiency: 1 }],
                        ..Default::default()
                    })),
                });
                if id % 256 == 0 {
                    writer.flush().await.unwrap();
                }
            }
            writer.finish().await.unwrap();
            while replies < CONTACTS {
                let reply = writer.next_reply().await.unwrap();
                assert!(reply.status.as_ref().is_none_or(|s| s.code == 0), "refused: {reply:?}");
                replies += 1;
            }
            let done = counter.await.unwrap();
            let rate = CONTACTS as f64 / done.duration_since(start).as_secs_f64();
            println!(
                "round {round}: {CONTACTS} contacts enqueue→offer on one connection in {:?}: {rate:.0} /s",
                done - start
            );
            rates.push(rate);
            // Free the agents for the next round.
            for id in base..base + CONTACTS {
                let _ = client.abandon(AbandonRequest { contact_id: id }).await;
            }
        }
        rates.sort_by(f64::total_cmp);
        println!("median: {:.0} contacts/s (target ≥ 50,000)", rates[1]);
        drop(client);
        let _ = ccrd.stop().await;
        let _ = std::fs::remove_dir_all(&dir);
    });
}
