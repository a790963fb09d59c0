//! Fleet telemetry in memory: the latest sample and a bounded history per
//! host, XID/health-event counters, and the Prometheus text-format renderer
//! for `/metrics`. Pure: no I/O, no clock (callers pass times in).
//!
//! Metric names follow node_exporter / dcgm-exporter conventions in base
//! units (bytes, seconds, watts, hertz, ratios 0..1); every metric is
//! documented in docs/metrics.md.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::time::Duration;

use convoy_shared::proto::v1::{GpuEventKind, GpuSample, TelemetryBatch, TelemetrySample};

/// Bounds of the per-host history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryLimits {
    /// Samples older than this (relative to the host's newest) are dropped.
    pub max_age: Duration,
    /// Hard cap on samples kept per host, whatever their age.
    pub max_entries: usize,
}

impl Default for HistoryLimits {
    fn default() -> Self {
        // 1 h at the agents' default 10 s interval, with room for a faster one.
        Self {
            max_age: Duration::from_secs(3600),
            max_entries: 720,
        }
    }
}

/// One host's telemetry.
#[derive(Debug, Default, Clone)]
pub struct HostTelemetry {
    history: VecDeque<TelemetrySample>,
    /// Samples the agent dropped before it could send them (cumulative).
    pub dropped_samples: u64,
    /// Per GPU UUID: XID errors seen (cumulative) and the last XID.
    pub xid: BTreeMap<String, XidCount>,
    /// Per GPU UUID and event kind: health events seen (cumulative).
    pub events: BTreeMap<String, BTreeMap<i32, u64>>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct XidCount {
    pub total: u64,
    pub last: u64,
}

impl HostTelemetry {
    /// The newest sample.
    pub fn latest(&self) -> Option<&TelemetrySample> {
        self.history.back()
    }

    /// Oldest first.
    pub fn history(&self) -> impl DoubleEndedIterator<Item = &TelemetrySample> + ExactSizeIterator {
        self.history.iter()
    }
}

/// The fleet's telemetry, keyed by host name.
#[derive(Debug, Default, Clone)]
pub struct TelemetryStore {
    limits: HistoryLimits,
    hosts: BTreeMap<String, HostTelemetry>,
}

impl TelemetryStore {
    pub fn new(limits: HistoryLimits) -> Self {
        Self {
            limits,
            hosts: BTreeMap::new(),
        }
    }

    pub fn limits(&self) -> HistoryLimits {
        self.limits
    }

    /// Stores a batch from `host`'s stream.
    pub fn ingest_batch(&mut self, host: &str, batch: TelemetryBatch) {
        let entry = self.hosts.entry(host.to_string()).or_default();
        entry.dropped_samples = entry.dropped_samples.saturating_add(batch.dropped);
        for sample in batch.samples {
            self.ingest(host, sample);
        }
    }

    /// Stores one sample. Samples arriving out of order are inserted in
    /// time order; the history is then trimmed by age and count.
    pub fn ingest(&mut self, host: &str, sample: TelemetrySample) {
        let limits = self.limits;
        let entry = self.hosts.entry(host.to_string()).or_default();
        for event in &sample.gpu_events {
            *entry
                .events
                .entry(event.uuid.clone())
                .or_default()
                .entry(event.kind)
                .or_default() += 1;
            if event.kind == GpuEventKind::Xid as i32 {
                let x = entry.xid.entry(event.uuid.clone()).or_default();
                x.total += 1;
                x.last = event.value;
            }
        }
        let pos = entry
            .history
            .iter()
            .rposition(|s| s.at_unix_ms <= sample.at_unix_ms)
            .map_or(0, |p| p + 1);
        entry.history.insert(pos, sample);
        let newest = entry.history.back().map_or(0, |s| s.at_unix_ms);
        let max_age_ms = i64::try_from(limits.max_age.as_millis()).unwrap_or(i64::MAX);
        let cutoff = newest.saturating_sub(max_age_ms);
        while entry.history.front().is_some_and(|s| s.at_unix_ms < cutoff) {
            entry.history.pop_front();
        }
        while entry.history.len() > limits.max_entries.max(1) {
            entry.history.pop_front();
        }
    }

    pub fn host(&self, host: &str) -> Option<&HostTelemetry> {
        self.hosts.get(host)
    }

    pub fn latest(&self, host: &str) -> Option<&TelemetrySample> {
        self.hosts.get(host).and_then(HostTelemetry::latest)
    }

    pub fn hosts(&self) -> impl Iterator<Item = (&str, &HostTelemetry)> {
        self.hosts.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Forgets a host (removed from the fleet).
    pub fn remove_host(&mut self, host: &str) -> bool {
        self.hosts.remove(host).is_some()
    }

    /// Renders the whole fleet in the Prometheus text exposition format
    /// (version 0.0.4).
    pub fn render_prometheus(&self) -> String {
        let mut m = Families::default();
        m.add(
            "convoy_hosts_reporting",
            Kind::Gauge,
            "Hosts with telemetry in the control plane.",
            &[],
            self.hosts.len() as f64,
        );
        for (host, t) in &self.hosts {
            let hl = [("host", host.as_str())];
            m.add(
                "convoy_host_telemetry_dropped_samples_total",
                Kind::Counter,
                "Samples the agent dropped (oldest first) while its stream was down.",
                &hl,
                t.dropped_samples as f64,
            );
            let Some(sample) = t.latest() else { continue };
            m.add(
                "convoy_host_last_sample_timestamp_seconds",
                Kind::Gauge,
                "Agent-side time of the host's newest sample (Unix seconds).",
                &hl,
                sample.at_unix_ms as f64 / 1000.0,
            );
            if let Some(h) = &sample.host {
                render_host(&mut m, host, h);
            }
            let mut gpus: Vec<&GpuSample> = sample.gpus.iter().collect();
            gpus.sort_by_key(|g| g.index);
            for g in gpus {
                render_gpu(&mut m, host, g, t);
            }
        }
        m.finish()
    }
}

fn render_host(m: &mut Families, host: &str, h: &convoy_shared::proto::v1::HostMetrics) {
    let hl = [("host", host)];
    m.add(
        "convoy_host_info",
        Kind::Gauge,
        "Host facts as labels; always 1.",
        &[
            ("host", host),
            ("os", &h.os),
            ("kernel", &h.kernel),
            ("docker_version", &h.docker_version),
        ],
        1.0,
    );
    m.add(
        "convoy_host_cpu_usage_ratio",
        Kind::Gauge,
        "CPU busy share over the last sampling interval, all cores (0..1).",
        &hl,
        h.cpu_percent / 100.0,
    );
    for (i, pct) in h.cpu_per_core_percent.iter().enumerate() {
        let cpu = i.to_string();
        m.add(
            "convoy_host_cpu_core_usage_ratio",
            Kind::Gauge,
            "CPU busy share over the last sampling interval, per core (0..1).",
            &[("host", host), ("cpu", &cpu)],
            pct / 100.0,
        );
    }
    for (name, v, help) in [
        ("convoy_host_load1", h.load1, "1-minute load average."),
        ("convoy_host_load5", h.load5, "5-minute load average."),
        ("convoy_host_load15", h.load15, "15-minute load average."),
    ] {
        m.add(name, Kind::Gauge, help, &hl, v);
    }
    for (name, v, help) in [
        (
            "convoy_host_memory_used_bytes",
            h.memory_used_bytes,
            "Memory in use.",
        ),
        (
            "convoy_host_memory_total_bytes",
            h.memory_total_bytes,
            "Installed memory.",
        ),
        (
            "convoy_host_swap_used_bytes",
            h.swap_used_bytes,
            "Swap in use.",
        ),
        (
            "convoy_host_swap_total_bytes",
            h.swap_total_bytes,
            "Swap size.",
        ),
        (
            "convoy_host_uptime_seconds",
            h.uptime_seconds,
            "Time since boot.",
        ),
    ] {
        m.add(name, Kind::Gauge, help, &hl, v as f64);
    }
    for d in &h.disks {
        let l = [
            ("host", host),
            ("mountpoint", d.mount_point.as_str()),
            ("device", d.device.as_str()),
        ];
        m.add(
            "convoy_host_filesystem_used_bytes",
            Kind::Gauge,
            "Filesystem space in use.",
            &l,
            d.used_bytes as f64,
        );
        m.add(
            "convoy_host_filesystem_size_bytes",
            Kind::Gauge,
            "Filesystem size.",
            &l,
            d.total_bytes as f64,
        );
    }
    for n in &h.networks {
        let l = [("host", host), ("device", n.interface.as_str())];
        m.add(
            "convoy_host_network_receive_bytes_total",
            Kind::Counter,
            "Bytes received on the interface.",
            &l,
            n.rx_bytes as f64,
        );
        m.add(
            "convoy_host_network_transmit_bytes_total",
            Kind::Counter,
            "Bytes sent on the interface.",
            &l,
            n.tx_bytes as f64,
        );
    }
}

fn render_gpu(m: &mut Families, host: &str, g: &GpuSample, t: &HostTelemetry) {
    let index = g.index.to_string();
    let gl: [(&str, &str); 4] = [
        ("host", host),
        ("gpu", &index),
        ("uuid", &g.uuid),
        ("model", &g.name),
    ];
    let with = |extra: &[(&'static str, &str)]| -> Vec<(&str, String)> {
        gl.iter()
            .map(|(k, v)| (*k, (*v).to_string()))
            .chain(extra.iter().map(|(k, v)| (*k, (*v).to_string())))
            .collect()
    };
    m.add_owned(
        "convoy_gpu_info",
        Kind::Gauge,
        "GPU facts as labels; always 1.",
        &with(&[
            ("driver_version", &g.driver_version),
            ("cuda_version", &g.cuda_version),
        ]),
        1.0,
    );
    let pct = |v: Option<u32>| v.map(|v| f64::from(v) / 100.0);
    let num = |v: Option<u32>| v.map(f64::from);
    let big = |v: Option<u64>| v.map(|v| v as f64);
    let mhz = |v: Option<u32>| v.map(|v| f64::from(v) * 1e6);
    let mw = |v: Option<u32>| v.map(|v| f64::from(v) / 1000.0);
    let gauges: [(&'static str, Option<f64>, &'static str); 14] = [
        (
            "convoy_gpu_utilization_ratio",
            pct(g.utilization_gpu_percent),
            "Share of time a kernel ran on the GPU (0..1).",
        ),
        (
            "convoy_gpu_memory_utilization_ratio",
            pct(g.utilization_memory_percent),
            "Share of time device memory was read or written (0..1).",
        ),
        (
            "convoy_gpu_memory_used_bytes",
            big(g.memory_used_bytes),
            "GPU framebuffer memory in use.",
        ),
        (
            "convoy_gpu_memory_total_bytes",
            big(g.memory_total_bytes),
            "GPU framebuffer memory installed.",
        ),
        (
            "convoy_gpu_temperature_celsius",
            num(g.temperature_celsius),
            "GPU die temperature.",
        ),
        (
            "convoy_gpu_power_watts",
            mw(g.power_draw_milliwatts),
            "GPU power draw.",
        ),
        (
            "convoy_gpu_power_limit_watts",
            mw(g.power_limit_milliwatts),
            "Enforced GPU power limit.",
        ),
        (
            "convoy_gpu_sm_clock_hertz",
            mhz(g.sm_clock_mhz),
            "SM clock.",
        ),
        (
            "convoy_gpu_memory_clock_hertz",
            mhz(g.memory_clock_mhz),
            "Memory clock.",
        ),
        (
            "convoy_gpu_fan_speed_ratio",
            pct(g.fan_speed_percent),
            "Intended fan speed (0..1).",
        ),
        (
            "convoy_gpu_pcie_link_generation",
            num(g.pcie_link_generation),
            "Current PCIe link generation.",
        ),
        (
            "convoy_gpu_pcie_link_width",
            num(g.pcie_link_width),
            "Current PCIe link width (lanes).",
        ),
        (
            "convoy_gpu_retired_pages",
            num(g.retired_pages),
            "Memory pages retired (single- plus double-bit ECC causes).",
        ),
        (
            "convoy_gpu_throttle_reasons",
            big(g.throttle_reasons),
            "Bitmask of NVML clock throttle reasons (0: not throttled).",
        ),
    ];
    for (name, value, help) in gauges {
        if let Some(v) = value {
            m.add(name, Kind::Gauge, help, &gl, v);
        }
    }
    for (kind, value) in [
        ("corrected", g.ecc_corrected),
        ("uncorrected", g.ecc_uncorrected),
    ] {
        if let Some(v) = value {
            m.add_owned(
                "convoy_gpu_ecc_errors_total",
                Kind::Counter,
                "ECC memory errors over the GPU's lifetime (aggregate counter), by type.",
                &with(&[("type", kind)]),
                v as f64,
            );
        }
    }
    m.add(
        "convoy_gpu_missing_fields",
        Kind::Gauge,
        "Fields NVML could not read for this GPU on the newest sample.",
        &gl,
        g.missing_fields.len() as f64,
    );
    let xid = t.xid.get(&g.uuid).copied().unwrap_or_default();
    m.add(
        "convoy_gpu_xid_errors_total",
        Kind::Counter,
        "XID errors reported by the driver since the control plane started.",
        &gl,
        xid.total as f64,
    );
    m.add(
        "convoy_gpu_last_xid",
        Kind::Gauge,
        "Number of the most recent XID error (0: none seen).",
        &gl,
        xid.last as f64,
    );
    let counts = t.events.get(&g.uuid);
    for kind in [
        GpuEventKind::Xid,
        GpuEventKind::EccUncorrected,
        GpuEventKind::OverTemperature,
        GpuEventKind::Lost,
        GpuEventKind::MemoryNearlyFull,
    ] {
        let n = counts
            .and_then(|c| c.get(&(kind as i32)))
            .copied()
            .unwrap_or(0);
        m.add_owned(
            "convoy_gpu_health_events_total",
            Kind::Counter,
            "GPU health events since the control plane started, by kind.",
            &with(&[("kind", event_kind_label(kind))]),
            n as f64,
        );
    }
    m.add(
        "convoy_gpu_processes",
        Kind::Gauge,
        "Compute processes running on the GPU.",
        &gl,
        g.processes.len() as f64,
    );
    for p in &g.processes {
        let pid = p.pid.to_string();
        m.add_owned(
            "convoy_gpu_process_memory_bytes",
            Kind::Gauge,
            "GPU memory used by one compute process, with its container and compose stack/service (empty outside containers).",
            &with(&[
                ("pid", &pid),
                ("container", &p.container_id),
                ("stack", &p.stack),
                ("service", &p.service),
            ]),
            p.used_memory_bytes as f64,
        );
    }
}

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
            .history
            .iter()
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
        let skip = self.history.len().saturating_sub(n);
        let history: Vec<serde_json::Value> = self
            .history
            .iter()
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
            "samples_held": self.history.len(),
            "host": latest.and_then(|s| s.host.as_ref()).map(host_metrics_json),
            "gpus": gpus.into_iter().map(|g| gpu_json(g, self)).collect::<Vec<_>>(),
            "events": events,
            "history": history,
        })
    }
}

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

/// Renders [`ControlPlaneHealth`] in the Prometheus text format (to be
/// appended to [`TelemetryStore::render_prometheus`]: the family names differ).
pub fn render_control_plane(h: &ControlPlaneHealth) -> String {
    let mut m = Families::default();
    m.add(
        "convoy_connected_agents",
        Kind::Gauge,
        "Agents with an open stream to this control plane.",
        &[],
        h.connected_agents as f64,
    );
    m.add(
        "convoy_enrolled_hosts",
        Kind::Gauge,
        "Hosts enrolled in the fleet.",
        &[],
        h.enrolled_hosts as f64,
    );
    for status in ROLLOUT_STATUSES {
        let n = h.rollouts_by_status.get(status).copied().unwrap_or(0);
        m.add(
            "convoy_rollouts",
            Kind::Gauge,
            "Recent rollouts (the last 50) by status.",
            &[("status", status)],
            n as f64,
        );
    }
    for status in ROLLOUT_STATUSES {
        let v = if h.current_rollout_status == Some(status) {
            1.0
        } else {
            0.0
        };
        m.add(
            "convoy_rollout_current_status",
            Kind::Gauge,
            "1 for the status of the current (newest) rollout, 0 for the others.",
            &[("status", status)],
            v,
        );
    }
    if let Some(n) = h.alert_outbox_pending {
        m.add(
            "convoy_alert_outbox_pending",
            Kind::Gauge,
            "Alert deliveries waiting in the outbox (not yet delivered or given up).",
            &[],
            n as f64,
        );
    }
    for (kind, n) in &h.stream_messages {
        m.add(
            "convoy_stream_messages_total",
            Kind::Counter,
            "Agent stream messages handled by the controller since start, by kind.",
            &[("kind", kind)],
            *n as f64,
        );
    }
    m.add(
        "convoy_telemetry_samples_received_total",
        Kind::Counter,
        "Telemetry samples received from agents since start.",
        &[],
        h.telemetry_samples as f64,
    );
    m.finish()
}

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Gauge,
    Counter,
}

#[derive(Debug)]
struct Family {
    kind: Kind,
    help: &'static str,
    lines: String,
}

/// Metric families in first-seen order, so each gets its `# HELP`/`# TYPE`
/// once with all its series (across hosts) grouped beneath.
#[derive(Debug, Default)]
struct Families {
    order: Vec<&'static str>,
    families: BTreeMap<&'static str, Family>,
}

impl Families {
    fn family(&mut self, name: &'static str, kind: Kind, help: &'static str) -> &mut Family {
        if !self.families.contains_key(name) {
            self.order.push(name);
        }
        self.families.entry(name).or_insert_with(|| Family {
            kind,
            help,
            lines: String::new(),
        })
    }

    fn add(
        &mut self,
        name: &'static str,
        kind: Kind,
        help: &'static str,
        labels: &[(&str, &str)],
        value: f64,
    ) {
        let f = self.family(name, kind, help);
        write_series(
            &mut f.lines,
            name,
            labels.iter().map(|(k, v)| (*k, *v)),
            value,
        );
    }

    fn add_owned(
        &mut self,
        name: &'static str,
        kind: Kind,
        help: &'static str,
        labels: &[(&str, String)],
        value: f64,
    ) {
        let f = self.family(name, kind, help);
        write_series(
            &mut f.lines,
            name,
            labels.iter().map(|(k, v)| (*k, v.as_str())),
            value,
        );
    }

    fn finish(self) -> String {
        let mut out = String::new();
        for name in self.order {
            let Some(f) = self.families.get(name) else {
                continue;
            };
            let kind = match f.kind {
                Kind::Gauge => "gauge",
                Kind::Counter => "counter",
            };
            let _ = writeln!(out, "# HELP {name} {}", escape_help(f.help));
            let _ = writeln!(out, "# TYPE {name} {kind}");
            out.push_str(&f.lines);
        }
        out
    }
}

fn write_series<'a>(
    out: &mut String,
    name: &str,
    labels: impl Iterator<Item = (&'a str, &'a str)>,
    value: f64,
) {
    out.push_str(name);
    let mut first = true;
    for (k, v) in labels {
        out.push(if first { '{' } else { ',' });
        first = false;
        out.push_str(k);
        out.push_str("=\"");
        escape_label_value(out, v);
        out.push('"');
    }
    if !first {
        out.push('}');
    }
    out.push(' ');
    out.push_str(&format_value(value));
    out.push('\n');
}

/// Label values: backslash, double quote and line feed are escaped.
fn escape_label_value(out: &mut String, v: &str) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// HELP text: backslash and line feed are escaped.
fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests;
