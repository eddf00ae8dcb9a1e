//! SIP calls end to end: real Kamailio (deploy/kamailio/kamailio.cfg), a
//! ccrd, the ccr-sipgw binary, and pjsua2 phones (sipgw/tests/phones.py),
//! all on loopback. Kamailio is installed by scripts/install-kamailio.sh and
//! pjsua2 by scripts/install-pjsua2.sh (both run by .ci/run).
//!
//! One centre, one scenario in steps, each checked at both ends — what the
//! phones saw, and what ccrd says — so that a step's failure names itself.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ccr_daemon::loopback::Loopback;
use ccr_proto::client::Client;
use ccr_proto::v1::{self, routing_event::Event as Ev};
use serde_json::Value;

/// Every wait is bounded by this.
const WAIT: Duration = Duration::from_secs(20);

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A child process, stopped (SIGTERM, then SIGKILL) by its pid when dropped.
struct Process {
    name: &'static str,
    child: Child,
}

impl Process {
    fn spawn(name: &'static str, command: &mut Command) -> Process {
        let child = command.spawn().unwrap_or_else(|e| panic!("starting {name}: {e}"));
        Process { name, child }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let pid = self.child.id() as libc::pid_t;
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!("{} did not stop on SIGTERM: killed", self.name);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Phones processes (the callers', and one per agent's phone: a phone
/// refuses a request it already saw at another of its accounts, 482, so
/// agents' phones are separate user agents as in a real centre): commands
/// in, events out, all events in one stream.
struct Phones {
    sip: u16,
    processes: std::collections::HashMap<String, Process>,
    tx: mpsc::Sender<Value>,
    events: mpsc::Receiver<Value>,
    seen: Vec<Value>,
}

impl Phones {
    fn start(sip: u16) -> Phones {
        let (tx, events) = mpsc::channel();
        let mut phones = Phones { sip, processes: Default::default(), tx, events, seen: Vec::new() };
        phones.spawn("callers");
        phones
    }

    /// Starts a phones process named `name`.
    fn spawn(&mut self, name: &str) {
        let mut command = Command::new("python3");
        command
            .arg(repo().join("sipgw/tests/phones.py"))
            .arg("--registrar")
            .arg(format!("127.0.0.1:{}", self.sip))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        let mut process = Process::spawn("phones.py", &mut command);
        let stdout = process.child.stdout.take().unwrap();
        let tx = self.tx.clone();
        let who = name.to_owned();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                match serde_json::from_str::<Value>(&line) {
                    Ok(mut v) => {
                        v["process"] = Value::String(who.clone());
                        if tx.send(v).is_err() {
                            return;
                        }
                    }
                    Err(_) => eprintln!("phones: {line}"),
                }
            }
        });
        self.processes.insert(name.to_owned(), process);
        self.expect("the phones start", |e| e["ev"] == "ready" && e["process"] == name);
    }

    /// An agent's phone, registered, answering as `mode` says.
    fn agent(&mut self, user: &str, mode: &str) {
        self.spawn(user);
        self.send(user, &format!("agent {user} {mode}"));
    }

    /// Sets how `user`'s phone answers, once its process says it has: a
    /// call sent right after must find the new mode.
    fn mode(&mut self, user: &str, mode: &str) {
        self.send(user, &format!("mode {user} {mode}"));
        self.expect(&format!("{user}'s phone set to {mode}"), |e| e["ev"] == "mode" && e["user"] == user);
    }

    fn send(&mut self, process: &str, line: &str) {
        let stdin = self.processes.get_mut(process).unwrap().child.stdin.as_mut().unwrap();
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    /// The first event (already seen or to come) that `pred` takes; seen
    /// events stay for later expectations.
    fn expect(&mut self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        if let Some(i) = self.seen.iter().position(&pred) {
            return self.seen.remove(i);
        }
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(e) if pred(&e) => return e,
                Ok(e) => self.seen.push(e),
                Err(_) => panic!("phones: waited {WAIT:?} for {what}; saw {:#?}", self.seen),
            }
        }
    }

    /// Caller `tag`'s call reached state `state`.
    fn caller(&mut self, tag: &str, state: &str) -> Value {
        self.expect(&format!("caller {tag} {state}"), |e| e["ev"] == "caller" && e["tag"] == tag && e["state"] == state)
    }

    /// Which agent's phone rang for caller `tag`.
    fn rang(&mut self, tag: &str) -> String {
        let e =
            self.expect(&format!("an agent's phone ringing for {tag}"), |e| e["ev"] == "ringing" && e["caller"] == tag);
        e["user"].as_str().unwrap().to_owned()
    }
}

/// ccrd's events, as a test's own subscription sees them.
struct Ccrd {
    events: tokio::sync::mpsc::UnboundedReceiver<Ev>,
    seen: Vec<Ev>,
    /// contact id → SIP Call-ID, from the offers' context.
    call_ids: std::collections::HashMap<u64, String>,
}

impl Ccrd {
    async fn expect(&mut self, what: &str, pred: impl Fn(&Ev, &std::collections::HashMap<u64, String>) -> bool) -> Ev {
        if let Some(i) = self.seen.iter().position(|e| pred(e, &self.call_ids)) {
            return self.seen.remove(i);
        }
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let e = match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Some(e)) => e,
                _ => panic!("ccrd: waited {WAIT:?} for {what}; saw {:#?}", self.seen),
            };
            if let Ev::Offer(o) = &e {
                if let Some(c) = o.context.iter().find(|c| c.key == "sip_call_id") {
                    self.call_ids.insert(o.contact_id, c.value.clone());
                }
            }
            if pred(&e, &self.call_ids) {
                return e;
            }
            self.seen.push(e);
        }
    }

    /// ccrd connected the call with SIP Call-ID `call_id` to `agent`.
    async fn connected(&mut self, call_id: &str, agent: u64) {
        let what = format!("{call_id} connected to agent {agent}");
        self.expect(&what, |e, ids| {
            matches!(e, Ev::Connected(c) if c.agent_id == agent && ids.get(&c.contact_id).map(String::as_str) == Some(call_id))
        })
        .await;
    }
}

fn tool_missing(what: &str, install: &str) -> String {
    format!("{what} is not installed: run `bash scripts/{install}` (as .ci/run does)")
}

const CCRD_CONFIG: &str = r#"
skills = ["billing"]
languages = ["en", "fr"]

[journal]
fsync = "never"

[[tiers]]
name = "gold"
aging_boost = "60s"

[[tiers]]
name = "standard"

[[queues]]
name = "billing"
service_level = { target = 0.8, threshold = "20s" }
wrap_up = "1s"
offer_timeout = "3s"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sip_calls_reach_the_agent_ccrd_chooses_and_ccrd_follows_every_call() {
    tools_installed();
    let dir = tempfile::tempdir().unwrap();
    // ccrd, in this process.
    let mut config = ccr_daemon::config::parse(CCRD_CONFIG).unwrap();
    config.server.data_dir = dir.path().join("ccrd");
    let loopback = Loopback::start(config.clone(), None, false).await.unwrap();
    let ca = dir.path().join("ccrd.der");
    std::fs::write(&ca, &loopback.cert).unwrap();
    let (watcher, ccrd_events) = watch(&loopback).await;
    let centre = Centre { loopback, config, watcher, ccrd: ccrd_events };

    let (_kamailio, sip, evapi) = kamailio(dir.path(), &[]);
    // ccr-sipgw reaches evapi through a relay the test can take down.
    let relay = Relay::start(SocketAddr::from(([127, 0, 0, 1], evapi))).await;

    // ccr-sipgw.
    let metrics = free_tcp_port();
    let sipgw_config = dir.path().join("sipgw.toml");
    std::fs::write(
        &sipgw_config,
        format!(
            r#"
[ccrd]
addresses = ["{ccrd}"]
ca = "{ca}"

[kamailio]
evapi = "{relay}"

[metrics]
listen = "127.0.0.1:{metrics}"

[[numbers]]
number = "1000"
queue = "billing"
skills = {{ billing = 5 }}
languages = ["en"]

[[agents]]
id = 101
sip_user = "alice"
skills = {{ billing = 8 }}
languages = ["en"]

[[agents]]
id = 102
sip_user = "bob"
skills = {{ billing = 6 }}
languages = ["fr", "en"]
"#,
            ccrd = centre.loopback.addr,
            relay = relay.addr,
            ca = ca.display(),
        ),
    )
    .unwrap();
    let sipgw_log = dir.path().join("sipgw.log");
    let _sipgw = Process::spawn(
        "ccr-sipgw",
        Command::new(env!("CARGO_BIN_EXE_ccr-sipgw"))
            .arg("--config")
            .arg(&sipgw_config)
            .env("RUST_LOG", "info,ccr_sipgw=debug")
            .stderr(std::fs::File::create(&sipgw_log).unwrap()),
    );
    let sipgw_metrics = SocketAddr::from(([127, 0, 0, 1], metrics));
    match tokio::spawn(scenario(sip, centre, relay, sipgw_metrics)).await {
        Ok(centre) => {
            centre.watcher.close();
            centre.loopback.stop().await.unwrap();
        }
        Err(e) => {
            eprintln!("--- ccr-sipgw's log:\n{}", std::fs::read_to_string(&sipgw_log).unwrap_or_default());
            eprintln!("--- kamailio's log (tail):\n{}", tail(&dir.path().join("kamailio.log"), 60));
            std::panic::resume_unwind(e.into_panic());
        }
    }
}

/// Kamailio with deploy/kamailio/kamailio.cfg on free loopback ports, and
/// more `-A` defines: the process, its SIP port, its evapi port.
fn kamailio(dir: &Path, defines: &[&str]) -> (Process, u16, u16) {
    let (sip, evapi) = (free_udp_port(), free_tcp_port());
    let run_dir = dir.join("kamailio");
    std::fs::create_dir_all(&run_dir).unwrap();
    let mut command = Command::new("/usr/sbin/kamailio");
    command
        .args(["-DD", "-E", "-f"])
        .arg(repo().join("deploy/kamailio/kamailio.cfg"))
        .args(["-A", &format!("SIP_PORT={sip}"), "-A", &format!("EVAPI_BIND=\"127.0.0.1:{evapi}\"")])
        .arg("-Y")
        .arg(&run_dir)
        .arg("-P")
        .arg(run_dir.join("kamailio.pid"))
        .stderr(std::fs::File::create(dir.join("kamailio.log")).unwrap());
    for define in defines {
        command.args(["-A", define]);
    }
    (Process::spawn("kamailio", &mut command), sip, evapi)
}

fn tools_installed() {
    assert!(Path::new("/usr/sbin/kamailio").exists(), "{}", tool_missing("Kamailio", "install-kamailio.sh"));
    let pjsua2 = Command::new("python3").args(["-c", "import pjsua2"]).output().unwrap();
    assert!(pjsua2.status.success(), "{}", tool_missing("pjsua2", "install-pjsua2.sh"));
}

/// A REGISTER logs an agent in: Kamailio takes one only from AGENT_NET.
#[test]
fn a_register_from_outside_the_agents_network_is_refused() {
    tools_installed();
    let dir = tempfile::tempdir().unwrap();
    let (_kamailio, sip, _) = kamailio(dir.path(), &["AGENT_NET=\"127.0.0.2/32\""]);
    let mut phones = Phones::start(sip);
    phones.agent("mallory", "answer");
    let refused = phones.expect("mallory's REGISTER answered", |e| e["ev"] == "registered" && e["user"] == "mallory");
    assert_eq!(refused["code"], 403, "{refused}");
}

/// A TCP relay to Kamailio's evapi: taken down (its connections cut, its
/// port closed) and brought back on the same port, as a Kamailio
/// unreachable for a while would be.
struct Relay {
    addr: SocketAddr,
    upstream: SocketAddr,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Relay {
    async fn start(upstream: SocketAddr) -> Relay {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        Relay { addr, upstream, task: Some(tokio::spawn(Self::serve(listener, upstream))) }
    }

    async fn serve(listener: tokio::net::TcpListener, upstream: SocketAddr) {
        let mut links = tokio::task::JoinSet::new();
        while let Ok((mut client, _)) = listener.accept().await {
            links.spawn(async move {
                if let Ok(mut server) = tokio::net::TcpStream::connect(upstream).await {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                }
            });
        }
    }

    /// Cuts every connection and closes the port.
    async fn down(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }

    /// Listens again on the same port.
    async fn up(&mut self) {
        let deadline = Instant::now() + WAIT;
        let listener = loop {
            match tokio::net::TcpListener::bind(self.addr).await {
                Ok(l) => break l,
                Err(e) if Instant::now() < deadline => {
                    eprintln!("relay: binding {} again: {e}", self.addr);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("relay: {e}"),
            }
        };
        self.task = Some(tokio::spawn(Self::serve(listener, self.upstream)));
    }
}

/// ccr-sipgw's `ccr_sipgw_up{peer="kamailio"}` is `up`.
async fn until_kamailio_link(metrics: SocketAddr, up: bool) {
    let want = format!("ccr_sipgw_up{{peer=\"kamailio\"}} {}", u8::from(up));
    let deadline = Instant::now() + WAIT;
    loop {
        let page = tokio::task::spawn_blocking(move || http_get(metrics)).await.unwrap();
        if page.lines().any(|l| l == want) {
            return;
        }
        assert!(Instant::now() < deadline, "ccr-sipgw's link to Kamailio is not {want} after {WAIT:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A GET of `/metrics`: its body ("" when not reached).
fn http_get(addr: SocketAddr) -> String {
    use std::io::Read;
    let Ok(mut socket) = std::net::TcpStream::connect(addr) else { return String::new() };
    let _ = socket.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let mut page = String::new();
    let _ = socket.read_to_string(&mut page);
    page
}

/// The ccrd, and the test's own view of it.
struct Centre {
    loopback: Loopback,
    config: ccr_daemon::config::Config,
    watcher: Client,
    ccrd: Ccrd,
}

/// A connection to `loopback` and its every event.
async fn watch(loopback: &Loopback) -> (Client, Ccrd) {
    let watcher = Client::connect(loopback.addr, "localhost", std::slice::from_ref(&loopback.cert)).await.unwrap();
    let mut subscription = watcher.subscribe(Vec::new()).await.unwrap();
    let (tx, events) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(e) = subscription.next().await {
            if let Some(e) = e.event {
                let _ = tx.send(e);
            }
        }
    });
    (watcher, Ccrd { events, seen: Vec::new(), call_ids: Default::default() })
}

impl Centre {
    /// Stops ccrd (politely) and starts it again at the same address on
    /// the same data directory; the watch starts again too (offers seen
    /// before are remembered).
    async fn restart(self) -> Centre {
        let Centre { loopback, config, watcher, ccrd } = self;
        let addr = loopback.addr;
        watcher.close();
        loopback.stop().await.unwrap();
        // The old endpoint lets go of its port once its connections have
        // drained.
        let deadline = Instant::now() + WAIT;
        let loopback = loop {
            match Loopback::start_at(config.clone(), addr).await {
                Ok(l) => break l,
                Err(e) if Instant::now() < deadline => {
                    eprintln!("restarting ccrd on {addr}: {e}; again");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("ccrd did not restart on {addr}: {e}"),
            }
        };
        let (watcher, mut fresh) = watch(&loopback).await;
        fresh.call_ids = ccrd.call_ids;
        Centre { loopback, config, watcher, ccrd: fresh }
    }

    async fn supervise(&self, agent: u64, action: &str) {
        let reason = match action {
            "not_ready" => v1::NotReadyReason::Break as i32,
            _ => 0,
        };
        let request = v1::SuperviseAgentRequest { agent_id: agent, action: action.into(), reason };
        self.watcher.supervise_agent(request).await.unwrap();
    }
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Waits until `n` contacts wait in queue billing.
async fn until_waiting(watcher: &Client, n: u32) {
    let deadline = Instant::now() + WAIT;
    loop {
        let stats = watcher.queue_stats(v1::QueueStatsRequest { queue: "billing".into() }).await.unwrap();
        let waiting: u32 = stats.waiting_by_tier.values().sum();
        if waiting == n {
            return;
        }
        assert!(Instant::now() < deadline, "waited {WAIT:?} for {n} waiting; {waiting} wait");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn scenario(sip: u16, mut centre: Centre, mut relay: Relay, sipgw_metrics: SocketAddr) -> Centre {
    let mut phones = tokio::task::spawn_blocking(move || Phones::start(sip)).await.unwrap();
    // Blocking waits on the phones run on a blocking thread.
    macro_rules! phones {
        ($body:expr) => {{
            let (p, r) = tokio::task::spawn_blocking(move || {
                let mut p = phones;
                let r = $body(&mut p);
                (p, r)
            })
            .await
            .unwrap();
            phones = p;
            r
        }};
    }

    // Agents log in by registering their phones.
    phones!(|p: &mut Phones| {
        p.agent("alice", "answer");
        p.agent("bob", "answer");
        p.expect("alice registered", |e| e["ev"] == "registered" && e["user"] == "alice" && e["code"] == 200);
        p.expect("bob registered", |e| e["ev"] == "registered" && e["user"] == "bob" && e["code"] == 200);
    });
    for agent in [101, 102] {
        centre
            .ccrd
            .expect(
                &format!("agent {agent} available"),
                |e, _| matches!(e, Ev::AgentState(s) if s.agent_id == agent && s.state == "available"),
            )
            .await;
    }

    // A French caller reaches bob, the one agent who speaks French.
    let c1 = phones!(|p: &mut Phones| {
        p.send("callers", "call c1 1000 X-Language=fr");
        let user = p.rang("c1");
        assert_eq!(user, "bob", "the French caller rang {user}");
        p.caller("c1", "CONFIRMED")["call_id"].as_str().unwrap().to_owned()
    });
    centre.ccrd.connected(&c1, 102).await;

    // Bob is talking: the next caller rings alice, who does not answer: the
    // call goes back (RONA: ccrd's offer expires, alice goes not ready)...
    let c2 = phones!(|p: &mut Phones| {
        p.mode("alice", "never");
        p.send("callers", "call c2 1000");
        assert_eq!(p.rang("c2"), "alice");
        p.caller("c2", "EARLY")["call_id"].as_str().unwrap().to_owned()
    });
    centre
        .ccrd
        .expect(
            "alice's offer expires",
            |e, _| matches!(e, Ev::OfferEnded(o) if o.agent_id == 101 && o.outcome == "expired"),
        )
        .await;
    centre
        .ccrd
        .expect(
            "alice not ready for RONA",
            |e, _| matches!(e, Ev::AgentState(s) if s.agent_id == 101 && s.state == "not_ready" && s.reason == "rona"),
        )
        .await;
    // ...and to bob once his call ends (BYE → completed, wrap-up, available).
    phones!(|p: &mut Phones| p.send("callers", "hangup c1"));
    centre
        .ccrd
        .expect(
            "bob's call completed: wrap-up",
            |e, _| matches!(e, Ev::AgentState(s) if s.agent_id == 102 && s.state == "wrap_up"),
        )
        .await;
    phones!(|p: &mut Phones| {
        assert_eq!(p.rang("c2"), "bob", "the caller alice did not answer goes to the next agent");
        p.caller("c2", "CONFIRMED");
    });
    centre.ccrd.connected(&c2, 102).await;

    // Bob is talking, alice not ready: a standard caller, then a gold one,
    // wait; when bob is free, gold goes first.
    let (c3, c4) = phones!(|p: &mut Phones| {
        p.send("callers", "call c3 1000 X-Tier=standard");
        let c3 = p.caller("c3", "EARLY")["call_id"].as_str().unwrap().to_owned();
        p.send("callers", "call c4 1000 X-Tier=gold");
        let c4 = p.caller("c4", "EARLY")["call_id"].as_str().unwrap().to_owned();
        (c3, c4)
    });
    // (Kamailio's 180 comes before ccr-sipgw's enqueue: wait for ccrd.)
    until_waiting(&centre.watcher, 2).await;
    phones!(|p: &mut Phones| p.send("callers", "hangup c2"));
    phones!(|p: &mut Phones| {
        assert_eq!(p.rang("c4"), "bob", "the gold caller first");
        p.caller("c4", "CONFIRMED");
    });
    centre.ccrd.connected(&c4, 102).await;

    // A caller who hangs up while queued is abandoned in ccrd.
    phones!(|p: &mut Phones| {
        p.send("callers", "hangup c3");
        let gone = p.caller("c3", "DISCONNECTED");
        assert_eq!(gone["code"], 487, "the caller's INVITE ends 487 Request Terminated");
    });
    // (c3 was never offered, so its contact id is the one ccrd abandons
    // that no offer named.)
    centre
        .ccrd
        .expect(
            &format!("c3 ({c3}) abandoned"),
            |e, ids| matches!(e, Ev::Abandoned(a) if a.queue == "billing" && !ids.contains_key(&a.contact_id)),
        )
        .await;
    until_waiting(&centre.watcher, 0).await;

    // The gold caller hangs up: BYE completes the contact, bob wraps up.
    phones!(|p: &mut Phones| p.send("callers", "hangup c4"));
    centre
        .ccrd
        .expect(
            "bob wraps up after c4",
            |e, _| matches!(e, Ev::AgentState(s) if s.agent_id == 102 && s.state == "wrap_up"),
        )
        .await;

    // A phone that is busy declines: the offer is rejected, the agent goes
    // not ready (declined), and the call goes to the next agent. (Bob is
    // put on a break and alice made ready again by a supervisor: an agent's
    // desktop, or a supervisor, stays free to act on a phone's agent.)
    centre.supervise(102, "not_ready").await;
    centre.supervise(101, "ready").await;
    centre
        .ccrd
        .expect(
            "alice available again",
            |e, _| matches!(e, Ev::AgentState(s) if s.agent_id == 101 && s.state == "available"),
        )
        .await;
    let c5 = phones!(|p: &mut Phones| {
        p.mode("alice", "busy");
        p.send("callers", "call c5 1000");
        assert_eq!(p.rang("c5"), "alice");
        p.caller("c5", "EARLY")["call_id"].as_str().unwrap().to_owned()
    });
    centre
        .ccrd
        .expect(
            "alice's offer rejected",
            |e, _| matches!(e, Ev::OfferEnded(o) if o.agent_id == 101 && o.outcome == "rejected"),
        )
        .await;
    centre.ccrd.expect("alice not ready: declined", |e, _| {
        matches!(e, Ev::AgentState(s) if s.agent_id == 101 && s.state == "not_ready" && s.reason == "declined")
    })
    .await;
    centre.supervise(102, "ready").await;
    phones!(|p: &mut Phones| {
        assert_eq!(p.rang("c5"), "bob");
        p.caller("c5", "CONFIRMED");
    });
    centre.ccrd.connected(&c5, 102).await;

    // ccrd restarts with bob on c5 and c6 waiting: ccr-sipgw reconnects
    // and re-syncs (its agents logged in again, its calls claimed), c6
    // still waits, c5's BYE completes it, and c6 goes to bob.
    let c6 = phones!(|p: &mut Phones| {
        p.send("callers", "call c6 1000");
        p.caller("c6", "EARLY")["call_id"].as_str().unwrap().to_owned()
    });
    until_waiting(&centre.watcher, 1).await;
    centre = centre.restart().await;
    // (ccrd came back with bob not ready for the restart: only ccr-sipgw's
    // re-sync, logging him in again, lets c6 reach him below.)
    until_waiting(&centre.watcher, 1).await;
    phones!(|p: &mut Phones| p.send("callers", "hangup c5"));
    centre
        .ccrd
        .expect(
            "c5 completed after the restart: bob wraps up",
            |e, _| matches!(e, Ev::AgentState(s) if s.agent_id == 102 && s.state == "wrap_up"),
        )
        .await;
    phones!(|p: &mut Phones| {
        assert_eq!(p.rang("c6"), "bob", "the call that waited through the restart");
        p.caller("c6", "CONFIRMED");
    });
    centre.ccrd.connected(&c6, 102).await;
    phones!(|p: &mut Phones| p.send("callers", "hangup c6"));
    centre
        .ccrd
        .expect(
            "bob wraps up after c6",
            |e, _| matches!(e, Ev::AgentState(s) if s.agent_id == 102 && s.state == "wrap_up"),
        )
        .await;

    // Kamailio is out of reach for a while with a caller waiting: ccrd's
    // offer comes meanwhile, ccr-sipgw keeps its answer, reconnects (the
    // same Kamailio: its calls are kept) and sends it; the call rings bob.
    centre.supervise(102, "not_ready").await;
    centre
        .ccrd
        .expect(
            "bob on a break",
            |e, _| matches!(e, Ev::AgentState(s) if s.agent_id == 102 && s.state == "not_ready" && s.reason == "break"),
        )
        .await;
    let c7 = phones!(|p: &mut Phones| {
        p.send("callers", "call c7 1000");
        p.caller("c7", "EARLY")["call_id"].as_str().unwrap().to_owned()
    });
    until_waiting(&centre.watcher, 1).await;
    relay.down().await;
    until_kamailio_link(sipgw_metrics, false).await;
    centre.supervise(102, "ready").await;
    centre
        .ccrd
        .expect(
            "c7 offered to bob while Kamailio is out of reach",
            |e, ids| matches!(e, Ev::Offer(o) if o.agent_id == 102 && ids.get(&o.contact_id) == Some(&c7)),
        )
        .await;
    relay.up().await;
    phones!(|p: &mut Phones| {
        assert_eq!(p.rang("c7"), "bob", "the answer kept through the outage");
        p.caller("c7", "CONFIRMED");
    });
    centre.ccrd.connected(&c7, 102).await;
    phones!(|p: &mut Phones| p.send("callers", "hangup c7"));
    centre
        .ccrd
        .expect(
            "bob wraps up after c7",
            |e, _| matches!(e, Ev::AgentState(s) if s.agent_id == 102 && s.state == "wrap_up"),
        )
        .await;

    // An agent whose phone unregisters is logged out.
    phones!(|p: &mut Phones| p.send("alice", "unregister alice"));
    centre
        .ccrd
        .expect("alice logged out", |e, _| matches!(e, Ev::AgentState(s) if s.agent_id == 101 && s.state == "offline"))
        .await;

    // Stopping the phones waits for them: off the runtime's threads.
    tokio::task::spawn_blocking(move || drop(phones)).await.unwrap();
    centre
}
