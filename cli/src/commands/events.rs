//! `convoy events [--alerts]` and `alerts test SINK`.

use reqwest::Method;

use crate::client::ApiClient;
use crate::output::Ui;
use crate::tables;

/// The filters of `convoy events`.
#[derive(Debug, Clone, Copy)]
pub struct Filter<'a> {
    pub host: Option<&'a str>,
    pub stack: Option<&'a str>,
    pub rollout: Option<&'a str>,
    pub kind: Option<&'a str>,
    /// Entries older than this sequence number (the next page).
    pub before: Option<u64>,
    pub limit: usize,
}

impl Filter<'_> {
    /// `GET /api/v1/events?...` for these filters.
    pub fn path(&self) -> String {
        let mut q = vec![format!("limit={}", self.limit)];
        for (k, v) in [
            ("host", self.host),
            ("stack", self.stack),
            ("rollout", self.rollout),
            ("kind", self.kind),
        ] {
            if let Some(v) = v {
                q.push(format!("{k}={v}"));
            }
        }
        if let Some(b) = self.before {
            q.push(format!("before={b}"));
        }
        format!("/api/v1/events?{}", q.join("&"))
    }
}

/// The audit log, newest first.
pub async fn audit(client: &ApiClient, ui: &Ui, filter: &Filter<'_>) -> anyhow::Result<()> {
    let v = client.request(Method::GET, &filter.path(), None).await?;
    ui.emit(&v, tables::audit_text)
}

/// `GET /api/v1/alerts`: alerts with their delivery state per sink.
pub async fn alerts(client: &ApiClient, ui: &Ui) -> anyhow::Result<()> {
    let v = client.request(Method::GET, "/api/v1/alerts", None).await?;
    ui.emit(&v, tables::alerts_text)
}

/// `POST /api/v1/alerts/test`: a test alert to one sink.
pub async fn test_alert(client: &ApiClient, ui: &Ui, sink: &str) -> anyhow::Result<()> {
    let v = client
        .request(
            Method::POST,
            "/api/v1/alerts/test",
            Some(serde_json::json!({"sink": sink})),
        )
        .await?;
    ui.emit(&v, |v, _| {
        format!(
            "test alert {} queued for {sink}",
            v.get("id").and_then(|i| i.as_str()).unwrap_or("?")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_events_path_carries_every_filter_given() {
        let f = Filter {
            host: Some("web-1"),
            stack: None,
            rollout: Some("r-7"),
            kind: None,
            before: Some(42),
            limit: 50,
        };
        assert_eq!(
            f.path(),
            "/api/v1/events?limit=50&host=web-1&rollout=r-7&before=42"
        );
        let none = Filter {
            host: None,
            stack: None,
            rollout: None,
            kind: None,
            before: None,
            limit: 10,
        };
        assert_eq!(none.path(), "/api/v1/events?limit=10");
    }
}
