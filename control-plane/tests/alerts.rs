//! Alert delivery against a real local HTTP sink (axum on 127.0.0.1) that
//! records raw bodies and headers and answers from a script.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use convoy_control_plane::alerts::{
    AlertEvent, Alerts, AlertsConfig, DeliveryStatus, GpuFault, Raised,
};
use convoy_control_plane::store::SledStore;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use tokio::sync::oneshot;

const SECRET: &str = "It's a Secret to Everybody";
const PUBLIC: &str = "https://convoy.example.com";

#[derive(Clone, Debug)]
struct Req {
    path: String,
    headers: HeaderMap,
    body: Bytes,
    status: u16,
    at: Instant,
}

impl Req {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
    fn header(&self, n: &str) -> String {
        self.headers
            .get(n)
            .unwrap_or_else(|| panic!("missing header {n}"))
            .to_str()
            .unwrap()
            .to_owned()
    }
}

#[derive(Clone)]
struct Scripted {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: String,
}

fn ok() -> Scripted {
    Scripted {
        status: 200,
        headers: vec![],
        body: "ok".into(),
    }
}

#[derive(Default)]
struct SinkState {
    reqs: Mutex<Vec<Req>>,
    /// Per path prefix: responses to give first, in order; then 200.
    script: Mutex<BTreeMap<String, VecDeque<Scripted>>>,
    /// Per path prefix: answer every request like this.
    always: Mutex<BTreeMap<String, Scripted>>,
}

#[derive(Clone, Default)]
struct Sink(Arc<SinkState>);

impl Sink {
    fn reqs(&self) -> Vec<Req> {
        self.0.reqs.lock().unwrap().clone()
    }
    fn reqs_on(&self, prefix: &str) -> Vec<Req> {
        self.reqs()
            .into_iter()
            .filter(|r| r.path.starts_with(prefix))
            .collect()
    }
    fn ok_on(&self, prefix: &str) -> Vec<Req> {
        self.reqs_on(prefix)
            .into_iter()
            .filter(|r| (200..300).contains(&r.status))
            .collect()
    }
    fn script(&self, prefix: &str, s: Vec<Scripted>) {
        self.0
            .script
            .lock()
            .unwrap()
            .insert(prefix.to_owned(), s.into());
    }
    fn always(&self, prefix: &str, s: Scripted) {
        self.0.always.lock().unwrap().insert(prefix.to_owned(), s);
    }
}

async fn handler(State(sink): State<Sink>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let path = uri.path().to_owned();
    let resp = {
        let always = sink.0.always.lock().unwrap();
        let mut script = sink.0.script.lock().unwrap();
        always
            .iter()
            .find(|(p, _)| path.starts_with(p.as_str()))
            .map(|(_, s)| s.clone())
            .or_else(|| {
                script
                    .iter_mut()
                    .find(|(p, _)| path.starts_with(p.as_str()))
                    .and_then(|(_, q)| q.pop_front())
            })
            .unwrap_or_else(ok)
    };
    sink.0.reqs.lock().unwrap().push(Req {
        path,
        headers,
        body,
        status: resp.status,
        at: Instant::now(),
    });
    let mut r = (StatusCode::from_u16(resp.status).unwrap(), resp.body).into_response();
    for (k, v) in resp.headers {
        r.headers_mut().insert(k, v.parse().unwrap());
    }
    r
}

async fn serve_on(listener: tokio::net::TcpListener, sink: Sink) -> oneshot::Sender<()> {
    let app = axum::Router::new().fallback(handler).with_state(sink);
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = rx.await;
            })
            .await
            .unwrap();
    });
    tx
}

async fn start_sink() -> (Sink, u16, oneshot::Sender<()>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let sink = Sink::default();
    let stop = serve_on(l, sink.clone()).await;
    (sink, port, stop)
}

/// A port with nothing listening (connections are refused).
fn dead_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn config(sinks_toml: &str, extra: &str) -> AlertsConfig {
    let toml = format!(
        "public_url = \"{PUBLIC}/\"\nretry_base = \"20ms\"\nretry_cap = \"200ms\"\nflap_window = \"300ms\"\nrequest_timeout = \"2s\"\n{extra}\n{sinks_toml}"
    );
    AlertsConfig::from_toml(&toml).unwrap()
}

fn webhook_sink(name: &str, port: u16, path: &str, extra: &str) -> String {
    format!(
        "[[sinks]]\nname = \"{name}\"\nkind = \"webhook\"\nurl = \"http://127.0.0.1:{port}{path}\"\nsecret = \"{SECRET}\"\n{extra}\n"
    )
}

struct Running {
    alerts: Alerts,
    db: sled::Db,
    stop: oneshot::Sender<()>,
    worker: tokio::task::JoinHandle<()>,
}

impl Running {
    async fn shutdown(self) {
        let _ = self.stop.send(());
        self.worker.await.unwrap();
        drop(self.alerts);
        self.db.flush_async().await.unwrap();
        drop(self.db);
    }
}

fn start(db: sled::Db, cfg: AlertsConfig) -> Running {
    let client = reqwest::Client::builder().build().unwrap();
    let store = SledStore::from_db(db.clone()).unwrap();
    let alerts = Alerts::open(Arc::new(store), cfg, client, convoy_kit::clock::system()).unwrap();
    let (stop, rx) = oneshot::channel::<()>();
    let a = alerts.clone();
    let worker = tokio::spawn(async move {
        a.run(async {
            let _ = rx.await;
        })
        .await;
    });
    Running {
        alerts,
        db,
        stop,
        worker,
    }
}

fn temp_db() -> (tempfile::TempDir, sled::Db) {
    let dir = tempfile::tempdir().unwrap();
    let db = sled::open(dir.path().join("db")).unwrap();
    (dir, db)
}

async fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Independent HMAC-SHA256 check of the webhook signature over the raw body.
fn verify_signature(r: &Req) {
    let sig = r.header("x-convoy-signature-256");
    let hex_sig = sig.strip_prefix("sha256=").expect("sha256= prefix");
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(&r.body);
    let expected = hex::encode(mac.finalize().into_bytes());
    assert_eq!(hex_sig, expected, "signature over the raw body");
}

fn rollout_failed(n: usize) -> AlertEvent {
    AlertEvent::RolloutFailed {
        fleet: "prod".into(),
        rollout: format!("r{n}"),
        commit: "0123456789abcdef0123".into(),
        reason: "wave 1 unhealthy".into(),
    }
}

fn assert_rfc3339(s: &str) {
    // 2024-05-01T12:00:00.000Z
    let b = s.as_bytes();
    assert_eq!(b.len(), 24, "{s}");
    assert!(
        b[4] == b'-'
            && b[7] == b'-'
            && b[10] == b'T'
            && b[13] == b':'
            && b[19] == b'.'
            && b[23] == b'Z',
        "{s}"
    );
}

#[tokio::test]
async fn events_reach_the_right_sinks_with_documented_shapes() {
    let (sink, port, _stop) = start_sink().await;
    let sinks = format!(
        "{}\n[[sinks]]\nname = \"slack\"\nkind = \"slack\"\nurl = \"http://127.0.0.1:{port}/slack\"\nevents = [\"rollout_failed\", \"host_offline\"]\nmin_severity = \"critical\"\n\n[[sinks]]\nname = \"discord\"\nkind = \"discord\"\nurl = \"http://127.0.0.1:{port}/discord\"\nhosts = [\"gpu-1\"]\nmin_severity = \"warning\"\nrate_limit_burst = 50\n\n[[sinks]]\nname = \"tg\"\nkind = \"telegram\"\nbot_token = \"123:TESTTOKEN\"\nchat_id = -100123\napi_base = \"http://127.0.0.1:{port}/tg/\"\nevents = [\"gpu_event\", \"cert_expiring\"]\n",
        webhook_sink(
            "hook",
            port,
            "/hook",
            "rate_limit_per_minute = 6000\nrate_limit_burst = 50"
        )
    );
    let (_dir, db) = temp_db();
    let run = start(db, config(&sinks, ""));
    let a = &run.alerts;
    let nasty = "disk <full> & \"quoted\"";
    let events = vec![
        rollout_failed(1),
        AlertEvent::RolloutHalted {
            fleet: "prod".into(),
            rollout: "r2".into(),
            commit: "c2".into(),
            reason: nasty.into(),
        },
        AlertEvent::RolloutCompleted {
            fleet: "prod".into(),
            rollout: "r3".into(),
            commit: "c3".into(),
        },
        AlertEvent::HostRolledBack {
            fleet: "prod".into(),
            host: "gpu-1".into(),
            stack: "llm".into(),
            commit: "c4".into(),
            reason: "healthcheck failed".into(),
        },
        AlertEvent::StackFailed {
            fleet: "prod".into(),
            host: "web-1".into(),
            stack: "web".into(),
            commit: "c5".into(),
            reason: "exit 1".into(),
        },
        AlertEvent::CommitRejected {
            fleet: "prod".into(),
            commit: "c6".into(),
            reason: "bad compose".into(),
        },
        AlertEvent::HostOffline {
            fleet: "prod".into(),
            host: "gpu-1".into(),
            last_seen_ms: Some(1_700_000_000_000),
        },
        AlertEvent::GpuEvent {
            fleet: "prod".into(),
            host: "gpu-1".into(),
            gpu: "0".into(),
            fault: GpuFault::Xid,
            code: Some(79),
            detail: "fell off the bus <xid>".into(),
        },
        AlertEvent::CertExpiring {
            fleet: "prod".into(),
            host: None,
            subject: "convoy-ca".into(),
            not_after: 1_800_000_000,
        },
        AlertEvent::RevokedHostConnect {
            fleet: "prod".into(),
            host: "web-2".into(),
            peer: "10.0.0.9:5555".into(),
        },
    ];
    let mut ids = BTreeMap::new();
    for e in events {
        let kind = e.kind();
        match a.raise(e).await.unwrap() {
            Raised::New { id, .. } => {
                ids.insert(kind.as_str().to_owned(), id);
            }
            other => panic!("{other:?}"),
        }
    }
    // Raising the same condition again maps to the same alert.
    assert_eq!(
        a.raise(rollout_failed(1)).await.unwrap(),
        Raised::Duplicate {
            id: ids["rollout_failed"].clone()
        }
    );
    // Host back online: one resolve message after the flap window.
    let r = a
        .raise(AlertEvent::HostOnline {
            fleet: "prod".into(),
            host: "gpu-1".into(),
        })
        .await
        .unwrap();
    assert!(matches!(r, Raised::Resolved { changed: true, .. }), "{r:?}");
    let test_id = a.test("tg").await.unwrap();
    assert!(a.test("nope").await.is_err());

    let expect: BTreeMap<&str, usize> =
        [("/hook", 11), ("/slack", 3), ("/discord", 8), ("/tg/", 3)].into();
    wait_for("all deliveries", Duration::from_secs(10), || {
        expect.iter().all(|(p, n)| sink.ok_on(p).len() >= *n)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    for (p, n) in &expect {
        assert_eq!(sink.reqs_on(p).len(), *n, "requests on {p}");
    }

    // --- webhook: signature, headers, schema.
    let mut hook_kinds = BTreeMap::new();
    for r in sink.reqs_on("/hook") {
        verify_signature(&r);
        let b = r.json();
        assert_eq!(b["version"], 1);
        let id = b["id"].as_str().unwrap();
        assert_eq!(r.header("x-convoy-idempotency-key"), format!("{id}:hook"));
        let ts: u64 = r.header("x-convoy-timestamp").parse().unwrap();
        assert_eq!(b["sent_at"].as_u64(), Some(ts));
        assert_eq!(r.header("content-type"), "application/json");
        assert_eq!(b["fleet"], "prod");
        assert!(
            b["link"]
                .as_str()
                .unwrap()
                .starts_with(&format!("{PUBLIC}/api/v1/")),
            "{b}"
        );
        assert!(["info", "warning", "critical"].contains(&b["severity"].as_str().unwrap()));
        assert_rfc3339(b["created_at"].as_str().unwrap());
        assert!(b["summary"].as_str().unwrap().len() > 5);
        for k in ["host", "stack", "rollout", "commit", "condition", "details"] {
            assert!(b.get(k).is_some(), "missing {k} in {b}");
        }
        hook_kinds.insert(
            (
                b["kind"].as_str().unwrap().to_owned(),
                b["resolved"].as_bool().unwrap(),
            ),
            b.clone(),
        );
    }
    assert_eq!(hook_kinds.len(), 11);
    let rf = &hook_kinds[&("rollout_failed".to_owned(), false)];
    assert_eq!(rf["id"], ids["rollout_failed"].as_str());
    assert_eq!(rf["rollout"], "r1");
    assert_eq!(rf["commit"], "0123456789abcdef0123");
    assert_eq!(rf["severity"], "critical");
    assert_eq!(rf["link"], format!("{PUBLIC}/api/v1/rollouts/r1"));
    let off = &hook_kinds[&("host_offline".to_owned(), false)];
    let on = &hook_kinds[&("host_offline".to_owned(), true)];
    assert_eq!(off["host"], "gpu-1");
    assert_eq!(
        on["id"],
        format!("{}.resolved", off["id"].as_str().unwrap())
    );
    assert_eq!(on["summary"], "Host gpu-1 is back online");
    assert_eq!(off["condition"], "host_offline/gpu-1");
    let gpu = &hook_kinds[&("gpu_event".to_owned(), false)];
    assert_eq!(gpu["details"]["code"], "79");
    assert_eq!(gpu["details"]["fault"], "xid");

    // --- Slack incoming webhook: {"text", "blocks"}.
    let mut slack_titles = BTreeSet::new();
    for r in sink.reqs_on("/slack") {
        let b = r.json();
        let obj = b.as_object().unwrap();
        assert_eq!(
            obj.keys().collect::<BTreeSet<_>>(),
            ["text", "blocks"]
                .iter()
                .map(|s| s.to_string())
                .collect::<BTreeSet<_>>()
                .iter()
                .collect()
        );
        assert!(b["text"].as_str().unwrap().len() <= 3000);
        let blocks = b["blocks"].as_array().unwrap();
        assert_eq!(blocks[0]["type"], "header");
        assert_eq!(blocks[0]["text"]["type"], "plain_text");
        let title = blocks[0]["text"]["text"].as_str().unwrap();
        assert!(title.chars().count() <= 150);
        assert_eq!(blocks[1]["type"], "section");
        assert_eq!(blocks[1]["text"]["type"], "mrkdwn");
        let fields = blocks[1]["fields"].as_array().unwrap();
        assert!(!fields.is_empty() && fields.len() <= 10);
        for f in fields {
            assert_eq!(f["type"], "mrkdwn");
            assert!(f["text"].as_str().unwrap().chars().count() <= 2000);
        }
        assert_eq!(blocks[2]["type"], "context");
        let ctx = blocks[2]["elements"][0]["text"].as_str().unwrap();
        assert!(
            ctx.starts_with(&format!("<{PUBLIC}/api/v1/")) && ctx.contains("|Open in Convoy>"),
            "{ctx}"
        );
        slack_titles.insert(title.to_owned());
    }
    assert_eq!(
        slack_titles,
        [
            "[CRITICAL] rollout_failed",
            "[CRITICAL] host_offline",
            "[RESOLVED] host_offline"
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    );

    // --- Discord execute webhook: {"content", "embeds": [...]}.
    let mut discord_titles = BTreeSet::new();
    for r in sink.reqs_on("/discord") {
        let b = r.json();
        let content = b["content"].as_str().unwrap();
        assert!(!content.is_empty() && content.chars().count() <= 2000);
        assert_eq!(b["allowed_mentions"]["parse"], serde_json::json!([]));
        let embeds = b["embeds"].as_array().unwrap();
        assert_eq!(embeds.len(), 1);
        let e = &embeds[0];
        let title = e["title"].as_str().unwrap();
        assert!(title.chars().count() <= 256);
        assert!(e["description"].as_str().unwrap().chars().count() <= 4096);
        assert!(e["color"].as_u64().unwrap() <= 0xFF_FF_FF);
        assert_rfc3339(e["timestamp"].as_str().unwrap());
        let fields = e["fields"].as_array().unwrap();
        assert!(fields.len() <= 25);
        for f in fields {
            assert!(f["name"].as_str().unwrap().chars().count() <= 256);
            assert!(!f["value"].as_str().unwrap().is_empty());
            assert!(f["value"].as_str().unwrap().chars().count() <= 1024);
            assert!(f["inline"].is_boolean());
        }
        if title.starts_with("[RESOLVED]") {
            assert_eq!(e["color"], 0x2ECC71);
        }
        discord_titles.insert(title.to_owned());
    }
    let want: BTreeSet<String> = [
        "[CRITICAL] rollout_failed",
        "[WARNING] rollout_halted",
        "[WARNING] host_rolled_back",
        "[WARNING] commit_rejected",
        "[CRITICAL] host_offline",
        "[RESOLVED] host_offline",
        "[CRITICAL] gpu_event",
        "[WARNING] cert_expiring",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(discord_titles, want);

    // --- Telegram sendMessage.
    let mut tg_heads = BTreeSet::new();
    for r in sink.reqs_on("/tg/") {
        assert_eq!(r.path, "/tg/bot123:TESTTOKEN/sendMessage");
        let b = r.json();
        assert_eq!(b["chat_id"], -100123);
        assert_eq!(b["parse_mode"], "HTML");
        let text = b["text"].as_str().unwrap();
        assert!(text.chars().count() <= 4096);
        assert!(text.starts_with("<b>"), "{text}");
        // Only our own tags survive; user text is escaped.
        let stripped = text
            .replace("<b>", "")
            .replace("</b>", "")
            .replace("<code>", "")
            .replace("</code>", "")
            .replace("</a>", "");
        let stripped = stripped.split("<a href=").next().unwrap();
        assert!(!stripped.contains('<') && !stripped.contains('>'), "{text}");
        if text.contains("gpu_event") {
            assert!(text.contains("fell off the bus &lt;xid&gt;"), "{text}");
        }
        tg_heads.insert(text.lines().next().unwrap().to_owned());
    }
    assert_eq!(
        tg_heads,
        [
            "<b>[CRITICAL] gpu_event</b>",
            "<b>[WARNING] cert_expiring</b>",
            "<b>[INFO] test</b>"
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    );

    // list(): everything delivered; the test alert went to tg only.
    let listed = a.list(100).unwrap();
    assert_eq!(listed.len(), 12);
    for (alert, ds) in &listed {
        for d in ds {
            assert_eq!(d.state, DeliveryStatus::Delivered, "{alert:?} {d:?}");
            assert_eq!(d.attempts, 1);
        }
        if alert.id == test_id {
            assert_eq!(
                ds.iter().map(|d| d.sink.as_str()).collect::<Vec<_>>(),
                ["tg"]
            );
        }
    }
    run.shutdown().await;
}

#[tokio::test]
async fn long_texts_are_truncated_to_platform_limits() {
    let (sink, port, _stop) = start_sink().await;
    let sinks = format!(
        "[[sinks]]\nname = \"slack\"\nkind = \"slack\"\nurl = \"http://127.0.0.1:{port}/slack\"\n[[sinks]]\nname = \"discord\"\nkind = \"discord\"\nurl = \"http://127.0.0.1:{port}/discord\"\n[[sinks]]\nname = \"tg\"\nkind = \"telegram\"\nbot_token = \"1:T\"\nchat_id = \"@ops\"\napi_base = \"http://127.0.0.1:{port}/tg\"\n"
    );
    let (_dir, db) = temp_db();
    let run = start(db, config(&sinks, ""));
    run.alerts
        .raise(AlertEvent::CommitRejected {
            fleet: "prod".into(),
            commit: "c".into(),
            reason: "<&>é".repeat(3000),
        })
        .await
        .unwrap();
    wait_for("3 deliveries", Duration::from_secs(5), || {
        sink.ok_on("/").len() >= 3
    })
    .await;
    let d = sink.ok_on("/discord")[0].json();
    assert_eq!(d["content"].as_str().unwrap().chars().count(), 2000);
    assert_eq!(
        d["embeds"][0]["description"]
            .as_str()
            .unwrap()
            .chars()
            .count(),
        4096
    );
    let t = sink.ok_on("/tg")[0].json();
    assert_eq!(t["chat_id"], "@ops");
    let text = t["text"].as_str().unwrap();
    assert!(text.chars().count() <= 4096);
    assert!(
        text.ends_with("Open in Convoy</a>"),
        "link kept: {}",
        &text[text.len() - 80..]
    );
    let s = sink.ok_on("/slack")[0].json();
    assert!(
        s["blocks"][1]["text"]["text"]
            .as_str()
            .unwrap()
            .chars()
            .count()
            <= 3000
    );
    assert!(s["text"].as_str().unwrap().chars().count() <= 3000);
    run.shutdown().await;
}

#[tokio::test]
async fn sink_down_then_500s_then_up_delivers_each_alert_exactly_once() {
    let port = dead_port();
    let (_dir, db) = temp_db();
    let run = start(
        db,
        config(
            &webhook_sink(
                "hook",
                port,
                "/hook",
                "rate_limit_burst = 100\nrate_limit_per_minute = 6000",
            ),
            "",
        ),
    );
    let mut ids = BTreeSet::new();
    for n in 0..10 {
        let Raised::New { id, .. } = run.alerts.raise(rollout_failed(n)).await.unwrap() else {
            panic!()
        };
        ids.insert(format!("{id}:hook"));
    }
    // Refused connections: retried with backoff, recorded.
    wait_for("connect failures", Duration::from_secs(5), || {
        run.alerts.list(100).unwrap().iter().all(|(_, ds)| {
            ds[0].attempts >= 2
                && ds[0]
                    .last_error
                    .as_deref()
                    .unwrap_or("")
                    .contains("connect")
        })
    })
    .await;
    // Up, but failing with 500 for a while.
    let sink = Sink::default();
    sink.script(
        "/hook",
        (0..25)
            .map(|_| Scripted {
                status: 500,
                headers: vec![],
                body: "boom".into(),
            })
            .collect(),
    );
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    let _stop = serve_on(listener, sink.clone()).await;
    wait_for("all 10 acknowledged", Duration::from_secs(15), || {
        sink.ok_on("/hook").len() >= 10
    })
    .await;
    tokio::time::sleep(Duration::from_millis(400)).await;

    let acked: Vec<String> = sink
        .ok_on("/hook")
        .iter()
        .map(|r| r.header("x-convoy-idempotency-key"))
        .collect();
    assert_eq!(acked.len(), 10, "no redelivery after a 2xx");
    assert_eq!(acked.iter().cloned().collect::<BTreeSet<_>>(), ids);
    let fails = sink
        .reqs_on("/hook")
        .iter()
        .filter(|r| r.status == 500)
        .count();
    assert_eq!(fails, 25, "every scripted 500 was hit");
    // Every attempt (including failed ones) carried a valid signature and the same key.
    for r in sink.reqs_on("/hook") {
        verify_signature(&r);
        assert!(ids.contains(&r.header("x-convoy-idempotency-key")));
    }
    for (_, ds) in run.alerts.list(100).unwrap() {
        assert_eq!(ds[0].state, DeliveryStatus::Delivered);
        assert!(ds[0].attempts >= 3, "{:?}", ds[0]);
    }
    assert_eq!(run.alerts.pending_count(), 0);
    run.shutdown().await;
}

#[tokio::test]
async fn retry_after_is_honoured_and_400_is_permanent() {
    let (sink, port, _stop) = start_sink().await;
    sink.script(
        "/limited",
        vec![Scripted {
            status: 429,
            headers: vec![("retry-after", "1".into())],
            body: "slow down".into(),
        }],
    );
    sink.always(
        "/broken",
        Scripted {
            status: 400,
            headers: vec![],
            body: "bad payload: missing field".into(),
        },
    );
    let sinks = format!(
        "{}{}",
        webhook_sink("limited", port, "/limited", ""),
        webhook_sink("broken", port, "/broken", "")
    );
    let (_dir, db) = temp_db();
    let run = start(db, config(&sinks, ""));
    run.alerts.raise(rollout_failed(1)).await.unwrap();
    wait_for("retry after 429", Duration::from_secs(5), || {
        sink.ok_on("/limited").len() == 1
    })
    .await;
    let lim = sink.reqs_on("/limited");
    assert_eq!(lim.len(), 2);
    assert_eq!(lim[0].status, 429);
    let gap = lim[1].at - lim[0].at;
    assert!(
        gap >= Duration::from_millis(950),
        "Retry-After: 1 honoured, got {gap:?}"
    );
    assert!(gap < Duration::from_millis(2500), "{gap:?}");

    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(sink.reqs_on("/broken").len(), 1, "400 is never retried");
    let listed = run.alerts.list(10).unwrap();
    let ds = &listed[0].1;
    let broken = ds.iter().find(|d| d.sink == "broken").unwrap();
    assert_eq!(broken.state, DeliveryStatus::GaveUp);
    assert_eq!(broken.attempts, 1);
    let err = broken.last_error.as_deref().unwrap();
    assert!(
        err.contains("HTTP 400") && err.contains("bad payload: missing field"),
        "{err}"
    );
    let limited = ds.iter().find(|d| d.sink == "limited").unwrap();
    assert_eq!(
        (limited.state, limited.attempts),
        (DeliveryStatus::Delivered, 2)
    );
    run.shutdown().await;
}

#[tokio::test]
async fn gives_up_after_the_configured_age() {
    let port = dead_port();
    let (_dir, db) = temp_db();
    let run = start(
        db,
        config(
            &webhook_sink("hook", port, "/hook", ""),
            "give_up_after = \"400ms\"",
        ),
    );
    run.alerts.raise(rollout_failed(1)).await.unwrap();
    wait_for("gave up", Duration::from_secs(5), || {
        run.alerts.list(1).unwrap()[0].1[0].state == DeliveryStatus::GaveUp
    })
    .await;
    let d = run.alerts.list(1).unwrap()[0].1[0].clone();
    assert!(d.attempts >= 2, "{d:?}");
    assert!(d.last_error.unwrap().contains("gave up"));
    assert_eq!(run.alerts.pending_count(), 0);
    run.shutdown().await;
}

#[tokio::test]
async fn pending_alerts_survive_a_restart() {
    let port = dead_port();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let cfg = config(&webhook_sink("hook", port, "/hook", ""), "");
    let mut keys = BTreeSet::new();
    {
        let run = start(sled::open(&path).unwrap(), cfg.clone());
        for n in 0..5 {
            let Raised::New { id, .. } = run.alerts.raise(rollout_failed(n)).await.unwrap() else {
                panic!()
            };
            keys.insert(format!("{id}:hook"));
        }
        wait_for("first attempts", Duration::from_secs(5), || {
            run.alerts
                .list(10)
                .unwrap()
                .iter()
                .all(|(_, ds)| ds[0].attempts >= 1)
        })
        .await;
        run.shutdown().await;
    }
    // Sink comes up while the control plane is down.
    let sink = Sink::default();
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    let _stop = serve_on(listener, sink.clone()).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(sink.reqs().is_empty());

    // sled's background flusher lets go of the file lock a moment after
    // the old handle is dropped: retry briefly, as a restarted process would
    // simply not see it.
    let t0 = std::time::Instant::now();
    let db = loop {
        match sled::open(&path) {
            Ok(db) => break db,
            Err(e) if t0.elapsed() < Duration::from_secs(10) => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("reopening the outbox: {e}"),
        }
    };
    let run = start(db, cfg);
    // Re-raising an alert that is still open after the restart is a duplicate.
    assert!(matches!(
        run.alerts.raise(rollout_failed(0)).await.unwrap(),
        Raised::Duplicate { .. }
    ));
    wait_for("5 after restart", Duration::from_secs(10), || {
        sink.ok_on("/hook").len() >= 5
    })
    .await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let got: Vec<String> = sink
        .reqs()
        .iter()
        .map(|r| r.header("x-convoy-idempotency-key"))
        .collect();
    assert_eq!(got.len(), 5, "exactly once: {got:?}");
    assert_eq!(got.into_iter().collect::<BTreeSet<_>>(), keys);
    run.shutdown().await;
}

#[tokio::test]
async fn a_flapping_host_gives_one_alert_and_one_resolve() {
    let (sink, port, _stop) = start_sink().await;
    let (_dir, db) = temp_db();
    let run = start(db, config(&webhook_sink("hook", port, "/hook", ""), ""));
    let mut first = None;
    for i in 0..20 {
        let r = run
            .alerts
            .raise(AlertEvent::HostOffline {
                fleet: "prod".into(),
                host: "gpu-7".into(),
                last_seen_ms: None,
            })
            .await
            .unwrap();
        match (i, &r) {
            (0, Raised::New { id, .. }) => first = Some(id.clone()),
            (_, Raised::Flapped { id, flaps }) => {
                assert_eq!(Some(id), first.as_ref());
                assert_eq!(*flaps, i);
            }
            _ => panic!("{i}: {r:?}"),
        }
        run.alerts
            .raise(AlertEvent::HostOnline {
                fleet: "prod".into(),
                host: "gpu-7".into(),
            })
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
    wait_for("resolve", Duration::from_secs(5), || {
        sink.ok_on("/hook").len() >= 2
    })
    .await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    let bodies: Vec<Value> = sink.reqs().iter().map(Req::json).collect();
    assert_eq!(bodies.len(), 2, "{bodies:?}");
    assert_eq!(bodies[0]["resolved"], false);
    assert_eq!(bodies[0]["kind"], "host_offline");
    assert_eq!(bodies[1]["resolved"], true);
    assert_eq!(
        bodies[1]["summary"],
        "Host gpu-7 is back online (flapped 19 times)"
    );
    assert_eq!(bodies[1]["details"]["flaps"], "19");
    // After it stayed resolved, a new outage is a new alert.
    let r = run
        .alerts
        .raise(AlertEvent::HostOffline {
            fleet: "prod".into(),
            host: "gpu-7".into(),
            last_seen_ms: None,
        })
        .await
        .unwrap();
    let Raised::New { id, .. } = r else {
        panic!("{r:?}")
    };
    assert_ne!(Some(&id), first.as_ref());
    run.shutdown().await;
}

#[tokio::test]
async fn missed_heartbeats_raise_host_offline_and_a_heartbeat_resolves_it() {
    let (sink, port, _stop) = start_sink().await;
    let (_dir, db) = temp_db();
    let run = start(
        db,
        config(
            &webhook_sink("hook", port, "/hook", ""),
            "offline_after = \"300ms\"",
        ),
    );
    run.alerts.heartbeat("prod", "edge-1").await.unwrap();
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        run.alerts.heartbeat("prod", "edge-2").await.unwrap();
    }
    wait_for("offline alert", Duration::from_secs(5), || {
        sink.ok_on("/hook").len() == 1
    })
    .await;
    let b = sink.reqs()[0].json();
    assert_eq!(
        (b["kind"].as_str(), b["host"].as_str()),
        (Some("host_offline"), Some("edge-1"))
    );
    assert!(b["details"]["last_seen"].is_string());
    // edge-1 is back and keeps beating: resolved after the flap window.
    let start = Instant::now();
    while !sink.reqs().iter().any(|r| r.json()["resolved"] == true) {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "timed out waiting for the resolve"
        );
        run.alerts.heartbeat("prod", "edge-1").await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // edge-1: one alert, one resolve (edge-2 stopped beating too by now and
    // may have its own offline alert, but no resolve).
    let edge1: Vec<Value> = sink
        .reqs()
        .iter()
        .map(Req::json)
        .filter(|b| b["host"] == "edge-1")
        .collect();
    assert_eq!(edge1.len(), 2, "{edge1:?}");
    assert_eq!(edge1[1]["resolved"], true);
    assert_eq!(edge1[1]["summary"], "Host edge-1 is back online");
    run.shutdown().await;
}

#[tokio::test]
async fn the_rate_limit_delays_but_never_drops() {
    let (sink, port, _stop) = start_sink().await;
    let (_dir, db) = temp_db();
    // 10 per second, bursts of 2.
    let run = start(
        db,
        config(
            &webhook_sink(
                "hook",
                port,
                "/hook",
                "rate_limit_per_minute = 600\nrate_limit_burst = 2",
            ),
            "",
        ),
    );
    let t0 = Instant::now();
    for n in 0..12 {
        run.alerts.raise(rollout_failed(n)).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(150)).await;
    let waiting = run
        .alerts
        .list(100)
        .unwrap()
        .iter()
        .filter(|(_, ds)| ds[0].state == DeliveryStatus::Pending && ds[0].attempts == 0)
        .count();
    assert!(
        waiting >= 6,
        "over the limit they wait (pending, untried): {waiting}"
    );
    wait_for("all 12", Duration::from_secs(10), || {
        sink.ok_on("/hook").len() >= 12
    })
    .await;
    let took = t0.elapsed();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let reqs = sink.reqs();
    assert_eq!(reqs.len(), 12);
    let keys: BTreeSet<String> = reqs
        .iter()
        .map(|r| r.header("x-convoy-idempotency-key"))
        .collect();
    assert_eq!(keys.len(), 12);
    // 2 at once, then 10 more at 10/s: about a second.
    assert!(took >= Duration::from_millis(900), "{took:?}");
    let span = reqs[11].at - reqs[0].at;
    assert!(span >= Duration::from_millis(900), "{span:?}");
    for w in reqs.windows(2).skip(2) {
        assert!(
            w[1].at - w[0].at >= Duration::from_millis(50),
            "spaced by the bucket"
        );
    }
    run.shutdown().await;
}

#[tokio::test]
async fn the_outbox_is_bounded_and_prunes_delivered_alerts_first() {
    let (sink, port, _stop) = start_sink().await;
    let down = dead_port();
    let sinks = format!(
        "{}{}",
        webhook_sink(
            "up",
            port,
            "/up",
            "events = [\"rollout_failed\"]\nrate_limit_per_minute = 6000\nrate_limit_burst = 100"
        ),
        webhook_sink("down", down, "/down", "events = [\"rollout_halted\"]")
    );
    let (_dir, db) = temp_db();
    let run = start(db, config(&sinks, "outbox_capacity = 10"));
    let Raised::New { id: stuck, .. } = run
        .alerts
        .raise(AlertEvent::RolloutHalted {
            fleet: "prod".into(),
            rollout: "h".into(),
            commit: "c".into(),
            reason: "x".into(),
        })
        .await
        .unwrap()
    else {
        panic!()
    };
    for n in 0..25 {
        run.alerts.raise(rollout_failed(n)).await.unwrap();
    }
    wait_for("25 delivered", Duration::from_secs(10), || {
        sink.ok_on("/up").len() >= 25
    })
    .await;
    wait_for("pruned", Duration::from_secs(5), || {
        run.alerts.list(100).unwrap().len() <= 10
    })
    .await;
    let listed = run.alerts.list(100).unwrap();
    // The oldest alert survives because it is still pending; the newest are kept.
    assert!(
        listed.iter().any(|(a, _)| a.id == stuck),
        "pending alert kept"
    );
    assert_eq!(listed[0].0.rollout.as_deref(), Some("r24"));
    assert_eq!(run.alerts.pending_count(), 1);
    run.shutdown().await;
}
