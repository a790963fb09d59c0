//! `convoy-agent enroll`: key on the host, CSR, join token → certificate.

use std::sync::Arc;

use convoy_pki::{generate_agent_key, make_csr, parse_token, sha256_fingerprint};
use convoy_shared::proto::EnrollRequest;
use convoy_shared::proto::agent_service_client::AgentServiceClient;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use convoy_kit::fsx::write_atomic;

use super::files::{AgentDir, Enrollment};
use super::{StreamError, facts, tls};

/// What enrollment produced.
#[derive(Debug, Clone)]
pub struct Enrolled {
    pub host: String,
    pub fleet: String,
}

/// Enrolls this host: makes a key (0600) in `dir`, sends a CSR with the
/// token over a connection that pins the CA by the token's fingerprint,
/// saves the certificate and the CA.
pub async fn enroll(server: &str, token: &str, dir: &AgentDir) -> Result<Enrolled, StreamError> {
    let parsed = parse_token(token).map_err(|e| StreamError::Token(e.to_string()))?;
    if dir.cert().exists() {
        return Err(StreamError::AlreadyEnrolled(dir.root.clone()));
    }
    tls::split_server(server)?;
    dir.create()?;
    let key_pem = generate_agent_key().map_err(|e| StreamError::Pki(e.to_string()))?;
    write_atomic(&dir.key(), key_pem.as_bytes(), 0o600)
        .map_err(StreamError::io("writing", &dir.key()))?;
    // The CA ignores the CSR's names (the token decides); these are
    // placeholders that pass validation.
    let csr =
        make_csr(&key_pem, "enrolling", "agent").map_err(|e| StreamError::Pki(e.to_string()))?;
    let cfg = tls::enroll_config(&parsed.ca_fingerprint)?;
    let channel = tls::channel(server, Arc::new(cfg)).await?;
    let mut client = AgentServiceClient::new(channel)
        .max_decoding_message_size(convoy_shared::limits::MAX_MESSAGE_BYTES);
    let resp = client
        .enroll(EnrollRequest {
            // Only id and secret: the server does not need the CA hash.
            token: format!(
                "{}.{}.{}",
                convoy_pki::TOKEN_PREFIX,
                parsed.id,
                parsed.secret
            ),
            csr_pem: csr,
            agent_version: env!("CARGO_PKG_VERSION").to_owned(),
            facts: Some(facts::host_facts()),
        })
        .await
        .map_err(|s| StreamError::Refused {
            code: s.code(),
            message: s.message().to_owned(),
        })?
        .into_inner();
    // The CA we save must be the one we pinned.
    let ca_der = CertificateDer::pem_slice_iter(resp.ca_pem.as_bytes())
        .next()
        .ok_or_else(|| StreamError::Pki("EnrollResponse has no CA certificate".into()))?
        .map_err(|e| StreamError::Pki(format!("EnrollResponse CA: {e}")))?;
    if sha256_fingerprint(&ca_der) != parsed.ca_fingerprint {
        return Err(StreamError::Pki(
            "the CA in the enrollment answer does not match the join token's fingerprint".into(),
        ));
    }
    let cert_der = CertificateDer::from_pem_slice(resp.cert_pem.as_bytes())
        .map_err(|e| StreamError::Pki(format!("EnrollResponse certificate: {e}")))?;
    let id = convoy_pki::host_identity(&cert_der, &resp.fleet)
        .map_err(|e| StreamError::Pki(e.to_string()))?;
    write_atomic(&dir.ca(), resp.ca_pem.as_bytes(), 0o644)
        .map_err(StreamError::io("writing", &dir.ca()))?;
    let enrollment = Enrollment {
        server: server.to_owned(),
        host: id.host.clone(),
        fleet: resp.fleet.clone(),
    };
    let json =
        serde_json::to_vec_pretty(&enrollment).map_err(|e| StreamError::Pki(e.to_string()))?;
    write_atomic(&dir.enrollment(), &json, 0o644)
        .map_err(StreamError::io("writing", &dir.enrollment()))?;
    // Last: a cert.pem means "enrolled".
    write_atomic(&dir.cert(), resp.cert_pem.as_bytes(), 0o644)
        .map_err(StreamError::io("writing", &dir.cert()))?;
    tracing::info!(host = %id.host, fleet = %resp.fleet, "enrolled");
    Ok(Enrolled {
        host: id.host,
        fleet: resp.fleet,
    })
}
