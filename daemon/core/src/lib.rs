//! `ccr-core`: the routing core of ccr.
//!
//! A deterministic, sans-IO state machine in the manner of `quinn-proto`: it
//! owns agents, waiting contacts, offers and timers, and turns commands into
//! decisions. It performs no I/O, reads no clock, takes no lock and spawns no
//! thread: `now` is an argument of every input, and the same inputs always give
//! the same outputs. The daemon, the simulator and the benches all drive this
//! one [`Router`]:
//!
//! ```text
//! router.handle(now, command)?;        // inputs
//! router.handle_timeout(now);
//! while let Some(e) = router.poll_event() { .. }   // outputs
//! let wake_at = router.poll_timeout();
//! ```
//!
//! # Layout
//! - [`time`], [`ids`]: the vocabulary (microsecond time, typed ids, channels).
//! - [`config`]: queues, tiers and policies, validated with every error located.
//! - [`command`], [`event`], [`error`]: what goes in, what comes out, why a
//!   command is refused.
//! - `router`: the state machine — its inputs and outputs in `router.rs`,
//!   then one part per concern: agents, contacts, matching, offers,
//!   ownership (sessions), queries, views, restore.
//! - `waiting`: waiting contacts listed by skill, language and minimum
//!   proficiency, for an agent looking for work (keys, cells, search). `pools`: agents with room, for a contact looking
//!   for an agent. Both are what makes a decision cost microseconds.
//! - `contact`, `agent`: the records, with rank and relaxation rules.
//! - `sessions`: which client session owns each contact and agent, and the
//!   grace a lost one gets.
//! - `timers`, `offers`, `slab`, `slots_by_id`, `prefetch`: plumbing.
//! - [`stats`]: queue statistics and the estimated wait time; `positions`: each
//!   waiting contact's place in its queue, and `oldest`: each queue's
//!   longest-waiting contact, both kept so that asking costs no scan.
//! - [`snapshot`]: a plain copy of the state for tests and tools; [`views`]:
//!   the bounded pages of it that supervisors and operators read.
//! - [`state`]: the state as records, which a snapshot file holds, and the
//!   router rebuilt from them.
//!
//! # Rules worth knowing
//! - A contact's place is a fixed *rank* (a virtual due time, see
//!   [`contact::rank_value`]): after RONA or a withdrawn offer it returns to the
//!   same place, ahead of everyone who came later.
//! - Timers due at or before a command's `now` fire before the command.
//! - A refused command changes nothing.

pub mod command;
pub mod config;
pub mod contact;
pub mod error;
pub mod event;
pub mod ewt;
pub mod ids;
pub mod snapshot;
pub mod state;
pub mod stats;
pub mod time;

mod agent;
mod hashing;
mod offers;
mod oldest;
mod pools;
mod positions;
mod prefetch;
mod ranked;
mod router;
/// What supervisors see: agents page by page, a queue's contacts in
/// service order, why a contact waits.
pub use router::views;
mod sessions;
mod slab;
mod slots_by_id;
mod timers;
mod waiting;

pub use command::{
    AgentProfile, Command, ContactSpec, Languages, Named, NotReadyReason, Reply, SkillReqs, TransferSpec,
};
pub use config::{
    AgentPolicy, ConfigError, ConfigErrors, ContactPolicy, QueueConfig, RelaxAction, RelaxStep, RouterConfig,
    ServiceLevel, TierConfig, WhenFull,
};
pub use error::{CommandError, OfferOutcome};
pub use event::{AgentState, Candidate, Event, Explanation, OverflowReason, Rule, Trigger};
pub use hashing::key_hash_tables;
pub use ids::{AgentId, Channel, ContactId, LanguageId, OfferId, QueueId, SessionId, SkillId, SkillReq, TierId};
pub use router::{
    Router, MAX_CALLBACK_AHEAD, MAX_LANGUAGES_PER_AGENT, MAX_LANGUAGES_PER_CONTACT, MAX_PREFERRED_AGENTS,
    MAX_SKILLS_PER_AGENT, MAX_SKILLS_PER_CONTACT,
};
pub use sessions::{SessionCounts, SessionState};
pub use snapshot::{AgentView, ContactView, ContactViewState, SessionView, Snapshot};
pub use state::{Restore, StateError, StateHeader};
pub use stats::{EwtMethod, QueueCounters, QueueStats, WaitEstimate};
pub use time::Time;
