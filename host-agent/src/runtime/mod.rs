//! The container runtime layer: a narrow async [`Runtime`] trait over the
//! engine operations the agent needs, the plain [`ContainerSpec`] a compose
//! service is mapped to ([`container_spec`], [`to_bollard`]), and
//! [`BollardRuntime`], the implementation on the Docker Engine API.
//!
//! The trait is object safe (`Arc<dyn Runtime>`) through `async-trait`:
//! native `async fn` in traits is not dyn-compatible, and hand-written boxed
//! futures on a dozen methods are noise; the one allocation per engine call
//! is nothing next to an HTTP round trip to the daemon.

mod docker;
mod error;
#[cfg(test)]
pub mod fake;
mod spec;

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;

pub use docker::BollardRuntime;
pub use error::{RuntimeError, RuntimeResult};
pub use spec::{
    ContainerSpec, LABEL_CONFIG_HASH, LABEL_CONTAINER_NUMBER, LABEL_ONEOFF, LABEL_PROJECT,
    LABEL_SERVICE, NetworkAttachment, config_hash, container_name, container_spec,
    container_spec_in, engine_network_name, engine_volume_name, to_bollard,
};

/// A label filter: every condition must hold (engine `label` filters).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelFilter {
    conditions: Vec<String>,
}

impl LabelFilter {
    pub fn new() -> Self {
        Self::default()
    }

    /// The label `key` is set to `value`.
    pub fn label(mut self, key: impl AsRef<str>, value: impl AsRef<str>) -> Self {
        self.conditions
            .push(format!("{}={}", key.as_ref(), value.as_ref()));
        self
    }

    /// The label `key` is set (any value).
    pub fn has_label(mut self, key: impl AsRef<str>) -> Self {
        self.conditions.push(key.as_ref().to_string());
        self
    }

    /// Engine filter strings (`key` or `key=value`).
    pub fn conditions(&self) -> &[String] {
        &self.conditions
    }

    pub fn is_empty(&self) -> bool {
        self.conditions.is_empty()
    }
}

/// Engine container state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContainerState {
    Created,
    Running,
    Paused,
    Restarting,
    Removing,
    Exited,
    Dead,
    /// Anything this build does not know (e.g. newer engines' `stopping`).
    Other(String),
}

/// Health as reported by the engine's healthcheck; `None` on
/// [`ContainerInfo::health`] when the container has no healthcheck.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    Starting,
    Healthy,
    Unhealthy,
}

/// What the agent needs to know about one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerInfo {
    pub id: String,
    /// Without the engine's leading `/`.
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub state: ContainerState,
    /// Last exit code (0 while it has never exited).
    pub exit_code: Option<i64>,
    pub health: Option<Health>,
    pub restart_count: u64,
    /// `sha256:...` of the image the container runs.
    pub image_id: String,
    /// The image reference it was created from.
    pub image: String,
}

/// A network to create.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkSpec {
    pub name: String,
    /// `None`: the engine default (bridge).
    pub driver: Option<String>,
    pub internal: bool,
    pub attachable: bool,
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkInfo {
    pub id: String,
    pub name: String,
    pub driver: String,
    pub labels: BTreeMap<String, String>,
}

/// A volume to create.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VolumeSpec {
    pub name: String,
    pub driver: Option<String>,
    pub driver_opts: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeInfo {
    pub name: String,
    pub driver: String,
    pub labels: BTreeMap<String, String>,
}

/// Registry credentials for a pull.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct RegistryAuth {
    pub username: Option<String>,
    pub password: Option<String>,
    /// A registry identity token instead of a password.
    pub identity_token: Option<String>,
    pub server: Option<String>,
}

impl std::fmt::Debug for RegistryAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryAuth")
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field(
                "identity_token",
                &self.identity_token.as_ref().map(|_| "<redacted>"),
            )
            .field("server", &self.server)
            .finish()
    }
}

/// The engine operations the agent uses. Object safe: hold it as
/// `Arc<dyn Runtime>` so the reconciler can run against a fake in tests.
#[async_trait]
pub trait Runtime: Send + Sync {
    /// Containers (running or not) whose labels match `filter`.
    async fn list_containers(&self, filter: &LabelFilter) -> RuntimeResult<Vec<ContainerInfo>>;
    /// [`RuntimeError::NotFound`] when there is no such container.
    async fn inspect_container(&self, id: &str) -> RuntimeResult<ContainerInfo>;
    /// Creates the container (attached to all its networks), returns its id.
    async fn create_container(&self, spec: &ContainerSpec) -> RuntimeResult<String>;
    async fn start_container(&self, id: &str) -> RuntimeResult<()>;
    /// SIGTERM (or the stop signal), then SIGKILL after `grace`. Stopping a
    /// stopped container is not an error.
    async fn stop_container(&self, id: &str, grace: Duration) -> RuntimeResult<()>;
    /// Force-removes the container; `remove_anonymous_volumes` also drops
    /// its anonymous volumes (named volumes are never removed here).
    async fn remove_container(&self, id: &str, remove_anonymous_volumes: bool)
    -> RuntimeResult<()>;
    /// The last `lines` lines of stdout and stderr, interleaved.
    async fn logs_tail(&self, id: &str, lines: usize) -> RuntimeResult<Vec<String>>;

    async fn list_networks(&self, filter: &LabelFilter) -> RuntimeResult<Vec<NetworkInfo>>;
    /// Returns the network id.
    async fn create_network(&self, spec: &NetworkSpec) -> RuntimeResult<String>;
    async fn remove_network(&self, id_or_name: &str) -> RuntimeResult<()>;

    async fn list_volumes(&self, filter: &LabelFilter) -> RuntimeResult<Vec<VolumeInfo>>;
    async fn create_volume(&self, spec: &VolumeSpec) -> RuntimeResult<VolumeInfo>;
    async fn remove_volume(&self, name: &str) -> RuntimeResult<()>;

    /// The image id when `reference` is present locally.
    async fn image_exists(&self, reference: &str) -> RuntimeResult<Option<String>>;
    /// Pulls `reference` and returns its image id.
    async fn pull_image(
        &self,
        reference: &str,
        auth: Option<&RegistryAuth>,
    ) -> RuntimeResult<String>;
    /// Tags `source` (reference or id) as `repo:tag`.
    async fn tag_image(&self, source: &str, repo: &str, tag: &str) -> RuntimeResult<()>;
}

/// How long to wait between polls in [`wait_for_health`].
const HEALTH_POLL: Duration = Duration::from_millis(250);

/// Polls `id` until its health is `Healthy` (Ok), it turns `Unhealthy` or
/// stops running (Err), or `timeout` passes (Err).
pub async fn wait_for_health(
    runtime: &dyn Runtime,
    id: &str,
    timeout: Duration,
) -> RuntimeResult<ContainerInfo> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let info = runtime.inspect_container(id).await?;
        match (&info.state, info.health) {
            (ContainerState::Running, Some(Health::Healthy)) => return Ok(info),
            (_, Some(Health::Unhealthy)) => {
                return Err(RuntimeError::Unhealthy {
                    id: id.to_string(),
                    reason: "healthcheck reports unhealthy".into(),
                });
            }
            (ContainerState::Exited | ContainerState::Dead, _) => {
                return Err(RuntimeError::Unhealthy {
                    id: id.to_string(),
                    reason: format!(
                        "container is {:?} (exit code {:?})",
                        info.state, info.exit_code
                    ),
                });
            }
            (ContainerState::Running, None) => {
                return Err(RuntimeError::Unhealthy {
                    id: id.to_string(),
                    reason: "container has no healthcheck".into(),
                });
            }
            _ => {}
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(RuntimeError::Timeout {
                op: "wait for health",
                target: id.to_string(),
                after: timeout,
            });
        }
        tokio::time::sleep(HEALTH_POLL).await;
    }
}
