//! Typed compose model after interpolation and normalisation: short and long
//! syntaxes are folded into one form, port ranges are expanded, `env_file`
//! contents are merged into `environment`. Maps are `BTreeMap` so the JSON
//! encoding is canonical (see `render` for the revision hash).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ComposeFile {
    pub services: BTreeMap<String, Service>,
    /// Top-level networks. `default` is implied, as in compose.
    pub networks: BTreeMap<String, NetworkDef>,
    /// Top-level named volumes.
    pub volumes: BTreeMap<String, VolumeDef>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Service {
    pub image: String,
    /// Exec form. A string in the file is split as compose does (shell words).
    pub command: Option<Vec<String>>,
    pub entrypoint: Option<Vec<String>>,
    /// After merging `env_file`s (in order) then `environment` on top.
    /// `None`: listed without a value and not set in the stack's `.env`.
    pub environment: BTreeMap<String, Option<String>>,
    pub ports: Vec<PortMapping>,
    pub volumes: Vec<VolumeMount>,
    /// Service networks with their options; `default` when none are given.
    pub networks: BTreeMap<String, ServiceNetwork>,
    pub depends_on: BTreeMap<String, Dependency>,
    pub healthcheck: Option<Healthcheck>,
    pub restart: RestartPolicy,
    pub labels: BTreeMap<String, String>,
    pub user: Option<String>,
    pub working_dir: Option<String>,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    pub devices: Vec<DeviceMapping>,
    /// `host:ip` entries, as the engine takes them.
    pub extra_hosts: Vec<String>,
    pub logging: Option<Logging>,
    pub ulimits: BTreeMap<String, Ulimit>,
    pub stop_signal: Option<String>,
    pub stop_grace_period: Option<Duration>,
    pub resources: Resources,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    #[default]
    Tcp,
    Udp,
    Sctp,
}

/// One container port (ranges in the file are expanded to one entry each).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortMapping {
    pub target: u16,
    /// `None`: the engine picks an ephemeral host port.
    pub published: Option<u16>,
    /// `None`: all interfaces.
    pub host_ip: Option<String>,
    pub protocol: Protocol,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MountKind {
    /// A named volume (declared at top level) or anonymous volume (no source).
    Volume,
    /// A host path. Relative paths in the file are relative to the stack's
    /// directory and are carried in `RenderedStack::files`.
    Bind,
    Tmpfs,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeMount {
    pub kind: MountKind,
    /// Volume name or host path; `None` for tmpfs and anonymous volumes.
    pub source: Option<String>,
    pub target: String,
    pub read_only: bool,
    /// Bind only: the source is a path relative to the stack directory (its
    /// content ships in `RenderedStack::files` under this relative path).
    pub relative: bool,
    /// Tmpfs only: size in bytes.
    pub tmpfs_size: Option<u64>,
    /// Volume only: `volume.nocopy`.
    pub nocopy: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceNetwork {
    pub aliases: Vec<String>,
    pub ipv4_address: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DependencyCondition {
    #[default]
    ServiceStarted,
    ServiceHealthy,
    ServiceCompletedSuccessfully,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dependency {
    pub condition: DependencyCondition,
    /// Compose's `required` (default true): a missing optional dependency is skipped.
    pub required: bool,
    /// Compose's `restart`: restart this service when the dependency is recreated.
    pub restart: bool,
}

impl Default for Dependency {
    fn default() -> Self {
        Self {
            condition: DependencyCondition::ServiceStarted,
            required: true,
            restart: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Healthcheck {
    /// `["CMD", ...]`, `["CMD-SHELL", "..."]` or `["NONE"]` (a string in the
    /// file becomes CMD-SHELL, as in compose).
    pub test: Vec<String>,
    pub interval: Option<Duration>,
    pub timeout: Option<Duration>,
    pub retries: Option<u32>,
    pub start_period: Option<Duration>,
    pub start_interval: Option<Duration>,
    /// `disable: true` (same as test NONE).
    pub disable: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RestartPolicy {
    #[default]
    No,
    Always,
    UnlessStopped,
    OnFailure {
        max_retries: Option<u32>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceMapping {
    pub host_path: String,
    pub container_path: String,
    /// e.g. "rwm".
    pub permissions: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Logging {
    pub driver: Option<String>,
    pub options: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ulimit {
    pub soft: i64,
    pub hard: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Resources {
    pub limits: ResourceLimits,
    pub reservations: ResourceReservations,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ResourceLimits {
    /// CPUs (e.g. 1.5).
    pub cpus: Option<f64>,
    pub memory_bytes: Option<u64>,
    pub pids: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ResourceReservations {
    pub cpus: Option<f64>,
    pub memory_bytes: Option<u64>,
    pub devices: Vec<DeviceRequest>,
}

/// `deploy.resources.reservations.devices[]`; becomes an engine DeviceRequest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceRequest {
    /// e.g. "nvidia".
    pub driver: Option<String>,
    pub count: DeviceCount,
    pub device_ids: Vec<String>,
    /// One OR-group of capabilities, as compose sends it (e.g. ["gpu"]).
    pub capabilities: Vec<String>,
    pub options: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceCount {
    /// `count: all`, or no count and no device_ids (engine: -1).
    All,
    Count(u32),
    /// device_ids given instead of a count (engine: 0).
    Ids,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkDef {
    pub driver: Option<String>,
    /// Not created by Convoy; must exist on the host.
    pub external: bool,
    /// Engine-side name (compose default: `<project>_<key>`).
    pub name: Option<String>,
    pub internal: bool,
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeDef {
    pub driver: Option<String>,
    pub external: bool,
    pub name: Option<String>,
    pub driver_opts: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
}
