//! Queueing theory the simulator is checked against: Erlang C (M/M/c) and
//! Erlang A (M/M/c+M, exponential patience).
//!
//! Erlang C has closed forms. Erlang A is computed from its birth–death
//! chain (truncated where the probability mass is negligible) and, for the
//! waits of answered callers, from the stages a caller passes through: with
//! `j` callers ahead, the head of the line advances at rate `cμ + iθ` when
//! `i` are ahead, and the caller is answered if its own patience outlasts
//! the climb.

/// Steady-state figures of a queue, as a call centre reports them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Figures {
    /// Share of callers who wait at all.
    pub p_wait: f64,
    /// Average speed of answer: mean wait of answered callers, in seconds.
    pub asa: f64,
    /// Share of callers answered within the threshold (abandoned callers
    /// count against it).
    pub service_level: f64,
    /// Share of callers who hang up before being answered.
    pub p_abandon: f64,
}

/// M/M/c: `rate` arrivals/s, `aht` mean handle time (s), `agents` servers,
/// service level against `threshold` seconds. `None` when unstable.
pub fn erlang_c(rate: f64, aht: f64, agents: u32, threshold: f64) -> Option<Figures> {
    let a = rate * aht;
    let c = f64::from(agents);
    if a >= c {
        return None;
    }
    // Erlang B by its stable recursion, then C from B.
    let mut b = 1.0;
    for k in 1..=agents {
        b = a * b / (f64::from(k) + a * b);
    }
    let p_wait = c * b / (c - a * (1.0 - b));
    let drain = c / aht - rate;
    Some(Figures {
        p_wait,
        asa: p_wait / drain,
        service_level: 1.0 - p_wait * (-drain * threshold).exp(),
        p_abandon: 0.0,
    })
}

/// M/M/c+M: as [`erlang_c`], callers hanging up after an exponential
/// patience of mean `patience` seconds.
pub fn erlang_a(rate: f64, aht: f64, agents: u32, patience: f64, threshold: f64) -> Figures {
    let (mu, theta, c) = (1.0 / aht, 1.0 / patience, agents as usize);
    // Stationary distribution of the number in system, up to where it is
    // negligible (the queue drains at least at rate θ per caller waiting).
    // In logarithms: the weights a^n/n! overflow f64 beyond ~700 Erlangs.
    let mut log_weights = vec![0.0f64];
    let mut peak = 0.0f64;
    loop {
        let n = log_weights.len();
        let death = (n.min(c)) as f64 * mu + n.saturating_sub(c) as f64 * theta;
        let next = log_weights[n - 1] + (rate / death).ln();
        log_weights.push(next);
        peak = peak.max(next);
        // Past the agents the weights only fall: stop 1e-16 below the peak.
        if n > c && next < peak - 16.0 * std::f64::consts::LN_10 {
            break;
        }
    }
    let weights: Vec<f64> = log_weights.iter().map(|w| (w - peak).exp()).collect();
    let total: f64 = weights.iter().sum();
    let pi: Vec<f64> = weights.iter().map(|w| w / total).collect();
    let mut figures = Figures { p_wait: 0.0, asa: 0.0, service_level: 0.0, p_abandon: 0.0 };
    let (mut answered, mut answered_wait, mut answered_in_time) = (0.0, 0.0, 0.0);
    for (n, &p) in pi.iter().enumerate() {
        if n < c {
            // Answered at once (arrivals see time averages: PASTA).
            answered += p;
            answered_in_time += p;
            continue;
        }
        figures.p_wait += p;
        let ahead = n - c;
        // Stages i = ahead..=0, each left at rate cμ + iθ; the caller's own
        // patience adds θ to every stage under the "still waiting" measure.
        let stages: Vec<f64> = (0..=ahead).map(|i| c as f64 * mu + i as f64 * theta).collect();
        let p_served: f64 = stages.iter().map(|r| r / (r + theta)).product();
        let mean_if_served: f64 = stages.iter().map(|r| 1.0 / (r + theta)).sum();
        answered += p * p_served;
        answered_wait += p * p_served * mean_if_served;
        let tilted: Vec<f64> = stages.iter().map(|r| r + theta).collect();
        answered_in_time += p * p_served * hypoexponential_cdf(&tilted, threshold);
    }
    figures.p_abandon = 1.0 - answered;
    figures.asa = answered_wait / answered;
    figures.service_level = answered_in_time;
    figures
}

/// The fewest agents whose service level (theory's: abandons count
/// against it) reaches `target` for `rate` arrivals/s of mean handle time
/// `aht` s: Erlang A with a mean `patience` in seconds, else Erlang C.
/// What an Erlang calculator answers. `None` past 100,000 agents.
pub fn agents_for(rate: f64, aht: f64, threshold: f64, target: f64, patience: Option<f64>) -> Option<u32> {
    let load = rate * aht;
    if !(load.is_finite() && load >= 0.0) {
        return None;
    }
    if load == 0.0 {
        return Some(0);
    }
    let meets = |n: u32| match patience {
        Some(p) => erlang_a(rate, aht, n, p, threshold).service_level >= target,
        None => erlang_c(rate, aht, n, threshold).is_some_and(|f| f.service_level >= target),
    };
    // Erlang C needs more agents than Erlangs; Erlang A may need fewer.
    let start = if patience.is_some() { 1 } else { load.floor() as u32 + 1 };
    (start..=100_000).find(|&n| meets(n))
}

/// P(X ≤ t) for X a sum of independent exponentials of these rates, by
/// uniformisation (stable where the closed form's alternating sums are not).
fn hypoexponential_cdf(rates: &[f64], t: f64) -> f64 {
    let uniform = rates.iter().copied().fold(0.0, f64::max);
    let lt = uniform * t;
    // P(stage k still running after m jumps): a distribution over stages
    // (index = stages completed), advanced one uniformised jump at a time.
    let mut at = vec![0.0; rates.len() + 1];
    at[0] = 1.0;
    let (mut cdf, mut poisson) = (0.0, (-lt).exp());
    let mut m = 0u32;
    let mut covered = 0.0;
    while covered < 1.0 - 1e-12 && m < 100_000 {
        cdf += poisson * at[rates.len()];
        covered += poisson;
        let mut next = vec![0.0; rates.len() + 1];
        next[rates.len()] = at[rates.len()];
        for (k, &r) in rates.iter().enumerate() {
            let leave = r / uniform;
            next[k] += at[k] * (1.0 - leave);
            next[k + 1] += at[k] * leave;
        }
        at = next;
        m += 1;
        poisson *= lt / f64::from(m);
        if poisson == 0.0 && covered > 0.5 {
            break;
        }
    }
    cdf.clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erlang_c_matches_published_tables() {
        // 10 agents, 8 Erlangs: P(wait) = 0.409 (standard tables).
        let f = erlang_c(8.0 / 180.0, 180.0, 10, 20.0).unwrap();
        assert!((f.p_wait - 0.4092).abs() < 1e-3, "{f:?}");
        // ASA = P(wait) · AHT / (c − a) = 0.4092 · 180 / 2.
        assert!((f.asa - 0.4092 * 90.0).abs() < 0.1, "{f:?}");
        assert!(erlang_c(1.0, 10.0, 10, 20.0).is_none(), "a = c is unstable");
    }

    #[test]
    fn agents_for_is_the_fewest_meeting_the_target() {
        // 1,800 calls/h of 3 min: 90 Erlangs; 80 % in 20 s.
        let n = agents_for(0.5, 180.0, 20.0, 0.8, None).unwrap();
        assert!(erlang_c(0.5, 180.0, n, 20.0).unwrap().service_level >= 0.8);
        assert!(erlang_c(0.5, 180.0, n - 1, 20.0).is_none_or(|f| f.service_level < 0.8));
        assert!((91..=100).contains(&n), "{n}");
        // Patience shortens the line: never more agents than Erlang C.
        let a = agents_for(0.5, 180.0, 20.0, 0.8, Some(120.0)).unwrap();
        assert!(a <= n && erlang_a(0.5, 180.0, a, 120.0, 20.0).service_level >= 0.8, "{a} vs {n}");
        assert_eq!(agents_for(0.0, 180.0, 20.0, 0.8, None), Some(0));
    }

    #[test]
    fn erlang_a_is_finite_at_five_thousand_agents() {
        // 4,900 Erlangs on 5,000 agents: a^n/n! alone overflows f64 here.
        let a = erlang_a(4900.0 / 180.0, 180.0, 5000, 120.0, 20.0);
        let c = erlang_c(4900.0 / 180.0, 180.0, 5000, 20.0).unwrap();
        for x in [a.p_wait, a.asa, a.service_level, a.p_abandon] {
            assert!(x.is_finite() && x >= 0.0, "{a:?}");
        }
        // Patience only shortens the line.
        assert!(a.p_wait <= c.p_wait + 1e-9 && a.asa <= c.asa, "{a:?} vs {c:?}");
    }

    #[test]
    fn erlang_a_tends_to_erlang_c_as_patience_grows() {
        let c = erlang_c(0.5, 180.0, 100, 20.0).unwrap();
        let a = erlang_a(0.5, 180.0, 100, 1e7, 20.0);
        assert!((a.p_wait - c.p_wait).abs() < 1e-3, "{a:?} vs {c:?}");
        assert!((a.asa - c.asa).abs() < 0.05 * c.asa, "{a:?} vs {c:?}");
        assert!((a.service_level - c.service_level).abs() < 1e-3, "{a:?} vs {c:?}");
        assert!(a.p_abandon < 1e-3, "{a:?}");
    }

    #[test]
    fn erlang_a_abandonment_is_consistent_with_littles_law() {
        // Overloaded (a > c) is stable with abandonment; what leaves unserved
        // is θ · E[queue], so more patience means fewer hang-ups but longer waits.
        let impatient = erlang_a(1.0, 120.0, 100, 60.0, 20.0);
        let patient = erlang_a(1.0, 120.0, 100, 600.0, 20.0);
        assert!(impatient.p_abandon > patient.p_abandon, "{impatient:?} {patient:?}");
        assert!(impatient.asa < patient.asa, "{impatient:?} {patient:?}");
        assert!(patient.p_abandon > 0.0 && patient.p_abandon < 0.5, "{patient:?}");
    }

    #[test]
    fn hypoexponential_cdf_of_one_stage_is_exponential() {
        for t in [0.1, 1.0, 5.0] {
            let exact = 1.0 - (-2.0f64 * t).exp();
            assert!((hypoexponential_cdf(&[2.0], t) - exact).abs() < 1e-9);
        }
        // Two equal stages: Erlang-2.
        let t = 1.5f64;
        let exact = 1.0 - (-t).exp() * (1.0 + t);
        assert!((hypoexponential_cdf(&[1.0, 1.0], t) - exact).abs() < 1e-9);
    }
}
