//! TLS for the QUIC endpoint: the server certificate (configured, or a
//! self-signed one generated once into the data directory) and the rustls
//! configuration: TLS 1.3 only, ALPN `ccr/1`, no 0-RTT (replayable).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::config::{Problem, TlsConfig};
use ccr_proto::method::{Method, Service};
use ccr_proto::pki;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("generating a self-signed certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("QUIC crypto configuration: {0}")]
    Quic(String),
    #[error(transparent)]
    Pki(#[from] pki::PkiError),
}

/// The server's certificate chain and key.
pub struct Identity {
    pub certs: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
    /// Where the certificate is, for clients to trust.
    pub cert_path: PathBuf,
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Io { path: path.to_owned(), source })
}

/// Writes a new file with `mode` from the start (a private key is never
/// readable by others, not even for a moment).
fn write(path: &Path, bytes: &[u8], mode: u32) -> Result<(), TlsError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .and_then(|mut f| f.write_all(bytes).and_then(|_| f.sync_all()))
        .map_err(|source| TlsError::Io { path: path.to_owned(), source })
}

/// Loads `cert.der` / `key.der` from the data directory, generating a
/// self-signed pair for localhost, 127.0.0.1 and ::1 on first start.
pub fn self_signed(data_dir: &Path) -> Result<Identity, TlsError> {
    crate::datadir::create(data_dir).map_err(|e| match e {
        crate::datadir::DataDirError::Io { path, source } => TlsError::Io { path, source },
        other => TlsError::Io { path: data_dir.to_owned(), source: std::io::Error::other(other.to_string()) },
    })?;
    let cert_path = data_dir.join("cert.der");
    let key_path = data_dir.join("key.der");
    if !cert_path.exists() || !key_path.exists() {
        let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned(), "::1".to_owned()];
        let generated = rcgen::generate_simple_self_signed(names)?;
        write(&cert_path, generated.cert.der(), 0o644)?;
        write(&key_path, &generated.signing_key.serialize_der(), 0o600)?;
    }
    // A key an earlier version left readable by others is made private.
    use std::os::unix::fs::PermissionsExt;
    let io = |source| TlsError::Io { path: key_path.clone(), source };
    if std::fs::metadata(&key_path).map_err(io)?.permissions().mode() & 0o077 != 0 {
        tracing::warn!(key = %key_path.display(), "private key was readable by others: now 0600");
        std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
    }
    let cert = CertificateDer::from(read(&cert_path)?);
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(read(&key_path)?));
    Ok(Identity { certs: vec![cert], key, cert_path })
}

/// Loads a certificate (or chain, leaf first) and key configured by the
/// operator, PEM or DER.
pub fn configured(cert: &Path, key: &Path) -> Result<Identity, TlsError> {
    let certs = pki::certificates(cert)?.into_iter().map(CertificateDer::from).collect();
    let key = pki::private_key(key)?;
    Ok(Identity { certs, key, cert_path: cert.to_owned() })
}

/// Reads the CA certificates (PEM or DER; a PEM file may hold several)
/// that client certificates must chain to.
pub fn client_ca(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    Ok(pki::certificates(path)?.into_iter().map(CertificateDer::from).collect())
}

/// Reads and checks the `[tls]` files as a start would: each present and
/// readable, the key the certificate's, the client CA a certificate.
/// Every problem, with the line that names the file.
pub fn check(tls: &TlsConfig) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut problem = |field: &str, line: Option<usize>, e: &dyn std::fmt::Display| {
        problems.push(Problem { field: field.into(), line, message: e.to_string() });
    };
    let client_ca = match tls.client_ca.as_deref().map(client_ca).transpose() {
        Ok(ca) => ca,
        Err(e) => {
            problem("tls.client_ca", tls.lines.client_ca, &e);
            None
        }
    };
    if let Some(ca) = &client_ca {
        let mut roots = rustls::RootCertStore::empty();
        if let Some(e) = ca.iter().find_map(|cert| roots.add(cert.clone()).err()) {
            problem("tls.client_ca", tls.lines.client_ca, &format!("not a usable CA certificate: {e}"));
        }
    }
    if let (Some(cert), Some(key)) = (&tls.cert, &tls.key) {
        let certs = pki::certificates(cert).map_err(|e| problem("tls.cert", tls.lines.cert, &e)).ok();
        let key = pki::private_key(key).map_err(|e| problem("tls.key", tls.lines.key, &e)).ok();
        if let (Some(certs), Some(key)) = (certs, key) {
            let certs = certs.into_iter().map(CertificateDer::from).collect();
            let identity = Identity { certs, key, cert_path: cert.clone() };
            match server_config(identity, None, 1, DEFAULT_IDLE_TIMEOUT) {
                Ok(_) => {}
                Err(TlsError::Rustls(rustls::Error::InconsistentKeys(_))) => {
                    problem("tls.key", tls.lines.key, &format!("is not the key of tls.cert ({})", cert.display()));
                }
                Err(e) => problem("tls.cert", tls.lines.cert, &e),
            }
        }
    }
    problems
}

/// What a client may call, from the organizational unit (OU) of its
/// certificate's subject.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Gateway,
    Agent,
    Admin,
    /// The views of `Admin` (status, queues, agents, contacts), read only:
    /// for supervisors' screens and wallboards.
    Supervisor,
    /// No client certificates required: everything is allowed (development).
    Any,
}

impl Role {
    /// The role in a client certificate: subject OU `gateway`, `agent`,
    /// `admin` or `supervisor`.
    pub fn of_certificate(der: &[u8]) -> Option<Role> {
        let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
        let ou = cert.subject().iter_organizational_unit().next()?.as_str().ok()?.to_owned();
        match ou.as_str() {
            "gateway" => Some(Role::Gateway),
            "agent" => Some(Role::Agent),
            "admin" => Some(Role::Admin),
            "supervisor" => Some(Role::Supervisor),
            _ => None,
        }
    }

    /// Whether this role may call `method`.
    pub fn allows(self, method: Method) -> bool {
        matches!(
            (self, method.service()),
            (Role::Any, _)
                | (Role::Gateway, Service::Gateway | Service::Events)
                | (Role::Agent, Service::AgentDesk | Service::Events)
                | (Role::Admin, Service::Admin | Service::Events)
                | (Role::Supervisor, Service::Events)
        ) || (self == Role::Supervisor && method.is_view())
    }

    /// The `ccr_connections{role}` label.
    pub const fn label(self) -> &'static str {
        match self {
            Role::Gateway => "gateway",
            Role::Agent => "agent",
            Role::Admin => "admin",
            Role::Supervisor => "supervisor",
            Role::Any => "any",
        }
    }
}

/// How long a connection may go without a packet before it is closed:
/// ccrd's default (`server.idle_timeout`).
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// The quinn server configuration for `identity`; with `client_ca`, every
/// client must present a certificate issued by it. A connection that hears
/// nothing for `idle_timeout` is closed (a client gone without a word);
/// ccrd pings every connection a third as often, so that a live client's
/// connection never idles out however quiet the centre.
pub fn server_config(
    identity: Identity,
    client_ca: Option<Vec<CertificateDer<'static>>>,
    max_streams: u32,
    idle_timeout: Duration,
) -> Result<quinn::ServerConfig, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])?;
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in ca {
                roots.add(cert)?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| TlsError::Quic(format!("client CA: {e}")))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut crypto = builder.with_single_cert(identity.certs, identity.key)?;
    crypto.alpn_protocols = vec![ccr_proto::wire::ALPN.to_vec()];
    crypto.max_early_data_size = 0;
    let quic = quinn::crypto::rustls::QuicServerConfig::try_from(crypto).map_err(|e| TlsError::Quic(e.to_string()))?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(quic));
    let mut transport = quinn::TransportConfig::default();
    // Twice the calls a connection may have open: ccrd refuses the ones past
    // its limit with a status (the client learns why) instead of leaving
    // them waiting for credit; only a client that opens twice the limit
    // waits on QUIC's flow control.
    transport.max_concurrent_bidi_streams(max_streams.saturating_mul(2).into());
    transport.max_concurrent_uni_streams(0u32.into());
    let idle = quinn::IdleTimeout::try_from(idle_timeout).map_err(|e| TlsError::Quic(format!("idle timeout: {e}")))?;
    transport.max_idle_timeout(Some(idle));
    transport.keep_alive_interval(Some(idle_timeout / 3));
    config.transport_config(Arc::new(transport));
    Ok(config)
}
