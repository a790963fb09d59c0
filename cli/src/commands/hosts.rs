//! `convoy tokens create`, `hosts`, `host NAME`, `revoke HOST`.

use std::collections::BTreeMap;

use anyhow::Context;
use reqwest::Method;

use convoy_shared::api::HostView;

use crate::client::ApiClient;
use crate::output::Ui;
use crate::{hostview, tables};

/// `POST /api/v1/tokens`; prints the one-time join token.
pub async fn create_token(
    client: &ApiClient,
    ui: &Ui,
    host: &str,
    labels: &[String],
    ttl: &str,
) -> anyhow::Result<()> {
    let mut map = BTreeMap::new();
    for l in labels.iter().filter(|l| !l.is_empty()) {
        let (k, v) = l
            .split_once('=')
            .with_context(|| format!("label {l:?}: expected k=v"))?;
        map.insert(k.trim().to_owned(), v.trim().to_owned());
    }
    let body = serde_json::json!({"host": host, "labels": map, "ttl": ttl});
    let v = client
        .request(Method::POST, "/api/v1/tokens", Some(body))
        .await?;
    anyhow::ensure!(
        v.get("token").and_then(|t| t.as_str()).is_some(),
        "answer has no token"
    );
    ui.emit(&v, |v, _| {
        v.get("token")
            .and_then(|t| t.as_str())
            .unwrap_or_default()
            .to_owned()
    })
}

/// `GET /api/v1/hosts`.
pub async fn list(client: &ApiClient, ui: &Ui) -> anyhow::Result<()> {
    let v = client.request(Method::GET, "/api/v1/hosts", None).await?;
    let hosts: Vec<HostView> =
        serde_json::from_value(v.clone()).context("decoding the host list")?;
    ui.emit(&v, |_, p| tables::hosts_table(&hosts, p))
}

/// `GET /api/v1/hosts/{name}/telemetry`.
pub async fn show(client: &ApiClient, ui: &Ui, name: &str) -> anyhow::Result<()> {
    let v = client
        .request(
            Method::GET,
            &format!("/api/v1/hosts/{name}/telemetry"),
            None,
        )
        .await?;
    ui.emit(&v, |v, _| hostview::host_text(v))
}

/// `POST /api/v1/hosts/{host}/revoke`.
pub async fn revoke(client: &ApiClient, ui: &Ui, host: &str) -> anyhow::Result<()> {
    let v = client
        .request(Method::POST, &format!("/api/v1/hosts/{host}/revoke"), None)
        .await?;
    ui.emit(&v, |v, _| {
        let closed = v.get("stream_closed").and_then(|c| c.as_bool()) == Some(true);
        format!(
            "revoked {host}{}",
            if closed { " (live stream closed)" } else { "" }
        )
    })
}
