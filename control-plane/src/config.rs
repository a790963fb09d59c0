//! `convoy-control-plane run` configuration: a TOML file (unknown keys are
//! errors) overridden by command-line flags.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use thiserror::Error;

/// Default agent port (gRPC over mTLS).
pub const DEFAULT_AGENT_LISTEN: &str = "0.0.0.0:7443";
/// Default operator API port (HTTPS), loopback only unless configured.
pub const DEFAULT_API_LISTEN: &str = "127.0.0.1:8443";

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("reading {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Parse {
        path: String,
        #[source]
        source: toml::de::Error,
    },
    #[error("{field}: {reason}")]
    Invalid { field: &'static str, reason: String },
}

/// The file as written. Every field is optional; durations use the fleet
/// repo syntax (`30s`, `24h`).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub agent_listen: Option<SocketAddr>,
    pub api_listen: Option<SocketAddr>,
    pub heartbeat_interval: Option<String>,
    pub agent_cert_lifetime: Option<String>,
    /// The fleet repo to follow.
    pub git: Option<crate::controller::GitConfig>,
    /// Alert sinks and their routing.
    pub alerts: Option<crate::alerts::AlertsConfig>,
}

/// Resolved settings.
#[derive(Debug, Clone)]
pub struct RunConfig {
    pub agent_listen: SocketAddr,
    pub api_listen: SocketAddr,
    /// Told to agents in `Welcome`; 15 s keeps an idle NAT mapping open.
    pub heartbeat_interval: Duration,
    /// Lifetime of agent certificates issued at enrollment and renewal.
    pub agent_cert_lifetime: Duration,
    /// The fleet repo to follow (none: nothing is rolled out).
    pub git: Option<crate::controller::GitConfig>,
    pub alerts: Option<crate::alerts::AlertsConfig>,
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig {
            agent_listen: SocketAddr::from(([0, 0, 0, 0], 7443)),
            api_listen: SocketAddr::from(([127, 0, 0, 1], 8443)),
            heartbeat_interval: Duration::from_secs(15),
            agent_cert_lifetime: convoy_pki::DEFAULT_AGENT_CERT_LIFETIME,
            git: None,
            alerts: None,
        }
    }
}

impl FileConfig {
    pub fn load(path: &Path) -> Result<FileConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    pub fn parse(text: &str, path: &str) -> Result<FileConfig, ConfigError> {
        toml::from_str(text).map_err(|source| ConfigError::Parse {
            path: path.to_owned(),
            source,
        })
    }

    /// Applies the file over the defaults.
    pub fn resolve(&self) -> Result<RunConfig, ConfigError> {
        let mut c = RunConfig::default();
        if let Some(a) = self.agent_listen {
            c.agent_listen = a;
        }
        if let Some(a) = self.api_listen {
            c.api_listen = a;
        }
        if let Some(d) = &self.heartbeat_interval {
            c.heartbeat_interval = duration("heartbeat_interval", d)?;
            if c.heartbeat_interval < Duration::from_secs(1) {
                return Err(ConfigError::Invalid {
                    field: "heartbeat_interval",
                    reason: "must be at least 1s".into(),
                });
            }
        }
        if let Some(d) = &self.agent_cert_lifetime {
            c.agent_cert_lifetime = duration("agent_cert_lifetime", d)?;
            // Renewal happens at 60-80 % of the lifetime; below 10 s the
            // window is shorter than one reconnect.
            if c.agent_cert_lifetime < Duration::from_secs(10) {
                return Err(ConfigError::Invalid {
                    field: "agent_cert_lifetime",
                    reason: "must be at least 10s".into(),
                });
            }
        }
        if let Some(g) = &self.git {
            g.poll().map_err(|reason| ConfigError::Invalid {
                field: "git.poll_interval",
                reason,
            })?;
            c.git = Some(g.clone());
        }
        c.alerts = self.alerts.clone();
        Ok(c)
    }
}

fn duration(field: &'static str, s: &str) -> Result<Duration, ConfigError> {
    convoy_shared::duration::parse(s).map_err(|reason| ConfigError::Invalid { field, reason })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_are_errors() {
        assert!(FileConfig::parse("agent_listen = \"127.0.0.1:1\"\nbogus = 1\n", "t").is_err());
    }

    #[test]
    fn file_overrides_defaults() {
        let f = FileConfig::parse(
            "api_listen = \"127.0.0.1:9\"\nagent_cert_lifetime = \"20s\"\n",
            "t",
        )
        .unwrap();
        let c = f.resolve().unwrap();
        assert_eq!(c.api_listen, "127.0.0.1:9".parse().unwrap());
        assert_eq!(c.agent_cert_lifetime, Duration::from_secs(20));
        assert_eq!(c.agent_listen, RunConfig::default().agent_listen);
        let f = FileConfig::parse("agent_cert_lifetime = \"1s\"\n", "t").unwrap();
        assert!(f.resolve().is_err());
    }
}
