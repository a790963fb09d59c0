//! TLS for the agent: the first-contact verifier that pins the CA by the
//! fingerprint in the join token, and the gRPC channel over our own
//! rustls connector (tonic's built-in TLS has no pinning hook).

use std::sync::Arc;
use std::time::Duration;

use convoy_pki::sha256_fingerprint;
use hyper_util::rt::TokioIo;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tonic::transport::{Channel, Endpoint};

use super::StreamError;

/// TCP connect + TLS handshake budget.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Accepts the server only if the chain it presents contains a CA
/// certificate whose SHA-256 is the pinned fingerprint, and the server's
/// certificate verifies against that CA (as the only trust anchor) for the
/// name we dialled.
#[derive(Debug)]
pub struct PinnedCaVerifier {
    fingerprint: String,
    provider: Arc<CryptoProvider>,
}

impl PinnedCaVerifier {
    pub fn new(fingerprint: &str) -> PinnedCaVerifier {
        PinnedCaVerifier {
            fingerprint: fingerprint.to_ascii_lowercase(),
            provider: Arc::new(rustls::crypto::ring::default_provider()),
        }
    }
}

impl ServerCertVerifier for PinnedCaVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let ca = intermediates
            .iter()
            .find(|c| sha256_fingerprint(c) == self.fingerprint)
            .ok_or_else(|| {
                rustls::Error::General(
                    "the server's chain has no CA matching the join token's fingerprint".into(),
                )
            })?;
        let mut roots = RootCertStore::empty();
        roots
            .add(ca.clone().into_owned())
            .map_err(|e| rustls::Error::General(format!("pinned CA: {e}")))?;
        let inner =
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), self.provider.clone())
                .build()
                .map_err(|e| rustls::Error::General(format!("pinned CA verifier: {e}")))?;
        let others: Vec<CertificateDer<'_>> = intermediates
            .iter()
            .filter(|c| sha256_fingerprint(c) != self.fingerprint)
            .cloned()
            .collect();
        inner.verify_server_cert(end_entity, &others, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Client config for enrollment: no client certificate, CA pinned by
/// fingerprint.
pub fn enroll_config(fingerprint: &str) -> Result<rustls::ClientConfig, StreamError> {
    let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| StreamError::Tls(e.to_string()))?
    .dangerous()
    .with_custom_certificate_verifier(Arc::new(PinnedCaVerifier::new(fingerprint)))
    .with_no_client_auth();
    cfg.alpn_protocols = vec![convoy_pki::ALPN_H2.to_vec()];
    Ok(cfg)
}

/// Splits `HOST:PORT` (IPv6 as `[::1]:7443`).
pub fn split_server(server: &str) -> Result<(String, u16), StreamError> {
    let bad = || StreamError::BadServer(server.to_owned());
    let (host, port) = server.rsplit_once(':').ok_or_else(bad)?;
    let port: u16 = port.parse().map_err(|_| bad())?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(bad());
    }
    Ok((host.to_owned(), port))
}

/// A gRPC channel to `server` over rustls with `tls`, connected now (so
/// connection errors show here, not at the first call).
pub async fn channel(server: &str, tls: Arc<rustls::ClientConfig>) -> Result<Channel, StreamError> {
    let (host, port) = split_server(server)?;
    let name = ServerName::try_from(host.clone())
        .map_err(|_| StreamError::BadServer(server.to_owned()))?;
    let connector = TlsConnector::from(tls);
    // The URI only feeds tonic's :authority; TLS is ours, hence http://.
    let endpoint = Endpoint::from_shared(format!("http://{}", authority(&host, port)))
        .map_err(|e| StreamError::BadServer(format!("{server}: {e}")))?
        .connect_timeout(CONNECT_TIMEOUT)
        // Dead-peer detection behind NAT (matches the server's 30 s).
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(10))
        .keep_alive_while_idle(true);
    let svc = tower::service_fn(move |_uri: tonic::transport::Uri| {
        let connector = connector.clone();
        let name = name.clone();
        let host = host.clone();
        async move {
            let tcp = TcpStream::connect((host.as_str(), port)).await?;
            let _ = tcp.set_nodelay(true);
            let tls = connector.connect(name, tcp).await?;
            Ok::<_, std::io::Error>(TokioIo::new(tls))
        }
    });
    tokio::time::timeout(CONNECT_TIMEOUT, endpoint.connect_with_connector(svc))
        .await
        .map_err(|_| StreamError::Timeout("connecting"))?
        .map_err(|e| StreamError::Connect(crate::stream::chain(&e)))
}

fn authority(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}
