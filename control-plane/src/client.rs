//! HTTPS client for the operator API, used by the `convoy` CLI.
//!
//! hyper (HTTP/1.1) over tokio-rustls, both already in the dependency tree
//! through tonic and the API server: reqwest would add a second HTTP stack
//! and its own rustls/provider feature matrix for the three requests the
//! CLI makes. One connection per request; the CLI is short-lived.

use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::{Method, Request, StatusCode, Uri};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use thiserror::Error;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// Largest answer the CLI reads (a host list of thousands fits easily).
const MAX_ANSWER: usize = 16 * 1024 * 1024;
/// Connect + TLS + request + answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Error)]
pub enum ClientError {
    #[error("invalid API URL {0:?}: use https://HOST:PORT")]
    BadUrl(String),
    #[error("CA certificate {path}: {detail}")]
    Ca { path: String, detail: String },
    #[error("connecting to {addr}")]
    Connect {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("HTTP: {0}")]
    Http(String),
    #[error("request timed out after 30s")]
    Timeout,
    #[error("{status}: {message}")]
    Api { status: StatusCode, message: String },
    #[error("decoding the answer: {0}")]
    Decode(String),
}

/// An API client.
#[derive(Clone)]
pub struct ApiClient {
    host: String,
    port: u16,
    token: Option<String>,
    tls: Arc<rustls::ClientConfig>,
}

impl std::fmt::Debug for ApiClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiClient")
            .field("host", &self.host)
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

impl ApiClient {
    /// `base`: `https://HOST[:PORT]`; `ca_pem`: the CA that signed the
    /// server certificate (the fleet CA), the only one trusted.
    pub fn new(
        base: &str,
        token: Option<String>,
        ca_pem: &str,
        ca_path: &str,
    ) -> Result<ApiClient, ClientError> {
        let uri: Uri = base
            .parse()
            .map_err(|_| ClientError::BadUrl(base.to_owned()))?;
        if uri.scheme_str() != Some("https") {
            return Err(ClientError::BadUrl(base.to_owned()));
        }
        let host = uri
            .host()
            .ok_or_else(|| ClientError::BadUrl(base.to_owned()))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = uri.port_u16().unwrap_or(443);
        let ca_err = |detail: String| ClientError::Ca {
            path: ca_path.to_owned(),
            detail,
        };
        let mut roots = rustls::RootCertStore::empty();
        let mut n = 0;
        for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
            let c = c.map_err(|e| ca_err(e.to_string()))?;
            roots.add(c).map_err(|e| ca_err(e.to_string()))?;
            n += 1;
        }
        if n == 0 {
            return Err(ca_err("no CERTIFICATE block".into()));
        }
        let mut tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| ClientError::Http(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(ApiClient {
            host,
            port,
            token,
            tls: Arc::new(tls),
        })
    }

    /// Sends a request; returns the JSON answer or the API's error.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<serde_json::Value, ClientError> {
        tokio::time::timeout(REQUEST_TIMEOUT, self.request_inner(method, path, body))
            .await
            .map_err(|_| ClientError::Timeout)?
    }

    /// `GET path` for a text answer (`/metrics`); a non-success status is
    /// an error.
    pub async fn get_text(&self, path: &str) -> Result<String, ClientError> {
        let (status, body) = tokio::time::timeout(
            REQUEST_TIMEOUT,
            self.send(Method::GET, path, None, "text/plain"),
        )
        .await
        .map_err(|_| ClientError::Timeout)??;
        if !status.is_success() {
            let message = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| {
                    v.pointer("/error/message")
                        .and_then(|m| m.as_str())
                        .map(str::to_owned)
                })
                .unwrap_or_else(|| "request failed".to_owned());
            return Err(ClientError::Api { status, message });
        }
        String::from_utf8(body.to_vec()).map_err(|e| ClientError::Decode(e.to_string()))
    }

    async fn request_inner(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<serde_json::Value, ClientError> {
        let (status, body) = self.send(method, path, body, "application/json").await?;
        let value: serde_json::Value = serde_json::from_slice(&body).map_err(|e| {
            ClientError::Decode(format!("{status}: {e}: {}", String::from_utf8_lossy(&body)))
        })?;
        if !status.is_success() {
            let message = value
                .pointer("/error/message")
                .and_then(|m| m.as_str())
                .unwrap_or("request failed")
                .to_owned();
            return Err(ClientError::Api { status, message });
        }
        Ok(value)
    }

    /// One HTTPS/1.1 connection to the API (each request opens its own:
    /// the CLI makes one or a few).
    async fn connect(
        &self,
    ) -> Result<hyper::client::conn::http1::SendRequest<Full<Bytes>>, ClientError> {
        let addr = format!("{}:{}", self.host, self.port);
        let tcp = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|source| ClientError::Connect {
                addr: addr.clone(),
                source,
            })?;
        let name = ServerName::try_from(self.host.clone())
            .map_err(|_| ClientError::BadUrl(self.host.clone()))?;
        let tls = TlsConnector::from(self.tls.clone())
            .connect(name, tcp)
            .await
            .map_err(|source| ClientError::Connect { addr, source })?;
        let (sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
                .await
                .map_err(|e| ClientError::Http(e.to_string()))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(sender)
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
        accept: &'static str,
    ) -> Result<(hyper::StatusCode, Bytes), ClientError> {
        let mut sender = self.connect().await?;
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, format!("{}:{}", self.host, self.port))
            .header(hyper::header::ACCEPT, accept);
        if let Some(t) = &self.token {
            req = req.header(hyper::header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let bytes = match &body {
            Some(b) => {
                req = req.header(hyper::header::CONTENT_TYPE, "application/json");
                Bytes::from(serde_json::to_vec(b).map_err(|e| ClientError::Decode(e.to_string()))?)
            }
            None => Bytes::new(),
        };
        let req = req
            .body(Full::new(bytes))
            .map_err(|e| ClientError::Http(e.to_string()))?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| ClientError::Http(e.to_string()))?;
        let status = resp.status();
        let body = Limited::new(resp.into_body(), MAX_ANSWER)
            .collect()
            .await
            .map_err(|e| ClientError::Http(e.to_string()))?
            .to_bytes();
        Ok((status, body))
    }

    /// `POST path` and streams the (binary) answer into `out`; for
    /// `POST /api/v1/backup`. Returns the number of bytes written. Bounded
    /// only by the time limit `timeout`, not by size: backups are large.
    pub async fn download(
        &self,
        path: &str,
        out: &mut (impl tokio::io::AsyncWrite + Unpin),
        timeout: Duration,
    ) -> Result<u64, ClientError> {
        tokio::time::timeout(timeout, self.download_inner(path, out))
            .await
            .map_err(|_| ClientError::Timeout)?
    }

    async fn download_inner(
        &self,
        path: &str,
        out: &mut (impl tokio::io::AsyncWrite + Unpin),
    ) -> Result<u64, ClientError> {
        use tokio::io::AsyncWriteExt;
        let mut sender = self.connect().await?;
        let mut req = Request::builder()
            .method(Method::POST)
            .uri(path)
            .header(hyper::header::HOST, format!("{}:{}", self.host, self.port));
        if let Some(t) = &self.token {
            req = req.header(hyper::header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let req = req
            .body(Full::new(Bytes::new()))
            .map_err(|e| ClientError::Http(e.to_string()))?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| ClientError::Http(e.to_string()))?;
        let status = resp.status();
        let mut body = resp.into_body();
        if !status.is_success() {
            let bytes = Limited::new(body, MAX_ANSWER)
                .collect()
                .await
                .map_err(|e| ClientError::Http(e.to_string()))?
                .to_bytes();
            let message = serde_json::from_slice::<serde_json::Value>(&bytes)
                .ok()
                .and_then(|v| v.pointer("/error/message")?.as_str().map(str::to_owned))
                .unwrap_or_else(|| "request failed".into());
            return Err(ClientError::Api { status, message });
        }
        let mut n = 0u64;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| ClientError::Http(e.to_string()))?;
            if let Some(data) = frame.data_ref() {
                out.write_all(data)
                    .await
                    .map_err(|e| ClientError::Http(format!("writing the answer: {e}")))?;
                n += data.len() as u64;
            }
        }
        out.flush()
            .await
            .map_err(|e| ClientError::Http(format!("writing the answer: {e}")))?;
        Ok(n)
    }
}
