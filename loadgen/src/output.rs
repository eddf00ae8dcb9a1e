//! A report's other forms: JSON (an interface: field names documented in
//! loadgen/README.md), HdrHistogram percentile files, and charts (SVG and PNG).

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use hdrhistogram::Histogram;
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use serde_json::{json, Value};

use crate::report::{service_level, Report};
use crate::sim::Run;

/// One run of the report as JSON.
pub fn run_json(
    label: &str,
    engine: &str,
    seed: u64,
    run: &Run,
    report: &Report,
    thresholds: &[(String, Duration)],
) -> Value {
    let secs = |d: Duration| d.as_secs_f64();
    let rows: Vec<Value> = report
        .rows
        .iter()
        .map(|(queue, tier, f)| {
            let threshold = thresholds.iter().find(|(q, _)| q == queue).map_or(0.0, |(_, t)| secs(*t));
            json!({
                "queue": queue,
                "tier": tier,
                "offered": f.offered,
                "answered": f.answered,
                "abandoned": f.abandoned,
                "short_abandoned": f.short_abandoned,
                "unfinished": f.unfinished,
                "waited_share": f.waited_share,
                "service_level": f.service_level,
                "service_level_threshold_seconds": threshold,
                "abandon_rate": f.abandon_rate,
                "asa_seconds": secs(f.asa),
                "wait_seconds": {
                    "p50": secs(f.wait_p50),
                    "p90": secs(f.wait_p90),
                    "p99": secs(f.wait_p99),
                    "max": secs(f.wait_max),
                },
                "ewt": f.ewt.map(|e| {
                    let accuracy = |a: crate::report::Accuracy| json!({
                        "bias_seconds": a.bias,
                        "mean_abs_error_seconds": a.mean_abs_error,
                        "p90_abs_error_seconds": a.p90_abs_error,
                        "within_20_percent": a.within_20_percent,
                    });
                    json!({
                        "samples": e.samples,
                        "ccr": accuracy(e.ccr),
                        "ccr_confident": e.ccr_confident.map(accuracy),
                        "uncertain_share": e.uncertain_share,
                        "naive": accuracy(e.naive),
                        "exact": e.exact.map(accuracy),
                        "longest_estimate_seconds": secs(e.longest_estimate),
                        "longest_wait_seconds": secs(e.longest_wait),
                    })
                }),
            })
        })
        .collect();
    json!({
        "label": label,
        "engine": engine,
        "seed": seed,
        "duration_seconds": secs(run.duration),
        "warm_up_seconds": secs(run.warm_up),
        "occupancy": report.occupancy,
        "routing_inputs": report.decisions,
        "queues": rows,
    })
}

pub fn write_json(path: &Path, runs: Vec<Value>) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(&json!({ "runs": runs }))?;
    std::fs::write(path, text + "\n").with_context(|| path.display().to_string())
}

/// The HdrHistogram percentile distribution format (`.hgrm`), values in
/// milliseconds, as HdrHistogram's own tools write and plot it.
pub fn hgrm(h: &Histogram<u64>) -> String {
    let mut out = String::from("       Value     Percentile TotalCount 1/(1-Percentile)\n\n");
    if h.is_empty() {
        return out + "#[Mean    =        0.000, StdDeviation   =        0.000]\n#[Max     =        0.000, Total count    =            0]\n";
    }
    let ms = |us: u64| us as f64 / 1000.0;
    let mut total = 0u64;
    for v in h.iter_quantiles(1) {
        total += v.count_since_last_iteration();
        let q = v.quantile_iterated_to();
        let inverse = if q < 1.0 { format!(" {:14.2}", 1.0 / (1.0 - q)) } else { String::new() };
        out += &format!("{:12.3} {:14.12} {:10}{inverse}\n", ms(v.value_iterated_to()), q, total);
    }
    out += &format!("#[Mean    = {:12.3}, StdDeviation   = {:12.3}]\n", h.mean() / 1000.0, h.stdev() / 1000.0);
    out += &format!("#[Max     = {:12.3}, Total count    = {:12}]\n", ms(h.max()), h.len());
    out
}

/// Values recorded at or below `v` (the TotalCount column).
fn count_to(h: &Histogram<u64>, v: u64) -> u64 {
    h.iter_recorded().take_while(|r| r.value_iterated_to() <= v).map(|r| r.count_at_value()).sum()
}

/// Writes `wait-<queue>-<tier>.hgrm` for every row of the report.
pub fn write_hgrm(dir: &Path, prefix: &str, report: &Report) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| dir.display().to_string())?;
    for (queue, tier, f) in &report.rows {
        let path = dir.join(format!("{prefix}wait-{queue}-{tier}.hgrm"));
        std::fs::write(&path, hgrm(&f.waits)).with_context(|| path.display().to_string())?;
    }
    Ok(())
}

/// Three charts, each as SVG and as PNG: wait distribution by tier,
/// waiting contacts over time, service level hour by hour.
/// What the charts are of: the policy (or run) in every title, and each
/// queue's name and service-level target, in queue order.
pub struct Charted<'a> {
    pub label: &'a str,
    pub tiers: &'a [String],
    pub queues: &'a [(String, f64)],
}

pub fn write_plots(dir: &Path, prefix: &str, run: &Run, report: &Report, info: &Charted) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| dir.display().to_string())?;
    register_font();
    let label = info.label;
    save(&dir.join(format!("{prefix}wait-by-tier")), &WaitsByTier::new(report, info.tiers, label)?)?;
    // Only the simulator samples the queues: a live run has no such chart.
    if !run.waiting.is_empty() {
        save(&dir.join(format!("{prefix}waiting-over-time")), &WaitingOverTime::new(run, label))?;
    }
    save(&dir.join(format!("{prefix}service-level-by-hour")), &ServiceLevelByHour::new(run, report, info))?;
    Ok(())
}

/// Policies side by side, queue by queue: a bar per policy, with whiskers
/// at its 95 % half-width where there are replications to have one, and
/// each queue's target dashed (queues are never pooled).
pub struct PolicyBars {
    pub caption: String,
    pub y_desc: String,
    pub policies: Vec<String>,
    /// Each queue's name and, in the bars' unit, its target.
    pub queues: Vec<(String, Option<f64>)>,
    /// `values[policy][queue]`.
    pub values: Vec<Vec<Option<crate::replications::Interval>>>,
    /// The first policy's colour: a policy keeps its colour across charts.
    pub first_color: usize,
}

/// The charts of a comparison over replications: each policy's service
/// level per queue, and each policy's paired difference from the baseline.
pub fn comparison_charts(
    comparison: &crate::replications::Comparison,
    targets: &[(String, f64)],
) -> Vec<(&'static str, PolicyBars)> {
    let queues = comparison.queues();
    let target_of = |q: &str| targets.iter().find(|(name, _)| name == q).map(|(_, t)| 100.0 * t);
    let n = comparison.runs.first().map_or(0, Vec::len);
    let levels = PolicyBars {
        caption: format!("Service level by policy (whiskers: 95 %, {n} replications; dashed: target)"),
        y_desc: "service level (%)".into(),
        policies: comparison.policies.clone(),
        queues: queues.iter().map(|q| (q.clone(), target_of(q))).collect(),
        values: (0..comparison.policies.len())
            .map(|p| queues.iter().map(|q| Some(comparison.service_level(p, q))).collect())
            .collect(),
        first_color: 0,
    };
    let mut charts = vec![("policies-service-level", levels)];
    if comparison.policies.len() > 1 {
        let differences = PolicyBars {
            caption: format!(
                "Service level against {}, paired on the same callers (whiskers: 95 %, {n} replications)",
                comparison.policies[0]
            ),
            y_desc: "difference (points)".into(),
            policies: comparison.policies[1..].to_vec(),
            queues: queues.iter().map(|q| (q.clone(), None)).collect(),
            values: (1..comparison.policies.len())
                .map(|p| queues.iter().map(|q| Some(comparison.service_level_difference(p, q))).collect())
                .collect(),
            first_color: 1,
        };
        charts.push(("policies-difference", differences));
    }
    charts
}

/// The comparison charts of `simulate --policy …`, SVG and PNG:
/// `policies-service-level` and, over replications, `policies-difference`.
pub fn write_policy_charts(dir: &Path, charts: &[(&str, PolicyBars)]) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| dir.display().to_string())?;
    register_font();
    for (stem, bars) in charts {
        save(&dir.join(stem), bars)?;
    }
    Ok(())
}

impl Plot for PolicyBars {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> anyhow::Result<()> {
        let finite = |i: &crate::replications::Interval| if i.half_width.is_finite() { i.half_width } else { 0.0 };
        let reach = self.values.iter().flatten().flatten().map(|i| i.mean.abs() + finite(i));
        let targets = self.queues.iter().filter_map(|(_, t)| t.map(f64::abs));
        let top = reach.chain(targets).fold(1.0, f64::max) * 1.15;
        let below_zero = self.values.iter().flatten().flatten().any(|i| i.mean - finite(i) < 0.0);
        let bottom = if below_zero { -top } else { 0.0 };
        let n = self.queues.len().max(1);
        let mut chart =
            chart(root, &self.caption, ("queue", 0.0..n as f64), (&self.y_desc, bottom..top), Some(|_| String::new()))?;
        let width = 0.8 / self.policies.len().max(1) as f64;
        for (p, policy) in self.policies.iter().enumerate() {
            let color = Palette99::pick(self.first_color + p).to_rgba();
            let bars = self.values[p].iter().enumerate().filter_map(|(q, value)| {
                let x = q as f64 + 0.1 + p as f64 * width;
                value.map(|v| Rectangle::new([(x, 0.0), (x + 0.9 * width, v.mean)], color.filled()))
            });
            chart
                .draw_series(bars)
                .map_err(chart_error)?
                .label(policy.clone())
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 15, y + 5)], color.filled()));
            for (q, value) in self.values[p].iter().enumerate() {
                let Some(v) = value.filter(|v| v.half_width.is_finite()) else { continue };
                let x = q as f64 + 0.1 + (p as f64 + 0.45) * width;
                let (low, high) = (v.mean - v.half_width, v.mean + v.half_width);
                let cap = 0.2 * width;
                let whisker = [
                    vec![(x, low), (x, high)],
                    vec![(x - cap, low), (x + cap, low)],
                    vec![(x - cap, high), (x + cap, high)],
                ];
                chart
                    .draw_series(whisker.map(|line| PathElement::new(line, BLACK.stroke_width(1))))
                    .map_err(chart_error)?;
            }
        }
        if bottom < 0.0 {
            chart.draw_series([PathElement::new(vec![(0.0, 0.0), (n as f64, 0.0)], BLACK)]).map_err(chart_error)?;
        }
        for (q, (name, target)) in self.queues.iter().enumerate() {
            if let Some(target) = *target {
                let dashes = (0..18).step_by(2).map(|k| {
                    let from = q as f64 + 0.05 + k as f64 * 0.05;
                    PathElement::new(vec![(from, target), (from + 0.05, target)], BLACK.stroke_width(2))
                });
                chart.draw_series(dashes).map_err(chart_error)?;
            }
            let label = Text::new(name.clone(), (q as f64 + 0.4, top * 0.97), ("sans-serif", 16));
            chart.draw_series([label]).map_err(chart_error)?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .border_style(BLACK)
            .background_style(WHITE)
            .draw()
            .map_err(chart_error)
    }
}

/// The charts' one typeface, built in so that a PNG renders the same on any
/// machine, fonts installed or not (DejaVu Sans: `loadgen/assets/`).
fn register_font() {
    static FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");
    static REGISTERED: std::sync::Once = std::sync::Once::new();
    REGISTERED.call_once(|| {
        plotters::style::register_font("sans-serif", FontStyle::Normal, FONT)
            .unwrap_or_else(|_| unreachable!("the built-in font parses"));
    });
}

const SIZE: (u32, u32) = (900, 540);

/// A chart that can be drawn on any plotters backend.
trait Plot {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> anyhow::Result<()>;
}

/// Writes `<stem>.svg` and `<stem>.png`.
fn save(stem: &Path, plot: &impl Plot) -> anyhow::Result<()> {
    let (svg, png) = (stem.with_extension("svg"), stem.with_extension("png"));
    let root = SVGBackend::new(&svg, SIZE).into_drawing_area();
    plot.draw(&root).and_then(|_| root.present().map_err(chart_error)).with_context(|| svg.display().to_string())?;
    let root = BitMapBackend::new(&png, SIZE).into_drawing_area();
    plot.draw(&root).and_then(|_| root.present().map_err(chart_error)).with_context(|| png.display().to_string())
}

fn chart_error(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("drawing a chart: {e}")
}

/// All queues together, one line per tier: the share answered within x.
struct WaitsByTier {
    per_tier: Vec<(String, Histogram<u64>)>,
    max: f64,
    label: String,
}

impl WaitsByTier {
    fn new(report: &Report, tiers: &[String], label: &str) -> anyhow::Result<Self> {
        let mut per_tier = Vec::new();
        for tier in tiers {
            let mut h = Histogram::<u64>::new_with_bounds(1, 86_400_000_000, 3).expect("bounds");
            for (_, _, f) in report.rows.iter().filter(|(_, t, _)| t == tier) {
                h.add(&f.waits).map_err(chart_error)?;
            }
            if !h.is_empty() {
                per_tier.push((tier.clone(), h));
            }
        }
        let max = per_tier.iter().map(|(_, h)| h.value_at_quantile(0.99) as f64 / 1e6).fold(1.0, f64::max);
        Ok(WaitsByTier { per_tier, max, label: label.to_owned() })
    }
}

impl Plot for WaitsByTier {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> anyhow::Result<()> {
        let caption = format!("Answered waits by tier (share answered within x) — {}", self.label);
        let mut chart = chart(root, &caption, ("wait (s)", 0.0..self.max), ("share answered", 0.0..1.0), None)?;
        for (i, (tier, h)) in self.per_tier.iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            let points: Vec<(f64, f64)> = (0..=200)
                .map(|k| {
                    let x = self.max * f64::from(k) / 200.0;
                    (x, count_to(h, (x * 1e6) as u64) as f64 / h.len() as f64)
                })
                .collect();
            chart
                .draw_series(LineSeries::new(points, color.stroke_width(2)))
                .map_err(chart_error)?
                .label(tier.clone())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
        }
        chart.configure_series_labels().border_style(BLACK).background_style(WHITE).draw().map_err(chart_error)
    }
}

/// Contacts waiting, by hour of the run.
struct WaitingOverTime {
    hours: Vec<(f64, f64)>,
    label: String,
}

impl WaitingOverTime {
    fn new(run: &Run, label: &str) -> Self {
        WaitingOverTime {
            hours: run.waiting.iter().map(|(t, n)| (t.as_micros() as f64 / 3.6e9, f64::from(*n))).collect(),
            label: label.to_owned(),
        }
    }
}

impl Plot for WaitingOverTime {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> anyhow::Result<()> {
        let (x_max, y_max) = self.hours.iter().fold((1.0f64, 1.0f64), |(x, y), (a, b)| (x.max(*a), y.max(*b)));
        let x_min = self.hours.first().map_or(0.0, |p| p.0);
        let caption = format!("Contacts waiting — {}", self.label);
        let mut chart =
            chart(root, &caption, ("time", x_min..x_max), ("waiting", 0.0..y_max * 1.1), Some(clock_hours))?;
        chart.draw_series(LineSeries::new(self.hours.clone(), BLUE.stroke_width(2))).map_err(chart_error)?;
        Ok(())
    }
}

/// Each queue's service level by the hour its contacts arrived in, against
/// its own threshold, with its target as a dashed line (queues with
/// different thresholds are never pooled).
struct ServiceLevelByHour {
    hours: usize,
    queues: Vec<QueueLine>,
    label: String,
}

/// A queue's name, target, and (hour midpoint, service level) points.
type QueueLine = (String, f64, Vec<(f64, f64)>);

impl ServiceLevelByHour {
    fn new(run: &Run, report: &Report, info: &Charted) -> Self {
        let hours = (run.duration.as_secs() / 3600).max(1) as usize;
        let queues = info
            .queues
            .iter()
            .enumerate()
            .filter_map(|(q, (name, target))| {
                let threshold = report.thresholds[q];
                let mut buckets: Vec<Vec<&crate::sim::ContactRecord>> = vec![Vec::new(); hours];
                for c in run.contacts.iter().filter(|c| usize::from(c.queue.0) == q) {
                    if let Some(b) = buckets.get_mut((c.arrival.as_micros() / 3_600_000_000) as usize) {
                        b.push(c);
                    }
                }
                let points: Vec<(f64, f64)> = buckets
                    .iter()
                    .enumerate()
                    .filter_map(|(h, b)| Some((h as f64 + 0.5, service_level(b.iter().copied(), threshold)?)))
                    .collect();
                (!points.is_empty()).then(|| (name.clone(), *target, points))
            })
            .collect();
        ServiceLevelByHour { hours, queues, label: info.label.to_owned() }
    }
}

impl Plot for ServiceLevelByHour {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> anyhow::Result<()> {
        let caption = format!("Service level by hour of arrival, per queue (dashed: target) — {}", self.label);
        let x = 0.0..self.hours as f64;
        let mut chart = chart(root, &caption, ("time", x), ("service level", 0.0..1.0), Some(clock_hours))?;
        for (i, (name, target, points)) in self.queues.iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            chart
                .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
                .map_err(chart_error)?
                .label(name.clone())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
            chart.draw_series(points.iter().map(|&p| Circle::new(p, 3, color.filled()))).map_err(chart_error)?;
            let dashes = (0..self.hours * 4).step_by(2).map(|k| {
                let from = k as f64 / 4.0;
                PathElement::new(vec![(from, *target), (from + 0.25, *target)], color.stroke_width(1))
            });
            chart.draw_series(dashes).map_err(chart_error)?;
        }
        chart.configure_series_labels().border_style(BLACK).background_style(WHITE).draw().map_err(chart_error)
    }
}

/// An hour of the run as the clock shows it (the run starts at midnight).
fn clock_hours(hours: &f64) -> String {
    let minutes = (hours * 60.0).round().max(0.0) as u64;
    format!("{:02}:{:02}", minutes / 60 % 24, minutes % 60)
}

/// A white chart with its caption and axes, ready for series.
fn chart<'a, DB: DrawingBackend>(
    root: &'a DrawingArea<DB, Shift>,
    caption: &str,
    (x_desc, x): (&str, std::ops::Range<f64>),
    (y_desc, y): (&str, std::ops::Range<f64>),
    x_labels: Option<fn(&f64) -> String>,
) -> anyhow::Result<ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>> {
    root.fill(&WHITE).map_err(chart_error)?;
    let mut chart = ChartBuilder::on(root)
        .caption(caption, ("sans-serif", 18))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(x, y)
        .map_err(chart_error)?;
    let mut mesh = chart.configure_mesh();
    mesh.x_desc(x_desc).y_desc(y_desc);
    if let Some(format) = &x_labels {
        mesh.x_label_formatter(format);
    }
    mesh.draw().map_err(chart_error)?;
    Ok(chart)
}
