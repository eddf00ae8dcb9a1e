//! Policies compared over independent replications, as an analyst can
//! defend the comparison: each figure as a mean with its 95 % confidence
//! half-width over the replications, and each policy against the
//! baseline (the scenario as configured) by the *paired* difference — the
//! same callers in both (common random numbers: the traffic has its own
//! random stream, `crate::sim`), so what differs is the policy, and the
//! interval of the difference is far narrower than the two intervals.

use std::fmt::Write as _;

use crate::report::Report;

/// A mean and the half-width of its 95 % confidence interval.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Interval {
    pub mean: f64,
    pub half_width: f64,
}

impl Interval {
    /// Over independent values (Student's t, n − 1 degrees of freedom); a
    /// single value has an unknown (infinite) half-width.
    pub fn of(values: &[f64]) -> Interval {
        let n = values.len();
        let mean = values.iter().sum::<f64>() / n.max(1) as f64;
        if n < 2 {
            return Interval { mean, half_width: f64::INFINITY };
        }
        let variance = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
        Interval { mean, half_width: t_975(n - 1) * (variance / n as f64).sqrt() }
    }

    /// Whether the interval leaves out zero: a difference resolved.
    pub fn excludes_zero(&self) -> bool {
        self.mean.abs() > self.half_width
    }
}

/// Student's t at 97.5 %: the table to 30 degrees of freedom, then
/// 1.96 + 2.5/df (within 0.002 of the true value from 30 up).
pub fn t_975(df: usize) -> f64 {
    const TABLE: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
        2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
    ];
    match df {
        0 => f64::INFINITY,
        1..=30 => TABLE[df - 1],
        _ => 1.96 + 2.5 / df as f64,
    }
}

/// One queue's figures of one run: service level (against the queue's own
/// threshold), ASA in seconds, abandonment rate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct QueueFigures {
    pub service_level: f64,
    pub asa: f64,
    pub abandon_rate: f64,
}

/// Each queue's figures in a run's report, by queue name, in order.
pub fn queue_figures(report: &Report) -> Vec<(String, QueueFigures)> {
    report
        .rows
        .iter()
        .filter(|(_, tier, _)| tier == "all")
        .map(|(queue, _, f)| {
            let figures =
                QueueFigures { service_level: f.service_level, asa: f.asa.as_secs_f64(), abandon_rate: f.abandon_rate };
            (queue.clone(), figures)
        })
        .collect()
}

/// The runs of every policy: `runs[p][r]` is policy `p`'s replication `r`;
/// policy 0 is the baseline.
pub struct Comparison {
    pub policies: Vec<String>,
    pub runs: Vec<Vec<Vec<(String, QueueFigures)>>>,
}

impl Comparison {
    /// One figure of one queue over a policy's replications.
    fn values(&self, policy: usize, queue: &str, figure: fn(&QueueFigures) -> f64) -> Vec<f64> {
        self.runs[policy]
            .iter()
            .filter_map(|run| run.iter().find(|(q, _)| q == queue).map(|(_, f)| figure(f)))
            .collect()
    }

    /// Each replication's difference from the baseline's, on the same callers.
    fn paired(&self, policy: usize, queue: &str, figure: fn(&QueueFigures) -> f64) -> Vec<f64> {
        let base = self.values(0, queue, figure);
        self.values(policy, queue, figure).iter().zip(&base).map(|(p, b)| p - b).collect()
    }

    /// The queues compared, in queue order.
    pub fn queues(&self) -> Vec<String> {
        self.runs[0].first().map_or(Vec::new(), |r| r.iter().map(|(q, _)| q.clone()).collect())
    }

    /// A policy's service level in a queue over the replications, in points.
    pub fn service_level(&self, policy: usize, queue: &str) -> Interval {
        Interval::of(&self.values(policy, queue, |f| 100.0 * f.service_level))
    }

    /// A policy's paired service-level difference from the baseline, in points.
    pub fn service_level_difference(&self, policy: usize, queue: &str) -> Interval {
        Interval::of(&self.paired(policy, queue, |f| 100.0 * f.service_level))
    }

    /// The widest 95 % half-width of any queue's service level, in points,
    /// over every policy and every paired difference: what a stated
    /// precision is held to.
    pub fn widest_service_level_half_width(&self) -> f64 {
        let mut widest = 0.0f64;
        for queue in &self.queues() {
            for p in 0..self.policies.len() {
                widest = widest.max(self.service_level(p, queue).half_width);
                if p > 0 {
                    widest = widest.max(self.service_level_difference(p, queue).half_width);
                }
            }
        }
        widest
    }

    /// The comparison as tables: every policy's figures per queue, then each
    /// policy's paired differences from the baseline, with a verdict.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let replications = self.runs.first().map_or(0, Vec::len);
        let queues = self.queues();
        let _ = writeln!(
            out,
            "== {replications} replications; mean ± 95 % half-width (SL against each queue's own threshold)"
        );
        let _ = writeln!(out, "{:<12} {:<34} {:>16} {:>14} {:>15}", "queue", "policy", "SL %", "ASA s", "abandoned %");
        let sl = |f: &QueueFigures| 100.0 * f.service_level;
        let asa = |f: &QueueFigures| f.asa;
        let abandoned = |f: &QueueFigures| 100.0 * f.abandon_rate;
        let show = |i: Interval| format!("{:.1} ± {:.1}", i.mean, i.half_width);
        for queue in &queues {
            for (p, name) in self.policies.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "{:<12} {:<34} {:>16} {:>14} {:>15}",
                    queue,
                    name,
                    show(Interval::of(&self.values(p, queue, sl))),
                    show(Interval::of(&self.values(p, queue, asa))),
                    show(Interval::of(&self.values(p, queue, abandoned))),
                );
            }
        }
        if self.policies.len() > 1 {
            let _ = writeln!(out, "\n== against {} (paired: the same callers in every replication)", self.policies[0]);
            for queue in &queues {
                for (p, name) in self.policies.iter().enumerate().skip(1) {
                    let d = Interval::of(&self.paired(p, queue, sl));
                    let a = Interval::of(&self.paired(p, queue, asa));
                    let verdict = match (d.excludes_zero(), d.mean > 0.0) {
                        (false, _) => "no difference resolved".to_owned(),
                        (true, true) => "better".to_owned(),
                        (true, false) => "worse".to_owned(),
                    };
                    let _ = writeln!(
                        out,
                        "{queue:<12} {name:<34} SL {:+.1} ± {:.1} points, ASA {:+.1} ± {:.1} s: {verdict}",
                        d.mean, d.half_width, a.mean, a.half_width
                    );
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_interval_of_known_values() {
        // Mean 2, sample sd 1, n 4: 3.182 × 1/√4.
        let i = Interval::of(&[1.0, 2.0, 3.0, 2.0]);
        assert!((i.mean - 2.0).abs() < 1e-12);
        let sd = (2.0f64 / 3.0).sqrt();
        assert!((i.half_width - 3.182 * sd / 2.0).abs() < 1e-9, "{i:?}");
        assert!(Interval::of(&[5.0]).half_width.is_infinite(), "one value says nothing of its spread");
    }

    #[test]
    fn pairing_resolves_what_two_separate_intervals_cannot() {
        // Two policies whose runs vary together (the same callers): each
        // interval is wide, the paired difference narrow and resolved.
        let base = [70.0, 80.0, 75.0, 85.0, 72.0];
        let better: Vec<f64> = base.iter().zip([1.0, 1.2, 0.8, 1.1, 0.9]).map(|(b, d)| b + d).collect();
        let wide = Interval::of(&base);
        assert!(wide.half_width > 1.0, "{wide:?}");
        let diff: Vec<f64> = better.iter().zip(&base).map(|(a, b)| a - b).collect();
        let d = Interval::of(&diff);
        assert!(d.excludes_zero() && d.mean > 0.0, "{d:?}");
    }

    #[test]
    fn the_widest_half_width_covers_every_policy_and_difference() {
        let figures = |sl: f64| vec![("q".to_owned(), QueueFigures { service_level: sl, asa: 1.0, abandon_rate: 0.0 })];
        let base: Vec<_> = [0.70, 0.80, 0.75, 0.85].map(figures).into();
        let same: Vec<_> = [0.70, 0.80, 0.75, 0.85].map(figures).into();
        let c = Comparison { policies: vec!["a".into(), "b".into()], runs: vec![base, same] };
        // Each policy's SL in points: mean 77.5, sd 6.455, n 4 → 3.182 × 3.227.
        let expected = 3.182 * (125.0f64 / 3.0).sqrt() / 2.0;
        assert!((c.widest_service_level_half_width() - expected).abs() < 1e-9);
    }

    #[test]
    fn t_quantiles_meet_the_normal_one() {
        assert!((t_975(19) - 2.093).abs() < 1e-9);
        assert!((t_975(40) - 2.021).abs() < 0.002);
        assert!((t_975(120) - 1.980).abs() < 0.002);
        assert!(t_975(0).is_infinite());
    }
}
