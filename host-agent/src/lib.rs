//! The Convoy host agent: the stream client to the control plane, the local
//! journal (sled), the compose engine on the Docker API (bollard), the health
//! gate with autonomous rollback, and telemetry (sysinfo + NVML).

pub mod engine;
pub mod hooks;
pub mod journal;
pub mod runtime;
pub mod stream;
pub mod telemetry;
