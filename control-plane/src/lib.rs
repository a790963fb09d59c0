//! The Convoy control plane: agent gateway (gRPC over mTLS), enrollment, git
//! sync and webhooks, per-host rendering, the rollout engine, fleet state in
//! sled, the operator HTTP API, /metrics and the alert outbox; plus the
//! operator CLI `convoy`.
//!
//! Today's tasks in `run` (see [`server::run`]): the agent gateway
//! ([`gateway`], gRPC over our own rustls acceptor) and the operator API
//! ([`api`], axum over the same server certificate), both over one sled
//! [`store::Store`] and stopped together on SIGTERM/Ctrl-C.

pub mod alerts;
pub mod api;
pub mod audit;
pub mod backup;
pub mod client;
pub mod config;
pub mod datadir;
pub mod dispatch;
pub mod gateway;
pub mod git;
pub mod hostview;
pub mod logging;
pub mod quickstart;
pub mod rollout;
pub mod server;
pub mod store;
pub mod sync;
pub mod telemetry;
pub mod translate;
pub mod validate;
pub mod webhook;

pub use convoy_kit::error_chain;
