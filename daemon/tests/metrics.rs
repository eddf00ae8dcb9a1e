//! The /metrics page of a running ccrd under a little traffic: every metric
//! family the dashboards use is there, with bounded labels.

use std::time::Duration;

use ccr_daemon::config;
use ccr_daemon::loopback::Loopback;
use ccr_proto::client::Client;
use ccr_proto::v1::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CONFIG: &str = r#"
skills = ["billing"]
[[queues]]
name = "sales"
[[queues]]
name = "support"
"#;

async fn scrape(addr: std::net::SocketAddr, path: &str) -> String {
    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    socket.write_all(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes()).await.unwrap();
    let mut response = String::new();
    socket.read_to_string(&mut response).await.unwrap();
    response
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_page_shows_every_family() {
    let dir = std::env::temp_dir().join(format!("ccrd-metrics-{}", std::process::id()));
    let mut config = config::parse(CONFIG).unwrap();
    config.server.data_dir = dir.clone();
    let daemon = Loopback::start_with_manual_clock(config, None, true).await.unwrap();
    let metrics_addr = daemon.metrics_addr.unwrap();
    let client = Client::connect(daemon.addr, "localhost", std::slice::from_ref(&daemon.cert)).await.unwrap();
    let mut desk = client.subscribe(vec![1]).await.unwrap();
    let contact = |id| EnqueueRequest {
        contact_id: id,
        channel: Channel::Voice as i32,
        queue: "sales".into(),
        tier: "gold".into(),
        skills: vec![SkillRequirement { skill: "billing".into(), min_proficiency: 1 }],
        ..Default::default()
    };
    client.enqueue(contact(1)).await.unwrap();
    client.enqueue(contact(2)).await.unwrap();
    client.abandon(AbandonRequest { contact_id: 2 }).await.unwrap();
    client
        .login(LoginRequest {
            agent_id: 1,
            skills: vec![AgentSkill { skill: "billing".into(), proficiency: 5 }],
            voice_capacity: 1,
            ready: true,
            ..Default::default()
        })
        .await
        .unwrap();
    let offer = loop {
        if let RoutingEvent { event: Some(routing_event::Event::Offer(o)) } = desk.next().await.expect("event stream") {
            break o;
        }
    };
    client.accept(AcceptRequest { agent_id: 1, offer_id: offer.offer_id }).await.unwrap();
    let _ = client.enqueue(EnqueueRequest { queue: "nowhere".into(), ..contact(3) }).await;
    // A command on Gateway/Stream is timed and counted under its own method.
    let mut stream = client.gateway_stream().await.unwrap();
    stream.push(&GatewayCommand { id: 7, command: Some(gateway_command::Command::Enqueue(contact(4))) });
    stream.flush().await.unwrap();
    let reply = stream.next_reply().await.unwrap();
    assert_eq!((reply.id, reply.status.map_or(0, |s| s.code)), (7, 0));
    stream.finish().await.unwrap();
    daemon.advance(Duration::from_secs(1)).await.unwrap(); // a sample of the new time

    let page = scrape(metrics_addr, "/metrics").await;
    assert!(page.starts_with("HTTP/1.1 200 OK"), "{page}");
    for family in [
        "ccr_queue_wait_seconds_bucket{queue=\"sales\",tier=\"gold\",outcome=\"routed\"",
        "ccr_queue_wait_seconds_count{queue=\"sales\",tier=\"gold\",outcome=\"abandoned\"} 1",
        "ccr_routing_decision_seconds_bucket",
        "ccr_rpc_duration_seconds_bucket{method=\"/ccr.v1.Gateway/Enqueue\"",
        "ccr_contacts_waiting{queue=\"support\",tier=\"standard\"} 0",
        "ccr_oldest_wait_seconds{queue=\"sales\"}",
        "ccr_agents{state=\"busy\"} 1",
        "ccr_agents_by_skill{skill=\"billing\",state=\"busy\"} 1",
        "ccr_contacts_total{queue=\"sales\",outcome=\"routed\"} 1",
        "ccr_contacts_total{queue=\"sales\",outcome=\"answered\"} 1",
        "ccr_answered_within_threshold_total{queue=\"sales\"} 1",
        "ccr_rpc_results_total{method=\"/ccr.v1.Gateway/Enqueue\",code=\"OK\"} 3",
        "ccr_rpc_results_total{method=\"/ccr.v1.Gateway/Enqueue\",code=\"NOT_FOUND\"} 1",
        "ccr_rpc_duration_seconds_count{method=\"/ccr.v1.Gateway/Enqueue\"} 4",
        "ccr_journal_failed 0",
        "ccr_build_info{version=\"",
        "process_cpu_seconds_total ",
        "process_resident_memory_bytes ",
        "process_open_fds ",
        "process_start_time_seconds ",
        "ccr_contacts_total{queue=\"sales\",outcome=\"short_abandoned\"} 1",
        "ccr_service_level_ratio{queue=\"sales\"} 1",
        "ccr_service_level_target_ratio{queue=\"sales\"} 0.8",
        "ccr_connections{role=\"any\"} 1",
        "ccr_protocol_errors_total{kind=\"bad_frame\"} 0",
        "ccr_refused_total{reason=\"pending_limit\"} 0",
        "ccr_core_timers ",
        "ccr_sessions{state=\"live\"} 1",
        "ccr_sessions{state=\"in_grace\"} 0",
        "ccr_refused_total{reason=\"stream_limit\"} 0",
    ] {
        assert!(page.contains(family), "missing {family} in\n{page}");
    }
    assert!(!page.contains("nowhere"), "client input never becomes a label");
    assert!(scrape(metrics_addr, "/other").await.starts_with("HTTP/1.1 404"));

    drop(client);
    tokio::time::timeout(Duration::from_secs(10), daemon.stop()).await.unwrap().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

/// The service level covers the configured window of the core's clock: a
/// caller who hung up after 30 s counts against it until the window has
/// moved past, then the queue is back to 1 (nothing in the window).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_level_follows_its_window_on_the_core_clock() {
    const WINDOW: &str = r#"
skills = ["billing"]
[server]
service_level_window = "1m"
[routing]
short_abandon = "5s"
[[queues]]
name = "sales"
service_level = { target = 0.8, threshold = "20s" }
"#;
    let dir = std::env::temp_dir().join(format!("ccrd-metrics-window-{}", std::process::id()));
    let mut config = config::parse(WINDOW).unwrap();
    config.server.data_dir = dir.clone();
    let daemon = Loopback::start_with_manual_clock(config, None, true).await.unwrap();
    let metrics_addr = daemon.metrics_addr.unwrap();
    let client = Client::connect(daemon.addr, "localhost", std::slice::from_ref(&daemon.cert)).await.unwrap();
    let level = || async {
        let page = scrape(metrics_addr, "/metrics").await;
        let line = page.lines().find(|l| l.starts_with("ccr_service_level_ratio{queue=\"sales\"}")).unwrap();
        line.rsplit(' ').next().unwrap().parse::<f64>().unwrap()
    };
    daemon.advance(Duration::from_secs(1)).await.unwrap();
    assert_eq!(level().await, 1.0, "nothing answered or abandoned yet");
    client
        .enqueue(EnqueueRequest {
            contact_id: 1,
            channel: Channel::Voice as i32,
            queue: "sales".into(),
            skills: vec![SkillRequirement { skill: "billing".into(), min_proficiency: 1 }],
            ..Default::default()
        })
        .await
        .unwrap();
    daemon.advance(Duration::from_secs(30)).await.unwrap();
    client.abandon(AbandonRequest { contact_id: 1 }).await.unwrap();
    daemon.advance(Duration::from_secs(1)).await.unwrap();
    assert_eq!(level().await, 0.0, "one abandon after 30 s, nothing answered in 20 s");
    daemon.advance(Duration::from_secs(58)).await.unwrap();
    assert_eq!(level().await, 0.0, "still inside the minute");
    daemon.advance(Duration::from_secs(2)).await.unwrap();
    assert_eq!(level().await, 1.0, "the abandon has left the window");

    drop(client);
    tokio::time::timeout(Duration::from_secs(10), daemon.stop()).await.unwrap().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

/// The probes on the metrics listener, through curl as a load balancer or
/// Kubernetes would ask: alive, ready once recovered, 404 elsewhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_readiness_answer_probes() {
    let dir = std::env::temp_dir().join(format!("ccrd-probes-{}", std::process::id()));
    let mut config = config::parse(CONFIG).unwrap();
    config.server.data_dir = dir.clone();
    let daemon = Loopback::start(config, None, true).await.unwrap();
    let base = format!("http://{}", daemon.metrics_addr.unwrap());
    let curl = |path: &'static str| {
        let url = format!("{base}{path}");
        tokio::task::spawn_blocking(move || {
            let out = std::process::Command::new("curl")
                .args(["-s", "-w", "\n%{http_code}", &url])
                .output()
                .expect("curl runs (it is on every machine CI uses)");
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            let (body, code) = text.rsplit_once('\n').expect("a status code");
            (code.to_owned(), body.trim_end().to_owned())
        })
    };
    assert_eq!(curl("/healthz").await.unwrap(), ("200".into(), "ok: alive".into()));
    assert_eq!(curl("/readyz").await.unwrap(), ("200".into(), "ready: serving".into()));
    assert_eq!(curl("/readyz?verbose=1").await.unwrap().0, "200");
    let (code, body) = curl("/nothing").await.unwrap();
    assert_eq!((code.as_str(), body.as_str()), ("404", "try /metrics, /healthz or /readyz"));
    daemon.stop().await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
