//! Snapshots of format 12 (`CCRSNP12`): postcard of the core's own
//! structures, read through the serde derives the core keeps for this
//! alone. Only while those structures are as they were can this be read:
//! the version that changes them drops this module, and a data directory
//! whose newest snapshot is of format 12 then upgrades through a version
//! that still has it (one start writes a snapshot of format 13).

use ccr_core::Router;
use serde::Deserialize;

use crate::journal::format::Names;

#[derive(Deserialize)]
struct Body {
    names: Names,
    router: Router,
}

/// The names and router a format-12 snapshot's payload holds.
pub fn read(payload: &[u8]) -> Result<(Names, Router), String> {
    let body: Body =
        postcard::from_bytes(payload).map_err(|e| format!("checksum matches but the state does not decode: {e}"))?;
    Ok((body.names, body.router))
}
