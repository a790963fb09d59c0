//! `deploy`: of compose's swarm section only `resources` has an effect on
//! one engine — CPU, memory and PID limits, CPU and memory reservations,
//! and device reservations (GPUs: `driver: nvidia` becomes the engine's
//! `DeviceRequests`, as compose does). The other `deploy` keys are refused.

use std::collections::BTreeSet;

use super::service::{Area, Ctx, key_what};
use crate::compose::model::{DeviceCount, DeviceRequest, Resources, Service};
use crate::source::decode::{Cx, Fields, parse_bytes};
use crate::source::node::{Node, Value};

pub(super) const AREA: Area = Area {
    keys: &["deploy"],
    decode,
};

fn decode(f: &Fields<'_>, s: &mut Ctx<'_, '_>, svc: &mut Service) {
    if let Some(n) = f.get("deploy") {
        svc.resources = deploy(n, &key_what(s.what, "deploy"), s.cx);
    }
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
