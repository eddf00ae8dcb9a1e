//! `ccr-loadgen run` as a user runs it, against a ccrd in this process on a
//! loopback port: with a gateway and an agent certificate of their own
//! roles, progress lines on a pipe, a zero exit for a run that did what
//! was asked; a non-zero exit and a report for one that did not (ccrd gone
//! mid-run, Ctrl-C). And `scaled-config`, checked against the scaling the
//! tests use.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use ccr_daemon::loopback::Loopback;
use ccr_loadgen::live;
use ccr_loadgen::scenario;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

const SPEED: f64 = 900.0;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn test_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ccr-loadgen-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A CA (written as `ca.pem`) and, from it, a `gateway` and an `agent`
/// certificate with their keys, PEM, in `dir`.
fn issue_certificates(dir: &Path) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, "test CA");
    let ca = params.self_signed(&key).unwrap();
    std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
    let issuer = Issuer::new(params, key);
    for role in ["gateway", "agent"] {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, format!("{role}-01"));
        params.distinguished_name.push(DnType::OrganizationalUnitName, role);
        let cert = params.signed_by(&key, &issuer).unwrap();
        std::fs::write(dir.join(format!("{role}.pem")), cert.pem()).unwrap();
        std::fs::write(dir.join(format!("{role}.key")), key.serialize_pem()).unwrap();
    }
    vec![ca.der().clone()]
}

/// A ccrd for the bank's day at [`SPEED`], requiring client certificates
/// from `client_ca` when given.
async fn daemon(dir: &Path, client_ca: Option<Vec<rustls::pki_types::CertificateDer<'static>>>) -> Loopback {
    let s = scenario::load(&root().join("scenarios/bank-day-trace.toml")).unwrap();
    let mut config = s.ccrd.clone();
    config.server.data_dir = dir.join("data");
    config.journal.options.fsync = ccr_daemon::journal::FsyncPolicy::Never;
    config.router = live::scaled(&s.ccrd.router, SPEED);
    if client_ca.is_some() {
        config.tls.client_ca = Some(dir.join("ca.pem"));
    }
    Loopback::start(config, client_ca, false).await.unwrap()
}

/// `ccr-loadgen run` of the bank's day from 08:00 for `minutes` of scenario
/// time against `daemon`, with `extra` arguments; stdout and stderr piped.
fn run_command(daemon: &Loopback, dir: &Path, minutes: u64, extra: &[&str]) -> Command {
    std::fs::write(dir.join("cert.der"), &daemon.cert).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_ccr-loadgen"));
    command
        .arg("run")
        .arg(root().join("scenarios/bank-day-trace.toml"))
        .args(["--addr", &daemon.addr.to_string(), "--speed", &SPEED.to_string()])
        .args(["--duration", &format!("{minutes}m")])
        .arg("--cert")
        .arg(dir.join("cert.der"))
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

fn text(output: &Output) -> (String, String) {
    (String::from_utf8_lossy(&output.stdout).into_owned(), String::from_utf8_lossy(&output.stderr).into_owned())
}

/// With roles on, the gateway and the desktops connect with their own
/// certificates (PEM); the run routes its contacts, prints a progress
/// line every few seconds on a pipe, and exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_with_a_gateway_and_an_agent_identity_succeeds_and_shows_progress_on_a_pipe() {
    let dir = test_dir("identities");
    let ca = issue_certificates(&dir);
    let daemon = daemon(&dir, Some(ca)).await;
    let pem = |name: &str| dir.join(name).display().to_string();
    let identities = [
        "--gateway-cert",
        &pem("gateway.pem"),
        "--gateway-key",
        &pem("gateway.key"),
        "--agent-cert",
        &pem("agent.pem"),
        "--agent-key",
        &pem("agent.key"),
    ];
    // 95 scenario minutes at 900×: about 6.3 s of sending.
    let command = run_command(&daemon, &dir, 95, &identities);
    let output = tokio::task::spawn_blocking(move || { command }.output()).await.unwrap().unwrap();
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "exit 0:\n{stdout}\n{stderr}");
    assert!(stdout.contains("== live:") && stdout.contains("arriving 08:"), "the header names the span:\n{stdout}");
    assert!(stdout.contains("0 errors, 0 unanswered"), "{stdout}");
    assert!(stdout.contains("includes the wait in queue"), "the latency says what it measures:\n{stdout}");
    assert!(!stdout.contains("routing inputs"), "no simulator-only line:\n{stdout}");
    assert!(!stdout.contains("wait estimate at arrival"), "no empty estimate table:\n{stdout}");
    assert!(stdout.contains("SL: answered within the queue's threshold (billing 20s"), "thresholds:\n{stdout}");
    let progress = stderr.lines().filter(|l| l.contains(" sent, ") && l.contains("ETA")).count();
    assert!(progress >= 1, "a progress line on a pipe:\n{stderr}");
    daemon.stop().await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

/// ccrd stopped in the middle of a run: the report says what was lost and
/// the exit is non-zero.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_whose_daemon_goes_away_fails_loudly() {
    let dir = test_dir("gone");
    let daemon = daemon(&dir, None).await;
    let child = run_command(&daemon, &dir, 120, &[]).spawn().unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    daemon.stop().await.unwrap();
    let output = tokio::task::spawn_blocking(move || child.wait_with_output()).await.unwrap().unwrap();
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(1), "a failed run:\n{stdout}\n{stderr}");
    assert!(stderr.contains("the run failed:"), "says why:\n{stderr}");
    assert!(stdout.contains("== live:"), "the report is printed first:\n{stdout}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Ctrl-C (SIGINT) stops the run: the partial report is printed, marked
/// interrupted, and the exit is non-zero.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_prints_the_partial_report() {
    let dir = test_dir("interrupt");
    let daemon = daemon(&dir, None).await;
    let child = run_command(&daemon, &dir, 240, &[]).spawn().unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let interrupted = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(interrupted.success());
    let output = tokio::task::spawn_blocking(move || child.wait_with_output()).await.unwrap().unwrap();
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stdout.contains("(interrupted)"), "the report says so:\n{stdout}");
    assert!(stdout.contains("queue") && stdout.contains("billing"), "and holds the table:\n{stdout}");
    assert!(stderr.contains("interrupted before the end"), "{stderr}");
    daemon.stop().await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

/// `scaled-config` writes a ccrd configuration whose routing is exactly
/// the scaling the live tests apply in process, defaults included.
#[test]
fn scaled_config_is_the_scenarios_routing_with_every_timer_divided_by_the_speed() {
    for (scenario, speed) in [("scenarios/bank-day.toml", 60.0), ("scenarios/erlang-c.toml", 1440.0)] {
        let output = Command::new(env!("CARGO_BIN_EXE_ccr-loadgen"))
            .arg("scaled-config")
            .arg(root().join(scenario))
            .args(["--speed", &speed.to_string()])
            .output()
            .unwrap();
        let (stdout, stderr) = text(&output);
        assert!(output.status.success(), "{stderr}");
        let written = ccr_daemon::config::parse(&stdout).unwrap_or_else(|e| panic!("{e}\n{stdout}"));
        let s = scenario::load(&root().join(scenario)).unwrap();
        assert_eq!(written.router, live::scaled(&s.ccrd.router, speed), "{scenario}");
        assert_eq!(written.catalog.queues, s.ccrd.catalog.queues);
    }
}

/// `ccr-loadgen simulate … | head -1`: the closed pipe ends the program as
/// it does any Unix tool (SIGPIPE), without a panic.
#[test]
fn a_closed_pipe_ends_the_output_quietly() {
    use std::io::{BufRead, BufReader};
    use std::os::unix::process::ExitStatusExt;
    let mut child = Command::new(env!("CARGO_BIN_EXE_ccr-loadgen"))
        .arg("simulate")
        .arg(root().join("scenarios/bank-day.toml"))
        .args(["--interval", "20s"]) // some 190 KB: more than a pipe holds
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
    assert!(first.starts_with("=="), "{first}");
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(output.status.success() || output.status.signal() == Some(libc::SIGPIPE), "{:?}", output.status);
}
