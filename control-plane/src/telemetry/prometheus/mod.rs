//! `/metrics` in the Prometheus text format (0.0.4), encoded by the
//! `prometheus-client` crate from two collectors: [`FleetCollector`] (every
//! host's newest sample, read under the telemetry lock at scrape time) and
//! [`HealthCollector`] (the control plane's own figures, gathered by the
//! caller just before the scrape).
//!
//! Scrape cost is linear in the fleet: the collectors walk the in-memory
//! store family by family and stream series straight into the encoder's
//! buffer, with no per-series registry entries or label allocations (a
//! 10k-host fleet is ~40 families × 10k hosts of label/value pairs).
//!
//! Names, types, labels and units are documented in docs/metrics.md.
//! Counter names are given without `_total`: the encoder appends it.

mod family;
mod fleet;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, prometheus_text};
use prometheus_client::registry::Registry;

use super::store::TelemetryStore;
use family::{NO_LABELS, counter, gauge};
use fleet::encode_fleet;

/// `Content-Type` of what [`encode`] writes.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// The control plane's own health, for `/metrics`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ControlPlaneHealth {
    /// Agents with an open stream.
    pub connected_agents: usize,
    /// Enrolled hosts.
    pub enrolled_hosts: usize,
    /// Recent rollouts (the engine's last 50) by status label.
    pub rollouts_by_status: BTreeMap<&'static str, u64>,
    /// Status label of the current (newest) rollout.
    pub current_rollout_status: Option<&'static str>,
    /// Alert deliveries not yet done; `None` without alert sinks.
    pub alert_outbox_pending: Option<usize>,
    /// Agent messages handled since start, by kind (`report`, `telemetry`...).
    pub stream_messages: BTreeMap<&'static str, u64>,
    /// Telemetry samples received since start.
    pub telemetry_samples: u64,
}

/// Every rollout status label, so each `convoy_rollouts` series exists even at 0.
pub const ROLLOUT_STATUSES: [&str; 7] = [
    "running",
    "waiting_approval",
    "completed",
    "halted",
    "rolling_back",
    "rolled_back",
    "superseded",
];

/// Encodes a registry (what `/metrics` answers).
pub fn encode(registry: &Registry) -> String {
    let mut out = String::new();
    // Writing into a String cannot fail, and the collectors only fail when
    // the writer does.
    if let Err(e) = prometheus_text::encode(&mut out, registry) {
        tracing::error!(error = %e, "encoding /metrics failed");
    }
    out
}

/// The registry `/metrics` encodes: the fleet's telemetry and the control
/// plane's health.
pub fn registry(telemetry: Arc<Mutex<TelemetryStore>>, health: ControlPlaneHealth) -> Registry {
    let mut r = Registry::default();
    r.register_collector(Box::new(FleetCollector(telemetry)));
    r.register_collector(Box::new(HealthCollector(health)));
    r
}

impl TelemetryStore {
    /// The whole fleet in the Prometheus text exposition format (0.0.4).
    ///
    /// Encodes a copy (a registry's collectors own what they read); the
    /// daemon's `/metrics` reads its store in place through
    /// [`FleetCollector`].
    pub fn render_prometheus(&self) -> String {
        let mut r = Registry::default();
        r.register_collector(Box::new(Snapshot(self.clone())));
        encode(&r)
    }
}

/// [`ControlPlaneHealth`] in the Prometheus text format (its families are
/// disjoint from [`TelemetryStore::render_prometheus`]'s).
pub fn render_control_plane(h: &ControlPlaneHealth) -> String {
    let mut r = Registry::default();
    r.register_collector(Box::new(HealthCollector(h.clone())));
    encode(&r)
}

/// The fleet's telemetry, read at scrape time.
#[derive(Debug)]
pub struct FleetCollector(pub Arc<Mutex<TelemetryStore>>);

impl Collector for FleetCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let store = self.0.lock().unwrap_or_else(|e| e.into_inner());
        encode_fleet(&store, &mut encoder)
    }
}

/// An owned copy of the store (for [`TelemetryStore::render_prometheus`]).
#[derive(Debug)]
struct Snapshot(TelemetryStore);

impl Collector for Snapshot {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        encode_fleet(&self.0, &mut encoder)
    }
}

/// The control plane's health as gathered for one scrape.
#[derive(Debug)]
pub struct HealthCollector(pub ControlPlaneHealth);

impl Collector for HealthCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        encode_health(&self.0, &mut encoder)
    }
}

fn encode_health(h: &ControlPlaneHealth, enc: &mut DescriptorEncoder) -> fmt::Result {
    gauge(
        enc,
        "convoy_connected_agents",
        "Agents with an open stream to this control plane.",
        |f| f.series(&NO_LABELS, h.connected_agents as u64),
    )?;
    gauge(
        enc,
        "convoy_enrolled_hosts",
        "Hosts enrolled in the fleet.",
        |f| f.series(&NO_LABELS, h.enrolled_hosts as u64),
    )?;
    gauge(
        enc,
        "convoy_rollouts",
        "Recent rollouts (the last 50) by status.",
        |f| {
            for status in ROLLOUT_STATUSES {
                let n = h.rollouts_by_status.get(status).copied().unwrap_or(0);
                f.series(&[("status", status)], n)?;
            }
            Ok(())
        },
    )?;
    gauge(
        enc,
        "convoy_rollout_current_status",
        "1 for the status of the current (newest) rollout, 0 for the others.",
        |f| {
            for status in ROLLOUT_STATUSES {
                let v = u64::from(h.current_rollout_status == Some(status));
                f.series(&[("status", status)], v)?;
            }
            Ok(())
        },
    )?;
    gauge(
        enc,
        "convoy_alert_outbox_pending",
        "Alert deliveries waiting in the outbox (not yet delivered or given up).",
        |f| match h.alert_outbox_pending {
            Some(n) => f.series(&NO_LABELS, n as u64),
            None => Ok(()),
        },
    )?;
    counter(
        enc,
        "convoy_stream_messages",
        "Agent stream messages handled by the controller since start, by kind.",
        |f| {
            for (kind, n) in &h.stream_messages {
                f.series(&[("kind", *kind)], *n)?;
            }
            Ok(())
        },
    )?;
    counter(
        enc,
        "convoy_telemetry_samples_received",
        "Telemetry samples received from agents since start.",
        |f| f.series(&NO_LABELS, h.telemetry_samples),
    )
}

/// One value as the encoder writes it (for tests of the value format).
#[cfg(test)]
pub(crate) fn format_value(v: impl Into<family::Value>) -> String {
    let v = v.into();
    let mut r = Registry::default();
    #[derive(Debug)]
    struct One(family::Value);
    impl Collector for One {
        fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
            let v = self.0;
            gauge(&mut encoder, "convoy_test", "test.", |f| {
                f.series(&NO_LABELS, v)
            })
        }
    }
    r.register_collector(Box::new(One(v)));
    let text = encode(&r);
    text.lines()
        .find_map(|l| l.strip_prefix("convoy_test "))
        .unwrap_or_default()
        .to_owned()
}
