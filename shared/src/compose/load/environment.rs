//! `env_file` and `environment`: the container's variables. `env_file`
//! entries are read from the stack dir in order, then `environment` goes on
//! top (compose's precedence); an entry without a value takes the stack's
//! variable of that name.

use std::collections::BTreeMap;

use super::StackFiles;
use super::service::{Area, Ctx, key_what};
use crate::compose::dotenv;
use crate::compose::model::Service;
use crate::source::decode::{Cx, Fields};
use crate::source::node::{Node, Value};

pub(super) const AREA: Area = Area {
    keys: &["environment", "env_file"],
    decode,
};

fn decode(f: &Fields<'_>, s: &mut Ctx<'_, '_>, svc: &mut Service) {
    let (what, vars, files, cx) = (s.what, s.vars, s.files, &mut *s.cx);
    // env_file first, environment on top (compose's precedence).
    if let Some(n) = f.get("env_file") {
        env_files(
            n,
            &key_what(what, "env_file"),
            vars,
            files,
            cx,
            &mut svc.environment,
        );
    }
    if let Some(n) = f.get("environment") {
        environment(
            n,
            &key_what(what, "environment"),
            vars,
            cx,
            &mut svc.environment,
        );
    }
}

fn env_files(
    n: &Node,
    what: &str,
    vars: &dyn Fn(&str) -> Option<String>,
    files: &dyn StackFiles,
    cx: &mut Cx<'_>,
    env: &mut BTreeMap<String, Option<String>>,
) {
    let items: Vec<&Node> = match &n.value {
        Value::Seq(items) => items.iter().collect(),
        _ => vec![n],
    };
    for item in items {
        let (path, required) = match &item.value {
            Value::Map(_) => {
                let Some(f) = cx.fields(item, what, &["path", "required", "format"], &[], false)
                else {
                    continue;
                };
                let Some(p) = f
                    .get("path")
                    .and_then(|p| cx.text(p, &format!("{what}.path")))
                else {
                    cx.error(item.pos, format!("{what}: an entry needs a `path`"));
                    continue;
                };
                let required = f
                    .get("required")
                    .and_then(|r| cx.boolean(r, &format!("{what}.required")))
                    .unwrap_or(true);
                if let Some(fmt) = f.get("format")
                    && cx.text(fmt, &format!("{what}.format")).as_deref() != Some("raw")
                {
                    cx.error(
                        fmt.pos,
                        format!("{what}: only `format: raw` is supported besides the default"),
                    );
                }
                (p, required)
            }
            _ => match cx.text(item, what) {
                Some(p) => (p, true),
                None => continue,
            },
        };
        match files.read(&path) {
            Ok(text) => match dotenv::parse(&text, vars) {
                Ok(parsed) => {
                    for (k, v) in parsed {
                        env.insert(k, v);
                    }
                }
                Err(errs) => {
                    for e in errs {
                        cx.error(
                            item.pos,
                            format!("{what}: {path} line {}: {}", e.line, e.message),
                        );
                    }
                }
            },
            Err(e) if required => cx.error(item.pos, format!("{what}: {e}")),
            Err(_) => {}
        }
    }
}

fn environment(
    n: &Node,
    what: &str,
    vars: &dyn Fn(&str) -> Option<String>,
    cx: &mut Cx<'_>,
    env: &mut BTreeMap<String, Option<String>>,
) {
    match &n.value {
        Value::Map(entries) => {
            for (k, v) in entries {
                let key = k.as_str().unwrap_or_default().to_owned();
                let value = match &v.value {
                    Value::Null => vars(&key),
                    Value::Seq(_) | Value::Map(_) => {
                        cx.error(
                            v.pos,
                            format!("{what}: `{key}` must be a string, number or boolean"),
                        );
                        continue;
                    }
                    _ => v.scalar_text(),
                };
                env.insert(key, value);
            }
        }
        Value::Seq(items) => {
            for i in items {
                let Some(s) = cx.text(i, what) else { continue };
                match s.split_once('=') {
                    Some((k, v)) if !k.is_empty() => {
                        env.insert(k.to_owned(), Some(v.to_owned()));
                    }
                    Some(_) => cx.error(i.pos, format!("{what}: {s:?} has an empty name")),
                    None => {
                        env.insert(s.clone(), vars(&s));
                    }
                }
            }
        }
        _ => cx.error(
            n.pos,
            format!("{what} must be a mapping or a list of KEY=VALUE"),
        ),
    }
}
