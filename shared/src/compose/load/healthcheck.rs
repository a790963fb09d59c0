//! `healthcheck`: the test (a shell string, or a `CMD`/`CMD-SHELL`/`NONE`
//! list), its timings and retries, or `disable`.

use super::service::{Area, Ctx, key_what};
use crate::compose::model::{Healthcheck, Service};
use crate::source::decode::{Cx, Fields};
use crate::source::node::{Node, Value};

pub(super) const AREA: Area = Area {
    keys: &["healthcheck"],
    decode,
};

fn decode(f: &Fields<'_>, s: &mut Ctx<'_, '_>, svc: &mut Service) {
    if let Some(n) = f.get("healthcheck") {
        svc.healthcheck = healthcheck(n, &key_what(s.what, "healthcheck"), s.cx);
    }
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
