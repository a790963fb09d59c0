//! Fleet telemetry: what the agents' streams bring in, kept in memory
//! ([`store`]), served as JSON per host ([`json`]) and as Prometheus
//! metrics for the whole fleet ([`prometheus`]). Pure: no I/O, no clock
//! (callers pass times in).
//!
//! Metric names follow node_exporter / dcgm-exporter conventions in base
//! units (bytes, seconds, watts, hertz, ratios 0..1); every metric is
//! documented in docs/metrics.md.

pub mod json;
pub mod prometheus;
pub mod store;

use convoy_shared::proto::v1::GpuEventKind;

pub use json::{DEFAULT_HISTORY_POINTS, MAX_HISTORY_POINTS};
pub use prometheus::{
    CONTENT_TYPE, ControlPlaneHealth, FleetCollector, HealthCollector, ROLLOUT_STATUSES,
    render_control_plane,
};
pub use store::{HistoryLimits, HostTelemetry, TelemetryStore, XidCount};

/// The `kind` label value of a health event.
pub fn event_kind_label(kind: GpuEventKind) -> &'static str {
    match kind {
        GpuEventKind::Unspecified => "unspecified",
        GpuEventKind::Xid => "xid",
        GpuEventKind::EccUncorrected => "ecc_uncorrected",
        GpuEventKind::OverTemperature => "over_temperature",
        GpuEventKind::Lost => "lost",
        GpuEventKind::MemoryNearlyFull => "memory_nearly_full",
    }
}

#[cfg(test)]
mod tests;
