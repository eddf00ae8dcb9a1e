//! Per-queue statistics and the estimated wait time.
//!
//! ## How the estimated wait (EWT) is computed
//! For a waiting contact with `ahead` contacts of its queue ranked before it,
//! EWT = (ahead + 1) × *g*, where *g* is the queue's recent mean gap between
//! two answered contacts (an exponentially weighted moving average, weight
//! [`crate::RouterConfig::ewt_smoothing`] on the newest gap). The clock of a gap
//! only runs while the queue has someone waiting, so a quiet night does not
//! inflate the morning's estimates. This "queue velocity" estimate follows the
//! real service rate, including agents shared with other queues and breaks.
//!
//! Until a queue has seen [`WARM_UP_DEPARTURES`] answers it falls back to the
//! textbook estimate (ahead + 1) × AHT ÷ agents logged in who qualify.
//!
//! Known weaknesses: later arrivals of a higher tier will overtake a waiting
//! contact, so lower tiers' EWT is optimistic under load; and a sudden change
//! of staffing takes about 1 / smoothing answers to show. The simulator
//! measures the error against the waits contacts really had.

use std::time::Duration;

use crate::time::Time;

/// Answers needed before the queue-velocity estimate is trusted.
pub const WARM_UP_DEPARTURES: u64 = 10;

/// Counters since the router started. Monotonic.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueCounters {
    /// Contacts that entered this queue by enqueue or callback.
    pub arrived: u64,
    /// Offers made for contacts of this queue (RONA and re-offers included).
    pub offered: u64,
    /// Offers accepted.
    pub answered: u64,
    /// Answered within the service-level threshold of their arrival.
    pub answered_in_target: u64,
    /// Hung up before answer, excluding short abandons.
    pub abandoned: u64,
    pub short_abandoned: u64,
    /// Offers that rang out (redirect on no answer).
    pub rona: u64,
    pub overflowed_out: u64,
    pub overflowed_in: u64,
    pub transferred_in: u64,
    pub completed: u64,
}

/// A queue as an operator sees it now.
#[derive(Clone, Debug, PartialEq)]
pub struct QueueStats {
    pub name: String,
    /// Waiting (not offered) contacts per tier, index = tier id.
    pub waiting_by_tier: Vec<u32>,
    pub waiting: u32,
    /// Longest current wait, since original arrival.
    pub oldest_wait: Option<Duration>,
    pub counters: QueueCounters,
    /// answered in target ÷ (answered + abandoned), short abandons excluded;
    /// `None` before the first answer or abandon.
    pub service_level: Option<f64>,
    pub service_level_target: f64,
    /// Agents logged in, by [`crate::AgentState::index`].
    pub agents_by_state: [u32; 6],
}

/// Where a waiting contact stands.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WaitEstimate {
    /// 1 = next in line.
    pub position: u32,
    pub estimated_wait: Duration,
    pub method: EwtMethod,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EwtMethod {
    QueueVelocity,
    HandleTimeModel,
    /// Offered or connected: the wait is over.
    NotWaiting,
}

pub(crate) struct QueueState {
    pub waiting_by_tier: Vec<u32>,
    pub counters: QueueCounters,
    /// EWMA of the gap between answers, in microseconds.
    pub gap_ewma: f64,
    pub departures: u64,
    /// Start of the current gap: last answer, or the arrival that ended an
    /// empty spell.
    pub gap_start: Option<Time>,
}

impl QueueState {
    pub(crate) fn new(tiers: usize) -> Self {
        QueueState {
            waiting_by_tier: vec![0; tiers],
            counters: QueueCounters::default(),
            gap_ewma: 0.0,
            departures: 0,
            gap_start: None,
        }
    }

    pub(crate) fn waiting(&self) -> u32 {
        self.waiting_by_tier.iter().sum()
    }

    pub(crate) fn note_answer(&mut self, now: Time, smoothing: f64) {
        if let Some(start) = self.gap_start {
            let gap = now.since(start).as_micros() as f64;
            self.gap_ewma = if self.departures == 0 { gap } else { smoothing * gap + (1.0 - smoothing) * self.gap_ewma };
            self.departures += 1;
        }
        self.gap_start = Some(now);
    }

    pub(crate) fn note_arrival_into_empty(&mut self, now: Time) {
        self.gap_start = Some(now);
    }

    pub(crate) fn service_level(&self) -> Option<f64> {
        let c = &self.counters;
        let denominator = c.answered + c.abandoned;
        (denominator > 0).then(|| c.answered_in_target as f64 / denominator as f64)
    }
}
