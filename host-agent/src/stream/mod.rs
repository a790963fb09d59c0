//! The agent's side of the control-plane stream.
//!
//! `enroll` trades a join token for a client certificate (CA pinned by the
//! token's fingerprint). [`Agent::run`] then keeps one `Connect` stream
//! open: Hello, heartbeats at the interval the server's Welcome gives,
//! reports from [`AgentHooks`] until acked, certificate renewal at 60–80 %
//! of its lifetime (the new certificate is used from the next connection),
//! desired states handed to [`AgentHooks::on_desired`]. Whenever the stream
//! breaks it reconnects after an exponential, fully jittered delay
//! ([`convoy_kit::backoff`]), reset once a connection has been stable.

pub mod config;
mod enroll;
mod facts;
pub mod files;
mod hooks;
mod session;
pub mod tls;

use std::path::PathBuf;
use std::sync::Arc;

use thiserror::Error;
use tokio::sync::watch;

pub use config::AgentConfig;
pub use convoy_kit::backoff::Backoff;
pub use enroll::{Enrolled, enroll};
pub use files::{AgentDir, Enrollment};
pub use hooks::{AgentHooks, FileHooks};
pub use session::{SessionEnd, cert_validity, run_session};

/// Stream client errors.
#[derive(Debug, Error)]
pub enum StreamError {
    #[error("{action} {path}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is corrupt: {detail}")]
    Corrupt { path: PathBuf, detail: String },
    #[error("join token: {0}")]
    Token(String),
    #[error("{0} is already enrolled (cert.pem exists); use another data dir or remove it")]
    AlreadyEnrolled(PathBuf),
    #[error("invalid server address {0:?}: expected HOST:PORT")]
    BadServer(String),
    #[error("certificates: {0}")]
    Pki(String),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("connecting: {0}")]
    Connect(String),
    #[error("timed out {0}")]
    Timeout(&'static str),
    #[error("control plane refused: {code:?}: {message}")]
    Refused { code: tonic::Code, message: String },
    #[error("protocol: {0}")]
    Protocol(String),
    #[error("config: {0}")]
    Config(String),
}

impl StreamError {
    pub(crate) fn io(
        action: &'static str,
        path: &std::path::Path,
    ) -> impl FnOnce(std::io::Error) -> StreamError {
        let path = path.to_path_buf();
        move |source| StreamError::Io {
            action,
            path,
            source,
        }
    }
}

pub(crate) use convoy_kit::error_chain as chain;

/// The long-running stream client.
pub struct Agent<H: AgentHooks> {
    dir: AgentDir,
    cfg: AgentConfig,
    hooks: Arc<H>,
    telemetry: Option<Arc<crate::telemetry::TelemetryBuffer>>,
}

impl<H: AgentHooks> std::fmt::Debug for Agent<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl<H: AgentHooks> Agent<H> {
    pub fn new(dir: AgentDir, cfg: AgentConfig, hooks: Arc<H>) -> Agent<H> {
        Agent {
            dir,
            cfg,
            hooks,
            telemetry: None,
        }
    }

    /// Sends the samples this buffer receives while connected; while the
    /// stream is down they stay in it (oldest dropped and counted when full).
    pub fn with_telemetry(mut self, buffer: Arc<crate::telemetry::TelemetryBuffer>) -> Agent<H> {
        self.telemetry = Some(buffer);
        self
    }

    /// Connects and reconnects until `stop` turns true. Fails only if the
    /// data dir is unusable (not enrolled).
    pub async fn run(&self, mut stop: watch::Receiver<bool>) -> Result<(), StreamError> {
        let enrollment = self.dir.load_enrollment()?;
        let server = self
            .cfg
            .server
            .clone()
            .unwrap_or_else(|| enrollment.server.clone());
        let mut backoff = Backoff::new(self.cfg.backoff_base, self.cfg.backoff_cap);
        loop {
            if *stop.borrow() {
                return Ok(());
            }
            let end = session::run_session(
                &self.dir,
                &enrollment,
                &server,
                &self.hooks,
                self.telemetry.as_ref(),
                &mut stop,
            )
            .await;
            match end {
                Ok(SessionEnd::Stopped) => return Ok(()),
                Ok(SessionEnd::Broken {
                    reason,
                    welcomed_for,
                }) => {
                    if welcomed_for.is_some_and(|d| d >= self.cfg.stable_after) {
                        backoff.reset();
                    }
                    tracing::warn!(server = %server, reason = %reason, "stream ended; reconnecting");
                }
                Ok(SessionEnd::Revoked { reason }) => {
                    tracing::error!(server = %server, reason = %reason, "this host was revoked; it needs a new join token (convoy-agent enroll)");
                }
                Err(e) => {
                    tracing::warn!(server = %server, error = %chain(&e), "connection failed");
                }
            }
            let delay = backoff.next_delay(&mut rand::rng());
            tracing::info!(
                delay_ms = delay.as_millis() as u64,
                attempt = backoff.attempt(),
                "reconnecting after backoff"
            );
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = stop.wait_for(|s| *s) => return Ok(()),
            }
        }
    }
}
