//! Scenarios the tests share: one queue served by alike agents, Poisson
//! arrivals, exponential handle times (and patience) for the tests against
//! queueing theory; agents who let offers ring out.

// Each test binary compiles this module and uses a part of it.
#![allow(dead_code)]

use std::time::Duration;

use ccr_daemon::config;
use ccr_loadgen::scenario::{self, Scenario};

/// A Markovian scenario on one queue, "support", of `ccrd`'s configuration.
pub struct Markovian<'a> {
    pub ccrd: &'a str,
    pub agents: u32,
    pub calls_per_hour: f64,
    pub aht_s: u64,
    pub patience_s: Option<u64>,
    pub duration: Duration,
    pub warm_up: Duration,
    pub seed: u64,
    /// (tier, weight) of the mix.
    pub tiers: &'a [(&'a str, f64)],
}

impl Markovian<'_> {
    pub fn scenario(&self) -> Scenario {
        let patience = self.patience_s.map_or(String::new(), |p| format!("patience = {{ exponential = \"{p}s\" }}"));
        let mix: String = self
            .tiers
            .iter()
            .map(|(tier, weight)| {
                format!(
                    "[[traffic.mix]]\nweight = {weight}\nqueue = \"support\"\ntier = \"{tier}\"\n\
                     skills = {{ support = 1 }}\nlanguages = [\"en\"]\n"
                )
            })
            .collect();
        let text = format!(
            "[simulation]\nduration = \"{}s\"\nwarm_up = \"{}s\"\nseed = {}\n\n\
             [[agents]]\ncount = {}\nskills = {{ support = 5 }}\nlanguages = [\"en\"]\n\n\
             [traffic]\ncalls_per_hour = {}\nhandle_time = {{ exponential = \"{}s\" }}\n{patience}\n\n{mix}",
            self.duration.as_secs(),
            self.warm_up.as_secs(),
            self.seed,
            self.agents,
            self.calls_per_hour,
            self.aht_s,
        );
        scenario::parse_with(&text, config::parse(self.ccrd).expect("ccrd config")).expect("scenario")
    }
}

/// Two agents on one queue who let half their offers ring out (RONA), no
/// shifts or breaks: only their RONA recovery brings them back.
pub fn agents_who_ring_out(duration: &str, calls_per_hour: u32, handle: &str, recovery: &str) -> Scenario {
    let ccrd = r#"
        skills = ["support"]
        languages = ["en"]
        [[tiers]]
        name = "standard"
        [[queues]]
        name = "support"
        service_level = { target = 0.8, threshold = "20s" }
        wrap_up = "0s"
        offer_timeout = "10s"
    "#;
    let text = format!(
        r#"
        [simulation]
        duration = "{duration}"
        seed = 5
        [[agents]]
        count = 2
        skills = {{ support = 5 }}
        languages = ["en"]
        rona_probability = 0.5
        rona_recovery = {{ fixed = "{recovery}" }}
        [traffic]
        calls_per_hour = {calls_per_hour}
        handle_time = {handle}
        [[traffic.mix]]
        queue = "support"
        tier = "standard"
        skills = {{ support = 1 }}
        languages = ["en"]
        "#
    );
    scenario::parse_with(&text, config::parse(ccrd).expect("ccrd config")).expect("scenario")
}
