//! Real TLS handshakes between rustls client and server, in memory.

// Test helpers outside #[test] fns panic on setup failure, like the tests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use convoy_pki::{
    ALPN_H2, Ca, DEFAULT_AGENT_CERT_LIFETIME, IssuedCert, client_config, generate_agent_key,
    host_identity, make_csr, server_config,
};
use rustls::pki_types::ServerName;
use rustls::{ClientConnection, ServerConnection};

const SERVER_NAME: &str = "cp.convoy.internal";

struct Outcome {
    client: ClientConnection,
    server: ServerConnection,
}

/// Shuttles records between the two sides until neither has anything to
/// send. Any error from either side's `process_new_packets` fails the
/// handshake.
fn handshake(
    mut client: ClientConnection,
    mut server: ServerConnection,
) -> Result<Outcome, String> {
    for _ in 0..20 {
        let mut progressed = false;
        while client.wants_write() {
            let mut buf = Vec::new();
            client.write_tls(&mut buf).map_err(|e| e.to_string())?;
            let mut rd = &buf[..];
            while !rd.is_empty() {
                server.read_tls(&mut rd).map_err(|e| e.to_string())?;
            }
            server
                .process_new_packets()
                .map_err(|e| format!("server: {e}"))?;
            progressed = true;
        }
        while server.wants_write() {
            let mut buf = Vec::new();
            server.write_tls(&mut buf).map_err(|e| e.to_string())?;
            let mut rd = &buf[..];
            while !rd.is_empty() {
                client.read_tls(&mut rd).map_err(|e| e.to_string())?;
            }
            client
                .process_new_packets()
                .map_err(|e| format!("client: {e}"))?;
            progressed = true;
        }
        if !progressed && !client.is_handshaking() && !server.is_handshaking() {
            return Ok(Outcome { client, server });
        }
    }
    Err("handshake did not finish".into())
}

fn connect(
    ca_der: &[u8],
    server: &IssuedCert,
    client_cert: Option<(&str, &str)>,
    trust_der: &[u8],
    name: &str,
) -> Result<Outcome, String> {
    let sc = server_config(ca_der, &server.cert_pem, &server.key_pem).unwrap();
    let cc = client_config(trust_der, client_cert).unwrap();
    let client =
        ClientConnection::new(Arc::new(cc), ServerName::try_from(name.to_owned()).unwrap())
            .unwrap();
    let server = ServerConnection::new(Arc::new(sc)).unwrap();
    handshake(client, server)
}

struct Fixture {
    ca: Ca,
    server: IssuedCert,
    agent_cert: String,
    agent_key: String,
}

fn fixture(fleet: &str, host: &str) -> Fixture {
    let now = SystemTime::now();
    let ca = Ca::generate(fleet, now).unwrap();
    let server = ca
        .issue_server(
            &[SERVER_NAME.to_owned(), "127.0.0.1".to_owned()],
            now,
            Duration::from_secs(3600),
        )
        .unwrap();
    let agent_key = generate_agent_key().unwrap();
    let csr = make_csr(&agent_key, fleet, host).unwrap();
    let agent_cert = ca
        .sign_agent_csr(&csr, fleet, host, now, DEFAULT_AGENT_CERT_LIFETIME)
        .unwrap()
        .cert_pem;
    Fixture {
        ca,
        server,
        agent_cert,
        agent_key,
    }
}

#[test]
fn agent_with_cert_is_accepted_and_identified() {
    let f = fixture("prod", "web-1");
    let out = connect(
        f.ca.cert_der(),
        &f.server,
        Some((&f.agent_cert, &f.agent_key)),
        f.ca.cert_der(),
        SERVER_NAME,
    )
    .unwrap();
    assert_eq!(out.client.alpn_protocol(), Some(ALPN_H2));
    assert_eq!(out.server.alpn_protocol(), Some(ALPN_H2));
    let peer = out
        .server
        .peer_certificates()
        .expect("server sees client cert");
    let id = host_identity(peer[0].as_ref(), "prod").unwrap();
    assert_eq!(id.host, "web-1");
    assert_eq!(id.fleet, "prod");
    // And the client saw our server certificate.
    assert!(out.client.peer_certificates().is_some());
}

#[test]
fn server_ip_san_verifies() {
    let f = fixture("prod", "web-1");
    connect(
        f.ca.cert_der(),
        &f.server,
        None,
        f.ca.cert_der(),
        "127.0.0.1",
    )
    .unwrap();
    // A name not in the certificate is rejected.
    let err = connect(
        f.ca.cert_der(),
        &f.server,
        None,
        f.ca.cert_der(),
        "other.example",
    )
    .err()
    .expect("wrong name must fail");
    assert!(err.starts_with("client:"), "{err}");
    assert!(err.contains("not valid for name"), "{err}");
}

#[test]
fn client_without_cert_is_allowed_for_enroll() {
    let f = fixture("prod", "web-1");
    let out = connect(
        f.ca.cert_der(),
        &f.server,
        None,
        f.ca.cert_der(),
        SERVER_NAME,
    )
    .unwrap();
    assert!(out.server.peer_certificates().is_none());
}

#[test]
fn client_cert_from_another_ca_fails() {
    let f = fixture("prod", "web-1");
    let other = fixture("prod", "web-1");
    let err = connect(
        f.ca.cert_der(),
        &f.server,
        Some((&other.agent_cert, &other.agent_key)),
        f.ca.cert_der(),
        SERVER_NAME,
    )
    .err()
    .expect("foreign client cert must fail");
    assert!(err.starts_with("server:"), "{err}");
    assert!(err.contains("invalid peer certificate"), "{err}");
}

#[test]
fn server_cert_from_another_ca_is_rejected_by_client() {
    let f = fixture("prod", "web-1");
    let other = fixture("prod", "web-1");
    // Server presents a cert from `other`; client trusts only `f.ca`.
    let err = connect(
        other.ca.cert_der(),
        &other.server,
        None,
        f.ca.cert_der(),
        SERVER_NAME,
    )
    .err()
    .expect("foreign server cert must fail");
    assert!(err.starts_with("client:"), "{err}");
    assert!(err.contains("invalid peer certificate"), "{err}");
}

#[test]
fn expired_client_cert_fails() {
    let now = SystemTime::now();
    let f = fixture("prod", "web-1");
    let key = generate_agent_key().unwrap();
    let csr = make_csr(&key, "prod", "web-1").unwrap();
    let old =
        f.ca.sign_agent_csr(
            &csr,
            "prod",
            "web-1",
            now - Duration::from_secs(3 * 86400),
            DEFAULT_AGENT_CERT_LIFETIME,
        )
        .unwrap();
    let err = connect(
        f.ca.cert_der(),
        &f.server,
        Some((&old.cert_pem, &key)),
        f.ca.cert_der(),
        SERVER_NAME,
    )
    .err()
    .expect("expired client cert must fail");
    assert!(err.starts_with("server:"), "{err}");
    assert!(err.contains("expired"), "{err}");
}

#[test]
fn server_cert_cannot_be_used_as_client_cert() {
    // Server-auth-only EKU must not authenticate a client.
    let f = fixture("prod", "web-1");
    let err = connect(
        f.ca.cert_der(),
        &f.server,
        Some((&f.server.cert_pem, &f.server.key_pem)),
        f.ca.cert_der(),
        SERVER_NAME,
    )
    .err()
    .expect("server cert as client cert must fail");
    assert!(err.starts_with("server:"), "{err}");
    assert!(err.contains("client authentication"), "{err}");
}

#[test]
fn config_errors_are_reported() {
    let f = fixture("prod", "web-1");
    assert!(server_config(f.ca.cert_der(), "nope", &f.server.key_pem).is_err());
    assert!(server_config(f.ca.cert_der(), &f.server.cert_pem, "nope").is_err());
    assert!(server_config(b"not der", &f.server.cert_pem, &f.server.key_pem).is_err());
    assert!(client_config(b"not der", None).is_err());
    // Key that does not match the certificate.
    assert!(server_config(f.ca.cert_der(), &f.server.cert_pem, &f.agent_key).is_err());
}

#[test]
fn reloaded_ca_issues_certs_trusted_by_original() {
    let now = SystemTime::now();
    let original = Ca::generate("prod", now).unwrap();
    let loaded = Ca::from_pem(original.cert_pem(), original.key_pem()).unwrap();
    let server = loaded
        .issue_server(&[SERVER_NAME.to_owned()], now, Duration::from_secs(3600))
        .unwrap();
    let key = generate_agent_key().unwrap();
    let csr = make_csr(&key, "prod", "db-2").unwrap();
    let agent = loaded
        .sign_agent_csr(&csr, "prod", "db-2", now, DEFAULT_AGENT_CERT_LIFETIME)
        .unwrap();
    let out = connect(
        original.cert_der(),
        &server,
        Some((&agent.cert_pem, &key)),
        original.cert_der(),
        SERVER_NAME,
    )
    .unwrap();
    let peer = out.server.peer_certificates().unwrap();
    assert_eq!(
        host_identity(peer[0].as_ref(), "prod").unwrap().host,
        "db-2"
    );
}
