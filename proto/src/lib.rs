//! `ccr-proto`: the wire types of ccrd's API, package `ccr.v1`.
//!
//! The schema lives in `proto/ccr/v1/ccr.proto`; this crate only includes
//! what `build.rs` generates from it. Conversion to and from the routing
//! core's own types belongs to the daemon, so that protobuf stops at one
//! module there.

pub mod v1 {
    include!(concat!(env!("OUT_DIR"), "/ccr.v1.rs"));
}
