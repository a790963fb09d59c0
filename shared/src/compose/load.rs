//! Compose file → [`ComposeFile`]: interpolation of the untyped tree (values
//! only, never keys, as compose does), then typed decoding of the supported
//! subset, collecting every problem with its position.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use super::dotenv;
use super::interpolate::interpolate;
use super::model::*;
use crate::source::decode::{Cx, parse_bytes};
use crate::source::node::{Node, Pos, Value};

/// Service keys Convoy supports (README "Compose support").
pub const SERVICE_KEYS: &[&str] = &[
    "image",
    "command",
    "entrypoint",
    "environment",
    "env_file",
    "ports",
    "volumes",
    "networks",
    "depends_on",
    "healthcheck",
    "restart",
    "labels",
    "user",
    "working_dir",
    "cap_add",
    "cap_drop",
    "devices",
    "extra_hosts",
    "logging",
    "ulimits",
    "stop_signal",
    "stop_grace_period",
    "deploy",
];

/// Service keys of the compose specification that Convoy rejects.
pub const UNSUPPORTED_SERVICE_KEYS: &[&str] = &[
    "annotations",
    "attach",
    "blkio_config",
    "build",
    "cgroup",
    "cgroup_parent",
    "configs",
    "container_name",
    "cpu_count",
    "cpu_percent",
    "cpu_period",
    "cpu_quota",
    "cpu_rt_period",
    "cpu_rt_runtime",
    "cpu_shares",
    "cpus",
    "cpuset",
    "credential_spec",
    "develop",
    "device_cgroup_rules",
    "dns",
    "dns_opt",
    "dns_search",
    "domainname",
    "expose",
    "extends",
    "external_links",
    "gpus",
    "group_add",
    "hostname",
    "init",
    "ipc",
    "isolation",
    "label_file",
    "links",
    "mac_address",
    "mem_limit",
    "mem_reservation",
    "mem_swappiness",
    "memswap_limit",
    "models",
    "network_mode",
    "oom_kill_disable",
    "oom_score_adj",
    "pid",
    "pids_limit",
    "platform",
    "post_start",
    "pre_stop",
    "privileged",
    "profiles",
    "provider",
    "pull_policy",
    "read_only",
    "runtime",
    "scale",
    "secrets",
    "security_opt",
    "shm_size",
    "stdin_open",
    "stop_timeout",
    "storage_opt",
    "sysctls",
    "tmpfs",
    "tty",
    "use_api_socket",
    "userns_mode",
    "uts",
    "volumes_from",
];

/// What the decoder needs from the stack directory.
pub trait StackFiles {
    /// Reads a file relative to the stack directory (the caller checks that
    /// it stays inside the repo).
    fn read(&self, rel: &str) -> Result<String, String>;
}

/// A relative bind mount's source and where it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindSource {
    pub rel: String,
    pub pos: Pos,
}

#[derive(Debug, Default)]
pub struct Decoded {
    pub compose: ComposeFile,
    pub binds: Vec<BindSource>,
    /// Position of each service name (for cross-file messages).
    pub service_pos: BTreeMap<String, Pos>,
    /// Position of each published port, per service.
    pub port_pos: Vec<(String, PortMapping, Pos)>,
}

/// Interpolates every string value of the tree (never keys).
pub fn interpolate_tree(node: &mut Node, vars: &dyn Fn(&str) -> Option<String>, cx: &mut Cx<'_>) {
    let mut unset: BTreeMap<String, Pos> = BTreeMap::new();
    walk(node, vars, cx, &mut unset);
    for (name, pos) in unset {
        cx.warning(
            pos,
            format!("variable {name} is not set in the stack's .env; using an empty string"),
        );
    }
}

fn walk(
    node: &mut Node,
    vars: &dyn Fn(&str) -> Option<String>,
    cx: &mut Cx<'_>,
    unset: &mut BTreeMap<String, Pos>,
) {
    match &mut node.value {
        Value::Str(s) => {
            if !s.contains('$') {
                return;
            }
            match interpolate(s, vars) {
                Ok(r) => {
                    for u in r.unset {
                        unset.entry(u).or_insert(node.pos);
                    }
                    *s = r.value;
                }
                Err(e) => cx.error(node.pos, e.to_string()),
            }
        }
        Value::Seq(items) => {
            for i in items {
                walk(i, vars, cx, unset);
            }
        }
        Value::Map(entries) => {
            for (_, v) in entries {
                walk(v, vars, cx, unset);
            }
        }
        _ => {}
    }
}

/// Compose service names (and so container names) must be DNS-friendly.
pub fn valid_service_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

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
        &["services", "networks", "volumes", "name", "version"],
        &["configs", "secrets", "include", "models"],
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
    check_references(&out, services, cx);
    out
}

fn network_def(v: &Node, name: &str, cx: &mut Cx<'_>) -> Option<NetworkDef> {
    if matches!(v.value, Value::Null) {
        return Some(NetworkDef::default());
    }
    let what = format!("network `{name}`");
    let f = cx.fields(
        v,
        &what,
        &["driver", "external", "name", "internal", "labels"],
        &[
            "driver_opts",
            "ipam",
            "attachable",
            "enable_ipv6",
            "enable_ipv4",
        ],
        true,
    )?;
    let mut def = NetworkDef::default();
    if let Some(n) = f.get("driver") {
        def.driver = cx.text(n, &format!("{what}: `driver`"));
    }
    if let Some(n) = f.get("external") {
        def.external = cx
            .boolean(n, &format!("{what}: `external`"))
            .unwrap_or(false);
    }
    if let Some(n) = f.get("name") {
        def.name = cx.text(n, &format!("{what}: `name`"));
    }
    if let Some(n) = f.get("internal") {
        def.internal = cx
            .boolean(n, &format!("{what}: `internal`"))
            .unwrap_or(false);
    }
    if let Some(n) = f.get("labels") {
        def.labels = cx
            .string_map(n, &format!("{what}: `labels`"))
            .unwrap_or_default();
    }
    Some(def)
}

fn volume_def(v: &Node, name: &str, cx: &mut Cx<'_>) -> Option<VolumeDef> {
    if matches!(v.value, Value::Null) {
        return Some(VolumeDef::default());
    }
    let what = format!("volume `{name}`");
    let f = cx.fields(
        v,
        &what,
        &["driver", "external", "name", "driver_opts", "labels"],
        &[],
        true,
    )?;
    let mut def = VolumeDef::default();
    if let Some(n) = f.get("driver") {
        def.driver = cx.text(n, &format!("{what}: `driver`"));
    }
    if let Some(n) = f.get("external") {
        def.external = cx
            .boolean(n, &format!("{what}: `external`"))
            .unwrap_or(false);
    }
    if let Some(n) = f.get("name") {
        def.name = cx.text(n, &format!("{what}: `name`"));
    }
    if let Some(n) = f.get("driver_opts") {
        def.driver_opts = cx
            .string_map(n, &format!("{what}: `driver_opts`"))
            .unwrap_or_default();
    }
    if let Some(n) = f.get("labels") {
        def.labels = cx
            .string_map(n, &format!("{what}: `labels`"))
            .unwrap_or_default();
    }
    Some(def)
}

fn service(
    node: &Node,
    name: &str,
    vars: &dyn Fn(&str) -> Option<String>,
    files: &dyn StackFiles,
    cx: &mut Cx<'_>,
    out: &mut Decoded,
) -> Option<Service> {
    let what = format!("service `{name}`");
    let f = cx.fields(node, &what, SERVICE_KEYS, UNSUPPORTED_SERVICE_KEYS, true)?;
    let mut svc = Service::default();
    let w = |key: &str| format!("{what}: `{key}`");

    match f.get("image").and_then(|n| cx.text(n, &w("image"))) {
        Some(img) if !img.trim().is_empty() => {
            if img.chars().any(char::is_whitespace) {
                cx.error(
                    f.get("image").map_or(node.pos, |n| n.pos),
                    format!("{what}: image {img:?} contains whitespace"),
                );
            }
            svc.image = img;
        }
        _ => cx.error(
            node.pos,
            format!(
                "{what} has no `image` (Convoy runs prebuilt images; `build` is not supported)"
            ),
        ),
    }
    if let Some(n) = f.get("command") {
        svc.command = command(n, &w("command"), cx);
    }
    if let Some(n) = f.get("entrypoint") {
        svc.entrypoint = command(n, &w("entrypoint"), cx);
    }
    // env_file first, environment on top (compose's precedence).
    if let Some(n) = f.get("env_file") {
        env_files(n, &w("env_file"), vars, files, cx, &mut svc.environment);
    }
    if let Some(n) = f.get("environment") {
        environment(n, &w("environment"), vars, cx, &mut svc.environment);
    }
    if let Some(n) = f.get("ports")
        && let Some(items) = cx.seq(n, &w("ports"))
    {
        for item in items {
            for p in ports(item, &w("ports"), cx) {
                out.port_pos.push((name.to_owned(), p.clone(), item.pos));
                svc.ports.push(p);
            }
        }
    }
    if let Some(n) = f.get("volumes")
        && let Some(items) = cx.seq(n, &w("volumes"))
    {
        for item in items {
            if let Some(m) = volume_mount(item, &w("volumes"), cx) {
                if m.relative
                    && let Some(src) = &m.source
                {
                    out.binds.push(BindSource {
                        rel: src.clone(),
                        pos: item.pos,
                    });
                }
                svc.volumes.push(m);
            }
        }
    }
    if let Some(n) = f.get("networks") {
        svc.networks = service_networks(n, &w("networks"), cx);
    }
    if svc.networks.is_empty() {
        svc.networks
            .insert("default".into(), ServiceNetwork::default());
    }
    if let Some(n) = f.get("depends_on") {
        svc.depends_on = depends_on(n, &w("depends_on"), cx);
    }
    if let Some(n) = f.get("healthcheck") {
        svc.healthcheck = healthcheck(n, &w("healthcheck"), cx);
    }
    if let Some(n) = f.get("restart")
        && let Some(s) = cx.text(n, &w("restart"))
    {
        svc.restart = match s.as_str() {
            "no" | "" => RestartPolicy::No,
            "always" => RestartPolicy::Always,
            "unless-stopped" => RestartPolicy::UnlessStopped,
            "on-failure" => RestartPolicy::OnFailure { max_retries: None },
            other => match other.strip_prefix("on-failure:").map(str::parse::<u32>) {
                Some(Ok(n)) => RestartPolicy::OnFailure {
                    max_retries: Some(n),
                },
                _ => {
                    cx.error(
                            n.pos,
                            format!("{}: {other:?} is not one of no, always, unless-stopped, on-failure[:N]", w("restart")),
                        );
                    RestartPolicy::No
                }
            },
        };
    }
    if let Some(n) = f.get("labels") {
        svc.labels = cx.string_map(n, &w("labels")).unwrap_or_default();
        for k in svc.labels.keys() {
            if k.starts_with("com.docker.compose.") || k.starts_with("dev.convoy.") {
                cx.error(
                    n.pos,
                    format!("{}: `{k}` is reserved for compose and Convoy", w("labels")),
                );
            }
        }
    }
    if let Some(n) = f.get("user") {
        svc.user = cx.text(n, &w("user"));
    }
    if let Some(n) = f.get("working_dir") {
        svc.working_dir = cx.text(n, &w("working_dir"));
    }
    if let Some(n) = f.get("cap_add") {
        svc.cap_add = cx.strings(n, &w("cap_add"), false).unwrap_or_default();
    }
    if let Some(n) = f.get("cap_drop") {
        svc.cap_drop = cx.strings(n, &w("cap_drop"), false).unwrap_or_default();
    }
    if let Some(n) = f.get("devices")
        && let Some(items) = cx.seq(n, &w("devices"))
    {
        svc.devices = items
            .iter()
            .filter_map(|i| device(i, &w("devices"), cx))
            .collect();
    }
    if let Some(n) = f.get("extra_hosts") {
        svc.extra_hosts = extra_hosts(n, &w("extra_hosts"), cx);
    }
    if let Some(n) = f.get("logging")
        && let Some(lf) = cx.fields(n, &w("logging"), &["driver", "options"], &[], false)
    {
        svc.logging = Some(Logging {
            driver: lf
                .get("driver")
                .and_then(|d| cx.text(d, &w("logging.driver"))),
            options: lf
                .get("options")
                .and_then(|o| cx.string_map(o, &w("logging.options")))
                .unwrap_or_default(),
        });
    }
    if let Some(n) = f.get("ulimits") {
        svc.ulimits = ulimits(n, &w("ulimits"), cx);
    }
    if let Some(n) = f.get("stop_signal") {
        svc.stop_signal = cx.text(n, &w("stop_signal"));
    }
    if let Some(n) = f.get("stop_grace_period") {
        svc.stop_grace_period = cx.duration(n, &w("stop_grace_period"));
    }
    if let Some(n) = f.get("deploy") {
        svc.resources = deploy(n, &w("deploy"), cx);
    }
    Some(svc)
}

fn command(n: &Node, what: &str, cx: &mut Cx<'_>) -> Option<Vec<String>> {
    match &n.value {
        Value::Str(s) => match split_shell_words(s) {
            Ok(words) => Some(words),
            Err(e) => {
                cx.error(n.pos, format!("{what}: {e}"));
                None
            }
        },
        _ => cx.strings(n, what, false),
    }
}

/// Splits a command string as compose does (POSIX shell words: quotes and
/// backslashes; no expansion).
pub fn split_shell_words(s: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => cur.push(c),
                        None => return Err(format!("unterminated single quote in {s:?}")),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => cur.push(c),
                            Some('\n') => {}
                            Some(c) => {
                                cur.push('\\');
                                cur.push(c);
                            }
                            None => return Err(format!("unterminated double quote in {s:?}")),
                        },
                        Some(c) => cur.push(c),
                        None => return Err(format!("unterminated double quote in {s:?}")),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some('\n') => {}
                    Some(c) => cur.push(c),
                    None => cur.push('\\'),
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    Ok(words)
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

fn parse_port_range(s: &str) -> Result<(u16, u16), String> {
    let (a, b) = s.split_once('-').unwrap_or((s, s));
    let p = |x: &str| -> Result<u16, String> {
        match x.trim().parse::<u32>() {
            Ok(v) if (1..=65535).contains(&v) => Ok(v as u16),
            _ => Err(format!("invalid port {x:?} (1-65535)")),
        }
    };
    let (a, b) = (p(a)?, p(b)?);
    if b < a {
        return Err(format!("invalid port range {s:?}"));
    }
    Ok((a, b))
}

fn expand_ports(
    host_ip: Option<String>,
    published: Option<(u16, u16)>,
    target: (u16, u16),
    protocol: Protocol,
) -> Result<Vec<PortMapping>, String> {
    let tlen = target.1 - target.0;
    if let Some(p) = published
        && p.1 - p.0 != tlen
    {
        return Err("the published and target port ranges differ in length".into());
    }
    if tlen > 1024 {
        return Err("port ranges are limited to 1024 ports".into());
    }
    Ok((0..=tlen)
        .map(|i| PortMapping {
            target: target.0 + i,
            published: published.map(|p| p.0 + i),
            host_ip: host_ip.clone(),
            protocol,
        })
        .collect())
}

fn protocol(s: &str) -> Result<Protocol, String> {
    match s {
        "tcp" | "" => Ok(Protocol::Tcp),
        "udp" => Ok(Protocol::Udp),
        "sctp" => Ok(Protocol::Sctp),
        other => Err(format!("unknown protocol {other:?} (tcp, udp or sctp)")),
    }
}

/// Parses the short port syntax `[HOST_IP:][HOST_PORT:]CONTAINER_PORT[/PROTO]`
/// (ports and ranges, IPv6 host IPs in brackets).
pub fn parse_short_port(s: &str) -> Result<Vec<PortMapping>, String> {
    let (spec, proto) = match s.rsplit_once('/') {
        Some((a, p)) => (a, protocol(p)?),
        None => (s, Protocol::Tcp),
    };
    let (host_ip, rest) = if let Some(r) = spec.strip_prefix('[') {
        let (ip, rest) = r
            .split_once(']')
            .ok_or_else(|| format!("invalid port {s:?}: unclosed `[`"))?;
        let rest = rest
            .strip_prefix(':')
            .ok_or_else(|| format!("invalid port {s:?}"))?;
        (Some(ip.to_owned()), rest)
    } else {
        let parts: Vec<&str> = spec.split(':').collect();
        match parts.len() {
            1 | 2 => (None, spec),
            3 => (Some(parts[0].to_owned()), &spec[parts[0].len() + 1..]),
            _ => return Err(format!("invalid port {s:?}")),
        }
    };
    if let Some(ip) = &host_ip
        && ip.parse::<IpAddr>().is_err()
    {
        return Err(format!("invalid host IP {ip:?} in port {s:?}"));
    }
    let (published, target) = match rest.split_once(':') {
        Some(("", t)) => (None, t),
        Some((p, t)) => (Some(parse_port_range(p)?), t),
        None => (None, rest),
    };
    let target = parse_port_range(target).map_err(|e| format!("{e} in {s:?}"))?;
    expand_ports(host_ip, published, target, proto).map_err(|e| format!("{s:?}: {e}"))
}

fn ports(item: &Node, what: &str, cx: &mut Cx<'_>) -> Vec<PortMapping> {
    match &item.value {
        Value::Map(_) => {
            let Some(f) = cx.fields(
                item,
                what,
                &[
                    "target",
                    "published",
                    "host_ip",
                    "protocol",
                    "mode",
                    "name",
                    "app_protocol",
                ],
                &[],
                true,
            ) else {
                return Vec::new();
            };
            let Some(target) = f
                .get("target")
                .and_then(|t| cx.int_in(t, &format!("{what}.target"), 1, 65535))
            else {
                if f.get("target").is_none() {
                    cx.error(
                        item.pos,
                        format!("{what}: a long-syntax port needs `target`"),
                    );
                }
                return Vec::new();
            };
            let published = match f.get("published").map(|p| (p, p.scalar_text())) {
                Some((_, Some(s))) if s.is_empty() => None,
                Some((p, Some(s))) => match parse_port_range(&s) {
                    Ok(r) => Some(r),
                    Err(e) => {
                        cx.error(p.pos, format!("{what}.published: {e}"));
                        return Vec::new();
                    }
                },
                Some((p, None)) => {
                    cx.error(p.pos, format!("{what}.published must be a port or range"));
                    return Vec::new();
                }
                None => None,
            };
            let host_ip = f
                .get("host_ip")
                .and_then(|h| cx.text(h, &format!("{what}.host_ip")));
            if let Some(ip) = &host_ip
                && ip.parse::<IpAddr>().is_err()
            {
                cx.error(
                    f.get("host_ip").map_or(item.pos, |h| h.pos),
                    format!("{what}: invalid host_ip {ip:?}"),
                );
            }
            let proto = match f
                .get("protocol")
                .and_then(|p| cx.text(p, &format!("{what}.protocol")))
            {
                Some(p) => match protocol(&p) {
                    Ok(p) => p,
                    Err(e) => {
                        cx.error(item.pos, format!("{what}: {e}"));
                        return Vec::new();
                    }
                },
                None => Protocol::Tcp,
            };
            if let Some(m) = f
                .get("mode")
                .and_then(|m| cx.text(m, &format!("{what}.mode")))
                && m != "host"
                && m != "ingress"
            {
                cx.error(
                    item.pos,
                    format!("{what}: mode {m:?} is not host or ingress"),
                );
            }
            let t = target as u16;
            match expand_ports(host_ip, published, (t, t), proto) {
                Ok(v) => v,
                Err(_) if published.is_some_and(|(a, b)| a != b) => {
                    // A published range for one target: compose picks one; we take the first.
                    vec![PortMapping {
                        target: t,
                        published: published.map(|p| p.0),
                        host_ip: f.get("host_ip").and_then(Node::scalar_text),
                        protocol: proto,
                    }]
                }
                Err(e) => {
                    cx.error(item.pos, format!("{what}: {e}"));
                    Vec::new()
                }
            }
        }
        Value::Int(_) | Value::Str(_) => {
            let s = item.scalar_text().unwrap_or_default();
            match parse_short_port(&s) {
                Ok(v) => v,
                Err(e) => {
                    cx.error(item.pos, format!("{what}: {e}"));
                    Vec::new()
                }
            }
        }
        _ => {
            cx.error(
                item.pos,
                format!("{what}: each entry must be a string or a mapping"),
            );
            Vec::new()
        }
    }
}

fn is_host_path(s: &str) -> bool {
    s.starts_with('/') || s.starts_with('.') || s.starts_with('~')
}

/// Normalises a relative bind source (`./conf`, `../x` is rejected later).
fn normalise_relative(s: &str) -> Result<String, String> {
    let mut parts: Vec<&str> = Vec::new();
    for seg in s.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(format!("bind source {s:?} leaves the stack directory"));
                }
            }
            other => parts.push(other),
        }
    }
    if parts.is_empty() {
        return Ok(".".to_owned());
    }
    Ok(parts.join("/"))
}

fn bind_or_volume(source: &str, what: &str) -> Result<(MountKind, String, bool), String> {
    if source.starts_with('~') {
        return Err(format!(
            "{what}: `~` paths are not supported (the agent's home is not yours); use an absolute path"
        ));
    }
    if source.starts_with('/') {
        Ok((MountKind::Bind, source.to_owned(), false))
    } else if source.starts_with('.') {
        Ok((
            MountKind::Bind,
            normalise_relative(source).map_err(|e| format!("{what}: {e}"))?,
            true,
        ))
    } else {
        Ok((MountKind::Volume, source.to_owned(), false))
    }
}

fn volume_mount(item: &Node, what: &str, cx: &mut Cx<'_>) -> Option<VolumeMount> {
    match &item.value {
        Value::Str(s) => {
            let parts: Vec<&str> = s.split(':').collect();
            let (source, target, opts) = match parts.as_slice() {
                [t] => (None, *t, ""),
                // `SOURCE:TARGET` or `TARGET:MODE`.
                [a, b] if b.starts_with('/') => (Some(*a), *b, ""),
                [a, b] => (None, *a, *b),
                [a, b, o] => (Some(*a), *b, *o),
                _ => {
                    cx.error(item.pos, format!("{what}: invalid volume {s:?}"));
                    return None;
                }
            };
            if !target.starts_with('/') {
                cx.error(
                    item.pos,
                    format!("{what}: the container path in {s:?} must be absolute"),
                );
                return None;
            }
            let mut m = VolumeMount {
                kind: MountKind::Volume,
                source: None,
                target: target.to_owned(),
                read_only: false,
                relative: false,
                tmpfs_size: None,
                nocopy: false,
            };
            if let Some(src) = source {
                match bind_or_volume(src, what) {
                    Ok((kind, src, rel)) => {
                        m.kind = kind;
                        m.source = Some(src);
                        m.relative = rel;
                    }
                    Err(e) => {
                        cx.error(item.pos, e);
                        return None;
                    }
                }
            }
            for o in opts.split(',').filter(|o| !o.is_empty()) {
                match o {
                    "ro" => m.read_only = true,
                    "rw" => m.read_only = false,
                    "nocopy" if m.kind == MountKind::Volume => m.nocopy = true,
                    other => {
                        cx.error(
                            item.pos,
                            format!(
                                "{what}: mount option {other:?} is not supported (ro, rw, nocopy)"
                            ),
                        );
                    }
                }
            }
            Some(m)
        }
        Value::Map(_) => {
            let f = cx.fields(
                item,
                what,
                &[
                    "type",
                    "source",
                    "target",
                    "read_only",
                    "bind",
                    "volume",
                    "tmpfs",
                ],
                &["consistency", "image", "npipe"],
                true,
            )?;
            let kind = match f
                .get("type")
                .and_then(|t| cx.text(t, &format!("{what}.type")))
            {
                Some(t) if t == "volume" => MountKind::Volume,
                Some(t) if t == "bind" => MountKind::Bind,
                Some(t) if t == "tmpfs" => MountKind::Tmpfs,
                Some(t) => {
                    cx.error(
                        item.pos,
                        format!("{what}: type {t:?} is not supported (volume, bind, tmpfs)"),
                    );
                    return None;
                }
                None => {
                    cx.error(
                        item.pos,
                        format!("{what}: a long-syntax volume needs `type`"),
                    );
                    return None;
                }
            };
            let Some(target) = f
                .get("target")
                .and_then(|t| cx.text(t, &format!("{what}.target")))
            else {
                cx.error(
                    item.pos,
                    format!("{what}: a long-syntax volume needs `target`"),
                );
                return None;
            };
            if !target.starts_with('/') {
                cx.error(
                    item.pos,
                    format!("{what}: target {target:?} must be an absolute path"),
                );
                return None;
            }
            let mut m = VolumeMount {
                kind,
                source: None,
                target,
                read_only: f
                    .get("read_only")
                    .and_then(|r| cx.boolean(r, &format!("{what}.read_only")))
                    .unwrap_or(false),
                relative: false,
                tmpfs_size: None,
                nocopy: false,
            };
            let source = f
                .get("source")
                .and_then(|s| cx.text(s, &format!("{what}.source")));
            match (kind, source) {
                (MountKind::Tmpfs, Some(_)) => {
                    cx.error(item.pos, format!("{what}: a tmpfs mount has no `source`"));
                }
                (MountKind::Bind, None) => {
                    cx.error(item.pos, format!("{what}: a bind mount needs `source`"));
                    return None;
                }
                (MountKind::Bind, Some(src)) => {
                    if !src.starts_with('/') && !src.starts_with('.') {
                        cx.error(item.pos, format!("{what}: bind source {src:?} must be an absolute path or start with ./"));
                        return None;
                    }
                    match bind_or_volume(&src, what) {
                        Ok((_, s, rel)) => {
                            m.source = Some(s);
                            m.relative = rel;
                        }
                        Err(e) => {
                            cx.error(item.pos, e);
                            return None;
                        }
                    }
                }
                (MountKind::Volume, Some(src)) => {
                    if is_host_path(&src) {
                        cx.error(
                            item.pos,
                            format!(
                                "{what}: volume source {src:?} looks like a path; use type: bind"
                            ),
                        );
                    }
                    m.source = Some(src);
                }
                _ => {}
            }
            if let Some(b) = f.get("bind") {
                if kind != MountKind::Bind {
                    cx.error(b.pos, format!("{what}: `bind` options on a {kind:?} mount"));
                } else if let Some(bf) = cx.fields(
                    b,
                    &format!("{what}.bind"),
                    &["create_host_path"],
                    &["propagation", "selinux", "recursive"],
                    false,
                ) && let Some(c) = bf.get("create_host_path")
                {
                    cx.boolean(c, &format!("{what}.bind.create_host_path"));
                }
            }
            if let Some(v) = f.get("volume") {
                if kind != MountKind::Volume {
                    cx.error(
                        v.pos,
                        format!("{what}: `volume` options on a {kind:?} mount"),
                    );
                } else if let Some(vf) = cx.fields(
                    v,
                    &format!("{what}.volume"),
                    &["nocopy"],
                    &["subpath"],
                    false,
                ) {
                    m.nocopy = vf
                        .get("nocopy")
                        .and_then(|n| cx.boolean(n, &format!("{what}.volume.nocopy")))
                        .unwrap_or(false);
                }
            }
            if let Some(t) = f.get("tmpfs") {
                if kind != MountKind::Tmpfs {
                    cx.error(
                        t.pos,
                        format!("{what}: `tmpfs` options on a {kind:?} mount"),
                    );
                } else if let Some(tf) =
                    cx.fields(t, &format!("{what}.tmpfs"), &["size"], &["mode"], false)
                    && let Some(sz) = tf.get("size")
                {
                    match sz.scalar_text().map(|s| parse_bytes(&s)) {
                        Some(Ok(b)) => m.tmpfs_size = Some(b),
                        Some(Err(e)) => cx.error(sz.pos, format!("{what}.tmpfs.size: {e}")),
                        None => cx.error(sz.pos, format!("{what}.tmpfs.size must be a size")),
                    }
                }
            }
            Some(m)
        }
        _ => {
            cx.error(
                item.pos,
                format!("{what}: each entry must be a string or a mapping"),
            );
            None
        }
    }
}

fn service_networks(n: &Node, what: &str, cx: &mut Cx<'_>) -> BTreeMap<String, ServiceNetwork> {
    let mut out = BTreeMap::new();
    match &n.value {
        Value::Seq(items) => {
            for i in items {
                if let Some(s) = cx.text(i, what) {
                    out.insert(s, ServiceNetwork::default());
                }
            }
        }
        Value::Map(entries) => {
            for (k, v) in entries {
                let name = k.as_str().unwrap_or_default().to_owned();
                let mut sn = ServiceNetwork::default();
                if !matches!(v.value, Value::Null)
                    && let Some(f) = cx.fields(
                        v,
                        &format!("{what}.{name}"),
                        &["aliases", "ipv4_address"],
                        &[
                            "ipv6_address",
                            "priority",
                            "link_local_ips",
                            "mac_address",
                            "driver_opts",
                            "gw_priority",
                            "interface_name",
                        ],
                        true,
                    )
                {
                    if let Some(a) = f.get("aliases") {
                        sn.aliases = cx
                            .strings(a, &format!("{what}.{name}.aliases"), false)
                            .unwrap_or_default();
                    }
                    if let Some(ip) = f.get("ipv4_address") {
                        sn.ipv4_address = cx.text(ip, &format!("{what}.{name}.ipv4_address"));
                        if let Some(s) = &sn.ipv4_address
                            && s.parse::<std::net::Ipv4Addr>().is_err()
                        {
                            cx.error(ip.pos, format!("{what}.{name}: invalid ipv4_address {s:?}"));
                        }
                    }
                }
                out.insert(name, sn);
            }
        }
        _ => cx.error(n.pos, format!("{what} must be a list or a mapping")),
    }
    out
}

fn depends_on(n: &Node, what: &str, cx: &mut Cx<'_>) -> BTreeMap<String, Dependency> {
    let mut out = BTreeMap::new();
    match &n.value {
        Value::Seq(items) => {
            for i in items {
                if let Some(s) = cx.text(i, what) {
                    out.insert(s, Dependency::default());
                }
            }
        }
        Value::Map(entries) => {
            for (k, v) in entries {
                let name = k.as_str().unwrap_or_default().to_owned();
                let mut d = Dependency::default();
                let w = format!("{what}.{name}");
                if let Some(f) = cx.fields(v, &w, &["condition", "required", "restart"], &[], false)
                {
                    if let Some(c) = f
                        .get("condition")
                        .and_then(|c| cx.text(c, &format!("{w}.condition")))
                    {
                        d.condition = match c.as_str() {
                            "service_started" => DependencyCondition::ServiceStarted,
                            "service_healthy" => DependencyCondition::ServiceHealthy,
                            "service_completed_successfully" => {
                                DependencyCondition::ServiceCompletedSuccessfully
                            }
                            other => {
                                cx.error(
                                    f.get("condition").map_or(v.pos, |c| c.pos),
                                    format!("{w}: condition {other:?} is not service_started, service_healthy or service_completed_successfully"),
                                );
                                d.condition
                            }
                        };
                    }
                    if let Some(r) = f.get("required") {
                        d.required = cx.boolean(r, &format!("{w}.required")).unwrap_or(true);
                    }
                    if let Some(r) = f.get("restart") {
                        d.restart = cx.boolean(r, &format!("{w}.restart")).unwrap_or(false);
                    }
                }
                out.insert(name, d);
            }
        }
        _ => cx.error(n.pos, format!("{what} must be a list or a mapping")),
    }
    out
}

fn healthcheck(n: &Node, what: &str, cx: &mut Cx<'_>) -> Option<Healthcheck> {
    let f = cx.fields(
        n,
        what,
        &[
            "test",
            "interval",
            "timeout",
            "retries",
            "start_period",
            "start_interval",
            "disable",
        ],
        &[],
        true,
    )?;
    let mut h = Healthcheck {
        test: Vec::new(),
        interval: None,
        timeout: None,
        retries: None,
        start_period: None,
        start_interval: None,
        disable: false,
    };
    if let Some(d) = f.get("disable") {
        h.disable = cx.boolean(d, &format!("{what}.disable")).unwrap_or(false);
    }
    if let Some(t) = f.get("test") {
        match &t.value {
            Value::Str(s) => h.test = vec!["CMD-SHELL".into(), s.clone()],
            _ => {
                if let Some(v) = cx.strings(t, &format!("{what}.test"), false) {
                    match v.first().map(String::as_str) {
                        Some("CMD" | "CMD-SHELL") if v.len() >= 2 => h.test = v,
                        Some("NONE") => {
                            h.test = v;
                            h.disable = true;
                        }
                        _ => cx.error(
                            t.pos,
                            format!("{what}.test: a list must start with CMD, CMD-SHELL or NONE and have a command"),
                        ),
                    }
                }
            }
        }
    } else if !h.disable {
        cx.error(n.pos, format!("{what} needs `test` (or `disable: true`)"));
    }
    h.interval = f
        .get("interval")
        .and_then(|d| cx.duration(d, &format!("{what}.interval")));
    h.timeout = f
        .get("timeout")
        .and_then(|d| cx.duration(d, &format!("{what}.timeout")));
    h.start_period = f
        .get("start_period")
        .and_then(|d| cx.duration(d, &format!("{what}.start_period")));
    h.start_interval = f
        .get("start_interval")
        .and_then(|d| cx.duration(d, &format!("{what}.start_interval")));
    h.retries = f
        .get("retries")
        .and_then(|r| cx.int_in(r, &format!("{what}.retries"), 0, 1000))
        .map(|r| r as u32);
    Some(h)
}

fn device(i: &Node, what: &str, cx: &mut Cx<'_>) -> Option<DeviceMapping> {
    let (host, container, perms) = match &i.value {
        Value::Map(_) => {
            let f = cx.fields(i, what, &["source", "target", "permissions"], &[], false)?;
            let host = f
                .get("source")
                .and_then(|s| cx.text(s, &format!("{what}.source")))?;
            let container = f
                .get("target")
                .and_then(|s| cx.text(s, &format!("{what}.target")))
                .unwrap_or_else(|| host.clone());
            let perms = f
                .get("permissions")
                .and_then(|s| cx.text(s, &format!("{what}.permissions")))
                .unwrap_or_else(|| "rwm".into());
            (host, container, perms)
        }
        _ => {
            let s = cx.text(i, what)?;
            let parts: Vec<&str> = s.split(':').collect();
            match parts.as_slice() {
                [h] => ((*h).to_owned(), (*h).to_owned(), "rwm".to_owned()),
                [h, c] => ((*h).to_owned(), (*c).to_owned(), "rwm".to_owned()),
                [h, c, p] => ((*h).to_owned(), (*c).to_owned(), (*p).to_owned()),
                _ => {
                    cx.error(i.pos, format!("{what}: invalid device {s:?}"));
                    return None;
                }
            }
        }
    };
    if !host.starts_with('/') || !container.starts_with('/') {
        cx.error(
            i.pos,
            format!("{what}: device paths must be absolute ({host:?}:{container:?})"),
        );
        return None;
    }
    if perms.is_empty() || !perms.chars().all(|c| matches!(c, 'r' | 'w' | 'm')) {
        cx.error(
            i.pos,
            format!("{what}: device permissions {perms:?} must be made of r, w, m"),
        );
        return None;
    }
    Some(DeviceMapping {
        host_path: host,
        container_path: container,
        permissions: perms,
    })
}

fn extra_hosts(n: &Node, what: &str, cx: &mut Cx<'_>) -> Vec<String> {
    let mut out = Vec::new();
    let mut push = |cx: &mut Cx<'_>, host: &str, ip: &str, pos: Pos| {
        let ip = ip.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() || (ip != "host-gateway" && ip.parse::<IpAddr>().is_err()) {
            cx.error(
                pos,
                format!("{what}: {host:?} -> {ip:?} is not `hostname: ip` (or host-gateway)"),
            );
        } else {
            out.push(format!("{host}:{ip}"));
        }
    };
    match &n.value {
        Value::Map(entries) => {
            for (k, v) in entries {
                let host = k.as_str().unwrap_or_default().to_owned();
                match v.scalar_text() {
                    Some(ip) => push(cx, &host, &ip, v.pos),
                    None => cx.error(v.pos, format!("{what}: `{host}` needs an IP")),
                }
            }
        }
        Value::Seq(items) => {
            for i in items {
                let Some(s) = cx.text(i, what) else { continue };
                let split = s.find('=').or_else(|| s.find(':'));
                match split {
                    Some(p) => push(cx, &s[..p], &s[p + 1..], i.pos),
                    None => cx.error(i.pos, format!("{what}: {s:?} is not host:ip")),
                }
            }
        }
        _ => cx.error(n.pos, format!("{what} must be a list or a mapping")),
    }
    out
}

fn ulimits(n: &Node, what: &str, cx: &mut Cx<'_>) -> BTreeMap<String, Ulimit> {
    let mut out = BTreeMap::new();
    let Some(entries) = cx.entries(n, what) else {
        return out;
    };
    for (k, v) in entries {
        let name = k.as_str().unwrap_or_default().to_owned();
        let w = format!("{what}.{name}");
        let limit = match &v.value {
            Value::Map(_) => {
                let Some(f) = cx.fields(v, &w, &["soft", "hard"], &[], false) else {
                    continue;
                };
                let soft = f.get("soft").and_then(|s| cx.int(s, &format!("{w}.soft")));
                let hard = f.get("hard").and_then(|s| cx.int(s, &format!("{w}.hard")));
                match (soft, hard) {
                    (Some(soft), Some(hard)) => {
                        if soft > hard {
                            cx.error(
                                v.pos,
                                format!("{w}: soft limit {soft} is above the hard limit {hard}"),
                            );
                        }
                        Ulimit { soft, hard }
                    }
                    _ => {
                        cx.error(v.pos, format!("{w} needs `soft` and `hard`"));
                        continue;
                    }
                }
            }
            _ => match cx.int(v, &w) {
                Some(i) => Ulimit { soft: i, hard: i },
                None => continue,
            },
        };
        out.insert(name, limit);
    }
    out
}

fn deploy(n: &Node, what: &str, cx: &mut Cx<'_>) -> Resources {
    let mut r = Resources::default();
    let Some(f) = cx.fields(
        n,
        what,
        &["resources"],
        &[
            "mode",
            "replicas",
            "labels",
            "update_config",
            "rollback_config",
            "restart_policy",
            "placement",
            "endpoint_mode",
        ],
        true,
    ) else {
        return r;
    };
    let Some(res) = f.get("resources") else {
        return r;
    };
    let w = format!("{what}.resources");
    let Some(rf) = cx.fields(res, &w, &["limits", "reservations"], &[], false) else {
        return r;
    };
    let cpus = |cx: &mut Cx<'_>, n: &Node, what: &str| -> Option<f64> {
        let c = cx.float(n, what)?;
        if c <= 0.0 {
            cx.error(n.pos, format!("{what} must be above 0"));
            return None;
        }
        Some(c)
    };
    let memory = |cx: &mut Cx<'_>, n: &Node, what: &str| -> Option<u64> {
        match n.scalar_text().map(|s| parse_bytes(&s)) {
            Some(Ok(b)) => Some(b),
            Some(Err(e)) => {
                cx.error(n.pos, format!("{what}: {e}"));
                None
            }
            None => {
                cx.error(n.pos, format!("{what} must be a size like 512m"));
                None
            }
        }
    };
    if let Some(l) = rf.get("limits") {
        let w = format!("{w}.limits");
        if let Some(lf) = cx.fields(l, &w, &["cpus", "memory", "pids"], &[], false) {
            r.limits.cpus = lf
                .get("cpus")
                .and_then(|c| cpus(cx, c, &format!("{w}.cpus")));
            r.limits.memory_bytes = lf
                .get("memory")
                .and_then(|m| memory(cx, m, &format!("{w}.memory")));
            r.limits.pids = lf
                .get("pids")
                .and_then(|p| cx.int_in(p, &format!("{w}.pids"), -1, i64::from(i32::MAX)));
        }
    }
    if let Some(l) = rf.get("reservations") {
        let w = format!("{w}.reservations");
        if let Some(lf) = cx.fields(
            l,
            &w,
            &["cpus", "memory", "devices"],
            &["generic_resources"],
            false,
        ) {
            r.reservations.cpus = lf
                .get("cpus")
                .and_then(|c| cpus(cx, c, &format!("{w}.cpus")));
            r.reservations.memory_bytes = lf
                .get("memory")
                .and_then(|m| memory(cx, m, &format!("{w}.memory")));
            if let Some(d) = lf.get("devices")
                && let Some(items) = cx.seq(d, &format!("{w}.devices"))
            {
                for i in items {
                    if let Some(req) = device_request(i, &format!("{w}.devices"), cx) {
                        r.reservations.devices.push(req);
                    }
                }
            }
        }
    }
    r
}

fn device_request(i: &Node, what: &str, cx: &mut Cx<'_>) -> Option<DeviceRequest> {
    let f = cx.fields(
        i,
        what,
        &["driver", "count", "device_ids", "capabilities", "options"],
        &[],
        false,
    )?;
    let driver = f
        .get("driver")
        .and_then(|d| cx.text(d, &format!("{what}.driver")));
    let device_ids = f
        .get("device_ids")
        .and_then(|d| cx.strings(d, &format!("{what}.device_ids"), false))
        .unwrap_or_default();
    let capabilities = match f
        .get("capabilities")
        .and_then(|c| cx.strings(c, &format!("{what}.capabilities"), false))
    {
        Some(c) if !c.is_empty() => c,
        _ => {
            cx.error(
                i.pos,
                format!("{what}: `capabilities` is required (e.g. [gpu])"),
            );
            return None;
        }
    };
    let count = match f.get("count") {
        Some(c) => {
            if !device_ids.is_empty() {
                cx.error(
                    c.pos,
                    format!("{what}: `count` and `device_ids` cannot both be set"),
                );
                return None;
            }
            match &c.value {
                Value::Str(s) if s == "all" => DeviceCount::All,
                _ => match cx.int_in(c, &format!("{what}.count"), 1, 1024) {
                    Some(n) => DeviceCount::Count(n as u32),
                    None => return None,
                },
            }
        }
        None if device_ids.is_empty() => DeviceCount::All,
        None => DeviceCount::Ids,
    };
    let mut seen = BTreeSet::new();
    for id in &device_ids {
        if id.is_empty() || !seen.insert(id) {
            cx.error(
                i.pos,
                format!("{what}: device id {id:?} is empty or repeated"),
            );
        }
    }
    if capabilities.iter().any(|c| c == "gpu") && driver.as_deref().is_some_and(|d| d != "nvidia") {
        cx.warning(
            i.pos,
            format!("{what}: GPU reservations are only tested with driver nvidia"),
        );
    }
    let options = f
        .get("options")
        .and_then(|o| cx.string_map(o, &format!("{what}.options")))
        .unwrap_or_default();
    Some(DeviceRequest {
        driver,
        count,
        device_ids,
        capabilities,
        options,
    })
}

/// Networks, volumes and depends_on must refer to things that exist, and
/// depends_on must not loop.
fn check_references(out: &Decoded, services: &[(Node, Node)], cx: &mut Cx<'_>) {
    let compose = &out.compose;
    for (k, v) in services {
        let name = k.as_str().unwrap_or_default();
        let Some(svc) = compose.services.get(name) else {
            continue;
        };
        let pos_of = |key: &str| v.get(key).map_or(k.pos, |n| n.pos);
        for net in svc.networks.keys() {
            if net != "default" && !compose.networks.contains_key(net) {
                cx.error(pos_of("networks"), format!("service `{name}` uses network `{net}`, which is not declared under top-level `networks`"));
            }
        }
        for m in &svc.volumes {
            if m.kind == MountKind::Volume
                && let Some(src) = &m.source
                && !compose.volumes.contains_key(src)
            {
                cx.error(pos_of("volumes"), format!("service `{name}` uses volume `{src}`, which is not declared under top-level `volumes`"));
            }
        }
        let mut targets = BTreeSet::new();
        for m in &svc.volumes {
            if !targets.insert(&m.target) {
                cx.error(
                    pos_of("volumes"),
                    format!("service `{name}` mounts two things at {}", m.target),
                );
            }
        }
        for (dep, d) in &svc.depends_on {
            if dep == name {
                cx.error(
                    pos_of("depends_on"),
                    format!("service `{name}` depends on itself"),
                );
            } else if d.required
                && !compose.services.contains_key(dep)
                && !out.service_pos.contains_key(dep)
            {
                cx.error(
                    pos_of("depends_on"),
                    format!(
                        "service `{name}` depends on `{dep}`, which is not a service of this stack"
                    ),
                );
            }
        }
    }
    // Cycles.
    let graph: BTreeMap<&str, Vec<&str>> = compose
        .services
        .iter()
        .map(|(n, s)| {
            (
                n.as_str(),
                s.depends_on
                    .keys()
                    .map(String::as_str)
                    .filter(|d| *d != n)
                    .collect(),
            )
        })
        .collect();
    if let Some(cycle) = find_cycle(&graph) {
        let first = cycle.first().copied().unwrap_or_default();
        let pos = out.service_pos.get(first).copied().unwrap_or_default();
        cx.error(
            pos,
            format!("depends_on forms a cycle: {}", cycle.join(" -> ")),
        );
    }
}

/// A cycle in a dependency graph, as the list of nodes with the first
/// repeated at the end, if there is one. Deterministic (sorted walk).
pub fn find_cycle<'a>(graph: &BTreeMap<&'a str, Vec<&'a str>>) -> Option<Vec<&'a str>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Active,
        Done,
    }
    let mut marks: BTreeMap<&str, Mark> = graph.keys().map(|k| (*k, Mark::New)).collect();
    fn visit<'a>(
        n: &'a str,
        graph: &BTreeMap<&'a str, Vec<&'a str>>,
        marks: &mut BTreeMap<&'a str, Mark>,
        stack: &mut Vec<&'a str>,
    ) -> Option<Vec<&'a str>> {
        match marks.get(n).copied() {
            Some(Mark::Done) | None => return None,
            Some(Mark::Active) => {
                let start = stack.iter().position(|s| *s == n).unwrap_or(0);
                let mut c: Vec<&str> = stack[start..].to_vec();
                c.push(n);
                return Some(c);
            }
            Some(Mark::New) => {}
        }
        marks.insert(n, Mark::Active);
        stack.push(n);
        for d in graph.get(n).map(Vec::as_slice).unwrap_or_default() {
            if let Some(c) = visit(d, graph, marks, stack) {
                return Some(c);
            }
        }
        stack.pop();
        marks.insert(n, Mark::Done);
        None
    }
    let keys: Vec<&str> = graph.keys().copied().collect();
    for k in keys {
        let mut stack = Vec::new();
        if let Some(c) = visit(k, graph, &mut marks, &mut stack) {
            return Some(c);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_ports() {
        let p = parse_short_port("127.0.0.1:8080:80/udp").unwrap();
        assert_eq!(
            p,
            vec![PortMapping {
                target: 80,
                published: Some(8080),
                host_ip: Some("127.0.0.1".into()),
                protocol: Protocol::Udp
            }]
        );
        assert_eq!(parse_short_port("80").unwrap()[0].published, None);
        assert_eq!(parse_short_port("8000-8002:9000-9002").unwrap().len(), 3);
        assert_eq!(
            parse_short_port("[::1]:53:53/udp").unwrap()[0]
                .host_ip
                .as_deref(),
            Some("::1")
        );
        assert_eq!(
            parse_short_port("127.0.0.1::80").unwrap()[0].published,
            None
        );
        assert!(parse_short_port("70000:80").is_err());
        assert!(parse_short_port("8000-8001:80-82").is_err());
        assert!(parse_short_port("a:b:c:d").is_err());
        assert!(parse_short_port("80/xyz").is_err());
        assert!(parse_short_port("1.2.3:80:80").is_err());
    }

    #[test]
    fn shell_words() {
        assert_eq!(
            split_shell_words(r#"sh -c 'echo "hi there"' x\ y"#).unwrap(),
            vec!["sh", "-c", "echo \"hi there\"", "x y"]
        );
        assert!(split_shell_words("echo 'open").is_err());
        assert_eq!(split_shell_words("").unwrap(), Vec::<String>::new());
    }

    #[test]
    fn cycles() {
        let mut g = BTreeMap::new();
        g.insert("a", vec!["b"]);
        g.insert("b", vec!["c"]);
        g.insert("c", vec!["a"]);
        assert_eq!(find_cycle(&g), Some(vec!["a", "b", "c", "a"]));
        g.insert("c", vec![]);
        assert_eq!(find_cycle(&g), None);
    }
}
