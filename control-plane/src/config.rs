//! `convoy-control-plane run` configuration: built-in defaults, then the
//! TOML file (`/etc/convoy/control-plane.toml`; unknown keys are errors),
//! then `CONVOY_*` environment variables ([`ENV_KEYS`]), then command-line
//! flags. See `examples/config/control-plane.toml` for every key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use thiserror::Error;

/// Default agent port (gRPC over mTLS).
pub const DEFAULT_AGENT_LISTEN: &str = "0.0.0.0:7443";
/// Default operator API port (HTTPS), loopback only unless configured.
pub const DEFAULT_API_LISTEN: &str = "127.0.0.1:8443";
/// Default data dir (the unit's `StateDirectory=convoy`).
pub const DEFAULT_DATA_DIR: &str = "/var/lib/convoy";
/// Default config file.
pub const DEFAULT_CONFIG_FILE: &str = "/etc/convoy/control-plane.toml";

/// Keys that `CONVOY_<KEY>` environment variables override
/// (`api_listen` -> `CONVOY_API_LISTEN`, `git.token` -> `CONVOY_GIT_TOKEN`).
/// Alert sinks are arrays and come from the file only.
pub const ENV_KEYS: &[&str] = &[
    "data_dir",
    "agent_listen",
    "api_listen",
    "heartbeat_interval",
    "agent_cert_lifetime",
    "log_level",
    "log_format",
    "git.url",
    "git.branch",
    "git.poll_interval",
    "git.webhook_secret",
    "git.username",
    "git.token",
    "git.ssh_key",
    "alerts.public_url",
];

/// What `--print-config` redacts.
pub const SECRET_PATHS: &[&str] = &[
    "git.token",
    "git.webhook_secret",
    "alerts.sinks[].url",
    "alerts.sinks[].secret",
    "alerts.sinks[].bot_token",
];

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
    #[error("configuration")]
    Layer(#[from] convoy_kit::layers::LayerError),
    #[error("{origin}: {source}")]
    Merged {
        origin: String,
        #[source]
        source: toml::de::Error,
    },
}

/// The file as written. Every field is optional; durations use the fleet
/// repo syntax (`30s`, `24h`).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Data dir (CA, certificates, sled store). Default `/var/lib/convoy`.
    pub data_dir: Option<PathBuf>,
    /// Log filter (`info`, `debug`, `convoy_control_plane=debug,info`).
    /// `CONVOY_LOG` / `RUST_LOG` win over it. Default `info`.
    pub log_level: Option<String>,
    /// `text` or `json`. Default `text`.
    pub log_format: Option<String>,
    pub agent_listen: Option<SocketAddr>,
    pub api_listen: Option<SocketAddr>,
    pub heartbeat_interval: Option<String>,
    pub agent_cert_lifetime: Option<String>,
    /// The fleet repo to follow.
    pub git: Option<crate::sync::GitConfig>,
    /// Alert sinks and their routing.
    pub alerts: Option<crate::alerts::AlertsConfig>,
}

/// Resolved settings.
#[derive(Debug, Clone)]
pub struct RunConfig {
    pub data_dir: PathBuf,
    pub log_level: String,
    pub log_format: crate::logging::LogFormat,
    pub agent_listen: SocketAddr,
    pub api_listen: SocketAddr,
    /// Told to agents in `Welcome`; 15 s keeps an idle NAT mapping open.
    pub heartbeat_interval: Duration,
    /// Lifetime of agent certificates issued at enrollment and renewal.
    pub agent_cert_lifetime: Duration,
    /// The fleet repo to follow (none: nothing is rolled out).
    pub git: Option<crate::sync::GitConfig>,
    pub alerts: Option<crate::alerts::AlertsConfig>,
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig {
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            log_level: "info".into(),
            log_format: crate::logging::LogFormat::Text,
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
        if let Some(d) = &self.data_dir {
            c.data_dir = d.clone();
        }
        if let Some(l) = &self.log_level {
            tracing_subscriber::EnvFilter::try_new(l).map_err(|e| ConfigError::Invalid {
                field: "log_level",
                reason: e.to_string(),
            })?;
            c.log_level = l.clone();
        }
        if let Some(f) = &self.log_format {
            c.log_format = match f.as_str() {
                "text" => crate::logging::LogFormat::Text,
                "json" => crate::logging::LogFormat::Json,
                other => {
                    return Err(ConfigError::Invalid {
                        field: "log_format",
                        reason: format!("{other:?}: expected \"text\" or \"json\""),
                    });
                }
            };
        }
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

/// The built-in defaults as a table: the bottom layer, and what
/// `--print-config` shows for keys nobody set.
pub fn defaults_table() -> toml::Table {
    let mut t = toml::Table::new();
    let mut put = |k: &str, v: &str| {
        t.insert(k.into(), toml::Value::String(v.into()));
    };
    put("data_dir", DEFAULT_DATA_DIR);
    put("log_level", "info");
    put("log_format", "text");
    put("agent_listen", DEFAULT_AGENT_LISTEN);
    put("api_listen", DEFAULT_API_LISTEN);
    put("heartbeat_interval", "15s");
    put("agent_cert_lifetime", "24h");
    t
}

/// The effective configuration of `run`.
#[derive(Debug, Clone)]
pub struct Layered {
    /// Defaults < file < env < flags, as one table (unredacted).
    pub table: toml::Table,
    pub config: RunConfig,
}

impl Layered {
    /// Builds it. `file`: the config file, if any (a missing file is an
    /// error only if `required`); `env`: variable lookup; `flags`: the
    /// command-line overrides as a table.
    pub fn build(
        file: Option<&Path>,
        required: bool,
        env: impl Fn(&str) -> Option<String>,
        flags: toml::Table,
    ) -> Result<Layered, ConfigError> {
        use convoy_kit::layers;
        let mut table = defaults_table();
        let mut origin = "defaults".to_string();
        if let Some(p) = file
            && (required || p.exists())
        {
            let t = layers::load_file(p)?;
            // Validate the file on its own so errors name it.
            FileConfig::from_table(t.clone(), &p.display().to_string())?;
            layers::merge(&mut table, t);
            origin = p.display().to_string();
        }
        let over = layers::overrides(ENV_KEYS, env, flags)?;
        if !over.is_empty() {
            origin.push_str(" + environment/flags");
        }
        layers::merge(&mut table, over);
        let config = FileConfig::from_table(table.clone(), &origin)?.resolve()?;
        Ok(Layered { table, config })
    }

    /// The effective configuration as TOML, secrets redacted.
    pub fn redacted_toml(&self) -> String {
        let mut t = self.table.clone();
        convoy_kit::layers::redact(&mut t, SECRET_PATHS);
        t.to_string()
    }
}

impl FileConfig {
    fn from_table(t: toml::Table, origin: &str) -> Result<FileConfig, ConfigError> {
        toml::Value::Table(t)
            .try_into()
            .map_err(|source| ConfigError::Merged {
                origin: origin.to_owned(),
                source,
            })
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

    #[test]
    fn defaults_table_matches_the_defaults() {
        let c = FileConfig::from_table(defaults_table(), "d")
            .unwrap()
            .resolve()
            .unwrap();
        let d = RunConfig::default();
        assert_eq!(c.data_dir, d.data_dir);
        assert_eq!(c.agent_listen, d.agent_listen);
        assert_eq!(c.api_listen, d.api_listen);
        assert_eq!(c.heartbeat_interval, d.heartbeat_interval);
        assert_eq!(c.agent_cert_lifetime, d.agent_cert_lifetime);
        assert_eq!(c.log_level, d.log_level);
        assert_eq!(c.log_format, d.log_format);
    }

    #[test]
    fn precedence_is_defaults_file_env_flags() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("cp.toml");
        std::fs::write(
            &file,
            "api_listen = \"127.0.0.1:1001\"\nagent_listen = \"127.0.0.1:2001\"\n\
             heartbeat_interval = \"5s\"\n[git]\nurl = \"/repo\"\ntoken = \"sekrit\"\n",
        )
        .unwrap();
        let env = |n: &str| match n {
            "CONVOY_API_LISTEN" => Some("127.0.0.1:1002".to_string()),
            "CONVOY_AGENT_LISTEN" => Some("127.0.0.1:2002".to_string()),
            "CONVOY_GIT_WEBHOOK_SECRET" => Some("hook-sekrit".to_string()),
            _ => None,
        };
        let mut flags = toml::Table::new();
        flags.insert("agent_listen".into(), "127.0.0.1:2003".into());
        let l = Layered::build(Some(&file), true, env, flags).unwrap();
        assert_eq!(l.config.api_listen, "127.0.0.1:1002".parse().unwrap()); // env > file
        assert_eq!(l.config.agent_listen, "127.0.0.1:2003".parse().unwrap()); // flag > env
        assert_eq!(l.config.heartbeat_interval, Duration::from_secs(5)); // file > default
        assert_eq!(l.config.data_dir, PathBuf::from(DEFAULT_DATA_DIR)); // default
        let printed = l.redacted_toml();
        assert!(!printed.contains("sekrit"), "{printed}");
        assert!(printed.contains("127.0.0.1:2003"), "{printed}");
        // Unknown keys are errors, from the file and from nowhere else.
        std::fs::write(&file, "bogus = 1\n").unwrap();
        let e = Layered::build(Some(&file), true, |_| None, toml::Table::new()).unwrap_err();
        assert!(format!("{e}").contains("cp.toml"), "{e}");
        // A bad env value names itself.
        let e = Layered::build(
            None,
            false,
            |n| (n == "CONVOY_API_LISTEN").then(|| "nonsense".to_string()),
            toml::Table::new(),
        )
        .unwrap_err();
        assert!(format!("{e}").contains("environment"), "{e}");
    }
}
