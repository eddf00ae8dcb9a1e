//! Which ccrd to talk to, and as whom: flags, then the environment
//! (`CCRCTL_*`), then a small TOML file, then the defaults of a local ccrd
//! started in this directory (its self-signed certificate in `./ccrd-data`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use ccr_proto::client::Client;
use ccr_proto::pki;
use serde::Deserialize;

/// The connection flags every command takes.
#[derive(clap::Args, Clone, Debug)]
pub struct TargetArgs {
    /// ccrd's QUIC address; for a cluster, every node's (comma-separated):
    /// ccrctl talks to the active. Default 127.0.0.1:4433.
    #[arg(long, env = "CCRCTL_ADDR", value_delimiter = ',', global = true)]
    pub addr: Vec<SocketAddr>,
    /// The certificate to trust (PEM or DER): ccrd's own or its CA.
    /// Default ./ccrd-data/cert.der.
    #[arg(long, env = "CCRCTL_CA", global = true)]
    pub ca: Option<PathBuf>,
    /// A client certificate with the admin role (or supervisor, to look
    /// only), PEM or DER, when ccrd requires client certificates.
    #[arg(long, env = "CCRCTL_CLIENT_CERT", requires = "client_key", global = true)]
    pub client_cert: Option<PathBuf>,
    /// Its private key (PEM or DER).
    #[arg(long, env = "CCRCTL_CLIENT_KEY", global = true)]
    pub client_key: Option<PathBuf>,
    /// The name in ccrd's certificate. Default localhost.
    #[arg(long, env = "CCRCTL_SERVER_NAME", global = true)]
    pub server_name: Option<String>,
    /// How long to look for ccrd (for a cluster, for its active).
    #[arg(long, default_value = "5s", global = true)]
    pub connect_timeout: humantime::Duration,
    /// A TOML file with any of: addr (a list), ca, client_cert, client_key,
    /// server_name. Default ~/.config/ccrctl/config.toml, if there is one.
    #[arg(long, env = "CCRCTL_CONFIG", global = true)]
    pub config: Option<PathBuf>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    #[serde(default)]
    addr: Vec<SocketAddr>,
    ca: Option<PathBuf>,
    client_cert: Option<PathBuf>,
    client_key: Option<PathBuf>,
    server_name: Option<String>,
}

/// Where and how to connect, every setting decided.
#[derive(Clone, Debug, PartialEq)]
pub struct Target {
    pub addrs: Vec<SocketAddr>,
    pub patience: std::time::Duration,
    pub ca: PathBuf,
    pub client: Option<(PathBuf, PathBuf)>,
    pub server_name: String,
}

impl TargetArgs {
    /// The settings, each from the first place that gives it.
    pub fn resolve(&self) -> anyhow::Result<Target> {
        let file = match &self.config {
            Some(path) => read_settings(path)?,
            None => match std::env::var_os("HOME").map(|h| Path::new(&h).join(".config/ccrctl/config.toml")) {
                Some(path) if path.exists() => read_settings(&path)?,
                _ => FileSettings::default(),
            },
        };
        let addrs = if !self.addr.is_empty() {
            self.addr.clone()
        } else if !file.addr.is_empty() {
            file.addr
        } else {
            vec!["127.0.0.1:4433".parse().expect("valid address")]
        };
        let client = match (self.client_cert.clone().or(file.client_cert), self.client_key.clone().or(file.client_key))
        {
            (Some(cert), Some(key)) => Some((cert, key)),
            (None, None) => None,
            _ => anyhow::bail!("a client certificate needs its key, and a key its certificate"),
        };
        Ok(Target {
            addrs,
            patience: self.connect_timeout.into(),
            ca: self.ca.clone().or(file.ca).unwrap_or_else(|| PathBuf::from("ccrd-data/cert.der")),
            client,
            server_name: self.server_name.clone().or(file.server_name).unwrap_or_else(|| "localhost".into()),
        })
    }
}

fn read_settings(path: &Path) -> anyhow::Result<FileSettings> {
    let text = std::fs::read_to_string(path).with_context(|| path.display().to_string())?;
    toml::from_str(&text).with_context(|| path.display().to_string())
}

/// Connects to the target (its active, for a cluster), within `patience`.
pub async fn connect(target: &Target) -> anyhow::Result<Client> {
    let roots = pki::certificates(&target.ca)?;
    let identity = match &target.client {
        Some((cert, key)) => Some(pki::identity(cert, key)?),
        None => None,
    };
    Client::connect_active(&target.addrs, &target.server_name, &roots, identity, target.patience)
        .await
        .map_err(|e| crate::Failure::Unavailable(format!("connecting to ccrd at {:?}: {e}", target.addrs)).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Default for TargetArgs {
        fn default() -> Self {
            TargetArgs {
                addr: Vec::new(),
                ca: None,
                client_cert: None,
                client_key: None,
                server_name: None,
                connect_timeout: std::time::Duration::from_secs(5).into(),
                config: None,
            }
        }
    }

    #[test]
    fn flags_come_before_the_file_and_the_file_before_the_defaults() {
        let dir = std::env::temp_dir().join(format!("ccrctl-target-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("config.toml");
        std::fs::write(&file, "addr = [\"127.0.0.1:5000\"]\nca = \"ca.pem\"\nserver_name = \"ccrd.example\"\n")
            .unwrap();
        let args = TargetArgs { config: Some(file.clone()), ..TargetArgs::default() };
        let t = args.resolve().unwrap();
        assert_eq!(t.addrs, vec!["127.0.0.1:5000".parse().unwrap()]);
        assert_eq!((t.ca.to_str().unwrap(), t.server_name.as_str()), ("ca.pem", "ccrd.example"));
        let args = TargetArgs {
            addr: vec!["[::1]:6000".parse().unwrap()],
            server_name: Some("other".into()),
            config: Some(file.clone()),
            ..TargetArgs::default()
        };
        let t = args.resolve().unwrap();
        assert_eq!(t.addrs, vec!["[::1]:6000".parse().unwrap()]);
        assert_eq!((t.ca.to_str().unwrap(), t.server_name.as_str()), ("ca.pem", "other"));
        std::fs::write(&file, "adress = \"127.0.0.1:1\"\n").unwrap();
        let e = TargetArgs { config: Some(file), ..TargetArgs::default() }.resolve().unwrap_err();
        assert!(format!("{e:#}").contains("adress"), "{e:#}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
