//! What goes on the wire for each sink kind.
//!
//! ## `webhook` (our JSON, schema version 1)
//!
//! `POST <url>`, `Content-Type: application/json`, headers
//! - `X-Convoy-Signature-256: sha256=<hex HMAC-SHA256(secret, raw body)>`
//! - `X-Convoy-Idempotency-Key: <alert id>:<sink name>` (constant across
//!   retries and restarts: deduplicate on it)
//! - `X-Convoy-Timestamp: <unix seconds of this attempt>` (also `sent_at`
//!   in the body, so it is covered by the signature)
//!
//! ```json
//! {
//!   "version": 1,
//!   "id": "3f9a0c4b1d2e5f607182",        // alert id; resolve: "<id>.resolved"
//!   "condition": "host_offline/gpu-1",
//!   "kind": "host_offline",               // see EventKind
//!   "severity": "critical",               // info | warning | critical
//!   "resolved": false,
//!   "fleet": "prod",
//!   "host": "gpu-1", "stack": null, "rollout": null, "commit": null,
//!   "summary": "Host gpu-1 is offline (no heartbeat)",
//!   "details": {"last_seen": "2024-05-01T12:00:00.000Z"},
//!   "link": "https://convoy.example.com/api/v1/hosts/gpu-1",
//!   "created_at": "2024-05-01T12:01:00.000Z",
//!   "sent_at": 1714564860
//! }
//! ```
//!
//! A receiver verifies the signature over the exact bytes it received
//! (before parsing), compares in constant time, rejects stale `sent_at`
//! if it wants replay protection, and deduplicates on the idempotency key.

use serde_json::{Value, json};

use super::config::{SinkConfig, SinkKind, TELEGRAM_API};
use super::model::{Alert, Severity, rfc3339};
use crate::webhook::hmac_sha256_hex;

/// A rendered HTTP request (URL may hold a credential: never log it).
#[derive(Clone)]
pub struct Rendered {
    pub url: String,
    pub body: Vec<u8>,
    pub headers: Vec<(&'static str, String)>,
}

/// Schema version of the `webhook` JSON.
pub const WEBHOOK_SCHEMA_VERSION: u32 = 1;

pub fn webhook_json(alert: &Alert, sent_at: u64) -> Value {
    json!({
        "version": WEBHOOK_SCHEMA_VERSION,
        "id": alert.id,
        "condition": alert.condition,
        "kind": alert.kind,
        "severity": alert.severity,
        "resolved": alert.resolved,
        "fleet": alert.fleet,
        "host": alert.host,
        "stack": alert.stack,
        "rollout": alert.rollout,
        "commit": alert.commit,
        "summary": alert.summary,
        "details": alert.details,
        "link": alert.link,
        "created_at": rfc3339(alert.created_at_ms),
        "sent_at": sent_at,
    })
}

fn title(alert: &Alert) -> String {
    if alert.resolved {
        format!("[RESOLVED] {}", alert.kind)
    } else {
        format!(
            "[{}] {}",
            alert.severity.as_str().to_uppercase(),
            alert.kind
        )
    }
}

fn context_fields(alert: &Alert) -> Vec<(String, String)> {
    let mut f = vec![("Fleet".to_owned(), alert.fleet.clone())];
    for (name, v) in [
        ("Host", &alert.host),
        ("Stack", &alert.stack),
        ("Rollout", &alert.rollout),
        ("Commit", &alert.commit),
    ] {
        if let Some(v) = v {
            f.push((name.to_owned(), v.clone()));
        }
    }
    f
}

/// Truncates to at most `max` chars (not bytes), marking the cut with `…`.
pub fn truncate_chars(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// Slack mrkdwn: only `&`, `<`, `>` need escaping.
pub fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Telegram HTML parse mode: `&`, `<`, `>` (and `"` for attributes).
pub fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Slack incoming webhook: `{"text", "blocks"}` (Block Kit: header
/// plain_text ≤ 150 chars, section mrkdwn ≤ 3000, ≤ 10 fields ≤ 2000 each).
pub fn slack_json(alert: &Alert) -> Value {
    let summary = slack_escape(&alert.summary);
    let fields: Vec<Value> = context_fields(alert)
        .into_iter()
        .take(10)
        .map(|(k, v)| {
            json!({"type": "mrkdwn", "text": truncate_chars(&format!("*{k}*\n{}", slack_escape(&v)), 2000)})
        })
        .collect();
    let mut section = json!({
        "type": "section",
        "text": {"type": "mrkdwn", "text": truncate_chars(&summary, 3000)},
    });
    if !fields.is_empty() {
        section["fields"] = Value::Array(fields);
    }
    json!({
        "text": truncate_chars(&format!("{}: {}", title(alert), summary), 3000),
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": truncate_chars(&title(alert), 150), "emoji": true}},
            section,
            {"type": "context", "elements": [
                {"type": "mrkdwn", "text": truncate_chars(&format!("<{}|Open in Convoy> · alert {}", alert.link, alert.id), 3000)}
            ]}
        ]
    })
}

/// Embed colour: red / orange / blue, green when resolved.
pub fn discord_color(alert: &Alert) -> u32 {
    if alert.resolved {
        0x2E_CC_71
    } else {
        match alert.severity {
            Severity::Critical => 0xE7_4C_3C,
            Severity::Warning => 0xE6_7E_22,
            Severity::Info => 0x34_98_DB,
        }
    }
}

/// Discord execute-webhook: `content` ≤ 2000 chars, one embed (title ≤ 256,
/// description ≤ 4096, ≤ 25 fields with name ≤ 256 and value ≤ 1024, ISO 8601
/// timestamp); mentions disabled so alert text cannot ping `@everyone`.
pub fn discord_json(alert: &Alert) -> Value {
    let fields: Vec<Value> = context_fields(alert)
        .into_iter()
        .chain(alert.details.iter().map(|(k, v)| (k.clone(), v.clone())))
        .take(25)
        .map(|(name, value)| {
            json!({"name": truncate_chars(&name, 256), "value": truncate_chars(&value, 1024), "inline": true})
        })
        .collect();
    json!({
        "content": truncate_chars(&format!("{}: {}", title(alert), alert.summary), 2000),
        "allowed_mentions": {"parse": []},
        "embeds": [{
            "title": truncate_chars(&title(alert), 256),
            "description": truncate_chars(&alert.summary, 4096),
            "url": alert.link,
            "color": discord_color(alert),
            "fields": fields,
            "timestamp": rfc3339(alert.created_at_ms),
        }]
    })
}

/// Telegram `sendMessage` text in HTML parse mode, ≤ 4096 chars.
pub fn telegram_text(alert: &Alert) -> String {
    let mut head = format!("<b>{}</b>\n", html_escape(&title(alert)));
    for (k, v) in context_fields(alert) {
        head.push_str(&format!("{k}: <code>{}</code>\n", html_escape(&v)));
    }
    let link = format!(
        "<a href=\"{}\">Open in Convoy</a>",
        html_escape(&alert.link)
    );
    // Truncate the summary only (never inside a tag or an entity).
    let budget = 4096usize
        .saturating_sub(head.chars().count())
        .saturating_sub(link.chars().count())
        .saturating_sub(2);
    let summary = truncate_chars(&alert.summary, budget);
    let mut escaped = html_escape(&summary);
    while escaped.chars().count() > budget {
        // Escaping lengthened it: cut more (rare; only with many & < >).
        let n = summary
            .chars()
            .count()
            .saturating_sub(escaped.chars().count() - budget);
        escaped = html_escape(&truncate_chars(&summary, n));
    }
    truncate_chars(&format!("{head}{escaped}\n{link}"), 4096)
}

pub fn telegram_json(alert: &Alert, sink: &SinkConfig) -> Value {
    json!({
        "chat_id": sink.chat_id,
        "text": telegram_text(alert),
        "parse_mode": "HTML",
        "disable_web_page_preview": true,
    })
}

/// Renders the request for one delivery. `None` if the sink config lacks
/// what its kind needs (validation prevents that).
pub fn render(alert: &Alert, sink: &SinkConfig, sent_at: u64) -> Option<Rendered> {
    let json_ct = ("content-type", "application/json".to_owned());
    match sink.kind {
        SinkKind::Webhook => {
            let body = serde_json::to_vec(&webhook_json(alert, sent_at)).ok()?;
            let secret = sink.secret.as_ref()?;
            let sig = hmac_sha256_hex(secret.expose().as_bytes(), &body);
            Some(Rendered {
                url: sink.url.as_ref()?.expose().to_owned(),
                headers: vec![
                    json_ct,
                    ("x-convoy-signature-256", format!("sha256={sig}")),
                    (
                        "x-convoy-idempotency-key",
                        format!("{}:{}", alert.id, sink.name),
                    ),
                    ("x-convoy-timestamp", sent_at.to_string()),
                ],
                body,
            })
        }
        SinkKind::Slack => Some(Rendered {
            url: sink.url.as_ref()?.expose().to_owned(),
            body: serde_json::to_vec(&slack_json(alert)).ok()?,
            headers: vec![json_ct],
        }),
        SinkKind::Discord => Some(Rendered {
            url: sink.url.as_ref()?.expose().to_owned(),
            body: serde_json::to_vec(&discord_json(alert)).ok()?,
            headers: vec![json_ct],
        }),
        SinkKind::Telegram => {
            let base = sink.api_base.as_deref().unwrap_or(TELEGRAM_API);
            let base = base.trim_end_matches('/');
            let token = sink.bot_token.as_ref()?.expose();
            Some(Rendered {
                url: format!("{base}/bot{token}/sendMessage"),
                body: serde_json::to_vec(&telegram_json(alert, sink)).ok()?,
                headers: vec![json_ct],
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_counts_chars() {
        assert_eq!(truncate_chars("héllo", 5), "héllo");
        assert_eq!(truncate_chars("héllo", 4), "hél…");
        assert_eq!(
            truncate_chars(&"é".repeat(5000), 2000).chars().count(),
            2000
        );
    }

    #[test]
    fn html_escapes() {
        assert_eq!(html_escape("<a & \"b\">"), "&lt;a &amp; &quot;b&quot;&gt;");
    }
}
