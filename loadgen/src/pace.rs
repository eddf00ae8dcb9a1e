//! A live run's clock: scenario time played at `speed` on the wall clock,
//! less the idle stretches skipped — a night with nobody calling, a lull in
//! a trace — so that a run at `--speed 60` does not show a still screen
//! for minutes. Every task of the run sleeps on it, and wakes early when a
//! stretch is skipped.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::{sleep_until, Instant};

#[derive(Clone)]
pub struct Pace {
    start: Instant,
    speed: f64,
    /// Wall-clock time skipped so far, in nanoseconds.
    skipped: Arc<AtomicU64>,
    /// Bumped at each skip, so that sleepers recompute their deadline.
    skips: watch::Sender<u64>,
}

impl Pace {
    /// Scenario time zero is `start` on the wall clock.
    pub fn new(start: Instant, speed: f64) -> Pace {
        Pace { start, speed, skipped: Arc::default(), skips: watch::Sender::new(0) }
    }

    pub fn start(&self) -> Instant {
        self.start
    }

    /// The wall-clock instant of scenario time `t`.
    pub fn wall(&self, t: Duration) -> Instant {
        self.start + t.div_f64(self.speed) - self.skipped()
    }

    /// Wall-clock time skipped so far.
    pub fn skipped(&self) -> Duration {
        Duration::from_nanos(self.skipped.load(Ordering::Relaxed))
    }

    /// Scenario time skipped so far.
    pub fn skipped_scenario_time(&self) -> Duration {
        self.skipped().mul_f64(self.speed)
    }

    /// The scenario time it is now.
    pub fn now(&self) -> Duration {
        (Instant::now().saturating_duration_since(self.start) + self.skipped()).mul_f64(self.speed)
    }

    /// Moves every deadline `by` (wall-clock time) closer; the sleepers
    /// wake and sleep again until their new deadline.
    pub fn skip(&self, by: Duration) {
        let nanos = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        self.skipped.fetch_add(nanos, Ordering::Relaxed);
        self.skips.send_modify(|n| *n += 1);
    }

    /// Sleeps until scenario time `t`, skips included.
    pub async fn sleep_until(&self, t: Duration) {
        let mut skips = self.skips.subscribe();
        loop {
            tokio::select! {
                () = sleep_until(self.wall(t)) => return,
                changed = skips.changed() => if changed.is_err() {
                    return sleep_until(self.wall(t)).await;
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sleeper wakes at its deadline moved by a skip made while it slept,
    /// on Tokio's paused clock (no real time passes).
    #[tokio::test(start_paused = true)]
    async fn a_skip_wakes_a_sleeper_at_its_moved_deadline() {
        let start = Instant::now();
        let pace = Pace::new(start, 60.0);
        // Scenario minute 60 is wall second 60 at 60×.
        let sleeper = {
            let pace = pace.clone();
            tokio::spawn(async move {
                pace.sleep_until(Duration::from_secs(3600)).await;
                Instant::now()
            })
        };
        tokio::time::sleep(Duration::from_secs(10)).await;
        pace.skip(Duration::from_secs(40));
        let woke = sleeper.await.unwrap();
        assert_eq!(woke - start, Duration::from_secs(20), "60 s less the 40 s skipped");
        assert_eq!(pace.skipped_scenario_time(), Duration::from_secs(40 * 60));
        assert_eq!(pace.wall(Duration::from_secs(3600)), start + Duration::from_secs(20));
    }
}
