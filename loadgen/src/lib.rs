//! `ccr-loadgen`: traffic for ccr, live against ccrd or in virtual time
//! against the routing core itself.
//!
//! - [`scenario`]: the scenario file (agents, traffic, routing configuration).
//! - [`sim`]: the virtual-time engine: the same [`ccr_core::Router`] the
//!   daemon runs, driven by a discrete-event clock.
//! - [`report`]: what a run measured, per queue and tier.
//! - [`erlang`]: the queueing theory the simulator is validated against.
//! - [`replications`]: policies compared over replications, with intervals.
//! - [`staffing`]: the fewest agents per interval that meet a target, by simulation.
//! - [`failover`]: traffic across a cluster's takeovers, and what the client saw.
//! - [`live`]: a scenario played against a running ccrd, on a [`pace`] that skips
//!   idle stretches; [`scrape`]: ccrd's own decision latency.

pub mod bench;
pub mod erlang;
pub mod failover;
pub mod live;
pub mod output;
pub mod pace;
pub mod replications;
pub mod report;
pub mod scenario;
pub mod scrape;
pub mod sim;
pub mod staffing;
pub mod trace;
