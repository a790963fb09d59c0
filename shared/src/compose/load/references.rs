//! Checks across one compose file, after every service is decoded: the
//! networks and named volumes services use are declared, no two mounts
//! share a target, `depends_on` names services of the stack and forms no
//! cycle.

use std::collections::{BTreeMap, BTreeSet};

use super::Decoded;
use crate::compose::model::MountKind;
use crate::source::decode::Cx;
use crate::source::node::Node;

/// Networks, volumes and depends_on must refer to things that exist, and
/// depends_on must not loop.
pub(super) fn check(out: &Decoded, services: &[(Node, Node)], cx: &mut Cx<'_>) {
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
