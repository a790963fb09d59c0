//! The stack's HTTP and TCP probes (`[stacks.X.health] probes`).
//!
//! HTTP goes through `reqwest`: healthy on a 2xx or 3xx answer (redirects
//! are not followed: a 3xx is the service answering), no proxy from the
//! environment (probes target the host itself), a fresh connection each
//! time (a pooled keep-alive connection could outlive the listener it
//! proves). Only `http://` for now: `https://` needs a trust decision
//! (system store, CA file, `insecure`) that the probe config does not carry
//! yet, so it is refused rather than trusted by default.

use std::time::Duration;

use convoy_shared::fleet::{Probe, ProbeCheck};
use tokio::net::TcpStream;

/// Runs probes. Cheap to clone (the HTTP client is shared).
#[derive(Debug, Clone)]
pub struct Prober {
    http: reqwest::Client,
}

impl Prober {
    pub fn new() -> Result<Prober, reqwest::Error> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .pool_max_idle_per_host(0)
            .user_agent("convoy-agent")
            .build()?;
        Ok(Prober { http })
    }

    /// One attempt, bounded by the probe's timeout.
    pub async fn probe(&self, p: &Probe) -> Result<(), String> {
        let attempt = async {
            match &p.check {
                ProbeCheck::Tcp { address } => TcpStream::connect(address.as_str())
                    .await
                    .map(|_| ())
                    .map_err(|e| format!("tcp {address}: {e}")),
                ProbeCheck::Http { url } => self.http_get(url, p.timeout).await,
            }
        };
        tokio::time::timeout(p.timeout, attempt)
            .await
            .map_err(|_| format!("probe timed out after {:?}", p.timeout))?
    }

    async fn http_get(&self, url: &str, timeout: Duration) -> Result<(), String> {
        if !url.starts_with("http://") {
            return Err(format!("{url}: only http:// probes are supported"));
        }
        let answer = self
            .http
            .get(url)
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| format!("{url}: {}", convoy_kit::error_chain(&e)))?;
        let status = answer.status();
        if status.is_success() || status.is_redirection() {
            Ok(())
        } else {
            Err(format!("{url}: HTTP {}", status.as_u16()))
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// A real HTTP/1.0 server answering every request with `status`.
    async fn serve(status: &'static str) -> String {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let mut buf = [0u8; 512];
                let _read = s.read(&mut buf).await;
                let _written = s
                    .write_all(format!("HTTP/1.0 {status}\r\nContent-Length: 0\r\n\r\n").as_bytes())
                    .await;
            }
        });
        addr
    }

    fn p(check: ProbeCheck) -> Probe {
        Probe {
            service: "web".into(),
            check,
            timeout: Duration::from_secs(2),
        }
    }

    #[tokio::test]
    async fn http_and_tcp_probes() {
        let prober = Prober::new().unwrap();
        let ok = serve("200 OK").await;
        let moved = serve("302 Found").await;
        let bad = serve("503 Service Unavailable").await;
        assert!(
            prober
                .probe(&p(ProbeCheck::Http {
                    url: format!("http://{ok}/health")
                }))
                .await
                .is_ok()
        );
        assert!(
            prober
                .probe(&p(ProbeCheck::Http {
                    url: format!("http://{moved}/")
                }))
                .await
                .is_ok(),
            "a 3xx is healthy"
        );
        let e = prober
            .probe(&p(ProbeCheck::Http {
                url: format!("http://{bad}/"),
            }))
            .await
            .unwrap_err();
        assert!(e.contains("503"), "{e}");
        assert!(
            prober
                .probe(&p(ProbeCheck::Tcp {
                    address: ok.clone()
                }))
                .await
                .is_ok()
        );
        // A port nobody listens on.
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let closed = l.local_addr().unwrap().to_string();
        drop(l);
        assert!(
            prober
                .probe(&p(ProbeCheck::Tcp {
                    address: closed.clone()
                }))
                .await
                .is_err()
        );
        assert!(
            prober
                .probe(&p(ProbeCheck::Http {
                    url: format!("http://{closed}/")
                }))
                .await
                .is_err()
        );
        assert!(
            prober
                .probe(&p(ProbeCheck::Http {
                    url: "https://x/".into()
                }))
                .await
                .is_err()
        );
    }

    #[tokio::test]
    async fn a_silent_server_times_out() {
        // Accepts and never answers.
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = l.accept().await {
                held.push(s);
            }
        });
        let mut probe = p(ProbeCheck::Http {
            url: format!("http://{addr}/"),
        });
        probe.timeout = Duration::from_millis(300);
        let t = std::time::Instant::now();
        let e = Prober::new().unwrap().probe(&probe).await.unwrap_err();
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
        assert!(e.contains("timed out") || e.contains("timeout"), "{e}");
    }
}
