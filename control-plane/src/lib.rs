//! The Convoy control plane daemon (`convoy-control-plane run`, built by
//! [`server::start`]) runs four tasks over one store, stopped together on
//! SIGTERM/Ctrl-C: the agent gateway ([`gateway`]: gRPC over our own
//! rustls acceptor, enrollment, one session per agent stream), the operator
//! API ([`api`]: axum over the same server certificate, /metrics), the
//! [`dispatch::Dispatcher`]'s loops (rollout ticks, git sync, heartbeats,
//! certificate checks) and the alert worker ([`alerts`]).
//!
//! Data flows one way. Agent streams, the git sync and operator requests
//! go to the dispatcher; it turns them into rollout inputs, audit entries
//! and alerts with pure functions ([`translate`], [`sync::verdict`]),
//! feeds the rollout engine ([`rollout`]: a pure step function and an
//! executor that persists each step before returning its effects), and
//! routes the engine's effects to the agents' streams, the [`audit`] log
//! and the alert outbox. Durable state sits behind the [`store`] traits
//! (sled: [`store::SledStore`]); wall time comes from an injected
//! [`convoy_kit::Clock`]. Fleet telemetry is kept in memory
//! ([`telemetry`]).
//!
//! The operator CLI `convoy` is its own crate (`cli/`).

pub mod alerts;
pub mod api;
pub mod audit;
pub mod backup;
pub mod config;
pub mod datadir;
pub mod dispatch;
pub mod gateway;
pub mod git;
pub mod logging;
pub mod rollout;
pub mod server;
pub mod store;
pub mod sync;
pub mod telemetry;
pub mod translate;
pub mod webhook;

pub use convoy_kit::error_chain;
