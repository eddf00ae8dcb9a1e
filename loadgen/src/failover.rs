//! `ccr-loadgen failover`: steady traffic against a cluster of ccrd while
//! its active is killed, paused or stopped, following the active across
//! takeovers, with the client's own account of what happened.
//!
//! A gateway enqueues contacts at a steady rate; desktops accept every
//! offer and complete the call a little later. When calls fail (the active
//! died: a call unanswered within [`CALL_TIMEOUT`], or refused by a standby
//! or a stopping node), the client finds the new active among the nodes
//! and re-syncs as after a restart: agents log in again (resuming), accepts
//! in flight are asked again, calls in progress completed, and every
//! acknowledged contact not completed is looked up (which claims it for
//! the new connection). At the end it reports, against its own record:
//! - acknowledged contacts that are gone without having been completed (lost);
//! - contacts connected through two offers, or offered while connected or
//!   after being completed (doubled);
//! - each outage: the last offer before it and the first after it, as Unix
//!   times, so that a script that knows when it killed the active can say
//!   how long the takeover took.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use ccr_proto::client::{Client, Subscription};
use ccr_proto::v1::{routing_event::Event as E, *};
use ccr_proto::wire::Code;
use serde::Serialize;
use tokio::sync::Notify;
use tokio::time::{sleep, timeout};

/// A call unanswered this long means the node is gone.
pub const CALL_TIMEOUT: Duration = Duration::from_millis(500);

#[derive(Clone, Debug)]
pub struct FailoverOptions {
    /// Every node of the cluster.
    pub addrs: Vec<SocketAddr>,
    pub server_name: String,
    pub roots: Vec<Vec<u8>>,
    pub identity: Option<(Vec<Vec<u8>>, Vec<u8>)>,
    /// Contacts a second.
    pub rate: f64,
    pub agents: u64,
    pub duration: Duration,
    /// How long an agent talks before completing.
    pub talk: Duration,
    pub queue: String,
    pub skill: String,
    pub language: String,
}

/// What the client saw.
#[derive(Debug, Default, Serialize)]
pub struct FailoverReport {
    pub acknowledged: usize,
    pub completed: usize,
    pub offers: usize,
    /// Acknowledged contacts that are gone without having been completed.
    pub lost: Vec<u64>,
    /// Contacts connected twice, or offered while connected or completed.
    pub doubled: Vec<String>,
    pub outages: Vec<Outage>,
    /// Everything else that went wrong.
    pub problems: Vec<String>,
    /// Every offer received: offer → (contact, agent), to check against
    /// the journal.
    #[serde(skip)]
    pub offer_log: BTreeMap<u64, (u64, u64)>,
}

/// Routing stopped, then resumed.
#[derive(Clone, Debug, Serialize)]
pub struct Outage {
    /// The last offer before it, and the first after it (Unix ms).
    pub last_offer_unix_ms: u64,
    pub first_offer_after_unix_ms: Option<u64>,
    /// When the client saw the failure, and when it was connected to the
    /// new active again (Unix ms).
    pub noticed_unix_ms: u64,
    pub reconnected_unix_ms: Option<u64>,
}

impl FailoverReport {
    /// Whether the run kept every acknowledged contact exactly once.
    pub fn is_clean(&self) -> bool {
        self.lost.is_empty() && self.doubled.is_empty() && self.problems.is_empty()
    }
}

#[derive(Default)]
struct Record {
    acked: BTreeSet<u64>,
    completed: BTreeSet<u64>,
    completing: BTreeSet<u64>,
    /// Contact → the offer it was connected through.
    connected: BTreeMap<u64, u64>,
    /// Offer → (contact, agent).
    offers: BTreeMap<u64, (u64, u64)>,
    /// Accepts sent and not answered: offer → (contact, agent).
    accepting: BTreeMap<u64, (u64, u64)>,
    doubled: Vec<String>,
    lost: BTreeSet<u64>,
    problems: Vec<String>,
    last_offer_unix_ms: u64,
    outages: Vec<Outage>,
}

type Shared = Arc<Mutex<Record>>;

fn unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// Runs the traffic for `options.duration`, across takeovers.
pub async fn run(options: &FailoverOptions) -> anyhow::Result<FailoverReport> {
    let record: Shared = Arc::default();
    // Ids unique to this run.
    let base = unix_ms();
    let agent_base = base % 1_000_000 * 10_000;
    let mut next_contact = base * 1_000;
    let started = Instant::now();
    let end = started + options.duration;
    let mut life = 0usize;
    let mut client;
    loop {
        client = connect(options, end + Duration::from_secs(30)).await?;
        let desk = connect(options, end + Duration::from_secs(30)).await?;
        if let Some(outage) = record.lock().unwrap().outages.last_mut() {
            outage.reconnected_unix_ms = Some(unix_ms());
        }
        let failed = Arc::new(Notify::new());
        let agents: Vec<u64> = (1..=options.agents).map(|n| agent_base + n).collect();
        // Desktops listen before their agents are ready, so no offer rings unseen.
        let events = match desk.subscribe(agents.clone()).await {
            Ok(events) => events,
            Err(_) => continue,
        };
        let desks = tokio::spawn(desks(desk, events, record.clone(), options.talk, failed.clone()));
        let synced = timeout(Duration::from_secs(20), resync(&client, &record, &agents, options, life > 0)).await;
        if !matches!(synced, Ok(Ok(()))) {
            desks.abort();
            continue;
        }
        let gateway =
            tokio::spawn(gateway(client.clone(), record.clone(), next_contact, options.clone(), failed.clone()));
        let remaining = end.saturating_duration_since(Instant::now());
        let failure = tokio::select! {
            _ = failed.notified() => true,
            _ = sleep(remaining) => false,
        };
        if failure {
            let mut r = record.lock().unwrap();
            let outage = Outage {
                last_offer_unix_ms: r.last_offer_unix_ms,
                first_offer_after_unix_ms: None,
                noticed_unix_ms: unix_ms(),
                reconnected_unix_ms: None,
            };
            r.outages.push(outage);
        }
        gateway.abort();
        desks.abort();
        let _ = gateway.await;
        let _ = desks.await;
        // Each life its own range of ids.
        next_contact += 10_000_000;
        if !failure {
            break;
        }
        life += 1;
        if Instant::now() >= end {
            // Failed at the very end: connect once more to check.
            client = connect(options, end + Duration::from_secs(30)).await?;
            break;
        }
    }
    // Let the calls in progress end, then check every acknowledged contact.
    sleep(options.talk * 2).await;
    timeout(Duration::from_secs(60), settle(&client, &record))
        .await
        .context("the final check did not finish within 60 s")??;
    let r = std::mem::take(&mut *record.lock().unwrap());
    Ok(FailoverReport {
        acknowledged: r.acked.len(),
        completed: r.completed.len(),
        offers: r.offers.len(),
        lost: r.lost.into_iter().collect(),
        doubled: r.doubled,
        outages: r.outages,
        problems: r.problems,
        offer_log: r.offers,
    })
}

/// The active, found among the nodes, retrying until `deadline`.
async fn connect(options: &FailoverOptions, deadline: Instant) -> anyhow::Result<Client> {
    loop {
        let patience = Duration::from_secs(5);
        let tried = Client::connect_active(
            &options.addrs,
            &options.server_name,
            &options.roots,
            options.identity.clone(),
            patience,
        );
        match tried.await {
            Ok(client) => return Ok(client),
            Err(e) if Instant::now() >= deadline => return Err(e).context("no active node"),
            Err(_) => sleep(Duration::from_millis(20)).await,
        }
    }
}

fn login(agent: u64, options: &FailoverOptions) -> LoginRequest {
    LoginRequest {
        agent_id: agent,
        skills: vec![AgentSkill { skill: options.skill.clone(), proficiency: 5 }],
        languages: vec![options.language.clone()],
        voice_capacity: 1,
        ready: true,
        ..Default::default()
    }
}

/// Connects `contact` through `offer`.
fn connected(record: &Shared, contact: u64, offer: u64) {
    let mut r = record.lock().unwrap();
    r.accepting.remove(&offer);
    match r.connected.get(&contact) {
        Some(&first) if first != offer => {
            r.doubled.push(format!("contact {contact} connected twice: offers {first} and {offer}"))
        }
        Some(_) => {}
        None => {
            r.connected.insert(contact, offer);
        }
    }
}

async fn complete(client: &Client, record: &Shared, agent: u64, contact: u64) -> Result<(), Status> {
    record.lock().unwrap().completing.insert(contact);
    let result = timeout(CALL_TIMEOUT, client.complete(CompleteRequest { agent_id: agent, contact_id: contact })).await;
    let mut r = record.lock().unwrap();
    r.completing.remove(&contact);
    match result {
        Ok(Ok(_)) => {
            r.completed.insert(contact);
            Ok(())
        }
        // Completed before a takeover, the acknowledgement lost.
        Ok(Err(s)) if s.code == Code::NotFound as i32 => {
            r.completed.insert(contact);
            Ok(())
        }
        Ok(Err(s)) => Err(s),
        Err(_) => Err(Status::new(Code::Unavailable, "no answer")),
    }
}

/// The desktops: accept every offer, complete the call after `talk`.
async fn desks(client: Client, mut events: Subscription, record: Shared, talk: Duration, failed: Arc<Notify>) {
    let client = Arc::new(client);
    while let Ok(event) = events.next().await {
        let Some(E::Offer(offer)) = event.event else { continue };
        let now = unix_ms();
        {
            let mut r = record.lock().unwrap();
            let contact = offer.contact_id;
            if r.completed.contains(&contact) {
                r.doubled.push(format!("completed contact {contact} offered again (offer {})", offer.offer_id));
            } else if r.connected.contains_key(&contact) && !r.completing.contains(&contact) {
                r.doubled.push(format!("contact {contact} offered (offer {}) while connected", offer.offer_id));
            }
            r.offers.insert(offer.offer_id, (contact, offer.agent_id));
            r.accepting.insert(offer.offer_id, (contact, offer.agent_id));
            r.last_offer_unix_ms = now;
            if let Some(outage) = r.outages.last_mut().filter(|o| o.first_offer_after_unix_ms.is_none()) {
                outage.first_offer_after_unix_ms = Some(now);
            }
        }
        let (client, record, failed) = (client.clone(), record.clone(), failed.clone());
        tokio::spawn(async move {
            let accept = AcceptRequest { agent_id: offer.agent_id, offer_id: offer.offer_id };
            match timeout(CALL_TIMEOUT, client.accept(accept)).await {
                Ok(Ok(a)) => {
                    connected(&record, a.contact_id, offer.offer_id);
                    sleep(talk).await;
                    if complete(&client, &record, offer.agent_id, a.contact_id).await.is_err() {
                        failed.notify_one();
                    }
                }
                Ok(Err(s)) if s.code == Code::Unavailable as i32 => failed.notify_one(),
                Ok(Err(_)) => {
                    record.lock().unwrap().accepting.remove(&offer.offer_id);
                }
                Err(_) => failed.notify_one(),
            }
        });
    }
    failed.notify_one();
}

/// The gateway: contacts at a steady rate, numbered from `first`.
async fn gateway(client: Client, record: Shared, first: u64, options: FailoverOptions, failed: Arc<Notify>) {
    let next = Arc::new(std::sync::atomic::AtomicU64::new(first));
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / options.rate.max(1.0)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let id = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (client, record, failed) = (client.clone(), record.clone(), failed.clone());
        let request = EnqueueRequest {
            contact_id: id,
            channel: Channel::Voice as i32,
            queue: options.queue.clone(),
            tier: ["gold", "silver", "standard"][(id % 3) as usize].into(),
            skills: vec![SkillRequirement { skill: options.skill.clone(), min_proficiency: 1 }],
            languages: vec![options.language.clone()],
            ..Default::default()
        };
        tokio::spawn(async move {
            match timeout(CALL_TIMEOUT, client.enqueue(request)).await {
                Ok(Ok(_)) => {
                    record.lock().unwrap().acked.insert(id);
                }
                Ok(Err(s)) if s.code == Code::Unavailable as i32 => failed.notify_one(),
                Ok(Err(s)) => record.lock().unwrap().problems.push(format!("enqueue {id}: {}", s.message)),
                Err(_) => failed.notify_one(),
            }
        });
    }
}

/// Logs the agents in (resuming them after a takeover) and, after one,
/// finishes what was in flight and claims every contact still open. Calls
/// go out together (routing resumes with the first agent back).
async fn resync(
    client: &Client,
    record: &Shared,
    agents: &[u64],
    options: &FailoverOptions,
    after_takeover: bool,
) -> Result<(), Status> {
    let logins = agents.iter().map(|&agent| {
        let (client, request) = (client.clone(), login(agent, options));
        async move { client.login(request).await.map(drop) }
    });
    all(logins).await?;
    if !after_takeover {
        return Ok(());
    }
    let accepting: Vec<(u64, (u64, u64))> = record.lock().unwrap().accepting.iter().map(|(o, x)| (*o, *x)).collect();
    let accepts = accepting.into_iter().map(|(offer, (_, agent))| {
        let (client, record) = (client.clone(), record.clone());
        async move {
            // Idempotent per offer: the answer to an accept that was in
            // flight (an offer withdrawn by the takeover is refused).
            if let Ok(a) = client.accept(AcceptRequest { agent_id: agent, offer_id: offer }).await {
                connected(&record, a.contact_id, offer);
            }
            record.lock().unwrap().accepting.remove(&offer);
            Ok(())
        }
    });
    all(accepts).await?;
    settle(client, record).await
}

/// Runs the calls, 64 at a time; the first error, if any.
async fn all<F>(calls: impl Iterator<Item = F>) -> Result<(), Status>
where
    F: std::future::Future<Output = Result<(), Status>> + Send + 'static,
{
    let mut running = tokio::task::JoinSet::new();
    let mut outcome = Ok(());
    for call in calls {
        if running.len() >= 64 {
            if let Some(Ok(Err(e))) = running.join_next().await {
                outcome = Err(e);
            }
        }
        running.spawn(call);
    }
    while let Some(done) = running.join_next().await {
        if let Ok(Err(e)) = done {
            outcome = Err(e);
        }
    }
    outcome
}

/// Completes the calls in progress and looks up every acknowledged contact
/// not completed: each must still be there (the lookup claims it).
async fn settle(client: &Client, record: &Shared) -> Result<(), Status> {
    let talking: Vec<(u64, u64)> = {
        let r = record.lock().unwrap();
        r.connected.iter().filter(|(c, _)| !r.completed.contains(c)).map(|(c, o)| (*c, r.offers[o].1)).collect()
    };
    let completes = talking.into_iter().map(|(contact, agent)| {
        let (client, record) = (client.clone(), record.clone());
        async move { complete(&client, &record, agent, contact).await }
    });
    all(completes).await?;
    let open: Vec<u64> = {
        let r = record.lock().unwrap();
        r.acked.iter().filter(|c| !r.completed.contains(c)).copied().collect()
    };
    let lookups = open.into_iter().map(|contact| {
        let (client, record) = (client.clone(), record.clone());
        async move {
            let found = client.position(PositionRequest { contact_id: contact }).await;
            let mut r = record.lock().unwrap();
            match found {
                Ok(_) => Ok(()),
                Err(s) if s.code == Code::NotFound as i32 => {
                    if !r.completed.contains(&contact) && !r.completing.contains(&contact) {
                        r.lost.insert(contact);
                    }
                    Ok(())
                }
                Err(s) => Err(s),
            }
        }
    });
    all(lookups).await
}
