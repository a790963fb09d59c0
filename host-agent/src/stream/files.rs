//! The agent's data dir (mode 0700): `key.pem` (0600, never leaves the
//! host), `cert.pem` (current client certificate, replaced atomically on
//! renewal), `ca.pem` (the pinned fleet CA), `agent.json` (server address,
//! host and fleet names).

use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::StreamError;

/// Written at enrollment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Enrollment {
    /// `HOST:PORT` of the control plane's agent port.
    pub server: String,
    pub host: String,
    pub fleet: String,
}

/// Paths in the agent's data dir.
#[derive(Debug, Clone)]
pub struct AgentDir {
    pub root: PathBuf,
}

/// The credentials a connection uses.
#[derive(Clone)]
pub struct Credentials {
    pub key_pem: String,
    pub cert_pem: String,
    pub ca_pem: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials").finish_non_exhaustive()
    }
}

impl AgentDir {
    pub fn new(root: impl Into<PathBuf>) -> AgentDir {
        AgentDir { root: root.into() }
    }
    pub fn key(&self) -> PathBuf {
        self.root.join("key.pem")
    }
    pub fn cert(&self) -> PathBuf {
        self.root.join("cert.pem")
    }
    pub fn ca(&self) -> PathBuf {
        self.root.join("ca.pem")
    }
    pub fn enrollment(&self) -> PathBuf {
        self.root.join("agent.json")
    }

    /// Creates the dir (0700) if missing.
    pub fn create(&self) -> Result<(), StreamError> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.root)
            .map_err(StreamError::io("creating", &self.root))
    }

    pub fn load_enrollment(&self) -> Result<Enrollment, StreamError> {
        let p = self.enrollment();
        let text = fs::read_to_string(&p).map_err(StreamError::io("reading", &p))?;
        serde_json::from_str(&text).map_err(|e| StreamError::Corrupt {
            path: p,
            detail: e.to_string(),
        })
    }

    pub fn load_credentials(&self) -> Result<Credentials, StreamError> {
        let read = |p: PathBuf| fs::read_to_string(&p).map_err(StreamError::io("reading", &p));
        Ok(Credentials {
            key_pem: read(self.key())?,
            cert_pem: read(self.cert())?,
            ca_pem: read(self.ca())?,
        })
    }
}
