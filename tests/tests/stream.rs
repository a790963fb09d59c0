//! Enrollment and the mTLS agent stream, in process but over real TLS on
//! 127.0.0.1: the control plane's server (gateway + API) and the agent's
//! stream client, as the binaries use them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use convoy_cli::client::ApiClient;
use convoy_control_plane::config::RunConfig;
use convoy_control_plane::datadir::{self, DataDir};
use convoy_control_plane::server::{self, Server};
use convoy_host_agent::stream::{self, Agent, AgentConfig, AgentDir, AgentHooks, FileHooks};
use convoy_shared::proto::agent_message::Kind as Out;
use convoy_shared::proto::agent_service_client::AgentServiceClient;
use convoy_shared::proto::control_message::Kind as In;
use convoy_shared::proto::{AgentMessage, DesiredState, Hello, RenewRequest, Report};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;

struct Cp {
    _tmp: tempfile::TempDir,
    dir: DataDir,
    server: Server,
    api: ApiClient,
    work: std::path::PathBuf,
}

async fn start_cp(cert_lifetime: Duration) -> Cp {
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
        agent_cert_lifetime: cert_lifetime,
        ..RunConfig::default()
    };
    let server = server::start(&dir, &cfg).await.unwrap();
    let ca = std::fs::read_to_string(dir.ca_cert()).unwrap();
    let api = ApiClient::new(
        &format!("https://127.0.0.1:{}", server.api_addr.port()),
        Some(out.admin_token),
        &ca,
        "ca.pem",
    )
    .unwrap();
    let work = tmp.path().to_path_buf();
    Cp {
        _tmp: tmp,
        dir,
        server,
        api,
        work,
    }
}

impl Cp {
    fn agent_addr(&self) -> String {
        format!("127.0.0.1:{}", self.server.agent_addr.port())
    }

    async fn token(&self, host: &str) -> String {
        let v = self
            .api
            .request(
                hyper::Method::POST,
                "/api/v1/tokens",
                Some(serde_json::json!({"host": host, "labels": {"role": "web"}, "ttl": "10m"})),
            )
            .await
            .unwrap();
        v["token"].as_str().unwrap().to_owned()
    }

    async fn enroll(&self, host: &str) -> AgentDir {
        let token = self.token(host).await;
        let dir = AgentDir::new(self.work.join(format!("agent-{host}")));
        stream::enroll(&self.agent_addr(), &token, &dir)
            .await
            .unwrap();
        dir
    }

    async fn wait_connected(&self, host: &str, want: bool, within: Duration) -> Duration {
        let t0 = Instant::now();
        loop {
            let has = self.server.gateway.sessions_info().contains_key(host);
            if has == want {
                return t0.elapsed();
            }
            assert!(
                t0.elapsed() < within,
                "host {host} connected={has} after {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn refused_code(e: &stream::StreamError) -> Option<tonic::Code> {
    match e {
        stream::StreamError::Refused { code, .. } => Some(*code),
        _ => None,
    }
}

/// A raw stream client with the agent's credentials (for precise checks).
async fn raw_client(
    server: &str,
    ca_pem: &str,
    client: Option<(&str, &str)>,
) -> AgentServiceClient<tonic::transport::Channel> {
    let ca = CertificateDer::from_pem_slice(ca_pem.as_bytes()).unwrap();
    let cfg = convoy_pki::client_config(&ca, client).unwrap();
    let ch = stream::tls::channel(server, Arc::new(cfg)).await.unwrap();
    AgentServiceClient::new(ch)
}

fn hello() -> AgentMessage {
    AgentMessage {
        kind: Some(Out::Hello(Hello {
            protocol_version: convoy_shared::proto::PROTOCOL_VERSION,
            ..Hello::default()
        })),
    }
}

/// Opens Connect with the agent dir's credentials; returns the sender and
/// the inbound stream after Welcome.
async fn open_stream(
    cp: &Cp,
    dir: &AgentDir,
) -> Result<
    (
        mpsc::Sender<AgentMessage>,
        tonic::Streaming<convoy_shared::proto::ControlMessage>,
    ),
    tonic::Status,
> {
    let c = dir.load_credentials().unwrap();
    let mut client = raw_client(
        &cp.agent_addr(),
        &c.ca_pem,
        Some((c.cert_pem.as_str(), c.key_pem.as_str())),
    )
    .await;
    let (tx, rx) = mpsc::channel(8);
    tx.send(hello()).await.unwrap();
    let mut inbound = client.connect(ReceiverStream::new(rx)).await?.into_inner();
    match inbound.message().await?.and_then(|m| m.kind) {
        Some(In::Welcome(w)) => {
            assert_eq!(w.fleet, "test");
            assert_eq!(w.heartbeat_interval_seconds, 1);
        }
        other => panic!("expected Welcome, got {other:?}"),
    }
    Ok((tx, inbound))
}

#[tokio::test]
async fn enroll_succeeds_once_and_token_cannot_be_reused() {
    let cp = start_cp(Duration::from_secs(3600)).await;
    let token = cp.token("web-1").await;
    let a = AgentDir::new(cp.work.join("a"));
    let e = stream::enroll(&cp.agent_addr(), &token, &a).await.unwrap();
    assert_eq!((e.host.as_str(), e.fleet.as_str()), ("web-1", "test"));
    // Key made on the host, 0600; CA pinned and saved.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(a.key()).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert_eq!(
        std::fs::read_to_string(a.ca()).unwrap(),
        std::fs::read_to_string(cp.dir.ca_cert()).unwrap()
    );
    let b = AgentDir::new(cp.work.join("b"));
    let err = stream::enroll(&cp.agent_addr(), &token, &b)
        .await
        .unwrap_err();
    assert_eq!(
        refused_code(&err),
        Some(tonic::Code::PermissionDenied),
        "{err}"
    );
    assert!(err.to_string().contains("already used"), "{err}");
    assert!(!b.cert().exists());
    let h = cp.server.gateway.store().host("web-1").unwrap().unwrap();
    assert_eq!(h.labels.get("role").map(String::as_str), Some("web"));
    assert!(!h.cert_serial.is_empty());
}

#[tokio::test]
async fn expired_and_forged_tokens_are_refused() {
    let cp = start_cp(Duration::from_secs(3600)).await;
    let fp = cp.server.gateway.ca().fingerprint_sha256();
    let (printed, stored) = convoy_pki::JoinToken::new(
        "web-2",
        BTreeMap::new(),
        Duration::from_secs(60),
        SystemTime::now() - Duration::from_secs(3600),
        &fp,
    )
    .unwrap();
    cp.server.gateway.store().put_token(&stored).unwrap();
    let err = stream::enroll(
        &cp.agent_addr(),
        &printed,
        &AgentDir::new(cp.work.join("x")),
    )
    .await
    .unwrap_err();
    assert_eq!(
        refused_code(&err),
        Some(tonic::Code::PermissionDenied),
        "{err}"
    );
    assert!(err.to_string().contains("expired"), "{err}");
    // Right id, wrong secret.
    let good = cp.token("web-3").await;
    let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
    parts[2] = "0".repeat(64);
    let forged = parts.join(".");
    let err = stream::enroll(&cp.agent_addr(), &forged, &AgentDir::new(cp.work.join("y")))
        .await
        .unwrap_err();
    assert_eq!(
        refused_code(&err),
        Some(tonic::Code::PermissionDenied),
        "{err}"
    );
    // A token pinning another CA never even reaches Enroll.
    parts = good.split('.').map(str::to_owned).collect();
    parts[3] = "ab".repeat(32);
    let err = stream::enroll(
        &cp.agent_addr(),
        &parts.join("."),
        &AgentDir::new(cp.work.join("z")),
    )
    .await
    .unwrap_err();
    assert!(refused_code(&err).is_none(), "TLS must fail first: {err}");
    // ...and the genuine token still works once.
    stream::enroll(&cp.agent_addr(), &good, &AgentDir::new(cp.work.join("w")))
        .await
        .unwrap();
}

#[derive(Default)]
struct TestHooks {
    desired: Mutex<Vec<DesiredState>>,
    pending: Mutex<Vec<Report>>,
    acked: Mutex<Vec<String>>,
}

#[async_trait::async_trait]
impl AgentHooks for TestHooks {
    async fn on_desired(&self, state: DesiredState) {
        self.desired.lock().unwrap().push(state);
    }
    fn pending_reports(&self) -> Vec<Report> {
        self.pending.lock().unwrap().clone()
    }
    fn ack(&self, ids: &[String]) {
        self.pending
            .lock()
            .unwrap()
            .retain(|r| !ids.contains(&r.id));
        self.acked.lock().unwrap().extend(ids.iter().cloned());
    }
}

fn run_agent<H: AgentHooks>(
    dir: &AgentDir,
    hooks: Arc<H>,
    cfg: AgentConfig,
) -> watch::Sender<bool> {
    let (stop, rx) = watch::channel(false);
    let agent = Agent::new(dir.clone(), cfg, hooks);
    tokio::spawn(async move { agent.run(rx).await });
    stop
}

#[tokio::test]
async fn agent_connects_as_its_certificate_says_and_exchanges_messages() {
    let cp = start_cp(Duration::from_secs(3600)).await;
    let dir = cp.enroll("gpu-7").await;
    let hooks = Arc::new(TestHooks::default());
    hooks.pending.lock().unwrap().push(Report {
        id: "r-1".into(),
        stack: "web".into(),
        message: "healthy".into(),
        ..Report::default()
    });
    let stop = run_agent(&dir, hooks.clone(), AgentConfig::default());
    cp.wait_connected("gpu-7", true, Duration::from_secs(10))
        .await;
    let info = cp.server.gateway.sessions_info();
    let serial = &info["gpu-7"].cert_serial;
    let id = {
        let c = dir.load_credentials().unwrap();
        let der = CertificateDer::from_pem_slice(c.cert_pem.as_bytes()).unwrap();
        convoy_pki::host_identity(&der, "test").unwrap()
    };
    assert_eq!(&id.serial_hex, serial);

    // Report acked and stored (under the authenticated host).
    let t0 = Instant::now();
    while hooks.acked.lock().unwrap().is_empty() {
        assert!(t0.elapsed() < Duration::from_secs(5), "no Ack");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(hooks.pending.lock().unwrap().is_empty());
    assert!(cp.server.gateway.store().report("r-1").unwrap().is_some());

    // Desired state delivery.
    cp.server
        .gateway
        .send_desired(
            "gpu-7",
            DesiredState {
                revision: "rev-a".into(),
                generation: 1,
                state_json: b"{\"stacks\":[]}".to_vec(),
                ..DesiredState::default()
            },
        )
        .unwrap();
    let t0 = Instant::now();
    while hooks.desired.lock().unwrap().is_empty() {
        assert!(t0.elapsed() < Duration::from_secs(5), "no DesiredState");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(hooks.desired.lock().unwrap()[0].revision, "rev-a");
    assert!(
        cp.server
            .gateway
            .send_desired("nobody", DesiredState::default())
            .is_err()
    );

    // A newer stream for the same host replaces the older one.
    let (_tx, mut inbound) = open_stream(&cp, &dir).await.unwrap();
    let new_serial_session = cp.server.gateway.sessions_info()["gpu-7"].connected_since;
    assert!(new_serial_session >= info["gpu-7"].connected_since);
    drop(stop);
    let _ = inbound.message().await;
}

#[tokio::test]
async fn file_hooks_persist_desired_state() {
    let cp = start_cp(Duration::from_secs(3600)).await;
    let dir = cp.enroll("edge-1").await;
    let stop = run_agent(
        &dir,
        Arc::new(FileHooks::new(&dir.root)),
        AgentConfig::default(),
    );
    cp.wait_connected("edge-1", true, Duration::from_secs(10))
        .await;
    cp.server
        .gateway
        .send_desired(
            "edge-1",
            DesiredState {
                revision: "rev-b".into(),
                generation: 3,
                state_json: b"{\"x\":1}".to_vec(),
                ..DesiredState::default()
            },
        )
        .unwrap();
    let t0 = Instant::now();
    while std::fs::read(dir.root.join("desired.json")).ok().as_deref()
        != Some(b"{\"x\":1}".as_slice())
    {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "desired.json not written"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.send_replace(true);
}

#[tokio::test]
async fn foreign_ca_no_cert_and_plaintext_clients_get_nothing() {
    let cp = start_cp(Duration::from_secs(3600)).await;
    let ca_pem = std::fs::read_to_string(cp.dir.ca_cert()).unwrap();
    let (tx, rx) = mpsc::channel(1);
    tx.send(hello()).await.unwrap();

    // A certificate with the right fleet and host, from another CA.
    let other = convoy_pki::Ca::generate("test", SystemTime::now()).unwrap();
    let key = convoy_pki::generate_agent_key().unwrap();
    let csr = convoy_pki::make_csr(&key, "test", "web-1").unwrap();
    let cert = other
        .sign_agent_csr(
            &csr,
            "test",
            "web-1",
            SystemTime::now(),
            Duration::from_secs(3600),
        )
        .unwrap();
    let ca = CertificateDer::from_pem_slice(ca_pem.as_bytes()).unwrap();
    let cfg = convoy_pki::client_config(&ca, Some((&cert.cert_pem, &key))).unwrap();
    // TLS 1.3: the client may believe the handshake worked; the refusal
    // shows at the first call.
    match stream::tls::channel(&cp.agent_addr(), Arc::new(cfg)).await {
        Err(_) => {}
        Ok(ch) => {
            let r = AgentServiceClient::new(ch)
                .connect(ReceiverStream::new(rx))
                .await;
            assert!(r.is_err(), "foreign-CA client got a stream");
        }
    }

    // Our CA trusted, no client certificate: Enroll-only.
    let mut c = raw_client(&cp.agent_addr(), &ca_pem, None).await;
    let (tx, rx) = mpsc::channel(1);
    tx.send(hello()).await.unwrap();
    let err = c.connect(ReceiverStream::new(rx)).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unauthenticated);

    // Plaintext HTTP/2 gRPC.
    let ch = tonic::transport::Endpoint::from_shared(format!("http://{}", cp.agent_addr()))
        .unwrap()
        .connect_timeout(Duration::from_secs(3))
        .timeout(Duration::from_secs(3));
    match ch.connect().await {
        Err(_) => {}
        Ok(ch) => {
            let (tx, rx) = mpsc::channel(1);
            tx.send(hello()).await.unwrap();
            let r = AgentServiceClient::new(ch)
                .connect(ReceiverStream::new(rx))
                .await;
            assert!(r.is_err(), "plaintext client got a stream");
        }
    }
    // Raw bytes: the server answers a non-TLS hello with at most a TLS
    // alert, never HTTP/2.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(cp.server.agent_addr)
        .await
        .unwrap();
    s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(3), s.read_to_end(&mut buf)).await;
    // Nothing, or one TLS alert record (content type 21).
    assert!(
        buf.is_empty() || (buf[0] == 21 && buf.len() <= 7),
        "got {buf:?}"
    );
    assert!(cp.server.gateway.sessions_info().is_empty());
}

#[tokio::test]
async fn revoke_closes_the_live_stream_within_a_second_and_refuses_the_cert() {
    let cp = start_cp(Duration::from_secs(3600)).await;
    let dir = cp.enroll("web-9").await;
    let (tx, mut inbound) = open_stream(&cp, &dir).await.unwrap();
    let t0 = Instant::now();
    let v = cp
        .api
        .request(hyper::Method::POST, "/api/v1/hosts/web-9/revoke", None)
        .await
        .unwrap();
    assert_eq!(v["stream_closed"], true);
    // The stream yields Revoked and then ends with an error, fast.
    let mut saw_revoked = false;
    loop {
        match tokio::time::timeout(Duration::from_secs(1), inbound.message()).await {
            Err(_) => panic!("stream still open 1s after revoke"),
            Ok(Ok(Some(m))) => {
                if matches!(m.kind, Some(In::Revoked(_))) {
                    saw_revoked = true;
                }
            }
            Ok(Ok(None)) | Ok(Err(_)) => break,
        }
    }
    assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());
    assert!(saw_revoked);
    drop(tx);
    cp.wait_connected("web-9", false, Duration::from_secs(1))
        .await;
    // Reconnect with the same certificate: refused.
    let err = open_stream(&cp, &dir).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied);
    // The attempt is in the audit log (and raises revoked_host_connect).
    let audit = cp
        .api
        .request(
            hyper::Method::GET,
            "/api/v1/events?kind=revoked_connect",
            None,
        )
        .await
        .unwrap();
    assert_eq!(audit[0]["host"], "web-9", "{audit:#}");
    // The hosts list says so.
    let hosts = cp
        .api
        .request(hyper::Method::GET, "/api/v1/hosts", None)
        .await
        .unwrap();
    let h = hosts
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["name"] == "web-9")
        .unwrap();
    assert_eq!(
        (h["revoked"].as_bool(), h["connected"].as_bool()),
        (Some(true), Some(false))
    );
    // A new token lets it back in with a new certificate; the old one
    // stays refused.
    let old = dir.load_credentials().unwrap();
    let token = cp.token("web-9").await;
    let dir2 = AgentDir::new(cp.work.join("agent-web-9-again"));
    stream::enroll(&cp.agent_addr(), &token, &dir2)
        .await
        .unwrap();
    let (_tx2, _in2) = open_stream(&cp, &dir2).await.unwrap();
    let mut c = raw_client(
        &cp.agent_addr(),
        &old.ca_pem,
        Some((old.cert_pem.as_str(), old.key_pem.as_str())),
    )
    .await;
    let (tx3, rx3) = mpsc::channel(1);
    tx3.send(hello()).await.unwrap();
    let err = c.connect(ReceiverStream::new(rx3)).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied);
    // Unknown host: 404 JSON error.
    let err = cp
        .api
        .request(hyper::Method::POST, "/api/v1/hosts/nope/revoke", None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("404"), "{err}");
}

fn not_after(cert_pem: &str) -> i64 {
    let der = CertificateDer::from_pem_slice(cert_pem.as_bytes()).unwrap();
    let (_, c) = x509_parser::parse_x509_certificate(&der).unwrap();
    c.validity().not_after.timestamp()
}

#[tokio::test]
async fn renewal_over_the_stream_gives_a_later_certificate() {
    let cp = start_cp(Duration::from_secs(20)).await;
    let dir = cp.enroll("web-4").await;
    let before = dir.load_credentials().unwrap();
    // Explicit renewal on a raw stream.
    let (tx, mut inbound) = open_stream(&cp, &dir).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let csr = convoy_pki::make_csr(&before.key_pem, "test", "web-4").unwrap();
    tx.send(AgentMessage {
        kind: Some(Out::Renew(RenewRequest { csr_pem: csr })),
    })
    .await
    .unwrap();
    let renewed = loop {
        match inbound.message().await.unwrap().and_then(|m| m.kind) {
            Some(In::Renew(r)) => break r.cert_pem,
            Some(_) => continue,
            None => panic!("stream ended"),
        }
    };
    assert!(not_after(&renewed) > not_after(&before.cert_pem));
    let der = CertificateDer::from_pem_slice(renewed.as_bytes()).unwrap();
    assert_eq!(
        convoy_pki::host_identity(&der, "test").unwrap().host,
        "web-4"
    );
    drop(tx);
    drop(inbound);

    // The agent renews by itself at 60-80 % of 20 s and swaps the new
    // certificate in for its next connection (the server ends the stream
    // when the old one expires).
    let stop = run_agent(&dir, Arc::new(TestHooks::default()), AgentConfig::default());
    cp.wait_connected("web-4", true, Duration::from_secs(10))
        .await;
    let t0 = Instant::now();
    loop {
        let now = dir.load_credentials().unwrap().cert_pem;
        if now != before.cert_pem {
            assert!(not_after(&now) > not_after(&before.cert_pem));
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "agent did not renew"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let new_serial = {
        let c = dir.load_credentials().unwrap();
        let der = CertificateDer::from_pem_slice(c.cert_pem.as_bytes()).unwrap();
        convoy_pki::host_identity(&der, "test").unwrap().serial_hex
    };
    let t0 = Instant::now();
    loop {
        let s = cp.server.gateway.sessions_info();
        if s.get("web-4").is_some_and(|i| i.cert_serial == new_serial) {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(25),
            "agent did not come back with the renewed certificate"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.send_replace(true);
}

#[tokio::test]
async fn api_scopes_and_json_errors() {
    use convoy_control_plane::store::{ApiTokenRecord, Scope, api_token_hash};
    let cp = start_cp(Duration::from_secs(3600)).await;
    let ca = std::fs::read_to_string(cp.dir.ca_cert()).unwrap();
    let base = format!("https://127.0.0.1:{}", cp.server.api_addr.port());
    cp.server
        .gateway
        .store()
        .put_api_token(
            &api_token_hash("cvat_reader"),
            &ApiTokenRecord {
                name: "reader".into(),
                scope: Scope::Read,
                created_unix: 0,
            },
        )
        .unwrap();
    let reader = ApiClient::new(&base, Some("cvat_reader".into()), &ca, "ca.pem").unwrap();
    assert!(
        reader
            .request(hyper::Method::GET, "/api/v1/hosts", None)
            .await
            .is_ok()
    );
    let err = reader
        .request(
            hyper::Method::POST,
            "/api/v1/tokens",
            Some(serde_json::json!({"host": "a"})),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("403"), "{err}");
    let nobody = ApiClient::new(&base, None, &ca, "ca.pem").unwrap();
    let err = nobody
        .request(hyper::Method::GET, "/api/v1/hosts", None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("401"), "{err}");
    // Bad input from an admin: JSON errors, nothing stored.
    for body in [
        serde_json::json!({"host": "Not_A_Host"}),
        serde_json::json!({"host": "ok", "ttl": "1000h"}),
        serde_json::json!({"host": "ok", "extra": 1}),
    ] {
        let err = cp
            .api
            .request(hyper::Method::POST, "/api/v1/tokens", Some(body.clone()))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("400"), "{body}: {err}");
    }
    // A client that trusts another CA does not talk to us at all.
    let other = convoy_pki::Ca::generate("test", SystemTime::now()).unwrap();
    let stranger = ApiClient::new(&base, Some("x".into()), other.cert_pem(), "o.pem").unwrap();
    assert!(matches!(
        stranger
            .request(hyper::Method::GET, "/api/v1/hosts", None)
            .await,
        Err(convoy_cli::client::ClientError::Connect { .. })
    ));
}
