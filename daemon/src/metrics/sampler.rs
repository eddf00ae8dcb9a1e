//! Once a second: queue gauges, agent counts and outcome counters from the
//! core's own counters (authoritative, and nothing to record on the routing
//! thread), and the service level over the configured window.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ccr_core::Router;

use super::{Metrics, ServiceLevelWindow, OUTCOMES};
use crate::core_thread::CoreHandle;
use crate::journal;

/// Runs until the core stops. `last_snapshot_ms` (with a journal) is the
/// Unix time of the last durable snapshot, reported as an age.
pub async fn run(core: CoreHandle, metrics: Arc<Metrics>, window: Duration, last_snapshot_ms: Option<Arc<AtomicU64>>) {
    let mut sl = ServiceLevelWindow::new(window);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        if let Some(at) = &last_snapshot_ms {
            let age_ms = journal::unix_millis().saturating_sub(at.load(Ordering::Relaxed));
            metrics.snapshot_age.set(age_ms as f64 / 1000.0);
        }
        let Ok((stats, timers)) = core.query(|r: &Router| (r.all_queue_stats(), r.timer_count())).await else {
            return;
        };
        metrics.core_timers.set(timers as f64);
        let totals =
            stats.iter().map(|s| (s.counters.answered_in_target, s.counters.answered + s.counters.abandoned)).collect();
        let levels = sl.update(Instant::now(), totals);
        for ((q, s), level) in metrics.queues.iter().zip(&stats).zip(levels) {
            for (gauge, n) in q.waiting.iter().zip(&s.waiting_by_tier) {
                gauge.set(f64::from(*n));
            }
            q.oldest_wait.set(s.oldest_wait.map_or(0.0, |d| d.as_secs_f64()));
            let c = &s.counters;
            let values = [c.offered, c.abandoned, c.short_abandoned, c.transferred_in, c.overflowed_out, c.rona];
            for (outcome, value) in OUTCOMES.iter().zip(values) {
                if let Some(counter) = q.contacts.get(outcome) {
                    counter.absolute(value);
                }
            }
            q.service_level.set(level.unwrap_or(1.0));
            q.service_level_target.set(s.service_level_target);
        }
        if let Some(s) = stats.first() {
            for (gauge, n) in metrics.agents.iter().zip(s.agents_by_state) {
                gauge.set(f64::from(n));
            }
        }
    }
}
