//! The Convoy control plane: agent gateway (gRPC over mTLS), enrollment, git
//! sync and webhooks, per-host rendering, the rollout engine, fleet state in
//! sled, the operator HTTP API, /metrics and the alert outbox; plus the
//! operator CLI `convoy`.

pub mod alerts;
pub mod git;
pub mod logging;
pub mod rollout;
pub mod validate;
pub mod webhook;
