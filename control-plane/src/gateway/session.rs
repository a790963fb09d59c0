//! One `Connect` stream: Hello → Welcome, then heartbeats, reports,
//! renewals and desired states until the agent leaves, the certificate
//! expires, the host is revoked or replaced, or the daemon stops.

use std::time::Duration;

use convoy_pki::HostIdentity;
use convoy_shared::limits;
use convoy_shared::proto::agent_message::Kind as In;
use convoy_shared::proto::control_message::Kind as Out;
use convoy_shared::proto::{
    Ack, AgentMessage, ControlMessage, HeartbeatAck, RenewResponse, Report, Revoked, Welcome,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Status, Streaming};

use super::Gateway;
use super::identity::internal;
use super::sessions::{SESSION_QUEUE, SessionCmd};
use crate::store::StoredReport;

/// Outgoing messages buffered per stream before the session waits for the
/// agent to read (backpressure, bounded memory).
const OUT_QUEUE: usize = 32;
/// The agent must say Hello this soon after opening the stream.
const HELLO_TIMEOUT: Duration = Duration::from_secs(30);
/// How often the session re-checks that it is still the registered one
/// (a backstop for a revoke whose notice could not be queued): bounds the
/// time a revoked stream stays open to well under a second.
const REGISTRY_POLL: Duration = Duration::from_millis(200);
/// Missed heartbeats before the server gives up on a silent agent.
const MISSED_HEARTBEATS: u32 = 3;

type OutTx = mpsc::Sender<Result<ControlMessage, Status>>;

/// Starts the session task and returns the response stream.
pub(crate) fn start(
    gw: Gateway,
    id: HostIdentity,
    inbound: Streaming<AgentMessage>,
) -> ReceiverStream<Result<ControlMessage, Status>> {
    let (out_tx, out_rx) = mpsc::channel(OUT_QUEUE);
    tokio::spawn(async move {
        let host = id.host.clone();
        let reason = run(&gw, id, inbound, &out_tx).await;
        match reason {
            Ok(why) => tracing::info!(host = %host, why, "stream ended"),
            Err(status) => {
                tracing::info!(host = %host, code = ?status.code(), why = status.message(), "stream closed by the server");
                let _ = out_tx.send(Err(status)).await;
            }
        }
    });
    ReceiverStream::new(out_rx)
}

fn msg(kind: Out) -> Result<ControlMessage, Status> {
    Ok(ControlMessage { kind: Some(kind) })
}

/// Runs the session. `Ok(why)`: the agent went away; `Err(status)`: the
/// server ends the stream with that status.
async fn run(
    gw: &Gateway,
    id: HostIdentity,
    mut inbound: Streaming<AgentMessage>,
    out: &OutTx,
) -> Result<&'static str, Status> {
    let host = id.host.clone();
    let mut shutdown = gw.shutdown_signal();
    if *shutdown.borrow() {
        return Err(Status::unavailable("control plane shutting down"));
    }
    // Hello first.
    let hello = match tokio::time::timeout(HELLO_TIMEOUT, inbound.message()).await {
        Err(_) => return Err(Status::deadline_exceeded("no Hello within 30s")),
        Ok(Err(e)) => return Err(e),
        Ok(Ok(None)) => return Ok("agent closed before Hello"),
        Ok(Ok(Some(AgentMessage {
            kind: Some(In::Hello(h)),
        }))) => h,
        Ok(Ok(Some(_))) => return Err(Status::invalid_argument("first message must be Hello")),
    };
    let (cmd_tx, mut cmd_rx) = mpsc::channel(SESSION_QUEUE);
    let session = gw
        .sessions()
        .register(&host, &id.serial_hex, gw.clock().now(), cmd_tx);
    let _guard = Deregister {
        gw: gw.clone(),
        host: host.clone(),
        session,
    };
    // A revoke between authentication and registration must still win.
    gw.check_not_revoked(&id)?;
    touch(gw, &host).await;
    tracing::info!(
        host = %host,
        serial = %id.serial_hex,
        agent_version = %hello.agent_version,
        desired_revision = %hello.desired_revision,
        "agent connected"
    );
    let hb = gw.cfg().heartbeat_interval;
    send(
        out,
        Out::Welcome(Welcome {
            host: host.clone(),
            fleet: gw.fleet().to_owned(),
            heartbeat_interval_seconds: u32::try_from(hb.as_secs()).unwrap_or(u32::MAX),
        }),
    )
    .await?;
    let hooks = gw.hooks().clone();
    hooks.connected(&host, true).await;
    if let Some(d) = hooks.desired_for(&host).await {
        let (rev, generation) = (d.revision.clone(), d.generation);
        tracing::info!(host = %host, revision = %rev, generation, "desired state sent on connect");
        send(out, Out::Desired(d)).await?;
        hooks.delivered(&host, &rev, generation).await;
    }

    let expiry = id
        .not_after
        .duration_since(gw.clock().now())
        .unwrap_or(Duration::ZERO);
    let expires = tokio::time::sleep(expiry);
    tokio::pin!(expires);
    let silence_limit = hb * MISSED_HEARTBEATS;
    let mut last_heard = tokio::time::Instant::now();
    let mut poll = tokio::time::interval(REGISTRY_POLL);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

    loop {
        tokio::select! {
            m = inbound.message() => {
                let m = match m {
                    Ok(Some(m)) => m,
                    Ok(None) => return Ok("agent closed the stream"),
                    Err(e) => {
                        tracing::debug!(host = %host, error = %e, "inbound stream error");
                        return Ok("inbound stream broke");
                    }
                };
                last_heard = tokio::time::Instant::now();
                touch(gw, &host).await;
                handle(gw, &id, m, out).await?;
            }
            c = cmd_rx.recv() => match c {
                Some(SessionCmd::Desired(d)) => {
                    let (rev, generation) = (d.revision.clone(), d.generation);
                    tracing::info!(host = %host, revision = %rev, generation, "desired state sent");
                    send(out, Out::Desired(*d)).await?;
                    hooks.delivered(&host, &rev, generation).await;
                }
                Some(SessionCmd::Revoke(reason)) => {
                    let _ = out.send(msg(Out::Revoked(Revoked { reason }))).await;
                    return Err(Status::permission_denied("host revoked"));
                }
                Some(SessionCmd::Replaced) | None => {
                    return Err(Status::aborted("replaced by a newer stream for this host"));
                }
            },
            _ = &mut expires => {
                return Err(Status::unauthenticated("client certificate expired; reconnect with the renewed one"));
            }
            _ = poll.tick() => {
                if !gw.sessions().is_current(&host, session) {
                    return Err(Status::aborted("stream closed by the control plane"));
                }
                if last_heard.elapsed() > silence_limit {
                    return Err(Status::deadline_exceeded("no heartbeat"));
                }
            }
            _ = shutdown.changed() => {
                return Err(Status::unavailable("control plane shutting down"));
            }
        }
    }
}

async fn send(out: &OutTx, kind: Out) -> Result<(), Status> {
    out.send(msg(kind))
        .await
        .map_err(|_| Status::cancelled("agent went away"))
}

async fn handle(
    gw: &Gateway,
    id: &HostIdentity,
    m: AgentMessage,
    out: &OutTx,
) -> Result<(), Status> {
    let Some(kind) = m.kind else {
        return Err(Status::invalid_argument("empty AgentMessage"));
    };
    match kind {
        In::Hello(_) => Err(Status::invalid_argument("Hello sent twice")),
        In::Heartbeat(h) => send(out, Out::HeartbeatAck(HeartbeatAck { seq: h.seq })).await,
        In::Report(r) => {
            check_report(&r)?;
            let gw2 = gw.clone();
            let host = id.host.clone();
            let rid = r.id.clone();
            let key = rid.clone();
            let for_hooks = r.clone();
            // The store's write waits for the disk.
            let new = tokio::task::spawn_blocking(move || {
                // Stored as (host, report) so the report's origin is the
                // authenticated host, not anything in the message.
                gw2.store()
                    .put_report(&key, &StoredReport { host, report: r })
            })
            .await
            .map_err(|_| Status::internal("report task failed"))?
            .map_err(|e| internal("storing report", &e))?;
            tracing::debug!(host = %id.host, report = %rid, new, "report stored");
            gw.hooks().report(&id.host, &for_hooks, new).await;
            // New and duplicate reports alike are acked: the agent resends
            // until acked, so a lost Ack only costs a duplicate.
            send(
                out,
                Out::Ack(Ack {
                    report_ids: vec![rid],
                }),
            )
            .await
        }
        In::Telemetry(t) => {
            if t.samples.len() > limits::MAX_TELEMETRY_BATCH {
                return Err(Status::invalid_argument("telemetry batch too large"));
            }
            gw.hooks().telemetry(&id.host, t).await;
            Ok(())
        }
        In::Renew(r) => {
            // Revocation is checked again at renewal: a stream that
            // outlived a revoke race must not mint a fresh certificate.
            gw.check_not_revoked(id)?;
            let gw2 = gw.clone();
            let host = id.host.clone();
            let signed = tokio::task::spawn_blocking(move || {
                let now = gw2.clock().now();
                let signed = gw2.sign(&r.csr_pem, &host, now)?;
                gw2.record(&signed, &host, now)?;
                Ok::<_, Status>(signed)
            })
            .await
            .map_err(|_| Status::internal("renewal task failed"))??;
            send(
                out,
                Out::Renew(RenewResponse {
                    cert_pem: signed.cert_pem,
                    ca_pem: gw.ca().cert_pem().to_owned(),
                }),
            )
            .await
        }
        In::FetchDesired(_) => {
            let h = gw.hooks();
            match h.desired_for(&id.host).await {
                Some(d) => {
                    let (rev, generation) = (d.revision.clone(), d.generation);
                    send(out, Out::Desired(d)).await?;
                    h.delivered(&id.host, &rev, generation).await;
                    Ok(())
                }
                None => Ok(()),
            }
        }
    }
}

/// Records that the host was heard from. Not flushed (losing it in a
/// crash is harmless), but a failed write is logged with its cause and
/// counted, never dropped silently: it is the first sign of a full disk.
async fn touch(gw: &Gateway, host: &str) {
    let store = gw.store().clone();
    let now = gw.clock().now();
    let h = host.to_owned();
    let res = tokio::task::spawn_blocking(move || store.touch_host(&h, now)).await;
    let err = match res {
        Ok(Ok(())) => return,
        Ok(Err(e)) => crate::error_chain(&e),
        Err(e) => format!("task failed: {e}"),
    };
    let n = gw.count_touch_failure();
    tracing::warn!(host, failures = n, error = %err, "recording when the host was last seen failed");
}

fn check_report(r: &Report) -> Result<(), Status> {
    if r.id.is_empty() || r.id.len() > limits::MAX_NAME_LEN {
        return Err(Status::invalid_argument("report id must be 1..=253 bytes"));
    }
    if r.message.len() > limits::MAX_TEXT_LEN {
        return Err(Status::invalid_argument("report message too long"));
    }
    if r.log_tail.len() > limits::MAX_LOG_LINES {
        return Err(Status::invalid_argument("report log tail too long"));
    }
    Ok(())
}

struct Deregister {
    gw: Gateway,
    host: String,
    session: u64,
}

impl Drop for Deregister {
    fn drop(&mut self) {
        let sessions = self.gw.sessions();
        let current = sessions.is_current(&self.host, self.session);
        sessions.deregister(&self.host, self.session);
        // Only the stream that was current takes the host offline (a
        // replaced one must not).
        if current {
            let h = self.gw.hooks().clone();
            let host = self.host.clone();
            tokio::spawn(async move { h.connected(&host, false).await });
        }
    }
}
