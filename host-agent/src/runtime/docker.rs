//! [`Runtime`] on the Docker Engine API through bollard.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use bollard::Docker;
use bollard::auth::DockerCredentials;
use bollard::models::{
    ContainerInspectResponse, ContainerStateStatusEnum, HealthStatusEnum, NetworkConnectRequest,
    NetworkCreateRequest, VolumeCreateRequest,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, CreateImageOptionsBuilder, ListContainersOptionsBuilder,
    ListNetworksOptionsBuilder, ListVolumesOptionsBuilder, LogsOptionsBuilder,
    RemoveContainerOptionsBuilder, RemoveVolumeOptionsBuilder, StopContainerOptionsBuilder,
    TagImageOptionsBuilder,
};
use futures::StreamExt;
use tracing::{debug, info, warn};

use super::spec::{endpoint, to_bollard};
use super::{
    ContainerInfo, ContainerSpec, ContainerState, Health, LabelFilter, NetworkInfo, NetworkSpec,
    RegistryAuth, Runtime, RuntimeError, RuntimeResult, VolumeInfo, VolumeSpec,
};

/// Default bound on one image pull (big GPU images take a while).
pub const DEFAULT_PULL_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// The engine runtime. Cheap to clone (the client is shared).
#[derive(Debug, Clone)]
pub struct BollardRuntime {
    docker: Docker,
    pull_timeout: Duration,
}

fn docker_host() -> String {
    std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".into())
}

/// `(filter name, values)` pairs, collected by each builder into the map
/// bollard wants.
fn label_filters(filter: &LabelFilter) -> Vec<(String, Vec<String>)> {
    if filter.is_empty() {
        return Vec::new();
    }
    vec![("label".to_string(), filter.conditions().to_vec())]
}

fn to_btree(m: Option<impl IntoIterator<Item = (String, String)>>) -> BTreeMap<String, String> {
    m.map(|m| m.into_iter().collect()).unwrap_or_default()
}

impl BollardRuntime {
    /// Connects as the docker CLI would (`DOCKER_HOST`, else the local
    /// socket) and negotiates the API version with the engine, so a failure
    /// to reach the engine surfaces here.
    pub async fn connect() -> RuntimeResult<Self> {
        let connect_err = |source| RuntimeError::Connect {
            docker_host: docker_host(),
            source,
        };
        let docker = Docker::connect_with_defaults().map_err(connect_err)?;
        let docker = docker.negotiate_version().await.map_err(connect_err)?;
        info!(docker_host = %docker_host(), api_version = %docker.client_version(), "connected to the Docker engine");
        Ok(Self::from_docker(docker))
    }

    /// Wraps an already-configured client.
    pub fn from_docker(docker: Docker) -> Self {
        Self {
            docker,
            pull_timeout: DEFAULT_PULL_TIMEOUT,
        }
    }

    /// Bounds each image pull.
    pub fn with_pull_timeout(mut self, timeout: Duration) -> Self {
        self.pull_timeout = timeout;
        self
    }

    pub fn docker(&self) -> &Docker {
        &self.docker
    }

    /// The engine's version (`20.10.24`), from its version API.
    pub async fn engine_version(&self) -> RuntimeResult<String> {
        let v = self
            .docker
            .version()
            .await
            .map_err(|e| RuntimeError::engine("version", "engine", "", e))?;
        Ok(v.version.unwrap_or_default())
    }
}

fn container_state(s: Option<ContainerStateStatusEnum>) -> ContainerState {
    match s {
        Some(ContainerStateStatusEnum::CREATED) => ContainerState::Created,
        Some(ContainerStateStatusEnum::RUNNING) => ContainerState::Running,
        Some(ContainerStateStatusEnum::PAUSED) => ContainerState::Paused,
        Some(ContainerStateStatusEnum::RESTARTING) => ContainerState::Restarting,
        Some(ContainerStateStatusEnum::REMOVING) => ContainerState::Removing,
        Some(ContainerStateStatusEnum::EXITED) => ContainerState::Exited,
        Some(ContainerStateStatusEnum::DEAD) => ContainerState::Dead,
        Some(other) => ContainerState::Other(other.to_string()),
        None => ContainerState::Other(String::new()),
    }
}

fn health(s: Option<HealthStatusEnum>) -> Option<Health> {
    match s {
        Some(HealthStatusEnum::STARTING) => Some(Health::Starting),
        Some(HealthStatusEnum::HEALTHY) => Some(Health::Healthy),
        Some(HealthStatusEnum::UNHEALTHY) => Some(Health::Unhealthy),
        _ => None,
    }
}

fn container_info(r: ContainerInspectResponse) -> ContainerInfo {
    let state = r.state.unwrap_or_default();
    let config = r.config.unwrap_or_default();
    ContainerInfo {
        id: r.id.unwrap_or_default(),
        name: r
            .name
            .unwrap_or_default()
            .trim_start_matches('/')
            .to_string(),
        labels: to_btree(config.labels),
        state: container_state(state.status),
        exit_code: state.exit_code,
        health: health(state.health.and_then(|h| h.status)),
        restart_count: r
            .restart_count
            .and_then(|c| u64::try_from(c).ok())
            .unwrap_or(0),
        image_id: r.image.unwrap_or_default(),
        image: config.image.unwrap_or_default(),
    }
}

#[async_trait]
impl Runtime for BollardRuntime {
    async fn list_containers(&self, filter: &LabelFilter) -> RuntimeResult<Vec<ContainerInfo>> {
        let options = ListContainersOptionsBuilder::new()
            .all(true)
            .filters(&label_filters(filter).into_iter().collect())
            .build();
        let summaries = self
            .docker
            .list_containers(Some(options))
            .await
            .map_err(|e| {
                RuntimeError::engine("list containers", "containers", &format!("{filter:?}"), e)
            })?;
        // The list endpoint of API 1.41 carries neither health nor restart
        // count: inspect each one. A container removed in between is skipped.
        let mut out = Vec::with_capacity(summaries.len());
        for s in summaries {
            let Some(id) = s.id else { continue };
            match self.inspect_container(&id).await {
                Ok(info) => out.push(info),
                Err(e) if e.is_not_found() => debug!(%id, "container vanished while listing"),
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    async fn inspect_container(&self, id: &str) -> RuntimeResult<ContainerInfo> {
        let r = self
            .docker
            .inspect_container(id, None)
            .await
            .map_err(|e| RuntimeError::engine("inspect container", "container", id, e))?;
        Ok(container_info(r))
    }

    async fn create_container(&self, spec: &ContainerSpec) -> RuntimeResult<String> {
        let body = to_bollard(spec);
        let options = CreateContainerOptionsBuilder::new()
            .name(&spec.name)
            .build();
        let created = self
            .docker
            .create_container(Some(options), body)
            .await
            .map_err(|e| RuntimeError::engine("create container", "image", &spec.image, e))
            .map_err(|e| match e {
                // 404 on create means the image is missing, not the container.
                RuntimeError::NotFound { .. } => RuntimeError::NotFound {
                    kind: "image",
                    id: spec.image.clone(),
                },
                RuntimeError::Docker { op, source, .. } => RuntimeError::Docker {
                    op,
                    target: spec.name.clone(),
                    source,
                },
                other => other,
            })?;
        for w in created.warnings.iter().filter(|w| !w.is_empty()) {
            warn!(container = %spec.name, warning = %w, "engine warning on create");
        }
        let id = created.id;
        for net in spec.networks.iter().skip(1) {
            let request = NetworkConnectRequest {
                container: id.clone(),
                endpoint_config: Some(endpoint(net)),
            };
            if let Err(e) = self.docker.connect_network(&net.name, request).await {
                // Do not leave a half-wired container behind.
                let _ = self.remove_container(&id, true).await;
                return Err(RuntimeError::engine(
                    "connect network",
                    "network",
                    &net.name,
                    e,
                ));
            }
        }
        info!(container = %spec.name, %id, "created container");
        Ok(id)
    }

    async fn start_container(&self, id: &str) -> RuntimeResult<()> {
        self.docker
            .start_container(id, None)
            .await
            .map_err(|e| RuntimeError::engine("start container", "container", id, e))?;
        info!(%id, "started container");
        Ok(())
    }

    async fn stop_container(&self, id: &str, grace: Duration) -> RuntimeResult<()> {
        let secs = i32::try_from(grace.as_secs()).unwrap_or(i32::MAX);
        let options = StopContainerOptionsBuilder::new().t(secs).build();
        // The engine answers 304 for an already-stopped container; bollard
        // treats it as success.
        self.docker
            .stop_container(id, Some(options))
            .await
            .map_err(|e| RuntimeError::engine("stop container", "container", id, e))?;
        info!(%id, grace_secs = secs, "stopped container");
        Ok(())
    }

    async fn remove_container(
        &self,
        id: &str,
        remove_anonymous_volumes: bool,
    ) -> RuntimeResult<()> {
        let options = RemoveContainerOptionsBuilder::new()
            .force(true)
            .v(remove_anonymous_volumes)
            .build();
        self.docker
            .remove_container(id, Some(options))
            .await
            .map_err(|e| RuntimeError::engine("remove container", "container", id, e))?;
        info!(%id, "removed container");
        Ok(())
    }

    async fn logs_tail(&self, id: &str, lines: usize) -> RuntimeResult<Vec<String>> {
        let options = LogsOptionsBuilder::new()
            .stdout(true)
            .stderr(true)
            .follow(false)
            .tail(&lines.to_string())
            .build();
        let mut stream = self.docker.logs(id, Some(options));
        let mut text = String::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| RuntimeError::engine("read logs", "container", id, e))?;
            text.push_str(&String::from_utf8_lossy(&chunk.into_bytes()));
        }
        let mut out: Vec<String> = text.lines().map(str::to_string).collect();
        if out.len() > lines {
            out.drain(..out.len() - lines);
        }
        Ok(out)
    }

    async fn list_networks(&self, filter: &LabelFilter) -> RuntimeResult<Vec<NetworkInfo>> {
        let options = ListNetworksOptionsBuilder::new()
            .filters(&label_filters(filter).into_iter().collect())
            .build();
        let nets = self
            .docker
            .list_networks(Some(options))
            .await
            .map_err(|e| {
                RuntimeError::engine("list networks", "networks", &format!("{filter:?}"), e)
            })?;
        Ok(nets
            .into_iter()
            .map(|n| NetworkInfo {
                id: n.id.unwrap_or_default(),
                name: n.name.unwrap_or_default(),
                driver: n.driver.unwrap_or_default(),
                labels: to_btree(n.labels),
            })
            .collect())
    }

    async fn create_network(&self, spec: &NetworkSpec) -> RuntimeResult<String> {
        let request = NetworkCreateRequest {
            name: spec.name.clone(),
            driver: spec.driver.clone(),
            internal: Some(spec.internal),
            attachable: Some(spec.attachable),
            labels: Some(
                spec.labels
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            ),
            ..Default::default()
        };
        let created = self
            .docker
            .create_network(request)
            .await
            .map_err(|e| RuntimeError::engine("create network", "network", &spec.name, e))?;
        info!(network = %spec.name, id = %created.id, "created network");
        Ok(created.id)
    }

    async fn remove_network(&self, id_or_name: &str) -> RuntimeResult<()> {
        self.docker
            .remove_network(id_or_name)
            .await
            .map_err(|e| RuntimeError::engine("remove network", "network", id_or_name, e))?;
        info!(network = %id_or_name, "removed network");
        Ok(())
    }

    async fn list_volumes(&self, filter: &LabelFilter) -> RuntimeResult<Vec<VolumeInfo>> {
        let options = ListVolumesOptionsBuilder::new()
            .filters(&label_filters(filter).into_iter().collect())
            .build();
        let list = self.docker.list_volumes(Some(options)).await.map_err(|e| {
            RuntimeError::engine("list volumes", "volumes", &format!("{filter:?}"), e)
        })?;
        Ok(list
            .volumes
            .unwrap_or_default()
            .into_iter()
            .map(|v| VolumeInfo {
                name: v.name,
                driver: v.driver,
                labels: v.labels.into_iter().collect(),
            })
            .collect())
    }

    async fn create_volume(&self, spec: &VolumeSpec) -> RuntimeResult<VolumeInfo> {
        let request = VolumeCreateRequest {
            name: Some(spec.name.clone()),
            driver: spec.driver.clone(),
            driver_opts: Some(
                spec.driver_opts
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            ),
            labels: Some(
                spec.labels
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            ),
            ..Default::default()
        };
        let v = self
            .docker
            .create_volume(request)
            .await
            .map_err(|e| RuntimeError::engine("create volume", "volume", &spec.name, e))?;
        info!(volume = %v.name, "created volume");
        Ok(VolumeInfo {
            name: v.name,
            driver: v.driver,
            labels: v.labels.into_iter().collect(),
        })
    }

    async fn remove_volume(&self, name: &str) -> RuntimeResult<()> {
        let options = RemoveVolumeOptionsBuilder::new().force(false).build();
        self.docker
            .remove_volume(name, Some(options))
            .await
            .map_err(|e| RuntimeError::engine("remove volume", "volume", name, e))?;
        info!(volume = %name, "removed volume");
        Ok(())
    }

    async fn image_exists(&self, reference: &str) -> RuntimeResult<Option<String>> {
        match self.docker.inspect_image(reference).await {
            Ok(image) => Ok(Some(image.id.unwrap_or_default())),
            Err(e) => match RuntimeError::engine("inspect image", "image", reference, e) {
                RuntimeError::NotFound { .. } => Ok(None),
                other => Err(other),
            },
        }
    }

    async fn pull_image(
        &self,
        reference: &str,
        auth: Option<&RegistryAuth>,
    ) -> RuntimeResult<String> {
        let options = CreateImageOptionsBuilder::new()
            .from_image(reference)
            .build();
        let credentials = auth.map(|a| DockerCredentials {
            username: a.username.clone(),
            password: a.password.clone(),
            identitytoken: a.identity_token.clone(),
            serveraddress: a.server.clone(),
            ..Default::default()
        });
        info!(image = %reference, "pulling image");
        let pull = async {
            let mut stream = self.docker.create_image(Some(options), None, credentials);
            while let Some(progress) = stream.next().await {
                let progress = progress
                    .map_err(|e| RuntimeError::engine("pull image", "image", reference, e))?;
                if let Some(status) = progress.status {
                    debug!(image = %reference, %status, "pull progress");
                }
            }
            Ok::<(), RuntimeError>(())
        };
        tokio::time::timeout(self.pull_timeout, pull)
            .await
            .map_err(|_| RuntimeError::Timeout {
                op: "pull image",
                target: reference.to_string(),
                after: self.pull_timeout,
            })??;
        self.image_exists(reference)
            .await?
            .ok_or_else(|| RuntimeError::Unexpected {
                op: "pull image",
                target: reference.to_string(),
                detail: "the pull finished but the image is not present".into(),
            })
    }

    async fn tag_image(&self, source: &str, repo: &str, tag: &str) -> RuntimeResult<()> {
        let options = TagImageOptionsBuilder::new().repo(repo).tag(tag).build();
        self.docker
            .tag_image(source, Some(options))
            .await
            .map_err(|e| RuntimeError::engine("tag image", "image", source, e))?;
        Ok(())
    }
}
