//! Three etcd members on loopback, for tests, demos and benchmarks: started
//! as child processes on free ports (`etcd` from Debian's `etcd-server`,
//! `scripts/install-etcd.sh`), killed by process id and their data removed
//! when the [`Etcd`] is dropped.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use etcd_client::Client;

/// Three etcd members on loopback, killed and removed on drop.
pub struct Etcd {
    members: Vec<Child>,
    /// Each member's command line, to start it again.
    args: Vec<Vec<String>>,
    dir: PathBuf,
    clients: Vec<String>,
}

fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn spawn(args: &[String]) -> std::io::Result<Child> {
    Command::new("etcd")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| std::io::Error::new(e.kind(), format!("starting etcd (scripts/install-etcd.sh installs it): {e}")))
}

impl Etcd {
    /// The members' client endpoints.
    pub fn endpoints(&self) -> &[String] {
        &self.clients
    }

    /// Starts the members (heartbeat 50 ms, election timeout 500 ms).
    pub fn start() -> std::io::Result<Etcd> {
        let dir = std::env::temp_dir().join(format!("ccr-etcd-{}-{}", std::process::id(), free_port()?));
        let peers = (0..3).map(|_| free_port()).collect::<std::io::Result<Vec<u16>>>()?;
        let clients = (0..3).map(|_| free_port()).collect::<std::io::Result<Vec<u16>>>()?;
        let cluster: Vec<String> =
            peers.iter().enumerate().map(|(i, p)| format!("m{i}=http://127.0.0.1:{p}")).collect();
        let mut etcd = Etcd { members: Vec::new(), args: Vec::new(), dir, clients: Vec::new() };
        for i in 0..3 {
            let (peer, client) = (format!("http://127.0.0.1:{}", peers[i]), format!("http://127.0.0.1:{}", clients[i]));
            let args: Vec<String> = [
                "--name",
                &format!("m{i}"),
                "--data-dir",
                &etcd.dir.join(format!("m{i}")).display().to_string(),
                "--listen-peer-urls",
                &peer,
                "--initial-advertise-peer-urls",
                &peer,
                "--listen-client-urls",
                &client,
                "--advertise-client-urls",
                &client,
                "--initial-cluster",
                &cluster.join(","),
                "--initial-cluster-state",
                "new",
                "--initial-cluster-token",
                "ccr-test",
                "--heartbeat-interval",
                "50",
                "--election-timeout",
                "500",
                "--log-level",
                "error",
            ]
            .map(str::to_owned)
            .to_vec();
            // On an error, the members started so far stop with `etcd`.
            etcd.members.push(spawn(&args)?);
            etcd.args.push(args);
        }
        etcd.clients = clients.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        Ok(etcd)
    }

    /// The index of the member that leads etcd now (asked of each member).
    pub async fn leader(&self) -> Result<usize, crate::ClusterError> {
        for (i, endpoint) in self.clients.iter().enumerate() {
            let Ok(mut one) = Client::connect([endpoint], None).await else { continue };
            let Ok(status) = one.status().await else { continue };
            if status.header().is_some_and(|h| h.member_id() == status.leader()) {
                return Ok(i);
            }
        }
        Err(crate::ClusterError::Invalid("no etcd member says it leads".into()))
    }

    /// Kills member `i` (SIGKILL).
    pub fn kill(&mut self, i: usize) -> std::io::Result<()> {
        let member = &mut self.members[i];
        member.kill()?;
        member.wait()?;
        Ok(())
    }

    /// Starts member `i` again after [`Etcd::kill`], on its data.
    pub fn restart(&mut self, i: usize) -> std::io::Result<()> {
        self.members[i] = spawn(&self.args[i])?;
        Ok(())
    }

    /// A client once the cluster answers (within 20 s): through every
    /// member, or else through the first one that answers alone (a member
    /// that could not start — its port taken between choosing and binding
    /// it — leaves a cluster of two that works, but a client that keeps
    /// picking the dead member's endpoint does not).
    pub async fn client(&self) -> Result<Client, crate::ClusterError> {
        let deadline = Instant::now() + Duration::from_secs(20);
        let answers = |endpoints: Vec<String>| async move {
            let mut c = Client::connect(endpoints, None).await?;
            c.get("/ccr/ready", None).await?;
            Ok::<Client, etcd_client::Error>(c)
        };
        loop {
            let mut last = match answers(self.clients.clone()).await {
                Ok(c) => return Ok(c),
                Err(e) => e,
            };
            for endpoint in &self.clients {
                match answers(vec![endpoint.clone()]).await {
                    Ok(c) => return Ok(c),
                    Err(e) => last = e,
                }
            }
            if Instant::now() >= deadline {
                return Err(last.into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        for m in &mut self.members {
            let _ = m.kill();
            let _ = m.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
