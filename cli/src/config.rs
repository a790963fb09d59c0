//! The CLI's own config file: named contexts (the API address, the CA file,
//! a token or a token file) and which one is current.
//!
//! ```toml
//! current_context = "prod"
//!
//! [contexts.prod]
//! api = "https://cp.example.com:8443"
//! ca = "/home/me/.config/convoy/prod-ca.pem"
//! token_file = "/home/me/.config/convoy/prod.token"   # mode 0600
//! ```
//!
//! Where: `$CONVOY_CLI_CONFIG` (the daemons' `CONVOY_CONFIG` is theirs), else
//! `$XDG_CONFIG_HOME/convoy/config.toml`, else `~/.config/convoy/config.toml`.
//! A missing file is an empty one. It is read through
//! [`convoy_kit::layers`] (unknown keys are errors) and written only by
//! `convoy context ...` and `convoy quickstart`, atomically with mode 0600
//! ([`convoy_kit::fsx::write_atomic`]) in a 0700 directory; comments in it
//! are not kept. Relative `ca`/`token_file` paths are relative to the
//! file's directory.

use std::collections::BTreeMap;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Names the CLI's config file (overrides the XDG location).
pub const CONFIG_ENV: &str = "CONVOY_CLI_CONFIG";
/// The largest config file read (hundreds of contexts fit in a few KiB).
const MAX_CONFIG_BYTES: u64 = 1024 * 1024;
/// The longest context name (it is typed on the command line).
const MAX_NAME: usize = 64;

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot locate the CLI config file: set {CONFIG_ENV}, XDG_CONFIG_HOME or HOME")]
    NoLocation,
    #[error("reading {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is larger than {MAX_CONFIG_BYTES} bytes")]
    TooLarge { path: String },
    #[error("{path}")]
    Layers {
        path: String,
        #[source]
        source: convoy_kit::layers::LayerError,
    },
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
    #[error("writing {path}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// The whole file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_context: Option<String>,
    #[serde(default)]
    pub contexts: BTreeMap<String, Context>,
}

/// One named control plane.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Context {
    /// `https://HOST:PORT` of the operator API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api: Option<String>,
    /// The fleet CA certificate (the control plane's `ca.pem`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<PathBuf>,
    /// The API token itself (prefer `token_file`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// A file holding the API token (mode 0600 or stricter).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_file: Option<PathBuf>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("api", &self.api)
            .field("ca", &self.ca)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("token_file", &self.token_file)
            .finish()
    }
}

/// Where the config file is, from the environment (`lookup`), or None when
/// neither `CONVOY_CLI_CONFIG`, `XDG_CONFIG_HOME` nor `HOME` says.
pub fn locate(lookup: impl Fn(&str) -> Option<String>) -> Option<PathBuf> {
    let set = |n: &str| lookup(n).filter(|v| !v.is_empty());
    if let Some(p) = set(CONFIG_ENV) {
        return Some(PathBuf::from(p));
    }
    // The XDG spec: a relative XDG_CONFIG_HOME is invalid and ignored.
    if let Some(x) = set("XDG_CONFIG_HOME").filter(|x| Path::new(x).is_absolute()) {
        return Some(Path::new(&x).join("convoy/config.toml"));
    }
    set("HOME").map(|h| Path::new(&h).join(".config/convoy/config.toml"))
}

/// [`locate`] from this process's environment.
pub fn locate_from_env() -> Result<PathBuf, ConfigError> {
    locate(|n| std::env::var(n).ok()).ok_or(ConfigError::NoLocation)
}

/// Checks a context name: short, and plain enough for a shell and a TOML key.
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "context name {name:?}: use 1 to {MAX_NAME} letters, digits, '-', '_' or '.'"
        ))
    }
}

impl ConfigFile {
    /// Reads `path`; a missing file is an empty config.
    pub fn load(path: &Path) -> Result<ConfigFile, ConfigError> {
        let shown = path.display().to_string();
        let meta = match std::fs::metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(ConfigFile::default());
            }
            Err(source) => {
                return Err(ConfigError::Read {
                    path: shown,
                    source,
                });
            }
        };
        if meta.len() > MAX_CONFIG_BYTES {
            return Err(ConfigError::TooLarge { path: shown });
        }
        let table = convoy_kit::layers::load_file(path).map_err(|source| ConfigError::Layers {
            path: shown.clone(),
            source,
        })?;
        let file: ConfigFile =
            toml::Value::Table(table)
                .try_into()
                .map_err(|e: toml::de::Error| ConfigError::Invalid {
                    path: shown.clone(),
                    message: e.message().to_owned(),
                })?;
        for name in file.contexts.keys() {
            check_name(name).map_err(|message| ConfigError::Invalid {
                path: shown.clone(),
                message,
            })?;
        }
        if let Some(cur) = &file.current_context
            && !file.contexts.contains_key(cur)
        {
            return Err(ConfigError::Invalid {
                path: shown,
                message: format!("current_context {cur:?} is not in [contexts]"),
            });
        }
        Ok(file)
    }

    /// Writes `path` atomically with mode 0600, making its directory (0700)
    /// if needed.
    pub fn save(&self, path: &Path) -> Result<(), ConfigError> {
        let err = |source| ConfigError::Write {
            path: path.display().to_string(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
            && !dir.exists()
        {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(err)?;
        }
        let body = toml::to_string(self).map_err(|e| err(std::io::Error::other(e.to_string())))?;
        let text = format!(
            "# The convoy CLI's contexts. Written by `convoy context` and `convoy quickstart`\n\
             # (comments are not kept). See `convoy context --help`.\n\n{body}"
        );
        convoy_kit::fsx::write_atomic(path, text.as_bytes(), 0o600).map_err(err)
    }

    /// A context with its relative paths made absolute against the config
    /// file's directory `base`.
    pub fn context_resolved(&self, name: &str, base: &Path) -> Option<Context> {
        let mut c = self.contexts.get(name)?.clone();
        let abs = |p: PathBuf| if p.is_absolute() { p } else { base.join(p) };
        c.ca = c.ca.map(abs);
        c.token_file = c.token_file.map(abs);
        Some(c)
    }
}

/// The permission bits of `path` that let others than its owner read it.
pub fn readable_by_others(path: &Path) -> std::io::Result<Option<u32>> {
    let mode = std::fs::metadata(path)?.permissions().mode() & 0o777;
    Ok((mode & 0o077 != 0).then_some(mode))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |n| {
            pairs
                .iter()
                .find(|(k, _)| *k == n)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn the_file_is_found_by_override_then_xdg_then_home() {
        let all = [
            (CONFIG_ENV, "/o/cli.toml"),
            ("XDG_CONFIG_HOME", "/x"),
            ("HOME", "/h"),
        ];
        assert_eq!(locate(env(&all)), Some("/o/cli.toml".into()));
        assert_eq!(locate(env(&all[1..])), Some("/x/convoy/config.toml".into()));
        assert_eq!(
            locate(env(&all[2..])),
            Some("/h/.config/convoy/config.toml".into())
        );
        // Empty or relative values do not count.
        assert_eq!(
            locate(env(&[
                (CONFIG_ENV, ""),
                ("XDG_CONFIG_HOME", "rel"),
                ("HOME", "/h")
            ])),
            Some("/h/.config/convoy/config.toml".into())
        );
        assert_eq!(locate(env(&[])), None);
    }

    #[test]
    fn save_then_load_round_trips_with_mode_0600_in_a_0700_dir() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("convoy/config.toml");
        assert_eq!(ConfigFile::load(&path).unwrap(), ConfigFile::default());
        let mut f = ConfigFile::default();
        f.contexts.insert(
            "prod".into(),
            Context {
                api: Some("https://cp:8443".into()),
                ca: Some("ca.pem".into()),
                token: None,
                token_file: Some("/abs/prod.token".into()),
            },
        );
        f.current_context = Some("prod".into());
        f.save(&path).unwrap();
        f.save(&path).unwrap();
        assert_eq!(ConfigFile::load(&path).unwrap(), f);
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().unwrap()), 0o700);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("current_context = \"prod\""), "{text}");
        assert!(text.contains("[contexts.prod]"), "{text}");
        // Relative paths are relative to the file's directory.
        let c = f.context_resolved("prod", path.parent().unwrap()).unwrap();
        assert_eq!(c.ca.unwrap(), path.parent().unwrap().join("ca.pem"));
        assert_eq!(c.token_file.unwrap(), PathBuf::from("/abs/prod.token"));
        assert!(f.context_resolved("nope", dir.path()).is_none());
    }

    #[test]
    fn bad_files_are_refused_with_their_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        let refused = |text: &str| {
            std::fs::write(&path, text).unwrap();
            let e = ConfigFile::load(&path).unwrap_err();
            let chain = convoy_kit::error_chain(&e);
            assert!(chain.contains("config.toml"), "{chain}");
            chain
        };
        assert!(refused("[contexts.a]\napi = \"x\"\ntokne = \"t\"\n").contains("tokne"));
        assert!(refused("current_context = \"b\"\n[contexts.a]\n").contains("\"b\""));
        refused("not toml at all [");
        refused("[contexts.\"bad name\"]\n");
        assert!(check_name("prod-eu.1").is_ok());
        assert!(check_name("").is_err());
        assert!(check_name(&"x".repeat(65)).is_err());
    }

    #[test]
    fn debug_never_shows_an_inline_token() {
        let c = Context {
            token: Some("cvat_secret".into()),
            ..Context::default()
        };
        assert!(!format!("{c:?}").contains("cvat_secret"));
    }
}
