//! `[alerts]` section of the control plane's TOML config (not the fleet repo:
//! it holds secrets). Unknown keys are rejected.
//!
//! ```toml
//! [alerts]
//! public_url = "https://convoy.example.com"   # links: <public_url>/api/v1/...
//! give_up_after = "24h"
//! offline_after = "60s"
//! flap_window = "5m"
//!
//! [[alerts.sinks]]
//! name = "ops"
//! kind = "webhook"            # webhook | slack | discord | telegram
//! url = "https://hooks.example.com/convoy"
//! secret = "..."              # webhook: HMAC-SHA256 key (required)
//! events = ["host_offline", "rollout_failed"]   # default: all
//! min_severity = "warning"    # info | warning | critical (default info)
//! hosts = ["gpu-1", "gpu-2"]  # default: all
//! rate_limit_per_minute = 30
//!
//! [[alerts.sinks]]
//! name = "tg"
//! kind = "telegram"
//! bot_token = "123456:ABC..."
//! chat_id = -1001234567890    # or "@channel"
//! ```

use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};

use super::model::{EventKind, Severity};

/// The default Telegram Bot API base URL.
pub const TELEGRAM_API: &str = "https://api.telegram.org";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("alerts config: {0}")]
    Invalid(String),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertsConfig {
    /// Base URL of the control plane's HTTP API for links in alerts (no
    /// trailing slash needed). Empty: links are relative (`/api/v1/...`).
    #[serde(default)]
    pub public_url: String,
    #[serde(default)]
    pub sinks: Vec<SinkConfig>,
    /// A delivery still failing this long after the alert was raised is
    /// given up (recorded as `gave_up`). Default 24h.
    #[serde(default = "d_give_up", deserialize_with = "de_duration")]
    pub give_up_after: Duration,
    /// No heartbeat for this long: the host is offline. Default 60s.
    #[serde(default = "d_offline", deserialize_with = "de_duration")]
    pub offline_after: Duration,
    /// A condition that re-opens within this window after it resolved is
    /// the same alert (flapping); the "resolved" message is sent only once
    /// it stayed resolved this long. Default 5m.
    #[serde(default = "d_flap", deserialize_with = "de_duration")]
    pub flap_window: Duration,
    /// First retry delay (before jitter); doubles per attempt. Default 2s.
    #[serde(default = "d_retry_base", deserialize_with = "de_duration")]
    pub retry_base: Duration,
    /// Retry delay cap. Default 5m.
    #[serde(default = "d_retry_cap", deserialize_with = "de_duration")]
    pub retry_cap: Duration,
    /// Per-request timeout. Default 10s.
    #[serde(default = "d_timeout", deserialize_with = "de_duration")]
    pub request_timeout: Duration,
    /// Most alerts kept in the outbox; over it the oldest fully delivered
    /// ones are pruned first. Default 10000.
    #[serde(default = "d_capacity")]
    pub outbox_capacity: usize,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig {
            public_url: String::new(),
            sinks: Vec::new(),
            give_up_after: d_give_up(),
            offline_after: d_offline(),
            flap_window: d_flap(),
            retry_base: d_retry_base(),
            retry_cap: d_retry_cap(),
            request_timeout: d_timeout(),
            outbox_capacity: d_capacity(),
        }
    }
}

fn d_give_up() -> Duration {
    Duration::from_secs(24 * 3600)
}
fn d_offline() -> Duration {
    Duration::from_secs(60)
}
fn d_flap() -> Duration {
    Duration::from_secs(300)
}
fn d_retry_base() -> Duration {
    Duration::from_secs(2)
}
fn d_retry_cap() -> Duration {
    Duration::from_secs(300)
}
fn d_timeout() -> Duration {
    Duration::from_secs(10)
}
fn d_capacity() -> usize {
    10_000
}
fn d_rate() -> u32 {
    30
}
fn d_burst() -> u32 {
    5
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SinkKind {
    Webhook,
    Slack,
    Discord,
    Telegram,
}

/// A secret string; `Debug` prints `<redacted>`.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// A Telegram chat id: a number or `@channelname`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ChatId {
    Id(i64),
    Name(String),
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinkConfig {
    /// `[A-Za-z0-9_-]+`, unique.
    pub name: String,
    pub kind: SinkKind,
    /// webhook / slack / discord. Slack and Discord URLs are credentials:
    /// redacted in `Debug` like the secrets.
    #[serde(default)]
    pub url: Option<Secret>,
    /// webhook: the HMAC-SHA256 key.
    #[serde(default)]
    pub secret: Option<Secret>,
    /// telegram.
    #[serde(default)]
    pub bot_token: Option<Secret>,
    /// telegram.
    #[serde(default)]
    pub chat_id: Option<ChatId>,
    /// telegram: Bot API base URL (tests point it at a local server).
    #[serde(default)]
    pub api_base: Option<String>,
    /// Event kinds this sink wants; empty = all.
    #[serde(default)]
    pub events: Vec<EventKind>,
    #[serde(default)]
    pub min_severity: Severity,
    /// Host names this sink wants; empty = all. Alerts not about a host
    /// (rollouts, commits) always pass this filter.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// Token-bucket refill rate; alerts over it wait (never dropped).
    #[serde(default = "d_rate")]
    pub rate_limit_per_minute: u32,
    /// Token-bucket size (how many may go out back to back). Default 5.
    #[serde(default = "d_burst")]
    pub rate_limit_burst: u32,
}

impl fmt::Debug for SinkConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let url = match (&self.url, self.kind) {
            (None, _) => None,
            // Our own endpoint's URL is not a credential; chat URLs are.
            (Some(u), SinkKind::Webhook) => Some(u.expose().to_owned()),
            (Some(_), _) => Some("<redacted>".to_owned()),
        };
        f.debug_struct("SinkConfig")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("url", &url)
            .field("secret", &self.secret)
            .field("bot_token", &self.bot_token)
            .field("chat_id", &self.chat_id)
            .field("api_base", &self.api_base)
            .field("events", &self.events)
            .field("min_severity", &self.min_severity)
            .field("hosts", &self.hosts)
            .field("rate_limit_per_minute", &self.rate_limit_per_minute)
            .field("rate_limit_burst", &self.rate_limit_burst)
            .finish()
    }
}

impl SinkConfig {
    /// Whether this sink wants the alert (kind, severity, host). A resolve
    /// message of `host_offline` also goes to sinks that asked for
    /// `host_online`.
    pub fn wants(
        &self,
        kind: EventKind,
        severity: Severity,
        host: Option<&str>,
        resolved: bool,
    ) -> bool {
        let kind_ok = self.events.is_empty()
            || self.events.contains(&kind)
            || (resolved
                && kind == EventKind::HostOffline
                && self.events.contains(&EventKind::HostOnline));
        let host_ok = match host {
            Some(h) => self.hosts.is_empty() || self.hosts.iter().any(|x| x == h),
            None => true,
        };
        kind_ok && severity >= self.min_severity && host_ok
    }
}

impl AlertsConfig {
    /// Parses the `[alerts]` table's contents (for tests / standalone use).
    pub fn from_toml(s: &str) -> Result<Self, ConfigError> {
        let c: AlertsConfig = toml::from_str(s).map_err(|e| ConfigError::Invalid(e.to_string()))?;
        c.validate()?;
        Ok(c)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        let mut names = BTreeSet::new();
        for s in &self.sinks {
            if s.name.is_empty()
                || !s
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return bad(format!("sink name {:?} must match [A-Za-z0-9_-]+", s.name));
            }
            if !names.insert(s.name.as_str()) {
                return bad(format!("duplicate sink name {:?}", s.name));
            }
            if s.rate_limit_per_minute == 0 || s.rate_limit_burst == 0 {
                return bad(format!(
                    "sink {}: rate_limit_per_minute and rate_limit_burst must be > 0",
                    s.name
                ));
            }
            match s.kind {
                SinkKind::Webhook | SinkKind::Slack | SinkKind::Discord => {
                    let Some(url) = &s.url else {
                        return bad(format!("sink {}: url is required", s.name));
                    };
                    if !is_http_url(url.expose()) {
                        return bad(format!("sink {}: url must be http(s)://", s.name));
                    }
                    if s.bot_token.is_some() || s.chat_id.is_some() {
                        return bad(format!(
                            "sink {}: bot_token/chat_id are for telegram",
                            s.name
                        ));
                    }
                }
                SinkKind::Telegram => {
                    if s.bot_token.as_ref().is_none_or(|t| t.expose().is_empty())
                        || s.chat_id.is_none()
                    {
                        return bad(format!(
                            "sink {}: telegram needs bot_token and chat_id",
                            s.name
                        ));
                    }
                    if s.url.is_some() {
                        return bad(format!("sink {}: telegram takes api_base, not url", s.name));
                    }
                    if let Some(b) = &s.api_base
                        && !is_http_url(b)
                    {
                        return bad(format!("sink {}: api_base must be http(s)://", s.name));
                    }
                }
            }
            if s.kind == SinkKind::Webhook {
                if s.secret.as_ref().is_none_or(|x| x.expose().is_empty()) {
                    return bad(format!(
                        "sink {}: webhook needs a secret (HMAC key)",
                        s.name
                    ));
                }
            } else if s.secret.is_some() {
                return bad(format!(
                    "sink {}: secret is only for kind = \"webhook\"",
                    s.name
                ));
            }
        }
        if self.retry_base.is_zero() || self.retry_cap < self.retry_base {
            return bad("retry_base must be > 0 and <= retry_cap".into());
        }
        if self.outbox_capacity == 0 {
            return bad("outbox_capacity must be > 0".into());
        }
        Ok(())
    }

    pub fn sink(&self, name: &str) -> Option<&SinkConfig> {
        self.sinks.iter().find(|s| s.name == name)
    }
}

fn is_http_url(u: &str) -> bool {
    u.starts_with("https://") || u.starts_with("http://")
}

/// Parses `"24h"`, `"90s"`, `"1h30m"`, `"250ms"`, `"2d"`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("empty duration".into());
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(format!("bad duration {s:?}: expected a number"));
        }
        let n: u64 = rest[..digits]
            .parse()
            .map_err(|_| format!("bad duration {s:?}"))?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let d = match unit {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n.saturating_mul(60)),
            "h" => Duration::from_secs(n.saturating_mul(3600)),
            "d" => Duration::from_secs(n.saturating_mul(86_400)),
            _ => return Err(format!("bad duration {s:?}: unit must be ms, s, m, h or d")),
        };
        total = total.saturating_add(d);
    }
    Ok(total)
}

fn de_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    parse_duration(&s).map_err(serde::de::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("24h"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("10").is_err());
        assert!(parse_duration("h").is_err());
        assert!(parse_duration("5 min").is_err());
    }

    #[test]
    fn defaults_unknown_keys_and_redaction() {
        let c = AlertsConfig::from_toml(
            r#"
            [[sinks]]
            name = "ops"
            kind = "webhook"
            url = "https://example.com/hook"
            secret = "s3cret-value"
            [[sinks]]
            name = "chat"
            kind = "slack"
            url = "https://hooks.slack.com/services/T000/B000/XXXXSECRET"
            [[sinks]]
            name = "tg"
            kind = "telegram"
            bot_token = "123:TOKENVALUE"
            chat_id = -100123
            "#,
        );
        let c = match c {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(c.give_up_after, Duration::from_secs(86_400));
        assert_eq!(c.offline_after, Duration::from_secs(60));
        assert_eq!(c.sinks[0].rate_limit_per_minute, 30);
        assert_eq!(c.sinks[2].chat_id, Some(ChatId::Id(-100_123)));
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("s3cret-value"), "{dbg}");
        assert!(!dbg.contains("XXXXSECRET"), "{dbg}");
        assert!(!dbg.contains("TOKENVALUE"), "{dbg}");

        let err = AlertsConfig::from_toml(
            "[[sinks]]\nname='a'\nkind='slack'\nurl='https://x'\nbogus=1\n",
        );
        assert!(err.is_err());
        let err = AlertsConfig::from_toml("nonsense = 1\n");
        assert!(err.is_err());
        let err = AlertsConfig::from_toml("[[sinks]]\nname='a'\nkind='webhook'\nurl='https://x'\n");
        assert!(err.is_err(), "webhook without secret");
        let err = AlertsConfig::from_toml("[[sinks]]\nname='a'\nkind='telegram'\nbot_token='x'\n");
        assert!(err.is_err(), "telegram without chat id");
    }
}
