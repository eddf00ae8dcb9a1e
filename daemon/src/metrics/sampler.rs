//! Queue gauges, agent and session counts and outcome counters from the
//! core's own counters (authoritative, and nothing to record on the routing
//! thread), and the service level over the configured window: once a
//! second, or each time a manual clock moves.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ccr_core::Router;
use tokio::sync::{mpsc, oneshot};

use super::{Metrics, ServiceLevelWindow, OUTCOMES};
use crate::clock::Clock;
use crate::core_thread::CoreHandle;
use crate::journal;

/// When the sampler samples.
pub enum Cadence {
    /// Once a second of real time.
    EverySecond,
    /// On each request, answered once the sample is taken (a manual clock:
    /// tests see the metrics of the time they moved to).
    OnRequest(mpsc::UnboundedReceiver<oneshot::Sender<()>>),
}

/// Runs until the core stops. `last_snapshot_ms` (with a journal) is the
/// Unix time of the last durable snapshot, reported as an age.
pub async fn run(
    core: CoreHandle,
    metrics: Arc<Metrics>,
    clock: Arc<dyn Clock>,
    cadence: Cadence,
    window: Duration,
    last_snapshot_ms: Option<Arc<AtomicU64>>,
) {
    let mut sl = ServiceLevelWindow::new(window);
    let mut second = tokio::time::interval(Duration::from_secs(1));
    let mut requests = match cadence {
        Cadence::EverySecond => None,
        Cadence::OnRequest(requests) => Some(requests),
    };
    loop {
        let done = match &mut requests {
            None => {
                second.tick().await;
                None
            }
            Some(requests) => match requests.recv().await {
                Some(done) => Some(done),
                None => return,
            },
        };
        if let Some(at) = &last_snapshot_ms {
            let age_ms = journal::unix_millis().saturating_sub(at.load(Ordering::Relaxed));
            metrics.snapshot_age.set(age_ms as f64 / 1000.0);
        }
        let skills = metrics.agents_by_skill.len();
        let sampled = core
            .query(move |r: &Router| {
                (r.all_queue_stats(), r.timer_count(), r.session_counts(), r.agent_states_by_skill(skills))
            })
            .await;
        let Ok((stats, timers, sessions, by_skill)) = sampled else { return };
        for (gauges, counts) in metrics.agents_by_skill.iter().zip(&by_skill) {
            for (gauge, n) in gauges.iter().zip(counts) {
                gauge.set(f64::from(*n));
            }
        }
        metrics.core_timers.set(timers as f64);
        metrics.sessions[0].set(sessions.live as f64);
        metrics.sessions[1].set(sessions.in_grace as f64);
        let totals =
            stats.iter().map(|s| (s.counters.answered_in_target, s.counters.answered, s.counters.abandoned)).collect();
        let figures = sl.update(clock.now(), totals);
        let levels: Vec<Option<f64>> = figures.iter().map(|f| f.service_level).collect();
        metrics.window.set(window, figures);
        for ((q, s), level) in metrics.queues.iter().zip(&stats).zip(levels) {
            for (gauge, n) in q.waiting.iter().zip(&s.waiting_by_tier) {
                gauge.set(f64::from(*n));
            }
            q.oldest_wait.set(s.oldest_wait.map_or(0.0, |d| d.as_secs_f64()));
            let c = &s.counters;
            let values =
                [c.offered, c.answered, c.abandoned, c.short_abandoned, c.transferred_in, c.overflowed_out, c.rona];
            for (outcome, value) in OUTCOMES.iter().zip(values) {
                if let Some(counter) = q.contacts.get(outcome) {
                    counter.absolute(value);
                }
            }
            q.answered_in_threshold.absolute(c.answered_in_target);
            q.service_level.set(level.unwrap_or(1.0));
            q.service_level_target.set(s.service_level_target);
        }
        if let Some(s) = stats.first() {
            for (gauge, n) in metrics.agents.iter().zip(s.agents_by_state) {
                gauge.set(f64::from(n));
            }
        }
        if let Some(done) = done {
            let _ = done.send(());
        }
    }
}
