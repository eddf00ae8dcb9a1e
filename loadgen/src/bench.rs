//! Capacity search against a live ccrd: step the offered rate up until p99
//! arrival → offer passes a threshold or errors appear, then hold the
//! highest rate that passed for the sustain period.
//!
//! The traffic is the simplest that makes every contact one routing
//! decision: chat contacts of one skill, enough chat agents with room for
//! all of them, every offer withdrawn by a hang-up as soon as it arrives (so
//! agents never fill up). Contacts go out open loop on one gateway stream;
//! contact `n` of a step is due at `start + n / rate`, and its latency runs
//! from that instant to its offer reaching the agents' event stream.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use ccr_proto::client::Client;
use ccr_proto::v1::gateway_command::Command as G;
use ccr_proto::v1::routing_event::Event as E;
use ccr_proto::v1::*;
use hdrhistogram::Histogram;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// The ccrd configuration `bench --spawn` runs: one queue, one skill.
pub const BENCH_CONFIG: &str = r#"
skills = ["bench"]
[server]
max_pending_requests = 10000000
[[queues]]
name = "bench"
offer_timeout = "1h"
"#;

#[derive(Clone, Debug)]
pub struct BenchOptions {
    pub start_rate: f64,
    /// No search: hold `start_rate`.
    pub hold: bool,
    pub step: f64,
    pub max_rate: f64,
    pub step_time: Duration,
    /// Traffic at the start rate before the search, not judged.
    pub warm_up: Duration,
    pub sustain: Duration,
    /// A step fails when its p99 arrival → offer is above this.
    pub p99_limit: Duration,
    pub agents: u64,
}

/// One step of the search.
#[derive(Clone, Debug)]
pub struct Step {
    pub rate: f64,
    pub achieved: f64,
    pub sent: u64,
    pub offers: u64,
    pub errors: u64,
    pub p50: Duration,
    pub p90: Duration,
    pub p99: Duration,
    pub p999: Duration,
    pub max: Duration,
}

impl Step {
    pub fn passed(&self, limit: Duration) -> bool {
        self.errors == 0
            && self.p99 <= limit
            && self.achieved >= 0.95 * self.rate
            && self.offers >= self.sent * 99 / 100
    }

    pub fn line(&self) -> String {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        format!(
            "{:>9.0} {:>9.0} {:>9} {:>9} {:>6} {:>8.3} {:>8.3} {:>8.3} {:>8.3} {:>9.3}",
            self.rate,
            self.achieved,
            self.sent,
            self.offers,
            self.errors,
            ms(self.p50),
            ms(self.p90),
            ms(self.p99),
            ms(self.p999),
            ms(self.max)
        )
    }
}

pub const HEADER: &str = "  rate/s achieved/s      sent    offers errors   p50 ms   p90 ms   p99 ms p99.9 ms    max ms";

/// The current step's schedule, to turn a contact id into its due time,
/// and the latencies seen so far.
struct StepClock {
    start: Instant,
    rate: f64,
    first_id: u64,
    latency: Histogram<u64>,
}

/// A connected bench: agents logged in, event stream open.
pub struct Bench {
    gateway: mpsc::UnboundedSender<GatewayCommand>,
    latency: Arc<Mutex<StepClock>>,
    offers: Arc<AtomicU64>,
    errors: Arc<AtomicU64>,
    next_id: u64,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Bench {
    /// Connects to ccrd at `addrs` (a cluster's nodes: the active).
    pub async fn connect(
        addrs: &[SocketAddr],
        server_name: &str,
        roots: &[Vec<u8>],
        agents: u64,
    ) -> anyhow::Result<Bench> {
        let patience = Duration::from_secs(5);
        let connect = || Client::connect_active(addrs, server_name, roots, None, patience);
        let desk = connect().await.context("connecting to ccrd")?;
        let gateway = connect().await.context("connecting the gateway")?;
        let epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis() as u64;
        let agent_base = epoch % 1_000_000 * 10_000;
        let ids: Vec<u64> = (1..=agents).map(|a| agent_base + a).collect();
        let mut events = desk.subscribe(ids.clone()).await.map_err(|s| anyhow::anyhow!("subscribe: {}", s.message))?;
        for &id in &ids {
            let login = LoginRequest {
                agent_id: id,
                skills: vec![AgentSkill { skill: "bench".into(), proficiency: 5 }],
                chat_capacity: 255,
                ready: true,
                ..Default::default()
            };
            desk.login(login).await.map_err(|s| anyhow::anyhow!("login: {}", s.message))?;
        }
        let (commands, replies) =
            gateway.gateway_stream().await.map_err(|s| anyhow::anyhow!("gateway stream: {}", s.message))?.split();
        let (tx, rx) = mpsc::unbounded_channel::<GatewayCommand>();
        let latency = Arc::new(Mutex::new(StepClock {
            start: Instant::now(),
            rate: 1.0,
            first_id: 0,
            latency: Histogram::new_with_bounds(1, 60_000_000, 3)?,
        }));
        let (offers, errors) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let writer = tokio::spawn(async move {
            let _connection = gateway;
            crate::live::write_gateway_commands(commands, rx).await;
        });
        let reader = tokio::spawn(crate::live::count_replies(replies, errors.clone(), Default::default()));
        let listener = {
            let (latency, offers, errors, tx) = (latency.clone(), offers.clone(), errors.clone(), tx.clone());
            tokio::spawn(async move {
                let _keep = desk;
                loop {
                    let event = match events.next().await {
                        Ok(event) => event,
                        Err(status) => break crate::live::note_event_stream_end(&status, &errors),
                    };
                    let Some(E::Offer(o)) = event.event else { continue };
                    let now = Instant::now();
                    {
                        let mut clock = latency.lock().expect("latency");
                        if o.contact_id >= clock.first_id {
                            let n = (o.contact_id - clock.first_id) as f64;
                            let due = clock.start + Duration::from_secs_f64(n / clock.rate);
                            let us = (now.saturating_duration_since(due).as_micros() as u64).max(1);
                            clock.latency.saturating_record(us);
                        }
                    }
                    offers.fetch_add(1, Ordering::Relaxed);
                    let hang_up = G::Abandon(AbandonRequest { contact_id: o.contact_id });
                    let _ = tx.send(GatewayCommand { id: o.contact_id, command: Some(hang_up) });
                }
            })
        };
        Ok(Bench {
            gateway: tx,
            latency,
            offers,
            errors,
            next_id: epoch * 1_000_000,
            tasks: vec![writer, reader, listener],
        })
    }

    /// Offers `rate` contacts a second for `time`, open loop.
    pub async fn step(&mut self, rate: f64, time: Duration) -> Step {
        let first_id = self.next_id;
        let start = Instant::now() + Duration::from_millis(5);
        {
            let mut clock = self.latency.lock().expect("latency");
            clock.latency.reset();
            (clock.start, clock.rate, clock.first_id) = (start, rate, first_id);
        }
        let (offers_before, errors_before) = (self.offers.load(Ordering::Relaxed), self.errors.load(Ordering::Relaxed));
        let total = (rate * time.as_secs_f64()) as u64;
        // The schedule runs on its own OS thread: tokio's timer ticks in
        // milliseconds, which would send contacts up to a tick late; a
        // thread sleeps to within tens of microseconds at little cost.
        let gateway = self.gateway.clone();
        let sender = tokio::task::spawn_blocking(move || {
            let start = start.into_std();
            let mut sent = 0u64;
            while sent < total {
                let now = std::time::Instant::now();
                let due = (now.saturating_duration_since(start).as_secs_f64() * rate) as u64;
                for n in sent..due.min(total) {
                    let id = first_id + n;
                    let enqueue = EnqueueRequest {
                        contact_id: id,
                        channel: Channel::Chat as i32,
                        queue: "bench".into(),
                        skills: vec![SkillRequirement { skill: "bench".into(), min_proficiency: 1 }],
                        ..Default::default()
                    };
                    let _ = gateway.send(GatewayCommand { id, command: Some(G::Enqueue(enqueue)) });
                }
                sent = sent.max(due.min(total));
                let next = start + Duration::from_secs_f64((sent + 1) as f64 / rate);
                std::thread::sleep(
                    next.saturating_duration_since(std::time::Instant::now()).max(Duration::from_micros(50)),
                );
            }
        });
        let _ = sender.await;
        let sending = (Instant::now() - start).as_secs_f64();
        // Let the offers of the last contacts come in (bounded).
        let until = Instant::now() + Duration::from_secs(2);
        while self.offers.load(Ordering::Relaxed) - offers_before < total && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        self.next_id += total;
        let h = self.latency.lock().expect("latency").latency.clone();
        let at = |q: f64| Duration::from_micros(h.value_at_quantile(q));
        Step {
            rate,
            achieved: total as f64 / sending.max(1e-9),
            sent: total,
            offers: self.offers.load(Ordering::Relaxed) - offers_before,
            errors: self.errors.load(Ordering::Relaxed) - errors_before,
            p50: at(0.5),
            p90: at(0.9),
            p99: at(0.99),
            p999: at(0.999),
            max: Duration::from_micros(h.max()),
        }
    }

    pub fn stop(self) {
        for t in self.tasks {
            t.abort();
        }
    }
}

/// Round trips of `bytes` through a bare QUIC echo: the transport alone.
pub async fn echo_round_trip(addr: SocketAddr, cert: &[u8], samples: u32) -> anyhow::Result<(Duration, Duration)> {
    let client = Client::connect(addr, "localhost", &[cert.to_vec()]).await?;
    let mut bytes = Vec::new();
    ccr_proto::wire::encode_header("/ccr.v1.Gateway/Enqueue", &mut bytes);
    let enqueue = EnqueueRequest {
        contact_id: 1,
        channel: Channel::Chat as i32,
        queue: "bench".into(),
        skills: vec![SkillRequirement { skill: "bench".into(), min_proficiency: 1 }],
        ..Default::default()
    };
    ccr_proto::wire::encode_message(&enqueue, &mut bytes);
    let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    for _ in 0..samples {
        let t = Instant::now();
        let (mut send, mut recv) = client.connection().open_bi().await?;
        send.write_all(&bytes).await?;
        send.finish()?;
        recv.read_to_end(1 << 16).await?;
        h.saturating_record(t.elapsed().as_micros() as u64);
    }
    client.close();
    Ok((Duration::from_micros(h.value_at_quantile(0.5)), Duration::from_micros(h.value_at_quantile(0.99))))
}
