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
    dir: PathBuf,
    clients: Vec<String>,
}

fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
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
        let mut etcd = Etcd { members: Vec::new(), dir, clients: Vec::new() };
        for i in 0..3 {
            let dir = &etcd.dir;
            let member = {
                let (peer, client) =
                    (format!("http://127.0.0.1:{}", peers[i]), format!("http://127.0.0.1:{}", clients[i]));
                Command::new("etcd")
                    .args(["--name", &format!("m{i}")])
                    .arg("--data-dir")
                    .arg(dir.join(format!("m{i}")))
                    .args(["--listen-peer-urls", &peer, "--initial-advertise-peer-urls", &peer])
                    .args(["--listen-client-urls", &client, "--advertise-client-urls", &client])
                    .args(["--initial-cluster", &cluster.join(","), "--initial-cluster-state", "new"])
                    .args([
                        "--initial-cluster-token",
                        "ccr-test",
                        "--heartbeat-interval",
                        "50",
                        "--election-timeout",
                        "500",
                    ])
                    .args(["--log-level", "error"])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
            };
            // On an error, the members started so far stop with `etcd`.
            etcd.members.push(member.map_err(|e| {
                std::io::Error::new(e.kind(), format!("starting etcd (scripts/install-etcd.sh installs it): {e}"))
            })?);
        }
        etcd.clients = clients.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        Ok(etcd)
    }

    /// A client once the cluster answers (within 20 s).
    pub async fn client(&self) -> Result<Client, crate::ClusterError> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let tried = async {
                let mut c = Client::connect(&self.clients, None).await?;
                c.get("/ccr/ready", None).await?;
                Ok::<Client, etcd_client::Error>(c)
            };
            match tried.await {
                Ok(c) => return Ok(c),
                Err(e) if Instant::now() >= deadline => return Err(e.into()),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
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
