//! A ccrd running inside this process on ephemeral loopback ports, for
//! tests, benchmarks and tools: the caller picks the configuration, the
//! daemon binds 127.0.0.1:0, and `stop` shuts it down cleanly. Also a bare
//! QUIC echo server with the same TLS setup, the yardstick benchmarks
//! compare ccrd's round trips with.

use std::net::SocketAddr;

use rustls::pki_types::CertificateDer;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::server::{self, Control, ServerError};
use crate::tls::{self, TlsError};

#[derive(Debug, thiserror::Error)]
pub enum LoopbackError {
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("binding loopback: {0}")]
    Io(#[from] std::io::Error),
}

pub struct Loopback {
    /// The QUIC address.
    pub addr: SocketAddr,
    /// The `/metrics` address, when asked for.
    pub metrics_addr: Option<SocketAddr>,
    /// The server certificate (DER), for clients to trust.
    pub cert: Vec<u8>,
    stop: oneshot::Sender<()>,
    reload: tokio::sync::mpsc::UnboundedSender<()>,
    task: JoinHandle<Result<(), ServerError>>,
}

impl Loopback {
    /// Starts ccrd with `config` (its certificate self-signed into
    /// `config.server.data_dir`), requiring client certificates from
    /// `client_ca` when given.
    pub async fn start(
        config: Config,
        client_ca: Option<CertificateDer<'static>>,
        with_metrics: bool,
    ) -> Result<Loopback, LoopbackError> {
        let identity = tls::self_signed(&config.server.data_dir)?;
        let cert = std::fs::read(&identity.cert_path)?;
        let server_config = tls::server_config(identity, client_ca, config.server.max_streams_per_connection)?;
        let endpoint = quinn::Endpoint::server(server_config, SocketAddr::from(([127, 0, 0, 1], 0)))?;
        let addr = endpoint.local_addr()?;
        let metrics = match with_metrics {
            true => Some(tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?),
            false => None,
        };
        let metrics_addr = metrics.as_ref().map(|l| l.local_addr()).transpose()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let (reload, reloads) = tokio::sync::mpsc::unbounded_channel();
        let shutdown = Box::pin(async move {
            let _ = stopped.await;
        });
        let task = tokio::spawn(server::serve(endpoint, metrics, config, Control { shutdown, reload: reloads }));
        Ok(Loopback { addr, metrics_addr, cert, stop, reload, task })
    }

    /// Re-reads the configuration file, as SIGHUP does to ccrd.
    pub fn reload(&self) {
        let _ = self.reload.send(());
    }

    /// Stops the daemon and waits for it to finish.
    pub async fn stop(self) -> Result<(), ServerError> {
        let _ = self.stop.send(());
        self.task.await.unwrap_or(Ok(()))
    }
}

/// A quinn server on a loopback port that answers every stream with the
/// bytes it received: the transport alone, with ccrd's TLS configuration.
pub struct Echo {
    pub addr: SocketAddr,
    /// The server certificate (DER), for clients to trust.
    pub cert: Vec<u8>,
    endpoint: quinn::Endpoint,
    task: JoinHandle<()>,
}

impl Echo {
    /// Starts the echo server, its certificate self-signed into `data_dir`.
    pub async fn start(data_dir: &std::path::Path) -> Result<Echo, LoopbackError> {
        let identity = tls::self_signed(data_dir)?;
        let cert = std::fs::read(&identity.cert_path)?;
        let server_config = tls::server_config(identity, None, 1024)?;
        let endpoint = quinn::Endpoint::server(server_config, SocketAddr::from(([127, 0, 0, 1], 0)))?;
        let addr = endpoint.local_addr()?;
        let task = tokio::spawn(echo(endpoint.clone()));
        Ok(Echo { addr, cert, endpoint, task })
    }

    pub fn stop(self) {
        self.endpoint.close(0u32.into(), b"done");
        self.task.abort();
    }
}

async fn echo(endpoint: quinn::Endpoint) {
    while let Some(incoming) = endpoint.accept().await {
        tokio::spawn(async move {
            let Ok(connection) = incoming.await else { return };
            while let Ok((mut send, mut recv)) = connection.accept_bi().await {
                tokio::spawn(async move {
                    if let Ok(bytes) = recv.read_to_end(1 << 16).await {
                        let _ = send.write_all(&bytes).await;
                        let _ = send.finish();
                    }
                });
            }
        });
    }
}
