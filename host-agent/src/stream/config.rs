//! `convoy-agent run --config FILE`: TOML, unknown keys are errors.

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use super::StreamError;

/// Reconnect backoff defaults from DESIGN.md: 500 ms base, 60 s cap.
pub const DEFAULT_BASE: Duration = Duration::from_millis(500);
pub const DEFAULT_CAP: Duration = Duration::from_secs(60);
/// A connection that stayed up (welcomed) this long resets the backoff.
pub const STABLE_AFTER: Duration = Duration::from_secs(10);

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
    /// Telemetry sampling interval (default `10s`, at least `1s`).
    telemetry_interval: Option<String>,
    /// Path of `libnvidia-ml.so.1` (`CONVOY_NVML_LIBRARY` wins).
    nvml_library: Option<std::path::PathBuf>,
    /// `false`: never load NVML (no GPU telemetry). Default true.
    gpus: Option<bool>,
}

/// Resolved agent stream settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentConfig {
    pub server: Option<String>,
    pub backoff_base: Duration,
    pub backoff_cap: Duration,
    pub stable_after: Duration,
    /// How often host and GPU telemetry is sampled (and sent).
    pub telemetry_interval: Duration,
    /// `nvml_library` from the file; the environment still wins
    /// (see [`crate::telemetry::TelemetryConfig::with_nvml_library`]).
    pub nvml_library: Option<std::path::PathBuf>,
    pub gpus: bool,
}

/// Default telemetry sampling interval.
pub const DEFAULT_TELEMETRY_INTERVAL: Duration = crate::telemetry::DEFAULT_INTERVAL;
/// Shortest telemetry interval accepted from a config file.
pub const MIN_TELEMETRY_INTERVAL: Duration = Duration::from_secs(1);

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            server: None,
            backoff_base: DEFAULT_BASE,
            backoff_cap: DEFAULT_CAP,
            stable_after: STABLE_AFTER,
            telemetry_interval: DEFAULT_TELEMETRY_INTERVAL,
            nvml_library: None,
            gpus: true,
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
            telemetry_interval: d(
                "telemetry_interval",
                &f.telemetry_interval,
                DEFAULT_TELEMETRY_INTERVAL,
            )?,
            nvml_library: f.nvml_library,
            gpus: f.gpus.unwrap_or(true),
        };
        if cfg.telemetry_interval < MIN_TELEMETRY_INTERVAL {
            return Err("telemetry_interval must be at least 1s".into());
        }
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

    #[test]
    fn telemetry_settings() {
        let d = AgentConfig::parse("").unwrap();
        assert_eq!(d.telemetry_interval, Duration::from_secs(10));
        assert!(d.gpus);
        assert_eq!(d.nvml_library, None);
        let c = AgentConfig::parse(
            "telemetry_interval = \"30s\"\nnvml_library = \"/opt/nv/libnvidia-ml.so.1\"\ngpus = false\n",
        )
        .unwrap();
        assert_eq!(c.telemetry_interval, Duration::from_secs(30));
        assert_eq!(
            c.nvml_library.as_deref(),
            Some(Path::new("/opt/nv/libnvidia-ml.so.1"))
        );
        assert!(!c.gpus);
        assert!(AgentConfig::parse("telemetry_interval = \"100ms\"\n").is_err());
        assert!(AgentConfig::parse("gpus = \"yes\"\n").is_err());
    }
}
