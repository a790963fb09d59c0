//! The agent gateway: the `AgentService` gRPC server on the agent port.
//!
//! Data flow: [`tls::serve_agents`] accepts TCP, runs TLS handshakes
//! concurrently (our rustls config: client certs from our CA requested but
//! optional), and hands each connection, tagged with the peer's certificate,
//! to tonic. [`service::AgentApi`] authenticates each call from that
//! certificate: `Enroll` needs none (it checks a join token), `Connect` needs
//! one that is ours, unexpired and unrevoked. Each `Connect` stream is run by
//! one session task (`session.rs`) registered here by host name; the
//! registry lets the rest of the control plane push desired states
//! ([`Gateway::send_desired`]) and cut streams on revocation, replacement
//! and shutdown. Certificates are only checked at the handshake, so the
//! session also ends itself when its certificate expires.

mod service;
mod session;
pub mod tls;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use convoy_pki::Ca;
use convoy_shared::proto::DesiredState;
use thiserror::Error;
use tokio::sync::{mpsc, watch};

use crate::store::{Store, StoreError};

pub use service::{AgentApi, PeerInfo};
pub use session::StoredReport;

/// What the rest of the control plane does with stream events. All calls
/// run on the session's task: implementations must not block for long
/// (hand sled writes to `spawn_blocking`).
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

/// Commands a session task accepts from the rest of the control plane.
/// Its queue is bounded ([`SESSION_QUEUE`]).
#[derive(Debug)]
pub(crate) enum SessionCmd {
    Desired(Box<DesiredState>),
    /// Revoked: the agent gets `Revoked{reason}` and the stream ends.
    Revoke(String),
    /// Replaced by a newer stream for the same host.
    Replaced,
}

/// Commands queued per session; desired states are rare (one per rollout
/// step), so a small queue is plenty and a full one means a stuck agent.
pub(crate) const SESSION_QUEUE: usize = 8;

#[derive(Debug, Clone)]
pub(crate) struct SessionHandle {
    pub id: u64,
    pub serial: String,
    pub since: SystemTime,
    pub cmd: mpsc::Sender<SessionCmd>,
}

/// A live stream, as shown by the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    pub host: String,
    pub cert_serial: String,
    pub connected_since: SystemTime,
}

#[derive(Debug, Error)]
pub enum GatewayError {
    #[error("host {0} has no live stream")]
    NotConnected(String),
    #[error("host {0}'s stream is not keeping up (queue full)")]
    Busy(String),
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

pub(crate) struct Inner {
    pub ca: Ca,
    pub store: Store,
    pub cfg: GatewayConfig,
    sessions: Mutex<BTreeMap<String, SessionHandle>>,
    next_id: std::sync::atomic::AtomicU64,
    shutdown: watch::Sender<bool>,
    hooks: std::sync::OnceLock<Arc<dyn GatewayHooks>>,
}

impl Gateway {
    pub fn new(ca: Ca, store: Store, cfg: GatewayConfig) -> Gateway {
        Gateway {
            inner: Arc::new(Inner {
                ca,
                store,
                cfg,
                sessions: Mutex::new(BTreeMap::new()),
                next_id: std::sync::atomic::AtomicU64::new(1),
                shutdown: watch::channel(false).0,
                hooks: std::sync::OnceLock::new(),
            }),
        }
    }

    /// Plugs in the rest of the control plane (once; later calls are
    /// ignored).
    pub fn set_hooks(&self, hooks: Arc<dyn GatewayHooks>) {
        let _ = self.inner.hooks.set(hooks);
    }

    pub(crate) fn hooks(&self) -> Option<Arc<dyn GatewayHooks>> {
        self.inner.hooks.get().cloned()
    }

    pub fn fleet(&self) -> &str {
        &self.inner.cfg.fleet
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    pub fn ca(&self) -> &Ca {
        &self.inner.ca
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
    /// engine retries.
    pub fn send_desired(&self, host: &str, state: DesiredState) -> Result<(), GatewayError> {
        let handle = self
            .sessions()
            .get(host)
            .cloned()
            .ok_or_else(|| GatewayError::NotConnected(host.to_owned()))?;
        handle
            .cmd
            .try_send(SessionCmd::Desired(Box::new(state)))
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => GatewayError::Busy(host.to_owned()),
                mpsc::error::TrySendError::Closed(_) => GatewayError::NotConnected(host.to_owned()),
            })
    }

    /// Revokes `host`: persists the revocation (host and every serial it
    /// was issued), then closes its live stream. Returns whether a stream
    /// was closed.
    pub fn revoke(&self, host: &str, now: SystemTime) -> Result<bool, GatewayError> {
        self.inner.store.revoke_host(host, now)?;
        let handle = self.sessions().remove(host);
        Ok(match handle {
            Some(h) => {
                // A full queue must not keep a revoked stream alive: the
                // session also polls the registry (see session.rs), but
                // try_send first so the agent learns why.
                if h.cmd
                    .try_send(SessionCmd::Revoke("host revoked".into()))
                    .is_err()
                {
                    tracing::warn!(
                        host,
                        "revoke notice not queued; dropping the session's queue"
                    );
                }
                true
            }
            None => false,
        })
    }

    /// Live streams by host.
    pub fn sessions_info(&self) -> BTreeMap<String, SessionInfo> {
        self.sessions()
            .iter()
            .map(|(host, h)| {
                (
                    host.clone(),
                    SessionInfo {
                        host: host.clone(),
                        cert_serial: h.serial.clone(),
                        connected_since: h.since,
                    },
                )
            })
            .collect()
    }

    /// Ends every session (daemon shutdown); tonic's graceful shutdown then
    /// completes as the streams close.
    pub fn shutdown(&self) {
        self.inner.shutdown.send_replace(true);
    }

    pub(crate) fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.inner.shutdown.subscribe()
    }

    pub(crate) fn inner(&self) -> &Inner {
        &self.inner
    }

    fn sessions(&self) -> MutexGuard<'_, BTreeMap<String, SessionHandle>> {
        // A poisoned lock only means a panic elsewhere while holding it; the
        // map itself is always consistent (single inserts/removes).
        self.inner
            .sessions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Registers a new session for `host`, replacing (and closing) an older
    /// one. Returns the new session's id.
    pub(crate) fn register(&self, host: &str, serial: &str, cmd: mpsc::Sender<SessionCmd>) -> u64 {
        let id = self
            .inner
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let old = self.sessions().insert(
            host.to_owned(),
            SessionHandle {
                id,
                serial: serial.to_owned(),
                since: SystemTime::now(),
                cmd,
            },
        );
        if let Some(old) = old {
            tracing::info!(
                host,
                old = old.id,
                new = id,
                "newer stream replaces the older one"
            );
            let _ = old.cmd.try_send(SessionCmd::Replaced);
        }
        id
    }

    /// Removes the session if it is still the registered one.
    pub(crate) fn deregister(&self, host: &str, id: u64) {
        let mut s = self.sessions();
        if s.get(host).is_some_and(|h| h.id == id) {
            s.remove(host);
        }
    }

    /// Whether session `id` is still the registered one for `host`.
    pub(crate) fn is_current(&self, host: &str, id: u64) -> bool {
        self.sessions().get(host).is_some_and(|h| h.id == id)
    }
}
