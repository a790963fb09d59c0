//! The compose file's top level → `ComposeFile`: `name`, top-level
//! `networks` and `volumes`, then each service through the area decoders
//! of [`super::service`], then the cross-checks of [`super::references`].

use super::networks::network_def;
use super::service::service;
use super::volumes::volume_def;
use super::{Decoded, StackFiles, references, valid_service_name};
use crate::source::decode::Cx;
use crate::source::node::{Node, Value};

/// Top-level keys Convoy decodes.
const TOP_KEYS: &[&str] = &["services", "networks", "volumes", "name", "version"];
/// Top-level keys of the compose specification that Convoy rejects.
const UNSUPPORTED_TOP_KEYS: &[&str] = &["configs", "secrets", "include", "models"];

/// Decodes an interpolated compose tree.
pub fn decode(
    root: &Node,
    stack: &str,
    vars: &dyn Fn(&str) -> Option<String>,
    files: &dyn StackFiles,
    cx: &mut Cx<'_>,
) -> Decoded {
    let mut out = Decoded::default();
    if matches!(root.value, Value::Null) {
        cx.error(
            root.pos,
            "the compose file is empty: a stack needs at least one service",
        );
        return out;
    }
    let Some(top) = cx.fields(
        root,
        "the compose file",
        TOP_KEYS,
        UNSUPPORTED_TOP_KEYS,
        true,
    ) else {
        return out;
    };
    if let Some(n) = top.get("name")
        && let Some(name) = cx.text(n, "`name`")
        && name != stack
    {
        cx.error(
                    n.pos,
                    format!("`name: {name}` differs from the stack name `{stack}`; Convoy names the compose project after the stack (remove `name`)"),
                );
    }
    if let Some(nets) = top.get("networks")
        && let Some(entries) = cx.entries(nets, "`networks`")
    {
        for (k, v) in entries {
            let name = k.as_str().unwrap_or_default().to_owned();
            if let Some(def) = network_def(v, &name, cx) {
                out.compose.networks.insert(name, def);
            }
        }
    }
    if let Some(vols) = top.get("volumes")
        && let Some(entries) = cx.entries(vols, "`volumes`")
    {
        for (k, v) in entries {
            let name = k.as_str().unwrap_or_default().to_owned();
            if let Some(def) = volume_def(v, &name, cx) {
                out.compose.volumes.insert(name, def);
            }
        }
    }
    let services = match top.get("services") {
        Some(s) => cx.entries(s, "`services`").unwrap_or_default(),
        None => &[],
    };
    if services.is_empty() {
        cx.error(
            root.pos,
            "the compose file has no services: a stack needs at least one",
        );
    }
    if services.len() > crate::limits::MAX_SERVICES_PER_STACK {
        cx.error(
            root.pos,
            format!(
                "{} services in one stack; the limit is {}",
                services.len(),
                crate::limits::MAX_SERVICES_PER_STACK
            ),
        );
    }
    for (k, v) in services {
        let name = k.as_str().unwrap_or_default().to_owned();
        if !valid_service_name(&name) {
            cx.error(
                k.pos,
                format!("invalid service name {name:?} (letters, digits, `_`, `.`, `-`; starting with a letter or digit)"),
            );
        }
        out.service_pos.insert(name.clone(), k.pos);
        if let Some(svc) = service(v, &name, vars, files, cx, &mut out) {
            out.compose.services.insert(name, svc);
        }
    }
    references::check(&out, services, cx);
    out
}
