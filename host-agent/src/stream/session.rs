//! One connection: Connect, Hello → Welcome, heartbeats, reports,
//! renewal, desired states — until the stream breaks or we are told to stop.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use convoy_pki::CLOCK_SKEW_ALLOWANCE;
use convoy_shared::proto::agent_message::Kind as Out;
use convoy_shared::proto::agent_service_client::AgentServiceClient;
use convoy_shared::proto::control_message::Kind as In;
use convoy_shared::proto::{AgentMessage, Heartbeat, Hello, RenewRequest};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;

use convoy_kit::fsx::write_atomic;

use super::files::{AgentDir, Enrollment};
use super::{AgentHooks, StreamError, facts, tls};
use crate::telemetry::TelemetryBuffer;

/// Outgoing messages buffered before the session waits (backpressure).
const OUT_QUEUE: usize = 32;
/// Welcome must arrive this soon after Hello.
const WELCOME_TIMEOUT: Duration = Duration::from_secs(30);
/// A renewal with no answer is retried after this long.
const RENEW_RETRY: Duration = Duration::from_secs(30);
/// How often the outbox is checked for new reports (a sled read).
const REPORT_POLL: Duration = Duration::from_millis(500);
/// Bounds on the heartbeat interval a server may ask for.
const MIN_HEARTBEAT: Duration = Duration::from_secs(1);
const MAX_HEARTBEAT: Duration = Duration::from_secs(3600);

/// How a session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEnd {
    /// We were told to stop.
    Stopped,
    /// The stream ended or broke; `welcomed_for`: how long it had been up
    /// after Welcome (None: never welcomed).
    Broken {
        reason: String,
        welcomed_for: Option<Duration>,
    },
    /// The control plane revoked this host.
    Revoked { reason: String },
}

/// Validity of a PEM certificate: (issued at, not after). "Issued at" is
/// not_before plus the CA's clock-skew allowance when that fits, since the
/// CA back-dates certificates by it.
pub fn cert_validity(cert_pem: &str) -> Result<(SystemTime, SystemTime), StreamError> {
    let der = CertificateDer::from_pem_slice(cert_pem.as_bytes())
        .map_err(|e| StreamError::Pki(format!("certificate: {e}")))?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der)
        .map_err(|e| StreamError::Pki(format!("certificate: {e}")))?;
    let t = convoy_kit::clock::from_unix_secs;
    let nb = t(cert.validity().not_before.timestamp());
    let na = t(cert.validity().not_after.timestamp());
    let issued = nb
        .checked_add(CLOCK_SKEW_ALLOWANCE)
        .filter(|i| *i < na)
        .unwrap_or(nb);
    Ok((issued, na))
}

/// Runs one connection to the end. With `telemetry`, every sample the
/// sampler pushes goes out in a [`convoy_shared::proto::TelemetryBatch`]
/// (the backlog first, at most `MAX_TELEMETRY_BATCH` samples a batch); a
/// batch that cannot be queued because the stream broke is put back.
pub async fn run_session<H: AgentHooks>(
    dir: &AgentDir,
    enrollment: &Enrollment,
    server: &str,
    hooks: &Arc<H>,
    telemetry: Option<&Arc<TelemetryBuffer>>,
    stop: &mut watch::Receiver<bool>,
) -> Result<SessionEnd, StreamError> {
    let creds = dir.load_credentials()?;
    let ca_der = CertificateDer::from_pem_slice(creds.ca_pem.as_bytes())
        .map_err(|e| StreamError::Pki(format!("ca.pem: {e}")))?;
    let tls_cfg = convoy_pki::client_config(
        &ca_der,
        Some((creds.cert_pem.as_str(), creds.key_pem.as_str())),
    )
    .map_err(|e| StreamError::Tls(e.to_string()))?;
    let channel = tls::channel(server, Arc::new(tls_cfg)).await?;
    let mut client = AgentServiceClient::new(channel)
        .max_decoding_message_size(convoy_shared::limits::MAX_MESSAGE_BYTES)
        .max_encoding_message_size(convoy_shared::limits::MAX_MESSAGE_BYTES);

    let (out, out_rx) = mpsc::channel::<AgentMessage>(OUT_QUEUE);
    let msg = |k: Out| AgentMessage { kind: Some(k) };
    out.send(msg(Out::Hello(Hello {
        protocol_version: convoy_shared::proto::PROTOCOL_VERSION,
        agent_version: env!("CARGO_PKG_VERSION").to_owned(),
        facts: Some(facts::host_facts()),
        desired_revision: hooks.desired_revision(),
        stacks: Vec::new(),
    })))
    .await
    .map_err(|_| StreamError::Connect("outgoing queue closed".into()))?;
    let mut inbound = client
        .connect(ReceiverStream::new(out_rx))
        .await
        .map_err(|s| StreamError::Refused {
            code: s.code(),
            message: s.message().to_owned(),
        })?
        .into_inner();

    let welcome = match tokio::time::timeout(WELCOME_TIMEOUT, inbound.message()).await {
        Err(_) => return Err(StreamError::Timeout("waiting for Welcome")),
        Ok(Err(s)) => {
            return Err(StreamError::Refused {
                code: s.code(),
                message: s.message().to_owned(),
            });
        }
        Ok(Ok(None)) => return Err(StreamError::Connect("stream closed before Welcome".into())),
        Ok(Ok(Some(m))) => match m.kind {
            Some(In::Welcome(w)) => w,
            Some(In::Revoked(r)) => return Ok(SessionEnd::Revoked { reason: r.reason }),
            other => {
                return Err(StreamError::Protocol(format!(
                    "expected Welcome, got {other:?}"
                )));
            }
        },
    };
    let welcomed = tokio::time::Instant::now();
    let hb = Duration::from_secs(u64::from(welcome.heartbeat_interval_seconds))
        .clamp(MIN_HEARTBEAT, MAX_HEARTBEAT);
    tracing::info!(host = %welcome.host, fleet = %welcome.fleet, heartbeat_secs = hb.as_secs(), "connected");
    if welcome.host != enrollment.host {
        tracing::warn!(ours = %enrollment.host, theirs = %welcome.host, "server names us differently");
    }
    let up = || Some(welcomed.elapsed());

    // Renewal: at a random point in 60-80 % of this certificate's life.
    let (issued, not_after) = cert_validity(&creds.cert_pem)?;
    let at = convoy_pki::renewal_at(issued, not_after, &mut rand::rng());
    let renew_in = at
        .duration_since(SystemTime::now())
        .unwrap_or(Duration::ZERO);
    let mut renew_deadline = Some(tokio::time::Instant::now() + renew_in);
    tracing::debug!(renew_in_secs = renew_in.as_secs_f64(), "renewal scheduled");

    let mut sent_reports = BTreeSet::new();
    let mut seq = 0u64;
    let mut ticker = tokio::time::interval(hb);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // New reports go out promptly: the rollout waits on them.
    let mut report_poll = tokio::time::interval(REPORT_POLL);
    report_poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        // Resend what is still unacked (first pass right after Welcome).
        for r in hooks.pending_reports() {
            if sent_reports.insert(r.id.clone()) && out.try_send(msg(Out::Report(r))).is_err() {
                break;
            }
        }
        let renew_sleep = async {
            match renew_deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        let telemetry_ready = async {
            match telemetry {
                Some(b) => b.notified().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = telemetry_ready => {
                if let Some(buffer) = telemetry
                    && let Err(reason) = send_telemetry(buffer, &out).await
                {
                    return Ok(SessionEnd::Broken { reason, welcomed_for: up() });
                }
            }
            r = stop.changed() => {
                // A dropped sender also means stop.
                if r.is_err() || *stop.borrow() {
                    return Ok(SessionEnd::Stopped);
                }
            }
            _ = report_poll.tick() => {}
            _ = ticker.tick() => {
                seq += 1;
                if out.send(msg(Out::Heartbeat(Heartbeat { seq, sent_unix_ms: crate::unix_ms() }))).await.is_err() {
                    return Ok(SessionEnd::Broken { reason: "outgoing stream closed".into(), welcomed_for: up() });
                }
            }
            _ = renew_sleep => {
                let csr = convoy_pki::make_csr(&creds.key_pem, &enrollment.fleet, &enrollment.host)
                    .map_err(|e| StreamError::Pki(e.to_string()))?;
                tracing::info!("renewing the client certificate");
                if out.send(msg(Out::Renew(RenewRequest { csr_pem: csr }))).await.is_err() {
                    return Ok(SessionEnd::Broken { reason: "outgoing stream closed".into(), welcomed_for: up() });
                }
                renew_deadline = Some(tokio::time::Instant::now() + RENEW_RETRY);
            }
            m = inbound.message() => {
                let m = match m {
                    Ok(Some(m)) => m,
                    Ok(None) => return Ok(SessionEnd::Broken { reason: "server closed the stream".into(), welcomed_for: up() }),
                    Err(s) => {
                        if s.code() == tonic::Code::PermissionDenied {
                            return Ok(SessionEnd::Revoked { reason: s.message().to_owned() });
                        }
                        return Ok(SessionEnd::Broken { reason: format!("{:?}: {}", s.code(), s.message()), welcomed_for: up() });
                    }
                };
                match m.kind {
                    Some(In::HeartbeatAck(_)) | Some(In::Welcome(_)) | None => {}
                    Some(In::Desired(d)) => {
                        tracing::info!(revision = %d.revision, generation = d.generation, "desired state received");
                        hooks.on_desired(d).await;
                    }
                    Some(In::Notice(n)) => {
                        tracing::info!(revision = %n.revision, "desired state waiting; fetching");
                        let _ = out.send(msg(Out::FetchDesired(convoy_shared::proto::FetchDesired { revision: n.revision }))).await;
                    }
                    Some(In::Ack(a)) => {
                        for id in &a.report_ids {
                            sent_reports.remove(id);
                        }
                        hooks.ack(&a.report_ids);
                    }
                    Some(In::Renew(r)) => {
                        save_renewed(dir, enrollment, &r.cert_pem, &creds.key_pem)?;
                        // One renewal per connection: the server ends this
                        // stream when the old certificate expires and we
                        // come back with the new one.
                        renew_deadline = None;
                    }
                    Some(In::Revoked(r)) => {
                        return Ok(SessionEnd::Revoked { reason: r.reason });
                    }
                }
            }
        }
    }
}

/// Sends everything buffered, oldest first, in bounded batches. The
/// sampler's push notification wakes this once per sample; a backlog from a
/// disconnected spell goes out at once after the next Welcome.
async fn send_telemetry(
    buffer: &TelemetryBuffer,
    out: &mpsc::Sender<AgentMessage>,
) -> Result<(), String> {
    while let Some(batch) = buffer.take_batch(convoy_shared::limits::MAX_TELEMETRY_BATCH) {
        let (samples, dropped) = (batch.samples.len(), batch.dropped);
        if let Err(mpsc::error::SendError(m)) = out
            .send(AgentMessage {
                kind: Some(Out::Telemetry(batch)),
            })
            .await
        {
            if let Some(Out::Telemetry(batch)) = m.kind {
                buffer.requeue(batch);
            }
            return Err("outgoing stream closed".into());
        }
        if dropped > 0 {
            tracing::info!(
                samples,
                dropped,
                "telemetry sent; samples were dropped while disconnected"
            );
        } else {
            tracing::debug!(samples, "telemetry sent");
        }
        if buffer.is_empty() {
            break;
        }
    }
    Ok(())
}

/// Checks the renewed certificate (our fleet and host, our key) and swaps
/// it in for the next connection.
fn save_renewed(
    dir: &AgentDir,
    enrollment: &Enrollment,
    cert_pem: &str,
    key_pem: &str,
) -> Result<(), StreamError> {
    let der = CertificateDer::from_pem_slice(cert_pem.as_bytes())
        .map_err(|e| StreamError::Pki(format!("renewed certificate: {e}")))?;
    let id = convoy_pki::host_identity(&der, &enrollment.fleet)
        .map_err(|e| StreamError::Pki(format!("renewed certificate: {e}")))?;
    if id.host != enrollment.host {
        return Err(StreamError::Pki(format!(
            "renewed certificate names host {:?}, we are {:?}",
            id.host, enrollment.host
        )));
    }
    // rustls refuses a certificate that does not match the key.
    let ca = std::fs::read(dir.ca()).map_err(StreamError::io("reading", &dir.ca()))?;
    let ca_der = CertificateDer::from_pem_slice(&ca)
        .map_err(|e| StreamError::Pki(format!("ca.pem: {e}")))?;
    convoy_pki::client_config(&ca_der, Some((cert_pem, key_pem)))
        .map_err(|e| StreamError::Pki(format!("renewed certificate: {e}")))?;
    write_atomic(&dir.cert(), cert_pem.as_bytes(), 0o644)
        .map_err(StreamError::io("writing", &dir.cert()))?;
    tracing::info!(serial = %id.serial_hex, "client certificate renewed");
    Ok(())
}
