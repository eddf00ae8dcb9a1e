//! Snapshots of format 14 (`CCRSNP14`): format 13 ([`super::snp13`]) with
//! each queue's whole wait-estimate history after its header, so that a
//! restarted node, or a standby taking over, estimates waits as the node
//! before it would have.
//!
//! ```text
//! payload := header13 flows agent{..} contact{..} timer{..}
//! flows   := one Flow per queue of header13, in queue order
//! ```

use std::io::Write;

use ccr_core::state::FlowRecord;
use ccr_core::Router;
use serde::{Deserialize, Serialize};

use super::snp13;
use crate::journal::format::Names;

#[derive(Debug, Serialize, Deserialize)]
struct Header<'a> {
    #[serde(borrow)]
    v13: snp13::Header<'a>,
    flows: Vec<Flow>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Flow {
    since_departure: f64,
    at_departure_answers: f64,
    at_departure_busy: f64,
    /// Microseconds; infinite before the queue's first departure.
    gap: f64,
    abandons: f64,
    exposure: f64,
    elapsed: f64,
    arrivals: Vec<f64>,
}

/// Writes the snapshot payload of `router` into `out`.
pub fn write<W: Write>(out: W, names: &Names, router: &Router) -> postcard::Result<W> {
    let timers = router.export_timers();
    let state = router.export_header();
    let flows = state.queues.iter().map(|q| Flow::from(q.flow.clone().unwrap_or_default())).collect();
    let header = Header { v13: snp13::header_of(names, state, router, timers.len()), flows };
    snp13::write_records(postcard::to_io(&header, out)?, router, timers)
}

/// The names and the router a payload holds; as [`snp13::read`].
pub fn read(payload: &[u8]) -> Result<(Names, Router), String> {
    let (header, rest) = snp13::take::<Header>(payload, "header")?;
    let counts = header.v13.counts();
    let (names, mut state) = snp13::into_state(header.v13);
    if header.flows.len() != state.queues.len() {
        return Err(format!("{} queues but {} queue histories", state.queues.len(), header.flows.len()));
    }
    for (queue, flow) in state.queues.iter_mut().zip(header.flows) {
        queue.flow = Some(flow.into());
    }
    Ok((names, snp13::read_records(state, counts, rest)?))
}

impl From<FlowRecord> for Flow {
    fn from(f: FlowRecord) -> Flow {
        Flow {
            since_departure: f.since_departure,
            at_departure_answers: f.at_departure.0,
            at_departure_busy: f.at_departure.1,
            gap: f.gap,
            abandons: f.abandons,
            exposure: f.exposure,
            elapsed: f.elapsed,
            arrivals: f.arrivals,
        }
    }
}

impl From<Flow> for FlowRecord {
    fn from(f: Flow) -> FlowRecord {
        FlowRecord {
            since_departure: f.since_departure,
            at_departure: (f.at_departure_answers, f.at_departure_busy),
            gap: f.gap,
            abandons: f.abandons,
            exposure: f.exposure,
            elapsed: f.elapsed,
            arrivals: f.arrivals,
        }
    }
}
