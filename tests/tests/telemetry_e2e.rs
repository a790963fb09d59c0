//! Telemetry end to end, in process over real TLS on 127.0.0.1: the control
//! plane (gateway, controller, API, alert outbox) and the agent's stream
//! client with its real sampler loading the FAKE libnvidia-ml.so (two GPUs,
//! one process in a "container", one XID) — checked through the HTTPS API,
//! `/metrics` (parsed strictly), `convoy host`'s text, and a local HTTP
//! alert sink.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use convoy_cli::client::{ApiClient, ClientError};
use convoy_control_plane::alerts::AlertsConfig;
use convoy_control_plane::config::RunConfig;
use convoy_control_plane::datadir::{self, DataDir};
use convoy_control_plane::server::{self, Server};
use convoy_host_agent::stream::{self, Agent, AgentConfig, AgentDir, FileHooks};
use convoy_host_agent::telemetry::{
    ContainerDirectory, GpuConfig, Sampler, TelemetryBuffer, TelemetryConfig,
};
use convoy_tests::fake_nvml::FakeNvml;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::watch;

const HOST: &str = "gpu-box";
const GPU0: &str = "GPU-00000000-1111-2222-3333-444444444444";
const GPU1: &str = "GPU-55555555-6666-7777-8888-999999999999";
const CONTAINER: &str = "4f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";
const GPU_PID: u32 = 4242;

struct Cp {
    _tmp: tempfile::TempDir,
    server: Server,
    api: ApiClient,
    anonymous: ApiClient,
    work: std::path::PathBuf,
}

async fn start_cp(alerts: Option<AlertsConfig>) -> Cp {
    let tmp = tempfile::tempdir().unwrap();
    let dir = DataDir::new(tmp.path().join("cp"));
    let out = datadir::init(
        &dir,
        "test",
        &["127.0.0.1".to_owned()],
        None,
        SystemTime::now(),
    )
    .unwrap();
    let cfg = RunConfig {
        agent_listen: "127.0.0.1:0".parse().unwrap(),
        api_listen: "127.0.0.1:0".parse().unwrap(),
        heartbeat_interval: Duration::from_secs(1),
        agent_cert_lifetime: Duration::from_secs(3600),
        alerts,
        ..RunConfig::default()
    };
    let server = server::start(&dir, &cfg).await.unwrap();
    let ca = std::fs::read_to_string(dir.ca_cert()).unwrap();
    let base = format!("https://127.0.0.1:{}", server.api_addr.port());
    let api = ApiClient::new(&base, Some(out.admin_token), &ca, "ca.pem").unwrap();
    let anonymous = ApiClient::new(&base, None, &ca, "ca.pem").unwrap();
    let work = tmp.path().to_path_buf();
    Cp {
        _tmp: tmp,
        server,
        api,
        anonymous,
        work,
    }
}

impl Cp {
    async fn enroll(&self, host: &str) -> AgentDir {
        let v = self
            .api
            .request(
                hyper::Method::POST,
                "/api/v1/tokens",
                Some(serde_json::json!({"host": host, "ttl": "10m"})),
            )
            .await
            .unwrap();
        let token = v["token"].as_str().unwrap().to_owned();
        let dir = AgentDir::new(self.work.join(format!("agent-{host}")));
        let addr = format!("127.0.0.1:{}", self.server.agent_addr.port());
        stream::enroll(&addr, &token, &dir).await.unwrap();
        dir
    }

    async fn telemetry(&self, host: &str) -> Value {
        self.api
            .request(
                hyper::Method::GET,
                &format!("/api/v1/hosts/{host}/telemetry?points=5"),
                None,
            )
            .await
            .unwrap()
    }

    /// Polls the host's telemetry until `ok` holds.
    async fn wait_telemetry(
        &self,
        host: &str,
        within: Duration,
        ok: impl Fn(&Value) -> bool,
    ) -> Value {
        let t0 = Instant::now();
        loop {
            let v = self.telemetry(host).await;
            if ok(&v) {
                return v;
            }
            assert!(
                t0.elapsed() < within,
                "telemetry of {host} after {within:?}: {v:#}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The sampler as `convoy-agent run` builds it, but with the fake NVML, a
/// fake /proc holding one process of a compose container, and a fast clock.
struct AgentSide {
    _tmp: tempfile::TempDir,
    buffer: Arc<TelemetryBuffer>,
    stop: watch::Sender<bool>,
    sampler: tokio::task::JoinHandle<()>,
}

impl Drop for AgentSide {
    fn drop(&mut self) {
        self.stop.send_replace(true);
        self.sampler.abort();
    }
}

fn start_agent(
    dir: &AgentDir,
    cfg: AgentConfig,
    capacity: usize,
    xid: Option<(u32, u64)>,
) -> AgentSide {
    let tmp = tempfile::tempdir().unwrap();
    let lib = FakeNvml {
        procs: vec![(GPU_PID, 1_234_567_890)],
        xid,
        gpus: None,
    }
    .build(tmp.path())
    .unwrap();
    // /proc/<pid>/cgroup of a process in a Docker container (cgroup v2,
    // systemd driver).
    let proc_root = tmp.path().join("proc");
    std::fs::create_dir_all(proc_root.join(GPU_PID.to_string())).unwrap();
    std::fs::write(
        proc_root.join(GPU_PID.to_string()).join("cgroup"),
        format!("0::/system.slice/docker-{CONTAINER}.scope\n"),
    )
    .unwrap();
    let containers = ContainerDirectory::new();
    containers.insert(CONTAINER, "llm", "vllm");
    let config = TelemetryConfig {
        interval: Duration::from_millis(200),
        gpu: GpuConfig {
            library: lib,
            event_wait: Duration::from_millis(100),
            retry_interval: Duration::from_secs(600),
            ..GpuConfig::default()
        },
        proc_root,
        docker_version: "20.10.24".into(),
        ..TelemetryConfig::default()
    };
    let buffer = Arc::new(TelemetryBuffer::new(capacity));
    let sampler = tokio::spawn(Sampler::with_containers(config, containers).run(buffer.clone()));
    let (stop, rx) = watch::channel(false);
    let agent = Agent::new(dir.clone(), cfg, Arc::new(FileHooks::new(&dir.root)))
        .with_telemetry(buffer.clone());
    tokio::spawn(async move { agent.run(rx).await });
    AgentSide {
        _tmp: tmp,
        buffer,
        stop,
        sampler,
    }
}

/// A plain-HTTP alert sink that records every request body and answers 200.
#[derive(Clone, Default)]
struct Sink(Arc<Mutex<Vec<Value>>>);

impl Sink {
    async fn start() -> (Sink, u16) {
        let sink = Sink::default();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let s = sink.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut tcp, _)) = listener.accept().await else {
                    return;
                };
                let s = s.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    let body_at = loop {
                        let n = tcp.read(&mut chunk).await.unwrap_or(0);
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break i + 4;
                        }
                    };
                    let head = String::from_utf8_lossy(&buf[..body_at]).to_lowercase();
                    let len: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .map(|v| v.trim().parse().unwrap())
                        .unwrap_or(0);
                    while buf.len() < body_at + len {
                        let n = tcp.read(&mut chunk).await.unwrap_or(0);
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                    }
                    if let Ok(v) = serde_json::from_slice(&buf[body_at..body_at + len]) {
                        s.0.lock().unwrap().push(v);
                    }
                    let _ = tcp
                        .write_all(
                            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                        )
                        .await;
                });
            }
        });
        (sink, port)
    }

    fn bodies(&self) -> Vec<Value> {
        self.0.lock().unwrap().clone()
    }
}

fn gpu(v: &Value, index: u64) -> &Value {
    v["gpus"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["index"] == index)
        .unwrap_or_else(|| panic!("no GPU {index} in {v:#}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fake_gpus_reach_the_api_metrics_cli_and_alerts() {
    let t_start = Instant::now();
    let (sink, port) = Sink::start().await;
    let alerts = AlertsConfig::from_toml(&format!(
        "retry_base = \"20ms\"\nretry_cap = \"200ms\"\nrequest_timeout = \"2s\"\n\
         [[sinks]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"http://127.0.0.1:{port}/hook\"\nsecret = \"s3cret-for-tests\"\n"
    ))
    .unwrap();
    let cp = start_cp(Some(alerts)).await;
    let dir = cp.enroll(HOST).await;
    let _agent = start_agent(&dir, AgentConfig::default(), 64, Some((1, 79)));

    // --- GET /api/v1/hosts/{name}/telemetry: values from the fake.
    let v = cp
        .wait_telemetry(HOST, Duration::from_secs(15), |v| {
            v["gpus"].as_array().is_some_and(|g| g.len() == 2)
                && v["history"].as_array().is_some_and(|h| h.len() >= 2)
        })
        .await;
    assert_eq!(v["name"], HOST);
    assert_eq!(v["connected"], true);
    assert_eq!(v["host"]["docker_version"], "20.10.24");
    assert!(v["host"]["memory_total_bytes"].as_u64().unwrap() > 0);
    let g0 = gpu(&v, 0);
    assert_eq!(g0["uuid"], GPU0);
    assert_eq!(g0["name"], "NVIDIA Fake A100");
    assert_eq!(g0["driver_version"], "550.54.15");
    assert_eq!(g0["cuda_version"], "12.4");
    assert_eq!(g0["utilization_gpu_percent"], 37);
    assert_eq!(g0["memory_used_bytes"], 10_737_418_240u64);
    assert_eq!(g0["memory_total_bytes"], 42_949_672_960u64);
    assert_eq!(g0["temperature_celsius"], 55);
    assert_eq!(g0["power_draw_milliwatts"], 123_456);
    let procs = g0["processes"].as_array().unwrap();
    assert_eq!(procs.len(), 1, "{procs:?}");
    assert_eq!(procs[0]["pid"], GPU_PID);
    assert_eq!(procs[0]["used_memory_bytes"], 1_234_567_890u64);
    assert_eq!(procs[0]["container_id"], CONTAINER);
    assert_eq!(
        (procs[0]["stack"].as_str(), procs[0]["service"].as_str()),
        (Some("llm"), Some("vllm"))
    );
    let g1 = gpu(&v, 1);
    assert_eq!(g1["uuid"], GPU1);
    assert_eq!(g1["name"], "NVIDIA Fake L4");
    assert_eq!(
        g1["fan_speed_percent"],
        Value::Null,
        "the fake fails GPU 1's fan"
    );
    assert_eq!(
        g1["missing_fields"],
        serde_json::json!(["fan_speed_percent"])
    );
    let h = v["history"].as_array().unwrap();
    assert!(h.len() <= 5, "points=5 bounds the history: {}", h.len());
    assert_eq!(h.last().unwrap()["gpus"][0]["utilization_gpu_percent"], 37);

    // --- convoy host's text.
    let text = convoy_cli::hostview::host_text(&v);
    assert!(text.contains("host gpu-box (connected)"), "{text}");
    assert!(
        text.contains("NVIDIA Fake A100") && text.contains("NVIDIA Fake L4"),
        "{text}"
    );
    assert!(text.contains("llm/vllm (container 4f1e2d3c4b5a)"), "{text}");
    assert!(text.contains("unreadable: fan_speed_percent"), "{text}");

    // --- the XID becomes an event (API) and a GpuEvent alert at the sink.
    let v = cp
        .wait_telemetry(HOST, Duration::from_secs(10), |v| {
            v["events"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["kind"] == "xid")
        })
        .await;
    let xid = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "xid")
        .unwrap();
    assert_eq!(
        (&xid["gpu"], &xid["uuid"], &xid["value"]),
        (
            &serde_json::json!(1),
            &serde_json::json!(GPU1),
            &serde_json::json!(79)
        )
    );
    assert_eq!(gpu(&v, 1)["last_xid"], 79);
    let t0 = Instant::now();
    let alert = loop {
        if let Some(a) = sink
            .bodies()
            .into_iter()
            .find(|b| b["condition"] == format!("gpu_event/{HOST}/{GPU1}/xid"))
        {
            break a;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "no XID alert at the sink: {:#?}",
            sink.bodies()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(alert["kind"], "gpu_event");
    assert_eq!(alert["severity"], "critical");
    assert_eq!(alert["host"], HOST);
    assert!(alert.to_string().contains("79"), "{alert:#}");
    let events = cp
        .api
        .request(hyper::Method::GET, "/api/v1/alerts", None)
        .await
        .unwrap();
    assert!(
        events
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["alert"]["condition"] == format!("gpu_event/{HOST}/{GPU1}/xid")),
        "{events:#}"
    );

    // --- /metrics: read scope, strict parse, fleet + control-plane series.
    match cp.anonymous.get_text("/metrics").await {
        Err(ClientError::Api { status, .. }) => assert_eq!(status.as_u16(), 401),
        other => panic!("/metrics without a token: {other:?}"),
    }
    let text = cp.api.get_text("/metrics").await.unwrap();
    let exp = convoy_tests::prom::parse(&text);
    let l0 = [
        ("host", HOST),
        ("gpu", "0"),
        ("uuid", GPU0),
        ("model", "NVIDIA Fake A100"),
    ];
    let l1 = [
        ("host", HOST),
        ("gpu", "1"),
        ("uuid", GPU1),
        ("model", "NVIDIA Fake L4"),
    ];
    assert_eq!(exp.value("convoy_gpu_utilization_ratio", &l0), 0.37);
    assert_eq!(
        exp.value("convoy_gpu_memory_total_bytes", &l0),
        42_949_672_960.0
    );
    assert_eq!(exp.value("convoy_gpu_temperature_celsius", &l1), 81.0);
    assert_eq!(exp.value("convoy_gpu_last_xid", &l1), 79.0);
    assert!(exp.value("convoy_gpu_xid_errors_total", &l1) >= 1.0);
    assert_eq!(
        exp.value(
            "convoy_gpu_process_memory_bytes",
            &[
                ("uuid", GPU0),
                ("container", CONTAINER),
                ("stack", "llm"),
                ("service", "vllm")
            ]
        ),
        1_234_567_890.0
    );
    assert_eq!(exp.types["convoy_gpu_xid_errors_total"], "counter");
    assert_eq!(
        exp.value(
            "convoy_host_info",
            &[("host", HOST), ("docker_version", "20.10.24")]
        ),
        1.0
    );
    assert_eq!(exp.value("convoy_connected_agents", &[]), 1.0);
    assert_eq!(exp.value("convoy_enrolled_hosts", &[]), 1.0);
    assert_eq!(exp.value("convoy_rollouts", &[("status", "running")]), 0.0);
    assert!(exp.value("convoy_stream_messages_total", &[("kind", "telemetry")]) >= 2.0);
    assert!(exp.value("convoy_telemetry_samples_received_total", &[]) >= 2.0);
    assert!(exp.value("convoy_alert_outbox_pending", &[]) >= 0.0);
    assert_eq!(exp.types["convoy_stream_messages_total"], "counter");
    eprintln!(
        "e2e took {:?}; /metrics {} bytes",
        t_start.elapsed(),
        text.len()
    );
    cp.server.shutdown().await;
}

/// A TCP forwarder that can cut every connection and refuse new ones.
struct Cutter {
    addr: SocketAddr,
    up: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Cutter {
    async fn start(target: SocketAddr) -> Cutter {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let up = Arc::new(AtomicBool::new(true));
        let conns: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>> = Arc::default();
        let (u, c) = (up.clone(), conns.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                if !u.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                c.lock().unwrap().push(tokio::spawn(async move {
                    if let Ok(mut out) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
                    }
                }));
            }
        });
        Cutter { addr, up, conns }
    }

    fn down(&self) {
        self.up.store(false, Ordering::SeqCst);
        for c in self.conns.lock().unwrap().drain(..) {
            c.abort();
        }
    }

    fn up(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn samples_dropped_while_the_stream_is_down_are_reported_after_reconnect() {
    let cp = start_cp(None).await;
    let dir = cp.enroll(HOST).await;
    let cutter = Cutter::start(cp.server.agent_addr).await;
    let cfg = AgentConfig {
        server: Some(cutter.addr.to_string()),
        backoff_base: Duration::from_millis(50),
        backoff_cap: Duration::from_millis(200),
        ..AgentConfig::default()
    };
    // Room for 3 samples at 5 per second.
    let agent = start_agent(&dir, cfg, 3, None);
    let v = cp
        .wait_telemetry(HOST, Duration::from_secs(15), |v| {
            v["samples_held"].as_u64() >= Some(2)
        })
        .await;
    assert_eq!(
        v["dropped_samples"], 0,
        "nothing dropped while connected: {v:#}"
    );

    cutter.down();
    let t0 = Instant::now();
    while cp.server.gateway.sessions_info().contains_key(HOST) {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "the stream did not break"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let held_before = cp.telemetry(HOST).await["samples_held"].as_u64().unwrap();
    // ~2 s down: ~10 samples into a buffer of 3.
    let t0 = Instant::now();
    while agent.buffer.pending_dropped() < 3 {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "the buffer never overflowed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let dropped_locally = agent.buffer.dropped_total();
    assert!(agent.buffer.len() <= 3, "the buffer stays bounded");
    assert_eq!(cp.telemetry(HOST).await["dropped_samples"], 0);

    cutter.up();
    let v = cp
        .wait_telemetry(HOST, Duration::from_secs(15), |v| {
            v["dropped_samples"].as_u64() > Some(0)
        })
        .await;
    let reported = v["dropped_samples"].as_u64().unwrap();
    assert!(
        reported >= dropped_locally && reported <= agent.buffer.dropped_total(),
        "reported {reported}, agent dropped {dropped_locally}..{}",
        agent.buffer.dropped_total()
    );
    assert!(
        v["samples_held"].as_u64().unwrap() > held_before,
        "the backlog arrived after reconnect: {v:#}"
    );
    let exp = convoy_tests::prom::parse(&cp.api.get_text("/metrics").await.unwrap());
    assert_eq!(
        exp.value(
            "convoy_host_telemetry_dropped_samples_total",
            &[("host", HOST)]
        ),
        reported as f64
    );
    drop(agent);
    cp.server.shutdown().await;
}
