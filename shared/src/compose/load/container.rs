//! How the container runs, beyond its image and command: `restart`,
//! `labels` (compose's and Convoy's prefixes reserved), `user`,
//! `working_dir`, capabilities, `devices`, `extra_hosts`, `logging`,
//! `ulimits` and how it is stopped.

use std::collections::BTreeMap;
use std::net::IpAddr;

use super::service::{Area, Ctx, key_what};
use crate::compose::model::{DeviceMapping, Logging, RestartPolicy, Service, Ulimit};
use crate::source::decode::{Cx, Fields};
use crate::source::node::{Node, Pos, Value};

pub(super) const AREA: Area = Area {
    keys: &[
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
    ],
    decode,
};

fn decode(f: &Fields<'_>, s: &mut Ctx<'_, '_>, svc: &mut Service) {
    let (what, cx) = (s.what, &mut *s.cx);
    let w = |key: &str| key_what(what, key);
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
