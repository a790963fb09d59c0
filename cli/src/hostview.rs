//! `convoy host NAME`: the text form of `GET /api/v1/hosts/{name}/telemetry`.

use std::fmt::Write as _;

use serde_json::Value;

fn bytes(v: Option<u64>) -> String {
    let Some(b) = v else { return "-".into() };
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut x = b as f64;
    let mut u = 0;
    while x >= 1024.0 && u + 1 < UNITS.len() {
        x /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{x:.1} {}", UNITS[u])
    }
}

fn opt_num(v: &Value, key: &str, unit: &str) -> String {
    v.get(key)
        .and_then(Value::as_f64)
        .map_or("-".into(), |n| format!("{n}{unit}"))
}

fn u(v: &Value, key: &str) -> Option<u64> {
    v.get(key).and_then(Value::as_u64)
}

fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

/// Host figures, then one row per GPU and, under each, its processes with
/// the containers (stack/service) they belong to, then recent GPU events.
pub fn host_text(v: &Value) -> String {
    let mut out = String::new();
    let name = s(v, "name");
    let state = if v.get("connected").and_then(Value::as_bool) == Some(true) {
        "connected"
    } else {
        "offline"
    };
    let _ = writeln!(out, "host {name} ({state})");
    let Some(h) = v.get("host").filter(|h| !h.is_null()) else {
        let _ = writeln!(out, "  no telemetry received yet");
        return out;
    };
    let at = v.get("at_unix_ms").and_then(Value::as_i64).unwrap_or(0);
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    let _ = writeln!(
        out,
        "  sample:  {}s ago ({} held, {} dropped by the agent)",
        (now_ms - at).max(0) / 1000,
        u(v, "samples_held").unwrap_or(0),
        u(v, "dropped_samples").unwrap_or(0)
    );
    let _ = writeln!(
        out,
        "  os:      {} (kernel {}), docker {}, up {}h",
        s(h, "os"),
        s(h, "kernel"),
        s(h, "docker_version"),
        u(h, "uptime_seconds").unwrap_or(0) / 3600
    );
    let load: Vec<String> = h
        .get("load")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|x| format!("{:.2}", x.as_f64().unwrap_or(0.0)))
                .collect()
        })
        .unwrap_or_default();
    let cores = h
        .get("cpu_per_core_percent")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    let _ = writeln!(
        out,
        "  cpu:     {:.1}% of {cores} cores, load {}",
        h.get("cpu_percent").and_then(Value::as_f64).unwrap_or(0.0),
        load.join(" ")
    );
    let _ = writeln!(
        out,
        "  memory:  {} / {}, swap {} / {}",
        bytes(u(h, "memory_used_bytes")),
        bytes(u(h, "memory_total_bytes")),
        bytes(u(h, "swap_used_bytes")),
        bytes(u(h, "swap_total_bytes"))
    );
    for d in h
        .get("disks")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let _ = writeln!(
            out,
            "  disk:    {:<20} {} / {}",
            s(d, "mount_point"),
            bytes(u(d, "used_bytes")),
            bytes(u(d, "total_bytes"))
        );
    }
    let gpus = v
        .get("gpus")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if gpus.is_empty() {
        let _ = writeln!(out, "  no GPUs");
    } else {
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "{:<4} {:<28} {:>5} {:>5} {:>21} {:>6} {:>15} {:>5} UUID",
            "GPU", "MODEL", "UTIL", "MEM%", "MEMORY", "TEMP", "POWER", "XID"
        );
        for g in &gpus {
            let power = match (
                u(g, "power_draw_milliwatts"),
                u(g, "power_limit_milliwatts"),
            ) {
                (Some(d), Some(l)) => format!("{}W / {}W", d / 1000, l / 1000),
                (Some(d), None) => format!("{}W", d / 1000),
                _ => "-".into(),
            };
            let last_xid = u(g, "last_xid").unwrap_or(0);
            let _ = writeln!(
                out,
                "{:<4} {:<28} {:>5} {:>5} {:>21} {:>6} {:>15} {:>5} {}",
                u(g, "index").unwrap_or(0),
                s(g, "name"),
                opt_num(g, "utilization_gpu_percent", "%"),
                opt_num(g, "utilization_memory_percent", "%"),
                format!(
                    "{} / {}",
                    bytes(u(g, "memory_used_bytes")),
                    bytes(u(g, "memory_total_bytes"))
                ),
                opt_num(g, "temperature_celsius", "C"),
                power,
                if last_xid == 0 {
                    "-".to_owned()
                } else {
                    last_xid.to_string()
                },
                s(g, "uuid"),
            );
            let missing = g
                .get("missing_fields")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).collect::<Vec<_>>())
                .unwrap_or_default();
            if !missing.is_empty() {
                let _ = writeln!(out, "     unreadable: {}", missing.join(", "));
            }
            for p in g
                .get("processes")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let cid = s(p, "container_id");
                let short: String = cid.chars().take(12).collect();
                let owner = match (s(p, "stack"), s(p, "service")) {
                    ("", _) if cid.is_empty() => "(not in a container)".to_owned(),
                    ("", _) => format!("container {short}"),
                    (stack, service) => format!("{stack}/{service} (container {short})"),
                };
                let _ = writeln!(
                    out,
                    "     pid {:<8} {:>10}  {owner}",
                    u(p, "pid").unwrap_or(0),
                    bytes(u(p, "used_memory_bytes")),
                );
            }
        }
    }
    let events = v
        .get("events")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if !events.is_empty() {
        let _ = writeln!(out);
        let _ = writeln!(out, "recent GPU events:");
        for e in events.iter().take(10) {
            let _ = writeln!(
                out,
                "  GPU {} {:<20} {}",
                u(e, "gpu").unwrap_or(0),
                s(e, "kind"),
                s(e, "message")
            );
        }
    }
    out
}
