//! `convoy status`, `rollout [ID] [--watch]`, `rollouts`, `promote`,
//! `abort`, `rollback`, `sync`.

use reqwest::Method;

use crate::client::ApiClient;
use crate::tables::{self, rollout_text, status_word};

/// `GET /api/v1/status`.
pub async fn status(client: &ApiClient, json: bool) -> anyhow::Result<()> {
    let v = client.request(Method::GET, "/api/v1/status", None).await?;
    if json {
        println!("{v}");
    } else {
        tables::print_status(&v);
    }
    Ok(())
}

/// One rollout (`id`, or the current one); with `watch`, polls every second
/// and prints each change until the rollout is no longer running.
pub async fn show(
    client: &ApiClient,
    json: bool,
    id: Option<&str>,
    watch: bool,
) -> anyhow::Result<()> {
    let path = match id {
        Some(id) => format!("/api/v1/rollouts/{id}"),
        None => "/api/v1/rollouts/current".to_owned(),
    };
    let mut last = String::new();
    loop {
        let v = client.request(Method::GET, &path, None).await?;
        let shown = if json {
            v.to_string()
        } else {
            rollout_text(&v)
        };
        if shown != last {
            if watch && !json {
                println!("--- {}", tables::chrono_now());
            }
            println!("{shown}");
            last = shown;
        }
        let done = v
            .get("status")
            .map(|s| {
                !matches!(
                    status_word(s).as_str(),
                    "Running" | "WaitingApproval" | "RollingBack"
                )
            })
            .unwrap_or(true);
        if !watch || done {
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
}

/// `GET /api/v1/rollouts`.
pub async fn list(client: &ApiClient, json: bool) -> anyhow::Result<()> {
    let v = client
        .request(Method::GET, "/api/v1/rollouts", None)
        .await?;
    if json {
        println!("{v}");
    } else {
        tables::print_rollouts(&v);
    }
    Ok(())
}

/// `POST /api/v1/rollouts/promote`.
pub async fn promote(client: &ApiClient, json: bool) -> anyhow::Result<()> {
    let v = client
        .request(Method::POST, "/api/v1/rollouts/promote", None)
        .await?;
    print_rollout(&v, json);
    Ok(())
}

/// `abort` or `rollback` (`path`), with an optional reason.
pub async fn stop(
    client: &ApiClient,
    json: bool,
    path: &str,
    reason: Option<&str>,
) -> anyhow::Result<()> {
    let body = reason.map_or_else(
        || serde_json::json!({}),
        |r| serde_json::json!({"reason": r}),
    );
    let v = client.request(Method::POST, path, Some(body)).await?;
    print_rollout(&v, json);
    Ok(())
}

/// `POST /api/v1/sync`.
pub async fn sync(client: &ApiClient) -> anyhow::Result<()> {
    client.request(Method::POST, "/api/v1/sync", None).await?;
    println!("sync queued");
    Ok(())
}

fn print_rollout(v: &serde_json::Value, json: bool) {
    if json {
        println!("{v}");
    } else {
        println!("{}", rollout_text(v));
    }
}
