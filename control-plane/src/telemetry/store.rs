//! The fleet's telemetry in memory: the latest sample and a bounded
//! history per host, with XID and GPU health-event counters. Pure: no I/O,
//! no clock (samples carry the agents' times).

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use convoy_shared::proto::v1::{GpuEventKind, TelemetryBatch, TelemetrySample};

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
}
