//! `convoy-agent run --config FILE`: TOML, unknown keys are errors.

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use super::StreamError;
use super::backoff::{DEFAULT_BASE, DEFAULT_CAP, STABLE_AFTER};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    /// Overrides the server recorded at enrollment (`HOST:PORT`).
    server: Option<String>,
    /// Reconnect backoff base and cap (`500ms`, `60s`).
    backoff_base: Option<String>,
    backoff_cap: Option<String>,
    /// A connection up this long resets the backoff.
    stable_after: Option<String>,
}

/// Resolved agent stream settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentConfig {
    pub server: Option<String>,
    pub backoff_base: Duration,
    pub backoff_cap: Duration,
    pub stable_after: Duration,
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            server: None,
            backoff_base: DEFAULT_BASE,
            backoff_cap: DEFAULT_CAP,
            stable_after: STABLE_AFTER,
        }
    }
}

impl AgentConfig {
    pub fn load(path: &Path) -> Result<AgentConfig, StreamError> {
        let text = std::fs::read_to_string(path).map_err(StreamError::io("reading", path))?;
        Self::parse(&text).map_err(|e| StreamError::Config(format!("{}: {e}", path.display())))
    }

    pub fn parse(text: &str) -> Result<AgentConfig, String> {
        let f: FileConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        let d = |field: &str, v: &Option<String>, default: Duration| match v {
            None => Ok(default),
            Some(s) => convoy_shared::duration::parse(s).map_err(|e| format!("{field}: {e}")),
        };
        let cfg = AgentConfig {
            server: f.server,
            backoff_base: d("backoff_base", &f.backoff_base, DEFAULT_BASE)?,
            backoff_cap: d("backoff_cap", &f.backoff_cap, DEFAULT_CAP)?,
            stable_after: d("stable_after", &f.stable_after, STABLE_AFTER)?,
        };
        if cfg.backoff_base.is_zero() || cfg.backoff_cap < cfg.backoff_base {
            return Err("backoff_base must be > 0 and <= backoff_cap".into());
        }
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects_unknown_keys() {
        let c = AgentConfig::parse("backoff_cap = \"2s\"\nserver = \"h:1\"\n").unwrap();
        assert_eq!(c.backoff_cap, Duration::from_secs(2));
        assert_eq!(c.server.as_deref(), Some("h:1"));
        assert!(AgentConfig::parse("nope = 1\n").is_err());
        assert!(AgentConfig::parse("backoff_base = \"5s\"\nbackoff_cap = \"1s\"\n").is_err());
    }
}
