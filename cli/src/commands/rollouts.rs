//! `convoy status`, `rollout [ID]` (`--watch`: [`super::watch`]),
//! `rollouts`, `promote`, `abort`, `rollback`, `sync`.

use reqwest::Method;

use crate::client::ApiClient;
use crate::output::Ui;
use crate::tables;

/// `GET /api/v1/status`.
pub async fn status(client: &ApiClient, ui: &Ui) -> anyhow::Result<()> {
    let v = client.request(Method::GET, "/api/v1/status", None).await?;
    ui.emit(&v, tables::status_text)
}

/// One rollout: `id`, or the current one.
pub async fn show(client: &ApiClient, ui: &Ui, id: Option<&str>) -> anyhow::Result<()> {
    let path = match id {
        Some(id) => format!("/api/v1/rollouts/{id}"),
        None => "/api/v1/rollouts/current".to_owned(),
    };
    let v = client.request(Method::GET, &path, None).await?;
    ui.emit(&v, tables::rollout_text)
}

/// `GET /api/v1/rollouts`.
pub async fn list(client: &ApiClient, ui: &Ui) -> anyhow::Result<()> {
    let v = client
        .request(Method::GET, "/api/v1/rollouts", None)
        .await?;
    ui.emit(&v, tables::rollouts_table)
}

/// `POST /api/v1/rollouts/promote`.
pub async fn promote(client: &ApiClient, ui: &Ui) -> anyhow::Result<()> {
    let v = client
        .request(Method::POST, "/api/v1/rollouts/promote", None)
        .await?;
    ui.emit(&v, tables::rollout_text)
}

/// `abort` or `rollback` (`path`), with an optional reason.
pub async fn stop(
    client: &ApiClient,
    ui: &Ui,
    path: &str,
    reason: Option<&str>,
) -> anyhow::Result<()> {
    let body = reason.map_or_else(
        || serde_json::json!({}),
        |r| serde_json::json!({"reason": r}),
    );
    let v = client.request(Method::POST, path, Some(body)).await?;
    ui.emit(&v, tables::rollout_text)
}

/// `POST /api/v1/sync`.
pub async fn sync(client: &ApiClient, ui: &Ui) -> anyhow::Result<()> {
    let v = client.request(Method::POST, "/api/v1/sync", None).await?;
    ui.emit(&v, |_, _| "sync queued".to_owned())
}
