//! GitOps through the API, in process over real TLS with a real git repo:
//! webhooks verified in constant time (bad or missing signatures change
//! nothing), a broken commit rejected as a whole with every problem while
//! the fleet stays on the last good commit, sync/abort/rollback steering and
//! the audit log with who did what.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use convoy_cli::client::ApiClient;
use convoy_control_plane::config::RunConfig;
use convoy_control_plane::datadir::{self, DataDir};
use convoy_control_plane::server;
use convoy_control_plane::sync::GitConfig;
use convoy_control_plane::webhook::hmac_sha256_hex;

const SECRET: &str = "It's a Secret to Everybody";

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.org")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.org")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn commit_all(repo: &Path, msg: &str) -> String {
    git(repo, &["add", "-A"]);
    git(repo, &["commit", "-q", "-m", msg]);
    git(repo, &["rev-parse", "HEAD"])
}

/// POST the webhook with raw headers (curl: the CLI has no verb for it).
fn webhook(api_port: u16, ca: &Path, body: &str, headers: &[(&str, String)]) -> u16 {
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
        .arg(ca)
        .args(["-X", "POST", "--data-binary", body]);
    for (k, v) in headers {
        cmd.arg("-H").arg(format!("{k}: {v}"));
    }
    cmd.arg(format!("https://127.0.0.1:{api_port}/api/v1/webhooks/git"));
    let out = cmd
        .output()
        .expect("curl is not installed: ./test.sh installs it (.ci/install-deps)");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}

async fn wait_for<F, Fut>(what: &str, secs: u64, mut f: F) -> serde_json::Value
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<serde_json::Value>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            start.elapsed() < Duration::from_secs(secs),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_rejections_steering_and_audit() {
    let tmp = tempfile::tempdir().unwrap();
    // A valid fleet repo (the quickstart's one host, no agent connected).
    let repo = tmp.path().join("repo");
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/quickstart");
    Command::new("cp")
        .arg("-r")
        .arg(&example)
        .arg(&repo)
        .status()
        .unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    let c1 = commit_all(&repo, "first");

    let dir = DataDir::new(tmp.path().join("cp"));
    let out = datadir::init(
        &dir,
        "quickstart",
        &["127.0.0.1".to_owned()],
        None,
        SystemTime::now(),
    )
    .unwrap();
    let git_cfg: GitConfig = toml::from_str(&format!(
        "url = \"{}\"\npoll_interval = \"1h\"\nwebhook_secret = \"{SECRET}\"\n",
        repo.display()
    ))
    .unwrap();
    let cfg = RunConfig {
        agent_listen: "127.0.0.1:0".parse().unwrap(),
        api_listen: "127.0.0.1:0".parse().unwrap(),
        git: Some(git_cfg),
        ..RunConfig::default()
    };
    let srv = server::start(&dir, &cfg).await.unwrap();
    let port = srv.api_addr.port();
    let ca_path = dir.ca_cert();
    let ca = std::fs::read_to_string(&ca_path).unwrap();
    let api = ApiClient::new(
        &format!("https://127.0.0.1:{port}"),
        Some(out.admin_token.clone()),
        &ca,
        "ca",
    )
    .unwrap();
    let get = |path: &'static str| {
        let api = &api;
        async move { api.request(hyper::Method::GET, path, None).await.unwrap() }
    };

    // Liveness and readiness need no token.
    let health = Command::new("curl")
        .args(["-s", "--cacert"])
        .arg(&ca_path)
        .arg(format!("https://127.0.0.1:{port}/readyz"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&health.stdout).trim(), "ready");

    // The first poll happens at start: c1 is accepted and rolled out.
    let status = wait_for("the first commit", 30, || async {
        let s = get("/api/v1/status").await;
        (s["last_good_commit"] == c1.as_str()).then_some(s)
    })
    .await;
    assert_eq!(status["current_rollout"]["commit"], c1.as_str());
    assert_eq!(status["current_rollout"]["hosts"]["local"]["online"], false);

    // A broken commit: two problems in two files.
    let fleet = std::fs::read_to_string(repo.join("fleet.toml")).unwrap();
    std::fs::write(
        repo.join("fleet.toml"),
        fleet.replace("deadline = \"60s\"", "deadline = \"soon\""),
    )
    .unwrap();
    let compose = std::fs::read_to_string(repo.join("stacks/hello/compose.yaml")).unwrap();
    std::fs::write(
        repo.join("stacks/hello/compose.yaml"),
        compose.replace("restart: unless-stopped", "restart: sometimes"),
    )
    .unwrap();
    let c2 = commit_all(&repo, "broken");
    let body = r#"{"ref":"refs/heads/main"}"#;

    // Bad, replayed and missing signatures: 401, nothing fetched.
    let wrong = hmac_sha256_hex(b"another secret", body.as_bytes());
    assert_eq!(
        webhook(
            port,
            &ca_path,
            body,
            &[("X-Hub-Signature-256", format!("sha256={wrong}"))]
        ),
        401
    );
    let for_other_body = hmac_sha256_hex(SECRET.as_bytes(), b"{}");
    assert_eq!(
        webhook(
            port,
            &ca_path,
            body,
            &[("X-Hub-Signature-256", format!("sha256={for_other_body}"))]
        ),
        401
    );
    assert_eq!(webhook(port, &ca_path, body, &[]), 401);
    assert_eq!(
        webhook(port, &ca_path, body, &[("X-Gitlab-Token", "wrong".into())]),
        401
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let err = api
        .request(
            hyper::Method::GET,
            Box::leak(format!("/api/v1/commits/{c2}").into_boxed_str()),
            None,
        )
        .await;
    assert!(
        err.is_err(),
        "an unverified webhook must not fetch: {err:?}"
    );

    // A valid GitHub signature: fetched at once, rejected as a whole.
    let good = hmac_sha256_hex(SECRET.as_bytes(), body.as_bytes());
    assert_eq!(
        webhook(
            port,
            &ca_path,
            body,
            &[
                ("X-Hub-Signature-256", format!("sha256={good}")),
                ("X-GitHub-Delivery", "d1".into())
            ]
        ),
        202
    );
    let path: &'static str = Box::leak(format!("/api/v1/commits/{c2}").into_boxed_str());
    let rec = wait_for("the broken commit's record", 20, || async {
        api.request(hyper::Method::GET, path, None).await.ok()
    })
    .await;
    assert_eq!(rec["accepted"], false);
    let problems = rec["problems"].as_array().unwrap();
    assert!(
        problems
            .iter()
            .any(|p| p["file"] == "fleet.toml"
                && p["message"].as_str().unwrap().contains("deadline")),
        "{rec:#}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p["file"] == "stacks/hello/compose.yaml"
                && p["message"].as_str().unwrap().contains("sometimes")),
        "{rec:#}"
    );
    let s = get("/api/v1/status").await;
    assert_eq!(
        s["last_good_commit"],
        c1.as_str(),
        "the fleet stays on the last good commit"
    );
    assert_eq!(s["current_rollout"]["commit"], c1.as_str());

    // Fixed (a real change), fetched through a GitLab-style webhook.
    std::fs::write(
        repo.join("fleet.toml"),
        fleet.replace("min_healthy = \"5s\"", "min_healthy = \"6s\""),
    )
    .unwrap();
    std::fs::write(repo.join("stacks/hello/compose.yaml"), compose).unwrap();
    let c3 = commit_all(&repo, "fixed");
    assert_eq!(
        webhook(port, &ca_path, body, &[("X-Gitlab-Token", SECRET.into())]),
        202
    );
    let r = wait_for("the fixed commit's rollout", 20, || async {
        let r = get("/api/v1/rollouts/current").await;
        (r["commit"] == c3.as_str()).then_some(r)
    })
    .await;
    assert_eq!(r["summary"], "running");
    let old = get("/api/v1/rollouts").await;
    let first = old
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["commit"] == c1.as_str())
        .unwrap();
    assert!(
        first["summary"].as_str().unwrap().starts_with("superseded"),
        "{first:#}"
    );

    // Steering: abort stops it; a read token may not.
    let aborted = api
        .request(
            hyper::Method::POST,
            "/api/v1/rollouts/abort",
            Some(serde_json::json!({"reason": "testing abort"})),
        )
        .await
        .unwrap();
    assert!(
        aborted["summary"]
            .as_str()
            .unwrap()
            .contains("testing abort"),
        "{aborted:#}"
    );

    // The audit log: who did what, filterable.
    let audit = get("/api/v1/events").await;
    let kinds: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    for k in ["commit_accepted", "commit_rejected", "rollout", "abort"] {
        assert!(kinds.contains(&k), "no {k} in {kinds:?}");
    }
    let abort = audit
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "abort")
        .unwrap();
    assert_eq!(abort["who"], "init-admin");
    let rejected = get("/api/v1/events?kind=commit_rejected&limit=5").await;
    assert_eq!(rejected.as_array().unwrap().len(), 1);
    assert_eq!(rejected[0]["commit"], c2.as_str());
    srv.shutdown().await;
}
