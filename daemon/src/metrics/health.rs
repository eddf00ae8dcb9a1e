//! What `/healthz` and `/readyz` answer on the metrics listener, for load
//! balancers, systemd and Kubernetes probes: alive is "the process
//! answers"; ready is "send traffic here" — recovered, journal healthy,
//! not stopping, and in a cluster the active.

use std::sync::atomic::{AtomicU8, Ordering};

/// Where this ccrd stands, as `/readyz` tells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Ready {
    /// Reading its journal (or waiting for etcd): not serving yet.
    Recovering = 0,
    Serving = 1,
    /// A cluster's standby: clients go to the active.
    Standby = 2,
    /// Nothing can be acknowledged any more: it is stopping or demoting.
    JournalFailed = 3,
    Stopping = 4,
}

impl Ready {
    /// The probe's answer: ready or not, and a line that says why.
    pub fn answer(self) -> (bool, &'static str) {
        match self {
            Ready::Serving => (true, "ready: serving"),
            Ready::Recovering => (false, "not ready: recovering its journal"),
            Ready::Standby => (false, "not ready: a standby (clients go to the active)"),
            Ready::JournalFailed => (false, "not ready: the journal failed, nothing can be acknowledged"),
            Ready::Stopping => (false, "not ready: stopping"),
        }
    }
}

/// Shared between the server, which sets it, and the exporter, which reads it.
#[derive(Debug, Default)]
pub struct Readiness(AtomicU8);

impl Readiness {
    pub fn set(&self, ready: Ready) {
        self.0.store(ready as u8, Ordering::Relaxed);
    }

    pub fn get(&self) -> Ready {
        match self.0.load(Ordering::Relaxed) {
            1 => Ready::Serving,
            2 => Ready::Standby,
            3 => Ready::JournalFailed,
            4 => Ready::Stopping,
            _ => Ready::Recovering,
        }
    }
}
