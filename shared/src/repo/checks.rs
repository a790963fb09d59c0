//! Checks that need the whole fleet once every stack is loaded: `after`
//! references and cycles, selectors that match no host, hosts in no
//! rollout wave, a stack whose `after` is missing on a host, and the same
//! host port published twice on one host.

use std::collections::{BTreeMap, BTreeSet};

use super::LoadedStack;
use crate::compose::load as compose_load;
use crate::compose::{PortMapping, Protocol};
use crate::fleet::Fleet;
use crate::source::Cx;
use crate::source::node::{Node, Pos, Value};

/// Checks that need the whole fleet: references, cycles, waves, ports.
pub(super) fn check_fleet(
    fleet: &Fleet,
    stacks: &BTreeMap<String, LoadedStack>,
    stack_pos: &BTreeMap<String, Pos>,
    root: &Node,
    cx: &mut Cx<'_>,
) {
    let at = |s: &str| stack_pos.get(s).copied().unwrap_or_default();
    for (name, def) in &fleet.stacks {
        for a in &def.after {
            if a == name {
                cx.error(at(name), format!("stack `{name}` is after itself"));
            } else if !fleet.stacks.contains_key(a) {
                cx.error(
                    at(name),
                    format!("stack `{name}` is after `{a}`, which is not a stack"),
                );
            }
        }
        let matched: Vec<&String> = fleet
            .hosts
            .iter()
            .filter(|(_, h)| def.hosts.matches(&h.labels))
            .map(|(n, _)| n)
            .collect();
        if matched.is_empty() && !fleet.hosts.is_empty() {
            cx.warning(
                at(name),
                format!(
                    "stack `{name}`: selector {:?} matches no host",
                    def.hosts.as_str()
                ),
            );
        }
    }
    let graph: BTreeMap<&str, Vec<&str>> = fleet
        .stacks
        .iter()
        .map(|(n, d)| {
            (
                n.as_str(),
                d.after
                    .iter()
                    .map(String::as_str)
                    .filter(|a| *a != n && fleet.stacks.contains_key(*a))
                    .collect(),
            )
        })
        .collect();
    if let Some(cycle) = compose_load::find_cycle(&graph) {
        let first = cycle.first().copied().unwrap_or_default();
        cx.error(
            at(first),
            format!("`after` forms a cycle: {}", cycle.join(" -> ")),
        );
    }
    let rollout_pos = root
        .get("rollout")
        .map_or(Pos { line: 1, col: 1 }, |r| r.pos);
    for (host, def) in &fleet.hosts {
        let host_pos = root
            .get("hosts")
            .and_then(|h| match &h.value {
                Value::Map(e) => e
                    .iter()
                    .find(|(k, _)| k.as_str() == Some(host))
                    .map(|(k, _)| k.pos),
                _ => None,
            })
            .unwrap_or(rollout_pos);
        if !fleet
            .rollout
            .waves
            .iter()
            .any(|w| w.hosts.matches(&def.labels))
        {
            cx.error(
                host_pos,
                format!("host `{host}` is in no rollout wave, so it would never be updated"),
            );
        }
        let on_host: BTreeSet<&str> = fleet
            .stacks
            .iter()
            .filter(|(_, s)| s.hosts.matches(&def.labels))
            .map(|(n, _)| n.as_str())
            .collect();
        for s in &on_host {
            for a in &fleet.stacks[*s].after {
                if fleet.stacks.contains_key(a) && !on_host.contains(a.as_str()) {
                    cx.error(
                        at(s),
                        format!(
                            "stack `{s}` is after `{a}`, but host `{host}` gets `{s}` without `{a}`"
                        ),
                    );
                }
            }
        }
        // The same host port published twice on one host.
        let mut seen: Vec<(&str, &str, &PortMapping, &str, Pos)> = Vec::new();
        for s in &on_host {
            let Some(loaded) = stacks.get(*s) else {
                continue;
            };
            for (svc, p, pos) in &loaded.ports {
                let Some(port) = p.published else { continue };
                for (os, osvc, op, ofile, opos) in &seen {
                    if op.published == Some(port)
                        && op.protocol == p.protocol
                        && ips_overlap(&op.host_ip, &p.host_ip)
                    {
                        let mut fcx = Cx::new(loaded.compose_path.clone(), cx.diags);
                        fcx.error(
                            *pos,
                            format!(
                                "host `{host}`: {}/{} port {port} is published by `{s}`/`{svc}` and already by `{os}`/`{osvc}` ({ofile}:{}:{})",
                                p.host_ip.as_deref().unwrap_or("0.0.0.0"),
                                proto(p.protocol),
                                opos.line,
                                opos.col
                            ),
                        );
                    }
                }
                seen.push((s, svc, p, &loaded.compose_path, *pos));
            }
        }
    }
}

fn proto(p: Protocol) -> &'static str {
    match p {
        Protocol::Tcp => "tcp",
        Protocol::Udp => "udp",
        Protocol::Sctp => "sctp",
    }
}

fn ips_overlap(a: &Option<String>, b: &Option<String>) -> bool {
    let any = |x: &Option<String>| x.as_deref().is_none_or(|s| s == "0.0.0.0" || s == "::");
    any(a) || any(b) || a == b
}
