//! Compose service → [`ContainerSpec`] → engine create body. Both steps are
//! pure so they can be tested without an engine.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use bollard::models::{
    ContainerCreateBody, DeviceMapping as EngineDeviceMapping,
    DeviceRequest as EngineDeviceRequest, EndpointIpamConfig, EndpointSettings, HealthConfig,
    HostConfig, HostConfigLogConfig, Mount, MountTmpfsOptions, MountType, MountVolumeOptions,
    NetworkingConfig, PortBinding, ResourcesUlimits, RestartPolicy as EngineRestartPolicy,
    RestartPolicyNameEnum,
};
use convoy_shared::compose::{
    ComposeFile, DeviceCount, DeviceMapping, Healthcheck, Logging, MountKind, NetworkDef,
    PortMapping, Protocol, Resources, RestartPolicy, Service, Ulimit, VolumeDef, VolumeMount,
};
use sha2::{Digest, Sha256};

pub const LABEL_PROJECT: &str = "com.docker.compose.project";
pub const LABEL_SERVICE: &str = "com.docker.compose.service";
pub const LABEL_CONTAINER_NUMBER: &str = "com.docker.compose.container-number";
pub const LABEL_ONEOFF: &str = "com.docker.compose.oneoff";
pub const LABEL_CONFIG_HASH: &str = "com.docker.compose.config-hash";

/// One network the container joins.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkAttachment {
    /// Engine-side network name.
    pub name: String,
    pub aliases: Vec<String>,
    pub ipv4_address: Option<String>,
}

/// Everything needed to create one container; engine-neutral and plain.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ContainerSpec {
    pub name: String,
    pub image: String,
    pub cmd: Option<Vec<String>>,
    pub entrypoint: Option<Vec<String>>,
    /// `KEY=value` entries.
    pub env: Vec<String>,
    pub labels: BTreeMap<String, String>,
    pub ports: Vec<PortMapping>,
    /// Sources are engine-side volume names or host paths. A bind with
    /// `relative` set still needs [`ContainerSpec::resolve_relative_binds`].
    pub mounts: Vec<VolumeMount>,
    /// The first is given at create time, the others are connected before
    /// the container starts.
    pub networks: Vec<NetworkAttachment>,
    pub healthcheck: Option<Healthcheck>,
    pub restart: RestartPolicy,
    pub user: Option<String>,
    pub working_dir: Option<String>,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    pub devices: Vec<DeviceMapping>,
    pub extra_hosts: Vec<String>,
    pub logging: Option<Logging>,
    pub ulimits: BTreeMap<String, Ulimit>,
    pub stop_signal: Option<String>,
    pub stop_timeout: Option<Duration>,
    pub resources: Resources,
}

impl ContainerSpec {
    /// Makes relative bind sources absolute under `base` (the directory the
    /// stack's files were materialised in).
    pub fn resolve_relative_binds(&mut self, base: &Path) {
        for m in &mut self.mounts {
            if m.kind == MountKind::Bind && m.relative {
                if let Some(src) = &m.source {
                    let rel = src.trim_start_matches("./");
                    m.source = Some(base.join(rel).to_string_lossy().into_owned());
                }
                m.relative = false;
            }
        }
    }
}

/// Compose container name: `<project>-<service>-<n>`.
pub fn container_name(project: &str, service_name: &str, number: u32) -> String {
    format!("{project}-{service_name}-{number}")
}

/// Engine name of a top-level network, as compose names it: `name:` when
/// given, the key itself for an external network, else `<project>_<key>`.
pub fn engine_network_name(project: &str, key: &str, def: Option<&NetworkDef>) -> String {
    match def {
        Some(NetworkDef {
            name: Some(name), ..
        }) => name.clone(),
        Some(NetworkDef { external: true, .. }) => key.to_string(),
        _ => format!("{project}_{key}"),
    }
}

/// Engine name of a top-level volume (same rules as networks).
pub fn engine_volume_name(project: &str, key: &str, def: Option<&VolumeDef>) -> String {
    match def {
        Some(VolumeDef {
            name: Some(name), ..
        }) => name.clone(),
        Some(VolumeDef { external: true, .. }) => key.to_string(),
        _ => format!("{project}_{key}"),
    }
}

/// SHA-256 (hex) of the canonical JSON of the service: all maps are
/// `BTreeMap`s and fields serialise in declaration order.
pub fn config_hash(svc: &Service) -> String {
    // Serialising a plain data struct with string keys cannot fail; fall
    // back to the Debug form rather than panic should that ever change.
    let bytes = serde_json::to_vec(svc).unwrap_or_else(|_| format!("{svc:?}").into_bytes());
    hex::encode(Sha256::digest(bytes))
}

/// Maps a compose service to a [`ContainerSpec`] with compose's default
/// naming for networks and volumes (`<project>_<key>`). Use
/// [`container_spec_in`] to honour top-level `name:`/`external`.
pub fn container_spec(
    project: &str,
    service_name: &str,
    svc: &Service,
    number: u32,
    extra_labels: &BTreeMap<String, String>,
) -> ContainerSpec {
    build(
        project,
        service_name,
        svc,
        number,
        extra_labels,
        |k| engine_network_name(project, k, None),
        |k| engine_volume_name(project, k, None),
    )
}

/// Like [`container_spec`], resolving network and volume names through the
/// file's top-level definitions. `None` when the service is not in `file`.
pub fn container_spec_in(
    file: &ComposeFile,
    project: &str,
    service_name: &str,
    number: u32,
    extra_labels: &BTreeMap<String, String>,
) -> Option<ContainerSpec> {
    let svc = file.services.get(service_name)?;
    Some(build(
        project,
        service_name,
        svc,
        number,
        extra_labels,
        |k| engine_network_name(project, k, file.networks.get(k)),
        |k| engine_volume_name(project, k, file.volumes.get(k)),
    ))
}

fn build(
    project: &str,
    service_name: &str,
    svc: &Service,
    number: u32,
    extra_labels: &BTreeMap<String, String>,
    network_name: impl Fn(&str) -> String,
    volume_name: impl Fn(&str) -> String,
) -> ContainerSpec {
    let mut labels = svc.labels.clone();
    labels.extend(extra_labels.iter().map(|(k, v)| (k.clone(), v.clone())));
    labels.insert(LABEL_PROJECT.into(), project.into());
    labels.insert(LABEL_SERVICE.into(), service_name.into());
    labels.insert(LABEL_CONTAINER_NUMBER.into(), number.to_string());
    labels.insert(LABEL_ONEOFF.into(), "False".into());
    labels.insert(LABEL_CONFIG_HASH.into(), config_hash(svc));

    // A variable listed without a value and unset in `.env` is not passed.
    let env = svc
        .environment
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={v}")))
        .collect();

    let mounts = svc
        .volumes
        .iter()
        .map(|m| {
            let mut m = m.clone();
            if m.kind == MountKind::Volume {
                m.source = m.source.as_deref().map(&volume_name);
            }
            m
        })
        .collect();

    let mut networks: Vec<NetworkAttachment> = svc
        .networks
        .iter()
        .map(|(key, net)| {
            // Compose makes the service reachable by its name on every network.
            let mut aliases = vec![service_name.to_string()];
            for a in &net.aliases {
                if !aliases.contains(a) {
                    aliases.push(a.clone());
                }
            }
            NetworkAttachment {
                name: network_name(key),
                aliases,
                ipv4_address: net.ipv4_address.clone(),
            }
        })
        .collect();
    if networks.is_empty() {
        networks.push(NetworkAttachment {
            name: network_name("default"),
            aliases: vec![service_name.to_string()],
            ipv4_address: None,
        });
    }

    ContainerSpec {
        name: container_name(project, service_name, number),
        image: svc.image.clone(),
        cmd: svc.command.clone(),
        entrypoint: svc.entrypoint.clone(),
        env,
        labels,
        ports: svc.ports.clone(),
        mounts,
        networks,
        healthcheck: svc.healthcheck.clone(),
        restart: svc.restart,
        user: svc.user.clone(),
        working_dir: svc.working_dir.clone(),
        cap_add: svc.cap_add.clone(),
        cap_drop: svc.cap_drop.clone(),
        devices: svc.devices.clone(),
        extra_hosts: svc.extra_hosts.clone(),
        logging: svc.logging.clone(),
        ulimits: svc.ulimits.clone(),
        stop_signal: svc.stop_signal.clone(),
        stop_timeout: svc.stop_grace_period,
        resources: svc.resources.clone(),
    }
}

fn nanos(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn protocol(p: Protocol) -> &'static str {
    match p {
        Protocol::Tcp => "tcp",
        Protocol::Udp => "udp",
        Protocol::Sctp => "sctp",
    }
}

fn health_config(h: &Healthcheck) -> HealthConfig {
    if h.disable {
        return HealthConfig {
            test: Some(vec!["NONE".into()]),
            ..Default::default()
        };
    }
    HealthConfig {
        test: (!h.test.is_empty()).then(|| h.test.clone()),
        interval: h.interval.map(nanos),
        timeout: h.timeout.map(nanos),
        retries: h.retries.map(i64::from),
        start_period: h.start_period.map(nanos),
        start_interval: h.start_interval.map(nanos),
    }
}

fn restart_policy(r: RestartPolicy) -> EngineRestartPolicy {
    let (name, max) = match r {
        RestartPolicy::No => (RestartPolicyNameEnum::NO, None),
        RestartPolicy::Always => (RestartPolicyNameEnum::ALWAYS, None),
        RestartPolicy::UnlessStopped => (RestartPolicyNameEnum::UNLESS_STOPPED, None),
        RestartPolicy::OnFailure { max_retries } => (
            RestartPolicyNameEnum::ON_FAILURE,
            max_retries.map(i64::from),
        ),
    };
    EngineRestartPolicy {
        name: Some(name),
        maximum_retry_count: max,
    }
}

fn mount(m: &VolumeMount) -> Mount {
    let typ = match m.kind {
        MountKind::Volume => MountType::VOLUME,
        MountKind::Bind => MountType::BIND,
        MountKind::Tmpfs => MountType::TMPFS,
    };
    Mount {
        target: Some(m.target.clone()),
        source: match m.kind {
            MountKind::Tmpfs => None,
            _ => m.source.clone(),
        },
        typ: Some(typ),
        read_only: m.read_only.then_some(true),
        volume_options: (m.kind == MountKind::Volume && m.nocopy).then(|| MountVolumeOptions {
            no_copy: Some(true),
            ..Default::default()
        }),
        tmpfs_options: match (m.kind, m.tmpfs_size) {
            (MountKind::Tmpfs, Some(size)) => Some(MountTmpfsOptions {
                size_bytes: Some(to_i64(size)),
                ..Default::default()
            }),
            _ => None,
        },
        ..Default::default()
    }
}

/// `source:target[:ro]`; a bind without a source is dropped (the loader
/// never produces one).
fn bind(m: &VolumeMount) -> Option<String> {
    let source = m.source.as_deref()?;
    let mut s = format!("{source}:{}", m.target);
    if m.read_only {
        s.push_str(":ro");
    }
    Some(s)
}

fn device_request(d: &convoy_shared::compose::DeviceRequest) -> EngineDeviceRequest {
    let count = match d.count {
        DeviceCount::All => -1,
        DeviceCount::Count(n) => i64::from(n),
        DeviceCount::Ids => 0,
    };
    EngineDeviceRequest {
        driver: d.driver.clone(),
        count: Some(count),
        device_ids: (!d.device_ids.is_empty()).then(|| d.device_ids.clone()),
        capabilities: (!d.capabilities.is_empty()).then(|| vec![d.capabilities.clone()]),
        options: (!d.options.is_empty()).then(|| {
            d.options
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        }),
    }
}

fn non_empty<T: Clone>(v: &[T]) -> Option<Vec<T>> {
    (!v.is_empty()).then(|| v.to_vec())
}

/// The engine create body for a spec. Networks beyond the first are not in
/// it (API 1.41 takes one endpoint at create); connect them before start.
pub fn to_bollard(spec: &ContainerSpec) -> ContainerCreateBody {
    let mut exposed: Vec<String> = Vec::new();
    let mut bindings: BTreeMap<String, Option<Vec<PortBinding>>> = BTreeMap::new();
    for p in &spec.ports {
        let key = format!("{}/{}", p.target, protocol(p.protocol));
        if !exposed.contains(&key) {
            exposed.push(key.clone());
        }
        let binding = PortBinding {
            host_ip: p.host_ip.clone(),
            host_port: Some(p.published.map(|p| p.to_string()).unwrap_or_default()),
        };
        bindings
            .entry(key)
            .or_insert_with(|| Some(Vec::new()))
            .get_or_insert_with(Vec::new)
            .push(binding);
    }

    let (bind_mounts, other_mounts): (Vec<&VolumeMount>, Vec<&VolumeMount>) =
        spec.mounts.iter().partition(|m| m.kind == MountKind::Bind);
    let binds: Vec<String> = bind_mounts.into_iter().filter_map(bind).collect();
    let mounts: Vec<Mount> = other_mounts.into_iter().map(mount).collect();

    let limits = &spec.resources.limits;
    let reservations = &spec.resources.reservations;
    let device_requests: Vec<EngineDeviceRequest> =
        reservations.devices.iter().map(device_request).collect();

    let host_config = HostConfig {
        port_bindings: (!bindings.is_empty()).then(|| bindings.into_iter().collect()),
        // Binds go the legacy `Binds` way, as compose does for the short
        // syntax: the engine then creates a missing source directory on
        // every API version (Mount's CreateMountpoint needs 1.42+).
        binds: non_empty(&binds),
        mounts: non_empty(&mounts),
        restart_policy: Some(restart_policy(spec.restart)),
        cap_add: non_empty(&spec.cap_add),
        cap_drop: non_empty(&spec.cap_drop),
        devices: (!spec.devices.is_empty()).then(|| {
            spec.devices
                .iter()
                .map(|d| EngineDeviceMapping {
                    path_on_host: Some(d.host_path.clone()),
                    path_in_container: Some(d.container_path.clone()),
                    cgroup_permissions: Some(d.permissions.clone()),
                })
                .collect()
        }),
        extra_hosts: non_empty(&spec.extra_hosts),
        log_config: spec.logging.as_ref().map(|l| HostConfigLogConfig {
            typ: l.driver.clone(),
            config: (!l.options.is_empty()).then(|| {
                l.options
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            }),
        }),
        ulimits: (!spec.ulimits.is_empty()).then(|| {
            spec.ulimits
                .iter()
                .map(|(name, u)| ResourcesUlimits {
                    name: Some(name.clone()),
                    soft: Some(u.soft),
                    hard: Some(u.hard),
                })
                .collect()
        }),
        nano_cpus: limits.cpus.map(|c| (c * 1e9).round() as i64),
        memory: limits.memory_bytes.map(to_i64),
        pids_limit: limits.pids,
        memory_reservation: reservations.memory_bytes.map(to_i64),
        device_requests: (!device_requests.is_empty()).then_some(device_requests),
        network_mode: spec.networks.first().map(|n| n.name.clone()),
        ..Default::default()
    };

    let networking_config = spec.networks.first().map(|n| NetworkingConfig {
        endpoints_config: Some([(n.name.clone(), endpoint(n))].into_iter().collect()),
    });

    ContainerCreateBody {
        image: Some(spec.image.clone()),
        cmd: spec.cmd.clone(),
        entrypoint: spec.entrypoint.clone(),
        env: non_empty(&spec.env),
        labels: Some(
            spec.labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        exposed_ports: (!exposed.is_empty()).then_some(exposed),
        healthcheck: spec.healthcheck.as_ref().map(health_config),
        user: spec.user.clone(),
        working_dir: spec.working_dir.clone(),
        stop_signal: spec.stop_signal.clone(),
        stop_timeout: spec
            .stop_timeout
            .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX)),
        host_config: Some(host_config),
        networking_config,
        ..Default::default()
    }
}

/// Endpoint settings for one network attachment.
pub(crate) fn endpoint(n: &NetworkAttachment) -> EndpointSettings {
    EndpointSettings {
        aliases: non_empty(&n.aliases),
        ipam_config: n.ipv4_address.as_ref().map(|ip| EndpointIpamConfig {
            ipv4_address: Some(ip.clone()),
            ..Default::default()
        }),
        ..Default::default()
    }
}
