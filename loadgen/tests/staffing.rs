//! Staffing by simulation against the Erlang calculator where theory
//! knows the answer: one queue, alike agents, Poisson arrivals and
//! exponential handle times (M/M/c), 80 % answered within 20 s.

use std::time::Duration;

mod common;

use ccr_loadgen::erlang;
use ccr_loadgen::staffing::{self, StaffingOptions, Target};

use common::Markovian;

const CCRD: &str = include_str!("../scenarios/erlang-c.ccrd.toml");

#[test]
fn a_single_skill_queue_is_staffed_as_erlang_c_says() {
    // 480 calls/h of 2 min: 16 Erlangs.
    let s = Markovian {
        ccrd: CCRD,
        agents: 1, // the plan replaces the scenario's staffing
        calls_per_hour: 480.0,
        aht_s: 120,
        patience_s: None,
        duration: Duration::from_secs(4 * 3600),
        warm_up: Duration::ZERO,
        seed: 7,
        tiers: &[("standard", 1.0)],
    }
    .scenario();
    let target = Target { share: 0.8, threshold: Duration::from_secs(20) };
    let options = StaffingOptions {
        width: Duration::from_secs(1800),
        target: Some(target),
        replications: 20,
        any_hours: false,
        progress: false,
    };
    let plan = staffing::staff(&s, &options).unwrap();
    let theory = erlang::agents_for(480.0 / 3600.0, 120.0, 20.0, 0.8, None).unwrap();
    assert_eq!(plan.erlang_model, "Erlang C");
    // The first interval starts from an empty line; after it, the line is
    // in its steady state, as Erlang C assumes.
    for p in &plan.intervals[1..] {
        let simulated = p.agents[0].unwrap();
        assert!(simulated.abs_diff(theory) <= 1, "{:?}: simulated {simulated}, Erlang C {theory}", p.start);
        assert!(p.met && p.out_of_reach.is_empty(), "{p:?}");
        let erlang = p.erlang.unwrap();
        assert!(erlang.abs_diff(theory) <= 1, "Erlang C at the interval's own load: {erlang} vs {theory}");
    }
    let total: u32 = plan.intervals.iter().map(|p| p.total()).sum();
    assert!(total > 0 && plan.trials > 0);
}
