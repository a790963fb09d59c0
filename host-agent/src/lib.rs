//! The Convoy host agent: the stream client to the control plane, the local
//! journal (sled), the compose engine on the Docker API (bollard), the health
//! gate with autonomous rollback, and telemetry (sysinfo + NVML).

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
