//! One delivery attempt over HTTP and what to do next; backoff; rate limit.

use std::time::{Duration, SystemTime};

use super::payload::{Rendered, truncate_chars};

/// Longest `Retry-After` we honour (a broken server must not park alerts
/// for days; the give-up deadline still applies).
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);
/// How much of an error response body is kept / logged.
pub const ERROR_BODY_CHARS: usize = 512;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Delivered,
    /// Try again, after `after` if the server said so (429 Retry-After).
    Retry {
        after: Option<Duration>,
        error: String,
    },
    /// Never try again (4xx other than 408/429).
    Permanent {
        error: String,
    },
}

/// Sends one request with a timeout and classifies the result (`now`: for
/// a `Retry-After` date). Errors never contain the URL (Telegram's holds
/// the bot token).
pub async fn attempt(
    client: &reqwest::Client,
    req: Rendered,
    timeout: Duration,
    now: SystemTime,
) -> Outcome {
    let mut rb = client.post(&req.url).timeout(timeout).body(req.body);
    for (k, v) in req.headers {
        rb = rb.header(k, v);
    }
    let resp = match rb.send().await {
        Ok(r) => r,
        Err(e) => {
            let kind = if e.is_timeout() {
                "timeout"
            } else if e.is_connect() {
                "connect"
            } else {
                "request"
            };
            return Outcome::Retry {
                after: None,
                error: format!("{kind} error: {}", error_chain(&e.without_url())),
            };
        }
    };
    let status = resp.status();
    if status.is_success() {
        return Outcome::Delivered;
    }
    let retry_after = resp
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_retry_after(v, now));
    // Bounded read of the body for the error message.
    let body = read_body_prefix(resp, 4096).await;
    let body_s = truncate_chars(&String::from_utf8_lossy(&body), ERROR_BODY_CHARS);
    let error = format!("HTTP {}: {}", status.as_u16(), body_s);
    let code = status.as_u16();
    if code == 429 {
        // Telegram also says it in the body: {"parameters":{"retry_after":N}}.
        let after = retry_after.or_else(|| telegram_retry_after(&body));
        Outcome::Retry {
            after: after.map(|d| d.min(MAX_RETRY_AFTER)),
            error,
        }
    } else if code == 408 || !(400..500).contains(&code) {
        Outcome::Retry { after: None, error }
    } else {
        Outcome::Permanent { error }
    }
}

async fn read_body_prefix(mut resp: reqwest::Response, max: usize) -> Vec<u8> {
    let mut out = Vec::new();
    while out.len() < max {
        match resp.chunk().await {
            Ok(Some(c)) => out.extend_from_slice(&c[..c.len().min(max - out.len())]),
            _ => break,
        }
    }
    out
}

use convoy_kit::error_chain;

/// `Retry-After: <seconds>` or `Retry-After: <HTTP-date>` (RFC 9110 §10.2.3).
pub fn parse_retry_after(v: &str, now: SystemTime) -> Option<Duration> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(v).ok()?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

fn telegram_retry_after(body: &[u8]) -> Option<Duration> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    v.get("parameters")?
        .get("retry_after")?
        .as_u64()
        .map(Duration::from_secs)
}

/// Exponential backoff with full jitter: uniform in
/// `[0, min(cap, base * 2^(attempts-1))]`, at least 1 ms.
pub fn backoff(attempts: u32, base: Duration, cap: Duration) -> Duration {
    convoy_kit::backoff::full_jitter(attempts.saturating_sub(1), base, cap, &mut rand::rng())
        .max(Duration::from_millis(1))
}

/// A token bucket (in memory: a restart refills it, which is fine).
#[derive(Debug, Clone)]
pub struct TokenBucket {
    capacity: f64,
    tokens: f64,
    per_ms: f64,
    last_ms: u64,
}

impl TokenBucket {
    pub fn new(per_minute: u32, burst: u32, now_ms: u64) -> Self {
        let capacity = f64::from(burst.max(1));
        TokenBucket {
            capacity,
            tokens: capacity,
            per_ms: f64::from(per_minute.max(1)) / 60_000.0,
            last_ms: now_ms,
        }
    }

    fn refill(&mut self, now_ms: u64) {
        let dt = now_ms.saturating_sub(self.last_ms) as f64;
        self.tokens = (self.tokens + dt * self.per_ms).min(self.capacity);
        self.last_ms = self.last_ms.max(now_ms);
    }

    /// Takes a token, or says when the next one will be there.
    pub fn try_take(&mut self, now_ms: u64) -> Result<(), u64> {
        self.refill(now_ms);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            let wait = ((1.0 - self.tokens) / self.per_ms).ceil() as u64;
            Err(now_ms + wait.max(1))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_forms() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_480);
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        // Wed, 21 Oct 2015 07:28:00 GMT = 1445412480
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:30:00 GMT", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn backoff_is_bounded() {
        let base = Duration::from_millis(100);
        let cap = Duration::from_secs(2);
        for a in 1..40 {
            let d = backoff(a, base, cap);
            assert!(d <= cap && d >= Duration::from_millis(1));
            if a == 1 {
                assert!(d <= base);
            }
        }
    }

    #[test]
    fn token_bucket() {
        let mut b = TokenBucket::new(60, 2, 0);
        assert!(b.try_take(0).is_ok());
        assert!(b.try_take(0).is_ok());
        assert_eq!(b.try_take(0), Err(1000));
        assert!(b.try_take(999).is_err());
        assert!(b.try_take(1000).is_ok());
    }
}
