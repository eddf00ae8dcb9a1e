//! Per-queue statistics, and the history behind the estimated wait.
//!
//! ## How the estimated wait (EWT) is computed
//! For a waiting contact with `n` contacts ranked before it in its queue,
//! the queue-length predictor of [`crate::ewt`] with three rates this
//! module measures per queue, each exponentially decayed with time
//! constant [`crate::RouterConfig::ewt_window`] — of time with someone
//! waiting for the first two (they only move then; idle time ages them
//! [`IDLE_AGING`] times slower), of the clock for the arrivals:
//!
//! - the **drain rate** `r`: contacts leaving the queue for an offer, per
//!   second *while someone waits* (offers to contacts that did not wait do
//!   not count, as their time is not counted either; an offer that rings
//!   out or is declined gives its contact's place back). While contacts
//!   wait, every agent who can take one does, so this is the service rate
//!   the queue really gets — shared agents, RONAs and breaks included. A
//!   gap with nobody leaving longer than [`STALL_GAPS`] expected gaps is a
//!   stall, counted as one expected gap: agents all on a break stop the
//!   queue, they do not slow it for the next `ewt_window`, and meanwhile the
//!   estimate says the queue is stalled;
//! - the **abandonment rate** θ of one waiting contact: abandons ÷ the time
//!   the contacts that left the queue had waited in it (the estimate of an
//!   exponential patience from censored waits);
//! - each tier's **arrival rate** (every contact that enters the queue,
//!   offered at once or not), for the later arrivals that will rank before
//!   the contact ([`crate::ewt`], overtaking).
//!
//! Before the queue has much history, the drain rate leans on staffing:
//! the rate the agents logged in who qualify would give at the queue's
//! expected handle time plus wrap-up, weighed against the measured rate as
//! [`WARM_UP_DEPARTURES`] departures against the decayed count of real
//! ones, so the first estimates of the day are those of the staffing, and
//! history takes over as it accrues. With nobody who
//! qualifies with the contact's requirements as they stand (relaxation may
//! widen them) the measured rate alone counts; with neither, nothing can be
//! estimated: the estimate assumes one agent and says it is uncertain.
//!
//! Measured against the waits contacts really had: `ccr-loadgen simulate`
//! reports it per queue and tier beside the naive estimate and, where the
//! scenario is Markovian, the exact one (loadgen/README.md).

use std::time::Duration;

use crate::oldest::OldestWaiting;
use crate::positions::QueuePositions;
use crate::time::Time;

/// The weight of the staffing's rate against the measured drain rate, in
/// departures: history outweighs it after as many real ones (decayed). Two:
/// a wrong `expected_handle_time` must not hold a slow queue's estimate,
/// whose decayed count stays low, away from what it measures.
pub const WARM_UP_DEPARTURES: u64 = 2;

/// A gap with nobody leaving a waiting queue longer than this many expected
/// gaps is a stall: it counts as one expected gap. An exponential gap is
/// this long once in 3,000, and counting it short biases the rate by 0.3 %.
pub const STALL_GAPS: f64 = 8.0;

/// Decayed departures the expected gap must rest on before a long one
/// counts as a stall: the first gaps of the day say little.
pub const STALL_MIN_DEPARTURES: f64 = 4.0;

/// How much slower a queue's drain and abandonment history ages while
/// nobody waits than while someone does.
pub const IDLE_AGING: f64 = 8.0;

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
    /// The wait falls in `[low, high]` four times out of five when the
    /// rates hold (their 10th and 90th percentiles).
    pub low: Duration,
    pub high: Duration,
    pub method: EwtMethod,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EwtMethod {
    /// From the queue's measured rates.
    QueueLength,
    /// Mostly from the staffing: the queue has little history yet.
    Staffing,
    /// Uncertain: nobody has left the queue for [`STALL_GAPS`] expected
    /// gaps (the estimate assumes the stall lasts as long again, less what
    /// callers' patience cuts short among those answered), or there
    /// is neither history nor anyone logged in who qualifies.
    Stalled,
    /// Offered or connected: the wait is over.
    NotWaiting,
}

/// How fast a waiting queue drains: the history behind the drain rate.
#[derive(Clone, Copy, Default, serde::Serialize, serde::Deserialize)]
struct AnswerRate {
    /// Decayed count of departures for an offer.
    answers: f64,
    /// Decayed time with someone waiting, in microseconds.
    busy: f64,
    /// When every decayed figure was last brought up to date.
    updated: Time,
}

/// The rest of the history: abandonment, how long the queue has gone
/// without a departure, and the time the arrival counts are rates over.
/// In snapshots from format 14 on; from an older one it is relearnt within
/// one window.
#[derive(Clone, Copy)]
struct Flow {
    /// Busy time since the last departure, in microseconds.
    since_departure: f64,
    /// The drain history as of the last departure (decayed since by the
    /// time nobody waited), and the expected gap between departures then.
    at_departure: AnswerRate,
    gap: f64,
    /// Decayed count of abandons from the queue.
    abandons: f64,
    /// Decayed time the contacts that left the queue had waited in it, µs.
    exposure: f64,
    /// Decayed time, µs: what the arrival counts are rates over.
    elapsed: f64,
}

impl Default for Flow {
    fn default() -> Self {
        Flow {
            since_departure: 0.0,
            at_departure: AnswerRate::default(),
            gap: f64::INFINITY,
            abandons: 0.0,
            exposure: 0.0,
            elapsed: 0.0,
        }
    }
}

/// e^(−x) − 1 for x ≥ 0. Most updates come milliseconds apart against a
/// window of minutes: there the Taylor series to x⁴ is exact to 1e-12 and
/// costs the routing thread a few multiplications, not a libm call.
fn exp_m1_of_minus(x: f64) -> f64 {
    if x < 1e-3 {
        -x * (1.0 - x * (0.5 - x * (1.0 / 6.0 - x / 24.0)))
    } else {
        (-x).exp_m1()
    }
}

/// Decays `answers` and `busy` by `e^(−dt/τ)`, given as `decay_m1`
/// (that minus one), counting the interval as busy or not.
fn decay_rate(rate: &mut AnswerRate, decay_m1: f64, tau: f64, busy: bool) {
    rate.answers *= 1.0 + decay_m1;
    // ∫ e^(−s/τ) ds over the interval: dt for short ones, never more than τ.
    rate.busy = rate.busy * (1.0 + decay_m1) - if busy { tau * decay_m1 } else { 0.0 };
}

impl Flow {
    /// Busy µs without a departure that make a stall: [`STALL_GAPS`]
    /// expected gaps, once the gap rests on [`STALL_MIN_DEPARTURES`].
    fn stall_after(&self) -> f64 {
        if self.at_departure.answers >= STALL_MIN_DEPARTURES {
            STALL_GAPS * self.gap
        } else {
            f64::INFINITY
        }
    }

    /// Brings `rate` and `self` up to `now`; returns the factor the counts
    /// decayed by, to apply to the arrivals too.
    fn advance(&mut self, rate: &mut AnswerRate, now: Time, window: Duration, waiting: bool) -> f64 {
        let dt = now.since(rate.updated);
        if dt.is_zero() {
            return 1.0;
        }
        let (dt, tau) = (dt.as_micros() as f64, window.as_micros() as f64);
        let decay_m1 = exp_m1_of_minus(dt / tau);
        let decay = 1.0 + decay_m1;
        // The queue's own history ages with the time someone waits, and
        // [`IDLE_AGING`] times slower while nobody does: a queue that waits a
        // quarter of the time keeps four times the departures in its window,
        // and last night's pace still fades by morning.
        if waiting {
            self.abandons *= decay;
            self.exposure *= decay;
            let cap = self.stall_after();
            let before = self.since_departure;
            self.since_departure += dt;
            if self.since_departure <= cap {
                decay_rate(rate, decay_m1, tau, true);
            } else if before <= cap {
                // A stall begins: the history is as if one more expected
                // gap had passed since the last departure, and stands still
                // until the next — a stall says nothing of the pace when
                // agents serve.
                *rate = AnswerRate { updated: rate.updated, ..self.at_departure };
                decay_rate(rate, exp_m1_of_minus(self.gap / tau), tau, true);
            }
        } else {
            let idle_m1 = exp_m1_of_minus(dt / (IDLE_AGING * tau));
            decay_rate(rate, idle_m1, IDLE_AGING * tau, false);
            decay_rate(&mut self.at_departure, idle_m1, IDLE_AGING * tau, false);
            self.abandons *= 1.0 + idle_m1;
            self.exposure *= 1.0 + idle_m1;
        }
        rate.updated = now;
        self.elapsed = self.elapsed * decay - tau * decay_m1;
        decay
    }
}

/// A queue's rates as the estimate reads them, per second.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Rates {
    /// Decayed departures, and the decayed busy seconds they took.
    pub departures: f64,
    pub busy: f64,
    /// Abandons per second of waiting, per contact.
    pub abandonment: f64,
    /// Seconds without a departure, when more than [`STALL_GAPS`] gaps.
    pub stalled_for: Option<f64>,
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
    /// Departures ever counted.
    pub departures: u64,
    #[serde(skip)]
    flow: Flow,
    /// Decayed count of arrivals per tier, decayed with `flow`.
    #[serde(skip)]
    arrivals: Vec<f64>,
}

impl QueueState {
    pub(crate) fn new(tiers: usize) -> Self {
        QueueState {
            positions: QueuePositions::new(tiers),
            oldest: OldestWaiting::default(),
            counters: QueueCounters::default(),
            rate: AnswerRate::default(),
            departures: 0,
            flow: Flow::default(),
            arrivals: vec![0.0; tiers],
        }
    }

    pub(crate) fn waiting(&self) -> u32 {
        self.positions.waiting()
    }

    /// Decays the history up to `now`, counting the time since the last
    /// update as busy if someone waited. Must run before the waiting count
    /// goes from or to zero.
    pub(crate) fn advance(&mut self, now: Time, window: Duration) {
        let waiting = self.positions.waiting() > 0;
        let decay = self.flow.advance(&mut self.rate, now, window, waiting);
        if decay != 1.0 {
            for a in &mut self.arrivals {
                *a *= decay;
            }
        }
    }

    /// A contact of `tier` joined the queue. Into a waiting queue it is
    /// counted as of the history's last update (a departure or two ago: off
    /// by that over `ewt_window`), which saves the routing thread an update;
    /// into an empty one it brings the history up to date, as the busy
    /// time must.
    pub(crate) fn note_arrival(&mut self, now: Time, window: Duration, tier: usize) {
        if self.positions.waiting() == 0 {
            self.advance(now, window);
        }
        if self.arrivals.len() <= tier {
            self.arrivals.resize(tier + 1, 0.0);
        }
        self.arrivals[tier] += 1.0;
    }

    /// A contact that had waited `waited` in the queue left it for an offer.
    pub(crate) fn note_departure(&mut self, now: Time, window: Duration, waited: Duration) {
        self.advance(now, window);
        self.rate.answers += 1.0;
        self.departures += 1;
        let flow = &mut self.flow;
        flow.since_departure = 0.0;
        flow.at_departure = self.rate;
        flow.gap = self.rate.busy / self.rate.answers;
        flow.exposure += waited.as_micros() as f64;
    }

    /// An offer ended unanswered: its contact takes its place back.
    pub(crate) fn note_return(&mut self, now: Time, window: Duration) {
        self.advance(now, window);
        self.rate.answers = (self.rate.answers - 1.0).max(0.0);
    }

    /// A contact gave up after waiting `waited` in the queue.
    pub(crate) fn note_abandon(&mut self, now: Time, window: Duration, waited: Duration) {
        self.advance(now, window);
        self.flow.abandons += 1.0;
        self.flow.exposure += waited.as_micros() as f64;
    }

    /// The rates as of `now`, without changing the history.
    pub(crate) fn rates(&self, now: Time, window: Duration) -> Rates {
        let (mut rate, mut flow) = (self.rate, self.flow);
        flow.advance(&mut rate, now, window, self.positions.waiting() > 0);
        Rates {
            departures: rate.answers,
            busy: rate.busy / 1e6,
            abandonment: if flow.exposure > 0.0 { flow.abandons / (flow.exposure / 1e6) } else { 0.0 },
            stalled_for: (flow.since_departure > flow.stall_after()).then(|| flow.since_departure / 1e6),
        }
    }

    /// Arrivals of `tier` per second, as of the last update (decay since
    /// then scales the count and the time alike).
    pub(crate) fn arrival_rate(&self, tier: usize) -> f64 {
        let elapsed = self.flow.elapsed / 1e6;
        match self.arrivals.get(tier) {
            Some(&a) if elapsed > 0.0 => a / elapsed,
            _ => 0.0,
        }
    }

    /// The answer-rate history: (decayed answers, decayed busy µs, as of).
    pub(crate) fn rate(&self) -> (f64, f64, Time) {
        (self.rate.answers, self.rate.busy, self.rate.updated)
    }

    pub(crate) fn set_rate(&mut self, (answers, busy, updated): (f64, f64, Time)) {
        self.rate = AnswerRate { answers, busy, updated };
    }

    pub(crate) fn flow_record(&self) -> crate::state::FlowRecord {
        let f = &self.flow;
        crate::state::FlowRecord {
            since_departure: f.since_departure,
            at_departure: (f.at_departure.answers, f.at_departure.busy),
            gap: f.gap,
            abandons: f.abandons,
            exposure: f.exposure,
            elapsed: f.elapsed,
            arrivals: self.arrivals.clone(),
        }
    }

    pub(crate) fn set_flow(&mut self, r: &crate::state::FlowRecord) {
        let (answers, busy) = r.at_departure;
        self.flow = Flow {
            since_departure: r.since_departure,
            at_departure: AnswerRate { answers, busy, updated: Time::ZERO },
            gap: r.gap,
            abandons: r.abandons,
            exposure: r.exposure,
            elapsed: r.elapsed,
        };
        self.arrivals.clone_from(&r.arrivals);
        let tiers = self.positions.waiting_by_tier().count();
        self.arrivals.resize(self.arrivals.len().max(tiers), 0.0);
    }

    pub(crate) fn service_level(&self) -> Option<f64> {
        let c = &self.counters;
        let denominator = c.answered + c.abandoned;
        (denominator > 0).then(|| c.answered_in_target as f64 / denominator as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::exp_m1_of_minus;

    /// The series and libm agree where they meet and below.
    #[test]
    fn the_short_decay_series_matches_libm() {
        for x in [0.0, 1e-9, 1e-6, 1e-4, 5e-4, 9.99e-4, 1e-3, 0.5, 30.0] {
            let (series, libm) = (exp_m1_of_minus(x), (-x).exp_m1());
            assert!((series - libm).abs() <= 1e-12 * libm.abs().max(1e-300), "{x}: {series} vs {libm}");
        }
    }
}
