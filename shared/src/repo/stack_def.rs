//! One `[stacks.NAME]` table of `fleet.toml`: its directory, host
//! selector, `after`, `remove_volumes` and health policy with probes.

use super::DEFAULT_PROBE_TIMEOUT;
use super::fleet_toml::selector;
use super::source::normalise_rel;
use crate::fleet::{HealthPolicy, Probe, ProbeCheck, StackDef};
use crate::source::Cx;
use crate::source::node::Node;

pub(super) fn decode_stack(v: &Node, stack: &str, cx: &mut Cx<'_>) -> Option<StackDef> {
    let what = format!("stack `{stack}`");
    let f = cx.fields(
        v,
        &what,
        &["path", "hosts", "after", "health", "remove_volumes"],
        &[],
        false,
    )?;
    let path = match f.get("path") {
        Some(p) => {
            let s = cx.string(p, &format!("{what}: `path`"))?;
            match normalise_rel(&s) {
                Ok(n) => n,
                Err(e) => {
                    cx.error(p.pos, format!("{what}: path {e}"));
                    return None;
                }
            }
        }
        None => {
            cx.error(
                v.pos,
                format!("{what} needs `path` (e.g. \"stacks/{stack}\")"),
            );
            return None;
        }
    };
    let hosts = match f.get("hosts") {
        Some(h) => selector(h, &format!("{what}: `hosts`"), cx)?,
        None => {
            cx.error(
                v.pos,
                format!("{what} needs `hosts`, a label selector (\"\" for every host)"),
            );
            return None;
        }
    };
    let after = match f.get("after") {
        Some(a) => cx
            .strings(a, &format!("{what}: `after`"), false)
            .unwrap_or_default(),
        None => Vec::new(),
    };
    let mut health = HealthPolicy::default();
    if let Some(h) = f.get("health") {
        let hw = format!("{what}: health");
        let hf = cx.fields(h, &hw, &["deadline", "min_healthy", "probes"], &[], false);
        let hf = hf.as_ref();
        let mut durations_ok = true;
        if let Some(d) = hf.and_then(|f| f.get("deadline")) {
            match cx.duration(d, &format!("{hw}.deadline")) {
                Some(v) => health.deadline = v,
                None => durations_ok = false,
            }
        }
        if let Some(d) = hf.and_then(|f| f.get("min_healthy")) {
            match cx.duration(d, &format!("{hw}.min_healthy")) {
                Some(v) => health.min_healthy = v,
                None => durations_ok = false,
            }
        }
        let pos_of = |k: &str| hf.and_then(|f| f.get(k)).map_or(h.pos, |d| d.pos);
        if health.deadline.is_zero() {
            cx.error(pos_of("deadline"), format!("{hw}.deadline must be above 0"));
        }
        if durations_ok && health.min_healthy > health.deadline {
            cx.error(
                pos_of("min_healthy"),
                format!(
                    "{hw}: min_healthy ({}) is longer than deadline ({}); the stack could never pass",
                    crate::duration::format(health.min_healthy),
                    crate::duration::format(health.deadline)
                ),
            );
        }
        if let Some(p) = hf.and_then(|f| f.get("probes")) {
            for item in cx.seq(p, &format!("{hw}.probes")).unwrap_or_default() {
                if let Some(probe) = decode_probe(item, &hw, cx) {
                    health.probes.push(probe);
                }
            }
        }
    }
    let remove_volumes = match f.get("remove_volumes") {
        Some(r) => cx
            .boolean(r, &format!("{what}: `remove_volumes`"))
            .unwrap_or(false),
        None => false,
    };
    Some(StackDef {
        name: stack.to_owned(),
        path,
        hosts,
        after,
        health,
        remove_volumes,
    })
}

fn decode_probe(item: &Node, hw: &str, cx: &mut Cx<'_>) -> Option<Probe> {
    let pw = format!("{hw}.probes");
    let f = cx.fields(
        item,
        &pw,
        &["service", "http", "tcp", "timeout"],
        &[],
        false,
    )?;
    let Some(service) = f
        .get("service")
        .and_then(|s| cx.string(s, &format!("{pw}.service")))
    else {
        cx.error(item.pos, format!("{pw}: a probe needs `service`"));
        return None;
    };
    let check = match (f.get("http"), f.get("tcp")) {
        (Some(h), None) => {
            let url = cx.string(h, &format!("{pw}.http"))?;
            let rest = url
                .strip_prefix("http://")
                .or_else(|| url.strip_prefix("https://"));
            match rest {
                Some(r) if !r.is_empty() && !r.starts_with('/') => ProbeCheck::Http { url },
                _ => {
                    cx.error(
                        h.pos,
                        format!("{pw}: {url:?} is not an http:// or https:// URL"),
                    );
                    return None;
                }
            }
        }
        (None, Some(t)) => {
            let address = cx.string(t, &format!("{pw}.tcp"))?;
            let valid = address
                .rsplit_once(':')
                .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0));
            if !valid {
                cx.error(t.pos, format!("{pw}: {address:?} is not host:port"));
                return None;
            }
            ProbeCheck::Tcp { address }
        }
        (Some(_), Some(_)) => {
            cx.error(
                item.pos,
                format!("{pw}: a probe has either `http` or `tcp`, not both"),
            );
            return None;
        }
        (None, None) => {
            cx.error(item.pos, format!("{pw}: a probe needs `http` or `tcp`"));
            return None;
        }
    };
    let timeout = match f.get("timeout") {
        Some(t) => {
            let d = cx.duration(t, &format!("{pw}.timeout"))?;
            if d.is_zero() {
                cx.error(t.pos, format!("{pw}.timeout must be above 0"));
            }
            d
        }
        None => DEFAULT_PROBE_TIMEOUT,
    };
    Some(Probe {
        service,
        check,
        timeout,
    })
}
