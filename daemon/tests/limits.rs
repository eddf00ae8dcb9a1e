//! Every bound on what a client can make ccrd hold, driven past by one
//! client: the refusal it gets, the refusal counted on `/metrics`, and
//! another client served all along. Loopback only, every wait bounded.

use std::time::Duration;

use ccr_daemon::config;
use ccr_daemon::loopback::Loopback;
use ccr_proto::client::Client;
use ccr_proto::v1::gateway_command::Command as C;
use ccr_proto::v1::*;
use ccr_proto::wire::Code;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::timeout;

const QUEUES: &str = r#"
[[queues]]
name = "support"
"#;

struct Limited {
    daemon: Loopback,
    dir: std::path::PathBuf,
}

impl Limited {
    async fn start(name: &str, settings: &str) -> Limited {
        let dir = std::env::temp_dir().join(format!("ccrd-limits-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut config = config::parse(&format!("skills = [\"billing\"]\n{settings}\n{QUEUES}")).expect("test config");
        config.server.data_dir = dir.clone();
        let daemon = Loopback::start_with_manual_clock(config, None, true).await.expect("ccrd starts");
        Limited { daemon, dir }
    }

    async fn client(&self) -> Client {
        Client::connect(self.daemon.addr, "localhost", std::slice::from_ref(&self.daemon.cert)).await.expect("connect")
    }

    /// `ccr_refused_total{reason}` as the page shows it now.
    async fn refused(&self, reason: &str) -> u64 {
        let page = scrape(self.daemon.metrics_addr.unwrap()).await;
        let name = format!("ccr_refused_total{{reason=\"{reason}\"}} ");
        let line = page.lines().find(|l| l.starts_with(&name)).unwrap_or_else(|| panic!("no {name} in\n{page}"));
        line[name.len()..].trim().parse().unwrap()
    }

    async fn stop(self) {
        timeout(Duration::from_secs(10), self.daemon.stop()).await.expect("stops").expect("cleanly");
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn scrape(addr: std::net::SocketAddr) -> String {
    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    socket.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n").await.unwrap();
    let mut page = String::new();
    timeout(Duration::from_secs(5), socket.read_to_string(&mut page)).await.expect("a page").unwrap();
    page
}

fn contact(id: u64, context: &[(&str, &str)]) -> EnqueueRequest {
    EnqueueRequest {
        contact_id: id,
        channel: Channel::Chat as i32,
        queue: "support".into(),
        skills: vec![SkillRequirement { skill: "billing".into(), min_proficiency: 1 }],
        context: context.iter().map(|(k, v)| ContextEntry { key: (*k).into(), value: (*v).into() }).collect(),
        ..Default::default()
    }
}

fn stats() -> QueueStatsRequest {
    QueueStatsRequest { queue: "support".into() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contacts_past_max_contacts_are_refused_callbacks_included() {
    let ccrd = Limited::start("contacts", "[routing]\nmax_contacts = 3").await;
    let (gateway, other) = (ccrd.client().await, ccrd.client().await);
    for id in 1..=3 {
        gateway.enqueue(contact(id, &[])).await.expect("within the limit");
    }
    let refused = gateway.enqueue(contact(4, &[])).await.unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert!(refused.message.contains("max_contacts"), "{refused:?}");
    let due = (std::time::SystemTime::now() + Duration::from_secs(3600))
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64;
    let callback = ScheduleCallbackRequest {
        contact: Some(contact(5, &[])),
        due_unix_micros: due,
        deadline_unix_micros: due + 60_000_000,
    };
    let refused = gateway.schedule_callback(callback).await.unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "a callback counts too: {refused:?}");
    assert_eq!(other.queue_stats(stats()).await.expect("others served").waiting_by_tier.values().sum::<u32>(), 3);
    gateway.abandon(AbandonRequest { contact_id: 1 }).await.unwrap();
    other.enqueue(contact(4, &[])).await.expect("room again once one left");
    assert_eq!(ccrd.refused("contact_limit").await, 2);
    ccrd.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_context_past_its_limits_is_refused_on_a_call_and_on_a_gateway_stream() {
    let ccrd = Limited::start("context", "[routing]\nmax_context_entries = 2\nmax_context_bytes = 64").await;
    let gateway = ccrd.client().await;
    let refused = gateway.enqueue(contact(1, &[("a", "1"), ("b", "2"), ("c", "3")])).await.unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    let long = "x".repeat(100);
    let mut stream = gateway.gateway_stream().await.unwrap();
    stream.push(&GatewayCommand { id: 1, command: Some(C::Enqueue(contact(2, &[("sip-call-id", &long)]))) });
    stream.push(&GatewayCommand { id: 2, command: Some(C::Enqueue(contact(3, &[("sip-call-id", "a1b2")]))) });
    stream.flush().await.unwrap();
    let first = timeout(Duration::from_secs(5), stream.next_reply()).await.unwrap().unwrap();
    assert_eq!(first.status.map(|s| (s.code, s.message.contains("over the limit"))), Some((8, true)));
    let second = timeout(Duration::from_secs(5), stream.next_reply()).await.unwrap().unwrap();
    assert!(second.status.as_ref().is_none_or(|s| s.code == 0), "the stream goes on: {second:?}");
    assert_eq!(ccrd.refused("context_limit").await, 2);
    drop(stream);
    ccrd.stop().await;
}

/// Subscribes `client` to `agent`: `subscribe` returns once ccrd has
/// registered the subscription (its `Subscribed` message), or with the
/// status it was refused with.
async fn subscribed(client: &Client, agent: u64) -> Result<ccr_proto::client::Subscription, ccr_proto::v1::Status> {
    timeout(Duration::from_secs(5), client.subscribe(vec![agent])).await.expect("answered within 5 s")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_past_their_limits_are_refused_and_a_closed_one_frees_its_place() {
    let ccrd =
        Limited::start("subscriptions", "[server]\nmax_subscriptions = 3\nmax_subscriptions_per_connection = 2").await;
    let (desk, supervisor, other) = (ccrd.client().await, ccrd.client().await, ccrd.client().await);
    let mut kept = vec![subscribed(&desk, 1).await.unwrap(), subscribed(&desk, 2).await.unwrap()];
    let refused = subscribed(&desk, 3).await.err().expect("a third on one connection is refused");
    assert_eq!(refused.code(), Code::ResourceExhausted);
    assert!(refused.message.contains("on this connection (limit 2)"), "{refused:?}");
    kept.push(subscribed(&supervisor, 4).await.unwrap());
    let refused = subscribed(&supervisor, 5).await.err().expect("a fourth in all is refused");
    assert!(refused.message.contains("server.max_subscriptions"), "{refused:?}");
    let refused = other.subscribe((1..=1025).collect()).await.err().expect("refused");
    assert!(refused.message.contains("at most 1024 agents"), "{refused:?}");
    other.queue_stats(stats()).await.expect("calls are served");
    // The subscriptions kept get their events.
    let login = LoginRequest {
        agent_id: 1,
        skills: vec![AgentSkill { skill: "billing".into(), proficiency: 5 }],
        chat_capacity: 1,
        ..Default::default()
    };
    other.login(login).await.unwrap();
    let event = timeout(Duration::from_secs(5), kept[0].next()).await.expect("an event").expect("open");
    assert!(matches!(event.event, Some(routing_event::Event::AgentState(s)) if s.agent_id == 1));
    // One closed: its place is free again, once ccrd has seen it go.
    drop(kept.remove(0));
    let mut again = None;
    for _ in 0..400 {
        match subscribed(&supervisor, 6).await {
            Ok(sub) => {
                again = Some(sub);
                break;
            }
            Err(status) => assert_eq!(status.code(), Code::ResourceExhausted),
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(again.is_some(), "a place freed by a closed subscription is taken again");
    assert!(ccrd.refused("subscription_limit").await >= 3);
    drop((kept, again));
    ccrd.stop().await;
}

/// A gateway that pipelines more request bytes than ccrd holds pending gets
/// RESOURCE_EXHAUSTED for the excess, in order, on the same stream; every
/// command gets its reply, and other clients are served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_bytes_past_max_pending_bytes_are_refused_in_order() {
    let settings = "[server]\nmax_message_bytes = 4096\nmax_pending_bytes = 4096\n[journal]\nfsync = \"always\"\n\
                    [routing]\nmax_context_bytes = 4000";
    let ccrd = Limited::start("pending", settings).await;
    let (gateway, other) = (ccrd.client().await, ccrd.client().await);
    let note = "n".repeat(3000);
    let mut stream = gateway.gateway_stream().await.unwrap();
    for id in 1..=300 {
        stream.push(&GatewayCommand { id, command: Some(C::Enqueue(contact(id, &[("note", &note)]))) });
    }
    stream.flush().await.unwrap();
    let (mut accepted, mut refused) = (0u64, 0u64);
    for id in 1..=300 {
        let reply = timeout(Duration::from_secs(10), stream.next_reply()).await.expect("a reply").unwrap();
        assert_eq!(reply.id, id, "replies in order");
        match reply.status {
            Some(s) if s.code != 0 => {
                assert_eq!((s.code, s.message.as_str()), (8, "too many pending requests; retry"));
                refused += 1;
            }
            _ => accepted += 1,
        }
    }
    assert!(accepted > 0 && refused > 0, "accepted {accepted}, refused {refused}");
    let waiting = other.queue_stats(stats()).await.expect("others served").waiting_by_tier.values().sum::<u32>();
    assert_eq!(u64::from(waiting), accepted, "what was refused changed nothing");
    assert_eq!(ccrd.refused("pending_limit").await, refused);
    drop(stream);
    ccrd.stop().await;
}

/// A scraper past `max_metrics_connections` is closed unanswered; once the
/// idle ones go, scrapes are served again and the refusal is counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_connections_past_the_limit_are_closed_unanswered() {
    let ccrd = Limited::start("scrapes", "[server]\nmax_metrics_connections = 2").await;
    let addr = ccrd.daemon.metrics_addr.unwrap();
    let idle =
        [tokio::net::TcpStream::connect(addr).await.unwrap(), tokio::net::TcpStream::connect(addr).await.unwrap()];
    let mut third = tokio::net::TcpStream::connect(addr).await.unwrap();
    let _ = third.write_all(b"GET /metrics HTTP/1.1\r\n\r\n").await;
    let mut answer = Vec::new();
    let _ = timeout(Duration::from_secs(5), third.read_to_end(&mut answer)).await.expect("closed at once");
    assert!(answer.is_empty(), "no page past the limit: {}", String::from_utf8_lossy(&answer));
    drop(idle);
    let mut counted = 0;
    for _ in 0..400 {
        let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
        let _ = socket.write_all(b"GET /metrics HTTP/1.1\r\n\r\n").await;
        let mut page = String::new();
        let _ = timeout(Duration::from_secs(5), socket.read_to_string(&mut page)).await;
        if let Some(line) = page.lines().find(|l| l.starts_with("ccr_refused_total{reason=\"metrics_limit\"} ")) {
            counted = line.rsplit(' ').next().unwrap().parse().unwrap();
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(counted >= 1, "served again, the refusal counted");
    ccrd.stop().await;
}

/// A subscriber that reads nothing while events pile up is dropped once the
/// events waiting for subscribers reach `max_queued_event_bytes`; the
/// desktop that reads keeps getting its events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_that_reads_nothing_is_dropped_at_the_queued_bytes_limit() {
    let settings = "[server]\nmax_queued_event_bytes = 1048576\nsubscriber_buffer = 1048576\n\
                    [routing]\nmax_context_bytes = 40000";
    let ccrd = Limited::start("queued", settings).await;
    let (watcher, desk, gateway) = (ccrd.client().await, ccrd.client().await, ccrd.client().await);
    let mut silent = watcher.subscribe(vec![]).await.unwrap();
    let mut reading = desk.subscribe(vec![1]).await.unwrap();
    let agents = 200u64;
    for agent in 1..=agents {
        let login = LoginRequest {
            agent_id: agent,
            skills: vec![AgentSkill { skill: "billing".into(), proficiency: 5 }],
            chat_capacity: 1,
            ready: true,
            ..Default::default()
        };
        desk.login(login).await.unwrap();
    }
    // One offer of ~30 kB for each agent: 6 MB of events for the silent one.
    let note = "c".repeat(30_000);
    let mut stream = gateway.gateway_stream().await.unwrap();
    for id in 1..=agents {
        stream.push(&GatewayCommand { id, command: Some(C::Enqueue(contact(id, &[("note", &note)]))) });
    }
    stream.flush().await.unwrap();
    for _ in 1..=agents {
        timeout(Duration::from_secs(10), stream.next_reply()).await.expect("a reply").unwrap();
    }
    // The reading desktop got agent 1's offer.
    let offer = loop {
        let event = timeout(Duration::from_secs(5), reading.next()).await.expect("an event").expect("still open");
        if let Some(routing_event::Event::Offer(offer)) = event.event {
            break offer;
        }
    };
    assert_eq!(offer.agent_id, 1);
    // The silent one, read at last: what was on its way, then the reason.
    let end = loop {
        match timeout(Duration::from_secs(5), silent.next()).await.expect("ends") {
            Ok(_) => continue,
            Err(status) => break status,
        }
    };
    assert_eq!(end.code(), Code::ResourceExhausted, "{end:?}");
    assert!(end.message.contains("max_queued_event_bytes"), "{end:?}");
    // The desktop still hears what happens after the drop.
    desk.accept(AcceptRequest { agent_id: 1, offer_id: offer.offer_id }).await.unwrap();
    let busy = loop {
        let event = timeout(Duration::from_secs(5), reading.next()).await.expect("an event").expect("still open");
        match event.event {
            Some(routing_event::Event::AgentState(state)) if state.state == "busy" => break state,
            _ => continue,
        }
    };
    assert_eq!(busy.agent_id, 1);
    drop(stream);
    ccrd.stop().await;
}
