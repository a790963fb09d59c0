//! The per-stack health gate and the HTTP/TCP probes.
//!
//! A stack passes when every service is running (not restarting), Docker
//! health is `healthy` where a healthcheck is defined, and every probe
//! passes, continuously for `min_healthy`, within `deadline`. An exit (other
//! than a one-shot's exit 0), a restart or an `unhealthy` fails it at once.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use convoy_shared::fleet::{Probe, ProbeCheck};
use convoy_shared::render::RenderedStack;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::plan::{LABEL_MANAGED, LABEL_STACK, oneshots};
use crate::report::GateFailure;
use crate::runtime::{ContainerInfo, ContainerState, Health, LABEL_SERVICE, LabelFilter, Runtime};

/// How often the gate looks.
pub const POLL: Duration = Duration::from_millis(500);

/// One look at a stack: `Ok(None)` all good, `Ok(Some(why))` not (yet)
/// healthy, `Err` failed for good.
fn assess(
    stack: &RenderedStack,
    containers: &[ContainerInfo],
    baseline: &BTreeMap<String, u64>,
    shots: &BTreeSet<String>,
) -> Result<Option<GateFailure>, GateFailure> {
    let mut waiting = None;
    for (service, svc) in &stack.compose.services {
        let Some(c) = containers
            .iter()
            .find(|c| c.labels.get(LABEL_SERVICE) == Some(service))
        else {
            return Err(GateFailure {
                service: service.clone(),
                container: None,
                reason: format!("service {service} has no container"),
            });
        };
        let fail = |reason: String| GateFailure {
            service: service.clone(),
            container: Some(c.id.clone()),
            reason,
        };
        let before = baseline.get(&c.id).copied().unwrap_or(0);
        if c.restart_count > before {
            return Err(fail(format!(
                "service {service} restarted ({} restarts)",
                c.restart_count - before
            )));
        }
        match &c.state {
            ContainerState::Running => {}
            ContainerState::Exited | ContainerState::Dead => {
                if shots.contains(service) && c.exit_code == Some(0) {
                    continue;
                }
                return Err(fail(format!(
                    "service {service} exited with code {}",
                    c.exit_code.unwrap_or(-1)
                )));
            }
            ContainerState::Restarting => {
                return Err(fail(format!("service {service} is restarting")));
            }
            other => {
                waiting.get_or_insert(fail(format!("service {service} is {other:?}")));
                continue;
            }
        }
        let has_check = svc
            .healthcheck
            .as_ref()
            .is_some_and(|h| !h.disable && h.test.first().is_none_or(|t| t != "NONE"));
        match c.health {
            Some(Health::Unhealthy) => {
                return Err(fail(format!("service {service} is unhealthy")));
            }
            Some(Health::Starting) => {
                waiting.get_or_insert(fail(format!("service {service} health is starting")));
            }
            None if has_check => {
                waiting.get_or_insert(fail(format!("service {service} has no health yet")));
            }
            _ => {}
        }
    }
    Ok(waiting)
}

/// Runs one probe attempt.
pub async fn probe(p: &Probe) -> Result<(), String> {
    let attempt = async {
        match &p.check {
            ProbeCheck::Tcp { address } => TcpStream::connect(address.as_str())
                .await
                .map(|_| ())
                .map_err(|e| format!("tcp {address}: {e}")),
            ProbeCheck::Http { url } => http_get(url).await,
        }
    };
    tokio::time::timeout(p.timeout, attempt)
        .await
        .map_err(|_| format!("probe timed out after {:?}", p.timeout))?
}

/// A minimal HTTP/1.0 GET: healthy on a 2xx/3xx status. Only `http://`.
async fn http_get(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{url}: only http:// probes are supported"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let addr = if authority.contains(':') {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    let mut s = TcpStream::connect(&addr)
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    let req = format!(
        "GET {path} HTTP/1.0\r\nHost: {authority}\r\nConnection: close\r\nUser-Agent: convoy-agent\r\n\r\n"
    );
    s.write_all(req.as_bytes())
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    let mut buf = Vec::with_capacity(64);
    let mut chunk = [0u8; 256];
    while !buf.contains(&b'\n') && buf.len() < 1024 {
        let n = s
            .read(&mut chunk)
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let line = String::from_utf8_lossy(&buf);
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("{url}: not an HTTP answer"))?;
    if (200..400).contains(&status) {
        Ok(())
    } else {
        Err(format!("{url}: HTTP {status}"))
    }
}

/// Lists the containers of a stack (managed objects only).
pub async fn stack_containers(
    runtime: &dyn Runtime,
    stack: &str,
) -> crate::runtime::RuntimeResult<Vec<ContainerInfo>> {
    runtime
        .list_containers(
            &LabelFilter::new()
                .label(LABEL_MANAGED, "true")
                .label(LABEL_STACK, stack),
        )
        .await
}

/// What the gate needs from its caller besides the stack: when the window
/// started and how to tell it to stop early.
pub struct GateContext<'a> {
    pub started: Instant,
    /// Returns true when the gate must stop (superseded, shutting down).
    pub cancelled: &'a (dyn Fn() -> bool + Send + Sync),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GateOutcome {
    Healthy,
    Failed(GateFailure),
    Cancelled,
}

/// Watches `stack` until it is healthy for `min_healthy`, fails, passes its
/// deadline (counted from `ctx.started`), or is cancelled.
pub async fn gate(
    runtime: &dyn Runtime,
    stack: &RenderedStack,
    ctx: GateContext<'_>,
) -> GateOutcome {
    let shots = oneshots(&stack.compose);
    let deadline = ctx.started + stack.health.deadline;
    let mut baseline: Option<BTreeMap<String, u64>> = None;
    let mut healthy_since: Option<Instant> = None;
    let mut last_wait: Option<GateFailure> = None;
    loop {
        if (ctx.cancelled)() {
            return GateOutcome::Cancelled;
        }
        let now = Instant::now();
        let verdict = match stack_containers(runtime, &stack.name).await {
            Err(e) => Ok(Some(GateFailure {
                service: String::new(),
                container: None,
                reason: format!("cannot list containers: {e}"),
            })),
            Ok(cs) => {
                let base = baseline.get_or_insert_with(|| {
                    cs.iter().map(|c| (c.id.clone(), c.restart_count)).collect()
                });
                match assess(stack, &cs, base, &shots) {
                    Ok(None) => {
                        let mut failed = None;
                        for p in &stack.health.probes {
                            if let Err(why) = probe(p).await {
                                let container = cs
                                    .iter()
                                    .find(|c| c.labels.get(LABEL_SERVICE) == Some(&p.service))
                                    .map(|c| c.id.clone());
                                failed = Some(GateFailure {
                                    service: p.service.clone(),
                                    container,
                                    reason: format!("probe failed: {why}"),
                                });
                                break;
                            }
                        }
                        Ok(failed)
                    }
                    other => other,
                }
            }
        };
        match verdict {
            Err(f) => return GateOutcome::Failed(f),
            Ok(None) => {
                let since = *healthy_since.get_or_insert(now);
                if now.duration_since(since) >= stack.health.min_healthy {
                    return GateOutcome::Healthy;
                }
            }
            Ok(Some(w)) => {
                healthy_since = None;
                last_wait = Some(w);
            }
        }
        if healthy_since.is_none() && Instant::now() >= deadline {
            let mut f = last_wait.unwrap_or_else(|| GateFailure {
                service: String::new(),
                container: None,
                reason: String::new(),
            });
            f.reason = format!(
                "not healthy for {:?} within the {:?} deadline (last: {})",
                stack.health.min_healthy, stack.health.deadline, f.reason
            );
            return GateOutcome::Failed(f);
        }
        tokio::time::sleep(POLL).await;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    async fn serve(status: &'static str) -> String {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let mut buf = [0u8; 512];
                let _ = s.read(&mut buf).await;
                let _ = s
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
        let ok = serve("200 OK").await;
        let bad = serve("503 Service Unavailable").await;
        assert!(
            probe(&p(ProbeCheck::Http {
                url: format!("http://{ok}/health")
            }))
            .await
            .is_ok()
        );
        let e = probe(&p(ProbeCheck::Http {
            url: format!("http://{bad}/"),
        }))
        .await
        .unwrap_err();
        assert!(e.contains("503"), "{e}");
        assert!(
            probe(&p(ProbeCheck::Tcp {
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
            probe(&p(ProbeCheck::Tcp { address: closed }))
                .await
                .is_err()
        );
        assert!(
            probe(&p(ProbeCheck::Http {
                url: "https://x/".into()
            }))
            .await
            .is_err()
        );
    }
}
