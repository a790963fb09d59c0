//! rustls configurations for the control plane (server) and agents (client).
//!
//! Both use the ring provider explicitly, never the process-wide default.

use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};

use crate::error::{PkiError, Result};

/// The only ALPN protocol we speak (gRPC over HTTP/2).
pub const ALPN_H2: &[u8] = b"h2";

/// Server config presenting `server_cert_pem` (leaf first, then any
/// intermediates). Client certificates signed by our CA are requested and
/// verified if presented, but a client without one is still let in:
/// `Enroll` works without a client cert, and the gRPC layer requires one
/// for every other call.
pub fn server_config(
    ca_cert_der: &[u8],
    server_cert_pem: &str,
    server_key_pem: &str,
) -> Result<ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let roots = Arc::new(roots(ca_cert_der)?);
    let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider.clone())
        .allow_unauthenticated()
        .build()
        .map_err(|e| PkiError::Tls(format!("client verifier: {e}")))?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| PkiError::Tls(format!("protocol versions: {e}")))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            certs(server_cert_pem, "server certificate")?,
            key(server_key_pem, "server key")?,
        )
        .map_err(|e| PkiError::Tls(format!("server certificate/key: {e}")))?;
    config.alpn_protocols = vec![ALPN_H2.to_vec()];
    Ok(config)
}

/// Client config trusting only our CA, optionally presenting a client
/// certificate `(cert_pem, key_pem)`.
pub fn client_config(
    ca_cert_der: &[u8],
    client_cert: Option<(&str, &str)>,
) -> Result<ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let roots = Arc::new(roots(ca_cert_der)?);
    let verifier = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
        .build()
        .map_err(|e| PkiError::Tls(format!("server verifier: {e}")))?;
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| PkiError::Tls(format!("protocol versions: {e}")))?
        .with_webpki_verifier(verifier);
    let mut config = match client_cert {
        Some((cert_pem, key_pem)) => builder
            .with_client_auth_cert(
                certs(cert_pem, "client certificate")?,
                key(key_pem, "client key")?,
            )
            .map_err(|e| PkiError::Tls(format!("client certificate/key: {e}")))?,
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![ALPN_H2.to_vec()];
    Ok(config)
}

fn roots(ca_cert_der: &[u8]) -> Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from(ca_cert_der.to_vec()))
        .map_err(|e| PkiError::Tls(format!("CA certificate as trust anchor: {e}")))?;
    Ok(roots)
}

fn certs(pem: &str, what: &'static str) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| PkiError::Pem {
            what,
            detail: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(PkiError::Pem {
            what,
            detail: "no CERTIFICATE block".into(),
        });
    }
    Ok(certs)
}

fn key(pem: &str, what: &'static str) -> Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|e| PkiError::Pem {
        what,
        detail: e.to_string(),
    })
}
