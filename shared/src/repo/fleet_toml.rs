//! `fleet.toml`: `[fleet]`, `[hosts.NAME]` with their labels, the
//! `[stacks.NAME]` tables (decoded in [`super::stack_def`]) and
//! `[rollout]` (waves and `on_failure`).

use std::collections::{BTreeMap, BTreeSet};

use super::stack_def::decode_stack;
use crate::fleet::{Fleet, HostDef, OnFailure, RolloutPolicy, Selector, Wave};
use crate::limits::MAX_NAME_LEN;
use crate::source::Cx;
use crate::source::node::{Node, Pos};

/// Host, stack and wave names: DNS-label-like, as compose project names.
pub fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63.min(MAX_NAME_LEN)
        && s.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

pub(super) fn decode_fleet(
    root: &Node,
    cx: &mut Cx<'_>,
    stack_pos: &mut BTreeMap<String, Pos>,
) -> Option<Fleet> {
    let top = cx.fields(
        root,
        "fleet.toml",
        &["fleet", "hosts", "stacks", "rollout"],
        &[],
        false,
    )?;
    let mut ok = true;
    let name = match top.get("fleet") {
        Some(f) => cx
            .fields(f, "[fleet]", &["name"], &[], false)
            .and_then(|f| match f.get("name") {
                Some(n) => {
                    let s = cx.string(n, "fleet name")?;
                    if !valid_name(&s) {
                        cx.error(n.pos, format!("invalid fleet name {s:?} (lowercase letters, digits, `-`, `_`; at most 63)"));
                    }
                    Some(s)
                }
                None => {
                    cx.error(f.node.pos, "[fleet] needs `name`");
                    None
                }
            }),
        None => {
            cx.error(Pos { line: 1, col: 1 }, "fleet.toml needs a [fleet] table with `name`");
            None
        }
    };
    let mut hosts = BTreeMap::new();
    if let Some(h) = top.get("hosts") {
        for (k, v) in cx.entries(h, "[hosts]").unwrap_or_default() {
            let host = k.as_str().unwrap_or_default().to_owned();
            if !valid_name(&host) {
                cx.error(k.pos, format!("invalid host name {host:?} (lowercase letters, digits, `-`, `_`; at most 63)"));
                ok = false;
            }
            let mut def = HostDef::default();
            if let Some(f) = cx.fields(v, &format!("host `{host}`"), &["labels"], &[], false)
                && let Some(l) = f.get("labels")
            {
                for (lk, lv) in cx
                    .entries(l, &format!("host `{host}` labels"))
                    .unwrap_or_default()
                {
                    let key = lk.as_str().unwrap_or_default().to_owned();
                    if !valid_label(&key) {
                        cx.error(lk.pos, format!("invalid label key {key:?}"));
                    }
                    match cx.string(lv, &format!("label `{key}` of host `{host}`")) {
                            Some(val) if valid_label_value(&val) => {
                                def.labels.insert(key, val);
                            }
                            Some(val) => cx.error(lv.pos, format!("invalid label value {val:?} (no spaces, commas, `=`, `!` or parentheses)")),
                            None => {}
                        }
                }
            }
            hosts.insert(host, def);
        }
    }
    let mut stacks = BTreeMap::new();
    if let Some(s) = top.get("stacks") {
        for (k, v) in cx.entries(s, "[stacks]").unwrap_or_default() {
            let stack = k.as_str().unwrap_or_default().to_owned();
            stack_pos.insert(stack.clone(), k.pos);
            if !valid_name(&stack) {
                cx.error(k.pos, format!("invalid stack name {stack:?} (it becomes the compose project: lowercase letters, digits, `-`, `_`)"));
                ok = false;
            }
            match decode_stack(v, &stack, cx) {
                Some(def) => {
                    stacks.insert(stack, def);
                }
                None => ok = false,
            }
        }
    }
    if stacks.is_empty() && top.get("stacks").is_none() {
        cx.warning(root.pos, "fleet.toml declares no stacks");
    }
    let rollout = match top.get("rollout") {
        Some(r) => decode_rollout(r, cx),
        None => Some(RolloutPolicy {
            waves: vec![Wave {
                name: "all".into(),
                hosts: Selector::all(),
                max_parallel: None,
                approval: false,
            }],
            on_failure: OnFailure::Halt,
        }),
    };
    // Keep going with what decoded, so the stacks' files are checked too;
    // the errors recorded so far already make the repo invalid.
    let _ = ok;
    Some(Fleet {
        name: name.unwrap_or_default(),
        hosts,
        stacks,
        rollout: rollout.unwrap_or_else(|| RolloutPolicy {
            waves: Vec::new(),
            on_failure: OnFailure::Halt,
        }),
    })
}

fn valid_label(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= MAX_NAME_LEN
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
}

fn valid_label_value(v: &str) -> bool {
    v.len() <= MAX_NAME_LEN
        && !v
            .chars()
            .any(|c| c.is_whitespace() || matches!(c, ',' | '=' | '!' | '(' | ')'))
}

pub(super) fn selector(n: &Node, what: &str, cx: &mut Cx<'_>) -> Option<Selector> {
    let s = cx.string(n, what)?;
    match Selector::parse(&s) {
        Ok(sel) => Some(sel),
        Err(e) => {
            // Point at the character inside the string (after the quote).
            let col = n.pos.col + 1 + u32::try_from(e.offset).unwrap_or(0);
            cx.error(
                Pos {
                    line: n.pos.line,
                    col,
                },
                format!("{what}: {}", e.message),
            );
            None
        }
    }
}

fn decode_rollout(r: &Node, cx: &mut Cx<'_>) -> Option<RolloutPolicy> {
    let f = cx.fields(r, "[rollout]", &["waves", "on_failure"], &[], false)?;
    let on_failure = match f.get("on_failure") {
        Some(o) => match cx.string(o, "rollout.on_failure")?.as_str() {
            "halt" => OnFailure::Halt,
            "rollback" => OnFailure::Rollback,
            other => {
                cx.error(
                    o.pos,
                    format!("rollout.on_failure {other:?} is not \"halt\" or \"rollback\""),
                );
                OnFailure::Halt
            }
        },
        None => OnFailure::Halt,
    };
    let mut waves = Vec::new();
    let mut ok = true;
    match f.get("waves") {
        Some(w) => {
            let items = cx.seq(w, "rollout.waves")?;
            if items.is_empty() {
                cx.error(
                    w.pos,
                    "rollout.waves is empty; omit it for one wave holding every host",
                );
                ok = false;
            }
            let mut names = BTreeSet::new();
            for item in items {
                let Some(wf) = cx.fields(
                    item,
                    "a rollout wave",
                    &["name", "hosts", "max_parallel", "approval"],
                    &[],
                    false,
                ) else {
                    ok = false;
                    continue;
                };
                let Some(name) = wf.get("name").and_then(|n| cx.string(n, "wave name")) else {
                    cx.error(item.pos, "a rollout wave needs `name`");
                    ok = false;
                    continue;
                };
                if !valid_name(&name) {
                    cx.error(item.pos, format!("invalid wave name {name:?}"));
                }
                if !names.insert(name.clone()) {
                    cx.error(item.pos, format!("wave `{name}` is declared twice"));
                }
                let hosts = match wf.get("hosts") {
                    Some(h) => match selector(h, &format!("wave `{name}`: `hosts`"), cx) {
                        Some(s) => s,
                        None => {
                            ok = false;
                            continue;
                        }
                    },
                    None => {
                        cx.error(item.pos, format!("wave `{name}` needs `hosts`"));
                        ok = false;
                        continue;
                    }
                };
                let max_parallel = match wf.get("max_parallel") {
                    Some(m) => {
                        match cx.int_in(m, &format!("wave `{name}`: max_parallel"), 1, 10_000) {
                            Some(v) => Some(v as u32),
                            None => {
                                ok = false;
                                None
                            }
                        }
                    }
                    None => None,
                };
                let approval = match wf.get("approval") {
                    Some(a) => cx
                        .boolean(a, &format!("wave `{name}`: approval"))
                        .unwrap_or(false),
                    None => false,
                };
                waves.push(Wave {
                    name,
                    hosts,
                    max_parallel,
                    approval,
                });
            }
        }
        None => waves.push(Wave {
            name: "all".into(),
            hosts: Selector::all(),
            max_parallel: None,
            approval: false,
        }),
    }
    ok.then_some(RolloutPolicy { waves, on_failure })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(valid_name("gpu-box_1"));
        assert!(!valid_name("Gpu"));
        assert!(!valid_name("-x"));
        assert!(!valid_name(""));
    }
}
