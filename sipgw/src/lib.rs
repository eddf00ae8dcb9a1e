//! `ccr-sipgw`: SIP calls through Kamailio, routed by ccrd (docs/SIP.md).
//!
//! # Layout
//! - [`bridge`]: the calls and agents' phones as a state machine, no I/O:
//!   Kamailio's and ccrd's events in, ccrd commands and Kamailio answers out.
//! - [`evapi`]: Kamailio's evapi messages (netstrings of JSON).
//! - [`ccrd`]: the link to ccrd (gateway stream, subscription, desk calls),
//!   reconnecting and re-syncing.
//! - [`kamailio`]: the link to Kamailio's evapi, reconnecting.
//! - [`metrics`]: `ccr_sipgw_*` and the `/metrics` page.
//! - [`config`]: TOML → validated [`config::Config`], every problem located.
//! - [`run`]: the task that owns the bridge and wires the rest to it.

pub mod bridge;
pub mod ccrd;
pub mod config;
pub mod evapi;
pub mod kamailio;
pub mod metrics;
pub mod run;
