//! ccr-loadgen: traffic for ccr. `simulate` runs a scenario against the
//! routing core in virtual time (loadgen/README.md).

use std::path::PathBuf;

use anyhow::{bail, Context};
use ccr_core::{AgentPolicy, ContactPolicy};
use ccr_daemon::journal::FsyncPolicy;
use ccr_loadgen::replications::Interval;
use ccr_loadgen::report::Report;
use ccr_loadgen::scenario::{self, Scenario};
use ccr_loadgen::sim;
use ccr_loadgen::{bench, live, output};
use clap::{Parser, Subcommand};

/// mimalloc: the routing core allocates and frees small B-tree nodes and
/// records on every decision, which it serves faster than the system
/// allocator (docs/PERFORMANCE.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "ccr-loadgen", version, about = "Traffic for ccr: simulate routing policies in virtual time")]
struct Args {
    #[command(subcommand)]
    command: Cmd,
}

/// A client certificate chain and its key (DER).
type ChainAndKey = (Vec<Vec<u8>>, Vec<u8>);

/// A certificate (chain) and key file, PEM or DER, if both are given.
fn identity(cert: &Option<PathBuf>, key: &Option<PathBuf>) -> anyhow::Result<Option<ChainAndKey>> {
    Ok(match (cert, key) {
        (Some(cert), Some(key)) => Some(ccr_proto::pki::identity(cert, key)?),
        _ => None,
    })
}

/// Who the client says it is, and whom it expects: one connection's
/// identity.
#[derive(clap::Args, Clone)]
struct ClientIdentity {
    /// The name ccrd's certificate must hold.
    #[arg(long, default_value = "localhost")]
    server_name: String,
    /// Client certificate (PEM or DER) when ccrd requires them: one
    /// identity for every call. (`failover` plays the gateway and the
    /// agents on the same connections, so it cannot run against a ccrd
    /// that enforces roles.)
    #[arg(long, requires = "client_key")]
    client_cert: Option<PathBuf>,
    /// The client certificate's private key (PEM or DER).
    #[arg(long)]
    client_key: Option<PathBuf>,
}

impl ClientIdentity {
    /// The certificate chain and key to present, if any.
    fn load(&self) -> anyhow::Result<Option<ChainAndKey>> {
        identity(&self.client_cert, &self.client_key)
    }
}

/// A live run's identities: the gateway's connection and the agents'
/// desktops' each present their own certificate, with their own role.
#[derive(clap::Args, Clone)]
struct RunIdentities {
    /// The name ccrd's certificate must hold.
    #[arg(long, default_value = "localhost")]
    server_name: String,
    /// The gateway's certificate (PEM or DER; role OU `gateway`) when ccrd
    /// requires client certificates.
    #[arg(long, requires = "gateway_key")]
    gateway_cert: Option<PathBuf>,
    /// The gateway certificate's private key (PEM or DER).
    #[arg(long, requires = "gateway_cert")]
    gateway_key: Option<PathBuf>,
    /// The agents' desktops' certificate (PEM or DER; role OU `agent`).
    #[arg(long, requires = "agent_key")]
    agent_cert: Option<PathBuf>,
    /// The agent certificate's private key (PEM or DER).
    #[arg(long, requires = "agent_cert")]
    agent_key: Option<PathBuf>,
}

/// The certificates to trust, from PEM or DER files (a PEM file may hold several).
fn roots(paths: &[PathBuf]) -> anyhow::Result<Vec<Vec<u8>>> {
    let mut roots = Vec::new();
    for path in paths {
        roots.extend(ccr_proto::pki::certificates(path)?);
    }
    Ok(roots)
}

/// Where the report goes besides the terminal.
#[derive(clap::Args, Clone, Default)]
struct Outputs {
    /// Also write the report as JSON (fields: loadgen/README.md).
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write HdrHistogram percentile files of the waits here.
    #[arg(long)]
    hgrm: Option<PathBuf>,
    /// Draw charts here, each as SVG and PNG: waits by tier, contacts
    /// waiting over time (simulate), service level by hour; with several
    /// policies, the policies compared (with --replications, only that).
    #[arg(long)]
    plot: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run a scenario against the routing core in virtual time.
    Simulate {
        /// The scenario file (TOML).
        scenario: PathBuf,
        /// Overrides the scenario's seed: same seed, same run.
        #[arg(long)]
        seed: Option<u64>,
        /// Run once per policy, on the same traffic, and compare: a contact
        /// policy (strict_tier, tier_aging, earliest_deadline), an agent
        /// policy (longest_idle, most_proficient, least_occupied), or one of
        /// each joined by '+' (strict_tier+least_occupied), applied to every
        /// queue. May be given several times.
        #[arg(long)]
        policy: Vec<String>,
        /// Independent replications (seeds seed, seed+1, …): every figure
        /// as mean ± 95 % half-width, and each policy against the scenario
        /// as configured by the paired difference on the same callers.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000))]
        replications: u32,
        /// Replicate until every service level, and every paired
        /// difference, is known to ± this many points (95 %): at least 5
        /// replications, at most 1,000. Implies replications.
        #[arg(long, conflicts_with = "replications")]
        precision: Option<f64>,
        /// The length of the report's intervals.
        #[arg(long, default_value = "30m")]
        interval: humantime::Duration,
        #[command(flatten)]
        outputs: Outputs,
    },
    /// Play a scenario's gateway and agents against a running ccrd.
    Run {
        /// The scenario file (TOML).
        scenario: PathBuf,
        /// ccrd's QUIC address; for a cluster, every node's (comma-separated
        /// or repeated): the run goes to the active.
        #[arg(long, value_delimiter = ',', default_value = "127.0.0.1:4433")]
        addr: Vec<std::net::SocketAddr>,
        /// Certificate to trust (PEM or DER): ccrd's own (data_dir/cert.der) or its CA.
        #[arg(long)]
        cert: PathBuf,
        #[command(flatten)]
        identities: RunIdentities,
        /// Scenario time per wall-clock time (60: an hour in a minute).
        #[arg(long, value_parser = speed, default_value_t = 1.0)]
        speed: f64,
        /// Stop after this much scenario time.
        #[arg(long)]
        duration: Option<humantime::Duration>,
        /// ccrd's metrics address (its `server.metrics_listen`): the report
        /// shows ccrd's own decision time beside the client's latency.
        #[arg(long)]
        metrics: Option<std::net::SocketAddr>,
        /// The share by which the achieved rate may fall short of the
        /// intended before the run counts as failed.
        #[arg(long, default_value_t = 0.1)]
        rate_tolerance: f64,
        #[command(flatten)]
        outputs: Outputs,
    },
    /// Print the scenario's ccrd configuration with every routing timer
    /// (SL thresholds, wrap-up, offer timeouts, relaxation, aging) divided
    /// by --speed: what the ccrd of a `run --speed N` needs for the
    /// scenario's timers to mean what they say.
    ScaledConfig {
        /// The scenario file (TOML).
        scenario: PathBuf,
        /// The speed the run will play at.
        #[arg(long, value_parser = speed)]
        speed: f64,
    },
    /// Capacity search: step the rate up until p99 arrival → offer passes
    /// the limit or errors appear, then hold the best rate. Exits 1 when no
    /// rate passed or the held one was not sustained.
    Bench {
        /// ccrd to measure (a cluster: every node's address, comma-separated
        /// or repeated; the active is measured); without it, one is started
        /// in this process on a loopback port (sharing the machine, as the
        /// targets assume).
        #[arg(long, value_delimiter = ',', requires = "cert")]
        addr: Vec<std::net::SocketAddr>,
        /// Certificates to trust (PEM or DER), with --addr: ccrd's own,
        /// each node's, or their CA.
        #[arg(long)]
        cert: Vec<PathBuf>,
        /// Journal fsync policy of the ccrd started here: always, interval, never.
        #[arg(long, default_value = "always")]
        fsync: String,
        /// The first rate tried, contacts a second.
        #[arg(long, default_value_t = 10_000.0)]
        start_rate: f64,
        /// How much the rate goes up each step.
        #[arg(long, default_value_t = 10_000.0)]
        step: f64,
        /// The highest rate tried.
        #[arg(long, default_value_t = 200_000.0)]
        max_rate: f64,
        /// How long each step lasts.
        #[arg(long, default_value = "5s")]
        step_time: humantime::Duration,
        /// Traffic at the start rate before the search, not judged: connections,
        /// allocator and caches settle, so the first step is not penalised for
        /// start-up ("0s": none).
        #[arg(long, default_value = "2s")]
        warm_up: humantime::Duration,
        /// How long the best rate is held at the end.
        #[arg(long, default_value = "60s")]
        sustain: humantime::Duration,
        /// The p99 arrival→offer a rate must stay within to pass.
        #[arg(long, default_value = "5ms")]
        p99: humantime::Duration,
        /// Chat agents (255 contacts each).
        #[arg(long, default_value_t = 200)]
        agents: u64,
        /// No search: hold this rate for --sustain (after the warm-up at
        /// it) and judge it against --p99. Checks a target rate directly.
        #[arg(long, conflicts_with_all = ["start_rate", "step", "max_rate", "step_time"])]
        hold: Option<f64>,
    },
    /// Start a ccrd on a free loopback port, replay the sample day of a bank
    /// at high speed, print the report, stop the daemon.
    Demo {
        /// Scenario time per wall-clock time.
        #[arg(long, value_parser = speed, default_value_t = 1440.0)]
        speed: f64,
    },
    /// Steady traffic against a cluster of ccrd across takeovers (kill,
    /// pause or stop its active meanwhile): follows the active, re-syncs
    /// as after a restart, and reports lost and doubled contacts and each
    /// outage. Exits non-zero if any contact was lost or doubled.
    Failover {
        /// Every node's QUIC address (comma-separated or repeated).
        #[arg(long, value_delimiter = ',', required = true)]
        addr: Vec<std::net::SocketAddr>,
        /// Certificates to trust (PEM or DER): each node's own, or their CA.
        #[arg(long, required = true)]
        cert: Vec<PathBuf>,
        #[command(flatten)]
        identity: ClientIdentity,
        /// Contacts a second.
        #[arg(long, default_value_t = 200.0)]
        rate: f64,
        /// Agents logged in (one voice call each).
        #[arg(long, default_value_t = 20)]
        agents: u64,
        /// How long the traffic runs.
        #[arg(long, default_value = "30s")]
        duration: humantime::Duration,
        /// How long each call lasts.
        #[arg(long, default_value = "20ms")]
        talk: humantime::Duration,
        /// The queue every contact goes to (in ccrd's configuration).
        #[arg(long, default_value = "support")]
        queue: String,
        /// The skill every contact asks for and every agent has.
        #[arg(long, default_value = "billing")]
        skill: String,
        /// The language of every contact and agent.
        #[arg(long, default_value = "en")]
        language: String,
        /// Also write the report as JSON.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Staffing by simulation: per interval, the fewest agents of each
    /// group that meet the service-level target with the scenario's
    /// routing, beside the Erlang answer and the scenario's own staffing.
    Staff {
        /// The scenario file (TOML).
        scenario: PathBuf,
        /// PERCENT/SECONDS for every queue, e.g. 80/20; without it, each
        /// queue's own target from the ccrd configuration.
        #[arg(long)]
        target: Option<ccr_loadgen::staffing::Target>,
        /// The planning interval.
        #[arg(long, default_value = "30m")]
        interval: humantime::Duration,
        /// Replications searched (seeds seed, seed+1, …); as many fresh
        /// ones check the plan.
        #[arg(long, default_value_t = 40, value_parser = clap::value_parser!(u32).range(1..=1000))]
        replications: u32,
        /// Overrides the scenario's seed.
        #[arg(long)]
        seed: Option<u64>,
        /// Staff any group in any interval, not only within its shift.
        #[arg(long)]
        any_hours: bool,
        /// Also write the plan as JSON.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Write a scenario's synthetic traffic as a trace (CSV).
    Generate {
        /// The scenario file (TOML).
        scenario: PathBuf,
        /// The trace file to write.
        #[arg(short, long)]
        output: PathBuf,
        /// Overrides the scenario's seed.
        #[arg(long)]
        seed: Option<u64>,
    },
    /// What queueing theory predicts for one queue: Erlang C, or Erlang A
    /// with --patience.
    Erlang {
        /// Contacts per hour.
        #[arg(long)]
        calls_per_hour: f64,
        /// Mean handle time, e.g. "3m".
        #[arg(long)]
        aht: humantime::Duration,
        /// Agents on the queue.
        #[arg(long)]
        agents: u32,
        /// Service-level threshold, e.g. "20s".
        #[arg(long, default_value = "20s")]
        threshold: humantime::Duration,
        /// Mean patience of callers (Erlang A); without it, nobody hangs up.
        #[arg(long)]
        patience: Option<humantime::Duration>,
    },
}

fn print_failover(report: &ccr_loadgen::failover::FailoverReport) {
    println!(
        "{} contacts acknowledged, {} completed, {} offers; lost {}, doubled {}",
        report.acknowledged,
        report.completed,
        report.offers,
        report.lost.len(),
        report.doubled.len()
    );
    for (n, o) in report.outages.iter().enumerate() {
        let gap = o.first_offer_after_unix_ms.map(|first| first.saturating_sub(o.last_offer_unix_ms));
        println!(
            "outage {}: last offer before at {} ms, first after at {:?} ms (routing stopped for {:?} ms as the client saw it)",
            n + 1,
            o.last_offer_unix_ms,
            o.first_offer_after_unix_ms,
            gap
        );
    }
    for problem in report.doubled.iter().chain(&report.problems).take(20) {
        println!("  {problem}");
    }
}

/// Errors are printed as their chain of causes, never with a backtrace
/// (whatever `RUST_BACKTRACE` says: they are the user's to act on, not a bug).
fn main() -> std::process::ExitCode {
    // Output piped into `head` and the like: the closed pipe ends the
    // program quietly, as it does any Unix tool, instead of a panic in
    // `println!`. (Sockets are unaffected: std writes them with MSG_NOSIGNAL.)
    // SAFETY: at the start of main, before any thread; SIG_DFL is a valid
    // disposition for SIGPIPE.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ccr-loadgen: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// A `--speed`: scenario time per wall-clock time, above zero.
fn speed(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(s) if s.is_finite() && s > 0.0 => Ok(s),
        _ => Err(format!("{text:?}: a speed is a number above zero (60: an hour in a minute)")),
    }
}

fn run() -> anyhow::Result<()> {
    // `bench` and `demo` run a ccrd in this process.
    if let Err(e) = ccr_daemon::host::opt_out_of_transparent_huge_pages() {
        eprintln!("ccr-loadgen: could not opt out of transparent huge pages ({e}): expect rare stalls of a few ms");
    }
    ccr_daemon::host::keep_freed_memory();
    match Args::parse().command {
        Cmd::Simulate { scenario, seed, policy, replications, precision, interval, outputs } => {
            if let Some(points) = precision {
                if points.is_nan() || points <= 0.0 {
                    bail!("--precision {points}: a positive number of points");
                }
                replicate(&scenario, seed, policy, Replications::Until(points), &outputs)
            } else if replications > 1 {
                replicate(&scenario, seed, policy, Replications::Exactly(replications), &outputs)
            } else {
                simulate(&scenario, seed, policy, interval, outputs)
            }
        }
        Cmd::Run { scenario, addr, cert, identities, speed, duration, metrics, rate_tolerance, outputs } => {
            let s = scenario::load(&scenario)?;
            let target = live::Target {
                addrs: addr,
                roots: roots(&[cert])?,
                gateway_identity: identity(&identities.gateway_cert, &identities.gateway_key)?,
                agent_identity: identity(&identities.agent_cert, &identities.agent_key)?,
                server_name: identities.server_name,
            };
            let options = live::LiveOptions {
                speed,
                duration: duration.map(Into::into),
                progress: true,
                skip_quiet_start: true,
                stop: None,
                skip_idle: true,
            };
            live_report(&s, &target, options, metrics, rate_tolerance, &outputs)
        }
        Cmd::Demo { speed } => demo(speed),
        Cmd::ScaledConfig { scenario, speed } => {
            let text = std::fs::read_to_string(&scenario).with_context(|| scenario.display().to_string())?;
            let raw: toml::Table = text.parse().with_context(|| scenario.display().to_string())?;
            let ccrd = match raw.get("ccrd_config").and_then(|v| v.as_str()) {
                Some(file) => {
                    let path = scenario.parent().unwrap_or(std::path::Path::new(".")).join(file);
                    std::fs::read_to_string(&path).with_context(|| path.display().to_string())?
                }
                None => ccr_daemon::config::DEFAULT_CONFIG.to_owned(),
            };
            print!("{}", live::scaled_config(&ccrd, speed)?);
            Ok(())
        }
        Cmd::Failover { addr, cert, identity, rate, agents, duration, talk, queue, skill, language, json } => {
            let options = ccr_loadgen::failover::FailoverOptions {
                addrs: addr,
                roots: roots(&cert)?,
                identity: identity.load()?,
                server_name: identity.server_name,
                rate,
                agents,
                duration: duration.into(),
                talk: talk.into(),
                queue,
                skill,
                language,
            };
            let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            let report = runtime.block_on(ccr_loadgen::failover::run(&options))?;
            print_failover(&report);
            if let Some(path) = json {
                std::fs::write(&path, serde_json::to_string_pretty(&report)?)
                    .with_context(|| path.display().to_string())?;
            }
            if !report.is_clean() {
                bail!(
                    "{} lost, {} doubled, {} other problem(s)",
                    report.lost.len(),
                    report.doubled.len(),
                    report.problems.len()
                );
            }
            Ok(())
        }
        Cmd::Bench {
            addr,
            cert,
            fsync,
            start_rate,
            step,
            max_rate,
            step_time,
            warm_up,
            sustain,
            p99,
            agents,
            hold,
        } => {
            if hold.is_some_and(|rate| !(rate > 0.0 && rate.is_finite())) {
                bail!("--hold must be a rate above zero");
            }
            let options = bench::BenchOptions {
                start_rate: hold.unwrap_or(start_rate),
                hold: hold.is_some(),
                step,
                max_rate,
                step_time: step_time.into(),
                warm_up: warm_up.into(),
                sustain: sustain.into(),
                p99_limit: p99.into(),
                agents,
            };
            let fsync = match fsync.as_str() {
                "always" => FsyncPolicy::Always,
                "interval" => FsyncPolicy::Interval(std::time::Duration::from_millis(10)),
                "never" => FsyncPolicy::Never,
                other => bail!("--fsync {other:?}: always, interval or never"),
            };
            let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
            runtime.block_on(capacity(addr, cert, fsync, options))
        }
        Cmd::Staff { scenario, target, interval, replications, seed, any_hours, json } => {
            let mut s = scenario::load(&scenario)?;
            if let Some(seed) = seed {
                s.seed = seed;
            }
            let options = ccr_loadgen::staffing::StaffingOptions {
                width: interval.into(),
                target,
                replications,
                any_hours,
                progress: std::io::IsTerminal::is_terminal(&std::io::stderr()),
            };
            let started = std::time::Instant::now();
            let plan = ccr_loadgen::staffing::staff(&s, &options)?;
            print!("{}", plan.table());
            println!("planned in {:.1?}", started.elapsed());
            if let Some(path) = json {
                std::fs::write(&path, serde_json::to_string_pretty(&plan.json())?)
                    .with_context(|| path.display().to_string())?;
            }
            Ok(())
        }
        Cmd::Generate { scenario, output, seed } => {
            let mut s = scenario::load(&scenario)?;
            if let Some(seed) = seed {
                s.seed = seed;
            }
            let callers = sim::callers(&s);
            ccr_loadgen::trace::write(&output, &callers, &s.ccrd.catalog)?;
            println!(
                "{}: {} contacts over {}",
                output.display(),
                callers.len(),
                humantime::format_duration(s.duration)
            );
            Ok(())
        }
        Cmd::Erlang { calls_per_hour, aht, agents, threshold, patience } => {
            erlang(calls_per_hour, aht.into(), agents, threshold.into(), patience.map(Into::into))
        }
    }
}

/// `simulate`: one run per policy on the same traffic, each reported.
fn simulate(
    scenario: &std::path::Path,
    seed: Option<u64>,
    policy: Vec<String>,
    interval: humantime::Duration,
    outputs: Outputs,
) -> anyhow::Result<()> {
    let Outputs { json, hgrm, plot } = outputs;
    let mut base = scenario::load(scenario)?;
    if let Some(seed) = seed {
        base.seed = seed;
    }
    let policies = if policy.is_empty() { vec![None] } else { policy.into_iter().map(Some).collect() };
    let mut summary = Vec::new();
    let mut json_runs = Vec::new();
    for p in &policies {
        let mut s = base.clone();
        if let Some(p) = p {
            apply_policy(&mut s, p)?;
        }
        let started = std::time::Instant::now();
        let run = sim::simulate(&s).context("routing configuration")?;
        let report = Report::of_scenario(&run, &s);
        let thresholds = &report.thresholds;
        println!(
            "== {} — {} simulated ({} warm-up) in {:.2?}, seed {}",
            p.as_deref().unwrap_or("policies as configured"),
            humantime::format_duration(s.duration),
            humantime::format_duration(s.warm_up),
            started.elapsed(),
            s.seed
        );
        println!("{}", report.table());
        let names = &s.ccrd.catalog.queues;
        let width = interval.into();
        println!("by interval ({}):", humantime::format_duration(width));
        println!("{}", ccr_loadgen::report::intervals(&run, names, thresholds, width));
        let label = p.clone().unwrap_or_else(|| "configured".into());
        let prefix = if policies.len() > 1 { format!("{label}-") } else { String::new() };
        if json.is_some() {
            let named: Vec<_> = s.ccrd.catalog.queues.iter().cloned().zip(thresholds.iter().copied()).collect();
            json_runs.push(output::run_json(&label, "simulate", s.seed, &run, &report, &named));
        }
        if let Some(dir) = &hgrm {
            output::write_hgrm(dir, &prefix, &report)?;
        }
        if let Some(dir) = &plot {
            let queues = s.queue_targets();
            let info = output::Charted { label: &label, tiers: &s.ccrd.catalog.tiers, queues: &queues };
            output::write_plots(dir, &prefix, &run, &report, &info)?;
        }
        summary.push((label, report));
    }
    if let Some(path) = &json {
        output::write_json(path, json_runs)?;
    }
    if let (Some(dir), true) = (&plot, summary.len() > 1) {
        let queues = base.queue_targets();
        let values = summary
            .iter()
            .map(|(_, report)| {
                let figures = ccr_loadgen::replications::queue_figures(report);
                let level = |q: &str| figures.iter().find(|(name, _)| name == q).map(|(_, f)| 100.0 * f.service_level);
                queues.iter().map(|(q, _)| level(q).map(|sl| Interval::of(&[sl]))).collect()
            })
            .collect();
        let bars = output::PolicyBars {
            caption: format!("Service level by policy, one run (dashed: target) — seed {}", base.seed),
            y_desc: "service level (%)".into(),
            policies: summary.iter().map(|(label, _)| label.clone()).collect(),
            queues: queues.iter().map(|(q, target)| (q.clone(), Some(100.0 * target))).collect(),
            values,
            first_color: 0,
        };
        output::write_policy_charts(dir, &[("policies-service-level", bars)])?;
    }
    side_by_side(&summary);
    Ok(())
}

/// How many replications `simulate` runs.
#[derive(Clone, Copy)]
enum Replications {
    Exactly(u32),
    /// Until every SL half-width is within this many points.
    Until(f64),
}

/// `simulate --replications N` or `--precision P`: every policy (the
/// scenario as configured first) on the same callers in each replication,
/// compared.
fn replicate(
    scenario: &std::path::Path,
    seed: Option<u64>,
    policy: Vec<String>,
    replications: Replications,
    outputs: &Outputs,
) -> anyhow::Result<()> {
    if outputs.json.is_some() || outputs.hgrm.is_some() {
        bail!("--json and --hgrm describe one run: leave them out with --replications (--plot draws the comparison)");
    }
    let mut base = scenario::load(scenario)?;
    if let Some(seed) = seed {
        base.seed = seed;
    }
    let mut scenarios = vec![("configured".to_owned(), base.clone())];
    for p in policy {
        let mut s = base.clone();
        apply_policy(&mut s, &p)?;
        scenarios.push((p, s));
    }
    let started = std::time::Instant::now();
    let policies: Vec<String> = scenarios.iter().map(|(name, _)| name.clone()).collect();
    let mut comparison = ccr_loadgen::replications::Comparison { policies, runs: vec![Vec::new(); scenarios.len()] };
    let mut replications_run = 0u32;
    loop {
        let enough = match replications {
            Replications::Exactly(n) => replications_run >= n,
            Replications::Until(points) => {
                replications_run >= 1000
                    || (replications_run >= 5 && comparison.widest_service_level_half_width() <= points)
            }
        };
        if enough {
            break;
        }
        let r = u64::from(replications_run);
        replications_run += 1;
        for (i, (_, s)) in scenarios.iter().enumerate() {
            let mut s = s.clone();
            s.seed = base.seed.wrapping_add(r);
            let run = sim::simulate(&s).context("routing configuration")?;
            let report = Report::of_scenario(&run, &s);
            comparison.runs[i].push(ccr_loadgen::replications::queue_figures(&report));
        }
    }
    println!(
        "{} simulated {} times per policy (seeds {}..={}) in {:.1?}{}",
        humantime::format_duration(base.duration),
        replications_run,
        base.seed,
        base.seed.wrapping_add(u64::from(replications_run) - 1),
        started.elapsed(),
        match replications {
            Replications::Until(points) => format!(
                "; widest SL half-width {:.2} points (asked: {points})",
                comparison.widest_service_level_half_width()
            ),
            Replications::Exactly(_) => String::new(),
        }
    );
    print!("{}", comparison.table());
    if let Some(dir) = &outputs.plot {
        output::write_policy_charts(dir, &output::comparison_charts(&comparison, &base.queue_targets()))?;
    }
    Ok(())
}

/// The runs side by side, one line per policy: each queue's service level
/// against its own threshold (never pooled across thresholds), then ASA,
/// abandonment and occupancy over every queue.
fn side_by_side(summary: &[(String, Report)]) {
    if summary.len() > 1 {
        println!("== side by side (one seed: see --replications before ranking policies)");
        let queues: Vec<&str> =
            summary[0].1.rows.iter().filter(|(_, t, _)| t == "all").map(|(q, _, _)| q.as_str()).collect();
        let mut header = format!("{:<34}", "policy");
        for q in &queues {
            header.push_str(&format!(" {:>12}", format!("SL {q}")));
        }
        println!("{header} {:>7} {:>7} {:>9}", "ASA s", "aband", "occupancy");
        for (name, report) in summary {
            let all: Vec<_> = report.rows.iter().filter(|(_, tier, _)| tier == "all").collect();
            let counted: u64 = all.iter().map(|(_, _, f)| f.answered + f.abandoned).sum();
            let answered: u64 = all.iter().map(|(_, _, f)| f.answered).sum();
            let abandoned: u64 = all.iter().map(|(_, _, f)| f.abandoned).sum();
            let wait: f64 = all.iter().map(|(_, _, f)| f.asa.as_secs_f64() * f.answered as f64).sum();
            let mut line = format!("{name:<34}");
            for (_, _, f) in &all {
                line.push_str(&format!(" {:>11.1}%", 100.0 * f.service_level));
            }
            println!(
                "{line} {:>7.1} {:>6.1}% {:>8.1}%",
                wait / answered.max(1) as f64,
                100.0 * abandoned as f64 / counted.max(1) as f64,
                100.0 * report.occupancy
            );
        }
    }
}

/// Runs the live engine on its own runtime (Ctrl-C stops it early, with a
/// report), prints its report, and fails if the run did not do what was
/// asked (`LiveRun::failures`).
fn live_report(
    s: &Scenario,
    target: &live::Target,
    mut options: live::LiveOptions,
    metrics: Option<std::net::SocketAddr>,
    rate_tolerance: f64,
    outputs: &Outputs,
) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let live = runtime.block_on(async {
        options.stop = Some(stop_on_ctrl_c());
        let before = metrics.map(ccr_loadgen::scrape::scrape).transpose()?;
        let live = live::run(s, target, &options).await?;
        let decisions = match (metrics, before) {
            (Some(addr), Some(before)) => Some(ccr_loadgen::scrape::scrape(addr)?.since(&before)),
            _ => None,
        };
        anyhow::Ok((live, decisions))
    })?;
    print_live(s, &live.0, live.1.as_ref(), outputs)?;
    judge(&live.0, rate_tolerance)
}

/// A non-zero exit, saying why, when the run did not do what was asked.
fn judge(live: &live::LiveRun, rate_tolerance: f64) -> anyhow::Result<()> {
    let failures = live.failures(rate_tolerance);
    if !failures.is_empty() {
        bail!("the run failed: {}", failures.join("; "));
    }
    Ok(())
}

/// Turns true at the first Ctrl-C (the run stops and reports); a second
/// Ctrl-C exits at once. Needs a Tokio runtime.
fn stop_on_ctrl_c() -> tokio::sync::watch::Receiver<bool> {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("\nccr-loadgen: stopping (Ctrl-C again to quit at once)");
            let _ = stop.send(true);
            if tokio::signal::ctrl_c().await.is_ok() {
                std::process::exit(130);
            }
        }
    });
    stopped
}

fn print_live(
    s: &Scenario,
    live: &live::LiveRun,
    decisions: Option<&ccr_loadgen::scrape::Buckets>,
    outputs: &Outputs,
) -> anyhow::Result<()> {
    let report = Report::of_scenario(&live.run, s);
    let thresholds = &report.thresholds;
    let clock = |d: std::time::Duration| format!("{:02}:{:02}", d.as_secs() / 3600, d.as_secs() / 60 % 60);
    match live.arrivals {
        Some((first, last)) => println!(
            "== live: {} contacts arriving {}–{} of the scenario's day{}{}",
            live.sent,
            clock(first),
            clock(last),
            match live.skipped.is_zero() {
                true => String::new(),
                false => format!(", {} idle skipped", humantime::format_duration(live.skipped)),
            },
            if live.interrupted { " (interrupted)" } else { "" }
        ),
        None => println!("== live: no contact sent"),
    }
    println!("{}", report.table());
    println!("{}", live.latency_line());
    if let Some(d) = decisions {
        println!("ccrd's own time per routing command (ccr_routing_decision_seconds, bucket bounds): {}", d.summary());
    }
    if let Some(path) = &outputs.json {
        let named: Vec<_> = s.ccrd.catalog.queues.iter().cloned().zip(thresholds.iter().copied()).collect();
        let mut run = output::run_json("live", "run", s.seed, &live.run, &report, &named);
        run["latency_ms"] = serde_json::json!({
            "p50": live.latency.value_at_quantile(0.5) as f64 / 1000.0,
            "p90": live.latency.value_at_quantile(0.9) as f64 / 1000.0,
            "p99": live.latency.value_at_quantile(0.99) as f64 / 1000.0,
            "p999": live.latency.value_at_quantile(0.999) as f64 / 1000.0,
            "max": live.latency.max() as f64 / 1000.0,
        });
        run["intended_rate"] = live.intended_rate.into();
        run["achieved_rate"] = live.achieved_rate.into();
        run["errors"] = live.errors.into();
        run["unanswered"] = live.unanswered.into();
        run["interrupted"] = live.interrupted.into();
        run["skipped_idle_seconds"] = live.skipped.as_secs_f64().into();
        output::write_json(path, vec![run])?;
    }
    if let Some(dir) = &outputs.hgrm {
        output::write_hgrm(dir, "", &report)?;
        std::fs::write(dir.join("latency.hgrm"), output::hgrm(&live.latency))?;
    }
    if let Some(dir) = &outputs.plot {
        let queues = s.queue_targets();
        let info = output::Charted { label: "live", tiers: &s.ccrd.catalog.tiers, queues: &queues };
        output::write_plots(dir, "", &live.run, &report, &info)?;
    }
    Ok(())
}

async fn capacity(
    addrs: Vec<std::net::SocketAddr>,
    certs: Vec<PathBuf>,
    fsync: FsyncPolicy,
    options: bench::BenchOptions,
) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("ccr-loadgen-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let echo = ccr_daemon::loopback::Echo::start(&dir.join("echo")).await?;
    let (echo_p50, echo_p99) = bench::echo_round_trip(echo.addr, &echo.cert, 2000).await?;
    echo.stop();
    let (targets, roots, daemon) = match (addrs.is_empty(), certs.is_empty()) {
        (false, false) => (addrs, roots(&certs)?, None),
        _ => {
            let mut config = ccr_daemon::config::parse(bench::BENCH_CONFIG)?;
            config.server.data_dir = dir.join("ccrd");
            config.journal.options.fsync = fsync;
            let daemon = ccr_daemon::loopback::Loopback::start(config, None, false).await?;
            println!("ccrd started on {} (journal fsync {fsync:?})", daemon.addr);
            (vec![daemon.addr], vec![daemon.cert.clone()], Some(daemon))
        }
    };
    println!(
        "bare QUIC echo of an Enqueue-sized request, same machine: p50 {:.3} ms, p99 {:.3} ms",
        echo_p50.as_secs_f64() * 1000.0,
        echo_p99.as_secs_f64() * 1000.0
    );
    let mut b = bench::Bench::connect(&targets, "localhost", &roots, options.agents).await?;
    if !options.warm_up.is_zero() {
        let warm = b.step(options.start_rate, options.warm_up).await;
        println!("warm-up, not judged:\n{}\n{}", bench::HEADER, warm.line());
    }
    let mut best = options.hold.then_some(options.start_rate);
    if !options.hold {
        println!(
            "search: {} s a step, p99 limit {:?}\n{}",
            options.step_time.as_secs(),
            options.p99_limit,
            bench::HEADER
        );
    }
    let mut rate = options.start_rate;
    while !options.hold && rate <= options.max_rate {
        let step = b.step(rate, options.step_time).await;
        println!("{}", step.line());
        if !step.passed(options.p99_limit) {
            break;
        }
        best = Some(rate);
        rate += options.step;
    }
    let result = match best {
        Some(rate) => {
            println!("holding {rate:.0}/s for {} s, p99 limit {:?}:", options.sustain.as_secs(), options.p99_limit);
            let held = b.step(rate, options.sustain).await;
            println!("{}\n{}", bench::HEADER, held.line());
            let verdict = if held.passed(options.p99_limit) { "sustained" } else { "NOT sustained" };
            let which = if options.hold { "rate" } else { "highest rate" };
            println!(
                "{which} {verdict}: {rate:.0} contacts/s for {} s, p99 arrival→offer {:.3} ms (bare echo p50 {:.3} ms)",
                options.sustain.as_secs(),
                held.p99.as_secs_f64() * 1000.0,
                echo_p50.as_secs_f64() * 1000.0
            );
            match held.passed(options.p99_limit) {
                true => Ok(()),
                false => Err(anyhow::anyhow!("{rate:.0}/s was not sustained within p99 {:?}", options.p99_limit)),
            }
        }
        None => Err(anyhow::anyhow!("no step passed: even {:.0}/s is beyond the limit", options.start_rate)),
    };
    b.stop();
    if let Some(daemon) = daemon {
        daemon.stop().await?;
    }
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// The README's "see it work": a ccrd on a free loopback port with its
/// built-in configuration, the sample bank day replayed against it.
fn demo(speed: f64) -> anyhow::Result<()> {
    const SCENARIO: &str = include_str!("../scenarios/bank-day-trace.toml");
    const TRACE: &str = include_str!("../traces/bank-day.csv");
    // Removed on every way out (an error, Ctrl-C, a panic).
    let temp = tempfile::Builder::new().prefix("ccr-loadgen-demo-").tempdir()?;
    let dir = temp.path();
    std::fs::create_dir_all(dir.join("scenarios"))?;
    std::fs::create_dir_all(dir.join("traces"))?;
    std::fs::write(dir.join("scenarios/bank-day-trace.toml"), SCENARIO)?;
    std::fs::write(dir.join("traces/bank-day.csv"), TRACE)?;
    let s = scenario::load(&dir.join("scenarios/bank-day-trace.toml"))?;
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let result = runtime.block_on(async {
        let mut config = ccr_daemon::config::parse(ccr_daemon::config::DEFAULT_CONFIG)?;
        config.server.data_dir = dir.join("ccrd-data");
        config.server.max_pending_requests = 1_000_000;
        // ccrd's timers run on its wall clock: scale them with the replay.
        config.router = live::scaled(&s.ccrd.router, speed);
        let daemon = ccr_daemon::loopback::Loopback::start(config, None, true).await?;
        println!(
            "ccrd listening on {} (built-in configuration); replaying a bank's day at {speed}× speed",
            daemon.addr
        );
        let metrics = daemon.metrics_addr.context("the demo's ccrd serves metrics")?;
        let before = ccr_loadgen::scrape::scrape(metrics)?;
        let target = live::Target {
            addrs: vec![daemon.addr],
            server_name: "localhost".into(),
            roots: vec![daemon.cert.clone()],
            gateway_identity: None,
            agent_identity: None,
        };
        let stop = Some(stop_on_ctrl_c());
        let options =
            live::LiveOptions { speed, duration: None, progress: true, skip_quiet_start: true, stop, skip_idle: true };
        let live = live::run(&s, &target, &options).await;
        let decisions = ccr_loadgen::scrape::scrape(metrics).map(|after| after.since(&before));
        daemon.stop().await?;
        println!("ccrd stopped");
        anyhow::Ok((live?, decisions.ok()))
    });
    drop(runtime);
    let (live, decisions) = result?;
    print_live(&s, &live, decisions.as_ref(), &Outputs::default())?;
    println!(
        "\nAt {speed}× speed every millisecond of real latency is {:.1} s of the customers' wait: the live figures \
         show the daemon working, not the day the scenario describes. `ccr-loadgen simulate` shows that day.",
        speed / 1000.0
    );
    judge(&live, 0.1)
}

fn erlang(
    calls_per_hour: f64,
    aht: std::time::Duration,
    agents: u32,
    threshold: std::time::Duration,
    patience: Option<std::time::Duration>,
) -> anyhow::Result<()> {
    let (rate, aht_s, t) = (calls_per_hour / 3600.0, aht.as_secs_f64(), threshold.as_secs_f64());
    let (model, f) = match patience {
        Some(p) => ("Erlang A (M/M/c+M)", ccr_loadgen::erlang::erlang_a(rate, aht_s, agents, p.as_secs_f64(), t)),
        None => match ccr_loadgen::erlang::erlang_c(rate, aht_s, agents, t) {
            Some(f) => ("Erlang C (M/M/c)", f),
            None => bail!("{:.1} Erlangs offered to {agents} agents: the queue grows without bound", rate * aht_s),
        },
    };
    println!("{model}: {:.1} Erlangs offered to {agents} agents", rate * aht_s);
    println!("  P(wait)        {:.4}", f.p_wait);
    println!("  ASA            {:.2} s", f.asa);
    println!("  service level  {:.4} within {}", f.service_level, humantime::format_duration(threshold));
    println!("  abandoned      {:.4}", f.p_abandon);
    Ok(())
}

fn apply_policy(s: &mut Scenario, names: &str) -> anyhow::Result<()> {
    for name in names.split('+') {
        apply_one_policy(s, name)?;
    }
    Ok(())
}

fn apply_one_policy(s: &mut Scenario, name: &str) -> anyhow::Result<()> {
    let contact = match name {
        "strict_tier" => Some(ContactPolicy::StrictTier),
        "tier_aging" => Some(ContactPolicy::TierAging),
        "earliest_deadline" => Some(ContactPolicy::EarliestDeadline),
        _ => None,
    };
    let agent = match name {
        "longest_idle" => Some(AgentPolicy::LongestIdle),
        "most_proficient" => Some(AgentPolicy::MostProficient),
        "least_occupied" => Some(AgentPolicy::LeastOccupied),
        _ => None,
    };
    if contact.is_none() && agent.is_none() {
        bail!("--policy {name:?}: strict_tier, tier_aging, earliest_deadline, longest_idle, most_proficient or least_occupied");
    }
    for q in &mut s.ccrd.router.queues {
        if let Some(c) = contact {
            q.contact_policy = c;
        }
        if let Some(a) = agent {
            q.agent_policy = a;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    /// Every flag and argument of every subcommand says in `--help` what it is.
    #[test]
    fn every_flag_has_help_text() {
        let missing = ccr_daemon::cli::undocumented_flags(&<super::Args as clap::CommandFactory>::command());
        assert!(missing.is_empty(), "flags without help: {missing:#?}");
    }

    #[test]
    fn a_speed_is_a_number_above_zero() {
        assert_eq!(super::speed("60"), Ok(60.0));
        assert_eq!(super::speed("0.5"), Ok(0.5));
        for wrong in ["0", "-1", "inf", "NaN", "fast", ""] {
            assert!(super::speed(wrong).is_err(), "{wrong}");
        }
    }
}
