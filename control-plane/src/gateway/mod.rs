//! The agent gateway: the `AgentService` gRPC server on the agent port.
//!
//! Data flow: [`tls::serve_agents`] accepts TCP, runs TLS handshakes
//! concurrently (our rustls config: client certs from our CA requested but
//! optional), and hands each connection, tagged with the peer's certificate,
//! to tonic. [`service::AgentApi`] authenticates each call from that
//! certificate: `Enroll` needs none (it checks a join token), `Connect` needs
//! one that is ours, unexpired and unrevoked (`identity.rs` decides both).
//! Each `Connect` stream is run by one session task (`session.rs`)
//! registered by host name in [`sessions::Sessions`]; the registry lets the
//! rest of the control plane push desired states ([`Sessions::send_desired`])
//! and cuts streams on revocation, replacement and shutdown. What a stream
//! brings in goes one way, to the [`GatewayHooks`] given at construction
//! (the dispatcher). Certificates are only checked at the handshake, so the
//! session also ends itself when its certificate expires.

mod identity;
mod service;
mod session;
pub mod sessions;
pub mod tls;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use convoy_kit::Clock;
use convoy_pki::Ca;
use convoy_shared::proto::DesiredState;
use thiserror::Error;
use tokio::sync::watch;

use crate::store::{FleetStore, StoreError};

pub use service::AgentApi;
pub use sessions::{SendError, SessionInfo, Sessions};
pub use tls::PeerInfo;

/// What the rest of the control plane does with stream events, plugged in
/// when the gateway is built. All calls run on the session's task:
/// implementations must not block for long (hand store writes to
/// `spawn_blocking`).
#[async_trait::async_trait]
pub trait GatewayHooks: Send + Sync + 'static {
    /// The desired state to give a host that just connected (or asked
    /// again with FetchDesired).
    async fn desired_for(&self, host: &str) -> Option<DesiredState>;
    /// A desired state was put on the host's stream.
    async fn delivered(&self, host: &str, revision: &str, generation: u64);
    /// A report, stored durably; `new` is false for a resent duplicate.
    async fn report(&self, host: &str, report: &convoy_shared::proto::Report, new: bool);
    /// A telemetry batch.
    async fn telemetry(&self, host: &str, batch: convoy_shared::proto::TelemetryBatch);
    /// The host's stream opened / closed.
    async fn connected(&self, host: &str, connected: bool);
    /// A revoked host's certificate was presented (and refused).
    async fn revoked_attempt(&self, _host: &str, _peer: &str) {}
}

#[derive(Debug, Error)]
pub enum GatewayError {
    #[error("store")]
    Store(#[from] StoreError),
}

/// Gateway settings.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    pub fleet: String,
    pub heartbeat_interval: Duration,
    pub agent_cert_lifetime: Duration,
}

/// Handle on the gateway (cheap to clone).
#[derive(Clone)]
pub struct Gateway {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("fleet", &self.inner.cfg.fleet)
            .finish_non_exhaustive()
    }
}

struct Inner {
    ca: Ca,
    store: Arc<dyn FleetStore>,
    cfg: GatewayConfig,
    sessions: Sessions,
    hooks: Arc<dyn GatewayHooks>,
    clock: Arc<dyn Clock>,
    shutdown: watch::Sender<bool>,
    /// Last-seen writes that failed (logged each time; a full disk).
    touch_failures: AtomicU64,
}

impl Gateway {
    /// A gateway over `sessions` (shared with whoever delivers desired
    /// states) that tells `hooks` what its streams bring in.
    pub fn new(
        ca: Ca,
        store: Arc<dyn FleetStore>,
        cfg: GatewayConfig,
        sessions: Sessions,
        hooks: Arc<dyn GatewayHooks>,
        clock: Arc<dyn Clock>,
    ) -> Gateway {
        Gateway {
            inner: Arc::new(Inner {
                ca,
                store,
                cfg,
                sessions,
                hooks,
                clock,
                shutdown: watch::channel(false).0,
                touch_failures: AtomicU64::new(0),
            }),
        }
    }

    pub(crate) fn hooks(&self) -> &Arc<dyn GatewayHooks> {
        &self.inner.hooks
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }

    pub(crate) fn cfg(&self) -> &GatewayConfig {
        &self.inner.cfg
    }

    pub fn fleet(&self) -> &str {
        &self.inner.cfg.fleet
    }

    pub fn store(&self) -> &Arc<dyn FleetStore> {
        &self.inner.store
    }

    pub fn ca(&self) -> &Ca {
        &self.inner.ca
    }

    /// The registry of live streams.
    pub fn sessions(&self) -> &Sessions {
        &self.inner.sessions
    }

    /// The tonic service to serve on the agent port.
    pub fn service(
        &self,
    ) -> convoy_shared::proto::agent_service_server::AgentServiceServer<AgentApi> {
        convoy_shared::proto::agent_service_server::AgentServiceServer::new(AgentApi::new(
            self.clone(),
        ))
        .max_decoding_message_size(convoy_shared::limits::MAX_MESSAGE_BYTES)
        .max_encoding_message_size(convoy_shared::limits::MAX_MESSAGE_BYTES)
    }

    /// Delivers a desired state on the host's live stream. Fails (does not
    /// wait) if the host is not connected or its queue is full; the rollout
    /// engine re-delivers on connect.
    pub fn send_desired(&self, host: &str, state: DesiredState) -> Result<(), SendError> {
        self.inner.sessions.send_desired(host, state)
    }

    /// Revokes `host`: persists the revocation (host and every serial it
    /// was issued), then closes its live stream. Returns whether a stream
    /// was closed.
    pub fn revoke(&self, host: &str, now: SystemTime) -> Result<bool, GatewayError> {
        self.inner.store.revoke_host(host, now)?;
        Ok(self.inner.sessions.close_revoked(host))
    }

    /// Live streams by host.
    pub fn sessions_info(&self) -> BTreeMap<String, SessionInfo> {
        self.inner.sessions.info()
    }

    /// Ends every session (daemon shutdown); tonic's graceful shutdown then
    /// completes as the streams close.
    pub fn shutdown(&self) {
        self.inner.shutdown.send_replace(true);
    }

    /// Last-seen writes that failed since start.
    pub fn touch_failures(&self) -> u64 {
        self.inner.touch_failures.load(Ordering::Relaxed)
    }

    pub(crate) fn count_touch_failure(&self) -> u64 {
        self.inner.touch_failures.fetch_add(1, Ordering::Relaxed) + 1
    }

    pub(crate) fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.inner.shutdown.subscribe()
    }
}
