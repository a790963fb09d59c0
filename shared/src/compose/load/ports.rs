//! `ports`: the short syntax `[HOST_IP:][HOST_PORT:]CONTAINER_PORT[/PROTO]`
//! (ranges and bracketed IPv6 host IPs included) and the long syntax, both
//! expanded to one [`PortMapping`] per port. Each published port's position
//! is recorded for the repo-wide clash check.

use std::net::IpAddr;

use super::service::{Area, Ctx, key_what};
use crate::compose::model::{PortMapping, Protocol, Service};
use crate::source::decode::{Cx, Fields};
use crate::source::node::{Node, Value};

pub(super) const AREA: Area = Area {
    keys: &["ports"],
    decode,
};

fn decode(f: &Fields<'_>, s: &mut Ctx<'_, '_>, svc: &mut Service) {
    let what = key_what(s.what, "ports");
    if let Some(n) = f.get("ports")
        && let Some(items) = s.cx.seq(n, &what)
    {
        for item in items {
            for p in ports(item, &what, s.cx) {
                s.out
                    .port_pos
                    .push((s.name.to_owned(), p.clone(), item.pos));
                svc.ports.push(p);
            }
        }
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
}
