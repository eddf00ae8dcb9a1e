//! The scenarios of the tests against queueing theory: one queue served by
//! alike agents, Poisson arrivals, exponential handle times (and patience).

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
