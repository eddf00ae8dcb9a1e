//! `ccr-daemon`: the daemon around the routing core.
//!
//! # Layout
//! - [`core_thread`]: the one thread that owns the [`ccr_core::Router`]. It
//!   reads the clock, feeds commands in from a crossbeam channel, fires
//!   timers at the core's next deadline and hands every event to a sink.
//!   Nothing else touches the router, so nothing on the routing path takes a
//!   lock.
//! - [`clock`]: wall-clock time as the core's [`ccr_core::Time`].
//! - [`datadir`]: the data directory, private and locked to one ccrd.
//! - [`config`]: TOML → validated [`config::Config`], every problem located.
//! - [`server`]: the QUIC accept loop, one task per connection and per RPC
//!   stream, and the dispatcher that fans events out to subscribers.
//! - [`convert`]: protobuf ↔ core types; the only module that sees both.
//! - [`tls`]: certificates and the rustls/quinn configuration.
//! - [`host`]: what ccrd asks of the host (no transparent huge pages).
//! - [`cli`]: what the command-line tools hold each other to (help on every flag).
//! - [`loopback`]: a ccrd in this process on ephemeral loopback ports (tests, benches, tools).
//!
//! - [`metrics`]: metric names, handles registered once, the sampler and the
//!   `/metrics` page.
//!
//! - [`cluster`]: high availability on etcd: the standby, the takeover, the
//!   active's journal writer to etcd.
//!
//! - [`journal`]: durability: the write-ahead journal of the core's inputs,
//!   snapshots, recovery and `ccrd journal inspect`.

pub mod cli;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod convert;
pub mod core_thread;
pub mod datadir;
pub mod host;
pub mod journal;
pub mod loopback;
pub mod metrics;
pub mod server;
pub mod tls;
