//! Certificates as an operator makes them: `deploy/CERTIFICATES.md`'s
//! OpenSSL recipes, run as they stand, give files (PEM) that ccrd and the
//! Rust client accept for every role; each refused handshake is logged with
//! its reason and counted; `check-config` reads the files a start would.

mod child;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use ccr_proto::client::Client;
use ccr_proto::pki;
use ccr_proto::v1::*;
use ccr_proto::wire::Code;
use child::Daemon;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use tokio::time::{sleep, timeout, Instant};

const CONFIG: &str = r#"
skills = ["billing"]
languages = ["en"]
[[queues]]
name = "sales"
[tls]
cert = "server.pem"
key = "server.key"
client_ca = "ca.pem"
"#;

fn test_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ccrd-certs-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The `sh` blocks of `deploy/CERTIFICATES.md` that run `openssl`, in order.
fn recipe() -> String {
    let doc = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/CERTIFICATES.md")).unwrap();
    let mut script = String::from("set -eu\n");
    let mut blocks = doc.split("```sh\n").skip(1);
    for block in &mut blocks {
        let body = block.split("```").next().unwrap();
        if body.contains("openssl req") {
            script.push_str(body);
        }
    }
    script
}

/// `config` with its `[tls]` files in `dir`.
fn in_dir(config: &str, dir: &Path) -> String {
    let (head, tls) = config.split_once("[tls]").unwrap();
    format!("{head}[tls]{}", tls.replace("= \"", &format!("= \"{}/", dir.display())))
}

/// ccrd with [`CONFIG`] in `dir` (whose files the recipe made), on a free
/// loopback port; the client CA's PEM as the roots to trust.
async fn start(dir: &Path) -> (Daemon, SocketAddr, Vec<Vec<u8>>) {
    std::fs::write(dir.join("ccrd.toml"), in_dir(CONFIG, dir)).unwrap();
    let addr = std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let log = dir.join("ccrd.log");
    let daemon = Daemon::spawn(child::command(dir, addr, &log), log);
    let roots = pki::certificates(&dir.join("ca.pem")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !daemon.log().contains("ccrd listening") {
        assert!(Instant::now() < deadline, "ccrd did not start:\n{}", daemon.log());
        sleep(Duration::from_millis(50)).await;
    }
    (daemon, addr, roots)
}

async fn connect_as(addr: SocketAddr, roots: &[Vec<u8>], dir: &Path, role: &str) -> Client {
    let identity = pki::identity(&dir.join(format!("{role}.pem")), &dir.join(format!("{role}.key"))).unwrap();
    timeout(Duration::from_secs(5), Client::connect_with_identity(addr, "localhost", roots, Some(identity)))
        .await
        .expect("connects in time")
        .unwrap_or_else(|e| panic!("{role} connects: {e}"))
}

/// The recipes make a CA, a server certificate that is not a CA, and
/// X.509 v3 role certificates; ccrd starts on the PEM files, and each role
/// does what it may and is denied the rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_documented_openssl_recipe_gives_certificates_every_role_connects_with() {
    let dir = test_dir("recipe");
    let made = Command::new("bash").arg("-c").arg(recipe()).current_dir(&dir).output().expect("bash and openssl");
    assert!(made.status.success(), "the recipe runs: {}", String::from_utf8_lossy(&made.stderr));
    let (daemon, addr, roots) = start(&dir).await;
    let check =
        Command::new(env!("CARGO_BIN_EXE_ccrd")).arg("check-config").arg(dir.join("ccrd.toml")).output().unwrap();
    assert!(check.status.success(), "check-config accepts the files: {}", String::from_utf8_lossy(&check.stderr));

    let gateway = connect_as(addr, &roots, &dir, "gateway").await;
    let contact = EnqueueRequest {
        contact_id: 1,
        channel: Channel::Voice as i32,
        queue: "sales".into(),
        skills: vec![SkillRequirement { skill: "billing".into(), min_proficiency: 1 }],
        ..Default::default()
    };
    gateway.enqueue(contact).await.expect("the gateway enqueues");
    let denied = gateway.health(HealthRequest {}).await.unwrap_err();
    assert_eq!(denied.code, Code::PermissionDenied as i32);

    let agent = connect_as(addr, &roots, &dir, "agent").await;
    let login = LoginRequest { agent_id: 7, voice_capacity: 1, ..Default::default() };
    agent.login(login).await.expect("the agent logs in");

    let admin = connect_as(addr, &roots, &dir, "admin").await;
    let health = admin.health(HealthRequest {}).await.expect("the admin sees health");
    assert_eq!(health.waiting, 1);
    let ready = SuperviseAgentRequest { agent_id: 7, action: "ready".into(), ..Default::default() };
    admin.supervise_agent(ready.clone()).await.expect("the admin acts");

    let supervisor = connect_as(addr, &roots, &dir, "supervisor").await;
    supervisor.queues(QueuesRequest {}).await.expect("the supervisor sees the queues");
    let denied = supervisor.supervise_agent(ready).await.unwrap_err();
    assert_eq!(denied.code, Code::PermissionDenied as i32, "and acts on nothing");
    drop(daemon);
    let _ = std::fs::remove_dir_all(&dir);
}

struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

fn ca(name: &str) -> Ca {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    let cert = params.self_signed(&key).unwrap();
    Ca { pem: cert.pem(), issuer: Issuer::new(params, key) }
}

/// A leaf from `ca` with `ou` (none: no OU), `expired` or not; written as
/// `name.pem` and `name.key` in `dir`.
fn leaf(ca: &Ca, dir: &Path, name: &str, names: &[&str], ou: Option<&str>, expired: bool) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    if let Some(ou) = ou {
        params.distinguished_name.push(DnType::OrganizationalUnitName, ou);
    }
    if expired {
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2021, 1, 1);
    }
    let cert = params.signed_by(&key, &ca.issuer).unwrap();
    std::fs::write(dir.join(format!("{name}.pem")), cert.pem()).unwrap();
    std::fs::write(dir.join(format!("{name}.key")), key.serialize_pem()).unwrap();
}

/// `GET /metrics` from the address ccrd logged.
fn metrics(log: &str) -> String {
    let line = log.lines().find(|l| l.contains("metrics listening")).expect("the metrics address is logged");
    let addr = line.split("metrics=").nth(1).unwrap().split_whitespace().next().unwrap();
    child::http_get(addr.parse().unwrap(), "/metrics").expect("ccrd serves /metrics")
}

/// No certificate, one from another CA, an expired one, one without a
/// role, and a client that does not trust ccrd's certificate: each is
/// refused, logged with its reason, and counted by reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_refused_handshake_is_logged_and_counted_with_its_reason() {
    let dir = test_dir("refusals");
    let (ours, theirs) = (ca("ccr CA"), ca("another CA"));
    std::fs::write(dir.join("ca.pem"), &ours.pem).unwrap();
    leaf(&ours, &dir, "server", &["localhost"], None, false);
    leaf(&ours, &dir, "expired", &[], Some("gateway"), true);
    leaf(&ours, &dir, "nobody", &[], Some("marketing"), false);
    leaf(&theirs, &dir, "stranger", &[], Some("gateway"), false);
    leaf(&ours, &dir, "gateway", &[], Some("gateway"), false);
    let (daemon, addr, roots) = start(&dir).await;

    let attempt = |identity: Option<&str>, roots: Vec<Vec<u8>>| {
        let identity = identity.map(|n| pki::identity(&dir.join(format!("{n}.pem")), &dir.join(format!("{n}.key"))));
        async move {
            let connected = timeout(
                Duration::from_secs(5),
                Client::connect_with_identity(addr, "localhost", &roots, identity.map(Result::unwrap)),
            )
            .await
            .expect("the handshake ends in time");
            // TLS 1.3: a client learns of a refusal of its certificate at
            // its first call; what it is told is returned.
            match connected {
                Ok(client) => client.health(HealthRequest {}).await.err().map(|s| s.message),
                Err(e) => Some(e.to_string()),
            }
        }
    };
    let told = attempt(None, roots.clone()).await.expect("no certificate: refused");
    assert!(told.contains("ccrd requires a client certificate"), "the client is told why: {told}");
    let told = attempt(Some("stranger"), roots.clone()).await.expect("another CA's: refused");
    assert!(told.contains("does not trust the CA"), "{told}");
    let told = attempt(Some("expired"), roots.clone()).await.expect("an expired one: refused");
    assert!(told.contains("expired"), "{told}");
    let told = attempt(Some("nobody"), roots.clone()).await.expect("no role: refused");
    assert!(told.contains("no role"), "{told}");
    let other_roots = pki::certificates(&{
        std::fs::write(dir.join("their-ca.pem"), &theirs.pem).unwrap();
        dir.join("their-ca.pem")
    })
    .unwrap();
    assert!(attempt(Some("gateway"), other_roots).await.is_some(), "ccrd's certificate not trusted");

    let deadline = Instant::now() + Duration::from_secs(5);
    let wanted = [
        "the client presented no certificate",
        "the client's certificate was not issued by tls.client_ca",
        "the client's certificate has expired",
        "client certificate has no role",
        "a client refused ccrd's certificate",
    ];
    loop {
        let log = daemon.log();
        let missing: Vec<_> = wanted.iter().filter(|w| !log.contains(*w)).collect();
        if missing.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "not logged: {missing:?}\n{log}");
        sleep(Duration::from_millis(50)).await;
    }
    let page = metrics(&daemon.log());
    for reason in ["no_certificate", "unknown_ca", "certificate_expired", "no_role"] {
        let line = format!("ccr_refused_total{{reason=\"{reason}\"}} 1");
        assert!(
            page.contains(&line),
            "{line} in\n{}",
            page.lines().filter(|l| l.contains("refused")).collect::<Vec<_>>().join("\n")
        );
    }
    drop(daemon);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `ccrd check-config` on `[tls]` files: each problem with its field and
/// the line that names the file, and exit 1.
#[test]
fn check_config_names_missing_and_mismatched_certificate_files() {
    let dir = test_dir("check");
    let ours = ca("ccr CA");
    leaf(&ours, &dir, "server", &["localhost"], None, false);
    leaf(&ours, &dir, "other", &["localhost"], None, false);
    let check = |config: &str| {
        std::fs::write(dir.join("ccrd.toml"), in_dir(config, &dir)).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_ccrd")).arg("check-config").arg(dir.join("ccrd.toml")).output();
        let out = out.unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    // ca.pem is missing, and the key is another certificate's.
    let (code, stderr) = check(&CONFIG.replace("server.key", "other.key"));
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("2 problem(s)"), "{stderr}");
    assert!(stderr.contains("line 9: tls.client_ca:") && stderr.contains("ca.pem: No such file"), "{stderr}");
    assert!(stderr.contains("line 8: tls.key: is not the key of tls.cert"), "{stderr}");
    // A key file that holds no key.
    std::fs::write(dir.join("ca.pem"), &ours.pem).unwrap();
    let (code, stderr) = check(&CONFIG.replace("server.key", "server.pem"));
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("line 8: tls.key:") && stderr.contains("not a PEM private key"), "{stderr}");
    let (code, stderr) = check(CONFIG);
    assert_eq!(code, Some(0), "the right files pass: {stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}
