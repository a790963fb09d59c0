//! The Convoy host agent (`convoy-agent run`). Its tasks:
//!
//! - the [`stream`] client: one outbound mTLS gRPC stream to the control
//!   plane (reconnecting with jittered backoff), carrying desired states in
//!   and reports, heartbeats and telemetry out;
//! - the [`engine`]'s apply task: converges the local Docker engine
//!   ([`runtime`], bollard) to the desired state, gates each stack on
//!   health and rolls back to its last-known-good on its own;
//! - the [`telemetry`] sampler (sysinfo, NVML) on the blocking pool.
//!
//! Data flow: a desired state arrives on the stream, [`bridge`] checks it
//! and hands it to the engine, which writes it to the [`journal`] before
//! anything else; the engine's pure [`engine::lifecycle`] decides each
//! stack's next step, the executor performs it, recording each step in the
//! journal before acting on the next; its [`report`]s wait in the journal's
//! outbox until the control plane acknowledges them, and the stream drains
//! them (and the telemetry buffer). Nothing is decided by the control plane
//! once a state has arrived: a crash, a restart or a lost stream resumes
//! from the journal. [`local`] runs the same engine without a control plane.

pub mod bridge;
pub mod engine;
pub mod journal;
pub mod local;
pub mod report;
pub mod runtime;
pub mod stream;
pub mod telemetry;

/// Wall-clock milliseconds since the Unix epoch as the wire and the journal
/// carry them (`i64`), read through [`convoy_kit::clock`].
pub(crate) fn unix_ms() -> i64 {
    i64::try_from(convoy_kit::clock::now_ms()).unwrap_or(i64::MAX)
}
