//! Layered daemon configuration: built-in defaults, then the TOML file, then
//! `CONVOY_*` environment variables, then command-line flags, merged as TOML
//! tables before the daemon's typed config (with `deny_unknown_fields`)
//! parses the result. The merged table is also what `--print-config` shows,
//! with secrets replaced by `"<redacted>"`.
//!
//! Environment names: the key upper-cased with `.` and `-` turned into `_`,
//! prefixed with `CONVOY_` (`api_listen` -> `CONVOY_API_LISTEN`,
//! `git.token` -> `CONVOY_GIT_TOKEN`). Only the keys a daemon lists are read,
//! so unrelated `CONVOY_*` variables (the CLI's `CONVOY_TOKEN`, ...) are
//! never mistaken for configuration. A value that parses as a TOML value
//! (`true`, `30`, `["a"]`) is taken as that; anything else is a string.

use std::path::{Path, PathBuf};

use thiserror::Error;
use toml::{Table, Value};

/// What replaces a secret in printed configuration.
pub const REDACTED: &str = "<redacted>";

#[derive(Debug, Error)]
pub enum LayerError {
    #[error("reading {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: String, message: String },
    #[error("{key}: {reason}")]
    Conflict { key: String, reason: String },
}

/// Reads a TOML file into a table.
pub fn load_file(path: &Path) -> Result<Table, LayerError> {
    let text = std::fs::read_to_string(path).map_err(|source| LayerError::Read {
        path: path.display().to_string(),
        source,
    })?;
    parse(&text, &path.display().to_string())
}

/// Parses TOML text into a table.
pub fn parse(text: &str, origin: &str) -> Result<Table, LayerError> {
    text.parse::<Table>().map_err(|e| LayerError::Parse {
        path: origin.to_owned(),
        message: e.to_string(),
    })
}

/// The environment variable for a (dotted) key.
pub fn env_name(key: &str) -> String {
    format!(
        "CONVOY_{}",
        key.to_ascii_uppercase().replace(['.', '-'], "_")
    )
}

/// An environment value as TOML: typed if it parses as a TOML value,
/// otherwise the string itself.
pub fn env_value(raw: &str) -> Value {
    match format!("v = {raw}").parse::<Table>() {
        Ok(mut t) => t
            .remove("v")
            .unwrap_or_else(|| Value::String(raw.to_owned())),
        Err(_) => Value::String(raw.to_owned()),
    }
}

/// Sets a dotted key, creating intermediate tables.
pub fn set(table: &mut Table, key: &str, value: Value) -> Result<(), LayerError> {
    let mut parts: Vec<&str> = key.split('.').collect();
    let last = parts.pop().unwrap_or(key);
    let mut cur = table;
    for p in parts {
        let entry = cur
            .entry(p.to_owned())
            .or_insert_with(|| Value::Table(Table::new()));
        cur = match entry {
            Value::Table(t) => t,
            _ => {
                return Err(LayerError::Conflict {
                    key: key.to_owned(),
                    reason: format!("{p} is not a table"),
                });
            }
        };
    }
    cur.insert(last.to_owned(), value);
    Ok(())
}

/// Applies `CONVOY_*` overrides for `keys`, reading variables through
/// `lookup` (`|n| std::env::var(n).ok()` in the daemons). Returns the names
/// of the variables that were applied.
pub fn apply_env(
    table: &mut Table,
    keys: &[&str],
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<Vec<String>, LayerError> {
    let mut applied = Vec::new();
    for key in keys {
        let name = env_name(key);
        if let Some(raw) = lookup(&name) {
            set(table, key, env_value(&raw))?;
            applied.push(name);
        }
    }
    Ok(applied)
}

/// The command-line layer: only the flags that were given, as string
/// values, so a flag left out never hides the file or the environment.
#[derive(Debug, Default, Clone)]
pub struct Flags(Table);

impl Flags {
    pub fn new() -> Flags {
        Flags::default()
    }

    /// Sets `key` to `value` if the flag was given.
    pub fn set(mut self, key: &str, value: Option<impl std::fmt::Display>) -> Flags {
        if let Some(v) = value {
            self.0.insert(key.to_owned(), Value::String(v.to_string()));
        }
        self
    }

    pub fn into_table(self) -> Table {
        self.0
    }
}

/// The layers above the file, as one table: `CONVOY_*` variables for
/// `keys` (read through `lookup`), then `flags` on top.
pub fn overrides(
    keys: &[&str],
    lookup: impl Fn(&str) -> Option<String>,
    flags: Table,
) -> Result<Table, LayerError> {
    let mut over = Table::new();
    apply_env(&mut over, keys, lookup)?;
    merge(&mut over, flags);
    Ok(over)
}

/// Which config file to read and whether it must exist: the one given on
/// the command line (missing = an error), else `default` if it is there.
pub fn config_file(given: Option<PathBuf>, default: &str) -> (PathBuf, bool) {
    match given {
        Some(p) => (p, true),
        None => (PathBuf::from(default), false),
    }
}

/// `over` on top of `base`: tables merge recursively, anything else replaces.
pub fn merge(base: &mut Table, over: Table) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(Value::Table(b)), Value::Table(o)) => merge(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

/// Replaces the values at `paths` with [`REDACTED`]. A path is dotted;
/// `name[]` steps into every element of an array of tables
/// (`alerts.sinks[].url`).
pub fn redact(table: &mut Table, paths: &[&str]) {
    for path in paths {
        let parts: Vec<&str> = path.split('.').collect();
        redact_in(table, &parts);
    }
}

fn redact_in(table: &mut Table, parts: &[&str]) {
    let Some((first, rest)) = parts.split_first() else {
        return;
    };
    if rest.is_empty() {
        if let Some(v) = table.get_mut(*first) {
            *v = Value::String(REDACTED.into());
        }
        return;
    }
    if let Some(name) = first.strip_suffix("[]") {
        if let Some(Value::Array(items)) = table.get_mut(name) {
            for item in items {
                if let Value::Table(t) = item {
                    redact_in(t, rest);
                }
            }
        }
    } else if let Some(Value::Table(t)) = table.get_mut(*first) {
        redact_in(t, rest);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn env_names_and_values() {
        assert_eq!(env_name("api_listen"), "CONVOY_API_LISTEN");
        assert_eq!(env_name("git.token"), "CONVOY_GIT_TOKEN");
        assert_eq!(env_value("true"), Value::Boolean(true));
        assert_eq!(env_value("30"), Value::Integer(30));
        assert_eq!(
            env_value("0.0.0.0:7443"),
            Value::String("0.0.0.0:7443".into())
        );
        assert_eq!(env_value("30s"), Value::String("30s".into()));
        assert_eq!(env_value("\"x\""), Value::String("x".into()));
    }

    #[test]
    fn layers_apply_in_order_and_redact() {
        let mut t = parse("a = \"1\"\n[git]\nurl = \"u\"\ntoken = \"t\"\n", "f").unwrap();
        let mut defaults = parse("a = \"0\"\nb = \"0\"\n", "d").unwrap();
        merge(&mut defaults, t.clone());
        assert_eq!(defaults["a"].as_str(), Some("1"));
        assert_eq!(defaults["b"].as_str(), Some("0"));
        let applied = apply_env(&mut t, &["a", "git.branch", "c"], |n| match n {
            "CONVOY_A" => Some("2".into()),
            "CONVOY_GIT_BRANCH" => Some("dev".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(applied, ["CONVOY_A", "CONVOY_GIT_BRANCH"]);
        assert_eq!(t["a"].as_integer(), Some(2));
        assert_eq!(t["git"]["branch"].as_str(), Some("dev"));
        let mut s = parse(
            "[git]\ntoken = \"t\"\n[[alerts.sinks]]\nurl = \"https://x\"\nname = \"n\"\n",
            "s",
        )
        .unwrap();
        redact(
            &mut s,
            &["git.token", "git.webhook_secret", "alerts.sinks[].url"],
        );
        assert_eq!(s["git"]["token"].as_str(), Some(REDACTED));
        assert!(s["git"].get("webhook_secret").is_none());
        assert_eq!(s["alerts"]["sinks"][0]["url"].as_str(), Some(REDACTED));
        assert_eq!(s["alerts"]["sinks"][0]["name"].as_str(), Some("n"));
        assert!(set(&mut s, "git.token.x", Value::Integer(1)).is_err());
    }

    #[test]
    fn flags_given_win_over_the_environment_and_absent_ones_do_not() {
        let flags = Flags::new()
            .set("api_listen", Some("127.0.0.1:1"))
            .set("log_level", None::<String>)
            .set("data_dir", Some(Path::new("/d").display()))
            .into_table();
        assert_eq!(flags.len(), 2);
        let over = overrides(
            &["api_listen", "log_level"],
            |n| match n {
                "CONVOY_API_LISTEN" => Some("0.0.0.0:2".into()),
                "CONVOY_LOG_LEVEL" => Some("debug".into()),
                _ => None,
            },
            flags,
        )
        .unwrap();
        assert_eq!(over["api_listen"].as_str(), Some("127.0.0.1:1"));
        assert_eq!(over["log_level"].as_str(), Some("debug"));
        assert_eq!(over["data_dir"].as_str(), Some("/d"));
        assert_eq!(
            config_file(None, "/etc/x.toml"),
            (PathBuf::from("/etc/x.toml"), false)
        );
        assert_eq!(
            config_file(Some("my.toml".into()), "/etc/x.toml"),
            (PathBuf::from("my.toml"), true)
        );
    }
}
