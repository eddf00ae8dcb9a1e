//! The live engine: the gateway and the agent fleet of a scenario, played
//! against a running ccrd over QUIC, on the wall clock (compressed by
//! `speed`).
//!
//! Open loop, as wrk2 does it: each contact is sent at its intended time
//! whatever the daemon's latency, and every latency is measured from that
//! intended time, so a slow daemon shows as latency instead of hiding as a
//! lower send rate (no coordinated omission). The run always ends: at the
//! end of the traffic (or `duration`) plus a short drain.

use std::collections::{HashMap, HashSet};
use std::io::{IsTerminal, Write as _};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use ccr_core::{AgentState, Time};
use ccr_proto::client::Client;
use ccr_proto::v1::gateway_command::Command as G;
use ccr_proto::v1::routing_event::Event as E;
use ccr_proto::v1::*;
use hdrhistogram::Histogram;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha12Rng;
use tokio::sync::mpsc;
use tokio::time::{sleep_until, Instant};

use crate::pace::Pace;
use crate::scenario::{Dist, Scenario};
use crate::sim::{self, Caller, ContactRecord, Run};

/// Where the daemon is and how to trust it.
#[derive(Clone, Debug)]
pub struct Target {
    /// ccrd's address; a cluster's nodes (the run goes to the active).
    pub addrs: Vec<SocketAddr>,
    pub server_name: String,
    /// DER certificates to trust (the daemon's own, or its CA).
    pub roots: Vec<Vec<u8>>,
    /// The gateway's certificate chain and key (DER), when ccrd requires
    /// client certificates: role (OU) `gateway`.
    pub gateway_identity: Option<(Vec<Vec<u8>>, Vec<u8>)>,
    /// The agents' desktops' (one connection for all): role `agent`.
    pub agent_identity: Option<(Vec<Vec<u8>>, Vec<u8>)>,
}

#[derive(Clone, Debug)]
pub struct LiveOptions {
    /// Scenario time per wall-clock time: 60 plays an hour in a minute.
    pub speed: f64,
    /// Stop sending after this much scenario time from the start of the
    /// play (default: to the scenario's end).
    pub duration: Option<Duration>,
    /// Show progress on stderr: a line redrawn on a terminal, else a line
    /// every [`PROGRESS_EVERY`].
    pub progress: bool,
    /// Start at the hour of the first arrival instead of midnight (skips a
    /// closed night).
    pub skip_quiet_start: bool,
    /// Turns true to stop sending early (Ctrl-C): the run drains and
    /// reports what it did, marked interrupted.
    pub stop: Option<tokio::sync::watch::Receiver<bool>>,
    /// Skip idle stretches: when nothing is in progress and the next
    /// arrival is more than [`IDLE_SKIP`] of wall time away, the clock
    /// jumps to just before it.
    pub skip_idle: bool,
}

/// The shortest wait for the next arrival, in wall-clock time, that is
/// skipped when nothing is in progress.
pub const IDLE_SKIP: Duration = Duration::from_secs(2);

/// How often a run waiting for its next arrival looks whether it is idle.
const IDLE_CHECK: Duration = Duration::from_millis(100);

/// How far before the next arrival a skip lands.
const SKIP_LEAD: Duration = Duration::from_millis(100);

/// How often progress is printed when stderr is not a terminal.
pub const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// What a live run measured.
pub struct LiveRun {
    /// Per contact, in scenario time (wall time × speed).
    pub run: Run,
    /// Intended send → first offer received, wall-clock microseconds.
    pub latency: Histogram<u64>,
    pub sent: u64,
    pub errors: u64,
    /// Gateway commands ccrd never answered (its connection lost, say).
    pub unanswered: u64,
    /// Stopped early (`LiveOptions::stop`).
    pub interrupted: bool,
    /// The scenario's time of day of the first and last arrival sent.
    pub arrivals: Option<(Duration, Duration)>,
    /// Scenario time skipped as idle ([`LiveOptions::skip_idle`]).
    pub skipped: Duration,
    /// Contacts per wall-clock second: intended and achieved.
    pub intended_rate: f64,
    pub achieved_rate: f64,
    pub wall: Duration,
}

struct Contact {
    caller: Caller,
    /// Wall-clock instant it was meant to be sent.
    intended: Instant,
    offered: bool,
    index: usize,
}

#[derive(Default)]
struct Books {
    contacts: HashMap<u64, Contact>,
    records: Vec<ContactRecord>,
    latency: Option<Histogram<u64>>,
    /// Each agent's reported state and since when, in scenario time (so that
    /// a skipped idle stretch counts as the time it stands for).
    state_since: HashMap<u64, (usize, Duration)>,
    agent_time: [Duration; 6],
    /// Agents a RONA sent not ready, until their state changes again.
    after_rona: HashSet<u64>,
}

/// Plays `scenario` against the daemon at `target`.
pub async fn run(scenario: &Scenario, target: &Target, options: &LiveOptions) -> anyhow::Result<LiveRun> {
    let patience = Duration::from_secs(5);
    let connect = |identity: &Option<_>| {
        Client::connect_active(&target.addrs, &target.server_name, &target.roots, identity.clone(), patience)
    };
    let desk = connect(&target.agent_identity)
        .await
        .with_context(|| format!("connecting the agents' desktops to ccrd at {:?}", target.addrs))?;
    let desk = Arc::new(desk);
    let gateway = connect(&target.gateway_identity).await.context("connecting the gateway")?;
    let speed = options.speed.max(1e-3);
    let mut callers = sim::callers(scenario);
    callers.retain(|c| c.arrival <= scenario.duration);
    let offset = match callers.first() {
        Some(c) if options.skip_quiet_start => Duration::from_secs(c.arrival.as_secs() / 3600 * 3600),
        _ => Duration::ZERO,
    };
    // `duration` counts from where the play starts.
    let horizon = options.duration.map_or(scenario.duration, |d| (offset + d).min(scenario.duration));
    callers.retain(|c| c.arrival <= horizon);
    for c in &mut callers {
        c.arrival -= offset;
    }
    let horizon = horizon - offset;
    // Ids unique to this run: ccrd keeps what earlier runs left behind.
    let epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis() as u64;
    let contact_base = epoch * 1_000_000;
    let agent_base = epoch % 1_000_000 * 10_000;

    let books = Arc::new(Mutex::new(Books {
        latency: Some(Histogram::new_with_bounds(1, 600_000_000, 3)?),
        ..Books::default()
    }));
    let mut events = desk.subscribe(Vec::new()).await.map_err(|s| anyhow::anyhow!("subscribing: {}", s.message))?;

    // The agents: logged in now if on shift, the rest of their day (shift
    // ends and starts, breaks) played on the same compressed clock.
    // (`ready` of a login is re-decided from the plan.)
    let mut agents = Vec::new();
    let mut plans: Vec<(LoginRequest, Option<bool>, DayPlan)> = Vec::new();
    for group in &scenario.agents {
        for _ in 0..group.count {
            let id = agent_base + agents.len() as u64 + 1;
            let p = &group.profile;
            let cat = &scenario.ccrd.catalog;
            let login = LoginRequest {
                agent_id: id,
                skills: p
                    .skills
                    .iter()
                    .map(|&(s, level)| AgentSkill {
                        skill: cat.skills[usize::from(s.0)].clone(),
                        proficiency: u32::from(level),
                    })
                    .collect(),
                languages: p.languages.iter().map(|l| cat.languages[usize::from(l.0)].clone()).collect(),
                voice_capacity: u32::from(p.capacity[0]),
                chat_capacity: u32::from(p.capacity[1]),
                email_capacity: u32::from(p.capacity[2]),
                ready: true,
            };
            let (on_now, plan) = day_plan(group, offset, horizon + offset);
            if let Some(ready) = on_now {
                let login = LoginRequest { ready, ..login.clone() };
                desk.login(login).await.map_err(|s| anyhow::anyhow!("login of agent {id}: {}", s.message))?;
            }
            plans.push((login, on_now, plan));
            agents.push((id, (group.answer_delay, group.rona_probability, group.rona_recovery)));
        }
    }
    let agent_of: Arc<HashMap<u64, (Dist, f64, Dist)>> = Arc::new(agents.into_iter().collect());

    let errors = Arc::new(AtomicU64::new(0));
    let pace = Pace::new(Instant::now() + Duration::from_millis(50), speed);
    let start = pace.start();
    let shifts: Vec<_> = plans
        .into_iter()
        .filter(|(_, _, plan)| !plan.is_empty())
        .map(|(login, now, plan)| tokio::spawn(work_day(desk.clone(), login, now, plan, pace.clone(), offset)))
        .collect();

    // Events: offers are answered (or left to ring), calls completed.
    let listener = {
        let (books, desk, errors, agent_of) = (books.clone(), desk.clone(), errors.clone(), agent_of.clone());
        let pace = pace.clone();
        let seed = scenario.seed;
        tokio::spawn(async move {
            let mut rng = ChaCha12Rng::seed_from_u64(seed ^ 0x5eed);
            loop {
                let event = match events.next().await {
                    Ok(event) => event,
                    Err(status) => break note_event_stream_end(&status, &errors),
                };
                let now = Instant::now();
                match event.event {
                    Some(E::Offer(o)) => {
                        let Some(&(delay, rona, _)) = agent_of.get(&o.agent_id) else { continue };
                        let (handle, own_delay) = {
                            let mut b = books.lock().expect("books");
                            let Some(c) = b.contacts.get_mut(&o.contact_id) else { continue };
                            let first = !c.offered;
                            c.offered = true;
                            let intended = c.intended;
                            let out = (c.caller.handle, c.caller.answer_delay);
                            if first {
                                let us = now.saturating_duration_since(intended).as_micros() as u64;
                                if let Some(h) = b.latency.as_mut() {
                                    h.saturating_record(us.max(1));
                                }
                            }
                            out
                        };
                        if rng.random::<f64>() < rona {
                            continue;
                        }
                        let answer = own_delay.unwrap_or_else(|| delay.sample(&mut rng)).div_f64(speed);
                        let (desk, books, errors) = (desk.clone(), books.clone(), errors.clone());
                        tokio::spawn(async move {
                            tokio::time::sleep(answer).await;
                            let accept = AcceptRequest { agent_id: o.agent_id, offer_id: o.offer_id };
                            // An error: the caller hung up meanwhile, or the offer rang out.
                            if desk.accept(accept).await.is_ok() {
                                let at = Instant::now();
                                {
                                    let mut b = books.lock().expect("books");
                                    if let Some(c) = b.contacts.get(&o.contact_id) {
                                        let waited = at.saturating_duration_since(c.intended).mul_f64(speed);
                                        let i = c.index;
                                        b.records[i].answered = Some(waited);
                                    }
                                }
                                tokio::time::sleep(handle.div_f64(speed)).await;
                                let done = CompleteRequest { agent_id: o.agent_id, contact_id: o.contact_id };
                                if desk.complete(done).await.is_err() {
                                    errors.fetch_add(1, Ordering::Relaxed);
                                }
                                books.lock().expect("books").contacts.remove(&o.contact_id);
                            }
                        });
                    }
                    Some(E::Abandoned(a)) => {
                        let mut b = books.lock().expect("books");
                        if let Some(c) = b.contacts.remove(&a.contact_id) {
                            let waited = Duration::from_millis(a.waited_millis).mul_f64(speed);
                            b.records[c.index].abandoned = Some((waited, a.short));
                        }
                    }
                    Some(E::OfferEnded(e)) if e.outcome == "expired" => {
                        // The agent makes itself ready again after its
                        // recovery time, unless its state changed meanwhile.
                        let Some(&(_, _, recovery)) = agent_of.get(&e.agent_id) else { continue };
                        let back_at = pace.now() + recovery.sample(&mut rng);
                        let (desk, books, pace) = (desk.clone(), books.clone(), pace.clone());
                        tokio::spawn(async move {
                            pace.sleep_until(back_at).await;
                            if books.lock().expect("books").after_rona.remove(&e.agent_id) {
                                let ready = SetStateRequest { agent_id: e.agent_id, ready: true, reason: 0 };
                                let _ = desk.set_state(ready).await;
                            }
                        });
                    }
                    Some(E::AgentState(s)) => {
                        let Some(state) = AgentState::NAMES.iter().position(|n| *n == s.state) else { continue };
                        let mut b = books.lock().expect("books");
                        if s.reason == "rona" {
                            b.after_rona.insert(s.agent_id);
                        } else {
                            b.after_rona.remove(&s.agent_id);
                        }
                        let at = pace.now();
                        if let Some((before, since)) = b.state_since.insert(s.agent_id, (state, at)) {
                            b.agent_time[before] += at.saturating_sub(since);
                        }
                    }
                    _ => {}
                }
            }
        })
    };

    // The gateway: one stream, commands written as they are due, replies
    // counted by their own task.
    let (commands, replies) = gateway.gateway_stream().await.map_err(|s| anyhow::anyhow!("{}", s.message))?.split();
    let (tx, rx) = mpsc::unbounded_channel::<GatewayCommand>();
    let writer = tokio::spawn(write_gateway_commands(commands, rx));
    let replied = Arc::new(AtomicU64::new(0));
    let reader = tokio::spawn(count_replies(replies, errors.clone(), replied.clone()));
    let commands_sent = Arc::new(AtomicU64::new(0));

    let on_terminal = std::io::stderr().is_terminal();
    let mut stop = options.stop.clone();
    let mut interrupted = false;
    let cat = scenario.ccrd.catalog.clone();
    let total = callers.len() as u64;
    let mut sent = 0u64;
    let last_arrival = callers.last().map_or(Duration::ZERO, |c| c.arrival);
    let sent_so_far = Arc::new(AtomicU64::new(0));
    let progress = options.progress.then(|| {
        let (books, sent, errors, pace) = (books.clone(), sent_so_far.clone(), errors.clone(), pace.clone());
        let every = if on_terminal { Duration::from_millis(500) } else { PROGRESS_EVERY };
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval_at(start + every, every);
            loop {
                ticks.tick().await;
                let (sent, errors) = (sent.load(Ordering::Relaxed), errors.load(Ordering::Relaxed));
                let eta = pace.wall(last_arrival).saturating_duration_since(Instant::now());
                let line = progress_line(&books, start, sent, total, eta, errors);
                let _ = match on_terminal {
                    true => write!(std::io::stderr(), "\r{line}   "),
                    false => writeln!(std::io::stderr(), "{line}"),
                };
            }
        })
    });
    let mut arrivals: Option<(Duration, Duration)> = None;
    let mut last_sent = start;
    for (n, caller) in callers.into_iter().enumerate() {
        // A long wait for this arrival is skipped as soon as nothing is in
        // progress (the calls before it may still be finishing).
        while options.skip_idle && !interrupted {
            let ahead = pace.wall(caller.arrival).saturating_duration_since(Instant::now());
            if ahead <= IDLE_SKIP {
                break;
            }
            if books.lock().expect("books").contacts.is_empty() {
                let from = offset + pace.now();
                pace.skip(ahead - SKIP_LEAD);
                if options.progress {
                    let clock = |d: Duration| format!("{:02}:{:02}", d.as_secs() / 3600 % 24, d.as_secs() / 60 % 60);
                    let (cr, to) = (if on_terminal { "\r" } else { "" }, offset + caller.arrival);
                    eprintln!("{cr}skipping an idle stretch: {} → {}", clock(from), clock(to));
                }
                break;
            }
            tokio::select! {
                () = tokio::time::sleep(IDLE_CHECK) => {}
                () = stopped(&mut stop) => interrupted = true,
            }
        }
        if interrupted {
            break;
        }
        let intended = pace.wall(caller.arrival);
        tokio::select! {
            () = sleep_until(intended) => {}
            () = stopped(&mut stop) => {
                interrupted = true;
                break;
            }
        }
        let at = caller.arrival + offset;
        arrivals = Some((arrivals.map_or(at, |(first, _)| first), at));
        let id = contact_base + n as u64 + 1;
        let request = EnqueueRequest {
            contact_id: id,
            channel: match caller.channel {
                ccr_core::Channel::Voice => Channel::Voice,
                ccr_core::Channel::Chat => Channel::Chat,
                ccr_core::Channel::Email => Channel::Email,
            } as i32,
            queue: cat.queue_name(caller.queue).to_owned(),
            tier: cat.tier_name(caller.tier).to_owned(),
            skills: caller
                .skills
                .iter()
                .map(|r| SkillRequirement {
                    skill: cat.skills[usize::from(r.skill.0)].clone(),
                    min_proficiency: u32::from(r.min_proficiency),
                })
                .collect(),
            languages: caller.languages.iter().map(|l| cat.languages[usize::from(l.0)].clone()).collect(),
            ..Default::default()
        };
        if let Some(patience) = caller.patience {
            let (tx, books, commands_sent) = (tx.clone(), books.clone(), commands_sent.clone());
            let hang_up = intended + patience.div_f64(speed);
            tokio::spawn(async move {
                sleep_until(hang_up).await;
                let waiting = books.lock().expect("books").contacts.get(&id).is_some_and(|c| !c.offered);
                let abandon = GatewayCommand { id, command: Some(G::Abandon(AbandonRequest { contact_id: id })) };
                if waiting && tx.send(abandon).is_ok() {
                    commands_sent.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        {
            let mut b = books.lock().expect("books");
            let index = b.records.len();
            b.records.push(ContactRecord {
                queue: caller.queue,
                tier: caller.tier,
                arrival: Time::ZERO + caller.arrival,
                answered: None,
                abandoned: None,
                queued: false,
                estimate: None,
            });
            b.contacts.insert(id, Contact { caller, intended, offered: false, index });
        }
        match tx.send(GatewayCommand { id, command: Some(G::Enqueue(request)) }) {
            Ok(()) => _ = commands_sent.fetch_add(1, Ordering::Relaxed),
            Err(_) => _ = errors.fetch_add(1, Ordering::Relaxed),
        }
        sent += 1;
        sent_so_far.store(sent, Ordering::Relaxed);
        last_sent = Instant::now();
    }
    if let Some(progress) = progress {
        progress.abort();
    }
    // Drain: let the last contacts be routed (bounded).
    let drain_until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < drain_until {
        let open = books.lock().expect("books").contacts.values().filter(|c| !c.offered).count();
        if open == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let wall_time = start.elapsed();
    if options.progress && on_terminal {
        eprintln!();
    }
    // The abandons still scheduled are not sent: the stream finishes, and
    // every reply ccrd owes comes before its end (bounded).
    for shift in &shifts {
        shift.abort();
    }
    drop(tx);
    let _ = tokio::time::timeout(Duration::from_secs(2), writer).await;
    if tokio::time::timeout(Duration::from_secs(2), &mut { reader }).await.is_err() {
        eprintln!("ccr-loadgen: ccrd did not answer every gateway command within 2 s of the end");
    }
    listener.abort();
    gateway.close();
    desk.close();
    let mut b = std::mem::take(&mut *books.lock().expect("books"));
    let end = pace.now();
    for (_, (state, since)) in b.state_since.drain() {
        b.agent_time[state] += end.saturating_sub(since);
    }
    let latency = b.latency.take().expect("histogram");
    let run = Run {
        contacts: b.records,
        agent_time: b.agent_time,
        // Sampled by the simulator only: the live client cannot see queues.
        waiting: Vec::new(),
        staffed: Vec::new(),
        group_time: Vec::new(),
        routing: Default::default(),
        decisions: 0,
        warm_up: Duration::ZERO,
        duration: horizon,
    };
    // Rates over the sending span: first to last contact, as scheduled and as
    // sent, idle stretches skipped.
    let intended_span = pace.wall(last_arrival).saturating_duration_since(start).as_secs_f64().max(1e-9);
    let achieved_span = last_sent.saturating_duration_since(start).as_secs_f64().max(1e-9);
    Ok(LiveRun {
        run,
        latency,
        sent,
        errors: errors.load(Ordering::Relaxed),
        unanswered: commands_sent.load(Ordering::Relaxed).saturating_sub(replied.load(Ordering::Relaxed)),
        interrupted,
        arrivals,
        skipped: pace.skipped_scenario_time(),
        intended_rate: total as f64 / intended_span,
        achieved_rate: sent as f64 / achieved_span,
        wall: wall_time,
    })
}

/// An agent's changes through the run, in scenario time.
type DayPlan = Vec<(Duration, Shift)>;

/// A change in an agent's day.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shift {
    LogIn,
    LogOut,
    BreakStart,
    BreakEnd,
}

/// Whether the agent is logged in at `from` (and then whether ready), and
/// its changes after `from` up to `until`, in scenario time.
fn day_plan(
    group: &crate::scenario::AgentGroup,
    from: Duration,
    until: Duration,
) -> (Option<bool>, Vec<(Duration, Shift)>) {
    const DAY: Duration = crate::scenario::RateProfile::DAY;
    let of_day = |t: Duration| Duration::from_secs(t.as_secs() % DAY.as_secs());
    let on_shift = |t: Duration| group.shift.is_none_or(|(a, b)| (a..b).contains(&of_day(t)));
    let on_break = |t: Duration| group.breaks.iter().any(|&(at, len)| (at..at + len).contains(&of_day(t)));
    let now = on_shift(from).then(|| !on_break(from));
    let mut plan = Vec::new();
    let days = until.as_secs().div_ceil(DAY.as_secs()) as u32;
    for day in 0..days {
        let midnight = DAY * day;
        if let Some((a, b)) = group.shift {
            plan.push((midnight + a, Shift::LogIn));
            plan.push((midnight + b, Shift::LogOut));
        }
        for &(at, len) in &group.breaks {
            plan.push((midnight + at, Shift::BreakStart));
            plan.push((midnight + at + len, Shift::BreakEnd));
        }
    }
    plan.retain(|(t, _)| *t > from && *t <= until);
    plan.sort_by_key(|(t, _)| *t);
    (now, plan)
}

/// Plays one agent's day: logs in and out with the shift, takes breaks.
/// `now`: logged in at the start (and whether ready then).
async fn work_day(
    desk: Arc<Client>,
    login: LoginRequest,
    now: Option<bool>,
    plan: DayPlan,
    pace: Pace,
    offset: Duration,
) {
    let agent_id = login.agent_id;
    let mut logged_in = now.is_some();
    let mut on_break = now == Some(false);
    for (t, change) in plan {
        pace.sleep_until(t - offset).await;
        let not_ready = |reason| SetStateRequest { agent_id, ready: false, reason };
        match change {
            Shift::LogIn => {
                logged_in = desk.login(LoginRequest { ready: !on_break, ..login.clone() }).await.is_ok() || logged_in;
            }
            Shift::LogOut => {
                let _ = desk.set_state(not_ready(NotReadyReason::Other as i32)).await;
                // A call in progress is finished first.
                for _ in 0..600 {
                    if desk.logout(LogoutRequest { agent_id }).await.is_ok() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                logged_in = false;
            }
            Shift::BreakStart => {
                on_break = true;
                let _ = desk.set_state(not_ready(NotReadyReason::Break as i32)).await;
            }
            Shift::BreakEnd => {
                on_break = false;
                if logged_in {
                    let _ = desk.set_state(SetStateRequest { agent_id, ready: true, reason: 0 }).await;
                }
            }
        }
    }
}

/// Writes the commands it is sent to the gateway stream, everything that is
/// waiting in one flush; finishes the stream when every sender is gone.
pub async fn write_gateway_commands(
    mut commands: ccr_proto::client::GatewayCommands,
    mut rx: mpsc::UnboundedReceiver<GatewayCommand>,
) {
    while let Some(first) = rx.recv().await {
        commands.push(&first);
        while let Ok(more) = rx.try_recv() {
            commands.push(&more);
        }
        if commands.flush().await.is_err() {
            return;
        }
    }
    let _ = commands.finish().await;
}

/// Whether an event stream ended early. ccrd drops a subscriber that falls
/// `server.subscriber_buffer` events behind (RESOURCE_EXHAUSTED): the offers
/// after that are never seen, so the run counts an error and says why. The
/// stream ending because ccrd stops (UNAVAILABLE) is the normal end.
pub fn note_event_stream_end(status: &Status, errors: &AtomicU64) {
    if status.code != ccr_proto::wire::Code::Unavailable as i32 {
        errors.fetch_add(1, Ordering::Relaxed);
        eprintln!("ccr-loadgen: the event stream ended early: {status}");
    }
}

/// Reads the gateway stream's replies to its end, counting them and the
/// refused ones.
pub async fn count_replies(
    mut replies: ccr_proto::client::GatewayReplies,
    errors: Arc<AtomicU64>,
    replied: Arc<AtomicU64>,
) {
    while let Ok(reply) = replies.next().await {
        replied.fetch_add(1, Ordering::Relaxed);
        if reply.status.as_ref().is_some_and(|s| s.code != 0) {
            errors.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Resolves once `stop` turns true; never without one.
async fn stopped(stop: &mut Option<tokio::sync::watch::Receiver<bool>>) {
    match stop {
        Some(stop) => {
            if stop.wait_for(|&stop| stop).await.is_err() {
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending().await,
    }
}

fn progress_line(books: &Mutex<Books>, start: Instant, sent: u64, total: u64, eta: Duration, errors: u64) -> String {
    let elapsed = start.elapsed().as_secs_f64().max(1e-9);
    let (waiting, p99) = {
        let b = books.lock().expect("books");
        let waiting = b.contacts.values().filter(|c| !c.offered).count();
        let p99 = b.latency.as_ref().map_or(0, |h| h.value_at_quantile(0.99));
        (waiting, p99)
    };
    format!(
        "{sent}/{total} sent, {:.0}/s, {waiting} waiting, {errors} errors, p99 arrival→offer {:.2} ms, ETA {:.0} s",
        sent as f64 / elapsed,
        p99 as f64 / 1000.0,
        eta.as_secs_f64()
    )
}

/// `config` with every duration divided by `speed`: what ccrd must run with
/// for a live run at that speed to mean what the scenario means (wrap-up,
/// offer timeouts, relaxation and the rest run on ccrd's wall clock).
pub fn scaled(config: &ccr_core::RouterConfig, speed: f64) -> ccr_core::RouterConfig {
    let s = |d: &mut Duration| *d = d.div_f64(speed);
    let mut c = config.clone();
    s(&mut c.short_abandon);
    // The estimate's history window has a floor in ccrd (1 s).
    c.ewt_window = c.ewt_window.div_f64(speed).max(Duration::from_secs(1));
    for t in &mut c.tiers {
        s(&mut t.aging_boost);
        if let Some(target) = t.answer_target.as_mut() {
            s(target);
        }
    }
    for q in &mut c.queues {
        s(&mut q.service_level.threshold);
        s(&mut q.wrap_up);
        s(&mut q.offer_timeout);
        s(&mut q.preferred_agent_window);
        s(&mut q.expected_handle_time);
        for step in &mut q.relaxation {
            s(&mut step.after);
        }
    }
    c
}

/// The ccrd configuration `text` with every routing timer divided by
/// `speed` ([`scaled`]), as TOML for a ccrd that a live run at that speed
/// plays against: the timers a file leaves to their defaults are written
/// out, scaled too. Comments are not kept.
pub fn scaled_config(text: &str, speed: f64) -> anyhow::Result<String> {
    use toml::Value;
    let config = ccr_daemon::config::parse(text)?;
    let router = scaled(&config.router, speed);
    let mut doc: toml::Table = text.parse()?;
    let time = |d: Duration| Value::String(humantime::format_duration(d).to_string());
    let table = |doc: &mut toml::Table, key: &str| -> anyhow::Result<toml::Table> {
        match doc.remove(key) {
            Some(Value::Table(t)) => Ok(t),
            None => Ok(toml::Table::new()),
            Some(_) => anyhow::bail!("{key} is not a table"),
        }
    };
    let mut routing = table(&mut doc, "routing")?;
    routing.insert("short_abandon".into(), time(router.short_abandon));
    routing.insert("ewt_window".into(), time(router.ewt_window));
    doc.insert("routing".into(), Value::Table(routing));
    let mut tiers = Vec::new();
    for (tier, name) in router.tiers.iter().zip(&config.catalog.tiers) {
        let mut t = toml::Table::new();
        t.insert("name".into(), Value::String(name.clone()));
        t.insert("aging_boost".into(), time(tier.aging_boost));
        if let Some(target) = tier.answer_target {
            t.insert("answer_target".into(), time(target));
        }
        tiers.push(Value::Table(t));
    }
    doc.insert("tiers".into(), Value::Array(tiers));
    let Some(Value::Array(queues)) = doc.get_mut("queues") else { anyhow::bail!("no [[queues]]") };
    for (raw, q) in queues.iter_mut().zip(&router.queues) {
        let Value::Table(raw) = raw else { anyhow::bail!("queues: not tables") };
        let mut sl = toml::Table::new();
        sl.insert("target".into(), Value::Float(q.service_level.target));
        sl.insert("threshold".into(), time(q.service_level.threshold));
        raw.insert("service_level".into(), Value::Table(sl));
        raw.insert("wrap_up".into(), time(q.wrap_up));
        raw.insert("offer_timeout".into(), time(q.offer_timeout));
        raw.insert("preferred_agent_window".into(), time(q.preferred_agent_window));
        raw.insert("expected_handle_time".into(), time(q.expected_handle_time));
        if let Some(Value::Array(steps)) = raw.get_mut("relaxation") {
            for (step, s) in steps.iter_mut().zip(&q.relaxation) {
                if let Value::Table(step) = step {
                    step.insert("after".into(), time(s.after));
                }
            }
        }
    }
    Ok(format!(
        "# ccrd for `ccr-loadgen run --speed {speed}`: every routing timer divided by {speed}\n{}",
        toml::to_string(&doc)?
    ))
}

impl LiveRun {
    /// The overall latency line of the report.
    pub fn latency_line(&self) -> String {
        let ms = |q: f64| self.latency.value_at_quantile(q) as f64 / 1000.0;
        format!(
            "arrival→first offer, wall clock from the intended send (includes the wait in queue): \
             p50 {:.3} ms  p90 {:.3} ms  p99 {:.3} ms  p99.9 {:.3} ms  max {:.3} ms  ({} offers)\n\
             rate: intended {:.0}/s, achieved {:.0}/s; {} sent, {} errors, {} unanswered; {:.1} s wall{}",
            ms(0.5),
            ms(0.9),
            ms(0.99),
            ms(0.999),
            self.latency.max() as f64 / 1000.0,
            self.latency.len(),
            self.intended_rate,
            self.achieved_rate,
            self.sent,
            self.errors,
            self.unanswered,
            self.wall.as_secs_f64(),
            if self.interrupted { " (interrupted)" } else { "" }
        )
    }

    /// What makes the run a failure (a non-zero exit): errors, commands
    /// ccrd never answered, an early stop, or a rate below the intended by
    /// more than `rate_tolerance` (a share). Empty when it did what was asked.
    pub fn failures(&self, rate_tolerance: f64) -> Vec<String> {
        let mut failures = Vec::new();
        if self.interrupted {
            failures.push("interrupted before the end of the traffic".to_owned());
        }
        if self.errors > 0 {
            failures.push(format!("{} error(s): refusals, or calls that failed", self.errors));
        }
        if self.unanswered > 0 {
            failures.push(format!("{} gateway command(s) ccrd never answered", self.unanswered));
        }
        if !self.interrupted && self.achieved_rate < self.intended_rate * (1.0 - rate_tolerance) {
            failures.push(format!(
                "achieved {:.0}/s of the intended {:.0}/s (tolerance {:.0} %)",
                self.achieved_rate,
                self.intended_rate,
                100.0 * rate_tolerance
            ));
        }
        failures
    }
}
