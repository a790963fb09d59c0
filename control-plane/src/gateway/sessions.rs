//! The registry of live agent streams, by host: what the rest of the
//! control plane uses to put a desired state on a host's stream and to see
//! who is connected. A leaf: it holds command queues, not the gateway, so
//! the dispatcher can hold it without a cycle.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use convoy_shared::proto::DesiredState;
use thiserror::Error;
use tokio::sync::mpsc;

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
struct SessionHandle {
    id: u64,
    serial: String,
    since: SystemTime,
    cmd: mpsc::Sender<SessionCmd>,
}

/// A live stream, as shown by the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    pub host: String,
    pub cert_serial: String,
    pub connected_since: SystemTime,
}

/// Why a desired state could not be put on a stream (the rollout engine
/// re-delivers on connect).
#[derive(Debug, Error)]
pub enum SendError {
    #[error("host {0} has no live stream")]
    NotConnected(String),
    #[error("host {0}'s stream is not keeping up (queue full)")]
    Busy(String),
}

/// Live streams by host; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Sessions {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    map: Mutex<BTreeMap<String, SessionHandle>>,
    next_id: AtomicU64,
}

impl Sessions {
    pub fn new() -> Sessions {
        Sessions::default()
    }

    fn map(&self) -> MutexGuard<'_, BTreeMap<String, SessionHandle>> {
        // A poisoned lock only means a panic elsewhere while holding it; the
        // map itself is always consistent (single inserts/removes).
        self.inner
            .map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Puts a desired state on the host's live stream. Fails (does not
    /// wait) if the host is not connected or its queue is full.
    pub fn send_desired(&self, host: &str, state: DesiredState) -> Result<(), SendError> {
        let cmd = self
            .map()
            .get(host)
            .map(|h| h.cmd.clone())
            .ok_or_else(|| SendError::NotConnected(host.to_owned()))?;
        cmd.try_send(SessionCmd::Desired(Box::new(state)))
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => SendError::Busy(host.to_owned()),
                mpsc::error::TrySendError::Closed(_) => SendError::NotConnected(host.to_owned()),
            })
    }

    /// Live streams by host.
    pub fn info(&self) -> BTreeMap<String, SessionInfo> {
        self.map()
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

    /// Hosts with a live stream.
    pub fn hosts(&self) -> Vec<String> {
        self.map().keys().cloned().collect()
    }

    pub fn is_connected(&self, host: &str) -> bool {
        self.map().contains_key(host)
    }

    pub fn len(&self) -> usize {
        self.map().len()
    }

    pub fn is_empty(&self) -> bool {
        self.map().is_empty()
    }

    /// Ends the host's stream with a revocation notice. Returns whether a
    /// stream was open.
    pub(crate) fn close_revoked(&self, host: &str) -> bool {
        let Some(h) = self.map().remove(host) else {
            return false;
        };
        // A full queue must not keep a revoked stream alive: the session
        // also polls the registry (see session.rs), but try_send first so
        // the agent learns why.
        if h.cmd
            .try_send(SessionCmd::Revoke("host revoked".into()))
            .is_err()
        {
            tracing::warn!(
                host,
                "revoke notice not queued; the session ends on its next registry check"
            );
        }
        true
    }

    /// Registers a new session for `host`, replacing (and closing) an older
    /// one. Returns the new session's id.
    pub(crate) fn register(
        &self,
        host: &str,
        serial: &str,
        since: SystemTime,
        cmd: mpsc::Sender<SessionCmd>,
    ) -> u64 {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let old = self.map().insert(
            host.to_owned(),
            SessionHandle {
                id,
                serial: serial.to_owned(),
                since,
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
            // The old session also sees it is no longer current on its
            // next registry check; the notice only makes that immediate.
            if old.cmd.try_send(SessionCmd::Replaced).is_err() {
                tracing::debug!(host, old = old.id, "replace notice not queued");
            }
        }
        id
    }

    /// Removes the session if it is still the registered one.
    pub(crate) fn deregister(&self, host: &str, id: u64) {
        let mut s = self.map();
        if s.get(host).is_some_and(|h| h.id == id) {
            s.remove(host);
        }
    }

    /// Whether session `id` is still the registered one for `host`.
    pub(crate) fn is_current(&self, host: &str, id: u64) -> bool {
        self.map().get(host).is_some_and(|h| h.id == id)
    }
}
