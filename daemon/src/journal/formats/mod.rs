//! The types written to disk, one module per format version, each named by
//! its file magic: `jnl03` the journal records of `CCRJNL03` segments,
//! `snp14` the snapshots of `CCRSNP14`, `snp13` those of `CCRSNP13` (whose
//! records format 14 shares), `snp12` those of `CCRSNP12`.
//!
//! A format's types belong to the journal, not to the core: they are
//! written and read through explicit conversions to and from the core's
//! types, so the core's commands, enums and structures can change (fields
//! added, variants reordered) without changing a byte on disk. A change
//! the conversions cannot absorb is a new format: a new module and magic,
//! beside the old ones, which stay readable; the fixtures under
//! `daemon/tests/fixtures/` and the test reading them hold every version
//! to its bytes.
//!
//! Ids and times are written as the integers they are (`ContactId(7)` is
//! 7, `Time` its microseconds). Ids of 16 bits and more appear in these
//! types as the core's own (postcard writes every integer from 16 bits up
//! as the same varint, whatever its width); tiers, 8 bits, as `u8`.

pub mod config;
pub mod jnl03;
pub mod snp12;
pub mod snp13;
pub mod snp14;
