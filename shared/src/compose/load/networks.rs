//! `networks`: which networks a service joins (with aliases and a fixed
//! IPv4 address; `default` when none is named) and the top-level network
//! definitions.

use std::collections::BTreeMap;

use super::service::{Area, Ctx, key_what};
use crate::compose::model::{NetworkDef, Service, ServiceNetwork};
use crate::source::decode::{Cx, Fields};
use crate::source::node::{Node, Value};

pub(super) const AREA: Area = Area {
    keys: &["networks"],
    decode,
};

fn decode(f: &Fields<'_>, s: &mut Ctx<'_, '_>, svc: &mut Service) {
    if let Some(n) = f.get("networks") {
        svc.networks = service_networks(n, &key_what(s.what, "networks"), s.cx);
    }
    if svc.networks.is_empty() {
        svc.networks
            .insert("default".into(), ServiceNetwork::default());
    }
}

/// A top-level `networks:` entry (null = a default bridge network).
pub(super) fn network_def(v: &Node, name: &str, cx: &mut Cx<'_>) -> Option<NetworkDef> {
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
