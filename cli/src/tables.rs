//! The human tables and texts the CLI prints from the API's JSON answers
//! (`--json` prints the answer itself). Unknown or missing fields print as
//! `-` or `?`: an older or newer control plane never makes a table fail.

use convoy_shared::api::HostView;

/// `convoy hosts`: one row per host.
pub fn print_hosts(hosts: &[HostView]) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let ago = |t: u64| {
        if t == 0 {
            "never".to_owned()
        } else {
            format!("{}s ago", now.saturating_sub(t))
        }
    };
    println!(
        "{:<24} {:<10} {:<12} {:<16} LABELS",
        "HOST", "STATE", "LAST SEEN", "CERT EXPIRES IN"
    );
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
        println!(
            "{:<24} {:<10} {:<12} {:<16} {}",
            h.name,
            state,
            ago(h.last_seen_unix),
            expires,
            labels.join(",")
        );
    }
}

/// The time of day (UTC) for `rollout --watch` headers.
pub fn chrono_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (h, m, s) = ((secs / 3600) % 24, (secs / 60) % 60, secs % 60);
    format!("{h:02}:{m:02}:{s:02} UTC")
}

/// A commit or revision shortened to 12 characters.
pub fn short(s: &str) -> &str {
    s.get(..12).unwrap_or(s)
}

/// The variant name of a serialized enum (`"Running"` or `{"Halted": ..}`).
pub fn status_word(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Object(m) => m.keys().next().cloned().unwrap_or_default(),
        other => other.to_string(),
    }
}

/// A rollout: its head line, then one row per host.
pub fn rollout_text(v: &serde_json::Value) -> String {
    let mut out = String::new();
    let get = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or("-").to_owned();
    out.push_str(&format!(
        "rollout {}  commit {}  {}\n",
        get("id"),
        short(&get("commit")),
        get("summary")
    ));
    if let Some(hosts) = v.get("hosts").and_then(|h| h.as_object()) {
        out.push_str(&format!(
            "  {:<20} {:<12} {:<14} {:<8} TARGET\n",
            "HOST", "WAVE", "PHASE", "ONLINE"
        ));
        for (name, h) in hosts {
            let phase = status_word(h.get("phase").unwrap_or(&serde_json::Value::Null));
            out.push_str(&format!(
                "  {:<20} {:<12} {:<14} {:<8} {}\n",
                name,
                h.get("wave").and_then(|w| w.as_str()).unwrap_or("-"),
                phase,
                if h.get("online").and_then(|o| o.as_bool()) == Some(true) {
                    "yes"
                } else {
                    "no"
                },
                short(
                    h.get("target_revision")
                        .and_then(|t| t.as_str())
                        .unwrap_or("-")
                ),
            ));
        }
    }
    out.trim_end().to_owned()
}

/// `convoy rollouts`: one row per rollout, newest first.
pub fn print_rollouts(v: &serde_json::Value) {
    let Some(list) = v.as_array() else { return };
    println!(
        "{:<12} {:<14} {:<16} SUMMARY",
        "ROLLOUT", "COMMIT", "CREATED"
    );
    for r in list {
        println!(
            "{:<12} {:<14} {:<16} {}",
            r["id"].as_str().unwrap_or("?"),
            short(r["commit"].as_str().unwrap_or("?")),
            r["created_unix_ms"]
                .as_u64()
                .map(|ms| (ms / 1000).to_string())
                .unwrap_or_default(),
            r["summary"].as_str().unwrap_or("")
        );
    }
}

/// `convoy status`.
pub fn print_status(v: &serde_json::Value) {
    let git = v.get("git");
    let gs = |k: &str| {
        git.and_then(|g| g.get(k))
            .and_then(|x| x.as_str())
            .unwrap_or("-")
            .to_owned()
    };
    println!(
        "fleet            {}",
        v.get("fleet").and_then(|f| f.as_str()).unwrap_or("-")
    );
    println!("repo             {} ({})", gs("url"), gs("branch"));
    println!("head             {}", short(&gs("head")));
    if let Some(e) = git
        .and_then(|g| g.get("last_error"))
        .and_then(|e| e.as_str())
    {
        println!("last sync error  {e}");
    }
    println!(
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
    println!(
        "connected hosts  {}",
        if connected.is_empty() {
            "-".to_owned()
        } else {
            connected.join(", ")
        }
    );
    match v.get("current_rollout") {
        Some(r) if !r.is_null() => println!("{}", rollout_text(r)),
        _ => println!("no rollout yet"),
    }
}

/// `convoy events --alerts`: alerts with their delivery state per sink.
pub fn print_events(v: &serde_json::Value) {
    let Some(list) = v.as_array() else { return };
    if list.is_empty() {
        println!("no alerts");
        return;
    }
    for e in list {
        let a = &e["alert"];
        let states: Vec<String> = e["deliveries"]
            .as_array()
            .map(|d| {
                d.iter()
                    .map(|x| {
                        format!(
                            "{}:{}",
                            x["sink"].as_str().unwrap_or("?"),
                            status_word(&x["state"])
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        println!(
            "{}  {:<8} {:<22} {}  [{}]",
            a["id"].as_str().unwrap_or("?"),
            status_word(&a["severity"]),
            status_word(&a["kind"]),
            a["summary"].as_str().unwrap_or(""),
            states.join(" ")
        );
    }
}

/// `convoy events`: audit entries, then the flag for the next page.
pub fn print_audit(v: &serde_json::Value) {
    let Some(list) = v.as_array() else { return };
    if list.is_empty() {
        println!("no events");
        return;
    }
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
        println!(
            "{:>6} {h:02}:{m:02}:{s:02} {:<16} {:<16} {}  {}",
            e["seq"].as_u64().unwrap_or(0),
            e["kind"].as_str().unwrap_or("?"),
            e["who"].as_str().unwrap_or("?"),
            subject.join(" "),
            e["message"].as_str().unwrap_or("")
        );
    }
    if let Some(last) = list.last().and_then(|e| e["seq"].as_u64()) {
        println!("(older: --before {last})");
    }
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

    #[test]
    fn a_rollout_prints_its_head_line_and_one_row_per_host() {
        let v = serde_json::json!({
            "id": "r-1",
            "commit": "0123456789abcdef",
            "summary": "wave 1/2",
            "hosts": {
                "web-1": {"wave": "prod", "phase": {"Verifying": {}}, "online": true,
                          "target_revision": "fedcba9876543210"},
                "web-2": {"phase": "Pending"}
            }
        });
        let text = rollout_text(&v);
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
            rollout_text(&serde_json::json!({})),
            "rollout -  commit -  -"
        );
    }
}
