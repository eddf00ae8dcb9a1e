//! ccrd: the contact-centre routing daemon. Parses flags, sets up logging,
//! binds, and hands over to `ccr_daemon::server::run`.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{bail, Context};
use ccr_daemon::{config, server, tls};
use clap::{Parser, Subcommand};

/// mimalloc: the routing core allocates and frees small B-tree nodes and
/// records on every decision, which it serves faster than the system
/// allocator (docs/PERFORMANCE.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "ccrd", version, about = "Contact-centre routing daemon (QUIC, ALPN ccr/1)")]
struct Args {
    /// Configuration file (TOML); without it, the built-in example configuration.
    #[arg(long)]
    config: Option<PathBuf>,
    /// QUIC listen address (overrides the file).
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Prometheus metrics address (overrides the file).
    #[arg(long)]
    metrics_listen: Option<SocketAddr>,
    /// Data directory: certificates, journal (overrides the file).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// text for people (coloured on a terminal only), or json: one object
    /// per line, for log shippers.
    #[arg(long, value_enum, env = "CCRD_LOG_FORMAT", default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Option<Cmd>,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Cmd {
    /// Validate a configuration file and print every problem with its line.
    CheckConfig {
        /// The configuration file (TOML).
        file: PathBuf,
    },
    /// Look into a journal.
    Journal {
        #[command(subcommand)]
        action: JournalCmd,
    },
}

#[derive(Subcommand)]
enum JournalCmd {
    /// Print what the journal and snapshots hold (counts, sequence numbers,
    /// time span, damage), changing nothing. DIR is the data directory or its
    /// `journal` folder.
    Inspect {
        /// The data directory, or its `journal` folder.
        dir: PathBuf,
    },
}

fn load(path: Option<&PathBuf>) -> anyhow::Result<config::Config> {
    let (text, name) = match path {
        Some(p) => {
            (std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?, p.display().to_string())
        }
        None => (config::DEFAULT_CONFIG.to_owned(), "built-in configuration".to_owned()),
    };
    let config = config::parse(&text).map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
    let problems = tls::check(&config.tls);
    if !problems.is_empty() {
        bail!("{name}: {}", config::ConfigError(problems));
    }
    Ok(config)
}

/// Errors are printed as their chain of causes, never with a backtrace
/// (whatever `RUST_BACKTRACE` says: a bad configuration is the operator's
/// to fix, not a bug).
fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ccrd: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    let args = Args::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let logs = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match args.log_format {
        LogFormat::Json => logs.json().flatten_event(true).with_current_span(false).init(),
        LogFormat::Text => logs.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())).init(),
    }
    if let Err(e) = ccr_daemon::host::opt_out_of_transparent_huge_pages() {
        tracing::warn!("could not opt out of transparent huge pages ({e}): expect rare stalls of a few ms");
    }
    ccr_daemon::host::keep_freed_memory();
    if let Some(Cmd::CheckConfig { file }) = &args.command {
        return match load(Some(file)) {
            Ok(c) => {
                println!("{}: ok ({} queues, {} tiers)", file.display(), c.router.queues.len(), c.router.tiers.len());
                Ok(())
            }
            Err(e) => bail!("{e}"),
        };
    }
    if let Some(Cmd::Journal { action: JournalCmd::Inspect { dir } }) = &args.command {
        let journal = ccr_daemon::journal::dir_in(dir);
        let dir = if journal.is_dir() { journal } else { dir.clone() };
        let inspection = ccr_daemon::journal::inspect::inspect(&dir)?;
        print!("{}", inspection.text);
        if !inspection.damage.is_empty() {
            bail!("the journal is damaged: {}", inspection.damage.join("; "));
        }
        return Ok(());
    }
    let mut config = load(args.config.as_ref())?;
    config.server.config_path = args.config.clone();
    if let Some(listen) = args.listen {
        config.server.listen = listen;
    }
    if let Some(metrics) = args.metrics_listen {
        config.server.metrics_listen = metrics;
    }
    if let Some(dir) = args.data_dir {
        config.server.data_dir = dir;
    }
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        quic = %config.server.listen,
        metrics = %config.server.metrics_listen,
        data_dir = %config.server.data_dir.display(),
        config = %args.config.as_ref().map_or("(built-in example)".to_owned(), |p| p.display().to_string()),
        "ccrd starting"
    );
    let identity = match (&config.tls.cert, &config.tls.key) {
        (Some(cert), Some(key)) => tls::configured(cert, key)?,
        _ => tls::self_signed(&config.server.data_dir)?,
    };
    tracing::info!(cert = %identity.cert_path.display(), "server certificate");
    let client_ca = config.tls.client_ca.as_deref().map(tls::client_ca).transpose()?;
    if client_ca.is_some() {
        tracing::info!("client certificates required; roles from their OU");
    }
    let server_config =
        tls::server_config(identity, client_ca, config.server.max_streams_per_connection, config.server.idle_timeout)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        let signals = signals()?;
        let endpoint = quinn::Endpoint::server(server_config, config.server.listen)
            .with_context(|| format!("binding {}", config.server.listen))?;
        loop {
            match server::run(endpoint.clone(), config.clone(), signals.control()).await {
                // A cluster's active that lost its leadership starts again
                // as a standby, from its snapshot and the journal in etcd,
                // on the same endpoint (its connections were closed).
                Err(server::ServerError::Demoted(why)) => {
                    tracing::warn!(%why, "demoted: starting again as a standby");
                }
                outcome => return outcome.map_err(anyhow::Error::from),
            }
        }
    })
}

/// SIGINT or SIGTERM stop ccrd (nobody is logged out); SIGHUP reloads the
/// configuration file. Installed before anything is served, so that no
/// signal finds its default action (which for SIGHUP is to die).
struct Signals {
    stop: tokio::sync::watch::Receiver<bool>,
    hangups: tokio::sync::watch::Receiver<u64>,
}

fn signals() -> anyhow::Result<Signals> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let mut hup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
    let (hangup, hangups) = tokio::sync::watch::channel(0u64);
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading the configuration");
            hangup.send_modify(|n| *n += 1);
        }
    });
    let (stopped, stop) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: stopping"),
            _ = int.recv() => tracing::info!("SIGINT: stopping"),
        }
        let _ = stopped.send(true);
    });
    Ok(Signals { stop, hangups })
}

impl Signals {
    /// What one run of the server is stopped and reloaded by.
    fn control(&self) -> server::Control {
        let mut stop = self.stop.clone();
        let shutdown = Box::pin(async move {
            let _ = stop.wait_for(|&stop| stop).await;
        });
        let (reload, reloads) = tokio::sync::mpsc::unbounded_channel();
        let mut hangups = self.hangups.clone();
        hangups.mark_unchanged();
        tokio::spawn(async move {
            while hangups.changed().await.is_ok() {
                if reload.send(()).is_err() {
                    return;
                }
            }
        });
        server::Control { shutdown, reload: reloads, time: server::TimeSource::System }
    }
}

#[cfg(test)]
mod tests {
    /// Every flag and argument of every subcommand says in `--help` what it is.
    #[test]
    fn every_flag_has_help_text() {
        let missing = ccr_daemon::cli::undocumented_flags(&<super::Args as clap::CommandFactory>::command());
        assert!(missing.is_empty(), "flags without help: {missing:#?}");
    }
}
