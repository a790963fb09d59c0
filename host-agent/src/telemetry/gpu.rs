//! NVIDIA GPUs through NVML (nvml-wrapper), loaded at run time.
//!
//! No library, no driver or no device all mean "no GPUs": one log line, and
//! a new attempt at most every `retry_interval` (default 5 min), never a
//! retry storm. A failing call for one field of one GPU leaves that field
//! unset and names it in `missing_fields`; it never fails the sample.
//!
//! XID errors come from an NVML event set waited on in its own OS thread
//! (the wait is a blocking call); the sampler drains them into the next
//! sample. ECC, temperature, memory and lost-GPU events are derived from the
//! polled figures by [`HealthTracker`].

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use convoy_shared::proto::v1::{GpuEvent, GpuEventKind, GpuProcess, GpuSample};
use nvml_wrapper::Nvml;
use nvml_wrapper::bitmasks::event::EventTypes;
use nvml_wrapper::enum_wrappers::device::{
    Clock, EccCounter, MemoryError, RetirementCause, TemperatureSensor,
};
use nvml_wrapper::enums::device::UsedGpuMemory;
use nvml_wrapper::enums::event::XidError;
use nvml_wrapper::error::NvmlError;

use super::cgroup::ProcCgroups;
use super::containers::ContainerDirectory;

/// The system's NVML, found by the dynamic loader.
pub const DEFAULT_NVML_LIBRARY: &str = "libnvidia-ml.so.1";
/// Environment variable overriding the library path.
pub const NVML_LIBRARY_ENV: &str = "CONVOY_NVML_LIBRARY";
/// Events queued between two samples, beyond which the oldest are dropped.
const EVENT_QUEUE_CAP: usize = 256;

/// Thresholds for the derived GPU health events.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HealthThresholds {
    /// Over-temperature event at or above this; re-armed 5 °C below.
    pub over_temperature_celsius: u32,
    /// Memory nearly full at or above this used/total ratio; re-armed 0.05 below.
    pub memory_nearly_full_ratio: f64,
}

impl Default for HealthThresholds {
    fn default() -> Self {
        Self {
            over_temperature_celsius: 85,
            memory_nearly_full_ratio: 0.95,
        }
    }
}

/// GPU sampling settings.
#[derive(Debug, Clone)]
pub struct GpuConfig {
    /// Path (or bare soname) handed to the dynamic loader.
    pub library: PathBuf,
    /// Minimum time between two NVML initialisation attempts.
    pub retry_interval: Duration,
    /// Timeout of one event-set wait; bounds how long the event thread takes
    /// to notice a shutdown.
    pub event_wait: Duration,
    pub thresholds: HealthThresholds,
}

impl Default for GpuConfig {
    fn default() -> Self {
        Self {
            library: PathBuf::from(DEFAULT_NVML_LIBRARY),
            retry_interval: Duration::from_secs(300),
            event_wait: Duration::from_secs(5),
            thresholds: HealthThresholds::default(),
        }
    }
}

/// The library path: `CONVOY_NVML_LIBRARY` wins over the config file's
/// `nvml_library`, which wins over the default `libnvidia-ml.so.1`. An empty
/// value counts as unset.
pub fn resolve_nvml_library(
    config_value: Option<&Path>,
    env_value: Option<&std::ffi::OsStr>,
) -> PathBuf {
    if let Some(env) = env_value.filter(|v| !v.is_empty()) {
        return PathBuf::from(env);
    }
    if let Some(cfg) = config_value.filter(|v| !v.as_os_str().is_empty()) {
        return cfg.to_path_buf();
    }
    PathBuf::from(DEFAULT_NVML_LIBRARY)
}

/// [`resolve_nvml_library`] with the process environment.
pub fn nvml_library_from_env(config_value: Option<&Path>) -> PathBuf {
    resolve_nvml_library(config_value, std::env::var_os(NVML_LIBRARY_ENV).as_deref())
}

struct Loaded {
    nvml: Arc<Nvml>,
    driver_version: String,
    cuda_version: String,
    events: Option<EventWatcher>,
}

enum State {
    NotTried,
    Loaded(Loaded),
    Unavailable { next_retry: Instant },
}

/// Samples every GPU NVML sees; owns the NVML handle and the event thread.
pub struct GpuSampler {
    config: GpuConfig,
    state: State,
    /// Whether "no GPUs" has been logged since the last time GPUs were seen.
    logged_absence: bool,
    cgroups: ProcCgroups,
    health: HealthTracker,
}

impl std::fmt::Debug for GpuSampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuSampler")
            .field("library", &self.config.library)
            .field("loaded", &matches!(self.state, State::Loaded(_)))
            .finish_non_exhaustive()
    }
}

impl GpuSampler {
    pub fn new(config: GpuConfig, cgroups: ProcCgroups) -> Self {
        let health = HealthTracker::new(config.thresholds);
        Self {
            config,
            state: State::NotTried,
            logged_absence: false,
            cgroups,
            health,
        }
    }

    /// Whether NVML is loaded right now.
    pub fn is_loaded(&self) -> bool {
        matches!(self.state, State::Loaded(_))
    }

    fn absent(&mut self, why: &str, error: Option<&NvmlError>) {
        if !self.logged_absence {
            self.logged_absence = true;
            tracing::info!(
                library = %self.config.library.display(),
                error = error.map(|e| e.to_string()).unwrap_or_default(),
                retry_secs = self.config.retry_interval.as_secs(),
                "no GPUs: {why}"
            );
        } else {
            tracing::debug!(error = ?error, "still no GPUs: {why}");
        }
    }

    fn ensure_loaded(&mut self) {
        let due = match &self.state {
            State::Loaded(_) => return,
            State::NotTried => true,
            State::Unavailable { next_retry } => Instant::now() >= *next_retry,
        };
        if !due {
            return;
        }
        match Nvml::builder()
            .lib_path(self.config.library.as_os_str())
            .init()
        {
            Ok(nvml) => {
                let nvml = Arc::new(nvml);
                let driver_version = nvml.sys_driver_version().unwrap_or_default();
                let cuda_version = nvml
                    .sys_cuda_driver_version()
                    .map(cuda_version_string)
                    .unwrap_or_default();
                let count = nvml.device_count().unwrap_or(0);
                if count == 0 {
                    self.absent("NVML loaded but reports no devices", None);
                    self.state = State::Unavailable {
                        next_retry: Instant::now() + self.config.retry_interval,
                    };
                    return;
                }
                tracing::info!(
                    library = %self.config.library.display(),
                    gpus = count,
                    driver = %driver_version,
                    cuda = %cuda_version,
                    "NVML loaded"
                );
                self.logged_absence = false;
                let events = EventWatcher::spawn(nvml.clone(), self.config.event_wait);
                self.state = State::Loaded(Loaded {
                    nvml,
                    driver_version,
                    cuda_version,
                    events,
                });
            }
            Err(e) => {
                self.absent("NVML unavailable", Some(&e));
                self.state = State::Unavailable {
                    next_retry: Instant::now() + self.config.retry_interval,
                };
            }
        }
    }

    /// One pass over every GPU; returns the samples and the health events
    /// (XID from the event thread, plus the derived ones) since the last call.
    pub fn sample(&mut self, containers: &ContainerDirectory) -> (Vec<GpuSample>, Vec<GpuEvent>) {
        self.ensure_loaded();
        let mut gpus = Vec::new();
        let mut events = Vec::new();
        let mut unload = None;
        if let State::Loaded(loaded) = &self.state {
            match loaded.nvml.device_count() {
                Ok(count) => {
                    for index in 0..count {
                        match read_gpu(loaded, index, &self.cgroups, containers) {
                            Ok(gpu) => gpus.push(gpu),
                            Err(e) => tracing::warn!(gpu = index, error = %e, "cannot read GPU"),
                        }
                    }
                }
                Err(e) => unload = Some(e),
            }
            if let Some(watcher) = &loaded.events {
                events.extend(watcher.drain());
            }
        }
        if let Some(e) = unload {
            // The driver went away under us: release NVML, retry later.
            self.absent("NVML stopped answering", Some(&e));
            self.state = State::Unavailable {
                next_retry: Instant::now() + self.config.retry_interval,
            };
        }
        events.extend(self.health.observe(&gpus, crate::unix_ms()));
        (gpus, events)
    }
}

/// CUDA driver version integer (12040) as "12.4".
pub fn cuda_version_string(v: i32) -> String {
    format!("{}.{}", v / 1000, (v % 1000) / 10)
}

fn field<T>(missing: &mut Vec<String>, name: &str, r: Result<T, NvmlError>) -> Option<T> {
    match r {
        Ok(v) => Some(v),
        Err(e) => {
            tracing::trace!(field = name, error = %e, "NVML field unavailable");
            missing.push(name.to_string());
            None
        }
    }
}

fn read_gpu(
    loaded: &Loaded,
    index: u32,
    cgroups: &ProcCgroups,
    containers: &ContainerDirectory,
) -> Result<GpuSample, NvmlError> {
    let device = loaded.nvml.device_by_index(index)?;
    // Without its UUID a GPU cannot be told apart from another: skip it.
    let uuid = device.uuid()?;
    let mut missing = Vec::new();
    let m = &mut missing;
    let name = field(m, "name", device.name()).unwrap_or_default();
    let util = field(m, "utilization", device.utilization_rates());
    let mem = field(m, "memory", device.memory_info());
    let temperature_celsius = field(
        m,
        "temperature_celsius",
        device.temperature(TemperatureSensor::Gpu),
    );
    let power_draw_milliwatts = field(m, "power_draw_milliwatts", device.power_usage());
    let power_limit_milliwatts = field(m, "power_limit_milliwatts", device.enforced_power_limit());
    let sm_clock_mhz = field(m, "sm_clock_mhz", device.clock_info(Clock::SM));
    let memory_clock_mhz = field(m, "memory_clock_mhz", device.clock_info(Clock::Memory));
    let fan_speed_percent = field(m, "fan_speed_percent", device.fan_speed(0));
    let pcie_link_generation = field(m, "pcie_link_generation", device.current_pcie_link_gen());
    let pcie_link_width = field(m, "pcie_link_width", device.current_pcie_link_width());
    let ecc_corrected = field(
        m,
        "ecc_corrected",
        device.total_ecc_errors(MemoryError::Corrected, EccCounter::Aggregate),
    );
    let ecc_uncorrected = field(
        m,
        "ecc_uncorrected",
        device.total_ecc_errors(MemoryError::Uncorrected, EccCounter::Aggregate),
    );
    let retired_pages = field(
        m,
        "retired_pages",
        device
            .retired_pages(RetirementCause::MultipleSingleBitEccErrors)
            .and_then(|sbe| {
                device
                    .retired_pages(RetirementCause::DoubleBitEccError)
                    .map(|dbe| u32::try_from(sbe.len() + dbe.len()).unwrap_or(u32::MAX))
            }),
    );
    let throttle_reasons = field(
        m,
        "throttle_reasons",
        device.current_throttle_reasons().map(|r| r.bits()),
    );
    let processes = field(m, "processes", device.running_compute_processes())
        .unwrap_or_default()
        .into_iter()
        .map(|p| {
            let container_id = cgroups.container_of(p.pid).unwrap_or_default();
            let (stack, service) = containers.labels_of(&container_id).unwrap_or_default();
            GpuProcess {
                pid: p.pid,
                used_memory_bytes: match p.used_gpu_memory {
                    UsedGpuMemory::Used(b) => b,
                    UsedGpuMemory::Unavailable => 0,
                },
                container_id,
                stack,
                service,
            }
        })
        .collect();
    Ok(GpuSample {
        index,
        uuid,
        name,
        driver_version: loaded.driver_version.clone(),
        cuda_version: loaded.cuda_version.clone(),
        utilization_gpu_percent: util.as_ref().map(|u| u.gpu),
        utilization_memory_percent: util.as_ref().map(|u| u.memory),
        memory_used_bytes: mem.as_ref().map(|m| m.used),
        memory_total_bytes: mem.as_ref().map(|m| m.total),
        temperature_celsius,
        power_draw_milliwatts,
        power_limit_milliwatts,
        sm_clock_mhz,
        memory_clock_mhz,
        fan_speed_percent,
        pcie_link_generation,
        pcie_link_width,
        ecc_corrected,
        ecc_uncorrected,
        retired_pages,
        throttle_reasons,
        processes,
        missing_fields: missing,
    })
}

/// The event-set thread and the queue it fills.
struct EventWatcher {
    stop: Arc<AtomicBool>,
    queue: Arc<Mutex<VecDeque<GpuEvent>>>,
}

impl EventWatcher {
    /// `None` when no GPU supports XID events (nothing to wait for).
    fn spawn(nvml: Arc<Nvml>, wait: Duration) -> Option<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let queue = Arc::new(Mutex::new(VecDeque::new()));
        let (t_stop, t_queue) = (stop.clone(), queue.clone());
        let wait_ms = u32::try_from(wait.as_millis()).unwrap_or(u32::MAX).max(1);
        let spawned = std::thread::Builder::new()
            .name("convoy-nvml-events".into())
            .spawn(move || watch_events(&nvml, wait_ms, &t_stop, &t_queue));
        match spawned {
            Ok(_detached) => Some(Self { stop, queue }),
            Err(e) => {
                tracing::warn!(error = %e, "cannot start the NVML event thread: no XID events");
                None
            }
        }
    }

    fn drain(&self) -> Vec<GpuEvent> {
        let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        q.drain(..).collect()
    }
}

impl Drop for EventWatcher {
    fn drop(&mut self) {
        // The thread notices within one wait timeout and releases its NVML handle.
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn watch_events(nvml: &Nvml, wait_ms: u32, stop: &AtomicBool, queue: &Mutex<VecDeque<GpuEvent>>) {
    let count = nvml.device_count().unwrap_or(0);
    let mut set = match nvml.create_event_set() {
        Ok(s) => s,
        Err(e) => {
            tracing::info!(error = %e, "NVML event sets unsupported: no XID events");
            return;
        }
    };
    let mut registered = 0u32;
    for index in 0..count {
        let Ok(device) = nvml.device_by_index(index) else {
            continue;
        };
        let supported = device
            .supported_event_types()
            .unwrap_or(EventTypes::empty());
        if !supported.contains(EventTypes::CRITICAL_XID_ERROR) {
            continue;
        }
        match device.register_events(EventTypes::CRITICAL_XID_ERROR, set) {
            Ok(s) => {
                set = s;
                registered += 1;
            }
            Err(e) => {
                // nvml-wrapper frees the set on failure: start a fresh one
                // (devices registered before are lost; rare enough).
                tracing::warn!(gpu = index, error = %e.error, "cannot register XID events");
                match nvml.create_event_set() {
                    Ok(s) => set = s,
                    Err(_) => return,
                }
                registered = 0;
            }
        }
    }
    if registered == 0 {
        tracing::info!("no GPU supports XID events");
        return;
    }
    while !stop.load(Ordering::Relaxed) {
        match set.wait(wait_ms) {
            Ok(data) => {
                let xid = match data.event_data {
                    Some(XidError::Value(v)) => v,
                    Some(XidError::Unknown) | None => 999,
                };
                let index = data.device.index().unwrap_or(u32::MAX);
                let uuid = data.device.uuid().unwrap_or_default();
                tracing::warn!(gpu = index, %uuid, xid, "GPU XID error");
                let event = GpuEvent {
                    gpu_index: index,
                    uuid,
                    kind: GpuEventKind::Xid as i32,
                    value: xid,
                    message: format!("XID {xid} on GPU {index}"),
                    at_unix_ms: crate::unix_ms(),
                };
                let mut q = queue.lock().unwrap_or_else(|p| p.into_inner());
                if q.len() >= EVENT_QUEUE_CAP {
                    q.pop_front();
                }
                q.push_back(event);
            }
            Err(NvmlError::Timeout) => {}
            Err(e) => {
                // Not a transient condition (GPU lost, driver gone): stop
                // rather than spin; the sampler reports the loss.
                tracing::warn!(error = %e, "NVML event wait failed: XID watch stopped");
                return;
            }
        }
    }
}

#[derive(Debug, Default, Clone)]
struct GpuHealth {
    index: u32,
    ecc_uncorrected: Option<u64>,
    over_temperature: bool,
    memory_full: bool,
}

/// Derives health events from consecutive samples, edge-triggered so a hot
/// GPU yields one event, not one per sample.
#[derive(Debug)]
pub struct HealthTracker {
    thresholds: HealthThresholds,
    gpus: BTreeMap<String, GpuHealth>,
}

impl HealthTracker {
    pub fn new(thresholds: HealthThresholds) -> Self {
        Self {
            thresholds,
            gpus: BTreeMap::new(),
        }
    }

    pub fn observe(&mut self, samples: &[GpuSample], at_unix_ms: i64) -> Vec<GpuEvent> {
        let mut events = Vec::new();
        let event = |gpu: &GpuSample, kind: GpuEventKind, value: u64, message: String| GpuEvent {
            gpu_index: gpu.index,
            uuid: gpu.uuid.clone(),
            kind: kind as i32,
            value,
            message,
            at_unix_ms,
        };
        for gpu in samples {
            let h = self.gpus.entry(gpu.uuid.clone()).or_default();
            h.index = gpu.index;
            if let Some(now) = gpu.ecc_uncorrected {
                // A lifetime counter: only growth after the first look is news.
                if let Some(before) = h.ecc_uncorrected
                    && now > before
                {
                    events.push(event(
                        gpu,
                        GpuEventKind::EccUncorrected,
                        now - before,
                        format!(
                            "{} new uncorrected ECC errors on GPU {} ({now} total)",
                            now - before,
                            gpu.index
                        ),
                    ));
                }
                h.ecc_uncorrected = Some(now);
            }
            if let Some(t) = gpu.temperature_celsius {
                let limit = self.thresholds.over_temperature_celsius;
                if !h.over_temperature && t >= limit {
                    h.over_temperature = true;
                    events.push(event(
                        gpu,
                        GpuEventKind::OverTemperature,
                        u64::from(t),
                        format!("GPU {} at {t} °C (threshold {limit} °C)", gpu.index),
                    ));
                } else if h.over_temperature && t + 5 < limit {
                    h.over_temperature = false;
                }
            }
            if let (Some(used), Some(total)) = (gpu.memory_used_bytes, gpu.memory_total_bytes)
                && total > 0
            {
                #[allow(clippy::cast_precision_loss)]
                let ratio = used as f64 / total as f64;
                let limit = self.thresholds.memory_nearly_full_ratio;
                if !h.memory_full && ratio >= limit {
                    h.memory_full = true;
                    events.push(event(
                        gpu,
                        GpuEventKind::MemoryNearlyFull,
                        used,
                        format!("GPU {} memory {:.1}% full", gpu.index, ratio * 100.0),
                    ));
                } else if h.memory_full && ratio < limit - 0.05 {
                    h.memory_full = false;
                }
            }
        }
        // GPUs seen before and absent now fell off the bus (or the driver lost them).
        let lost: Vec<String> = self
            .gpus
            .keys()
            .filter(|uuid| !samples.iter().any(|g| &g.uuid == *uuid))
            .cloned()
            .collect();
        for uuid in lost {
            if let Some(h) = self.gpus.remove(&uuid) {
                events.push(GpuEvent {
                    gpu_index: h.index,
                    message: format!("GPU {} ({uuid}) is gone", h.index),
                    uuid,
                    kind: GpuEventKind::Lost as i32,
                    value: 0,
                    at_unix_ms,
                });
            }
        }
        events
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn gpu(index: u32, uuid: &str) -> GpuSample {
        GpuSample {
            index,
            uuid: uuid.into(),
            temperature_celsius: Some(60),
            memory_used_bytes: Some(10),
            memory_total_bytes: Some(100),
            ecc_uncorrected: Some(2),
            ..Default::default()
        }
    }

    fn kinds(events: &[GpuEvent]) -> Vec<GpuEventKind> {
        events
            .iter()
            .map(|e| GpuEventKind::try_from(e.kind).unwrap())
            .collect()
    }

    #[test]
    fn library_path_precedence() {
        use std::ffi::OsStr;
        let cfg = Path::new("/opt/nvml/libnvidia-ml.so.1");
        assert_eq!(
            resolve_nvml_library(None, None),
            PathBuf::from(DEFAULT_NVML_LIBRARY)
        );
        assert_eq!(resolve_nvml_library(Some(cfg), None), cfg);
        assert_eq!(
            resolve_nvml_library(Some(cfg), Some(OsStr::new("/x.so"))),
            PathBuf::from("/x.so")
        );
        assert_eq!(resolve_nvml_library(Some(cfg), Some(OsStr::new(""))), cfg);
        assert_eq!(
            resolve_nvml_library(Some(Path::new("")), None),
            PathBuf::from(DEFAULT_NVML_LIBRARY)
        );
    }

    #[test]
    fn cuda_versions() {
        assert_eq!(cuda_version_string(12040), "12.4");
        assert_eq!(cuda_version_string(11080), "11.8");
        assert_eq!(cuda_version_string(12000), "12.0");
    }

    #[test]
    fn steady_gpus_raise_nothing_and_historic_ecc_is_not_news() {
        let mut h = HealthTracker::new(HealthThresholds::default());
        let s = vec![gpu(0, "a"), gpu(1, "b")];
        assert!(h.observe(&s, 1).is_empty());
        assert!(h.observe(&s, 2).is_empty());
    }

    #[test]
    fn ecc_growth_is_an_event_with_the_delta() {
        let mut h = HealthTracker::new(HealthThresholds::default());
        h.observe(&[gpu(0, "a")], 1);
        let mut g = gpu(0, "a");
        g.ecc_uncorrected = Some(5);
        let ev = h.observe(&[g], 2);
        assert_eq!(kinds(&ev), vec![GpuEventKind::EccUncorrected]);
        assert_eq!(
            (ev[0].value, ev[0].uuid.as_str(), ev[0].at_unix_ms),
            (3, "a", 2)
        );
    }

    #[test]
    fn over_temperature_is_edge_triggered_with_hysteresis() {
        let mut h = HealthTracker::new(HealthThresholds {
            over_temperature_celsius: 80,
            ..Default::default()
        });
        let at = |t| {
            let mut g = gpu(0, "a");
            g.temperature_celsius = Some(t);
            vec![g]
        };
        assert_eq!(
            kinds(&h.observe(&at(82), 1)),
            vec![GpuEventKind::OverTemperature]
        );
        assert!(h.observe(&at(85), 2).is_empty(), "still hot: no repeat");
        assert!(
            h.observe(&at(77), 3).is_empty(),
            "within hysteresis: stays armed off"
        );
        assert!(h.observe(&at(81), 4).is_empty());
        assert!(h.observe(&at(70), 5).is_empty(), "cooled down: re-armed");
        let ev = h.observe(&at(90), 6);
        assert_eq!(kinds(&ev), vec![GpuEventKind::OverTemperature]);
        assert_eq!(ev[0].value, 90);
    }

    #[test]
    fn memory_nearly_full() {
        let mut h = HealthTracker::new(HealthThresholds::default());
        let used = |u| {
            let mut g = gpu(0, "a");
            g.memory_used_bytes = Some(u);
            vec![g]
        };
        assert_eq!(
            kinds(&h.observe(&used(96), 1)),
            vec![GpuEventKind::MemoryNearlyFull]
        );
        assert!(h.observe(&used(99), 2).is_empty());
        assert!(h.observe(&used(50), 3).is_empty());
        assert_eq!(
            kinds(&h.observe(&used(95), 4)),
            vec![GpuEventKind::MemoryNearlyFull]
        );
    }

    #[test]
    fn a_vanished_gpu_is_lost_once() {
        let mut h = HealthTracker::new(HealthThresholds::default());
        h.observe(&[gpu(0, "a"), gpu(1, "b")], 1);
        let ev = h.observe(&[gpu(0, "a")], 2);
        assert_eq!(kinds(&ev), vec![GpuEventKind::Lost]);
        assert_eq!((ev[0].gpu_index, ev[0].uuid.as_str()), (1, "b"));
        assert!(h.observe(&[gpu(0, "a")], 3).is_empty());
        assert_eq!(kinds(&h.observe(&[], 4)), vec![GpuEventKind::Lost]);
    }

    #[test]
    fn missing_library_is_no_gpus_and_no_retry_storm() {
        let cfg = GpuConfig {
            library: PathBuf::from("/nonexistent/libnvidia-ml.so.1"),
            retry_interval: Duration::from_secs(3600),
            ..Default::default()
        };
        let mut s = GpuSampler::new(cfg, ProcCgroups::default());
        let dir = ContainerDirectory::default();
        for _ in 0..3 {
            let (gpus, events) = s.sample(&dir);
            assert!(gpus.is_empty() && events.is_empty());
            assert!(!s.is_loaded());
        }
        assert!(
            matches!(s.state, State::Unavailable { next_retry } if next_retry > Instant::now() + Duration::from_secs(3000))
        );
    }
}
