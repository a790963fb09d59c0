//! What the agents' streams bring in, handed over by the gateway: each
//! event is translated (pure, [`crate::translate`]) and routed.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use convoy_shared::proto::{DesiredState, Report, ReportKind, TelemetryBatch};

use super::{Dispatcher, desired_state};
use crate::gateway::GatewayHooks;
use crate::rollout::Input;
use crate::translate;

/// The dispatcher as the gateway's hooks.
#[derive(Debug, Clone)]
pub struct StreamHooks(pub Arc<Dispatcher>);

#[async_trait::async_trait]
impl GatewayHooks for StreamHooks {
    async fn desired_for(&self, host: &str) -> Option<DesiredState> {
        let engine = self.0.engine.clone();
        let h = host.to_owned();
        match tokio::task::spawn_blocking(move || engine.desired_for(&h)).await {
            Ok(Ok(Some((d, json)))) => Some(desired_state(&d, &json)),
            Ok(Ok(None)) => None,
            Ok(Err(e)) => {
                tracing::error!(host = %host, error = %crate::error_chain(&e), "reading the desired state failed");
                None
            }
            Err(e) => {
                tracing::error!(host = %host, error = %e, "desired state task failed");
                None
            }
        }
    }

    async fn delivered(&self, host: &str, revision: &str, _generation: u64) {
        self.0.stats.delivered.fetch_add(1, Ordering::Relaxed);
        self.0
            .feed(Input::Delivered {
                host: host.to_owned(),
                revision: revision.to_owned(),
            })
            .await;
    }

    async fn report(&self, host: &str, r: &Report, new: bool) {
        let d = &self.0;
        d.stats.reports.fetch_add(1, Ordering::Relaxed);
        if new {
            let kind = ReportKind::try_from(r.kind).unwrap_or(ReportKind::Unspecified);
            tracing::info!(
                host = %host,
                stack = %r.stack,
                kind = ?kind,
                host_revision = %r.host_revision,
                rollout = %r.rollout_id,
                "{}",
                r.message
            );
        }
        let me = d.clone();
        let (host, r) = (host.to_owned(), r.clone());
        let res = tokio::task::spawn_blocking(move || {
            // The commit the host was last given names the alert.
            let commit = if new {
                match me.engine.desired_for(&host) {
                    Ok(found) => found.map(|(d, _)| d.commit).unwrap_or_default(),
                    Err(e) => {
                        tracing::warn!(host = %host, error = %crate::error_chain(&e), "reading the host's commit for its alert failed");
                        String::new()
                    }
                }
            } else {
                String::new()
            };
            let out = translate::report(&me.fleet, &host, &r, new, &commit);
            if let Some(a) = out.audit {
                me.record(a);
            }
            if let Some(a) = out.alert {
                me.raise(a);
            }
            if let Some(input) = out.input {
                let effects = me.engine.feed(&input, me.clock.now_ms())?;
                me.route(effects);
            }
            Ok::<_, crate::rollout::EngineError>(())
        })
        .await;
        match res {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %crate::error_chain(&e), "rollout input failed"),
            Err(e) => tracing::error!(error = %e, "report task failed"),
        }
    }

    async fn telemetry(&self, host: &str, batch: TelemetryBatch) {
        let d = &self.0;
        d.stats.telemetry_batches.fetch_add(1, Ordering::Relaxed);
        d.stats
            .telemetry_samples
            .fetch_add(batch.samples.len() as u64, Ordering::Relaxed);
        if batch.dropped > 0 {
            tracing::info!(host = %host, dropped = batch.dropped, "the agent dropped telemetry samples while disconnected");
        }
        let alerts = translate::gpu_alerts(&d.fleet, host, &batch);
        d.telemetry
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .ingest_batch(host, batch);
        for ev in alerts {
            if let crate::alerts::AlertEvent::GpuEvent {
                gpu, fault, detail, ..
            } = &ev
            {
                tracing::warn!(host = %host, gpu = %gpu, fault = fault.as_str(), "GPU event: {detail}");
            }
            d.raise(ev);
        }
    }

    async fn revoked_attempt(&self, host: &str, peer: &str) {
        let (audit, alert) = translate::revoked_attempt(&self.0.fleet, host, peer);
        self.0.record(audit);
        self.0.raise(alert);
    }

    async fn connected(&self, host: &str, connected: bool) {
        if connected {
            self.0.stats.connects.fetch_add(1, Ordering::Relaxed);
        }
        tracing::info!(host = %host, connected, "host stream");
    }
}
