//! Scenario files, traces and the simulator's promises: same seed, same run;
//! policies compared on the same traffic; every problem named.

use std::path::Path;

use ccr_core::ContactPolicy;
use ccr_loadgen::report::Report;
use ccr_loadgen::scenario::{self, Scenario};
use ccr_loadgen::{sim, trace};

mod common;

fn bank() -> Scenario {
    scenario::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/bank-day.toml")).expect("bank scenario")
}

fn report(s: &Scenario, run: &sim::Run) -> Report {
    Report::of_scenario(run, s)
}

#[test]
fn the_same_seed_gives_the_same_run_and_another_seed_another() {
    let s = bank();
    let a = sim::simulate(&s).unwrap();
    let b = sim::simulate(&s).unwrap();
    assert_eq!(format!("{:?}", a.contacts), format!("{:?}", b.contacts));
    assert_eq!(a.decisions, b.decisions);
    let mut other = s.clone();
    other.seed += 1;
    let c = sim::simulate(&other).unwrap();
    assert_ne!(format!("{:?}", a.contacts), format!("{:?}", c.contacts));
}

#[test]
fn policies_are_compared_on_the_same_traffic() {
    // A quarter of the agents away: lines long enough for the policy to tell.
    let mut s = bank();
    for g in &mut s.agents {
        g.count = g.count * 3 / 4;
    }
    let mut strict = s.clone();
    let mut aging = s.clone();
    for q in &mut strict.ccrd.router.queues {
        q.contact_policy = ContactPolicy::StrictTier;
    }
    for q in &mut aging.ccrd.router.queues {
        q.contact_policy = ContactPolicy::TierAging;
    }
    let (rs, ra) = (sim::simulate(&strict).unwrap(), sim::simulate(&aging).unwrap());
    let arrivals = |r: &sim::Run| r.contacts.iter().map(|c| (c.arrival, c.queue, c.tier)).collect::<Vec<_>>();
    assert!(arrivals(&rs) == arrivals(&ra), "the same callers arrive under both policies");
    let gold_asa = |s: &Scenario, r: &sim::Run| {
        report(s, r).rows.iter().find(|(q, t, _)| q == "billing" && t == "gold").map(|(_, _, f)| f.asa).unwrap()
    };
    assert!(gold_asa(&strict, &rs) <= gold_asa(&aging, &ra), "strict tier serves gold at least as fast");
}

#[test]
fn a_trace_reads_back_as_written() {
    let s = bank();
    let callers = sim::callers(&s);
    assert!(callers.len() > 4000, "a day of traffic: {}", callers.len());
    let dir = std::env::temp_dir().join(format!("ccr-trace-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (first, second) = (dir.join("a.csv"), dir.join("b.csv"));
    trace::write(&first, &callers, &s.ccrd.catalog).unwrap();
    let read = trace::read(&first, &s.ccrd.catalog).unwrap();
    assert_eq!(read.len(), callers.len());
    trace::write(&second, &read, &s.ccrd.catalog).unwrap();
    assert_eq!(std::fs::read(&first).unwrap(), std::fs::read(&second).unwrap(), "a fixed point after one rounding");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_trace_with_an_unknown_queue_names_the_line() {
    let s = bank();
    let dir = std::env::temp_dir().join(format!("ccr-trace-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bad.csv");
    std::fs::write(
        &path,
        "arrival_s,channel,queue,tier,skills,languages,handle_s,patience_s,answer_delay_s\n\
         1.0,voice,billing,gold,billing:3,en,100,,\n\
         2.0,voice,mortgages,gold,billing:3,en,100,,\n",
    )
    .unwrap();
    let error = trace::read(&path, &s.ccrd.catalog).unwrap_err().to_string();
    assert!(error.contains("line 3") && error.contains("mortgages"), "{error}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn every_problem_in_a_scenario_is_named_with_its_field() {
    let text = r#"
[simulation]
duration = "a day"
[[agents]]
count = 5
skills = { knitting = 5 }
rona_probability = 2.0
[traffic]
calls_per_hour = 100
handle_time = { exponential = "3m" }
[[traffic.mix]]
queue = "billing"
tier = "platinum"
skills = { billing = 11 }
"#;
    let problems = scenario::parse(text, Path::new(".")).unwrap_err().0;
    let all = problems.join("\n");
    for field in [
        "simulation.duration",
        "agents[0].skills.knitting",
        "agents[0].rona_probability",
        "traffic.mix[0].tier",
        "traffic.mix[0].skills.billing",
    ] {
        assert!(all.contains(field), "{field} missing from:\n{all}");
    }
}

#[test]
fn charts_are_drawn_as_svg_and_png_with_their_text() {
    let s = bank();
    let run = sim::simulate(&s).unwrap();
    let dir = std::env::temp_dir().join(format!("ccr-plots-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let queues = s.queue_targets();
    let info = ccr_loadgen::output::Charted { label: "configured", tiers: &s.ccrd.catalog.tiers, queues: &queues };
    ccr_loadgen::output::write_plots(&dir, "day-", &run, &report(&s, &run), &info).unwrap();
    for (chart, caption) in [
        ("wait-by-tier", "Answered waits by tier"),
        ("waiting-over-time", "Contacts waiting"),
        ("service-level-by-hour", "Service level by hour"),
    ] {
        let svg = std::fs::read_to_string(dir.join(format!("day-{chart}.svg"))).unwrap();
        assert!(svg.contains(caption), "{chart}.svg carries its caption");
        assert!(svg.contains("configured"), "{chart}.svg names the policy in its title");
        let png = std::fs::read(dir.join(format!("day-{chart}.png"))).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "{chart}.png is a PNG");
        let width = u32::from_be_bytes(png[16..20].try_into().unwrap());
        let height = u32::from_be_bytes(png[20..24].try_into().unwrap());
        assert_eq!((width, height), (900, 540));
        // Drawn, not blank: a white canvas compresses to almost nothing.
        assert!(png.len() > 10_000, "{chart}.png holds a chart ({} bytes)", png.len());
    }
    let tiers = std::fs::read_to_string(dir.join("day-wait-by-tier.svg")).unwrap();
    assert!(s.ccrd.catalog.tiers.iter().all(|t| tiers.contains(t.as_str())), "one line per tier, labelled");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Replications of one policy against itself: on the same callers every
/// paired difference is exactly zero, though the replications themselves
/// differ (each its own seed) — what lets a paired comparison resolve what
/// two separate intervals cannot.
#[test]
fn replications_pair_each_policy_with_the_baseline_on_the_same_callers() {
    use ccr_loadgen::replications::{queue_figures, Comparison};
    let s = bank();
    let mut runs = vec![Vec::new(), Vec::new()];
    for r in 0..4 {
        let mut seeded = s.clone();
        seeded.seed += r;
        for policy_runs in &mut runs {
            policy_runs.push(queue_figures(&report(&seeded, &sim::simulate(&seeded).unwrap())));
        }
    }
    assert_ne!(runs[0][0], runs[0][1], "each replication its own callers");
    let table = Comparison { policies: vec!["configured".into(), "same".into()], runs }.table();
    for queue in ["billing", "repair", "general"] {
        let line = table.lines().find(|l| l.starts_with(queue) && l.contains("same ") && l.contains("points"));
        let line = line.unwrap_or_else(|| panic!("no paired line for {queue}:\n{table}"));
        assert!(line.contains("SL +0.0 ± 0.0 points") && line.ends_with("no difference resolved"), "{line}");
    }
}

/// The bank day's daily service level hides the half-hour when the late
/// shift takes its break with the early shift gone; the interval table
/// shows it.
#[test]
fn the_interval_table_shows_the_hour_the_daily_figure_hides() {
    let s = bank();
    let run = sim::simulate(&s).unwrap();
    let r = report(&s, &run);
    let thresholds = s.thresholds();
    let table =
        ccr_loadgen::report::intervals(&run, &s.ccrd.catalog.queues, &thresholds, std::time::Duration::from_secs(1800));
    let daily = r.rows.iter().find(|(q, t, _)| q == "billing" && t == "all").unwrap().2.service_level;
    assert!(daily > 0.7, "billing's day: {daily}");
    let break_time = table.lines().find(|l| l.starts_with("17:30")).unwrap_or_else(|| panic!("{table}"));
    let billing_sl: f64 = break_time.split_whitespace().nth(6).unwrap().trim_end_matches('%').parse().unwrap();
    assert!(billing_sl < 20.0, "17:30 with nobody staffed: {break_time}");
}

#[test]
fn an_agent_sent_not_ready_by_a_rona_makes_itself_ready_again() {
    // Two agents who let half their offers ring out, no breaks: each RONA
    // sends one not ready, and only its recovery brings it back.
    let s = common::agents_who_ring_out("4h", 30, r#"{ exponential = "1m" }"#, "1m");
    assert_eq!(s.agents[0].rona_recovery, scenario::Dist::Fixed(std::time::Duration::from_secs(60)));
    let run = sim::simulate(&s).unwrap();
    assert!(run.routing.ronas >= 10, "{:?}", run.routing);
    let last_hour = ccr_core::Time::from_secs(3 * 3600);
    let early: Vec<_> = run.contacts.iter().filter(|c| c.arrival < last_hour).collect();
    assert!(early.len() > 50, "{}", early.len());
    assert!(early.iter().all(|c| c.answered.is_some()), "every caller of the first three hours is answered");
}

#[test]
fn a_policy_comparison_is_charted_with_its_intervals() {
    use ccr_loadgen::replications::{queue_figures, Comparison};
    let s = bank();
    let mut strict = s.clone();
    for q in &mut strict.ccrd.router.queues {
        q.contact_policy = ContactPolicy::StrictTier;
    }
    let mut runs = vec![Vec::new(), Vec::new()];
    for r in 0..3 {
        for (policy, scenario) in [&s, &strict].into_iter().enumerate() {
            let mut seeded = scenario.clone();
            seeded.seed += r;
            runs[policy].push(queue_figures(&report(&seeded, &sim::simulate(&seeded).unwrap())));
        }
    }
    let comparison = Comparison { policies: vec!["configured".into(), "strict_tier".into()], runs };
    let charts = ccr_loadgen::output::comparison_charts(&comparison, &s.queue_targets());
    let dir = std::env::temp_dir().join(format!("ccr-policy-plots-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    ccr_loadgen::output::write_policy_charts(&dir, &charts).unwrap();
    for (chart, caption, policies) in [
        ("policies-service-level", "Service level by policy", &["configured", "strict_tier"][..]),
        ("policies-difference", "Service level against configured", &["strict_tier"][..]),
    ] {
        let svg = std::fs::read_to_string(dir.join(format!("{chart}.svg"))).unwrap();
        assert!(svg.contains(caption) && svg.contains("3 replications"), "{chart}: caption");
        for name in policies.iter().chain(&["billing", "repair", "general"]) {
            assert!(svg.contains(name), "{chart} names {name}");
        }
        let png = std::fs::read(dir.join(format!("{chart}.png"))).unwrap();
        assert!(png.len() > 10_000, "{chart}.png holds a chart ({} bytes)", png.len());
    }
    // The service levels are drawn with their targets; the differences are not.
    let levels = &charts[0].1;
    assert!(levels.queues.iter().all(|(_, target)| *target == Some(80.0)), "{:?}", levels.queues);
    assert!(charts[1].1.queues.iter().all(|(_, target)| target.is_none()));
    assert!(levels.values.iter().flatten().flatten().all(|i| i.half_width.is_finite()), "whiskers over replications");
    std::fs::remove_dir_all(&dir).unwrap();
}
