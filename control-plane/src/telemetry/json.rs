//! The JSON views of `GET /api/v1/hosts/{name}/telemetry`.

use convoy_shared::proto::v1::{GpuEventKind, GpuSample};

use super::event_kind_label;
use super::store::HostTelemetry;

/// Points of compact history `GET /api/v1/hosts/{name}/telemetry` returns
/// by default (10 min at the default 10 s interval).
pub const DEFAULT_HISTORY_POINTS: usize = 60;
/// Most history points one answer carries.
pub const MAX_HISTORY_POINTS: usize = 720;
/// Recent GPU health events one answer carries.
const MAX_RECENT_EVENTS: usize = 50;

fn host_metrics_json(h: &convoy_shared::proto::v1::HostMetrics) -> serde_json::Value {
    serde_json::json!({
        "os": h.os,
        "kernel": h.kernel,
        "docker_version": h.docker_version,
        "uptime_seconds": h.uptime_seconds,
        "cpu_percent": h.cpu_percent,
        "cpu_per_core_percent": h.cpu_per_core_percent,
        "load": [h.load1, h.load5, h.load15],
        "memory_used_bytes": h.memory_used_bytes,
        "memory_total_bytes": h.memory_total_bytes,
        "swap_used_bytes": h.swap_used_bytes,
        "swap_total_bytes": h.swap_total_bytes,
        "disks": h.disks.iter().map(|d| serde_json::json!({
            "mount_point": d.mount_point,
            "device": d.device,
            "used_bytes": d.used_bytes,
            "total_bytes": d.total_bytes,
        })).collect::<Vec<_>>(),
        "networks": h.networks.iter().map(|n| serde_json::json!({
            "interface": n.interface,
            "rx_bytes": n.rx_bytes,
            "tx_bytes": n.tx_bytes,
        })).collect::<Vec<_>>(),
    })
}

fn gpu_json(g: &GpuSample, t: &HostTelemetry) -> serde_json::Value {
    let xid = t.xid.get(&g.uuid).copied().unwrap_or_default();
    serde_json::json!({
        "index": g.index,
        "uuid": g.uuid,
        "name": g.name,
        "driver_version": g.driver_version,
        "cuda_version": g.cuda_version,
        "utilization_gpu_percent": g.utilization_gpu_percent,
        "utilization_memory_percent": g.utilization_memory_percent,
        "memory_used_bytes": g.memory_used_bytes,
        "memory_total_bytes": g.memory_total_bytes,
        "temperature_celsius": g.temperature_celsius,
        "power_draw_milliwatts": g.power_draw_milliwatts,
        "power_limit_milliwatts": g.power_limit_milliwatts,
        "sm_clock_mhz": g.sm_clock_mhz,
        "memory_clock_mhz": g.memory_clock_mhz,
        "fan_speed_percent": g.fan_speed_percent,
        "pcie_link_generation": g.pcie_link_generation,
        "pcie_link_width": g.pcie_link_width,
        "ecc_corrected": g.ecc_corrected,
        "ecc_uncorrected": g.ecc_uncorrected,
        "retired_pages": g.retired_pages,
        "throttle_reasons": g.throttle_reasons,
        "missing_fields": g.missing_fields,
        "xid_errors_total": xid.total,
        "last_xid": xid.last,
        "processes": g.processes.iter().map(|p| serde_json::json!({
            "pid": p.pid,
            "used_memory_bytes": p.used_memory_bytes,
            "container_id": p.container_id,
            "stack": p.stack,
            "service": p.service,
        })).collect::<Vec<_>>(),
    })
}

impl HostTelemetry {
    /// The JSON `GET /api/v1/hosts/{name}/telemetry` answers: the newest
    /// sample in full (host figures, each GPU with its processes and their
    /// containers), recent GPU events, and the last `points` samples in
    /// compact form (CPU, memory, per-GPU utilisation/memory/temperature).
    pub fn to_json(&self, points: usize) -> serde_json::Value {
        let latest = self.latest();
        let mut gpus: Vec<&GpuSample> = latest.map(|s| s.gpus.iter().collect()).unwrap_or_default();
        gpus.sort_by_key(|g| g.index);
        let events: Vec<serde_json::Value> = self
            .history()
            .rev()
            .flat_map(|s| s.gpu_events.iter())
            .take(MAX_RECENT_EVENTS)
            .map(|e| {
                let kind = GpuEventKind::try_from(e.kind).unwrap_or(GpuEventKind::Unspecified);
                serde_json::json!({
                    "at_unix_ms": e.at_unix_ms,
                    "gpu": e.gpu_index,
                    "uuid": e.uuid,
                    "kind": event_kind_label(kind),
                    "value": e.value,
                    "message": e.message,
                })
            })
            .collect();
        let n = points.min(MAX_HISTORY_POINTS);
        let skip = self.history().len().saturating_sub(n);
        let history: Vec<serde_json::Value> = self
            .history()
            .skip(skip)
            .map(|s| {
                let h = s.host.as_ref();
                serde_json::json!({
                    "at_unix_ms": s.at_unix_ms,
                    "cpu_percent": h.map(|h| h.cpu_percent),
                    "memory_used_bytes": h.map(|h| h.memory_used_bytes),
                    "gpus": s.gpus.iter().map(|g| serde_json::json!({
                        "index": g.index,
                        "utilization_gpu_percent": g.utilization_gpu_percent,
                        "memory_used_bytes": g.memory_used_bytes,
                        "temperature_celsius": g.temperature_celsius,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        serde_json::json!({
            "at_unix_ms": latest.map(|s| s.at_unix_ms),
            "dropped_samples": self.dropped_samples,
            "samples_held": self.history().len(),
            "host": latest.and_then(|s| s.host.as_ref()).map(host_metrics_json),
            "gpus": gpus.into_iter().map(|g| gpu_json(g, self)).collect::<Vec<_>>(),
            "events": events,
            "history": history,
        })
    }
}
