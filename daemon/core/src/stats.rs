//! Per-queue statistics and the estimated wait time.
//!
//! ## How the estimated wait (EWT) is computed
//! For a waiting contact with `ahead` contacts of its queue ranked before it,
//! EWT = (ahead + 1) × *g*, where *g* is the queue's recent mean time between
//! two answers *while the queue had someone waiting*: answers and busy time
//! are both exponentially decayed with time constant
//! [`crate::RouterConfig::ewt_window`], and *g* is their ratio. Busy time only
//! runs while the queue is non-empty, so a quiet night does not inflate the
//! morning's estimates, and a queue that is answered on arrival estimates ~0.
//! This "queue velocity" estimate follows the real service rate, including
//! agents shared with other queues, breaks and RONAs.
//!
//! Until a queue has seen [`WARM_UP_DEPARTURES`] answers it falls back to the
//! textbook estimate (ahead + 1) × AHT ÷ agents logged in who qualify. Those
//! are counted from the rosters of the contact's primary skill and languages
//! (`AgentPools::staffed`), not by a scan of every agent.
//!
//! Known weaknesses: later arrivals of a higher tier will overtake a waiting
//! contact, so lower tiers' EWT is optimistic under load; and a sudden change
//! of staffing takes about one window to show.
//!
//! Measured (`ccr-loadgen simulate loadgen/scenarios/bank-day.toml`, the
//! estimate at arrival against the wait the answered contact had): within
//! ±20 % for 14–22 % of contacts per queue and tier, against 3–9 % for the
//! naive position × AHT ÷ agents — but with a mean absolute error dominated
//! by outliers: where no qualified agent answered for a while (a queue whose
//! skill is only staffed from late morning), busy time accumulates with no
//! answers and the first estimates after staff arrive are far too long,
//! until the window forgets.

use std::time::Duration;

use crate::oldest::OldestWaiting;
use crate::positions::QueuePositions;
use crate::time::Time;

/// Answers needed before the queue-velocity estimate is trusted.
pub const WARM_UP_DEPARTURES: u64 = 10;

/// Counters since the router started. Monotonic.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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

/// How fast a queue has been answered lately: the history behind the
/// queue-velocity estimate.
#[derive(Clone, Copy, Default, serde::Serialize, serde::Deserialize)]
struct AnswerRate {
    /// Decayed count of answers.
    answers: f64,
    /// Decayed time with someone waiting, in microseconds.
    busy: f64,
    /// When `answers` and `busy` were last brought up to date.
    updated: Time,
}

impl AnswerRate {
    fn advance(&mut self, now: Time, window: Duration, busy: bool) {
        let dt = now.since(self.updated);
        if dt.is_zero() {
            return;
        }
        let decay = (-dt.as_secs_f64() / window.as_secs_f64()).exp();
        let busy = if busy { dt.as_micros() as f64 } else { 0.0 };
        self.busy = self.busy * decay + busy;
        self.answers *= decay;
        self.updated = now;
    }

    fn gap(&self) -> f64 {
        if self.answers > 0.0 {
            self.busy / self.answers
        } else {
            0.0
        }
    }
}

#[derive(Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct QueueState {
    /// The waiting contacts by tier, in rank order: their count and their
    /// positions.
    pub positions: QueuePositions,
    /// The waiting contacts by arrival, for the oldest wait.
    pub oldest: OldestWaiting,
    pub counters: QueueCounters,
    rate: AnswerRate,
    /// Answers ever counted, for the warm-up.
    pub departures: u64,
}

impl QueueState {
    pub(crate) fn new(tiers: usize) -> Self {
        QueueState {
            positions: QueuePositions::new(tiers),
            oldest: OldestWaiting::default(),
            counters: QueueCounters::default(),
            rate: AnswerRate::default(),
            departures: 0,
        }
    }

    pub(crate) fn waiting(&self) -> u32 {
        self.positions.waiting()
    }

    /// Decays the history up to `now`, counting the busy time since the last
    /// update. Must run before the waiting count goes from or to zero.
    pub(crate) fn advance(&mut self, now: Time, window: Duration) {
        let busy = self.waiting() > 0;
        self.rate.advance(now, window, busy);
    }

    pub(crate) fn note_answer(&mut self, now: Time, window: Duration) {
        self.advance(now, window);
        self.rate.answers += 1.0;
        self.departures += 1;
    }

    /// Mean time between answers while busy, in microseconds, as of `now`.
    pub(crate) fn answer_gap(&self, now: Time, window: Duration) -> f64 {
        let mut rate = self.rate;
        rate.advance(now, window, self.waiting() > 0);
        rate.gap()
    }

    /// The answer-rate history: (decayed answers, decayed busy µs, as of).
    pub(crate) fn rate(&self) -> (f64, f64, Time) {
        (self.rate.answers, self.rate.busy, self.rate.updated)
    }

    pub(crate) fn set_rate(&mut self, (answers, busy, updated): (f64, f64, Time)) {
        self.rate = AnswerRate { answers, busy, updated };
    }

    pub(crate) fn service_level(&self) -> Option<f64> {
        let c = &self.counters;
        let denominator = c.answered + c.abandoned;
        (denominator > 0).then(|| c.answered_in_target as f64 / denominator as f64)
    }
}
