//! What a run measured, per queue and tier, as a call-centre report reads.
//!
//! Definitions (those of docs/METRICS.md and DOMAIN.md): a contact is
//! *offered* when it arrives after the warm-up; *answered* when an agent
//! accepts it; *abandoned* when the caller hangs up first (a *short*
//! abandon, under `routing.short_abandon`, counts in neither the service
//! level nor the abandonment rate). Service level = answered within the
//! queue's threshold ÷ (answered + abandoned − short). ASA = mean wait of the
//! answered. Waits are from original arrival.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use ccr_core::{QueueId, TierId};
use hdrhistogram::Histogram;

use crate::sim::{ContactRecord, Run};

/// The figures of one group of contacts (a queue and tier, a queue, or all).
#[derive(Clone, Debug)]
pub struct Figures {
    pub offered: u64,
    pub answered: u64,
    pub abandoned: u64,
    pub short_abandoned: u64,
    /// Still waiting when the run ended.
    pub unfinished: u64,
    pub answered_in_threshold: u64,
    /// Share of offered contacts that queued (no agent took them at once).
    pub waited_share: f64,
    pub service_level: f64,
    pub asa: Duration,
    /// Answered waits: p50, p90, p99, max.
    pub wait_p50: Duration,
    pub wait_p90: Duration,
    pub wait_p99: Duration,
    pub wait_max: Duration,
    pub abandon_rate: f64,
    /// The queue's service-level threshold: answered within it counts.
    pub threshold: Duration,
    pub ewt: Option<EwtAccuracy>,
    /// Every answered wait, in microseconds.
    pub waits: Histogram<u64>,
}

/// How good the wait estimates given at arrival were, against the wait the
/// answered contact really had: ccrd's, a naive one, and (where the
/// scenario is Markovian) the exact one.
#[derive(Clone, Copy, Debug)]
pub struct EwtAccuracy {
    pub samples: u64,
    pub ccr: Accuracy,
    /// ccr's over the estimates it did not call uncertain, and the share
    /// it did.
    pub ccr_confident: Option<Accuracy>,
    pub uncertain_share: f64,
    pub naive: Accuracy,
    pub exact: Option<Accuracy>,
    /// The longest estimate ccrd gave, and the longest wait answered.
    pub longest_estimate: Duration,
    pub longest_wait: Duration,
}

/// (actual wait, ccr's estimate, naive, exact, ccr uncertain), in seconds.
type Estimated = (f64, f64, f64, Option<f64>, bool);

/// One predictor's errors (estimate − actual) over a group of contacts.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Accuracy {
    /// Mean signed error, in seconds: negative is optimistic.
    pub bias: f64,
    pub mean_abs_error: f64,
    /// 90th percentile of the absolute error, in seconds.
    pub p90_abs_error: f64,
    /// Share of estimates within ±20 % of the actual wait.
    pub within_20_percent: f64,
}

impl Accuracy {
    /// From (estimate, actual) pairs in seconds; `None` when there are none.
    pub fn of(pairs: impl IntoIterator<Item = (f64, f64)>) -> Option<Accuracy> {
        let (mut n, mut signed, mut within) = (0usize, 0.0, 0usize);
        let mut abs = Vec::new();
        for (estimate, actual) in pairs {
            let e = estimate - actual;
            n += 1;
            signed += e;
            abs.push(e.abs());
            within += usize::from(e.abs() <= 0.2 * actual);
        }
        if n == 0 {
            return None;
        }
        abs.sort_by(f64::total_cmp);
        let nf = n as f64;
        Some(Accuracy {
            bias: signed / nf,
            mean_abs_error: abs.iter().sum::<f64>() / nf,
            p90_abs_error: nearest_rank(&abs, 0.9),
            within_20_percent: within as f64 / nf,
        })
    }
}

impl Figures {
    /// Figures of `contacts`, with the service-level threshold of their queue.
    pub fn of<'a>(contacts: impl IntoIterator<Item = &'a ContactRecord>, threshold: Duration) -> Figures {
        let mut f = Figures {
            offered: 0,
            answered: 0,
            abandoned: 0,
            short_abandoned: 0,
            unfinished: 0,
            answered_in_threshold: 0,
            waited_share: 0.0,
            service_level: 1.0,
            asa: Duration::ZERO,
            wait_p50: Duration::ZERO,
            wait_p90: Duration::ZERO,
            wait_p99: Duration::ZERO,
            wait_max: Duration::ZERO,
            abandon_rate: 0.0,
            threshold,
            ewt: None,
            waits: Histogram::<u64>::new_with_bounds(1, 86_400_000_000, 3).expect("histogram bounds"),
        };
        let (mut total_wait, mut waited) = (Duration::ZERO, 0u64);
        // Per answered contact that queued, in seconds.
        let mut estimated: Vec<Estimated> = Vec::new();
        for c in contacts {
            f.offered += 1;
            waited += u64::from(c.queued);
            match (c.answered, c.abandoned) {
                (Some(w), _) => {
                    f.answered += 1;
                    total_wait += w;
                    f.waits.saturating_record((w.as_micros() as u64).max(1));
                    if w <= threshold {
                        f.answered_in_threshold += 1;
                    }
                    if let Some(e) = c.estimate {
                        let s = |d: Duration| d.as_secs_f64();
                        estimated.push((s(w), s(e.ccr), s(e.naive), e.exact.map(s), e.uncertain));
                    }
                }
                (None, Some((_, short))) => {
                    if short {
                        f.short_abandoned += 1;
                    } else {
                        f.abandoned += 1;
                    }
                }
                (None, None) => f.unfinished += 1,
            }
        }
        let counted = f.answered + f.abandoned;
        if counted > 0 {
            f.service_level = f.answered_in_threshold as f64 / counted as f64;
            f.abandon_rate = f.abandoned as f64 / counted as f64;
        }
        if f.offered > 0 {
            f.waited_share = waited as f64 / f.offered as f64;
        }
        if f.answered > 0 {
            f.asa = total_wait / f.answered as u32;
            let at = |q: f64| Duration::from_micros(f.waits.value_at_quantile(q));
            (f.wait_p50, f.wait_p90, f.wait_p99) = (at(0.5), at(0.9), at(0.99));
            f.wait_max = Duration::from_micros(f.waits.max());
        }
        let ccr = Accuracy::of(estimated.iter().map(|e| (e.1, e.0)));
        let naive = Accuracy::of(estimated.iter().map(|e| (e.2, e.0)));
        if let (Some(ccr), Some(naive)) = (ccr, naive) {
            let exact = if estimated.iter().all(|e| e.3.is_some()) {
                Accuracy::of(estimated.iter().filter_map(|e| Some((e.3?, e.0))))
            } else {
                None
            };
            let longest =
                |i: fn(&Estimated) -> f64| Duration::from_secs_f64(estimated.iter().map(i).fold(0.0, f64::max));
            let uncertain = estimated.iter().filter(|e| e.4).count();
            f.ewt = Some(EwtAccuracy {
                samples: estimated.len() as u64,
                ccr,
                ccr_confident: Accuracy::of(estimated.iter().filter(|e| !e.4).map(|e| (e.1, e.0))),
                uncertain_share: uncertain as f64 / estimated.len() as f64,
                naive,
                exact,
                longest_estimate: longest(|e| e.1),
                longest_wait: longest(|e| e.0),
            });
        }
        f
    }
}

/// A run's report: per (queue, tier), per queue, and overall.
pub struct Report {
    pub rows: Vec<(String, String, Figures)>,
    pub occupancy: f64,
    /// Occupancy of each agent group of the scenario, in order.
    pub group_occupancy: Vec<f64>,
    pub routing: crate::sim::RoutingCounts,
    /// How long those who abandoned (short abandons aside) had waited:
    /// p50, p90, max.
    pub abandon_times: Option<[Duration; 3]>,
    pub decisions: u64,
    /// Each queue's service-level threshold (index = queue id).
    pub thresholds: Vec<Duration>,
}

impl Report {
    /// A run of `s`, with its queues' and tiers' names and thresholds.
    pub fn of_scenario(run: &Run, s: &crate::scenario::Scenario) -> Report {
        Report::of(run, &s.ccrd.catalog.queues, &s.ccrd.catalog.tiers, &s.thresholds())
    }

    /// `names` gives queue and tier names, `thresholds` each queue's
    /// service-level threshold.
    pub fn of(run: &Run, queues: &[String], tiers: &[String], thresholds: &[Duration]) -> Report {
        let mut groups: BTreeMap<(QueueId, TierId), Vec<&ContactRecord>> = BTreeMap::new();
        for c in &run.contacts {
            groups.entry((c.queue, c.tier)).or_default().push(c);
        }
        let mut rows = Vec::new();
        for (q, name) in queues.iter().enumerate() {
            let q = QueueId(q as u16);
            let threshold = thresholds[usize::from(q.0)];
            let mut any = false;
            for (t, tier) in tiers.iter().enumerate() {
                if let Some(contacts) = groups.get(&(q, TierId(t as u8))) {
                    rows.push((name.clone(), tier.clone(), Figures::of(contacts.iter().copied(), threshold)));
                    any = true;
                }
            }
            if any {
                let all = run.contacts.iter().filter(|c| c.queue == q);
                rows.push((name.clone(), "all".into(), Figures::of(all, threshold)));
            }
        }
        let mut abandons: Vec<Duration> =
            run.contacts.iter().filter_map(|c| c.abandoned.filter(|&(_, short)| !short).map(|(w, _)| w)).collect();
        abandons.sort_unstable();
        let at = |q: f64| nearest_rank(&abandons, q);
        let abandon_times = (!abandons.is_empty()).then(|| [at(0.5), at(0.9), at(1.0)]);
        Report {
            rows,
            occupancy: run.occupancy(),
            group_occupancy: run.group_time.iter().map(crate::sim::occupancy).collect(),
            routing: run.routing,
            abandon_times,
            decisions: run.decisions,
            thresholds: thresholds.to_vec(),
        }
    }

    /// The report as a table.
    pub fn table(&self) -> String {
        let secs = |d: Duration| format!("{:.1}", d.as_secs_f64());
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:<12} {:<9} {:>8} {:>8} {:>7} {:>6} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7}",
            "queue",
            "tier",
            "offered",
            "answered",
            "aband",
            "short",
            "waiting",
            "SL",
            "ASA s",
            "p50 s",
            "p90 s",
            "p99 s",
            "max s"
        );
        for (queue, tier, f) in &self.rows {
            let _ = writeln!(
                out,
                "{:<12} {:<9} {:>8} {:>8} {:>7} {:>6} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7}",
                queue,
                tier,
                f.offered,
                f.answered,
                f.abandoned,
                f.short_abandoned,
                f.unfinished,
                format!("{:.1}%", 100.0 * f.service_level),
                secs(f.asa),
                secs(f.wait_p50),
                secs(f.wait_p90),
                secs(f.wait_p99),
                secs(f.wait_max)
            );
        }
        let mut thresholds: Vec<String> = Vec::new();
        for (queue, _, f) in self.rows.iter().filter(|(_, tier, _)| tier == "all") {
            thresholds.push(format!("{queue} {}", humantime::format_duration(f.threshold)));
        }
        let _ = writeln!(
            out,
            "SL: answered within the queue's threshold ({}), of those answered or abandoned (short \
             abandons left out); waiting: not answered when the run ended",
            thresholds.join(", ")
        );
        let _ = write!(out, "agent occupancy {:.1}%", 100.0 * self.occupancy);
        // What only the simulator sees: the core's inputs and decisions.
        if self.decisions > 0 {
            let _ = write!(out, "; {} routing inputs", self.decisions);
        }
        let _ = writeln!(out);
        if !self.group_occupancy.is_empty() {
            let groups: Vec<String> = self.group_occupancy.iter().map(|o| format!("{:.1}%", 100.0 * o)).collect();
            let _ = writeln!(out, "occupancy by agent group (in the scenario's order): {}", groups.join(", "));
        }
        let r = &self.routing;
        if self.decisions > 0 {
            let _ = writeln!(
                out,
                "routing: {} overflows, {} relaxation steps, {} RONAs, {} transfers",
                r.overflows, r.relaxation_steps, r.ronas, r.transfers
            );
        }
        if let Some([p50, p90, max]) = self.abandon_times {
            let _ = writeln!(
                out,
                "abandoned after: p50 {:.1} s, p90 {:.1} s, max {:.1} s",
                p50.as_secs_f64(),
                p90.as_secs_f64(),
                max.as_secs_f64()
            );
        }
        if self.rows.iter().all(|(_, _, f)| f.ewt.is_none()) {
            return out;
        }
        let _ = writeln!(
            out,
            "\nwait estimate at arrival vs the wait answered contacts had (error = estimate − actual, s; \
             naive = position × (AHT + wrap-up) ÷ agents staffed with the skill; exact = the M/M/c(+M) \
             predictor, Markovian scenarios only; unc. = share ccr called uncertain, c.MAE = ccr's MAE \
             over the rest):"
        );
        let _ = writeln!(
            out,
            "{:<12} {:<9} {:>7} | {:>7} {:>7} {:>7} {:>6} {:>6} {:>7} | {:>7} {:>7} {:>7} {:>6} | {:>7} {:>6}",
            "queue",
            "tier",
            "samples",
            "bias",
            "MAE",
            "p90|e|",
            "±20%",
            "unc.",
            "c.MAE",
            "n.bias",
            "n.MAE",
            "n.p90",
            "±20%",
            "x.MAE",
            "±20%"
        );
        let accuracy = |a: &Accuracy| {
            format!(
                "{:>7.1} {:>7.2} {:>7.1} {:>5.1}%",
                a.bias,
                a.mean_abs_error,
                a.p90_abs_error,
                100.0 * a.within_20_percent
            )
        };
        for (queue, tier, f) in &self.rows {
            if let Some(e) = &f.ewt {
                let exact = e.exact.map_or(format!("{:>7} {:>6}", "-", "-"), |x| {
                    format!("{:>7.2} {:>5.1}%", x.mean_abs_error, 100.0 * x.within_20_percent)
                });
                let confident = e.ccr_confident.map_or(format!("{:>7}", "-"), |c| format!("{:>7.2}", c.mean_abs_error));
                let _ = writeln!(
                    out,
                    "{:<12} {:<9} {:>7} | {} {:>5.1}% {} | {} | {}",
                    queue,
                    tier,
                    e.samples,
                    accuracy(&e.ccr),
                    100.0 * e.uncertain_share,
                    confident,
                    accuracy(&e.naive),
                    exact
                );
            }
        }
        let longest = self.rows.iter().filter_map(|(_, _, f)| f.ewt).fold((0.0, 0.0), |(e, w), x| {
            (f64::max(e, x.longest_estimate.as_secs_f64()), f64::max(w, x.longest_wait.as_secs_f64()))
        });
        let _ = writeln!(out, "longest estimate {:.1} s; longest answered wait {:.1} s", longest.0, longest.1);
        out
    }
}

/// The run interval by interval (by the contacts' arrival): what a daily
/// figure hides — the hour at 4 % inside a day at 79 %. Offered, answered,
/// abandoned (short abandons left out), ASA, the agents staffed on average
/// (simulations only), and each queue's service level against its own
/// threshold (`-`: nothing to count there).
pub fn intervals(run: &Run, queues: &[String], thresholds: &[Duration], width: Duration) -> String {
    let width_us = width.as_micros().max(1) as u64;
    let start = run.warm_up.as_micros() as u64;
    let end = run.duration.as_micros() as u64;
    let count = (end.saturating_sub(start)).div_ceil(width_us) as usize;
    let mut out = String::new();
    let mut header =
        format!("{:<11} {:>7} {:>8} {:>6} {:>7} {:>7}", "interval", "offered", "answered", "aband", "ASA s", "staffed");
    for q in queues {
        let _ = write!(header, " {:>10}", format!("SL {}", truncate(q, 7)));
    }
    let _ = writeln!(out, "{header}");
    for i in 0..count {
        let (from, until) = (start + i as u64 * width_us, (start + (i as u64 + 1) * width_us).min(end));
        let inside = |t: u64| t >= from && t < until;
        let contacts: Vec<&ContactRecord> = run.contacts.iter().filter(|c| inside(c.arrival.as_micros())).collect();
        let staffed: Vec<u32> = run.staffed.iter().filter(|(t, _)| inside(t.as_micros())).map(|&(_, n)| n).collect();
        if contacts.is_empty() && staffed.iter().all(|&n| n == 0) {
            continue;
        }
        let answered: Vec<Duration> = contacts.iter().filter_map(|c| c.answered).collect();
        let abandoned = contacts.iter().filter(|c| matches!(c.abandoned, Some((_, false)))).count();
        let asa = if answered.is_empty() {
            "-".to_owned()
        } else {
            format!("{:.1}", answered.iter().sum::<Duration>().as_secs_f64() / answered.len() as f64)
        };
        let staffed = if staffed.is_empty() {
            "-".to_owned()
        } else {
            format!("{:.0}", f64::from(staffed.iter().sum::<u32>()) / staffed.len() as f64)
        };
        let _ = write!(
            out,
            "{:<11} {:>7} {:>8} {:>6} {:>7} {:>7}",
            clock(from, run.duration),
            contacts.len(),
            answered.len(),
            abandoned,
            asa,
            staffed
        );
        for (q, &threshold) in thresholds.iter().enumerate().take(queues.len()) {
            let of_queue = contacts.iter().copied().filter(|c| usize::from(c.queue.0) == q);
            let sl = service_level(of_queue, threshold).map_or("-".to_owned(), |sl| format!("{:.1}%", 100.0 * sl));
            let _ = write!(out, " {sl:>10}");
        }
        let _ = writeln!(out);
    }
    out
}

/// Service level of `contacts` against `threshold`: answered within it ÷
/// (answered + abandoned), short abandons left out; `None` with nothing
/// to count.
pub fn service_level<'a>(contacts: impl IntoIterator<Item = &'a ContactRecord>, threshold: Duration) -> Option<f64> {
    let (mut in_time, mut counted) = (0u32, 0u32);
    for c in contacts {
        match (c.answered, c.abandoned) {
            (Some(w), _) => {
                counted += 1;
                in_time += u32::from(w <= threshold);
            }
            (None, Some((_, false))) => counted += 1,
            _ => {}
        }
    }
    (counted > 0).then(|| f64::from(in_time) / f64::from(counted))
}

/// The value at quantile `q` of sorted, non-empty values (nearest rank).
fn nearest_rank<T: Copy>(sorted: &[T], q: f64) -> T {
    sorted[((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1]
}

/// A time of the run as the clock shows it ("08:30"; "d2 08:30" past the
/// first day of a longer run).
fn clock(micros: u64, duration: Duration) -> String {
    let secs = micros / 1_000_000;
    let (day, of_day) = (secs / 86_400, secs % 86_400);
    let hm = format!("{:02}:{:02}", of_day / 3600, of_day % 3600 / 60);
    if duration.as_secs() > 86_400 {
        format!("d{} {hm}", day + 1)
    } else {
        hm
    }
}

fn truncate(s: &str, n: usize) -> &str {
    s.char_indices().nth(n).map_or(s, |(i, _)| &s[..i])
}
