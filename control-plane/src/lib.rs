//! The Convoy control plane: agent gateway (gRPC over mTLS), enrollment, git
//! sync and webhooks, per-host rendering, the rollout engine, fleet state in
//! sled, the operator HTTP API, /metrics and the alert outbox; plus the
//! operator CLI `convoy`.

pub mod logging;
pub mod telemetry;
pub mod validate;
