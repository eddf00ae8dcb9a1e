//! ccrd's estimated wait against the exact predictor where queueing theory
//! knows it: M/M/c, M/M/c+M and strict priority tiers, each contact's
//! estimate at arrival against the wait it then had. The targets: a mean
//! absolute error within 10 % of the exact predictor's (15 % per tier under
//! strict tiers), and no systematic bias (mean signed error within ±5 % of
//! the mean wait).

use std::time::Duration;

mod common;

use ccr_loadgen::report::{Accuracy, Figures};
use ccr_loadgen::scenario::Scenario;
use ccr_loadgen::sim::{self, ExactModel};

use common::Markovian;

const ONE_TIER: &str = include_str!("../scenarios/erlang-c.ccrd.toml");

const STRICT_TIERS: &str = r#"
skills = ["support"]
languages = ["en"]
[routing]
short_abandon = "0s"
[[tiers]]
name = "gold"
[[tiers]]
name = "standard"
[[queues]]
name = "support"
service_level = { target = 0.8, threshold = "20s" }
contact_policy = "strict_tier"
wrap_up = "0s"
offer_timeout = "1h"
max_waiting = 100000
"#;

/// `agents` serving `calls_per_hour` with exponential handle times (and
/// patience) for `hours` after an hour's warm-up; `tiers` (name, weight).
fn scenario(
    ccrd: &str,
    agents: u32,
    calls_per_hour: f64,
    aht_s: u64,
    patience_s: Option<u64>,
    hours: u64,
    tiers: &[(&str, f64)],
) -> Scenario {
    let (duration, warm_up) = (Duration::from_secs(hours * 3600), Duration::from_secs(3600));
    Markovian { ccrd, agents, calls_per_hour, aht_s, patience_s, duration, warm_up, seed: 3, tiers }.scenario()
}

/// The estimate's accuracy per tier (by tier id), beside the exact one, and
/// each tier's mean answered wait among those that queued.
fn accuracy(s: &Scenario) -> Vec<(Accuracy, Accuracy, f64)> {
    assert!(ExactModel::of(s).is_some(), "the scenario is Markovian");
    let run = sim::simulate(s).expect("router config");
    let threshold = s.ccrd.router.queues[0].service_level.threshold;
    let tiers = s.ccrd.router.tiers.len();
    (0..tiers)
        .filter_map(|t| {
            let contacts: Vec<_> = run.contacts.iter().filter(|c| usize::from(c.tier.0) == t).collect();
            let ewt = Figures::of(contacts.iter().copied(), threshold).ewt?;
            let waits: Vec<f64> = contacts
                .iter()
                .filter(|c| c.estimate.is_some())
                .filter_map(|c| c.answered.map(|w| w.as_secs_f64()))
                .collect();
            let mean = waits.iter().sum::<f64>() / waits.len() as f64;
            Some((ewt.ccr, ewt.exact.expect("exact predictor"), mean))
        })
        .collect()
}

fn check(name: &str, per_tier: &[(Accuracy, Accuracy, f64)], mae_margin: f64) -> Vec<String> {
    let mut misses = Vec::new();
    for (tier, (ccr, exact, mean)) in per_tier.iter().enumerate() {
        let line = format!(
            "{name} tier {tier}: MAE {:.2} s (exact {:.2} s), bias {:+.2} s (exact {:+.2} s) on a mean wait of {mean:.1} s, \
             within ±20 %: {:.1} % (exact {:.1} %)",
            ccr.mean_abs_error,
            exact.mean_abs_error,
            ccr.bias,
            exact.bias,
            100.0 * ccr.within_20_percent,
            100.0 * exact.within_20_percent
        );
        eprintln!("{line}");
        if ccr.mean_abs_error > (1.0 + mae_margin) * exact.mean_abs_error || ccr.bias.abs() > 0.05 * mean {
            misses.push(line);
        }
    }
    misses
}

#[test]
fn the_estimate_is_as_good_as_the_exact_predictor_for_mmc_and_mmc_with_patience() {
    let mut misses = Vec::new();
    // 150 agents at 95 % load, AHT 120 s.
    let s = scenario(ONE_TIER, 150, 4275.0, 120, None, 8, &[("standard", 1.0)]);
    misses.extend(check("M/M/150", &accuracy(&s), 0.10));
    // 80 agents at 92 % load, patience 45 s.
    let s = scenario(ONE_TIER, 80, 1472.0, 180, Some(45), 16, &[("standard", 1.0)]);
    misses.extend(check("M/M/80+M", &accuracy(&s), 0.10));
    assert!(misses.is_empty(), "off target:\n{}", misses.join("\n"));
}

#[test]
fn under_strict_tiers_each_tier_is_as_good_as_its_exact_predictor() {
    // 100 agents at 95 % load; gold is 30 % of the calls and overtakes.
    let s = scenario(STRICT_TIERS, 100, 1900.0, 180, None, 24, &[("gold", 0.3), ("standard", 0.7)]);
    let misses = check("strict tiers", &accuracy(&s), 0.15);
    assert!(misses.is_empty(), "off target:\n{}", misses.join("\n"));
}

#[test]
fn the_report_marks_only_markovian_scenarios_exact() {
    let markovian = scenario(ONE_TIER, 20, 380.0, 180, None, 2, &[("standard", 1.0)]);
    assert!(ExactModel::of(&markovian).is_some());
    let mut with_breaks = markovian.clone();
    with_breaks.agents[0].breaks.push((Duration::from_secs(3600), Duration::from_secs(900)));
    assert!(ExactModel::of(&with_breaks).is_none(), "breaks are not in the model");
    let aging = scenario(
        &STRICT_TIERS.replace("strict_tier", "tier_aging"),
        20,
        380.0,
        180,
        None,
        2,
        &[("gold", 0.3), ("standard", 0.7)],
    );
    assert!(ExactModel::of(&aging).is_none(), "tier aging has no textbook predictor");
}
