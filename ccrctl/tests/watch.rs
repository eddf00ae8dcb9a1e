//! `ccrctl watch` driven as a person would, in a tmux pane of its own (a
//! private tmux server, killed at the end): it renders, refreshes as the
//! queues change, and quits on `q`, exiting 0 with the terminal given back.

use std::process::Command;
use std::time::{Duration, Instant};

use ccr_daemon::config;
use ccr_daemon::loopback::Loopback;
use ccr_proto::client::Client;
use ccr_proto::v1 as pb;

/// A tmux server of this test's own, stopped when dropped.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn run(&self, args: &[&str]) -> std::process::Output {
        Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("tmux runs (scripts/install-debian.sh)")
    }

    fn screen(&self) -> String {
        String::from_utf8_lossy(&self.run(&["capture-pane", "-p", "-t", "watch"]).stdout).into_owned()
    }

    /// Waits until the pane shows what `seen` looks for.
    async fn until(&self, what: &str, seen: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let screen = self.screen();
            if seen(&screen) {
                return screen;
            }
            assert!(Instant::now() < deadline, "{what} never showed:\n{screen}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_renders_refreshes_and_quits_on_q() {
    let dir = std::env::temp_dir().join(format!("ccrctl-watch-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut config = config::parse(config::DEFAULT_CONFIG).unwrap();
    config.server.data_dir = dir.join("ccrd-data");
    config.journal.options.fsync = ccr_daemon::journal::FsyncPolicy::Never;
    let daemon = Loopback::start(config, None, false).await.expect("ccrd");
    let gateway = Client::connect(daemon.addr, "localhost", std::slice::from_ref(&daemon.cert)).await.unwrap();

    let tmux = Tmux { socket: format!("ccrctl-watch-{}", std::process::id()) };
    // The shell that runs it notes its exit status (tmux's own pane status
    // is not always set when the pane is seen dead).
    let status_file = dir.join("watch.status");
    let command = format!(
        "{} --addr {} --ca {} watch --interval 200ms; echo $? > {}",
        env!("CARGO_BIN_EXE_ccrctl"),
        daemon.addr,
        dir.join("ccrd-data/cert.der").display(),
        status_file.display()
    );
    let started = tmux.run(&["new-session", "-d", "-s", "watch", "-x", "150", "-y", "40", &command]);
    assert!(started.status.success(), "{started:?}");
    // Keep the pane after ccrctl exits, to read how it ended.
    tmux.run(&["set-option", "-t", "watch", "remain-on-exit", "on"]);

    let screen =
        tmux.until("the queues", |s| s.contains("QUEUE") && s.contains("billing") && s.contains("general")).await;
    assert!(screen.contains("0 waiting"), "{screen}");

    gateway
        .enqueue(pb::EnqueueRequest {
            contact_id: 1,
            channel: pb::Channel::Voice as i32,
            queue: "billing".into(),
            tier: "gold".into(),
            skills: vec![pb::SkillRequirement { skill: "billing".into(), min_proficiency: 1 }],
            ..Default::default()
        })
        .await
        .unwrap();
    tmux.until("the new contact", |s| s.contains("1 waiting") && s.contains("gold 1")).await;

    tmux.run(&["send-keys", "-t", "watch", "q"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        match std::fs::read_to_string(&status_file) {
            Ok(text) if text.ends_with('\n') => break text.trim().to_owned(),
            _ => {}
        }
        assert!(Instant::now() < deadline, "ccrctl still runs after q:\n{}", tmux.screen());
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(status, "0", "ccrctl exited 0");
    // The alternate screen is gone: the view is no longer on the pane.
    assert!(!tmux.screen().contains("QUEUE"), "{}", tmux.screen());
    drop(tmux);
    daemon.stop().await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
