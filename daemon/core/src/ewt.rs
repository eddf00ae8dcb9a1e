//! The arithmetic of the estimated wait: how long a contact with `ahead`
//! contacts before it waits, given the rate at which its queue drains, the
//! rate at which those ahead give up, and the later arrivals that will rank
//! before it. Pure functions of those rates; `crate::stats` measures them.
//!
//! ## The queue-length predictor
//! A contact with `n` ahead leaves the queue at the `n + 1`-th departure
//! before it. While `i` are ahead, departures come at the queue's drain
//! rate `r` (offers to agents) plus `i·θ` (abandons of those ahead, each
//! giving up at rate `θ`). The expected wait is the sum of the stages'
//! means (Ibrahim & Whitt, "Real-time delay estimation based on delay
//! history", 2009; for M/M/c, `r = cμ` and θ = 0 gives `(n + 1)/(cμ)`):
//!
//! ```text
//! E[W] = Σ_{i=0..n} 1/(r + iθ) = (ψ(r/θ + n + 1) − ψ(r/θ)) / θ
//! ```
//!
//! ψ is the digamma function: the cost is the same at position 3 and at
//! position 100,000. Among answered contacts — those whose own patience
//! outlasted the wait — each stage is shorter, `1/(r + (i + 1)θ)`
//! ([`answered_wait`], the figure given to callers). The stages are independent exponentials, so the
//! variance is `Σ 1/(r + iθ)²`, a trigamma difference; the range given with
//! the estimate is the 10th to 90th percentile of a gamma distribution with
//! that mean and variance (Wilson–Hilferty).
//!
//! ## Overtaking
//! Under a tiered contact policy, a later arrival of tier *j* ranks before
//! a waiting contact of tier *k* if it comes within `Δ(j, k)` of it
//! (`crate::contact::rank_value`: the difference of the tiers' offsets;
//! unbounded under strict tiers). Over a wait *W*, tier *j* adds
//! `λ_j · min(W, Δ)` contacts ahead, so the wait solves
//! `W = E[W | n + Σ_j λ_j·min(W, Δ(j, k))]`: a fixed point, found by
//! iteration. With strict tiers and no abandonment it is the textbook
//! `(n + 1)/(r − λ_higher)` (non-preemptive priority, all agents busy).

/// A rate at which contacts of a tier arrive, and how long after a waiting
/// contact's arrival one of them still ranks before it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Overtaking {
    /// Contacts per second.
    pub rate: f64,
    /// Seconds; `f64::INFINITY` under strict tiers.
    pub within: f64,
}

/// An expected wait and its spread, in seconds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Wait {
    pub mean: f64,
    pub low: f64,
    pub high: f64,
    /// Whether later arrivals alone would keep the contact waiting without
    /// bound (higher tiers arriving as fast as the queue drains, nobody
    /// giving up): `mean` is then only the fixed point's last iterate.
    pub unbounded: bool,
}

/// The expected wait of a contact with `ahead` before it *that is
/// answered*: its own patience, exponential at θ like the others', outlasts
/// every stage, which tilts each stage's rate by θ (those who would wait
/// longest hang up first), so the stages leave at `r + (i + 1)θ`. This is
/// the wait answered callers have, what the estimate is measured against;
/// a caller who would never hang up waits [`expected_wait`].
pub fn answered_wait(ahead: f64, r: f64, theta: f64, overtakers: &[Overtaking]) -> Wait {
    expected_wait(ahead, r + theta, theta, overtakers)
}

/// The fixed point of the overtaking iteration is met to this share.
const CONVERGED: f64 = 1e-4;
const MAX_ITERATIONS: u32 = 32;
/// No wait is given as longer than a day.
const LONGEST: f64 = 86_400.0;

/// Mean and variance (s, s²) of the time for `m + 1` departures from a
/// queue that drains at `r` per second with those `i` ahead abandoning at
/// `i·theta`. `m` may be fractional (an expected count of overtakers).
pub fn clearing_time(m: f64, r: f64, theta: f64) -> (f64, f64) {
    debug_assert!(r > 0.0 && theta >= 0.0 && m >= 0.0);
    let x = r / theta;
    // Below this, abandonment changes the sum by less than 1e-6 of it, and
    // the digamma difference would lose its digits to cancellation.
    if theta == 0.0 || m * theta < 1e-6 * r {
        return ((m + 1.0) / r, (m + 1.0) / (r * r));
    }
    let mean = (digamma(x + m + 1.0) - digamma(x)) / theta;
    let variance = (trigamma(x) - trigamma(x + m + 1.0)) / (theta * theta);
    (mean, variance.max(0.0))
}

/// The expected wait of a contact with `ahead` before it, overtaken by
/// `overtakers` while it waits.
pub fn expected_wait(ahead: f64, r: f64, theta: f64, overtakers: &[Overtaking]) -> Wait {
    let mut unbounded = false;
    let (mut mean, mut variance) = clearing_time(ahead, r, theta);
    if overtakers.iter().any(|o| o.rate > 0.0 && o.within > 0.0) {
        // Not converging within the iterations (or past a day): the
        // overtakers keep up with the drain.
        unbounded = true;
        for _ in 0..MAX_ITERATIONS {
            let extra: f64 = overtakers.iter().map(|o| o.rate * o.within.min(mean)).sum();
            let (next, next_variance) = clearing_time(ahead + extra, r, theta);
            let done = (next - mean).abs() <= CONVERGED * next;
            (mean, variance) = (next, next_variance);
            if mean > LONGEST {
                break;
            }
            if done {
                unbounded = false;
                break;
            }
        }
    }
    let mean = mean.min(LONGEST);
    let (low, high) = gamma_range(mean, variance);
    Wait { mean, low, high: high.min(LONGEST), unbounded }
}

/// The 10th and 90th percentiles of a gamma distribution of this mean and
/// variance, by the Wilson–Hilferty cube-root approximation.
fn gamma_range(mean: f64, variance: f64) -> (f64, f64) {
    if mean <= 0.0 || variance <= 0.0 {
        return (mean, mean);
    }
    const Z90: f64 = 1.281_551_565_5;
    let shape = mean * mean / variance;
    let scale = variance / mean;
    let a = 1.0 / (9.0 * shape);
    let quantile = |z: f64| shape * scale * (1.0 - a + z * a.sqrt()).max(0.0).powi(3);
    (quantile(-Z90), quantile(Z90))
}

/// ψ(x) for x > 0: the recurrence up to 10, then the asymptotic series
/// (error below 1e-10 from there).
pub fn digamma(mut x: f64) -> f64 {
    let mut shift = 0.0;
    while x < 10.0 {
        shift -= 1.0 / x;
        x += 1.0;
    }
    let inv = 1.0 / x;
    let inv2 = inv * inv;
    shift + x.ln() - 0.5 * inv - inv2 * (1.0 / 12.0 - inv2 * (1.0 / 120.0 - inv2 * (1.0 / 252.0)))
}

/// ψ′(x) for x > 0, likewise.
pub fn trigamma(mut x: f64) -> f64 {
    let mut shift = 0.0;
    while x < 10.0 {
        shift += 1.0 / (x * x);
        x += 1.0;
    }
    let inv = 1.0 / x;
    let inv2 = inv * inv;
    shift + inv + 0.5 * inv2 + inv * inv2 * (1.0 / 6.0 - inv2 * (1.0 / 30.0 - inv2 * (1.0 / 42.0)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The sums by their definition: the reference the closed form must match.
    fn by_stages(n: u64, r: f64, theta: f64) -> (f64, f64) {
        (0..=n).map(|i| 1.0 / (r + i as f64 * theta)).fold((0.0, 0.0), |(m, v), s| (m + s, v + s * s))
    }

    #[test]
    fn digamma_and_trigamma_at_known_points() {
        const EULER: f64 = 0.577_215_664_901_532_9;
        assert!((digamma(1.0) + EULER).abs() < 1e-10);
        assert!((digamma(0.5) + EULER + 2.0 * 2f64.ln()).abs() < 1e-10);
        assert!((trigamma(1.0) - std::f64::consts::PI.powi(2) / 6.0).abs() < 1e-10);
        assert!((trigamma(0.5) - std::f64::consts::PI.powi(2) / 2.0).abs() < 1e-9);
    }

    proptest! {
        /// The closed form equals the stage-by-stage sum, from the head of
        /// the line to ten thousand ahead, with and without abandonment.
        #[test]
        fn clearing_time_matches_the_sum_of_its_stages(
            n in 0u64..10_000,
            r in 0.001f64..100.0,
            theta in prop_oneof![Just(0.0), 1e-6f64..1.0],
        ) {
            let (mean, variance) = clearing_time(n as f64, r, theta);
            let (m, v) = by_stages(n, r, theta);
            prop_assert!((mean - m).abs() <= 1e-6 * m, "mean {mean} vs {m}");
            prop_assert!((variance - v).abs() <= 1e-5 * v, "variance {variance} vs {v}");
        }

        /// More ahead never means a shorter wait, and the range holds the mean.
        #[test]
        fn the_wait_grows_with_the_line_and_its_range_holds_it(
            n in 0u64..50_000, r in 0.01f64..50.0, theta in 0.0f64..0.1,
        ) {
            let here = expected_wait(n as f64, r, theta, &[]);
            let behind = expected_wait(n as f64 + 1.0, r, theta, &[]);
            prop_assert!(behind.mean >= here.mean);
            prop_assert!(here.low <= here.mean && here.mean <= here.high);
        }
    }

    #[test]
    fn strict_tiers_without_abandonment_give_the_priority_queue_formula() {
        // 10 ahead, the queue drains at 2/s, the higher tier arrives at 0.5/s.
        let w = expected_wait(10.0, 2.0, 0.0, &[Overtaking { rate: 0.5, within: f64::INFINITY }]);
        assert!((w.mean - 11.0 / 1.5).abs() < 1e-3 * w.mean, "{w:?}");
        assert!(!w.unbounded);
    }

    #[test]
    fn a_bounded_head_start_overtakes_only_for_its_length() {
        // Arrivals of the other tier rank ahead only within 2 s of ours: at
        // most 2 × 0.5 = 1 more ahead, however long the wait.
        let w = expected_wait(10.0, 2.0, 0.0, &[Overtaking { rate: 0.5, within: 2.0 }]);
        assert!((w.mean - 12.0 / 2.0).abs() < 1e-6, "{w:?}");
    }

    #[test]
    fn higher_tiers_that_take_all_the_capacity_leave_the_wait_unbounded() {
        let w = expected_wait(3.0, 1.0, 0.0, &[Overtaking { rate: 1.0, within: f64::INFINITY }]);
        assert!(w.unbounded && w.mean <= LONGEST, "{w:?}");
        // Abandonment of those ahead keeps it finite.
        let w = expected_wait(3.0, 1.0, 0.01, &[Overtaking { rate: 1.0, within: f64::INFINITY }]);
        assert!(!w.unbounded, "{w:?}");
    }

    #[test]
    fn the_range_of_one_exponential_stage_is_its_percentiles() {
        // At the head of the line the wait is exponential: 10th and 90th
        // percentiles ln(10/9) and ln(10) times the mean; Wilson–Hilferty is
        // within 7 % at this, its worst shape.
        let w = expected_wait(0.0, 1.0, 0.0, &[]);
        assert!((w.low / (10.0f64 / 9.0).ln() - 1.0).abs() < 0.07, "{w:?}");
        assert!((w.high / 10f64.ln() - 1.0).abs() < 0.02, "{w:?}");
    }
}
