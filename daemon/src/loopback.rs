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
use crate::server::{self, Advance, Control, ServerError, TimeSource};
use crate::tls::{self, TlsError};

#[derive(Debug, thiserror::Error)]
pub enum LoopbackError {
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("binding loopback: {0}")]
    Io(#[from] std::io::Error),
    #[error("this ccrd runs on the system clock: start it with a manual clock to advance time")]
    SystemClock,
    #[error("ccrd stopped")]
    Stopped,
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
    /// With a manual clock: moves it.
    advance: Option<tokio::sync::mpsc::UnboundedSender<Advance>>,
    task: JoinHandle<Result<(), ServerError>>,
}

impl Loopback {
    /// Starts ccrd with `config` (its certificate self-signed into
    /// `config.server.data_dir`), requiring client certificates from
    /// `client_ca` when given.
    pub async fn start(
        config: Config,
        client_ca: Option<Vec<CertificateDer<'static>>>,
        with_metrics: bool,
    ) -> Result<Loopback, LoopbackError> {
        Self::start_on(config, client_ca, with_metrics, false, SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// [`Loopback::start`] on a given address: a ccrd restarted where its
    /// clients know to find it.
    pub async fn start_at(config: Config, addr: SocketAddr) -> Result<Loopback, LoopbackError> {
        Self::start_on(config, None, false, false, addr).await
    }

    /// [`Loopback::start`] on a clock that moves only by
    /// [`Loopback::advance`]: timers (grace, offer timeouts, relaxation) and
    /// the metrics sampler without waiting for real time to pass.
    pub async fn start_with_manual_clock(
        config: Config,
        client_ca: Option<Vec<CertificateDer<'static>>>,
        with_metrics: bool,
    ) -> Result<Loopback, LoopbackError> {
        Self::start_on(config, client_ca, with_metrics, true, SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    async fn start_on(
        config: Config,
        client_ca: Option<Vec<CertificateDer<'static>>>,
        with_metrics: bool,
        manual_clock: bool,
        addr: SocketAddr,
    ) -> Result<Loopback, LoopbackError> {
        let identity = tls::self_signed(&config.server.data_dir)?;
        let cert = std::fs::read(&identity.cert_path)?;
        let server_config = tls::server_config(
            identity,
            client_ca,
            config.server.max_streams_per_connection,
            config.server.idle_timeout,
        )?;
        let endpoint = quinn::Endpoint::server(server_config, addr)?;
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
        let (advance, time) = match manual_clock {
            false => (None, TimeSource::System),
            true => {
                let (advance, advances) = tokio::sync::mpsc::unbounded_channel();
                (Some(advance), TimeSource::Manual(advances))
            }
        };
        let control = Control { shutdown, reload: reloads, time };
        let task = tokio::spawn(server::serve(endpoint, metrics, config, control));
        Ok(Loopback { addr, metrics_addr, cert, stop, reload, advance, task })
    }

    /// Moves the manual clock forward by `by`; returns once every timer due
    /// by then has fired and the metrics sampler has sampled.
    pub async fn advance(&self, by: std::time::Duration) -> Result<(), LoopbackError> {
        let advance = self.advance.as_ref().ok_or(LoopbackError::SystemClock)?;
        let (done, moved) = oneshot::channel();
        advance.send(Advance { by, done }).map_err(|_| LoopbackError::Stopped)?;
        moved.await.map_err(|_| LoopbackError::Stopped)
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
        let server_config = tls::server_config(identity, None, 1024, tls::DEFAULT_IDLE_TIMEOUT)?;
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
