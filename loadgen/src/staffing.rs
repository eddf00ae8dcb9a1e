//! Staffing by simulation: per interval, the fewest agents of each group
//! that meet a service-level target under the scenario's own routing
//! (skills and proficiency, languages, tiers, overflow, answer delays,
//! RONA) — what an Erlang calculator answers for one single-skill queue,
//! for any routing.
//!
//! Intervals are planned in time order, since staffing now cannot change
//! what already happened. With the plan so far fixed, each of R
//! replications (seeds s, s + 1, …: every candidate meets the same
//! callers) is run to the interval's start and forked for each candidate
//! staffing. A candidate meets the target when, pooled over the
//! replications, each queue's contacts arriving in the interval were
//! answered within its threshold at least the target share of the time
//! (short abandons left out; a contact still waiting past the threshold
//! counts against). Later intervals keep the candidate's staffing while
//! the interval's last contacts are decided.
//!
//! The search starts from the previous interval's staffing scaled by the
//! change in offered load, adds agents to the group whose addition most
//! reduces the shortfall (answers within the threshold missing from the
//! target), then takes agents away one at a time, each time from the
//! group whose loss costs least, while the target stays met: in the plan,
//! no group can lose an agent in any interval without missing the target
//! on the searched seeds. A group is staffed only in intervals that start
//! within its shift (every interval with `any_hours`); breaks are left
//! out — the plan counts agents on the phones, as Erlang does.
//!
//! The plan is then run whole on the searched seeds and on as many fresh
//! ones: the fresh seeds' service levels are what the plan can be trusted
//! to deliver.

use std::fmt::Write as _;
use std::str::FromStr;
use std::time::Duration;

use ccr_core::Time;

use crate::scenario::Scenario;
use crate::sim::{self, ContactRecord, Engine, Roster};

/// A service-level target: `share` of contacts answered within `threshold`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Target {
    pub share: f64,
    pub threshold: Duration,
}

impl FromStr for Target {
    type Err = String;

    /// "80/20": 80 % within 20 s; the threshold may carry a unit ("80/1m").
    fn from_str(text: &str) -> Result<Self, String> {
        let wrong = || format!("{text:?}: a target is PERCENT/SECONDS, like 80/20");
        let (percent, threshold) = text.split_once('/').ok_or_else(wrong)?;
        let percent: f64 = percent.trim().trim_end_matches('%').parse().map_err(|_| wrong())?;
        let threshold = threshold.trim();
        let threshold = match threshold.parse::<u64>() {
            Ok(secs) => Duration::from_secs(secs),
            Err(_) => humantime::parse_duration(threshold).map_err(|_| wrong())?,
        };
        if !(percent > 0.0 && percent < 100.0) {
            return Err(format!("{text:?}: the share must be above 0 and below 100 %"));
        }
        if threshold.is_zero() {
            return Err(format!("{text:?}: the threshold must be above zero"));
        }
        Ok(Target { share: percent / 100.0, threshold })
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} % in {}", 100.0 * self.share, humantime::format_duration(self.threshold))
    }
}

#[derive(Clone, Debug)]
pub struct StaffingOptions {
    /// The planning interval.
    pub width: Duration,
    /// For every queue; `None`: each queue's own service-level target.
    pub target: Option<Target>,
    /// Replications searched (as many fresh ones check the plan).
    pub replications: u32,
    /// Staff any group in any interval, not only within its shift.
    pub any_hours: bool,
    /// A line on stderr as each interval is planned.
    pub progress: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum StaffingError {
    #[error("routing configuration: {0}")]
    Config(#[from] ccr_core::ConfigErrors),
    #[error("the interval must be between a minute and the scenario's duration")]
    Interval,
    #[error("replications must be 1 or more")]
    Replications,
}

/// What the search found.
#[derive(Clone, Debug)]
pub struct Plan {
    pub groups: Vec<String>,
    pub queues: Vec<String>,
    /// Each queue's target, by queue id.
    pub targets: Vec<Target>,
    /// The same target for every queue, as asked (else the queues' own).
    pub common_target: Option<Target>,
    pub width: Duration,
    pub seed: u64,
    pub replications: u32,
    /// Erlang A (callers have patience) or Erlang C.
    pub erlang_model: &'static str,
    pub intervals: Vec<PlannedInterval>,
    /// Candidate runs tried (replications × candidates).
    pub trials: u64,
}

/// One interval of the plan.
#[derive(Clone, Debug)]
pub struct PlannedInterval {
    /// Since the start of the run.
    pub start: Duration,
    /// Contacts arriving, mean over the replications.
    pub offered: f64,
    /// Offered load in Erlangs (handle time and wrap-up).
    pub load: f64,
    /// On duty per group; `None`: outside the group's shift.
    pub agents: Vec<Option<u32>>,
    /// The search found a staffing meeting the target in every queue in
    /// reach (false: the groups on shift cannot, within 3 × the load + 30
    /// agents).
    pub met: bool,
    /// Queues whose target no staffing of the groups on shift can meet
    /// (nobody then holds their skills, say): left out of the search.
    pub out_of_reach: Vec<usize>,
    /// Each queue's service level with the whole plan, over the searched
    /// seeds and over the fresh ones; `None`: nothing to count.
    pub searched: Vec<Option<Level>>,
    pub fresh: Vec<Option<Level>>,
    /// The queues' Erlang answers, summed: each queue staffed apart.
    pub erlang: Option<u32>,
    /// Agents on duty and not on a break in the scenario, on average.
    pub scheduled: f64,
}

impl PlannedInterval {
    pub fn total(&self) -> u32 {
        self.agents.iter().flatten().sum()
    }
}

/// Plans the scenario's staffing.
pub fn staff(scenario: &Scenario, options: &StaffingOptions) -> Result<Plan, StaffingError> {
    let width = options.width;
    if width < Duration::from_secs(60) || width > scenario.duration {
        return Err(StaffingError::Interval);
    }
    if options.replications == 0 {
        return Err(StaffingError::Replications);
    }
    let routing = &scenario.ccrd.router;
    let targets: Vec<Target> = routing
        .queues
        .iter()
        .map(|q| {
            options.target.unwrap_or(Target { share: q.service_level.target, threshold: q.service_level.threshold })
        })
        .collect();
    let replications = u64::from(options.replications);
    let seeded = |k: u64| {
        let mut s = scenario.clone();
        s.seed = scenario.seed.wrapping_add(k);
        s
    };
    let searched: Vec<Scenario> = (0..replications).map(seeded).collect();
    let fresh: Vec<Scenario> = (replications..2 * replications).map(seeded).collect();
    let count = scenario.duration.as_micros().div_ceil(width.as_micros()) as usize;
    let demand = Demand::of(&searched, width, count);
    let end = Time::ZERO + scenario.duration;
    let longest_threshold = targets.iter().map(|t| t.threshold).max().unwrap_or_default();
    let tail = longest_threshold + scenario.ccrd.router.short_abandon + Duration::from_secs(1);
    let groups = scenario.agents.len();

    let empty = Roster { width, counts: Vec::new() };
    let mut bases: Vec<Engine> =
        searched.iter().map(|s| Engine::new(s, Some(empty.clone()))).collect::<Result<_, _>>()?;
    let mut plans: Vec<(Vec<u32>, bool, Vec<usize>)> = Vec::with_capacity(count);
    let (mut previous, mut previous_load) = (vec![0u32; groups], 0.0);
    let mut trials = 0u64;
    for i in 0..count {
        let from = Time::ZERO + width * i as u32;
        let until = (from + width).min(end);
        let available: Vec<bool> = scenario.agents.iter().map(|g| options.any_hours || on_shift(g, from)).collect();
        let load = demand.load(i, scenario);
        let (plan, met, reach) = if demand.offered(i) == 0.0 {
            (vec![0; groups], true, Vec::new())
        } else {
            let start: Vec<u32> = previous
                .iter()
                .zip(&available)
                .map(|(&n, &open)| match open && previous_load > 0.0 {
                    true => (f64::from(n) * load / previous_load).floor() as u32,
                    false => 0,
                })
                .collect();
            let mut trial =
                Trial { bases: &bases, interval: i, from, until, horizon: until + tail, targets: targets.clone() };
            let reach = trial.out_of_reach(&available, load);
            for &q in &reach {
                trial.targets[q].share = 0.0;
            }
            let (plan, met, tried) = trial.search(start, &available, load);
            trials += trial.runs(tried + 1);
            (plan, met, reach)
        };
        for base in &mut bases {
            base.set_staffing(i, &plan);
            base.advance(until);
        }
        if options.progress {
            eprint!("\rplanned {}/{count} intervals", i + 1);
        }
        previous = plan.clone();
        previous_load = load;
        plans.push((plan, met, reach));
    }
    if options.progress {
        eprintln!();
    }

    let roster = Roster { width, counts: plans.iter().map(|(p, _, _)| p.clone()).collect() };
    let searched_levels = achieved(&searched, &roster, count, &targets)?;
    let fresh_levels = achieved(&fresh, &roster, count, &targets)?;
    let intervals = plans
        .into_iter()
        .enumerate()
        .map(|(i, (plan, met, out_of_reach))| {
            let from = width * i as u32;
            PlannedInterval {
                start: from,
                offered: demand.offered(i),
                load: demand.load(i, scenario),
                agents: plan
                    .iter()
                    .zip(&scenario.agents)
                    .map(|(&n, g)| (options.any_hours || on_shift(g, Time::ZERO + from)).then_some(n))
                    .collect(),
                met,
                out_of_reach,
                searched: searched_levels[i].clone(),
                fresh: fresh_levels[i].clone(),
                erlang: demand.erlang(i, scenario, &targets),
                scheduled: scheduled(scenario, from, (from + width).min(scenario.duration)),
            }
        })
        .collect();
    Ok(Plan {
        groups: scenario.agents.iter().map(|g| g.name.clone()).collect(),
        queues: scenario.ccrd.catalog.queues.clone(),
        targets,
        common_target: options.target,
        width,
        seed: scenario.seed,
        replications: options.replications,
        erlang_model: if demand.callers_have_patience() { "Erlang A" } else { "Erlang C" },
        intervals,
        trials,
    })
}

/// One interval's search: the replications at the interval's start, and
/// what a candidate is judged on.
struct Trial<'a, 's> {
    bases: &'a [Engine<'s>],
    interval: usize,
    from: Time,
    until: Time,
    horizon: Time,
    targets: Vec<Target>,
}

/// How a candidate did: the answers within the threshold missing from the
/// target, over every queue (zero: met), and the answers within it.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Score {
    shortfall: f64,
    in_time: u64,
}

impl Score {
    fn met(&self) -> bool {
        self.shortfall <= 1e-9
    }
}

impl Trial<'_, '_> {
    fn runs(&self, candidates: u64) -> u64 {
        candidates * self.bases.len() as u64
    }

    /// The candidate run on every replication, forked from the interval's
    /// start, the replications shared out among the cores.
    fn tally(&self, counts: &[u32]) -> Tally {
        let queues = self.targets.len();
        let runs = on_every_core(self.bases, |part| {
            let mut tally = Tally::new(queues);
            for base in part {
                let mut run = base.clone();
                run.set_staffing(self.interval, counts);
                run.advance(self.horizon);
                tally.add(run.records(), self.from, self.until, self.horizon, &self.targets);
            }
            tally
        });
        runs.into_iter().fold(Tally::new(queues), Tally::merge)
    }

    fn score(&self, counts: &[u32]) -> Score {
        self.tally(counts).score(&self.targets)
    }

    /// The queues whose target even a generous staffing of every group on
    /// shift (twice the load and ten more in each) misses.
    fn out_of_reach(&self, available: &[bool], load: f64) -> Vec<usize> {
        let generous = (2.0 * load).ceil() as u32 + 10;
        let counts: Vec<u32> = available.iter().map(|&open| if open { generous } else { 0 }).collect();
        let best = self.tally(&counts).service_levels();
        let missed = |(q, (level, target)): (usize, (&Option<f64>, &Target))| {
            level.is_some_and(|sl| sl < target.share).then_some(q)
        };
        best.iter().zip(&self.targets).enumerate().filter_map(missed).collect()
    }

    /// The fewest agents from `start`: grow until met, then shrink while
    /// met. Returns the staffing, whether it met the target, and how many
    /// candidates were tried.
    fn search(&self, start: Vec<u32>, available: &[bool], load: f64) -> (Vec<u32>, bool, u64) {
        let cap = (3.0 * load).ceil() as u32 + 30;
        let mut plan = start;
        let mut score = self.score(&plan);
        let mut tried = 1u64;
        let open: Vec<usize> = (0..plan.len()).filter(|&g| available[g]).collect();
        while !score.met() {
            let total: u32 = plan.iter().sum();
            if total >= cap || open.is_empty() {
                return (plan, false, tried);
            }
            // Half the way to the offered load at once, then one by one.
            let step = ((load.ceil() - f64::from(total)) / 2.0).max(1.0).min(f64::from(cap - total)) as u32;
            let (best, best_score) = open
                .iter()
                .map(|&g| {
                    let mut candidate = plan.clone();
                    candidate[g] += step;
                    let s = self.score(&candidate);
                    (candidate, s)
                })
                .min_by(|(_, a), (_, b)| a.shortfall.total_cmp(&b.shortfall).then(b.in_time.cmp(&a.in_time)))
                .expect("a group is open");
            tried += open.len() as u64;
            if best_score.shortfall >= score.shortfall && best_score.in_time <= score.in_time {
                // Nobody who may work now can serve what is missing.
                return (plan, false, tried);
            }
            plan = best;
            score = best_score;
        }
        loop {
            let lighter = open
                .iter()
                .filter(|&&g| plan[g] > 0)
                .map(|&g| {
                    let mut candidate = plan.clone();
                    candidate[g] -= 1;
                    let s = self.score(&candidate);
                    (candidate, s)
                })
                .collect::<Vec<_>>();
            tried += lighter.len() as u64;
            let cheapest =
                lighter.into_iter().filter(|(_, s)| s.met()).min_by(|(_, a), (_, b)| b.in_time.cmp(&a.in_time));
            match cheapest {
                Some((candidate, _)) => plan = candidate,
                None => return (plan, true, tried),
            }
        }
    }
}

/// Per queue: contacts counted for the service level, and those answered
/// within the threshold.
#[derive(Clone, Debug)]
struct Tally {
    counted: Vec<u64>,
    in_time: Vec<u64>,
}

impl Tally {
    fn new(queues: usize) -> Tally {
        Tally { counted: vec![0; queues], in_time: vec![0; queues] }
    }

    /// Adds the contacts that arrived in [from, until), as known at `now`:
    /// short abandons and contacts not yet past their threshold left out,
    /// a contact still waiting past it counted against.
    fn add(&mut self, records: &[ContactRecord], from: Time, until: Time, now: Time, targets: &[Target]) {
        let first = records.partition_point(|c| c.arrival < from);
        let last = records.partition_point(|c| c.arrival < until);
        for c in &records[first..last] {
            let q = usize::from(c.queue.0);
            let Some(target) = targets.get(q) else { continue };
            let counts = match (c.answered, c.abandoned) {
                (Some(wait), _) => {
                    self.in_time[q] += u64::from(wait <= target.threshold);
                    true
                }
                (None, Some((_, short))) => !short,
                (None, None) => now.since(c.arrival) > target.threshold,
            };
            self.counted[q] += u64::from(counts);
        }
    }

    fn score(&self, targets: &[Target]) -> Score {
        let shortfall = targets
            .iter()
            .enumerate()
            .map(|(q, t)| (t.share * self.counted[q] as f64 - self.in_time[q] as f64).max(0.0))
            .sum();
        Score { shortfall, in_time: self.in_time.iter().sum() }
    }

    fn merge(mut self, other: Tally) -> Tally {
        for (a, b) in self.counted.iter_mut().zip(&other.counted) {
            *a += b;
        }
        for (a, b) in self.in_time.iter_mut().zip(&other.in_time) {
            *a += b;
        }
        self
    }

    fn service_levels(&self) -> Vec<Option<f64>> {
        self.counted.iter().zip(&self.in_time).map(|(&n, &k)| (n > 0).then(|| k as f64 / n as f64)).collect()
    }
}

/// `work` on parts of `items`, one part per core, in scoped threads.
fn on_every_core<T: Sync, R: Send>(items: &[T], work: impl Fn(&[T]) -> R + Sync) -> Vec<R> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let part = items.len().div_ceil(cores).max(1);
    std::thread::scope(|scope| {
        let work = &work;
        let threads: Vec<_> = items.chunks(part).map(|p| scope.spawn(move || work(p))).collect();
        threads.into_iter().map(|t| t.join().unwrap_or_else(|e| std::panic::resume_unwind(e))).collect()
    })
}

/// A service level pooled over replications (answered in time ÷ counted,
/// summed), with the 95 % half-width of that ratio over the replications.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Level {
    pub service_level: f64,
    pub half_width: f64,
}

impl Level {
    /// From each replication's (counted, in time); `None` with nothing counted.
    fn of(runs: &[(u64, u64)]) -> Option<Level> {
        let counted: u64 = runs.iter().map(|r| r.0).sum();
        if counted == 0 {
            return None;
        }
        let ratio = runs.iter().map(|r| r.1).sum::<u64>() as f64 / counted as f64;
        let n = runs.len();
        let half_width = if n < 2 {
            f64::INFINITY
        } else {
            // The ratio estimator's variance: of in-time − ratio × counted.
            let mean_counted = counted as f64 / n as f64;
            let residuals: f64 = runs.iter().map(|&(c, k)| (k as f64 - ratio * c as f64).powi(2)).sum();
            let variance = residuals / (n - 1) as f64 / (n as f64 * mean_counted * mean_counted);
            crate::replications::t_975(n - 1) * variance.sqrt()
        };
        Some(Level { service_level: ratio, half_width })
    }

    /// Below the target by more than its half-width: a shortfall resolved.
    pub fn resolved_below(&self, target: f64) -> bool {
        self.service_level + self.half_width < target
    }
}

/// Each interval's service level per queue with `roster` run whole over
/// the scenarios.
fn achieved(
    scenarios: &[Scenario],
    roster: &Roster,
    count: usize,
    targets: &[Target],
) -> Result<Vec<Vec<Option<Level>>>, StaffingError> {
    let runs = on_every_core(scenarios, |part| {
        part.iter()
            .map(|s| {
                let end = Time::ZERO + s.duration;
                let mut run = Engine::new(s, Some(roster.clone()))?;
                run.advance(end + Duration::from_micros(1));
                let tallies: Vec<Tally> = (0..count)
                    .map(|i| {
                        let from = Time::ZERO + roster.width * i as u32;
                        let mut tally = Tally::new(targets.len());
                        tally.add(run.records(), from, (from + roster.width).min(end), end, targets);
                        tally
                    })
                    .collect();
                Ok(tallies)
            })
            .collect::<Result<Vec<_>, StaffingError>>()
    });
    let runs: Vec<Vec<Tally>> = runs.into_iter().collect::<Result<Vec<_>, _>>()?.into_iter().flatten().collect();
    Ok((0..count)
        .map(|i| {
            (0..targets.len())
                .map(|q| Level::of(&runs.iter().map(|r| (r[i].counted[q], r[i].in_time[q])).collect::<Vec<_>>()))
                .collect()
        })
        .collect())
}

/// Whether a group may work an interval starting at `from`: within its
/// shift (a group without one works around the clock).
fn on_shift(group: &crate::scenario::AgentGroup, from: Time) -> bool {
    let of_day = Duration::from_micros(from.as_micros() % (86_400 * 1_000_000));
    group.shift.is_none_or(|(start, end)| of_day >= start && of_day < end)
}

/// The scenario's own agents on duty and not on a break over [from,
/// until), on average (minute by minute).
fn scheduled(scenario: &Scenario, from: Duration, until: Duration) -> f64 {
    let minutes = (until.saturating_sub(from).as_secs() / 60).max(1);
    let mut on_duty = 0.0;
    for m in 0..minutes {
        let t = Duration::from_secs((from.as_secs() + m * 60) % 86_400);
        for g in &scenario.agents {
            let working = g.shift.is_none_or(|(start, end)| t >= start && t < end)
                && !g.breaks.iter().any(|&(at, length)| t >= at && t < at + length);
            if working {
                on_duty += f64::from(g.count);
            }
        }
    }
    on_duty / minutes as f64
}

/// What arrives interval by interval over the searched replications.
struct Demand {
    replications: f64,
    width: Duration,
    /// `[interval][queue]`: contacts, their handle time, their patience
    /// (summed over those who have one), and how many have one.
    arrivals: Vec<Vec<(u64, Duration, Duration, u64)>>,
}

impl Demand {
    fn of(scenarios: &[Scenario], width: Duration, count: usize) -> Demand {
        let queues = scenarios.first().map_or(0, |s| s.ccrd.router.queues.len());
        let mut arrivals = vec![vec![(0u64, Duration::ZERO, Duration::ZERO, 0u64); queues]; count];
        for s in scenarios {
            for c in sim::callers(s) {
                let i = (c.arrival.as_micros() / width.as_micros()) as usize;
                if let Some(cell) = arrivals.get_mut(i).and_then(|q| q.get_mut(usize::from(c.queue.0))) {
                    cell.0 += 1;
                    cell.1 += c.handle;
                    if let Some(p) = c.patience {
                        cell.2 += p;
                        cell.3 += 1;
                    }
                }
            }
        }
        Demand { replications: scenarios.len().max(1) as f64, width, arrivals }
    }

    fn offered(&self, i: usize) -> f64 {
        self.arrivals[i].iter().map(|cell| cell.0).sum::<u64>() as f64 / self.replications
    }

    /// Erlangs offered in interval `i`: handle time and each queue's wrap-up.
    fn load(&self, i: usize, scenario: &Scenario) -> f64 {
        let work: f64 = self.arrivals[i]
            .iter()
            .zip(&scenario.ccrd.router.queues)
            .map(|(cell, q)| cell.1.as_secs_f64() + cell.0 as f64 * q.wrap_up.as_secs_f64())
            .sum();
        work / self.replications / self.width.as_secs_f64()
    }

    /// Whether callers hang up (Erlang A) or not (Erlang C).
    fn callers_have_patience(&self) -> bool {
        self.arrivals.iter().flatten().any(|cell| cell.3 > 0)
    }

    /// The queues' Erlang answers for interval `i`, summed.
    /// Each queue's patience is its callers' mean in the interval.
    fn erlang(&self, i: usize, scenario: &Scenario, targets: &[Target]) -> Option<u32> {
        let mut total = 0;
        for ((cell, q), target) in self.arrivals[i].iter().zip(&scenario.ccrd.router.queues).zip(targets) {
            if cell.0 == 0 {
                continue;
            }
            let n = cell.0 as f64;
            let rate = n / self.replications / self.width.as_secs_f64();
            let aht = cell.1.as_secs_f64() / n + q.wrap_up.as_secs_f64();
            let patience = (cell.3 > 0).then(|| cell.2.as_secs_f64() / cell.3 as f64);
            let threshold = target.threshold.as_secs_f64();
            total += crate::erlang::agents_for(rate, aht, threshold, target.share, patience)?;
        }
        Some(total)
    }
}

impl Plan {
    /// The plan as a planner reads it: per interval the agents of each
    /// group, their total, the Erlang answer, the scenario's own staffing,
    /// and each queue's service level on fresh seeds (`*`: below target).
    pub fn table(&self) -> String {
        let mut out = String::new();
        let target = match self.common_target {
            Some(t) => format!("{t} in every queue"),
            None => {
                self.queues.iter().zip(&self.targets).map(|(q, t)| format!("{q} {t}")).collect::<Vec<_>>().join(", ")
            }
        };
        let r = u64::from(self.replications);
        let _ = writeln!(out, "== staffing for {target}, by {} interval", humantime::format_duration(self.width));
        let _ = writeln!(
            out,
            "searched on {r} replications (seeds {}..={}), checked on {r} fresh ones (seeds {}..={}); {} candidate runs",
            self.seed,
            self.seed.wrapping_add(r - 1),
            self.seed.wrapping_add(r),
            self.seed.wrapping_add(2 * r - 1),
            self.trials
        );
        let name_width = |n: &str| n.chars().count().clamp(6, 18);
        let mut header = format!("{:<8} {:>8} {:>7}", "interval", "offered", "Erlangs");
        for g in &self.groups {
            let _ = write!(header, " {:>w$}", truncate(g, 18), w = name_width(g));
        }
        let _ = write!(header, " {:>6} {:>9} {:>9}", "total", self.erlang_model, "scheduled");
        for q in &self.queues {
            let _ = write!(header, " {:>10}", format!("SL {}", truncate(q, 7)));
        }
        let _ = writeln!(out, "{header}");
        for p in &self.intervals {
            if p.offered == 0.0 && p.total() == 0 {
                continue;
            }
            let mut line = format!("{:<8} {:>8.1} {:>7.1}", clock(p.start), p.offered, p.load);
            for (g, n) in self.groups.iter().zip(&p.agents) {
                let cell = n.map_or("-".to_owned(), |n| n.to_string());
                let _ = write!(line, " {cell:>w$}", w = name_width(g));
            }
            let erlang = p.erlang.map_or("-".to_owned(), |n| n.to_string());
            let total = if p.met { p.total().to_string() } else { format!("{}!", p.total()) };
            let _ = write!(line, " {total:>6} {erlang:>9} {:>9.1}", p.scheduled);
            for (q, (level, target)) in p.fresh.iter().zip(&self.targets).enumerate() {
                let cell = level.map_or("-".to_owned(), |level| {
                    let mark = if p.out_of_reach.contains(&q) {
                        "!"
                    } else if level.service_level < target.share {
                        "*"
                    } else {
                        ""
                    };
                    format!("{:.1}%{mark}", 100.0 * level.service_level)
                });
                let _ = write!(line, " {cell:>10}");
            }
            let _ = writeln!(out, "{line}");
        }
        let hours = |n: f64| n * self.width.as_secs_f64() / 3600.0;
        let mut line = format!("{:<8} {:>8} {:>7}", "hours", "", "");
        for (g, name) in self.groups.iter().enumerate() {
            let sum: u32 = self.intervals.iter().filter_map(|p| p.agents[g]).sum();
            let _ = write!(line, " {:>w$.1}", hours(f64::from(sum)), w = name_width(name));
        }
        let total: u32 = self.intervals.iter().map(PlannedInterval::total).sum();
        let erlang: u32 = self.intervals.iter().filter_map(|p| p.erlang).sum();
        let scheduled: f64 = self.intervals.iter().map(|p| p.scheduled).sum();
        let _ = writeln!(
            line,
            " {:>6.1} {:>9.1} {:>9.1}",
            hours(f64::from(total)),
            hours(f64::from(erlang)),
            hours(scheduled)
        );
        out.push_str(&line);
        let unmet: Vec<String> = self.intervals.iter().filter(|p| !p.met).map(|p| clock(p.start)).collect();
        if !unmet.is_empty() {
            let _ = writeln!(out, "! not met in the search, within 3 × the load + 30 agents: {}", unmet.join(", "));
        }
        let unreachable: Vec<String> = self
            .intervals
            .iter()
            .flat_map(|p| p.out_of_reach.iter().map(move |&q| format!("{} {}", clock(p.start), self.queues[q])))
            .collect();
        if !unreachable.is_empty() {
            let _ = writeln!(
                out,
                "! out of reach of the groups on shift, left out of the search: {}",
                unreachable.join(", ")
            );
        }
        let mut below = Vec::new();
        let mut counted = 0;
        for p in &self.intervals {
            for ((level, target), queue) in self.in_reach(p) {
                let Some(level) = level else { continue };
                counted += 1;
                if level.service_level < target.share {
                    below.push((p.start, queue, *level, level.resolved_below(target.share)));
                }
            }
        }
        let resolved = below.iter().filter(|b| b.3).count();
        let _ = writeln!(
            out,
            "on fresh seeds (*): {} of {counted} interval service levels below target, {resolved} of them by more \
             than their 95 % half-width{}",
            below.len(),
            below
                .iter()
                .map(|(start, q, level, _)| format!(
                    "\n  {} {q} {:.1} ± {:.1} %",
                    clock(*start),
                    100.0 * level.service_level,
                    100.0 * level.half_width
                ))
                .collect::<String>()
        );
        let _ = writeln!(
            out,
            "agents on the phones (breaks and other shrinkage not included); {} staffs each queue apart, \
             with no answer delay or RONA",
            self.erlang_model
        );
        out
    }

    /// Each queue's fresh-seed service level and target, for the queues in
    /// reach in interval `p`.
    fn in_reach<'p>(&'p self, p: &'p PlannedInterval) -> Vec<((&'p Option<Level>, &'p Target), &'p String)> {
        let levels = p.fresh.iter().zip(&self.targets).zip(&self.queues).enumerate();
        levels.filter(|(q, _)| !p.out_of_reach.contains(q)).map(|(_, cell)| cell).collect()
    }

    /// The plan as JSON (fields: loadgen/README.md).
    pub fn json(&self) -> serde_json::Value {
        let intervals: Vec<serde_json::Value> = self
            .intervals
            .iter()
            .map(|p| {
                let agents: serde_json::Map<String, serde_json::Value> =
                    self.groups.iter().cloned().zip(p.agents.iter().map(|n| serde_json::json!(n))).collect();
                let levels = |levels: &[Option<Level>]| -> serde_json::Map<String, serde_json::Value> {
                    let level = |l: &Option<Level>| {
                        l.map(|l| serde_json::json!({"service_level": l.service_level, "half_width": l.half_width}))
                    };
                    self.queues.iter().cloned().zip(levels.iter().map(|l| serde_json::json!(level(l)))).collect()
                };
                serde_json::json!({
                    "start": clock(p.start),
                    "start_s": p.start.as_secs(),
                    "offered": p.offered,
                    "erlangs": p.load,
                    "agents": agents,
                    "total": p.total(),
                    "met": p.met,
                    "out_of_reach": p.out_of_reach.iter().map(|&q| &self.queues[q]).collect::<Vec<_>>(),
                    "erlang": p.erlang,
                    "scheduled": p.scheduled,
                    "service_level_searched": levels(&p.searched),
                    "service_level_fresh": levels(&p.fresh),
                })
            })
            .collect();
        let targets: serde_json::Map<String, serde_json::Value> = self
            .queues
            .iter()
            .cloned()
            .zip(
                self.targets
                    .iter()
                    .map(|t| serde_json::json!({"share": t.share, "threshold_s": t.threshold.as_secs_f64()})),
            )
            .collect();
        serde_json::json!({
            "interval_s": self.width.as_secs(),
            "seed": self.seed,
            "replications": self.replications,
            "targets": targets,
            "erlang_model": self.erlang_model,
            "groups": self.groups,
            "trials": self.trials,
            "intervals": intervals,
        })
    }
}

/// "08:30" (the day repeats; "d2 08:30" past the first).
fn clock(t: Duration) -> String {
    let secs = t.as_secs();
    let (day, of_day) = (secs / 86_400, secs % 86_400);
    let hm = format!("{:02}:{:02}", of_day / 3600, of_day % 3600 / 60);
    if day > 0 {
        format!("d{} {hm}", day + 1)
    } else {
        hm
    }
}

fn truncate(s: &str, n: usize) -> &str {
    s.char_indices().nth(n).map_or(s, |(i, _)| &s[..i])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bank_morning(replications: u32) -> (Scenario, StaffingOptions) {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/bank-day.toml");
        let mut s = crate::scenario::load(&path).expect("bank day");
        s.duration = Duration::from_secs(10 * 3600); // up to 10:00
        let options = StaffingOptions {
            width: Duration::from_secs(1800),
            target: Some(Target { share: 0.8, threshold: Duration::from_secs(20) }),
            replications,
            any_hours: false,
            progress: false,
        };
        (s, options)
    }

    #[test]
    fn a_roster_has_each_interval_staffed_as_planned() {
        let (mut s, _) = bank_morning(1);
        s.duration = Duration::from_secs(9 * 3600);
        let counts = vec![vec![0, 0, 0]; 16].into_iter().chain([vec![3, 1, 0], vec![9, 4, 2], vec![1, 0, 5]]).collect();
        let roster = Roster { width: Duration::from_secs(1800), counts };
        let mut engine = Engine::new(&s, Some(roster.clone())).unwrap();
        engine.advance(Time::ZERO + s.duration + Duration::from_micros(1));
        let run = engine.finish();
        // Agents staffed (logged in, not leaving), sampled every minute.
        let end = Time::ZERO + s.duration;
        for (t, staffed) in run.staffed.iter().filter(|(t, _)| *t < end) {
            let interval = (t.as_micros() / roster.width.as_micros() as u64) as usize;
            let planned: u32 = roster.counts[interval.min(roster.counts.len() - 1)].iter().sum();
            assert_eq!(*staffed, planned, "at {t:?}");
        }
        assert!(run.contacts.iter().any(|c| c.answered.is_some()), "the rostered agents answer");
    }

    #[test]
    fn no_group_can_lose_an_agent_in_any_interval_of_the_plan() {
        let (s, options) = bank_morning(6);
        let plan = staff(&s, &options).unwrap();
        let open: Vec<&PlannedInterval> = plan.intervals.iter().filter(|p| p.offered > 0.0).collect();
        assert_eq!(open.len(), 4, "08:00 to 10:00");
        let general = plan.queues.iter().position(|q| q == "general").unwrap();
        let seeds: Vec<Scenario> = (0..u64::from(options.replications))
            .map(|k| {
                let mut r = s.clone();
                r.seed += k;
                r
            })
            .collect();
        for (i, p) in plan.intervals.iter().enumerate().filter(|(_, p)| p.offered > 0.0) {
            // Nobody on the early shift sells: the general queue is out of reach.
            assert_eq!(p.out_of_reach, vec![general], "{}", clock(p.start));
            assert!(p.met && p.total() > 0, "{p:?}");
            let counts: Vec<u32> = p.agents.iter().map(|n| n.unwrap_or(0)).collect();
            assert_eq!(p.agents[2], None, "the late shift is not on yet");
            // The search again, from the plan's own state at the interval's start.
            let earlier: Vec<Vec<u32>> =
                plan.intervals[..i].iter().map(|q| q.agents.iter().map(|n| n.unwrap_or(0)).collect()).collect();
            let roster = Roster { width: options.width, counts: earlier };
            let from = Time::ZERO + p.start;
            let bases: Vec<Engine> = seeds
                .iter()
                .map(|r| {
                    let mut e = Engine::new(r, Some(roster.clone())).unwrap();
                    e.advance(from);
                    e
                })
                .collect();
            let until = from + options.width;
            let tail = Duration::from_secs(20) + s.ccrd.router.short_abandon + Duration::from_secs(1);
            let mut targets = plan.targets.clone();
            targets[general].share = 0.0;
            let trial = Trial { bases: &bases, interval: i, from, until, horizon: until + tail, targets };
            assert!(trial.score(&counts).met(), "{}: the plan meets the target", clock(p.start));
            for g in (0..counts.len()).filter(|&g| counts[g] > 0) {
                let mut fewer = counts.clone();
                fewer[g] -= 1;
                assert!(!trial.score(&fewer).met(), "{}: {} could lose an agent", clock(p.start), plan.groups[g]);
            }
        }
    }

    #[test]
    fn a_target_reads_as_percent_over_seconds() {
        assert_eq!("80/20".parse(), Ok(Target { share: 0.8, threshold: Duration::from_secs(20) }));
        assert_eq!("90%/1m".parse(), Ok(Target { share: 0.9, threshold: Duration::from_secs(60) }));
        for wrong in ["80", "80/", "/20", "0/20", "100/20", "80/0", "eighty/20"] {
            assert!(wrong.parse::<Target>().is_err(), "{wrong}");
        }
    }

    #[test]
    fn a_tally_counts_what_the_service_level_counts() {
        let t = Target { share: 0.8, threshold: Duration::from_secs(20) };
        let at = |s| Time::ZERO + Duration::from_secs(s);
        let record = |arrival, answered: Option<u64>, abandoned: Option<(u64, bool)>| ContactRecord {
            queue: ccr_core::QueueId(0),
            tier: ccr_core::TierId(0),
            arrival: at(arrival),
            answered: answered.map(Duration::from_secs),
            abandoned: abandoned.map(|(w, short)| (Duration::from_secs(w), short)),
            queued: true,
            estimate: None,
        };
        let records = [
            record(5, Some(3), None),            // before the interval
            record(10, Some(10), None),          // in time
            record(11, Some(30), None),          // late
            record(12, None, Some((2, true))),   // short abandon: left out
            record(13, None, Some((40, false))), // abandoned: against
            record(100, None, None),             // waiting 50 s at 150: against
            record(140, None, None),             // waiting 10 s: not decided
            record(200, Some(0), None),          // after the interval
        ];
        let mut tally = Tally::new(1);
        tally.add(&records, at(10), at(200), at(150), &[t]);
        assert_eq!((tally.counted[0], tally.in_time[0]), (4, 1));
        let score = tally.score(&[t]);
        assert!((score.shortfall - (0.8 * 4.0 - 1.0)).abs() < 1e-9 && !score.met(), "{score:?}");
    }
}
