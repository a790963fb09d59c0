//! Host and GPU telemetry: a sampler task off the apply path that fills a
//! bounded [`TelemetryBuffer`] the stream drains.
//!
//! ```text
//! Sampler::new(config) ──run(buffer)──▶ every interval: sample_once()
//!   host: sysinfo (CPU, load, memory, disks, networks)
//!   gpus: NVML (loaded at run time) + /proc/<pid>/cgroup → container → stack/service
//!   events: XID (event thread) + derived health events
//!                                 ──▶ TelemetryBuffer (drop oldest, counted)
//! ```

mod buffer;
pub mod cgroup;
mod containers;
pub mod gpu;
mod host;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use convoy_shared::proto::v1::TelemetrySample;

pub use buffer::{DEFAULT_BUFFER_CAPACITY, TelemetryBuffer};
pub use cgroup::{ProcCgroups, container_id_from_cgroup};
pub use containers::ContainerDirectory;
pub use gpu::{
    DEFAULT_NVML_LIBRARY, GpuConfig, GpuSampler, HealthThresholds, HealthTracker, NVML_LIBRARY_ENV,
    nvml_library_from_env, resolve_nvml_library,
};
pub use host::HostSampler;

/// Default sampling interval.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);

/// Telemetry settings.
#[derive(Debug, Clone)]
pub struct TelemetryConfig {
    pub interval: Duration,
    /// `false` skips NVML entirely (no library load attempt).
    pub gpus_enabled: bool,
    pub gpu: GpuConfig,
    /// Where `<pid>/cgroup` files live (`/proc`; injectable for tests).
    pub proc_root: PathBuf,
    /// Reported as `HostMetrics.docker_version` (the runtime knows it).
    pub docker_version: String,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            interval: DEFAULT_INTERVAL,
            gpus_enabled: true,
            gpu: GpuConfig::default(),
            proc_root: PathBuf::from("/proc"),
            docker_version: String::new(),
        }
    }
}

impl TelemetryConfig {
    /// The defaults with the NVML library from `nvml_library` (config file)
    /// and `CONVOY_NVML_LIBRARY` (environment, wins).
    pub fn with_nvml_library(mut self, config_value: Option<&std::path::Path>) -> Self {
        self.gpu.library = nvml_library_from_env(config_value);
        self
    }
}

/// Takes host and GPU samples. Blocking: `run` calls it on the blocking pool.
#[derive(Debug)]
pub struct Sampler {
    interval: Duration,
    host: HostSampler,
    gpu: Option<GpuSampler>,
    containers: ContainerDirectory,
}

impl Sampler {
    pub fn new(config: TelemetryConfig) -> Self {
        Self::with_containers(config, ContainerDirectory::new())
    }

    /// With a container directory the agent keeps up to date.
    pub fn with_containers(config: TelemetryConfig, containers: ContainerDirectory) -> Self {
        let cgroups = ProcCgroups::new(config.proc_root);
        Self {
            interval: config.interval.max(Duration::from_millis(100)),
            host: HostSampler::new(config.docker_version),
            gpu: config
                .gpus_enabled
                .then(|| GpuSampler::new(config.gpu, cgroups)),
            containers,
        }
    }

    /// The directory used to name GPU processes' stacks and services.
    pub fn containers(&self) -> ContainerDirectory {
        self.containers.clone()
    }

    pub fn set_docker_version(&mut self, version: impl Into<String>) {
        self.host.set_docker_version(version);
    }

    /// Whether NVML is loaded (GPUs are being reported).
    pub fn gpus_loaded(&self) -> bool {
        self.gpu.as_ref().is_some_and(GpuSampler::is_loaded)
    }

    /// One sample, now. Never fails: what cannot be read is left out.
    pub fn sample_once(&mut self) -> TelemetrySample {
        let host = self.host.sample();
        let (gpus, gpu_events) = match &mut self.gpu {
            Some(gpu) => gpu.sample(&self.containers),
            None => (Vec::new(), Vec::new()),
        };
        TelemetrySample {
            at_unix_ms: crate::unix_ms(),
            host: Some(host),
            gpus,
            gpu_events,
        }
    }

    /// Samples every interval into `buffer` until the task is aborted (or
    /// the runtime shuts down). Sampling runs on the blocking pool, so a slow
    /// NVML call never stalls the async workers or the apply path.
    pub async fn run(self, buffer: Arc<TelemetryBuffer>) {
        let mut ticker = tokio::time::interval(self.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The first tick fires at once; skip it so CPU usage has a full interval delta.
        ticker.tick().await;
        let mut sampler = self;
        loop {
            ticker.tick().await;
            let joined = tokio::task::spawn_blocking(move || {
                let sample = sampler.sample_once();
                (sampler, sample)
            })
            .await;
            match joined {
                Ok((s, sample)) => {
                    sampler = s;
                    if buffer.push(sample) {
                        tracing::debug!(
                            dropped = buffer.pending_dropped(),
                            "telemetry buffer full: dropped oldest"
                        );
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "telemetry sampler panicked: telemetry stopped");
                    return;
                }
            }
        }
    }
}
