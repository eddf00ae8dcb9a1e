//! Certificates and private keys from files, PEM or DER: what OpenSSL
//! writes by default (PEM, a key as PKCS#8, SEC1 or PKCS#1) is read as is,
//! and so is DER. Every tool of ccr reads its certificates through here.

use std::path::{Path, PathBuf};

use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: not a PEM {what} ({source})")]
    Pem { path: PathBuf, what: &'static str, source: pem::Error },
    #[error("{path}: holds no certificate (a PEM file needs a BEGIN CERTIFICATE block)")]
    NoCertificate { path: PathBuf },
    #[error("{path}: not a private key in DER (PKCS#8, SEC1 or PKCS#1): {why}")]
    Key { path: PathBuf, why: &'static str },
}

fn read(path: &Path) -> Result<Vec<u8>, PkiError> {
    std::fs::read(path).map_err(|source| PkiError::Io { path: path.to_owned(), source })
}

fn is_pem(bytes: &[u8]) -> bool {
    bytes.trim_ascii_start().starts_with(b"-----BEGIN")
}

/// The certificates in `path`, in order (DER): every `CERTIFICATE` block of
/// a PEM file (a chain, or a bundle of CAs), or the one certificate of a
/// DER file.
pub fn certificates(path: &Path) -> Result<Vec<Vec<u8>>, PkiError> {
    let bytes = read(path)?;
    if !is_pem(&bytes) {
        return Ok(vec![bytes]);
    }
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .map(|c| c.map(|c| c.as_ref().to_vec()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| PkiError::Pem { path: path.to_owned(), what: "certificate", source })?;
    if certs.is_empty() {
        return Err(PkiError::NoCertificate { path: path.to_owned() });
    }
    Ok(certs)
}

/// The private key in `path`: the first key of a PEM file (`PRIVATE KEY`,
/// `EC PRIVATE KEY` or `RSA PRIVATE KEY`), or a DER file whose format is
/// recognised.
pub fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, PkiError> {
    let bytes = read(path)?;
    if is_pem(&bytes) {
        return PrivateKeyDer::from_pem_slice(&bytes).map_err(|source| PkiError::Pem {
            path: path.to_owned(),
            what: "private key",
            source,
        });
    }
    PrivateKeyDer::try_from(bytes).map_err(|why| PkiError::Key { path: path.to_owned(), why })
}

/// A client identity as [`crate::client::Client`] takes it: the chain in
/// `cert` and the key in `key`, each PEM or DER.
pub fn identity(cert: &Path, key: &Path) -> Result<(Vec<Vec<u8>>, Vec<u8>), PkiError> {
    Ok((certificates(cert)?, private_key(key)?.secret_der().to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    /// A certificate and a PKCS#8 key read the same from PEM and from DER;
    /// a chain keeps its order; the key's format is recognised in DER.
    #[test]
    fn pem_and_der_read_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let one = rcgen::generate_simple_self_signed(vec!["one".into()]).unwrap();
        let two = rcgen::generate_simple_self_signed(vec!["two".into()]).unwrap();
        let chain = one.cert.pem() + &two.cert.pem();
        let der = |c: &rcgen::CertifiedKey<rcgen::KeyPair>| c.cert.der().to_vec();
        assert_eq!(certificates(&write(dir.path(), "c.der", &der(&one))).unwrap(), vec![der(&one)]);
        assert_eq!(certificates(&write(dir.path(), "c.pem", chain.as_bytes())).unwrap(), vec![der(&one), der(&two)]);
        let from_der = private_key(&write(dir.path(), "k.der", &one.signing_key.serialize_der())).unwrap();
        let from_pem = private_key(&write(dir.path(), "k.pem", one.signing_key.serialize_pem().as_bytes())).unwrap();
        assert!(matches!(from_der, PrivateKeyDer::Pkcs8(_)));
        assert_eq!(from_der.secret_der(), from_pem.secret_der());
    }

    #[test]
    fn a_file_without_what_was_asked_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let pair = rcgen::generate_simple_self_signed(vec!["one".into()]).unwrap();
        let key_only = write(dir.path(), "k.pem", pair.signing_key.serialize_pem().as_bytes());
        assert!(matches!(certificates(&key_only), Err(PkiError::NoCertificate { .. })));
        let cert_only = write(dir.path(), "c.pem", pair.cert.pem().as_bytes());
        let e = private_key(&cert_only).unwrap_err().to_string();
        assert!(e.contains("c.pem: not a PEM private key"), "{e}");
        let garbage = write(dir.path(), "g.der", b"not a key");
        assert!(matches!(private_key(&garbage), Err(PkiError::Key { .. })));
        let missing = dir.path().join("missing.pem");
        assert!(matches!(certificates(&missing), Err(PkiError::Io { .. })));
    }
}
