//! Which control plane a command talks to, with which CA and token.
//!
//! Precedence, highest first: a flag (`--api`, `--ca`, `--token`,
//! `--token-file`), an environment variable (`CONVOY_API`, `CONVOY_CA`,
//! `CONVOY_TOKEN`, `CONVOY_TOKEN_FILE`), the context in use (`--context`,
//! else `CONVOY_CONTEXT`, else the file's `current_context`), the default
//! (`https://127.0.0.1:8443`, no CA, no token). The layers are merged with
//! [`convoy_kit::layers`], the daemons' own layering; the one rule added
//! here is that a token and a token file are one setting: a layer that
//! gives either replaces both from the layers below.
//!
//! [`resolve`] is pure (the environment comes in as a lookup); reading the
//! token file and checking its mode happens in [`Settings::read_token`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use convoy_kit::layers;
use toml::{Table, Value};

use crate::config::{self, ConfigFile};
use crate::exit::Usage;

/// The API when nothing says otherwise (the control plane's default
/// `api_listen`).
pub const DEFAULT_API: &str = "https://127.0.0.1:8443";
/// Selects a context, below `--context`.
pub const CONTEXT_ENV: &str = "CONVOY_CONTEXT";
/// The settings, by their layers key; the environment names follow
/// [`layers::env_name`]: `CONVOY_API`, `CONVOY_CA`, `CONVOY_TOKEN`,
/// `CONVOY_TOKEN_FILE`.
const KEYS: [&str; 4] = ["api", "ca", "token", "token_file"];
/// The largest token file read (a token is ~50 bytes).
const MAX_TOKEN_FILE: u64 = 64 * 1024;

/// Where a setting came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Flag(&'static str),
    Env(String),
    Context(String),
    Default,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Flag(flag) => write!(f, "flag {flag}"),
            Origin::Env(name) => write!(f, "env {name}"),
            Origin::Context(name) => write!(f, "context {name}"),
            Origin::Default => f.write_str("default"),
        }
    }
}

/// The connection flags given on the command line.
#[derive(Debug, Clone, Default)]
pub struct Given {
    pub api: Option<String>,
    pub ca: Option<PathBuf>,
    pub token: Option<String>,
    pub token_file: Option<PathBuf>,
    pub context: Option<String>,
}

/// The token, or where to read it.
#[derive(Clone, PartialEq, Eq)]
pub enum TokenSource {
    Inline(String),
    File(PathBuf),
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TokenSource::Inline(_) => f.write_str("Inline(<redacted>)"),
            TokenSource::File(p) => f.debug_tuple("File").field(p).finish(),
        }
    }
}

/// The effective settings of one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The context in use, if any.
    pub context: Option<String>,
    /// The config file (whether or not it exists).
    pub config_path: Option<PathBuf>,
    pub api: (String, Origin),
    pub ca: Option<(PathBuf, Origin)>,
    pub token: Option<(TokenSource, Origin)>,
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Merges the layers (lowest first), remembering which layer set each key.
fn merge_layers(stack: Vec<(Origin, Table)>) -> (Table, BTreeMap<String, Origin>) {
    let mut merged = Table::new();
    let mut from = BTreeMap::new();
    for (origin, layer) in stack {
        if layer.contains_key("token") || layer.contains_key("token_file") {
            for k in ["token", "token_file"] {
                merged.remove(k);
                from.remove(k);
            }
        }
        for k in layer.keys() {
            from.insert(k.clone(), origin.clone());
        }
        layers::merge(&mut merged, layer);
    }
    (merged, from)
}

/// The effective settings from the flags, the environment (`lookup`) and
/// the config file (`file`, read from `config_path`).
pub fn resolve(
    given: &Given,
    lookup: impl Fn(&str) -> Option<String>,
    file: &ConfigFile,
    config_path: Option<&Path>,
) -> Result<Settings, Usage> {
    // An empty variable is an unset one.
    let lookup = |n: &str| lookup(n).filter(|v| !v.is_empty());
    let named = given.context.clone().or_else(|| lookup(CONTEXT_ENV));
    let where_ =
        || config_path.map_or_else(|| "the config file".to_owned(), |p| p.display().to_string());
    let context = match named {
        Some(name) if !file.contexts.contains_key(&name) => {
            return Err(Usage(format!(
                "no context {name:?} in {} (convoy context list)",
                where_()
            )));
        }
        Some(name) => Some(name),
        None => file.current_context.clone(),
    };

    let mut defaults = Table::new();
    defaults.insert("api".into(), Value::String(DEFAULT_API.into()));
    let mut from_context = Table::new();
    if let Some(name) = &context {
        let base = config_path
            .and_then(Path::parent)
            .unwrap_or_else(|| Path::new("."));
        if let Some(c) = file.context_resolved(name, base) {
            let mut put = |k: &str, v: Option<String>| {
                if let Some(v) = v {
                    from_context.insert(k.into(), Value::String(v));
                }
            };
            put("api", c.api);
            put("ca", c.ca.map(|p| p.display().to_string()));
            put("token", c.token);
            put("token_file", c.token_file.map(|p| p.display().to_string()));
        }
    }
    let mut from_env = Table::new();
    let applied =
        layers::apply_env(&mut from_env, &KEYS, lookup).map_err(|e| Usage(e.to_string()))?;
    let flags = layers::Flags::new()
        .set("api", given.api.as_deref())
        .set("ca", given.ca.as_deref().map(Path::display))
        .set("token", given.token.as_deref())
        .set("token_file", given.token_file.as_deref().map(Path::display))
        .into_table();

    let ctx_origin = Origin::Context(context.clone().unwrap_or_default());
    let (merged, mut from) = merge_layers(vec![
        (Origin::Default, defaults),
        (ctx_origin, from_context),
        (Origin::Env(String::new()), from_env),
        (Origin::Flag(""), flags),
    ]);
    // Name the exact variable and flag of each setting.
    for (k, o) in &mut from {
        match o {
            Origin::Env(name) => {
                *name = layers::env_name(k);
                debug_assert!(applied.contains(name));
            }
            Origin::Flag(flag) => {
                *flag = match k.as_str() {
                    "api" => "--api",
                    "ca" => "--ca",
                    "token" => "--token",
                    _ => "--token-file",
                }
            }
            _ => {}
        }
    }
    let origin = |k: &str| from.get(k).cloned().unwrap_or(Origin::Default);
    let get = |k: &str| merged.get(k).map(text);
    let token = match (get("token"), get("token_file")) {
        (Some(t), _) => Some((TokenSource::Inline(t), origin("token"))),
        (None, Some(f)) => Some((TokenSource::File(f.into()), origin("token_file"))),
        (None, None) => None,
    };
    Ok(Settings {
        context,
        config_path: config_path.map(Path::to_path_buf),
        api: (
            get("api").unwrap_or_else(|| DEFAULT_API.into()),
            origin("api"),
        ),
        ca: get("ca").map(|c| (PathBuf::from(c), origin("ca"))),
        token,
    })
}

impl Settings {
    /// The CA file, which every API call needs.
    pub fn ca_path(&self) -> Result<&Path, Usage> {
        self.ca.as_ref().map(|(p, _)| p.as_path()).ok_or_else(|| {
            Usage(
                "no CA certificate: give --ca FILE (the fleet CA, ca.pem in the control \
                 plane's data dir), set CONVOY_CA, or add a context: convoy context add NAME \
                 --api URL --ca FILE --token-file FILE"
                    .into(),
            )
        })
    }

    /// The token, read from its file if it is one. A token file, or a config
    /// file holding a token inline, that others may read is refused.
    pub fn read_token(&self) -> Result<Option<String>, Usage> {
        match &self.token {
            None => Ok(None),
            Some((TokenSource::Inline(t), Origin::Context(_))) => {
                if let Some(p) = &self.config_path {
                    refuse_if_shared(p, "holds an inline token and")?;
                }
                Ok(Some(t.clone()))
            }
            Some((TokenSource::Inline(t), _)) => Ok(Some(t.clone())),
            Some((TokenSource::File(p), _)) => read_token_file(p).map(Some),
        }
    }
}

fn refuse_if_shared(path: &Path, what: &str) -> Result<(), Usage> {
    let shown = path.display();
    match config::readable_by_others(path) {
        Ok(None) => Ok(()),
        Ok(Some(mode)) => Err(Usage(format!(
            "{shown} {what} is readable by others (mode {mode:04o}): chmod 600 {shown}"
        ))),
        Err(e) => Err(Usage(format!("{shown}: {e}"))),
    }
}

/// Reads a token file (mode 0600 or stricter, at most 64 KiB, not empty).
pub fn read_token_file(path: &Path) -> Result<String, Usage> {
    let shown = path.display();
    refuse_if_shared(path, "(the API token file)")?;
    let len = std::fs::metadata(path)
        .map_err(|e| Usage(format!("token file {shown}: {e}")))?
        .len();
    if len > MAX_TOKEN_FILE {
        return Err(Usage(format!(
            "token file {shown} is larger than {MAX_TOKEN_FILE} bytes"
        )));
    }
    let t = std::fs::read_to_string(path).map_err(|e| Usage(format!("token file {shown}: {e}")))?;
    let t = t.trim();
    if t.is_empty() {
        return Err(Usage(format!("token file {shown} is empty")));
    }
    Ok(t.to_owned())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::config::Context;

    fn file() -> ConfigFile {
        let mut f = ConfigFile::default();
        f.contexts.insert(
            "prod".into(),
            Context {
                api: Some("https://prod:8443".into()),
                ca: Some("prod-ca.pem".into()),
                token: None,
                token_file: Some("/secrets/prod.token".into()),
            },
        );
        f.contexts.insert(
            "lab".into(),
            Context {
                api: Some("https://lab:8443".into()),
                ca: Some("/lab/ca.pem".into()),
                token: Some("cvat_lab".into()),
                token_file: None,
            },
        );
        f.current_context = Some("prod".into());
        f
    }

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |n| {
            pairs
                .iter()
                .find(|(k, _)| *k == n)
                .map(|(_, v)| v.to_string())
        }
    }

    const CFG: &str = "/home/me/.config/convoy/config.toml";

    #[test]
    fn the_current_context_fills_what_flags_and_env_leave_out() {
        let s = resolve(&Given::default(), env(&[]), &file(), Some(Path::new(CFG))).unwrap();
        assert_eq!(s.context.as_deref(), Some("prod"));
        assert_eq!(
            s.api,
            ("https://prod:8443".into(), Origin::Context("prod".into()))
        );
        // A relative path in the file is relative to the file's directory.
        assert_eq!(
            s.ca.unwrap().0,
            PathBuf::from("/home/me/.config/convoy/prod-ca.pem")
        );
        assert_eq!(
            s.token.unwrap().0,
            TokenSource::File("/secrets/prod.token".into())
        );
    }

    #[test]
    fn flag_beats_env_beats_context_beats_default() {
        let vars = [
            ("CONVOY_API", "https://env:1"),
            ("CONVOY_CA", "/env/ca.pem"),
        ];
        let given = Given {
            api: Some("https://flag:2".into()),
            ..Given::default()
        };
        let s = resolve(&given, env(&vars), &file(), Some(Path::new(CFG))).unwrap();
        assert_eq!(s.api, ("https://flag:2".into(), Origin::Flag("--api")));
        assert_eq!(
            s.ca,
            Some(("/env/ca.pem".into(), Origin::Env("CONVOY_CA".into())))
        );
        assert_eq!(s.token.unwrap().1, Origin::Context("prod".into()));
        // No file, no env, no flags: the default API, nothing else.
        let s = resolve(&Given::default(), env(&[]), &ConfigFile::default(), None).unwrap();
        assert_eq!(s.api, (DEFAULT_API.into(), Origin::Default));
        assert_eq!(s.ca, None);
        assert_eq!(s.token, None);
        assert!(s.ca_path().unwrap_err().0.contains("--ca"));
        // An empty variable counts as unset.
        let s = resolve(&Given::default(), env(&[("CONVOY_API", "")]), &file(), None).unwrap();
        assert_eq!(s.api.1, Origin::Context("prod".into()));
    }

    #[test]
    fn a_token_and_a_token_file_are_one_setting() {
        // The env's token hides the context's token file ...
        let s = resolve(
            &Given::default(),
            env(&[("CONVOY_TOKEN", "cvat_env")]),
            &file(),
            None,
        )
        .unwrap();
        assert_eq!(
            s.token,
            Some((
                TokenSource::Inline("cvat_env".into()),
                Origin::Env("CONVOY_TOKEN".into())
            ))
        );
        // ... and a token file flag hides the env's token.
        let given = Given {
            token_file: Some("/flag.token".into()),
            ..Given::default()
        };
        let s = resolve(&given, env(&[("CONVOY_TOKEN", "cvat_env")]), &file(), None).unwrap();
        assert_eq!(
            s.token,
            Some((
                TokenSource::File("/flag.token".into()),
                Origin::Flag("--token-file")
            ))
        );
        assert!(!format!("{:?}", s.token).contains("cvat"));
    }

    #[test]
    fn the_context_is_chosen_by_flag_then_env_then_the_file() {
        let lab = |given: &Given, vars: &[(&str, &str)]| {
            resolve(given, env(vars), &file(), None).unwrap().context
        };
        let flag = Given {
            context: Some("lab".into()),
            ..Given::default()
        };
        assert_eq!(lab(&flag, &[(CONTEXT_ENV, "prod")]).as_deref(), Some("lab"));
        assert_eq!(
            lab(&Given::default(), &[(CONTEXT_ENV, "lab")]).as_deref(),
            Some("lab")
        );
        assert_eq!(lab(&Given::default(), &[]).as_deref(), Some("prod"));
        let unknown = Given {
            context: Some("nope".into()),
            ..Given::default()
        };
        let e = resolve(&unknown, env(&[]), &file(), Some(Path::new(CFG))).unwrap_err();
        assert!(e.0.contains("\"nope\"") && e.0.contains(CFG), "{e}");
        // No current context: defaults.
        let mut f = file();
        f.current_context = None;
        let s = resolve(&Given::default(), env(&[]), &f, None).unwrap();
        assert_eq!((s.context, s.api.1), (None, Origin::Default));
    }

    #[test]
    fn token_files_others_can_read_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t");
        std::fs::write(&p, "cvat_x\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = read_token_file(&p).unwrap_err();
        assert!(e.0.contains("chmod 600") && e.0.contains("0644"), "{e}");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(read_token_file(&p).unwrap(), "cvat_x");
        std::fs::write(&p, "  \n").unwrap();
        assert!(read_token_file(&p).unwrap_err().0.contains("empty"));
        assert!(read_token_file(&dir.path().join("missing")).is_err());
        // An inline token in a config file others can read is refused too.
        let cfg = dir.path().join("config.toml");
        std::fs::write(&cfg, "").unwrap();
        std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o640)).unwrap();
        let lab = Given {
            context: Some("lab".into()),
            ..Given::default()
        };
        let s = resolve(&lab, env(&[]), &file(), Some(&cfg)).unwrap();
        assert!(s.read_token().unwrap_err().0.contains("inline token"));
        std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(s.read_token().unwrap().as_deref(), Some("cvat_lab"));
    }
}
