//! The HTTPS client the operator tools use to reach the control plane's API:
//! reqwest over rustls, trusting exactly the fleet CA it is given (never the
//! built-in web roots), so a server certificate from any other CA fails the
//! handshake. Used by the `convoy` CLI and by `convoy-control-plane backup`
//! (which downloads through the running daemon's API).

use thiserror::Error;

/// Why no client could be built from a CA certificate.
#[derive(Debug, Error)]
pub enum CaError {
    #[error("no CERTIFICATE block")]
    NoCertificate,
    #[error("reading the PEM")]
    Pem(#[source] reqwest::Error),
    #[error("building the TLS client")]
    Build(#[source] reqwest::Error),
}

/// A client that trusts only the certificates in `ca_pem` (every
/// `CERTIFICATE` block in it; usually the one fleet CA). Timeouts are the
/// caller's, per request.
pub fn client(ca_pem: &str) -> Result<reqwest::Client, CaError> {
    let certs = reqwest::Certificate::from_pem_bundle(ca_pem.as_bytes()).map_err(CaError::Pem)?;
    if certs.is_empty() {
        return Err(CaError::NoCertificate);
    }
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .https_only(true);
    for c in certs {
        builder = builder.add_root_certificate(c);
    }
    builder.build().map_err(CaError::Build)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    struct Ca {
        pem: String,
        issuer: Issuer<'static, KeyPair>,
    }

    fn ca(name: &str) -> Ca {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name
            .push(rcgen::DnType::CommonName, name.to_owned());
        let key = KeyPair::generate().unwrap();
        let cert = p.self_signed(&key).unwrap();
        Ca {
            pem: cert.pem(),
            issuer: Issuer::new(p, key),
        }
    }

    /// A TLS server on 127.0.0.1 with a certificate from `ca`, answering
    /// each connection with `200 ok`.
    async fn serve(ca: &Ca) -> std::net::SocketAddr {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec!["127.0.0.1".to_owned()])
            .unwrap()
            .signed_by(&key, &ca.issuer)
            .unwrap();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
        )
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let mut buf = [0u8; 4096];
                    let _ = tls.read(&mut buf).await;
                    let _ = tls
                        .write_all(
                            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                        )
                        .await;
                    let _ = tls.shutdown().await;
                });
            }
        });
        addr
    }

    #[tokio::test]
    async fn trusts_the_given_ca_and_no_other() {
        let fleet = ca("fleet");
        let other = ca("other");
        let addr = serve(&fleet).await;
        let url = format!("https://{addr}/");

        let ok = client(&fleet.pem).unwrap();
        let body = ok.get(&url).send().await.unwrap().text().await.unwrap();
        assert_eq!(body, "ok");

        // Another CA (and, with it, no web roots) fails the handshake.
        let stranger = client(&other.pem).unwrap();
        let err = stranger.get(&url).send().await.unwrap_err();
        assert!(err.is_connect(), "{err:?}");
    }

    #[test]
    fn refuses_a_pem_without_a_certificate() {
        assert!(matches!(client(""), Err(CaError::NoCertificate)));
        assert!(matches!(
            client("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"),
            Err(CaError::NoCertificate)
        ));
    }

    #[tokio::test]
    async fn refuses_plain_http() {
        let fleet = ca("fleet");
        let err = client(&fleet.pem)
            .unwrap()
            .get("http://127.0.0.1:1/")
            .send()
            .await
            .unwrap_err();
        assert!(err.is_builder(), "{err:?}");
    }
}
