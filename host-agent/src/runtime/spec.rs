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

#[cfg(test)]
mod tests {
    use super::*;
    use convoy_shared::compose::{
        DeviceRequest, ResourceLimits, ResourceReservations, ServiceNetwork,
    };

    fn svc() -> Service {
        Service {
            image: "registry.example/app:1.2".into(),
            ..Default::default()
        }
    }

    fn spec_of(s: &Service) -> ContainerSpec {
        container_spec("shop", "web", s, 1, &BTreeMap::new())
    }

    fn host(s: &Service) -> HostConfig {
        to_bollard(&spec_of(s)).host_config.unwrap()
    }

    #[test]
    fn names_and_compose_labels() {
        let mut s = svc();
        s.labels.insert("team".into(), "core".into());
        let extra = BTreeMap::from([("convoy.stack".to_string(), "shop".to_string())]);
        let spec = container_spec("shop", "web", &s, 3, &extra);
        assert_eq!(spec.name, "shop-web-3");
        assert_eq!(spec.image, "registry.example/app:1.2");
        let l = &spec.labels;
        assert_eq!(l[LABEL_PROJECT], "shop");
        assert_eq!(l[LABEL_SERVICE], "web");
        assert_eq!(l[LABEL_CONTAINER_NUMBER], "3");
        assert_eq!(l[LABEL_ONEOFF], "False");
        assert_eq!(l[LABEL_CONFIG_HASH], config_hash(&s));
        assert_eq!(l[LABEL_CONFIG_HASH].len(), 64);
        assert_eq!(l["team"], "core");
        assert_eq!(l["convoy.stack"], "shop");
        let body = to_bollard(&spec);
        assert_eq!(body.labels.unwrap().get(LABEL_SERVICE).unwrap(), "web");
    }

    #[test]
    fn compose_labels_win_over_user_labels() {
        let mut s = svc();
        s.labels.insert(LABEL_PROJECT.into(), "evil".into());
        let extra = BTreeMap::from([(LABEL_SERVICE.to_string(), "evil".to_string())]);
        let spec = container_spec("shop", "web", &s, 1, &extra);
        assert_eq!(spec.labels[LABEL_PROJECT], "shop");
        assert_eq!(spec.labels[LABEL_SERVICE], "web");
    }

    #[test]
    fn config_hash_is_stable_and_sensitive() {
        let a = svc();
        assert_eq!(config_hash(&a), config_hash(&a.clone()));
        let mut b = svc();
        b.environment.insert("X".into(), Some("1".into()));
        assert_ne!(config_hash(&a), config_hash(&b));
        // Known value: SHA-256 of the canonical JSON.
        let json = serde_json::to_vec(&a).unwrap();
        assert_eq!(config_hash(&a), hex::encode(Sha256::digest(json)));
    }

    #[test]
    fn environment_skips_unset_values() {
        let mut s = svc();
        s.environment.insert("A".into(), Some("1".into()));
        s.environment.insert("B".into(), None);
        s.environment.insert("C".into(), Some(String::new()));
        let body = to_bollard(&spec_of(&s));
        assert_eq!(body.env.unwrap(), vec!["A=1".to_string(), "C=".to_string()]);
    }

    #[test]
    fn gpu_device_requests() {
        let mut s = svc();
        s.resources.reservations.devices = vec![
            DeviceRequest {
                driver: Some("nvidia".into()),
                count: DeviceCount::All,
                device_ids: vec![],
                capabilities: vec!["gpu".into()],
                options: BTreeMap::new(),
            },
            DeviceRequest {
                driver: Some("nvidia".into()),
                count: DeviceCount::Count(2),
                device_ids: vec![],
                capabilities: vec!["gpu".into(), "utility".into()],
                options: BTreeMap::from([("k".to_string(), "v".to_string())]),
            },
            DeviceRequest {
                driver: None,
                count: DeviceCount::Ids,
                device_ids: vec!["0".into(), "GPU-abc".into()],
                capabilities: vec!["gpu".into()],
                options: BTreeMap::new(),
            },
        ];
        let reqs = host(&s).device_requests.unwrap();
        assert_eq!(reqs.len(), 3);
        assert_eq!(reqs[0].driver.as_deref(), Some("nvidia"));
        assert_eq!(reqs[0].count, Some(-1));
        assert_eq!(reqs[0].device_ids, None);
        assert_eq!(reqs[0].capabilities, Some(vec![vec!["gpu".to_string()]]));
        assert_eq!(reqs[1].count, Some(2));
        assert_eq!(
            reqs[1].capabilities,
            Some(vec![vec!["gpu".to_string(), "utility".to_string()]])
        );
        assert_eq!(reqs[1].options.as_ref().unwrap().get("k").unwrap(), "v");
        assert_eq!(reqs[2].count, Some(0));
        assert_eq!(reqs[2].driver, None);
        assert_eq!(
            reqs[2].device_ids,
            Some(vec!["0".to_string(), "GPU-abc".to_string()])
        );

        // On the wire: DeviceRequests with Capabilities as [[...]].
        let json = serde_json::to_value(to_bollard(&spec_of(&s))).unwrap();
        let wire = &json["HostConfig"]["DeviceRequests"][0];
        assert_eq!(wire["Driver"], "nvidia");
        assert_eq!(wire["Count"], -1);
        assert_eq!(wire["Capabilities"], serde_json::json!([["gpu"]]));
    }

    #[test]
    fn limits_and_reservations() {
        let mut s = svc();
        s.resources = Resources {
            limits: ResourceLimits {
                cpus: Some(1.5),
                memory_bytes: Some(512 * 1024 * 1024),
                pids: Some(100),
            },
            reservations: ResourceReservations {
                cpus: None,
                memory_bytes: Some(64 * 1024 * 1024),
                devices: vec![],
            },
        };
        let h = host(&s);
        assert_eq!(h.nano_cpus, Some(1_500_000_000));
        assert_eq!(h.memory, Some(536_870_912));
        assert_eq!(h.pids_limit, Some(100));
        assert_eq!(h.memory_reservation, Some(67_108_864));
        assert_eq!(h.device_requests, None);
        assert_eq!(host(&svc()).nano_cpus, None);
    }

    #[test]
    fn ports_host_ip_udp_and_ephemeral() {
        let mut s = svc();
        s.ports = vec![
            PortMapping {
                target: 80,
                published: Some(8080),
                host_ip: Some("127.0.0.1".into()),
                protocol: Protocol::Tcp,
            },
            PortMapping {
                target: 80,
                published: Some(8081),
                host_ip: None,
                protocol: Protocol::Tcp,
            },
            PortMapping {
                target: 53,
                published: Some(5353),
                host_ip: Some("0.0.0.0".into()),
                protocol: Protocol::Udp,
            },
            PortMapping {
                target: 9000,
                published: None,
                host_ip: None,
                protocol: Protocol::Tcp,
            },
        ];
        let body = to_bollard(&spec_of(&s));
        let exposed = body.exposed_ports.clone().unwrap();
        assert_eq!(exposed, vec!["80/tcp", "53/udp", "9000/tcp"]);
        let b = body.host_config.clone().unwrap().port_bindings.unwrap();
        let tcp80 = b["80/tcp"].clone().unwrap();
        assert_eq!(tcp80.len(), 2);
        assert_eq!(tcp80[0].host_ip.as_deref(), Some("127.0.0.1"));
        assert_eq!(tcp80[0].host_port.as_deref(), Some("8080"));
        assert_eq!(tcp80[1].host_ip, None);
        assert_eq!(tcp80[1].host_port.as_deref(), Some("8081"));
        let udp = b["53/udp"].clone().unwrap();
        assert_eq!(udp[0].host_ip.as_deref(), Some("0.0.0.0"));
        assert_eq!(udp[0].host_port.as_deref(), Some("5353"));
        // Unpublished: empty host port, the engine picks one.
        assert_eq!(
            b["9000/tcp"].clone().unwrap()[0].host_port.as_deref(),
            Some("")
        );

        let json = serde_json::to_value(&body).unwrap();
        assert_eq!(json["ExposedPorts"]["53/udp"], serde_json::json!({}));
        assert_eq!(
            json["HostConfig"]["PortBindings"]["53/udp"][0]["HostPort"],
            "5353"
        );
    }

    #[test]
    fn mounts_volume_bind_tmpfs() {
        let mut s = svc();
        s.volumes = vec![
            VolumeMount {
                kind: MountKind::Volume,
                source: Some("data".into()),
                target: "/data".into(),
                read_only: false,
                relative: false,
                tmpfs_size: None,
                nocopy: true,
            },
            VolumeMount {
                kind: MountKind::Volume,
                source: None,
                target: "/anon".into(),
                read_only: false,
                relative: false,
                tmpfs_size: None,
                nocopy: false,
            },
            VolumeMount {
                kind: MountKind::Bind,
                source: Some("/etc/app".into()),
                target: "/config".into(),
                read_only: true,
                relative: false,
                tmpfs_size: None,
                nocopy: false,
            },
            VolumeMount {
                kind: MountKind::Tmpfs,
                source: None,
                target: "/scratch".into(),
                read_only: false,
                relative: false,
                tmpfs_size: Some(64 * 1024 * 1024),
                nocopy: false,
            },
        ];
        let h = host(&s);
        assert_eq!(h.binds, Some(vec!["/etc/app:/config:ro".to_string()]));
        let m = h.mounts.unwrap();
        assert_eq!(m.len(), 3);
        assert_eq!(m[0].typ, Some(MountType::VOLUME));
        assert_eq!(m[0].source.as_deref(), Some("shop_data"));
        assert_eq!(m[0].target.as_deref(), Some("/data"));
        assert_eq!(m[0].volume_options.as_ref().unwrap().no_copy, Some(true));
        assert_eq!(m[1].source, None);
        assert_eq!(m[1].volume_options, None);
        assert_eq!(m[2].typ, Some(MountType::TMPFS));
        assert_eq!(m[2].source, None);
        assert_eq!(
            m[2].tmpfs_options.as_ref().unwrap().size_bytes,
            Some(67_108_864)
        );
        let json = serde_json::to_value(to_bollard(&spec_of(&s))).unwrap();
        assert_eq!(json["HostConfig"]["Mounts"][2]["Type"], "tmpfs");
        assert_eq!(
            json["HostConfig"]["Mounts"][2]["TmpfsOptions"]["SizeBytes"],
            67_108_864
        );
    }

    #[test]
    fn relative_binds_resolve_under_base() {
        let mut s = svc();
        s.volumes = vec![VolumeMount {
            kind: MountKind::Bind,
            source: Some("./conf/nginx.conf".into()),
            target: "/etc/nginx/nginx.conf".into(),
            read_only: true,
            relative: true,
            tmpfs_size: None,
            nocopy: false,
        }];
        let mut spec = spec_of(&s);
        spec.resolve_relative_binds(Path::new("/var/lib/convoy/stacks/shop"));
        assert_eq!(
            to_bollard(&spec).host_config.unwrap().binds.unwrap(),
            vec!["/var/lib/convoy/stacks/shop/conf/nginx.conf:/etc/nginx/nginx.conf:ro"]
        );
    }

    #[test]
    fn healthcheck_durations_in_nanoseconds() {
        let mut s = svc();
        s.healthcheck = Some(Healthcheck {
            test: vec!["CMD-SHELL".into(), "wget -q -O- localhost/health".into()],
            interval: Some(Duration::from_secs(10)),
            timeout: Some(Duration::from_millis(1500)),
            retries: Some(3),
            start_period: Some(Duration::from_secs(30)),
            start_interval: Some(Duration::from_secs(1)),
            disable: false,
        });
        let hc = to_bollard(&spec_of(&s)).healthcheck.unwrap();
        assert_eq!(
            hc.test.unwrap(),
            vec!["CMD-SHELL", "wget -q -O- localhost/health"]
        );
        assert_eq!(hc.interval, Some(10_000_000_000));
        assert_eq!(hc.timeout, Some(1_500_000_000));
        assert_eq!(hc.retries, Some(3));
        assert_eq!(hc.start_period, Some(30_000_000_000));
        assert_eq!(hc.start_interval, Some(1_000_000_000));

        s.healthcheck.as_mut().unwrap().disable = true;
        let hc = to_bollard(&spec_of(&s)).healthcheck.unwrap();
        assert_eq!(hc.test.unwrap(), vec!["NONE"]);
        assert_eq!(hc.interval, None);

        assert_eq!(to_bollard(&spec_of(&svc())).healthcheck, None);
    }

    #[test]
    fn restart_policies() {
        let name = |r| {
            let mut s = svc();
            s.restart = r;
            host(&s).restart_policy.unwrap()
        };
        assert_eq!(
            name(RestartPolicy::No).name,
            Some(RestartPolicyNameEnum::NO)
        );
        assert_eq!(
            name(RestartPolicy::Always).name,
            Some(RestartPolicyNameEnum::ALWAYS)
        );
        assert_eq!(
            name(RestartPolicy::UnlessStopped).name,
            Some(RestartPolicyNameEnum::UNLESS_STOPPED)
        );
        let p = name(RestartPolicy::OnFailure {
            max_retries: Some(5),
        });
        assert_eq!(p.name, Some(RestartPolicyNameEnum::ON_FAILURE));
        assert_eq!(p.maximum_retry_count, Some(5));
        let json = serde_json::to_value(to_bollard(&spec_of(&Service {
            restart: RestartPolicy::UnlessStopped,
            ..svc()
        })))
        .unwrap();
        assert_eq!(
            json["HostConfig"]["RestartPolicy"]["Name"],
            "unless-stopped"
        );
    }

    #[test]
    fn networks_default_and_aliases() {
        // No networks: the project's default network, aliased by service name.
        let body = to_bollard(&spec_of(&svc()));
        let h = body.host_config.clone().unwrap();
        assert_eq!(h.network_mode.as_deref(), Some("shop_default"));
        let eps = body.networking_config.unwrap().endpoints_config.unwrap();
        assert_eq!(eps["shop_default"].aliases, Some(vec!["web".to_string()]));

        let mut s = svc();
        s.networks.insert(
            "back".into(),
            ServiceNetwork {
                aliases: vec!["api".into(), "web".into()],
                ipv4_address: Some("10.1.0.5".into()),
            },
        );
        s.networks.insert("front".into(), ServiceNetwork::default());
        let spec = spec_of(&s);
        assert_eq!(spec.networks.len(), 2);
        assert_eq!(spec.networks[0].name, "shop_back");
        assert_eq!(spec.networks[0].aliases, vec!["web", "api"]);
        assert_eq!(spec.networks[1].name, "shop_front");
        let body = to_bollard(&spec);
        let eps = body.networking_config.unwrap().endpoints_config.unwrap();
        assert_eq!(eps.len(), 1, "API 1.41 takes one endpoint at create");
        let back = &eps["shop_back"];
        assert_eq!(
            back.ipam_config.as_ref().unwrap().ipv4_address.as_deref(),
            Some("10.1.0.5")
        );
    }

    #[test]
    fn top_level_names_are_honoured() {
        let mut s = svc();
        s.networks.insert("ext".into(), ServiceNetwork::default());
        s.volumes = vec![VolumeMount {
            kind: MountKind::Volume,
            source: Some("db".into()),
            target: "/db".into(),
            read_only: false,
            relative: false,
            tmpfs_size: None,
            nocopy: false,
        }];
        let mut file = ComposeFile::default();
        file.services.insert("web".into(), s);
        file.networks.insert(
            "ext".into(),
            NetworkDef {
                external: true,
                ..Default::default()
            },
        );
        file.volumes.insert(
            "db".into(),
            VolumeDef {
                name: Some("shared-db".into()),
                ..Default::default()
            },
        );
        let spec = container_spec_in(&file, "shop", "web", 1, &BTreeMap::new()).unwrap();
        assert_eq!(spec.networks[0].name, "ext");
        assert_eq!(spec.mounts[0].source.as_deref(), Some("shared-db"));
        assert!(container_spec_in(&file, "shop", "nope", 1, &BTreeMap::new()).is_none());
    }

    #[test]
    fn the_rest_of_the_service() {
        let mut s = svc();
        s.command = Some(vec!["serve".into(), "--port=80".into()]);
        s.entrypoint = Some(vec!["/bin/app".into()]);
        s.user = Some("1000:1000".into());
        s.working_dir = Some("/srv".into());
        s.cap_add = vec!["NET_ADMIN".into()];
        s.cap_drop = vec!["ALL".into()];
        s.devices = vec![DeviceMapping {
            host_path: "/dev/fuse".into(),
            container_path: "/dev/fuse".into(),
            permissions: "rwm".into(),
        }];
        s.extra_hosts = vec!["db:10.0.0.2".into()];
        s.logging = Some(Logging {
            driver: Some("json-file".into()),
            options: BTreeMap::from([("max-size".to_string(), "10m".to_string())]),
        });
        s.ulimits.insert(
            "nofile".into(),
            Ulimit {
                soft: 1024,
                hard: 4096,
            },
        );
        s.stop_signal = Some("SIGINT".into());
        s.stop_grace_period = Some(Duration::from_secs(25));
        let body = to_bollard(&spec_of(&s));
        assert_eq!(body.cmd.unwrap(), vec!["serve", "--port=80"]);
        assert_eq!(body.entrypoint.unwrap(), vec!["/bin/app"]);
        assert_eq!(body.user.as_deref(), Some("1000:1000"));
        assert_eq!(body.working_dir.as_deref(), Some("/srv"));
        assert_eq!(body.stop_signal.as_deref(), Some("SIGINT"));
        assert_eq!(body.stop_timeout, Some(25));
        assert_eq!(body.image.as_deref(), Some("registry.example/app:1.2"));
        let h = body.host_config.unwrap();
        assert_eq!(h.cap_add.unwrap(), vec!["NET_ADMIN"]);
        assert_eq!(h.cap_drop.unwrap(), vec!["ALL"]);
        let d = &h.devices.unwrap()[0];
        assert_eq!(d.path_on_host.as_deref(), Some("/dev/fuse"));
        assert_eq!(d.cgroup_permissions.as_deref(), Some("rwm"));
        assert_eq!(h.extra_hosts.unwrap(), vec!["db:10.0.0.2"]);
        let log = h.log_config.unwrap();
        assert_eq!(log.typ.as_deref(), Some("json-file"));
        assert_eq!(log.config.unwrap().get("max-size").unwrap(), "10m");
        let u = &h.ulimits.unwrap()[0];
        assert_eq!(
            (u.name.as_deref(), u.soft, u.hard),
            (Some("nofile"), Some(1024), Some(4096))
        );

        // Empty lists stay off the wire.
        let h = host(&svc());
        assert_eq!(h.cap_add, None);
        assert_eq!(h.mounts, None);
        assert_eq!(h.binds, None);
        assert_eq!(h.port_bindings, None);
    }
}
