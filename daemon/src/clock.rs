//! The clock the core thread reads. The core itself never reads one.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use ccr_core::Time;

/// A source of `now` for the core: microseconds since the Unix epoch, never
/// going backwards.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Time;
}

impl Clock for Arc<dyn Clock> {
    fn now(&self) -> Time {
        (**self).now()
    }
}

/// Wall-clock time taken once at start, advanced by the monotonic clock, so
/// that a step of the system clock cannot reorder the core's timers.
pub struct SystemClock {
    epoch_micros: u64,
    start: Instant,
}

impl SystemClock {
    pub fn new() -> Self {
        let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        SystemClock { epoch_micros: since_epoch.as_micros() as u64, start: Instant::now() }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for SystemClock {
    fn now(&self) -> Time {
        Time::from_micros(self.epoch_micros + self.start.elapsed().as_micros() as u64)
    }
}

/// A clock that moves only when told to: for tests and virtual time.
#[derive(Clone, Default)]
pub struct ManualClock(Arc<AtomicU64>);

impl ManualClock {
    pub fn set(&self, t: Time) {
        self.0.store(t.as_micros(), Ordering::SeqCst);
    }

    pub fn advance(&self, by: std::time::Duration) {
        self.set(self.now() + by);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Time {
        Time::from_micros(self.0.load(Ordering::SeqCst))
    }
}
