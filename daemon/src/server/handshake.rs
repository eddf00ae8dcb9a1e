//! Why a TLS handshake failed, in words an operator can act on: a client
//! with no certificate, one from another CA, an expired one — or a client
//! that refused ccrd's own certificate. Each is counted
//! (`ccr_refused_total{reason}`) and logged, at most [`LOG_PER_SECOND`]
//! lines a second so that a flood of bad handshakes cannot flood the log.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use tracing::{debug, warn};

use ccr_proto::wire::{alert, tls_alert};

use crate::metrics::Refusal;

/// Log lines about refused handshakes per second, at most; the rest are
/// counted and summed up in the next line that is written.
pub const LOG_PER_SECOND: u64 = 10;

/// What a failed handshake was.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// ccrd refused the client's certificate (or its absence).
    Refused { refusal: Refusal, detail: String },
    /// The client refused ccrd's certificate: it does not trust it.
    OursRefused { alert: &'static str },
    /// Anything else (a timeout, a reset): not the operator's to fix.
    Other(String),
}

/// The TLS alert names worth telling apart.
fn alert_name(code: u8) -> &'static str {
    match code {
        alert::BAD_CERTIFICATE => "bad_certificate",
        43 => "unsupported_certificate",
        44 => "certificate_revoked",
        alert::CERTIFICATE_EXPIRED => "certificate_expired",
        46 => "certificate_unknown",
        alert::UNKNOWN_CA => "unknown_ca",
        50 => "decode_error",
        51 => "decrypt_error",
        alert::CERTIFICATE_REQUIRED => "certificate_required",
        _ => "other",
    }
}

fn refusal_of(code: u8) -> Refusal {
    match code {
        alert::CERTIFICATE_REQUIRED => Refusal::NoCertificate,
        alert::UNKNOWN_CA => Refusal::UnknownCa,
        alert::CERTIFICATE_EXPIRED => Refusal::CertificateExpired,
        _ => Refusal::BadCertificate,
    }
}

/// What `error`, the outcome of a server handshake, was.
pub fn classify(error: &quinn::ConnectionError) -> Failure {
    match error {
        quinn::ConnectionError::TransportError(e) => match tls_alert(e.code.into()) {
            Some(code) => Failure::Refused { refusal: refusal_of(code), detail: e.reason.clone() },
            None => Failure::Other(error.to_string()),
        },
        quinn::ConnectionError::ConnectionClosed(close) => match tls_alert(close.error_code.into()) {
            Some(code) => Failure::OursRefused { alert: alert_name(code) },
            None => Failure::Other(error.to_string()),
        },
        other => Failure::Other(other.to_string()),
    }
}

/// A refusal's sentence for the log.
pub fn explain(refusal: Refusal) -> &'static str {
    match refusal {
        Refusal::NoCertificate => "refused a handshake: the client presented no certificate (tls.client_ca is set)",
        Refusal::UnknownCa => "refused a handshake: the client's certificate was not issued by tls.client_ca",
        Refusal::CertificateExpired => {
            "refused a handshake: the client's certificate has expired (or is not valid yet)"
        }
        _ => "refused a handshake: the client's certificate is not acceptable",
    }
}

/// A budget of log lines per second, shared by every connection.
pub struct LogBudget {
    start: Instant,
    /// The current second since `start` (high 32 bits) and the lines
    /// written in it (low 32).
    window: AtomicU64,
    /// Lines not written since the last one that was.
    skipped: AtomicU64,
}

impl Default for LogBudget {
    fn default() -> Self {
        LogBudget { start: Instant::now(), window: AtomicU64::new(0), skipped: AtomicU64::new(0) }
    }
}

impl LogBudget {
    /// `Some(lines skipped before this one)` if a line may be written now.
    pub fn take(&self, now: Instant) -> Option<u64> {
        let second = now.saturating_duration_since(self.start).as_secs() & 0xffff_ffff;
        let taken = self.window.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |window| {
            let (at, lines) = (window >> 32, window & 0xffff_ffff);
            match (at == second, lines < LOG_PER_SECOND) {
                (false, _) => Some(second << 32 | 1),
                (true, true) => Some(window + 1),
                (true, false) => None,
            }
        });
        match taken {
            Ok(_) => Some(self.skipped.swap(0, Ordering::Relaxed)),
            Err(_) => {
                self.skipped.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }
}

/// Logs `failure` from `remote` within `budget`; returns the refusal to
/// count, if it was one.
pub fn report(failure: Failure, remote: SocketAddr, budget: &LogBudget) -> Option<Refusal> {
    match failure {
        Failure::Refused { refusal, detail } => {
            if let Some(skipped) = budget.take(Instant::now()) {
                warn!(%remote, reason = refusal.label(), %detail, skipped, "{}", explain(refusal));
            }
            Some(refusal)
        }
        Failure::OursRefused { alert } => {
            if let Some(skipped) = budget.take(Instant::now()) {
                warn!(
                    %remote,
                    alert,
                    skipped,
                    "a client refused ccrd's certificate: it must trust the certificate (or its CA) and connect with a name the certificate holds"
                );
            }
            None
        }
        Failure::Other(why) => {
            debug!(%remote, error = %why, "handshake failed");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_flood_is_logged_ten_lines_a_second_with_what_was_skipped() {
        let budget = LogBudget::default();
        let t0 = budget.start;
        let first: Vec<_> = (0..15).map(|_| budget.take(t0)).collect();
        assert_eq!(first.iter().filter(|t| t.is_some()).count(), LOG_PER_SECOND as usize);
        assert_eq!(first[0], Some(0));
        assert!(first[10..].iter().all(Option::is_none));
        assert_eq!(budget.take(t0 + Duration::from_millis(1500)), Some(5), "the next second says 5 were skipped");
        assert_eq!(budget.take(t0 + Duration::from_millis(1600)), Some(0));
    }
}
