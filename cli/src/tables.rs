//! The human tables and texts the CLI prints from the API's JSON answers
//! (`-o json|yaml` print the answer itself). Unknown or missing fields print
//! as `-` or `?`: an older or newer control plane never makes a table fail.
//! Every function returns its text; colour comes from the [`Palette`] and is
//! applied after padding, so columns line up with or without it.

use std::fmt::Write as _;

use serde_json::Value;

use convoy_shared::api::HostView;

use crate::style::{Palette, Tone};

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `convoy hosts`: one row per host.
pub fn hosts_table(hosts: &[HostView], p: Palette) -> String {
    let now = now_secs();
    let ago = |t: u64| {
        if t == 0 {
            "never".to_owned()
        } else {
            format!("{}s ago", now.saturating_sub(t))
        }
    };
    let mut out = p.header(&format!(
        "{:<24} {:<10} {:<12} {:<16} LABELS",
        "HOST", "STATE", "LAST SEEN", "CERT EXPIRES IN"
    ));
    out.push('\n');
    for h in hosts {
        let state = if h.revoked {
            "revoked"
        } else if h.connected {
            "connected"
        } else {
            "offline"
        };
        let expires = if h.cert_not_after_unix == 0 {
            "-".to_owned()
        } else {
            format!("{}s", h.cert_not_after_unix.saturating_sub(now))
        };
        let labels: Vec<String> = h.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let _ = writeln!(
            out,
            "{:<24} {} {:<12} {:<16} {}",
            h.name,
            p.word(&format!("{state:<10}"), state),
            ago(h.last_seen_unix),
            expires,
            labels.join(",")
        );
    }
    out
}

/// The time of day (UTC) for `rollout --watch` headers.
pub fn chrono_now() -> String {
    let secs = now_secs();
    let (h, m, s) = ((secs / 3600) % 24, (secs / 60) % 60, secs % 60);
    format!("{h:02}:{m:02}:{s:02} UTC")
}

/// A commit or revision shortened to 12 characters.
pub fn short(s: &str) -> &str {
    s.get(..12).unwrap_or(s)
}

/// The variant name of a serialized enum (`"Running"` or `{"Halted": ..}`).
pub fn status_word(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Object(m) => m.keys().next().cloned().unwrap_or_default(),
        other => other.to_string(),
    }
}

/// A rollout: its head line, then one row per host.
pub fn rollout_text(v: &Value, p: Palette) -> String {
    let mut out = String::new();
    let get = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or("-").to_owned();
    let status = v.get("status").map(status_word).unwrap_or_default();
    let summary = get("summary");
    let _ = writeln!(
        out,
        "rollout {}  commit {}  {}",
        p.paint(&get("id"), Tone::Bold),
        short(&get("commit")),
        p.word(&summary, &status)
    );
    if let Some(hosts) = v.get("hosts").and_then(|h| h.as_object()) {
        out.push_str(&p.header(&format!(
            "  {:<20} {:<12} {:<14} {:<8} TARGET",
            "HOST", "WAVE", "PHASE", "ONLINE"
        )));
        out.push('\n');
        for (name, h) in hosts {
            let phase = status_word(h.get("phase").unwrap_or(&Value::Null));
            let online = if h.get("online").and_then(|o| o.as_bool()) == Some(true) {
                "yes"
            } else {
                "no"
            };
            let _ = writeln!(
                out,
                "  {:<20} {:<12} {} {} {}",
                name,
                h.get("wave").and_then(|w| w.as_str()).unwrap_or("-"),
                p.word(&format!("{phase:<14}"), &phase),
                p.word(&format!("{online:<8}"), online),
                short(
                    h.get("target_revision")
                        .and_then(|t| t.as_str())
                        .unwrap_or("-")
                ),
            );
        }
    }
    out.trim_end().to_owned()
}

/// `convoy rollouts`: one row per rollout, newest first.
pub fn rollouts_table(v: &Value, p: Palette) -> String {
    let Some(list) = v.as_array() else {
        return String::new();
    };
    let mut out = p.header(&format!(
        "{:<12} {:<14} {:<16} SUMMARY",
        "ROLLOUT", "COMMIT", "CREATED"
    ));
    out.push('\n');
    for r in list {
        let status = r.get("status").map(status_word).unwrap_or_default();
        let _ = writeln!(
            out,
            "{:<12} {:<14} {:<16} {}",
            r["id"].as_str().unwrap_or("?"),
            short(r["commit"].as_str().unwrap_or("?")),
            r["created_unix_ms"]
                .as_u64()
                .map(|ms| (ms / 1000).to_string())
                .unwrap_or_default(),
            p.word(r["summary"].as_str().unwrap_or(""), &status)
        );
    }
    out
}

/// `convoy status`.
pub fn status_text(v: &Value, p: Palette) -> String {
    let mut out = String::new();
    let git = v.get("git");
    let gs = |k: &str| {
        git.and_then(|g| g.get(k))
            .and_then(|x| x.as_str())
            .unwrap_or("-")
            .to_owned()
    };
    let _ = writeln!(
        out,
        "fleet            {}",
        v.get("fleet").and_then(|f| f.as_str()).unwrap_or("-")
    );
    let _ = writeln!(out, "repo             {} ({})", gs("url"), gs("branch"));
    let _ = writeln!(out, "head             {}", short(&gs("head")));
    if let Some(e) = git
        .and_then(|g| g.get("last_error"))
        .and_then(|e| e.as_str())
    {
        let _ = writeln!(out, "last sync error  {}", p.paint(e, Tone::Bad));
    }
    let _ = writeln!(
        out,
        "last good commit {}",
        short(
            v.get("last_good_commit")
                .and_then(|c| c.as_str())
                .unwrap_or("-")
        )
    );
    let connected: Vec<&str> = v
        .get("connected_hosts")
        .and_then(|c| c.as_array())
        .map(|a| a.iter().filter_map(|x| x.as_str()).collect())
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "connected hosts  {}",
        if connected.is_empty() {
            "-".to_owned()
        } else {
            connected.join(", ")
        }
    );
    match v.get("current_rollout") {
        Some(r) if !r.is_null() => out.push_str(&rollout_text(r, p)),
        _ => out.push_str("no rollout yet"),
    }
    out
}

/// `convoy events --alerts`: alerts with their delivery state per sink.
pub fn alerts_text(v: &Value, p: Palette) -> String {
    let Some(list) = v.as_array() else {
        return String::new();
    };
    if list.is_empty() {
        return "no alerts".into();
    }
    let mut out = String::new();
    for e in list {
        let a = &e["alert"];
        let states: Vec<String> = e["deliveries"]
            .as_array()
            .map(|d| {
                d.iter()
                    .map(|x| {
                        let state = status_word(&x["state"]);
                        format!(
                            "{}:{}",
                            x["sink"].as_str().unwrap_or("?"),
                            p.word(&state, &state)
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let severity = status_word(&a["severity"]);
        let _ = writeln!(
            out,
            "{}  {} {:<22} {}  [{}]",
            a["id"].as_str().unwrap_or("?"),
            p.word(&format!("{severity:<8}"), &severity),
            status_word(&a["kind"]),
            a["summary"].as_str().unwrap_or(""),
            states.join(" ")
        );
    }
    out
}

/// `convoy events`: audit entries, then the flag for the next page.
pub fn audit_text(v: &Value, p: Palette) -> String {
    let Some(list) = v.as_array() else {
        return String::new();
    };
    if list.is_empty() {
        return "no events".into();
    }
    let mut out = String::new();
    for e in list {
        let secs = e["at_unix_ms"].as_u64().unwrap_or(0) / 1000;
        let (h, m, s) = ((secs / 3600) % 24, (secs / 60) % 60, secs % 60);
        let mut subject = Vec::new();
        for k in ["host", "stack", "rollout"] {
            if let Some(x) = e[k].as_str() {
                subject.push(format!("{k}={x}"));
            }
        }
        if let Some(c) = e["commit"].as_str() {
            subject.push(format!("commit={}", short(c)));
        }
        let _ = writeln!(
            out,
            "{:>6} {h:02}:{m:02}:{s:02} {:<16} {:<16} {}  {}",
            e["seq"].as_u64().unwrap_or(0),
            e["kind"].as_str().unwrap_or("?"),
            e["who"].as_str().unwrap_or("?"),
            subject.join(" "),
            e["message"].as_str().unwrap_or("")
        );
    }
    if let Some(last) = list.last().and_then(|e| e["seq"].as_u64()) {
        let _ = write!(
            out,
            "{}",
            p.paint(&format!("(older: --before {last})"), Tone::Dim)
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_words_are_enum_variant_names() {
        assert_eq!(status_word(&serde_json::json!("Running")), "Running");
        assert_eq!(
            status_word(&serde_json::json!({"Halted": {"reason": "x"}})),
            "Halted"
        );
        assert_eq!(status_word(&serde_json::json!(null)), "null");
    }

    fn rollout() -> Value {
        serde_json::json!({
            "id": "r-1",
            "commit": "0123456789abcdef",
            "status": "Running",
            "summary": "wave 1/2",
            "hosts": {
                "web-1": {"wave": "prod", "phase": {"Verifying": {}}, "online": true,
                          "target_revision": "fedcba9876543210"},
                "web-2": {"phase": "Pending"}
            }
        })
    }

    #[test]
    fn a_rollout_prints_its_head_line_and_one_row_per_host() {
        let text = rollout_text(&rollout(), Palette::plain());
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "rollout r-1  commit 0123456789ab  wave 1/2");
        assert!(lines[1].trim_start().starts_with("HOST"));
        assert_eq!(
            lines[2],
            format!(
                "  {:<20} {:<12} {:<14} {:<8} {}",
                "web-1", "prod", "Verifying", "yes", "fedcba987654"
            )
        );
        assert_eq!(
            lines[3],
            format!(
                "  {:<20} {:<12} {:<14} {:<8} -",
                "web-2", "-", "Pending", "no"
            )
        );
        // Missing fields print as `-`, never fail.
        assert_eq!(
            rollout_text(&serde_json::json!({}), Palette::plain()),
            "rollout -  commit -  -"
        );
    }

    #[test]
    fn colour_only_adds_escapes_around_padded_cells() {
        let plain = rollout_text(&rollout(), Palette::plain());
        let coloured = rollout_text(&rollout(), Palette::new(true));
        assert!(!plain.contains('\x1b'));
        assert!(
            coloured.contains("\x1b[33mPending       \x1b[0m"),
            "{coloured}"
        );
        // Stripping the escapes gives back the plain text exactly.
        let mut stripped = String::new();
        let mut in_esc = false;
        for c in coloured.chars() {
            match (in_esc, c) {
                (false, '\x1b') => in_esc = true,
                (true, 'm') => in_esc = false,
                (true, _) => {}
                (false, c) => stripped.push(c),
            }
        }
        assert_eq!(stripped, plain);
    }
}
