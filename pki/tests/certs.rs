//! CA generation, loading, issuance and identity parsing.

// Test helpers outside #[test] fns panic on setup failure, like the tests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, SystemTime};

use convoy_pki::{
    CA_LIFETIME, Ca, DEFAULT_AGENT_CERT_LIFETIME, PkiError, generate_agent_key, host_identity,
    make_csr, sha256_fingerprint,
};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::X509Certificate;

fn der(pem: &str) -> Vec<u8> {
    CertificateDer::from_pem_slice(pem.as_bytes())
        .map(|c| c.to_vec())
        .unwrap_or_else(|e| panic!("bad PEM: {e}"))
}

fn parse(der: &[u8]) -> X509Certificate<'_> {
    x509_parser::parse_x509_certificate(der)
        .map(|(_, c)| c)
        .unwrap_or_else(|e| panic!("bad DER: {e}"))
}

fn unix(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[test]
fn ca_generate_properties_and_pem_round_trip() {
    let now = SystemTime::now();
    let ca = Ca::generate("prod", now).unwrap();
    let cert = parse(ca.cert_der());
    assert!(cert.is_ca());
    assert_eq!(
        cert.subject().to_string(),
        "CN=Convoy CA prod",
        "CN must name the fleet"
    );
    assert_eq!(cert.subject(), cert.issuer(), "self-signed");
    let validity = cert.validity();
    let lifetime = validity.not_after.timestamp() - unix(now);
    assert_eq!(lifetime, CA_LIFETIME.as_secs() as i64);
    // ECDSA P-256
    assert_eq!(
        cert.public_key().algorithm.algorithm.to_id_string(),
        "1.2.840.10045.2.1"
    );

    assert_eq!(der(ca.cert_pem()), ca.cert_der());
    assert_eq!(ca.fingerprint_sha256(), sha256_fingerprint(ca.cert_der()));
    assert_eq!(ca.fingerprint_sha256().len(), 64);

    let loaded = Ca::from_pem(ca.cert_pem(), ca.key_pem()).unwrap();
    assert_eq!(loaded.cert_der(), ca.cert_der());
    assert_eq!(loaded.cert_pem(), ca.cert_pem());
    assert_eq!(loaded.fingerprint_sha256(), ca.fingerprint_sha256());

    // A cert issued by the reloaded CA names the original as issuer (the
    // signature chain is checked by a real handshake in tests/tls.rs).
    let issued = loaded
        .issue_server(&["cp.example".into()], now, Duration::from_secs(3600))
        .unwrap();
    let leaf_der = der(&issued.cert_pem);
    let leaf = parse(&leaf_der);
    assert_eq!(leaf.issuer(), cert.subject());
}

#[test]
fn ca_from_pem_rejects_mismatched_key_and_non_ca() {
    let now = SystemTime::now();
    let a = Ca::generate("prod", now).unwrap();
    let b = Ca::generate("prod", now).unwrap();
    assert!(matches!(
        Ca::from_pem(a.cert_pem(), b.key_pem()),
        Err(PkiError::InvalidCa(_))
    ));
    let leaf = a
        .issue_server(&["x.example".into()], now, Duration::from_secs(60))
        .unwrap();
    assert!(matches!(
        Ca::from_pem(&leaf.cert_pem, &leaf.key_pem),
        Err(PkiError::InvalidCa(_))
    ));
    assert!(Ca::from_pem("garbage", a.key_pem()).is_err());
    assert!(Ca::from_pem(a.cert_pem(), "garbage").is_err());
}

#[test]
fn generate_rejects_bad_fleet() {
    assert!(Ca::generate("", SystemTime::now()).is_err());
    assert!(Ca::generate("Bad Fleet", SystemTime::now()).is_err());
}

#[test]
fn server_cert_sans_and_eku() {
    let now = SystemTime::now();
    let ca = Ca::generate("prod", now).unwrap();
    let names = vec![
        "cp.convoy.internal".to_string(),
        "10.1.2.3".to_string(),
        "::1".to_string(),
    ];
    let issued = ca
        .issue_server(&names, now, Duration::from_secs(90 * 86400))
        .unwrap();
    let d = der(&issued.cert_pem);
    let cert = parse(&d);
    assert!(!cert.is_ca());
    let eku = cert.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.server_auth && !eku.client_auth);
    let san = cert.subject_alternative_name().unwrap().unwrap().value;
    let mut dns = vec![];
    let mut ips = vec![];
    for g in &san.general_names {
        match g {
            GeneralName::DNSName(n) => dns.push(n.to_string()),
            GeneralName::IPAddress(b) => ips.push(b.to_vec()),
            other => panic!("unexpected SAN {other:?}"),
        }
    }
    assert_eq!(dns, vec!["cp.convoy.internal"]);
    assert_eq!(ips.len(), 2);
    assert_eq!(ips[0], vec![10, 1, 2, 3]);
    assert_eq!(ips[1].len(), 16);
    assert_eq!(issued.serial_hex, hex::encode(cert.raw_serial()));
    assert_eq!(
        unix(issued.not_after),
        unix(now) + 90 * 86400,
        "not_after = now + lifetime"
    );
    assert!(!issued.key_pem.is_empty());
    assert!(
        !format!("{issued:?}").contains("PRIVATE KEY"),
        "Debug redacts the key"
    );

    assert!(matches!(
        ca.issue_server(&[], now, Duration::from_secs(60)),
        Err(PkiError::NoServerNames)
    ));
}

#[test]
fn agent_csr_is_signed_with_ca_chosen_identity() {
    let now = SystemTime::now();
    let ca = Ca::generate("prod", now).unwrap();
    let key = generate_agent_key().unwrap();
    // The agent asks to be "evil"; the CA decides it is "web-1".
    let csr = make_csr(&key, "prod", "evil").unwrap();
    let signed = ca
        .sign_agent_csr(&csr, "prod", "web-1", now, DEFAULT_AGENT_CERT_LIFETIME)
        .unwrap();
    let d = der(&signed.cert_pem);
    let cert = parse(&d);
    assert_eq!(cert.subject().to_string(), "CN=web-1");
    let eku = cert.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.client_auth && !eku.server_auth);
    let san = cert.subject_alternative_name().unwrap().unwrap().value;
    assert_eq!(
        san.general_names,
        vec![GeneralName::URI("spiffe://prod/host/web-1")]
    );

    // The certificate carries the agent's public key.
    let agent_key = rcgen::KeyPair::from_pem(&key).unwrap();
    assert_eq!(
        cert.public_key().subject_public_key.data.as_ref(),
        agent_key.public_key_raw()
    );

    let id = host_identity(&d, "prod").unwrap();
    assert_eq!(id.host, "web-1");
    assert_eq!(id.fleet, "prod");
    assert_eq!(id.serial_hex, signed.serial_hex);
    assert_eq!(id.serial_hex.len(), 32);
    assert_eq!(id.not_after, signed.not_after);
    assert_eq!(
        unix(id.not_after),
        unix(now) + DEFAULT_AGENT_CERT_LIFETIME.as_secs() as i64
    );

    // Serials are random.
    let again = ca
        .sign_agent_csr(&csr, "prod", "web-1", now, DEFAULT_AGENT_CERT_LIFETIME)
        .unwrap();
    assert_ne!(again.serial_hex, signed.serial_hex);
}

#[test]
fn sign_agent_csr_rejects_bad_input() {
    let now = SystemTime::now();
    let ca = Ca::generate("prod", now).unwrap();
    let key = generate_agent_key().unwrap();
    let csr = make_csr(&key, "prod", "web-1").unwrap();
    let lt = DEFAULT_AGENT_CERT_LIFETIME;
    assert!(matches!(
        ca.sign_agent_csr(&csr, "prod", "Bad_Host", now, lt),
        Err(PkiError::InvalidHostName { .. })
    ));
    assert!(
        ca.sign_agent_csr("not a csr", "prod", "web-1", now, lt)
            .is_err()
    );

    // Tamper with the CSR body: the self-signature no longer verifies.
    let mut csr_der =
        rustls::pki_types::CertificateSigningRequestDer::from_pem_slice(csr.as_bytes())
            .unwrap()
            .as_ref()
            .to_vec();
    let pos = csr_der
        .windows(5)
        .position(|w| w == b"web-1")
        .expect("CN in CSR");
    csr_der[pos] = b'x';
    let tampered = format!(
        "-----BEGIN CERTIFICATE REQUEST-----\n{}\n-----END CERTIFICATE REQUEST-----\n",
        base64(&csr_der)
    );
    assert!(
        ca.sign_agent_csr(&tampered, "prod", "web-1", now, lt)
            .is_err()
    );
}

#[test]
fn host_identity_rejects_wrong_fleet_and_missing_uri() {
    let now = SystemTime::now();
    let ca = Ca::generate("prod", now).unwrap();
    let key = generate_agent_key().unwrap();
    let csr = make_csr(&key, "prod", "web-1").unwrap();
    let signed = ca
        .sign_agent_csr(&csr, "prod", "web-1", now, DEFAULT_AGENT_CERT_LIFETIME)
        .unwrap();
    let d = der(&signed.cert_pem);
    match host_identity(&d, "staging") {
        Err(PkiError::WrongFleet { expected, found }) => {
            assert_eq!(expected, "staging");
            assert_eq!(found, "prod");
        }
        other => panic!("expected WrongFleet, got {other:?}"),
    }
    let server = ca
        .issue_server(&["cp.example".into()], now, Duration::from_secs(60))
        .unwrap();
    assert!(matches!(
        host_identity(&der(&server.cert_pem), "prod"),
        Err(PkiError::MissingIdentity)
    ));
    assert!(matches!(
        host_identity(ca.cert_der(), "prod"),
        Err(PkiError::MissingIdentity)
    ));
    assert!(matches!(
        host_identity(b"not der", "prod"),
        Err(PkiError::Parse { .. })
    ));
}

#[test]
fn host_identity_rejects_malformed_uri() {
    // Hand-build certificates with bad SPIFFE URIs via rcgen.
    for uri in [
        "spiffe://prod/node/web-1",
        "spiffe://prod/host/WEB",
        "spiffe://prod/host/",
        "spiffe://prod",
    ] {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::default();
        params.subject_alt_names = vec![rcgen::SanType::URI(uri.try_into().unwrap())];
        let cert = params.self_signed(&key).unwrap();
        assert!(
            matches!(
                host_identity(cert.der(), "prod"),
                Err(PkiError::MalformedIdentity { .. })
            ),
            "{uri} should be malformed"
        );
    }
    // Two SPIFFE URIs: ambiguous.
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::default();
    params.subject_alt_names = vec![
        rcgen::SanType::URI("spiffe://prod/host/a".try_into().unwrap()),
        rcgen::SanType::URI("spiffe://prod/host/b".try_into().unwrap()),
    ];
    let cert = params.self_signed(&key).unwrap();
    assert!(matches!(
        host_identity(cert.der(), "prod"),
        Err(PkiError::AmbiguousIdentity(2))
    ));
}

fn base64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::new();
    for c in data.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                s.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}
