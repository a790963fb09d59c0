//! Rollouts: a commit's per-host desired states walked through the waves.
//!
//! - [`mod@step`]: the state machine as a pure function, (rollout, input, now)
//!   → (next rollout, actions). No I/O, no clock.
//! - [`plan`]: a new rollout from a commit's render (pure).
//! - [`engine`]: the executor. It turns accepted commits into rollouts,
//!   feeds inputs through [`step::step`], persists every transition before
//!   acting on it, and hands back what was decided (deliveries, events) for
//!   the caller to route.

pub mod engine;
pub mod plan;
pub mod step;

pub use crate::store::{CommitRecord, HostDesired};
pub use engine::{Delivery, Effects, Engine, EngineError, RolloutEvent, Started, describe};
pub use plan::{budget_ms, new_rollout};
pub use step::{
    Action, DEFAULT_MARGIN_MS, EventKind, HistoryEntry, HostPhase, HostRollout, Input, PlannedHost,
    Rollout, RolloutStatus, WaveState, step, updating,
};
