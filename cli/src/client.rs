//! HTTPS client for the operator API, used by the `convoy` CLI.
//!
//! reqwest over rustls through [`convoy_kit::https::client`], which trusts
//! only the fleet CA given. Every request is bounded in time (30 s, connect
//! included) and its answer in size (16 MiB).

use std::time::Duration;

use reqwest::{Method, StatusCode};
use thiserror::Error;

/// Largest answer the CLI reads (a host list of thousands fits easily).
const MAX_ANSWER: usize = 16 * 1024 * 1024;
/// Connect + TLS + request + answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Error)]
pub enum ClientError {
    #[error("invalid API URL {0:?}: use https://HOST:PORT")]
    BadUrl(String),
    #[error("CA certificate {path}")]
    Ca {
        path: String,
        #[source]
        source: convoy_kit::https::CaError,
    },
    /// TCP or TLS failed; `cause` is the innermost error (`Connection
    /// refused`, `invalid peer certificate: UnknownIssuer`), not reqwest's
    /// whole chain of wrappers.
    #[error("connecting to {addr}: {cause}")]
    Connect { addr: String, cause: String },
    #[error("HTTP")]
    Http(#[source] reqwest::Error),
    #[error("request timed out after 30s")]
    Timeout,
    #[error("answer larger than {MAX_ANSWER} bytes")]
    TooLarge,
    #[error("{status}: {message}")]
    Api { status: StatusCode, message: String },
    #[error("decoding the answer: {0}")]
    Decode(String),
}

/// An API client.
#[derive(Clone)]
pub struct ApiClient {
    base: reqwest::Url,
    token: Option<String>,
    http: reqwest::Client,
}

impl std::fmt::Debug for ApiClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiClient")
            .field("base", &self.base.as_str())
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
        let url = parse_base(base)?;
        let http = convoy_kit::https::client(ca_pem).map_err(|source| ClientError::Ca {
            path: ca_path.to_owned(),
            source,
        })?;
        Ok(ApiClient {
            base: url,
            token,
            http,
        })
    }

    /// Sends a request; returns the JSON answer or the API's error.
    pub async fn request(
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
            return Err(ClientError::Api {
                status,
                message: api_message(&value),
            });
        }
        Ok(value)
    }

    /// `GET path` for a text answer (`/metrics`); a non-success status is
    /// an error.
    pub async fn get_text(&self, path: &str) -> Result<String, ClientError> {
        let (status, body) = self.send(Method::GET, path, None, "text/plain").await?;
        if !status.is_success() {
            let message = serde_json::from_slice::<serde_json::Value>(&body)
                .map(|v| api_message(&v))
                .unwrap_or_else(|_| "request failed".to_owned());
            return Err(ClientError::Api { status, message });
        }
        String::from_utf8(body).map_err(|e| ClientError::Decode(e.to_string()))
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
        accept: &'static str,
    ) -> Result<(StatusCode, Vec<u8>), ClientError> {
        let url = self
            .base
            .join(path)
            .map_err(|_| ClientError::BadUrl(format!("{}{path}", self.base)))?;
        let mut req = self
            .http
            .request(method, url)
            .timeout(REQUEST_TIMEOUT)
            .header(reqwest::header::ACCEPT, accept);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = &body {
            req = req.json(b);
        }
        let mut resp = req.send().await.map_err(|e| self.error(e))?;
        let status = resp.status();
        let mut out = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| self.error(e))? {
            if out.len() + chunk.len() > MAX_ANSWER {
                return Err(ClientError::TooLarge);
            }
            out.extend_from_slice(&chunk);
        }
        Ok((status, out))
    }

    fn error(&self, e: reqwest::Error) -> ClientError {
        if e.is_timeout() {
            ClientError::Timeout
        } else if e.is_connect() {
            ClientError::Connect {
                addr: format!(
                    "{}:{}",
                    self.base.host_str().unwrap_or("?"),
                    self.base.port_or_known_default().unwrap_or(443)
                ),
                cause: innermost(&e),
            }
        } else {
            ClientError::Http(e)
        }
    }
}

/// Checks an API address: `https://HOST[:PORT]`.
pub fn parse_base(base: &str) -> Result<reqwest::Url, ClientError> {
    let bad = || ClientError::BadUrl(base.to_owned());
    let url = reqwest::Url::parse(base).map_err(|_| bad())?;
    if url.scheme() != "https" || url.host_str().is_none() {
        return Err(bad());
    }
    Ok(url)
}

/// The last error of a source chain, as text.
fn innermost(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

/// The message of the API's error body (`{"error": {"message": ...}}`).
fn api_message(v: &serde_json::Value) -> String {
    v.pointer("/error/message")
        .and_then(|m| m.as_str())
        .unwrap_or("request failed")
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_urls_with_a_host_are_accepted() {
        for bad in ["http://127.0.0.1:8443", "127.0.0.1:8443", "https://", ""] {
            assert!(
                matches!(
                    ApiClient::new(bad, None, "", "ca.pem"),
                    Err(ClientError::BadUrl(_))
                ),
                "{bad}"
            );
        }
        // A good URL with an unusable CA names the CA file.
        let e = ApiClient::new("https://127.0.0.1:8443", None, "", "ca.pem").unwrap_err();
        assert!(
            matches!(e, ClientError::Ca { ref path, .. } if path == "ca.pem"),
            "{e}"
        );
    }
}
