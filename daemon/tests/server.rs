//! ccrd black-box over QUIC on an ephemeral loopback port, driven through the
//! Rust client, on a manual clock: timers (offer timeouts, relaxation, the
//! session grace) fire when a test moves the clock, never on real time.
//! Every wait for a message is bounded.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use ccr_daemon::config;
use ccr_daemon::loopback::Loopback;
use ccr_proto::client::{Client, Subscription};
use ccr_proto::v1::{routing_event::Event as E, *};
use ccr_proto::wire::{self, Code, Frame};
use tokio::time::timeout;

const CONFIG: &str = r#"
skills = ["billing", "repair"]
languages = ["zh", "en", "yue"]

[routing]
session_grace = "300ms"

[[queues]]
name = "sales"
offer_timeout = "400ms"

[[queues.relaxation]]
after = "400ms"
next_language = true

[[queues]]
name = "support"
"#;

struct TestServer {
    client: Client,
    dir: std::path::PathBuf,
    daemon: Loopback,
}

static NEXT: AtomicU32 = AtomicU32::new(0);

async fn start() -> TestServer {
    start_from(None).await
}

async fn start_from(config_path: Option<std::path::PathBuf>) -> TestServer {
    let dir =
        std::env::temp_dir().join(format!("ccrd-test-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::SeqCst)));
    let mut config = config::parse(CONFIG).expect("test config");
    config.server.data_dir = dir.clone();
    config.server.config_path = config_path;
    let daemon = Loopback::start_with_manual_clock(config, None, false).await.expect("ccrd starts");
    let client = Client::connect(daemon.addr, "localhost", std::slice::from_ref(&daemon.cert)).await.expect("connect");
    TestServer { client, dir, daemon }
}

impl TestServer {
    async fn second_client(&self) -> Client {
        Client::connect(self.daemon.addr, "localhost", std::slice::from_ref(&self.daemon.cert)).await.expect("connect")
    }

    /// Moves ccrd's clock; returns once what is due has fired.
    async fn advance(&self, by: Duration) {
        self.daemon.advance(by).await.expect("the clock moves");
    }

    /// Waits until `Admin/Health` shows what `until` wants: how a test knows
    /// ccrd has seen a connection go before it moves the clock past the grace.
    async fn health_until(&self, until: impl Fn(&HealthResponse) -> bool) -> HealthResponse {
        for _ in 0..2000 {
            let health = self.client.health(HealthRequest {}).await.expect("health");
            if until(&health) {
                return health;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("Admin/Health never showed what the test waits for");
    }

    async fn stop(self) {
        drop(self.client);
        timeout(Duration::from_secs(10), self.daemon.stop()).await.expect("server stops").unwrap();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn login(agent: u64, skill: &str, languages: &[&str]) -> LoginRequest {
    LoginRequest {
        agent_id: agent,
        skills: vec![AgentSkill { skill: skill.into(), proficiency: 5 }],
        languages: languages.iter().map(|l| (*l).into()).collect(),
        voice_capacity: 1,
        ready: true,
        ..Default::default()
    }
}

fn contact(id: u64, queue: &str, tier: &str, skill: &str, languages: &[&str]) -> EnqueueRequest {
    EnqueueRequest {
        contact_id: id,
        channel: Channel::Voice as i32,
        queue: queue.into(),
        tier: tier.into(),
        skills: vec![SkillRequirement { skill: skill.into(), min_proficiency: 1 }],
        languages: languages.iter().map(|l| (*l).into()).collect(),
        ..Default::default()
    }
}

/// The next offer on a subscription, skipping other events.
async fn next_offer(sub: &mut Subscription) -> Offer {
    loop {
        let event =
            timeout(Duration::from_secs(5), sub.next()).await.expect("an event within 5 s").expect("stream open");
        if let Some(E::Offer(offer)) = event.event {
            return offer;
        }
    }
}

async fn next_matching(sub: &mut Subscription, want: impl Fn(&E) -> bool) -> E {
    loop {
        let event =
            timeout(Duration::from_secs(5), sub.next()).await.expect("an event within 5 s").expect("stream open");
        if let Some(e) = event.event {
            if want(&e) {
                return e;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gold_served_before_standard() {
    let s = start().await;
    let mut desk = s.client.subscribe(vec![1]).await.unwrap();
    s.client.enqueue(contact(10, "support", "standard", "billing", &[])).await.unwrap();
    s.client.enqueue(contact(11, "support", "gold", "billing", &[])).await.unwrap();
    s.client.login(login(1, "billing", &["en"])).await.unwrap();
    let offer = next_offer(&mut desk).await;
    assert_eq!(offer.contact_id, 11, "gold first");
    assert_eq!(offer.tier, "gold");
    s.client.accept(AcceptRequest { agent_id: 1, offer_id: offer.offer_id }).await.unwrap();
    s.client.complete(CompleteRequest { agent_id: 1, contact_id: 11 }).await.unwrap();
    assert_eq!(next_offer(&mut desk).await.contact_id, 10);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn language_match_then_fallback_after_relaxation() {
    let s = start().await;
    let mut desk = s.client.subscribe(vec![1]).await.unwrap();
    s.client.login(login(1, "billing", &["zh"])).await.unwrap();
    s.client.enqueue(contact(10, "sales", "standard", "billing", &["yue", "zh"])).await.unwrap();
    // Nobody speaks Cantonese: no offer at once, the Mandarin speaker after 400 ms.
    s.advance(Duration::from_millis(399)).await;
    let stats = s.client.queue_stats(QueueStatsRequest { queue: "sales".into() }).await.unwrap();
    assert_eq!((stats.waiting_by_tier["standard"], stats.agents_by_state["available"]), (1, 1), "not offered yet");
    s.advance(Duration::from_millis(1)).await;
    let offer = next_offer(&mut desk).await;
    assert_eq!((offer.contact_id, offer.agent_id), (10, 1));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rona_after_an_offer_timeout() {
    let s = start().await;
    let mut desk = s.client.subscribe(vec![1]).await.unwrap();
    s.client.login(login(1, "billing", &["en"])).await.unwrap();
    s.client.enqueue(contact(10, "sales", "standard", "billing", &[])).await.unwrap();
    let offer = next_offer(&mut desk).await;
    s.advance(Duration::from_millis(400)).await;
    let ended = next_matching(&mut desk, |e| matches!(e, E::OfferEnded(_))).await;
    let E::OfferEnded(ended) = ended else { unreachable!() };
    assert_eq!((ended.offer_id, ended.outcome.as_str()), (offer.offer_id, "expired"));
    let state = next_matching(&mut desk, |e| matches!(e, E::AgentState(s) if s.state == "not_ready")).await;
    assert!(matches!(state, E::AgentState(s) if s.reason == "rona"));
    // A late accept is refused; the contact is waiting again.
    let late = s.client.accept(AcceptRequest { agent_id: 1, offer_id: offer.offer_id }).await.unwrap_err();
    assert_eq!(late.code(), Code::FailedPrecondition);
    let position = s.client.position(PositionRequest { contact_id: 10 }).await.unwrap();
    assert_eq!(position.position, 1);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandon_while_queued_is_counted() {
    let s = start().await;
    s.client.enqueue(contact(10, "support", "standard", "billing", &[])).await.unwrap();
    s.client.abandon(AbandonRequest { contact_id: 10 }).await.unwrap();
    let stats = s.client.queue_stats(QueueStatsRequest { queue: "support".into() }).await.unwrap();
    assert_eq!(stats.short_abandoned + stats.abandoned, 1);
    assert_eq!(stats.waiting_by_tier.values().sum::<u32>(), 0);
    let again = s.client.abandon(AbandonRequest { contact_id: 10 }).await.unwrap_err();
    assert_eq!(again.code(), Code::NotFound);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfer_keeps_the_context() {
    let s = start().await;
    let mut desks = s.client.subscribe(vec![1, 2]).await.unwrap();
    s.client.login(login(1, "billing", &["en"])).await.unwrap();
    let mut request = contact(10, "support", "gold", "billing", &[]);
    request.context = vec![ContextEntry { key: "order".into(), value: "A-17".into() }];
    s.client.enqueue(request).await.unwrap();
    let offer = next_offer(&mut desks).await;
    assert_eq!(offer.context, vec![ContextEntry { key: "order".into(), value: "A-17".into() }]);
    s.client.accept(AcceptRequest { agent_id: 1, offer_id: offer.offer_id }).await.unwrap();
    s.client.login(login(2, "repair", &["en"])).await.unwrap();
    s.client
        .transfer(TransferRequest {
            contact_id: 10,
            queue: "support".into(),
            skills: vec![SkillRequirement { skill: "repair".into(), min_proficiency: 1 }],
            context: vec![ContextEntry { key: "note".into(), value: "technician".into() }],
            ..Default::default()
        })
        .await
        .unwrap();
    let offer = next_offer(&mut desks).await;
    assert_eq!((offer.contact_id, offer.agent_id), (10, 2));
    assert_eq!(offer.tier, "gold", "tier kept");
    let keys: Vec<&str> = offer.context.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(keys, vec!["order", "note"]);
    s.stop().await;
}

/// Sends raw bytes as one stream and returns the trailer's status.
async fn raw_call(client: &Client, bytes: &[u8]) -> ccr_proto::v1::Status {
    let (mut send, mut recv) = client.connection().open_bi().await.unwrap();
    send.write_all(bytes).await.unwrap();
    send.finish().unwrap();
    let reply = timeout(Duration::from_secs(5), recv.read_to_end(1 << 20)).await.expect("answered").unwrap();
    let mut at = 0;
    loop {
        match wire::decode_frame(&reply[at..], 1 << 20).unwrap() {
            Some((Frame::Trailer(status), _)) => return status,
            Some((Frame::Message(_), used)) => at += used,
            None => panic!("no trailer in {reply:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_status_and_harms_nobody() {
    let s = start().await;
    let other = s.second_client().await;
    let health = |c: &Client| {
        let c = c.clone();
        async move { c.health(HealthRequest {}).await.unwrap().status }
    };

    let mut unknown = Vec::new();
    wire::encode_header("/ccr.v1.Gateway/Teleport", &mut unknown);
    wire::encode_message(&HealthRequest {}, &mut unknown);
    assert_eq!(raw_call(&s.client, &unknown).await.code(), Code::Unimplemented);

    let mut malformed = Vec::new();
    wire::encode_header("/ccr.v1.Gateway/Enqueue", &mut malformed);
    malformed.extend_from_slice(&[0, 0, 0, 0, 3, 0xff, 0xff, 0xff]);
    assert_eq!(raw_call(&s.client, &malformed).await.code(), Code::InvalidArgument);

    assert_eq!(raw_call(&s.client, b"\x07garbage").await.code(), Code::InvalidArgument);

    let mut oversized = Vec::new();
    wire::encode_header("/ccr.v1.Gateway/Enqueue", &mut oversized);
    oversized.extend_from_slice(&[0, 0x10, 0, 0, 0]);
    assert_eq!(raw_call(&s.client, &oversized).await.code(), Code::ResourceExhausted);

    let unknown_queue = s.client.enqueue(contact(1, "nowhere", "", "billing", &[])).await.unwrap_err();
    assert_eq!(unknown_queue.code(), Code::NotFound);
    let unknown_skill = s.client.enqueue(contact(1, "sales", "", "juggling", &[])).await.unwrap_err();
    assert_eq!(unknown_skill.code(), Code::InvalidArgument);
    let bad_channel = s.client.enqueue(EnqueueRequest { channel: 9, ..contact(1, "sales", "", "billing", &[]) });
    assert_eq!(bad_channel.await.unwrap_err().code(), Code::InvalidArgument);
    let unknown_agent = s.client.accept(AcceptRequest { agent_id: 99, offer_id: 1 }).await.unwrap_err();
    assert_eq!(unknown_agent.code(), Code::NotFound);

    // The same connection and another client are still served, and the
    // protocol errors (unknown method, bad version, oversized frame) were counted.
    let h = s.client.health(HealthRequest {}).await.unwrap();
    assert_eq!(h.protocol_errors, 3, "{h:?}");
    assert_eq!(h.open_connections, 2);
    assert_eq!(health(&s.client).await, "serving");
    assert_eq!(health(&other).await, "serving");
    s.client.enqueue(contact(1, "sales", "", "billing", &[])).await.unwrap();
    let duplicate = other.enqueue(contact(1, "sales", "", "billing", &[])).await.unwrap_err();
    assert_eq!(duplicate.code(), Code::AlreadyExists);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_accept_is_idempotent_over_the_wire() {
    let s = start().await;
    let mut desk = s.client.subscribe(vec![1]).await.unwrap();
    s.client.login(login(1, "billing", &["en"])).await.unwrap();
    s.client.enqueue(contact(10, "support", "", "billing", &[])).await.unwrap();
    let offer = next_offer(&mut desk).await;
    let first = s.client.accept(AcceptRequest { agent_id: 1, offer_id: offer.offer_id }).await.unwrap();
    let second = s.client.accept(AcceptRequest { agent_id: 1, offer_id: offer.offer_id }).await.unwrap();
    assert_eq!((first.contact_id, first.duplicate), (10, false));
    assert_eq!((second.contact_id, second.duplicate), (10, true));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_agent_connection_reroutes_its_offer_at_once_and_keeps_the_agent_not_ready_for_the_grace() {
    let s = start().await;
    let desk_one = s.second_client().await;
    let mut desk_two = s.client.subscribe(vec![2]).await.unwrap();
    desk_one.login(login(1, "billing", &["en"])).await.unwrap();
    s.client.login(login(2, "billing", &["en"])).await.unwrap();
    s.client
        .set_state(SetStateRequest { agent_id: 2, ready: false, reason: NotReadyReason::Break as i32 })
        .await
        .unwrap();
    s.client.enqueue(contact(10, "support", "", "billing", &[])).await.unwrap();
    s.client.set_state(SetStateRequest { agent_id: 2, ready: true, ..Default::default() }).await.unwrap();
    // Agent 1 holds the offer; its desktop vanishes.
    desk_one.close();
    let offer = next_offer(&mut desk_two).await;
    assert_eq!((offer.contact_id, offer.agent_id), (10, 2));
    let stats = s.client.queue_stats(QueueStatsRequest { queue: "support".into() }).await.unwrap();
    assert_eq!(stats.agents_by_state["not_ready"], 1, "agent 1 waits out the grace, taking no offer");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_that_does_not_come_back_loses_its_contacts_after_the_grace() {
    let s = start().await;
    let gateway = s.second_client().await;
    gateway.enqueue(contact(10, "support", "", "billing", &[])).await.unwrap();
    gateway.enqueue(contact(11, "support", "", "billing", &[])).await.unwrap();
    gateway.close();
    s.health_until(|h| h.sessions_in_grace == 1).await;
    // Within the grace both wait; a reconnected gateway reclaims contact 11.
    s.advance(Duration::from_millis(299)).await;
    let stats = s.client.queue_stats(QueueStatsRequest { queue: "support".into() }).await.unwrap();
    assert_eq!(stats.waiting_by_tier.values().sum::<u32>(), 2);
    s.client.position(PositionRequest { contact_id: 11 }).await.unwrap();
    s.advance(Duration::from_millis(1)).await;
    assert_eq!(s.client.health(HealthRequest {}).await.unwrap().sessions_in_grace, 0, "the grace is over");
    let gone = s.client.position(PositionRequest { contact_id: 10 }).await.unwrap_err();
    assert_eq!(gone.code(), Code::NotFound, "abandoned after the grace");
    let kept = s.client.position(PositionRequest { contact_id: 11 }).await.unwrap();
    assert_eq!(kept.position, 1, "reclaimed contact still waits");
    s.stop().await;
}

/// Ownership is recorded by the core when it applies each enqueue, not
/// after the reply reaches the connection: contacts whose replies were still
/// in flight when the gateway vanished are abandoned after the grace with
/// the others, never left queued with nobody to answer for them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contacts_enqueued_as_their_connection_drops_are_abandoned_after_the_grace() {
    let s = start().await;
    let gateway = s.second_client().await;
    let mut stream = gateway.gateway_stream().await.unwrap();
    use ccr_proto::v1::gateway_command::Command as C;
    for id in 1..=2000u64 {
        stream.push(&GatewayCommand { id, command: Some(C::Enqueue(contact(id, "support", "", "billing", &[]))) });
    }
    stream.flush().await.unwrap();
    // Gone without reading a single reply.
    gateway.close();
    let lost = s.health_until(|h| h.sessions_live == 1).await;
    let waiting = || async {
        let stats = s.client.queue_stats(QueueStatsRequest { queue: "support".into() }).await.unwrap();
        stats.waiting_by_tier.values().sum::<u32>()
    };
    let before = waiting().await;
    assert_eq!(lost.sessions_in_grace, u32::from(before > 0), "the gone gateway's session waits out its grace");
    s.advance(Duration::from_millis(300)).await;
    assert_eq!(
        waiting().await,
        0,
        "every contact of the gone gateway abandoned after the grace ({before} were waiting)"
    );
    s.stop().await;
}

/// A desktop that reconnects and logs in again on a new connection takes its
/// agent over; the old connection's loss then changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_connections_loss_does_not_log_out_an_agent_who_logged_in_again() {
    let s = start().await;
    let old_desk = s.second_client().await;
    old_desk.login(login(1, "billing", &["en"])).await.unwrap();
    let new_desk = s.second_client().await;
    new_desk.login(login(1, "billing", &["en"])).await.expect("a login from a new connection takes over");
    old_desk.close();
    // The old session owns nothing now: it goes at once, with no grace.
    let health = s.health_until(|h| h.sessions_live == 2).await;
    assert_eq!(health.sessions_in_grace, 0);
    s.advance(Duration::from_millis(700)).await;
    let stats = s.client.queue_stats(QueueStatsRequest { queue: "support".into() }).await.unwrap();
    assert_eq!(stats.agents_by_state["available"], 1, "{:?}", stats.agents_by_state);
    s.stop().await;
}

/// One writer per data directory: a second ccrd on it refuses to start and
/// names the process that holds it; the first serves on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_ccrd_on_the_same_data_directory_refuses_to_start() {
    let s = start().await;
    let mut config = config::parse(CONFIG).expect("test config");
    config.server.data_dir = s.dir.clone();
    let second = Loopback::start(config, None, false).await.expect("binds");
    let refused = timeout(Duration::from_secs(10), second.stop()).await.expect("returns").unwrap_err();
    let message = refused.to_string();
    assert!(message.contains(&format!("pid {}", std::process::id())), "{message}");
    assert_eq!(s.client.health(HealthRequest {}).await.unwrap().status, "serving");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_logs_every_agent_out_and_keeps_the_contacts() {
    let s = start().await;
    s.client.login(login(1, "billing", &["en"])).await.unwrap();
    s.client.login(login(2, "repair", &["en"])).await.unwrap();
    s.client.enqueue(contact(10, "support", "", "billing", &[])).await.unwrap();
    s.client.enqueue(contact(11, "support", "", "billing", &[])).await.unwrap();
    assert_eq!(s.client.drain(DrainRequest {}).await.unwrap().agents_logged_out, 2);
    let stats = s.client.queue_stats(QueueStatsRequest { queue: "support".into() }).await.unwrap();
    assert_eq!(stats.agents_by_state.values().sum::<u32>(), 0);
    assert_eq!(stats.waiting_by_tier.values().sum::<u32>(), 2, "callers stay in line");
    s.stop().await;
}

/// Every stream gets exactly one trailer; a unary call is exactly one
/// message; an oversized command refuses that command, not the stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_edges_answer_as_the_document_says() {
    let s = start().await;
    let conn = s.client.connection();
    let call = |bytes: Vec<u8>| async move {
        let (mut send, mut recv) = conn.open_bi().await.unwrap();
        send.write_all(&bytes).await.unwrap();
        send.finish().unwrap();
        let answer = timeout(Duration::from_secs(5), recv.read_to_end(1 << 20)).await.unwrap().unwrap();
        let mut trailers = Vec::new();
        let mut at = 0;
        while let Ok(Some((frame, used))) = wire::decode_frame(&answer[at..], 1 << 20) {
            if let Frame::Trailer(status) = frame {
                trailers.push(status);
            }
            at += used;
        }
        assert_eq!(at, answer.len(), "nothing after the frames");
        trailers
    };
    let empty = call(Vec::new()).await;
    assert_eq!(empty.len(), 1, "an empty stream gets one trailer");
    assert_eq!(empty[0].code(), Code::InvalidArgument);

    let mut two = Vec::new();
    wire::encode_header("/ccr.v1.Gateway/Enqueue", &mut two);
    wire::encode_message(&contact(1, "support", "", "billing", &[]), &mut two);
    wire::encode_message(&contact(2, "support", "", "billing", &[]), &mut two);
    let refused = call(two).await;
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0].code(), Code::InvalidArgument, "{:?}", refused[0]);
    let unknown = s.client.position(PositionRequest { contact_id: 1 }).await.unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound, "the call with two messages changed nothing");

    let mut stream = s.client.gateway_stream().await.unwrap();
    use ccr_proto::v1::gateway_command::Command as C;
    stream.push(&GatewayCommand { id: 1, command: Some(C::Enqueue(contact(1, "support", "", "billing", &[]))) });
    let mut huge = contact(2, "support", "", "billing", &[]);
    huge.context = vec![ContextEntry { key: "k".into(), value: "x".repeat(100_000) }];
    stream.push(&GatewayCommand { id: 2, command: Some(C::Enqueue(huge)) });
    stream.push(&GatewayCommand { id: 3, command: Some(C::Enqueue(contact(3, "support", "", "billing", &[]))) });
    stream.finish().await.unwrap();
    let mut got = Vec::new();
    for _ in 0..3 {
        let reply = timeout(Duration::from_secs(5), stream.next_reply()).await.unwrap().unwrap();
        got.push(reply.status.as_ref().map_or(Code::Ok, |s| s.code()));
    }
    assert_eq!(got, [Code::Ok, Code::ResourceExhausted, Code::Ok], "the stream goes on past the refused command");
    assert_eq!(stream.next_reply().await.unwrap_err().code(), Code::Ok, "clean end");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_stream_answers_every_command_in_order() {
    let s = start().await;
    let mut desk = s.client.subscribe(vec![1]).await.unwrap();
    let mut stream = s.client.gateway_stream().await.unwrap();
    use ccr_proto::v1::gateway_command::Command as C;
    use ccr_proto::v1::gateway_reply::Response as R;
    for id in 1..=200u64 {
        let command = match id {
            7 => C::Enqueue(contact(1, "support", "", "billing", &[])), // duplicate of id 1
            8 => C::Enqueue(contact(999, "nowhere", "", "billing", &[])),
            9 => C::Position(PositionRequest { contact_id: 1 }),
            _ => C::Enqueue(contact(id, "support", "", "billing", &[])),
        };
        stream.push(&GatewayCommand { id, command: Some(command) });
    }
    stream.finish().await.unwrap();
    for id in 1..=200u64 {
        let reply = timeout(Duration::from_secs(5), stream.next_reply()).await.unwrap().unwrap();
        assert_eq!(reply.id, id, "replies in order");
        let code = reply.status.as_ref().map_or(Code::Ok, |s| s.code());
        match id {
            7 => assert_eq!(code, Code::AlreadyExists),
            8 => assert_eq!(code, Code::NotFound),
            9 => assert!(matches!(reply.response, Some(R::Position(PositionResponse { position: 1, .. })))),
            _ => assert!(matches!(reply.response, Some(R::Enqueue(_))), "{reply:?}"),
        }
    }
    assert_eq!(stream.next_reply().await.unwrap_err().code(), Code::Ok, "clean end");
    s.client.login(login(1, "billing", &["en"])).await.unwrap();
    assert_eq!(next_offer(&mut desk).await.contact_id, 1, "first enqueued, first offered");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_config_applies_new_queue_parameters() {
    let s = start().await;
    // The test server was started from text, not a file.
    let refused = s.client.reload_config(ReloadConfigRequest {}).await.unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    s.stop().await;

    let path = std::env::temp_dir().join(format!("ccrd-reload-{}.toml", std::process::id()));
    std::fs::write(&path, CONFIG).unwrap();
    let s = start_from(Some(path.clone())).await;
    std::fs::write(&path, CONFIG.replace("offer_timeout = \"400ms\"", "offer_timeout = \"5s\"")).unwrap();
    assert_eq!(s.client.reload_config(ReloadConfigRequest {}).await.unwrap().queues, 2);
    // With the new timeout the offer no longer rings out after 400 ms.
    let mut desk = s.client.subscribe(vec![1]).await.unwrap();
    s.client.login(login(1, "billing", &["en"])).await.unwrap();
    s.client.enqueue(contact(10, "sales", "", "billing", &[])).await.unwrap();
    let offer = next_offer(&mut desk).await;
    s.advance(Duration::from_millis(700)).await;
    s.client.accept(AcceptRequest { agent_id: 1, offer_id: offer.offer_id }).await.unwrap();
    // Renaming a queue needs a restart.
    std::fs::write(&path, CONFIG.replace("name = \"support\"", "name = \"help\"")).unwrap();
    let renamed = s.client.reload_config(ReloadConfigRequest {}).await.unwrap_err();
    assert_eq!(renamed.code(), Code::InvalidArgument);
    s.stop().await;
    let _ = std::fs::remove_file(&path);
}

/// A stop ends every subscription with the documented UNAVAILABLE trailer,
/// after the events it had, and answers gateway streams the same way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_ends_subscriptions_and_gateway_streams_with_unavailable() {
    let s = start().await;
    let mut desk = s.client.subscribe(vec![1]).await.unwrap();
    s.client.login(login(1, "billing", &["en"])).await.unwrap();
    let mut stream = s.client.gateway_stream().await.unwrap();
    use ccr_proto::v1::gateway_command::Command as C;
    stream.push(&GatewayCommand { id: 1, command: Some(C::Enqueue(contact(10, "support", "", "billing", &[]))) });
    stream.flush().await.unwrap();
    let reply = timeout(Duration::from_secs(5), stream.next_reply()).await.unwrap().unwrap();
    assert!(reply.status.as_ref().is_none_or(|st| st.code == 0), "{reply:?}");
    assert_eq!(next_offer(&mut desk).await.contact_id, 10);
    let TestServer { client, dir, daemon } = s;
    let stopping = tokio::spawn(async move { timeout(Duration::from_secs(10), daemon.stop()).await });
    let end = loop {
        match timeout(Duration::from_secs(5), desk.next()).await.expect("the stream ends within 5 s") {
            Ok(_) => continue,
            Err(status) => break status,
        }
    };
    assert_eq!(end.code(), Code::Unavailable, "{end:?}");
    let end = timeout(Duration::from_secs(5), stream.next_reply()).await.unwrap().unwrap_err();
    assert_eq!(end.code(), Code::Unavailable, "{end:?}");
    drop(client);
    stopping.await.unwrap().expect("stops").unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_and_times_out_of_range_are_refused() {
    let s = start().await;
    for id in [0, u64::MAX, 1 << 63] {
        let refused = s.client.enqueue(contact(id, "support", "", "billing", &[])).await.unwrap_err();
        assert_eq!(refused.code(), Code::InvalidArgument, "contact id {id}");
    }
    let refused = s.client.login(login(0, "billing", &["en"])).await.unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument, "agent id 0");
    let callback = |due: u64| ScheduleCallbackRequest {
        contact: Some(contact(5, "support", "", "billing", &[])),
        due_unix_micros: due,
        deadline_unix_micros: due,
    };
    let refused = s.client.schedule_callback(callback(u64::MAX)).await.unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument, "a callback due at the end of time");
    let tomorrow = (std::time::SystemTime::now() + Duration::from_secs(86_400))
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64;
    s.client.schedule_callback(callback(tomorrow)).await.expect("a callback due tomorrow");
    s.client.enqueue(contact(MAX_ID, "support", "", "billing", &[])).await.expect("the largest id");
    s.stop().await;
}

const MAX_ID: u64 = i64::MAX as u64;

/// A call opened past `max_streams_per_connection` is answered at once with
/// RESOURCE_EXHAUSTED (not left waiting); other connections are served; a
/// subscription the client drops frees its place; a stop still ends every
/// open stream with its trailer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_past_the_stream_limit_are_refused_and_a_dropped_subscription_frees_its_place() {
    let dir = std::env::temp_dir().join(format!("ccrd-streams-{}", std::process::id()));
    let mut config = config::parse(&format!("{CONFIG}\n[server]\nmax_streams_per_connection = 4\n")).unwrap();
    config.server.data_dir = dir.clone();
    let daemon = Loopback::start_with_manual_clock(config, None, false).await.unwrap();
    let connect = || Client::connect(daemon.addr, "localhost", std::slice::from_ref(&daemon.cert));
    let (greedy, other) = (connect().await.unwrap(), connect().await.unwrap());
    let mut subscriptions = Vec::new();
    for agent in 1..=4 {
        subscriptions.push(greedy.subscribe(vec![agent]).await.unwrap());
    }
    // Twice the limit at once: every one is answered, none waits.
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let greedy = greedy.clone();
        calls.spawn(async move { greedy.health(HealthRequest {}).await });
    }
    while let Some(refused) = timeout(Duration::from_secs(5), calls.join_next()).await.expect("answered at once") {
        let status = refused.unwrap().unwrap_err();
        assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
        assert!(status.message.contains("limit 4"), "{status:?}");
    }
    let health = other.health(HealthRequest {}).await.expect("another connection is served");
    assert_eq!(health.refused_requests, 8);
    // The client drops one subscription: its place is free again.
    drop(subscriptions.pop());
    let mut served = None;
    for _ in 0..2000 {
        match greedy.health(HealthRequest {}).await {
            Ok(health) => {
                served = Some(health);
                break;
            }
            Err(status) => assert_eq!(status.code(), Code::ResourceExhausted),
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(served.is_some(), "a call is served once a subscription ended");
    // The stop ends the three left with UNAVAILABLE.
    let stopping = tokio::spawn(async move { timeout(Duration::from_secs(10), daemon.stop()).await });
    for mut sub in subscriptions {
        let end = loop {
            match timeout(Duration::from_secs(5), sub.next()).await.expect("the stream ends within 5 s") {
                Ok(_) => continue,
                Err(status) => break status,
            }
        };
        assert_eq!(end.code(), Code::Unavailable, "{end:?}");
    }
    stopping.await.unwrap().expect("stops").unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

/// A quiet centre: a desktop's connection that carries nothing for longer
/// than `server.idle_timeout` stays open — ccrd pings it — and its
/// subscription still delivers. (QUIC's own timers run on the real clock:
/// the idle timeout is 1 s here and the quiet 3 s.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_connection_outlives_the_idle_timeout() {
    let dir =
        std::env::temp_dir().join(format!("ccrd-test-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::SeqCst)));
    let mut config = config::parse(CONFIG).expect("test config");
    config.server.data_dir = dir.clone();
    config.server.idle_timeout = Duration::from_secs(1);
    let daemon = Loopback::start(config, None, false).await.expect("ccrd starts");
    let client = Client::connect(daemon.addr, "localhost", std::slice::from_ref(&daemon.cert)).await.expect("connect");
    let mut events = client.subscribe(Vec::new()).await.expect("subscribed");
    tokio::time::sleep(Duration::from_secs(3)).await;
    client.login(login(7, "billing", &["en"])).await.expect("the quiet connection still serves calls");
    let state = next_matching(&mut events, |e| matches!(e, E::AgentState(s) if s.agent_id == 7)).await;
    assert!(matches!(state, E::AgentState(s) if s.state == "available"));
    drop((events, client));
    timeout(Duration::from_secs(10), daemon.stop()).await.expect("server stops").unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
