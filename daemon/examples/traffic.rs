//! Steady synthetic traffic against a running ccrd, for the metrics proof
//! (`scripts/metrics-proof.sh`): agents log in and answer offers (some ring
//! out), a gateway enqueues contacts across queues and tiers and abandons
//! some, and now and then a malformed request is sent. Loopback only, bounded
//! by `SECONDS`.
//!
//! cargo run -p ccr-daemon --example traffic -- ADDR CERT.der SECONDS

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ccr_proto::client::Client;
use ccr_proto::v1::routing_event::Event as E;
use ccr_proto::v1::*;

const AGENTS: u64 = 8;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    anyhow::ensure!(args.len() == 4, "usage: traffic ADDR CERT.der SECONDS");
    let addr: SocketAddr = args[1].parse()?;
    anyhow::ensure!(addr.ip().is_loopback(), "traffic is only sent to loopback");
    let cert = std::fs::read(&args[2])?;
    let until = Instant::now() + Duration::from_secs(args[3].parse()?);
    let desk = Client::connect(addr, "localhost", std::slice::from_ref(&cert)).await?;
    let gateway = Client::connect(addr, "localhost", std::slice::from_ref(&cert)).await?;
    let mut events = desk.subscribe((1..=AGENTS).collect()).await.map_err(|s| anyhow::anyhow!("{s}"))?;
    for agent in 1..=AGENTS {
        desk.login(LoginRequest {
            agent_id: agent,
            skills: vec![
                AgentSkill { skill: "billing".into(), proficiency: 7 },
                AgentSkill { skill: "repair".into(), proficiency: 4 },
            ],
            languages: vec!["zh".into(), "en".into()],
            voice_capacity: 1,
            ready: true,
            ..Default::default()
        })
        .await
        .map_err(|s| anyhow::anyhow!("login: {s}"))?;
    }
    // Desktops: accept most offers, let one in eight ring out, complete after a while.
    let desk_task = {
        let desk = desk.clone();
        tokio::spawn(async move {
            let mut n = 0u64;
            while Instant::now() < until {
                let Ok(Ok(event)) = tokio::time::timeout(Duration::from_millis(500), events.next()).await else {
                    continue;
                };
                match event.event {
                    Some(E::Offer(offer)) => {
                        n += 1;
                        if n.is_multiple_of(8) {
                            continue; // rings out: RONA
                        }
                        let desk = desk.clone();
                        tokio::spawn(async move {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            let accept = AcceptRequest { agent_id: offer.agent_id, offer_id: offer.offer_id };
                            if desk.accept(accept).await.is_ok() {
                                tokio::time::sleep(Duration::from_millis(300)).await;
                                let done = CompleteRequest { agent_id: offer.agent_id, contact_id: offer.contact_id };
                                let _ = desk.complete(done).await;
                            }
                        });
                    }
                    Some(E::AgentState(s)) if s.state == "not_ready" => {
                        let _ = desk
                            .set_state(SetStateRequest { agent_id: s.agent_id, ready: true, ..Default::default() })
                            .await;
                    }
                    _ => {}
                }
            }
        })
    };
    let queues = ["billing", "repair", "general"];
    let tiers = ["gold", "silver", "standard"];
    let mut id = 0u64;
    while Instant::now() < until {
        id += 1;
        let request = EnqueueRequest {
            contact_id: id,
            channel: Channel::Voice as i32,
            queue: queues[(id % 3) as usize].into(),
            tier: tiers[(id % 7 % 3) as usize].into(),
            skills: vec![SkillRequirement {
                skill: if id % 3 == 1 { "repair" } else { "billing" }.into(),
                min_proficiency: 1,
            }],
            languages: vec!["zh".into()],
            ..Default::default()
        };
        let _ = gateway.enqueue(request).await;
        if id.is_multiple_of(5) {
            let _ = gateway.abandon(AbandonRequest { contact_id: id - 2 }).await;
        }
        if id.is_multiple_of(50) {
            // A malformed request: counted as a protocol error, harms nothing.
            if let Ok((mut send, _recv)) = gateway.connection().open_bi().await {
                let _ = send.write_all(b"\x09nonsense").await;
                let _ = send.finish();
            }
        }
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    let _ = desk_task.await;
    println!("traffic: {id} contacts sent");
    Ok(())
}
