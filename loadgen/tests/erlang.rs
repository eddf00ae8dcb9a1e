//! The simulator against queueing theory, at call-centre scale: M/M/c must
//! match Erlang C and M/M/c+M (exponential patience) must match Erlang A —
//! probability of waiting, average speed of answer, service level, and
//! abandonment — within the simulation's own confidence interval, estimated
//! by batch means (20 batches after a warm-up), wide enough that each test
//! fails 5 % of the time by chance when the simulator is right. The
//! simulator's generator (ChaCha12) keeps its stream across releases, so a
//! seed that passes keeps passing: a failure means the simulator changed.
//!
//! The router runs its real policies here: one queue, one tier (first come,
//! first served), longest-idle agent, no wrap-up, answers without delay.

use std::time::Duration;

mod common;

use ccr_loadgen::erlang::{self, Figures};
use ccr_loadgen::report;
use ccr_loadgen::scenario::Scenario;
use ccr_loadgen::sim;

use common::Markovian;

const CCRD: &str = include_str!("../scenarios/erlang-c.ccrd.toml");
const BATCHES: usize = 20;
/// Each test makes 12 checks (3 sizes × 4 figures) and must fail only 5 %
/// of the time when the simulator is right: each check at 1 − 0.05/12
/// (Bonferroni), two-sided — Student's t at 0.99792, 19 degrees of freedom.
const T_19: f64 = 3.255;

fn scenario(agents: u32, calls_per_hour: f64, aht_s: u64, patience_s: Option<u64>, batch: Duration) -> Scenario {
    let (duration, warm_up) = (batch * (BATCHES as u32 + 1), batch);
    let tiers = &[("standard", 1.0)];
    Markovian { ccrd: CCRD, agents, calls_per_hour, aht_s, patience_s, duration, warm_up, seed: 11, tiers }.scenario()
}

/// Mean and half-width of a metric over the batches, at [`T_19`].
fn interval(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, T_19 * (var / n).sqrt())
}

/// Simulates and compares every metric with theory; returns the mismatches.
fn compare(name: &str, s: &Scenario, theory: Figures) -> Vec<String> {
    let run = sim::simulate(s).expect("router config");
    let threshold = s.ccrd.router.queues[0].service_level.threshold;
    let batch = s.warm_up; // batches as long as the warm-up, after it
    let mut per_batch: Vec<Vec<_>> = vec![Vec::new(); BATCHES];
    for c in &run.contacts {
        let i =
            (c.arrival.as_micros().saturating_sub(s.warm_up.as_micros() as u64) / batch.as_micros() as u64) as usize;
        if let Some(b) = per_batch.get_mut(i) {
            b.push(c.clone());
        }
    }
    let figures: Vec<report::Figures> = per_batch.iter().map(|b| report::Figures::of(b, threshold)).collect();
    let metric = |f: &dyn Fn(&report::Figures) -> f64| interval(&figures.iter().map(f).collect::<Vec<_>>());
    let checks = [
        ("P(wait)", metric(&|f| f.waited_share), theory.p_wait),
        ("ASA s", metric(&|f| f.asa.as_secs_f64()), theory.asa),
        ("service level", metric(&|f| f.service_level), theory.service_level),
        ("abandoned", metric(&|f| f.abandon_rate), theory.p_abandon),
    ];
    let offered: u64 = figures.iter().map(|f| f.offered).sum();
    let mut mismatches = Vec::new();
    for (metric, (mean, half), expected) in checks {
        let line = format!("{name}: {metric} simulated {mean:.4} ± {half:.4}, theory {expected:.4}");
        println!("{line}  [{offered} contacts]");
        if (mean - expected).abs() > half.max(1e-9) {
            mismatches.push(line);
        }
    }
    mismatches
}

#[test]
fn mmc_matches_erlang_c_at_three_call_centre_sizes() {
    // (agents, calls per hour, mean handle time s, threshold of the config: 20 s)
    let sets = [(100, 1800.0, 180), (200, 2220.0, 300), (300, 4275.0, 240)];
    let mut mismatches = Vec::new();
    for (agents, calls, aht) in sets {
        let s = scenario(agents, calls, aht, None, Duration::from_secs(8 * 3600));
        let theory = erlang::erlang_c(calls / 3600.0, aht as f64, agents, 20.0).expect("stable");
        mismatches.extend(compare(&format!("M/M/{agents}"), &s, theory));
    }
    assert!(mismatches.is_empty(), "outside the interval (95 % over the test's 12 checks):\n{}", mismatches.join("\n"));
}

#[test]
fn mmc_with_patience_matches_erlang_a_at_three_call_centre_sizes() {
    // (agents, calls per hour, mean handle time s, mean patience s); the
    // second is overloaded (210 Erlangs on 200 agents), stable only thanks
    // to abandonment.
    let sets = [(100, 1900.0, 180, 120), (200, 2520.0, 300, 180), (300, 4350.0, 240, 300)];
    let mut mismatches = Vec::new();
    for (agents, calls, aht, patience) in sets {
        let s = scenario(agents, calls, aht, Some(patience), Duration::from_secs(8 * 3600));
        let theory = erlang::erlang_a(calls / 3600.0, aht as f64, agents, patience as f64, 20.0);
        mismatches.extend(compare(&format!("M/M/{agents}+M"), &s, theory));
    }
    assert!(mismatches.is_empty(), "outside the interval (95 % over the test's 12 checks):\n{}", mismatches.join("\n"));
}
