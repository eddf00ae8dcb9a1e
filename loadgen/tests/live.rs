//! The live engine against a ccrd in this process on a loopback port: a
//! slice of the bank's day at high speed, bounded to a few seconds.

use std::time::Duration;

use ccr_daemon::config;
use ccr_daemon::loopback::Loopback;
use ccr_loadgen::live::{self, LiveOptions, Target};
use ccr_loadgen::scenario::{self, Scenario};

mod common;

/// Plays `s` at `speed` against a ccrd started for it on a loopback port
/// (its routing scaled to the speed, journal unsynced, a fresh data
/// directory), bounded to a minute; stops the daemon and removes its data.
async fn play(s: &Scenario, speed: f64, skip_quiet_start: bool, name: &str) -> live::LiveRun {
    let dir = std::env::temp_dir().join(format!("ccr-loadgen-{name}-{}", std::process::id()));
    let mut config = s.ccrd.clone();
    config.server.data_dir = dir.clone();
    config.journal.options.fsync = ccr_daemon::journal::FsyncPolicy::Never;
    config.router = live::scaled(&s.ccrd.router, speed);
    let daemon = Loopback::start(config, None, false).await.expect("ccrd");
    let target = Target {
        addrs: vec![daemon.addr],
        server_name: "localhost".into(),
        roots: vec![daemon.cert.clone()],
        gateway_identity: None,
        agent_identity: None,
    };
    let options = LiveOptions { speed, duration: None, progress: false, skip_quiet_start, stop: None, skip_idle: true };
    let run = tokio::time::timeout(Duration::from_secs(60), live::run(s, &target, &options))
        .await
        .expect("bounded")
        .expect("live run");
    daemon.stop().await.expect("ccrd stops");
    let _ = std::fs::remove_dir_all(&dir);
    run
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_run_routes_every_contact_it_sends() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut s = scenario::load(&root.join("scenarios/bank-day-trace.toml")).expect("scenario");
    // 08:00–09:30 of the trace: the first ~500 contacts.
    s.duration = Duration::from_secs(9 * 3600 + 1800);
    let speed = 900.0;
    let run = play(&s, speed, true, "live").await;

    let expected = ccr_loadgen::sim::callers(&s).len() as u64;
    assert!(expected > 300, "the slice holds traffic: {expected}");
    assert_eq!(run.sent, expected, "open loop: everything scheduled is sent");
    assert_eq!(run.errors, 0, "no refusals");
    assert_eq!(run.run.contacts.len() as u64, expected);
    let answered = run.run.contacts.iter().filter(|c| c.answered.is_some()).count() as u64;
    let resolved = run.run.contacts.iter().filter(|c| c.answered.is_some() || c.abandoned.is_some()).count() as u64;
    // At 900× speed every millisecond of latency is 0.9 s of the callers'
    // patience: on a busy machine some hang up, but most must be answered.
    assert!(answered > expected / 3, "answered: {answered} of {expected}");
    assert!(run.latency.len() >= answered, "a first offer timed for every answered contact");
    assert!(resolved * 5 >= expected * 4, "nearly all resolved by the end: {resolved} of {expected}");
}

/// A lull in a trace (no caller from 08:15 to 11:45) is skipped once
/// nothing is in progress: the run does not sit through it, and the
/// contacts after it are routed as those before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_stretch_of_a_trace_is_skipped() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut s = scenario::load(&root.join("scenarios/bank-day-trace.toml")).expect("scenario");
    let hm = |h: u64, m: u64| Duration::from_secs(h * 3600 + m * 60);
    let ccr_loadgen::scenario::Traffic::Trace(callers) = &mut s.traffic else { panic!("a trace") };
    callers.retain(|c| c.arrival < hm(8, 15) || (hm(11, 45)..hm(12, 0)).contains(&c.arrival));
    s.duration = hm(12, 0);
    let sent = ccr_loadgen::sim::callers(&s).len();
    let run = play(&s, 900.0, true, "live-idle").await;
    assert!(run.skipped > hm(3, 0) && run.skipped < hm(3, 30), "skipped {:?}", run.skipped);
    assert_eq!((run.sent, run.errors, run.unanswered), (sent as u64, 0, 0));
    // Arrivals count from 08:00, the hour the play starts at.
    let lull_end = ccr_core::Time::ZERO + (hm(11, 45) - hm(8, 0));
    let after: Vec<_> = run.run.contacts.iter().filter(|c| c.arrival >= lull_end).collect();
    assert!(after.len() > 20, "{} contacts after the lull", after.len());
    let answered = after.iter().filter(|c| c.answered.is_some()).count();
    assert!(answered * 3 > after.len(), "answered {answered} of {} after the lull", after.len());
    // The 46 agents on from 08:00 were logged in through the lull: their
    // time counts the stretch skipped (occupancy is over the whole span).
    let logged_in: Duration = run.run.agent_time.iter().sum();
    assert!(logged_in > hm(3, 30) * 46, "agents' time {logged_in:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bench_step_routes_every_contact_it_schedules() {
    let dir = std::env::temp_dir().join(format!("ccr-loadgen-bench-{}", std::process::id()));
    let mut config = config::parse(ccr_loadgen::bench::BENCH_CONFIG).expect("bench config");
    config.server.data_dir = dir.clone();
    config.journal.options.fsync = ccr_daemon::journal::FsyncPolicy::Never;
    let daemon = Loopback::start(config, None, false).await.expect("ccrd");
    let mut bench =
        ccr_loadgen::bench::Bench::connect(&[daemon.addr], "localhost", std::slice::from_ref(&daemon.cert), 20)
            .await
            .expect("bench connects");
    let step = tokio::time::timeout(Duration::from_secs(30), bench.step(2000.0, Duration::from_secs(1)))
        .await
        .expect("bounded");
    bench.stop();
    daemon.stop().await.expect("ccrd stops");
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(step.sent, 2000);
    assert_eq!(step.errors, 0);
    assert_eq!(step.offers, 2000, "every contact offered (and hung up, freeing its agent)");
    assert!(step.achieved > 1500.0, "{step:?}");
    assert!(step.p50 <= step.p99 && step.p99 <= step.max, "{step:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_sent_not_ready_by_a_rona_come_back_in_a_live_run() {
    // Two agents who let half their offers ring out: without coming back
    // after a RONA, both are lost to the line within a few offers.
    let s = common::agents_who_ring_out("40m", 120, r#"{ fixed = "20s" }"#, "20s");
    let speed = 400.0;
    let run = play(&s, speed, false, "live-rona").await;

    let contacts = &run.run.contacts;
    assert!(contacts.len() > 50, "{}", contacts.len());
    // Those who arrived in the first half hour (scenario time) were answered.
    let early: Vec<_> = contacts.iter().filter(|c| c.arrival < ccr_core::Time::from_secs(1800)).collect();
    let answered = early.iter().filter(|c| c.answered.is_some()).count();
    assert!(answered * 10 >= early.len() * 9, "answered {answered} of {}", early.len());
}
