//! `ccr-proto`: the wire types of ccrd's API, package `ccr.v1`.
//!
//! The schema lives in `proto/ccr/v1/ccr.proto`; [`v1`] is what `build.rs`
//! generates from it, [`Method`] every RPC path, and [`wire`] the framing of an RPC on a QUIC stream. Conversion to and from the routing
//! core's own types belongs to the daemon, so that protobuf stops at one
//! module there.

pub mod method;
pub mod wire;

pub use method::Method;

#[cfg(feature = "client")]
pub mod client;
#[cfg(feature = "pki")]
pub mod pki;

pub mod v1 {
    include!(concat!(env!("OUT_DIR"), "/ccr.v1.rs"));
}
