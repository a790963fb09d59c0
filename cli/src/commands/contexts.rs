//! `convoy context list|use|show|add|remove`: the named control planes of
//! the CLI's config file ([`crate::config`]) and the settings in effect
//! ([`crate::settings`]).

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::args::{Cli, ContextCommand};
use crate::config::{self, ConfigFile, Context};
use crate::exit::Usage;
use crate::output::Ui;
use crate::settings::{self, Given, Origin, Settings, TokenSource};
use crate::style::Tone;

/// The connection flags of the command line.
pub fn given(cli: &Cli) -> Given {
    Given {
        api: cli.api.clone(),
        ca: cli.ca.clone(),
        token: cli.token.clone(),
        token_file: cli.token_file.clone(),
        context: cli.context.clone(),
    }
}

fn usage(e: impl std::error::Error) -> anyhow::Error {
    Usage(convoy_kit::error_chain(&e)).into()
}

/// The config file's path and contents (a missing file is empty).
pub fn load() -> anyhow::Result<(PathBuf, ConfigFile)> {
    let path = config::locate_from_env().map_err(usage)?;
    let file = ConfigFile::load(&path).map_err(usage)?;
    Ok((path, file))
}

/// The settings in effect for this command line. Without a locatable
/// config file (no HOME) there are simply no contexts.
pub fn effective(cli: &Cli) -> anyhow::Result<Settings> {
    let env = |n: &str| std::env::var(n).ok();
    let (path, file) = match config::locate(env) {
        Some(p) => {
            let f = ConfigFile::load(&p).map_err(usage)?;
            (Some(p), f)
        }
        None => (None, ConfigFile::default()),
    };
    Ok(settings::resolve(&given(cli), env, &file, path.as_deref())?)
}

pub fn run(cli: &Cli, ui: &Ui, cmd: &ContextCommand) -> anyhow::Result<()> {
    match cmd {
        ContextCommand::List => list(ui),
        ContextCommand::Use { name } => {
            let (path, mut file) = load()?;
            if !file.contexts.contains_key(name) {
                return Err(no_such(name, &path));
            }
            file.current_context = Some(name.clone());
            file.save(&path).map_err(usage)?;
            ui.emit(&json!({"current_context": name, "config": path}), |_, _| {
                format!("current context: {name}")
            })
        }
        ContextCommand::Show => show(cli, ui),
        ContextCommand::Add {
            name,
            force,
            make_current,
        } => add(cli, ui, name, *force, *make_current),
        ContextCommand::Remove { name } => {
            let (path, mut file) = load()?;
            if file.contexts.remove(name).is_none() {
                return Err(no_such(name, &path));
            }
            let was_current = file.current_context.as_deref() == Some(name);
            if was_current {
                file.current_context = None;
            }
            file.save(&path).map_err(usage)?;
            ui.emit(
                &json!({"removed": name, "was_current": was_current, "config": path}),
                |_, _| {
                    format!(
                        "removed context {name}{}",
                        if was_current {
                            " (no context is current now: convoy context use NAME)"
                        } else {
                            ""
                        }
                    )
                },
            )
        }
    }
}

fn no_such(name: &str, path: &Path) -> anyhow::Error {
    Usage(format!(
        "no context {name:?} in {} (convoy context list)",
        path.display()
    ))
    .into()
}

fn list(ui: &Ui) -> anyhow::Result<()> {
    let (path, file) = load()?;
    let rows: Vec<Value> = file
        .contexts
        .iter()
        .map(|(name, c)| {
            json!({
                "name": name,
                "current": file.current_context.as_deref() == Some(name),
                "api": c.api,
                "ca": c.ca,
                "token_file": c.token_file,
                "inline_token": c.token.is_some(),
            })
        })
        .collect();
    let v = json!({
        "config": path,
        "current_context": file.current_context,
        "contexts": rows,
    });
    ui.emit(&v, |v, p| {
        let rows = v["contexts"].as_array().cloned().unwrap_or_default();
        if rows.is_empty() {
            return format!(
                "no contexts in {} (convoy context add NAME --api URL --ca FILE --token-file FILE)",
                path.display()
            );
        }
        let mut out = p.header(&format!("  {:<20} {:<36} TOKEN", "NAME", "API"));
        for r in rows {
            let mark = if r["current"] == true { "*" } else { " " };
            let token = match (r["token_file"].as_str(), r["inline_token"] == true) {
                (Some(f), _) => format!("file {f}"),
                (None, true) => "inline".to_owned(),
                (None, false) => "-".to_owned(),
            };
            let name = format!("{:<20}", r["name"].as_str().unwrap_or("?"));
            out.push_str(&format!(
                "\n{mark} {} {:<36} {token}",
                if r["current"] == true {
                    p.paint(&name, Tone::Bold)
                } else {
                    name
                },
                r["api"].as_str().unwrap_or("-"),
            ));
        }
        out
    })
}

/// `{value, from}` of one setting.
fn setting(value: Option<String>, from: Option<&Origin>) -> Value {
    match (value, from) {
        (Some(v), Some(o)) => json!({"value": v, "from": o.to_string()}),
        _ => Value::Null,
    }
}

fn show(cli: &Cli, ui: &Ui) -> anyhow::Result<()> {
    let s = effective(cli)?;
    let token = match &s.token {
        None => Value::Null,
        Some((TokenSource::File(p), o)) => json!({"file": p, "from": o.to_string()}),
        Some((TokenSource::Inline(_), o)) => json!({"inline": true, "from": o.to_string()}),
    };
    let v = json!({
        "config": s.config_path,
        "context": s.context,
        "api": setting(Some(s.api.0.clone()), Some(&s.api.1)),
        "ca": setting(s.ca.as_ref().map(|(p, _)| p.display().to_string()), s.ca.as_ref().map(|(_, o)| o)),
        "token": token,
    });
    ui.emit(&v, |v, p| {
        let line = |k: &str, val: &str, from: &str| {
            format!(
                "{k:<8} {val:<48} {}",
                if from.is_empty() {
                    String::new()
                } else {
                    p.paint(&format!("({from})"), Tone::Dim)
                }
            )
            .trim_end()
            .to_owned()
        };
        let s = |x: &Value| x.as_str().unwrap_or("-").to_owned();
        let token = &v["token"];
        let token_text = if token.is_null() {
            "none (the API will answer 401)".to_owned()
        } else if let Some(f) = token["file"].as_str() {
            format!("from file {f}")
        } else {
            "given inline (not shown)".to_owned()
        };
        [
            line("config", &s(&v["config"]), ""),
            line("context", &s(&v["context"]), ""),
            line("api", &s(&v["api"]["value"]), &s(&v["api"]["from"])),
            line(
                "ca",
                &s(&v["ca"]["value"]),
                v["ca"]["from"].as_str().unwrap_or(""),
            ),
            line("token", &token_text, token["from"].as_str().unwrap_or("")),
        ]
        .join("\n")
    })
}

fn add(cli: &Cli, ui: &Ui, name: &str, force: bool, make_current: bool) -> anyhow::Result<()> {
    config::check_name(name).map_err(Usage)?;
    let (path, mut file) = load()?;
    if file.contexts.contains_key(name) && !force {
        return Err(Usage(format!(
            "context {name:?} exists in {} (--force replaces it)",
            path.display()
        ))
        .into());
    }
    // The flags, else the environment (never another context).
    let g = Given {
        context: None,
        ..given(cli)
    };
    let s = settings::resolve(&g, |n| std::env::var(n).ok(), &ConfigFile::default(), None)?;
    if s.api.1 == Origin::Default {
        return Err(Usage("context add needs --api https://HOST:PORT".into()).into());
    }
    crate::client::parse_base(&s.api.0)?;
    let ca = std::path::absolute(s.ca_path()?)?;
    let pem = std::fs::read_to_string(&ca)
        .map_err(|e| Usage(format!("reading the CA {}: {e}", ca.display())))?;
    convoy_kit::https::client(&pem).map_err(|e| {
        Usage(format!(
            "CA {}: {}",
            ca.display(),
            convoy_kit::error_chain(&e)
        ))
    })?;
    let mut ctx = Context {
        api: Some(s.api.0.clone()),
        ca: Some(ca),
        ..Context::default()
    };
    match &s.token {
        Some((TokenSource::File(f), _)) => {
            let f = std::path::absolute(f)?;
            settings::read_token_file(&f)?;
            ctx.token_file = Some(f);
        }
        Some((TokenSource::Inline(t), _)) => ctx.token = Some(t.clone()),
        None => ui.warn("no --token-file or --token: the API will refuse this context's calls"),
    }
    let replaced = file.contexts.insert(name.to_owned(), ctx).is_some();
    let current = make_current || file.current_context.is_none();
    if current {
        file.current_context = Some(name.to_owned());
    }
    file.save(&path).map_err(usage)?;
    ui.emit(
        &json!({"context": name, "replaced": replaced, "current": current, "config": path}),
        |_, _| {
            format!(
                "{} context {name} in {}{}",
                if replaced { "replaced" } else { "added" },
                path.display(),
                if current { " (current)" } else { "" }
            )
        },
    )
}

/// Adds or replaces `name` and makes it current (`convoy quickstart`).
/// Returns the file's path and the context that was current before, if it
/// was another one.
pub fn save_current(name: &str, ctx: Context) -> anyhow::Result<(PathBuf, Option<String>)> {
    let (path, mut file) = load()?;
    file.contexts.insert(name.to_owned(), ctx);
    let before = file
        .current_context
        .replace(name.to_owned())
        .filter(|b| b != name);
    file.save(&path).map_err(usage)?;
    Ok((path, before))
}

/// Removes `name` if it is there (`convoy quickstart --cleanup`).
pub fn remove_if_present(name: &str) -> anyhow::Result<()> {
    let (path, mut file) = load()?;
    if file.contexts.remove(name).is_some() {
        if file.current_context.as_deref() == Some(name) {
            file.current_context = None;
        }
        file.save(&path).map_err(usage)?;
    }
    Ok(())
}
