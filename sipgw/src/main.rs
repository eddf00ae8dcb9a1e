//! ccr-sipgw: puts ccrd in front of SIP phones through Kamailio. Parses
//! flags, sets up logging, and hands over to `ccr_sipgw::run`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "ccr-sipgw", version, about = "SIP calls through Kamailio's evapi, routed by ccrd")]
struct Args {
    /// Configuration file (TOML; deploy/sipgw.example.toml has every option).
    #[arg(long, default_value = "/etc/ccr-sipgw/sipgw.toml")]
    config: PathBuf,
    #[command(subcommand)]
    command: Option<Cmd>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Validate a configuration file and print every problem with its line.
    CheckConfig {
        /// The configuration file (TOML).
        file: PathBuf,
    },
}

/// Errors are printed as their chain of causes, never with a backtrace.
fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ccr-sipgw: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(Cmd::CheckConfig { file }) = args.command {
        let config = ccr_sipgw::config::load(&file)?;
        println!(
            "{}: ok ({} numbers, {} agents)",
            file.display(),
            config.routing.numbers.len(),
            config.routing.agents.len()
        );
        return Ok(());
    }
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    let config = ccr_sipgw::config::load(&args.config)?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        tracing::info!(config = %args.config.display(), evapi = %config.evapi, "ccr-sipgw starting");
        ccr_sipgw::run::run(config, stopped()).await
    })
}

/// SIGTERM or SIGINT.
async fn stopped() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: stopping"),
        _ = int.recv() => tracing::info!("SIGINT: stopping"),
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
