//! `ccr-daemon`: the daemon around the routing core.
//!
//! # Layout
//! - [`core_thread`]: the one thread that owns the [`ccr_core::Router`]. It
//!   reads the clock, feeds commands in from a crossbeam channel, fires
//!   timers at the core's next deadline and hands every event to a sink.
//!   Nothing else touches the router, so nothing on the routing path takes a
//!   lock.
//! - [`clock`]: wall-clock time as the core's [`ccr_core::Time`].
//! - [`config`]: TOML → validated [`config::Config`], every problem located.
//!
//! The QUIC server, configuration, metrics and journal are built on this in
//! their own modules.

pub mod clock;
pub mod config;
pub mod core_thread;
