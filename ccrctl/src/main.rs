//! ccrctl: what an operator or a supervisor does with a running ccrd from a
//! shell — its status, queues, agents and waiting contacts, why a contact
//! still waits, and the supervisor's actions. Tables for people, `-o json`
//! for scripts, and an exit code that says what happened (ccrctl/README.md).

mod commands;
mod table;
mod target;
mod watch;

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

/// How a command ended, as its exit code says.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// ccrd refused the request as malformed (InvalidArgument): 2.
    #[error("{0}")]
    Invalid(String),
    /// No such agent, contact, queue, tier or skill (NotFound): 3.
    #[error("{0}")]
    NotFound(String),
    /// Not allowed for this identity (PermissionDenied, Unauthenticated): 4.
    #[error("{0}")]
    Denied(String),
    /// Refused in the present state: an agent on a call, a limit: 5.
    #[error("{0}")]
    Refused(String),
    /// ccrd cannot be reached, is stopping, or is a standby: 6.
    #[error("{0}")]
    Unavailable(String),
}

impl Failure {
    fn exit_code(&self) -> u8 {
        match self {
            Failure::Invalid(_) => 2,
            Failure::NotFound(_) => 3,
            Failure::Denied(_) => 4,
            Failure::Refused(_) => 5,
            Failure::Unavailable(_) => 6,
        }
    }

    /// The failure a status from ccrd means.
    pub fn of(status: &ccr_proto::v1::Status) -> Failure {
        use ccr_proto::wire::Code;
        let message = status.message.clone();
        match status.code() {
            Code::InvalidArgument | Code::OutOfRange => Failure::Invalid(message),
            Code::NotFound => Failure::NotFound(message),
            Code::PermissionDenied | Code::Unauthenticated => Failure::Denied(message),
            Code::Unavailable | Code::Cancelled | Code::DeadlineExceeded => Failure::Unavailable(message),
            _ => Failure::Refused(format!("{message} ({:?})", status.code())),
        }
    }
}

#[derive(Parser)]
#[command(name = "ccrctl", version, about = "Operate and supervise a running ccrd")]
struct Args {
    #[command(flatten)]
    target: target::TargetArgs,
    /// table for people, json for scripts.
    #[arg(short, long, value_enum, default_value_t = Output::Table, global = true)]
    output: Output,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Table,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Version, uptime, journal health, role, contacts waiting, agents by state, refusals.
    Status,
    /// Per queue and tier: waiting, oldest wait, service level against its target, answered, abandoned.
    Queues,
    /// Agents logged in: state and reason, time in state, contacts in hand, skills and languages.
    Agents {
        /// Only agents who can serve a contact waiting in this queue now.
        #[arg(long)]
        queue: Option<String>,
        /// available, reserved, busy, wrap_up or not_ready.
        #[arg(long)]
        state: Option<String>,
        /// Only agents holding this skill.
        #[arg(long)]
        skill: Option<String>,
        /// id, state or time (longest in state first).
        #[arg(long, value_enum, default_value_t = commands::AgentOrder::Id)]
        sort: commands::AgentOrder,
        /// At most this many rows (0: all).
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Waiting contacts in the order they will be served, per queue.
    Contacts {
        /// One queue; default every queue.
        #[arg(long)]
        queue: Option<String>,
        /// At most this many rows per queue (0: all).
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// One contact and why it is still waiting; or a supervisor's action on it.
    Contact {
        /// The contact's id (the gateway's).
        id: u64,
        #[command(subcommand)]
        action: Option<commands::ContactAction>,
    },
    /// A supervisor's action on an agent.
    Agent {
        /// The agent's id.
        id: u64,
        #[command(subcommand)]
        action: commands::AgentAction,
    },
    /// A live full-screen view of the status, the queues and the agents
    /// longest in their state, like top; q quits.
    Watch {
        /// How often it refreshes.
        #[arg(long, default_value = "1s")]
        interval: humantime::Duration,
    },
    /// Re-read ccrd's configuration file and apply its routing part.
    Reload,
    /// Log every agent out (ringing offers re-routed, connected contacts ended).
    Drain {
        /// Required: a drain ends every agent's calls.
        #[arg(long)]
        yes: bool,
    },
}

fn main() -> ExitCode {
    // Output piped into `head` and the like: the closed pipe ends the
    // program quietly, as it does any Unix tool, instead of a panic in
    // `println!`. (Sockets are unaffected: std writes them with MSG_NOSIGNAL.)
    // SAFETY: at the start of main, before any thread; SIG_DFL is a valid
    // disposition for SIGPIPE.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ccrctl: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ccrctl: {e:#}");
            ExitCode::from(e.downcast_ref::<Failure>().map_or(1, Failure::exit_code))
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    if let Command::Drain { yes: false } = args.command {
        return Err(Failure::Invalid("drain logs every agent out and ends their calls: add --yes".into()).into());
    }
    let target = args.target.resolve()?;
    let client = target::connect(&target).await?;
    let out = args.output;
    let result = execute(&client, &target, args.command, out).await;
    client.close_and_wait().await;
    print!("{}", result?);
    Ok(())
}

async fn execute(
    client: &ccr_proto::client::Client,
    target: &target::Target,
    command: Command,
    out: Output,
) -> anyhow::Result<String> {
    Ok(match command {
        Command::Status => commands::status(client, target, out).await?,
        Command::Queues => commands::queues(client, out).await?,
        Command::Agents { queue, state, skill, sort, limit } => {
            commands::agents(client, queue, state, skill, sort, limit, out).await?
        }
        Command::Contacts { queue, limit } => commands::contacts(client, queue, limit, out).await?,
        Command::Contact { id, action: None } => commands::contact(client, id, out).await?,
        Command::Contact { id, action: Some(action) } => commands::supervise_contact(client, id, action, out).await?,
        Command::Agent { id, action } => commands::supervise_agent(client, id, action, out).await?,
        Command::Reload => commands::reload(client, out).await?,
        Command::Watch { interval } => watch::watch(client, target, interval.into()).await?,
        Command::Drain { .. } => commands::drain(client, out).await?,
    })
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
