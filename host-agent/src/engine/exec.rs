//! The executor: performs a [`StackPlan`] against a [`Runtime`]. Every step is
//! idempotent (create tolerates an existing object, remove a missing one),
//! so a plan cut short by a crash is finished by planning again.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use convoy_kit::error_chain;
use convoy_shared::compose::DependencyCondition;
use convoy_shared::render::RenderedStack;
use futures::future::join_all;
use tokio::time::Instant;
use tracing::{info, warn};

use super::gate::POLL;
use super::plan::{
    ImageFacts, LABEL_MANAGED, LABEL_STACK, Observed, StackPlan, Step, desired_spec,
};
use crate::runtime::{
    ContainerInfo, ContainerState, Health, LABEL_CONFIG_HASH, LABEL_SERVICE, LabelFilter,
    NetworkSpec, RegistryAuth, Runtime, RuntimeError, VolumeSpec, container_name,
};

/// Default stop grace period (compose's).
pub const DEFAULT_GRACE: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExecError {
    #[error("cancelled")]
    Cancelled,
    #[error("{reason}")]
    Step {
        /// The service the failing step was about ("" for stack objects).
        service: String,
        container: Option<String>,
        reason: String,
    },
}

pub fn step_err(service: &str, reason: impl Into<String>) -> ExecError {
    ExecError::Step {
        service: service.to_string(),
        container: None,
        reason: reason.into(),
    }
}

/// Lists the containers of a stack (managed objects only).
pub async fn stack_containers(
    runtime: &dyn Runtime,
    stack: &str,
) -> Result<Vec<ContainerInfo>, RuntimeError> {
    runtime
        .list_containers(
            &LabelFilter::new()
                .label(LABEL_MANAGED, "true")
                .label(LABEL_STACK, stack),
        )
        .await
}

/// Reads what the engine holds for `stack` (managed objects only).
pub async fn observe(runtime: &dyn Runtime, stack: &str) -> Result<Observed, RuntimeError> {
    let filter = LabelFilter::new()
        .label(LABEL_MANAGED, "true")
        .label(LABEL_STACK, stack);
    Ok(Observed {
        containers: runtime.list_containers(&filter).await?,
        networks: runtime.list_networks(&filter).await?,
        volumes: runtime.list_volumes(&filter).await?,
    })
}

/// Looks up which of the stack's images (or pinned ids) are local.
pub async fn image_facts(
    runtime: &dyn Runtime,
    stack: &RenderedStack,
    pins: &BTreeMap<String, String>,
) -> Result<ImageFacts, RuntimeError> {
    let mut local = BTreeMap::new();
    for (name, svc) in &stack.compose.services {
        let reference = pins.get(name).unwrap_or(&svc.image);
        if local.contains_key(reference) {
            continue;
        }
        if let Some(id) = runtime.image_exists(reference).await? {
            local.insert(reference.clone(), id);
        }
    }
    Ok(ImageFacts {
        local,
        pins: pins.clone(),
    })
}

/// The network spec of a [`Step::CreateNetwork`].
pub fn network_spec(step: &Step) -> Option<NetworkSpec> {
    match step {
        Step::CreateNetwork {
            name,
            driver,
            internal,
            labels,
            ..
        } => Some(NetworkSpec {
            name: name.clone(),
            driver: driver.clone(),
            internal: *internal,
            attachable: false,
            labels: labels.clone(),
        }),
        _ => None,
    }
}

/// The volume spec of a [`Step::CreateVolume`].
pub fn volume_spec(step: &Step) -> Option<VolumeSpec> {
    match step {
        Step::CreateVolume {
            name,
            driver,
            driver_opts,
            labels,
            ..
        } => Some(VolumeSpec {
            name: name.clone(),
            driver: driver.clone(),
            driver_opts: driver_opts.clone(),
            labels: labels.clone(),
        }),
        _ => None,
    }
}

/// Everything a plan run needs.
pub struct Executor<'a> {
    pub runtime: &'a dyn Runtime,
    pub stack: &'a RenderedStack,
    pub pins: &'a BTreeMap<String, String>,
    /// Where the stack's files for this revision live (relative binds).
    pub files_dir: PathBuf,
    pub auth: Option<&'a RegistryAuth>,
    /// Dependency waits give up here.
    pub deadline: Instant,
    pub cancelled: &'a (dyn Fn() -> bool + Send + Sync),
}

impl Executor<'_> {
    /// Runs the batches in order, the steps of a batch concurrently. Stops
    /// at the first batch with a failure (reporting the first failure) or
    /// when cancelled at a batch boundary.
    pub async fn run(&self, plan: &StackPlan) -> Result<(), ExecError> {
        for batch in &plan.batches {
            if (self.cancelled)() {
                return Err(ExecError::Cancelled);
            }
            let results = join_all(batch.iter().map(|s| self.step(s))).await;
            if let Some(e) = results.into_iter().find_map(Result::err) {
                return Err(e);
            }
        }
        Ok(())
    }

    async fn step(&self, step: &Step) -> Result<(), ExecError> {
        info!(stack = %self.stack.name, ?step, "step");
        match step {
            Step::CreateNetwork { name, .. } => {
                let Some(spec) = network_spec(step) else {
                    return Ok(());
                };
                let all = self
                    .runtime
                    .list_networks(&LabelFilter::new())
                    .await
                    .map_err(|e| step_err("", error_chain(&e)))?;
                if let Some(n) = all.iter().find(|n| n.name == *name) {
                    if n.labels.get(LABEL_MANAGED).is_some_and(|v| v == "true") {
                        return Ok(());
                    }
                    return Err(step_err(
                        "",
                        format!("network {name} exists and is not managed by Convoy"),
                    ));
                }
                self.runtime
                    .create_network(&spec)
                    .await
                    .map(|_| ())
                    .map_err(|e| step_err("", error_chain(&e)))
            }
            Step::CreateVolume { .. } => {
                let Some(spec) = volume_spec(step) else {
                    return Ok(());
                };
                // The engine returns an existing volume of that name.
                self.runtime
                    .create_volume(&spec)
                    .await
                    .map(|_| ())
                    .map_err(|e| step_err("", error_chain(&e)))
            }
            Step::EnsureImage { image } => {
                match self.runtime.image_exists(image).await {
                    Ok(Some(_)) => return Ok(()),
                    Ok(None) => {}
                    Err(e) => return Err(step_err("", error_chain(&e))),
                }
                self.runtime
                    .pull_image(image, self.auth)
                    .await
                    .map(|_| ())
                    .map_err(|e| {
                        step_err(
                            "",
                            format!(
                                "image {image} is not present locally and the pull failed: {}",
                                error_chain(&e)
                            ),
                        )
                    })
            }
            Step::Create { service, deps, .. } => {
                self.wait_deps(service, deps).await?;
                self.create_and_start(service).await
            }
            Step::Start {
                service,
                deps,
                container,
            } => {
                self.wait_deps(service, deps).await?;
                self.start(service, container).await
            }
            Step::Recreate {
                service, deps, old, ..
            } => {
                self.wait_deps(service, deps).await?;
                self.stop_remove(service, old).await?;
                self.create_and_start(service).await
            }
            Step::Remove { service, container } => self.stop_remove(service, container).await,
            Step::RemoveNetwork { name } => match self.runtime.remove_network(name).await {
                Ok(()) => Ok(()),
                Err(e) if e.is_not_found() => Ok(()),
                Err(e) => Err(step_err("", error_chain(&e))),
            },
            Step::RemoveVolume { name } => match self.runtime.remove_volume(name).await {
                Ok(()) => Ok(()),
                Err(e) if e.is_not_found() => Ok(()),
                Err(e) => Err(step_err("", error_chain(&e))),
            },
        }
    }

    fn grace(&self, service: &str) -> Duration {
        self.stack
            .compose
            .services
            .get(service)
            .and_then(|s| s.stop_grace_period)
            .unwrap_or(DEFAULT_GRACE)
    }

    async fn stop_remove(&self, service: &str, id: &str) -> Result<(), ExecError> {
        match self.runtime.stop_container(id, self.grace(service)).await {
            Ok(()) => {}
            Err(e) if e.is_not_found() => return Ok(()),
            Err(e) => warn!(%id, error = %error_chain(&e), "stop failed; removing by force"),
        }
        match self.runtime.remove_container(id, true).await {
            Ok(()) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(step_err(service, error_chain(&e))),
        }
    }

    async fn start(&self, service: &str, id: &str) -> Result<(), ExecError> {
        if let Err(e) = self.runtime.start_container(id).await {
            // Already running is fine (a re-run after a crash).
            match self.runtime.inspect_container(id).await {
                Ok(c) if c.state == ContainerState::Running => {}
                _ => {
                    return Err(ExecError::Step {
                        service: service.to_string(),
                        container: Some(id.to_string()),
                        reason: format!("cannot start {service}: {}", error_chain(&e)),
                    });
                }
            }
        }
        Ok(())
    }

    async fn create_and_start(&self, service: &str) -> Result<(), ExecError> {
        let Some(mut spec) = desired_spec(self.stack, service, self.pins) else {
            return Err(step_err(
                service,
                format!("service {service} is not in the stack"),
            ));
        };
        spec.resolve_relative_binds(&self.files_dir);
        let id = match self.runtime.create_container(&spec).await {
            Ok(id) => id,
            Err(e) => {
                // A container of that name may already exist (a re-run
                // after a crash between create and the journal): reuse it
                // when it is ours and current.
                match self.runtime.inspect_container(&spec.name).await {
                    Ok(c)
                        if c.labels.get(LABEL_MANAGED).is_some_and(|v| v == "true")
                            && c.labels.get(LABEL_CONFIG_HASH)
                                == spec.labels.get(LABEL_CONFIG_HASH) =>
                    {
                        c.id
                    }
                    Ok(c) if c.labels.get(LABEL_MANAGED).is_some_and(|v| v == "true") => {
                        self.stop_remove(service, &c.id).await?;
                        self.runtime.create_container(&spec).await.map_err(|e| {
                            step_err(
                                service,
                                format!("cannot create {service}: {}", error_chain(&e)),
                            )
                        })?
                    }
                    _ => {
                        return Err(step_err(
                            service,
                            format!("cannot create {service}: {}", error_chain(&e)),
                        ));
                    }
                }
            }
        };
        self.start(service, &id).await
    }

    async fn find(&self, service: &str) -> Result<Option<ContainerInfo>, ExecError> {
        let name = container_name(&self.stack.name, service, 1);
        let cs = stack_containers(self.runtime, &self.stack.name)
            .await
            .map_err(|e| step_err(service, error_chain(&e)))?;
        Ok(cs.into_iter().find(|c| {
            c.labels.get(LABEL_SERVICE).map(String::as_str) == Some(service) && c.name == name
        }))
    }

    /// Waits until every dependency meets its condition.
    async fn wait_deps(
        &self,
        service: &str,
        deps: &[(String, DependencyCondition)],
    ) -> Result<(), ExecError> {
        for (dep, cond) in deps {
            loop {
                if (self.cancelled)() {
                    return Err(ExecError::Cancelled);
                }
                let c = self.find(dep).await?;
                let fail = |reason: String| ExecError::Step {
                    service: dep.clone(),
                    container: c.as_ref().map(|c| c.id.clone()),
                    reason,
                };
                if let Some(c) = &c {
                    let exited = matches!(c.state, ContainerState::Exited | ContainerState::Dead);
                    match cond {
                        DependencyCondition::ServiceStarted => {
                            if c.state != ContainerState::Created {
                                break;
                            }
                        }
                        DependencyCondition::ServiceHealthy => {
                            if c.health == Some(Health::Unhealthy) {
                                return Err(fail(format!(
                                    "{dep} is unhealthy ({service} waits for it to be healthy)"
                                )));
                            }
                            if exited {
                                return Err(fail(format!(
                                    "{dep} exited with code {} ({service} waits for it to be healthy)",
                                    c.exit_code.unwrap_or(-1)
                                )));
                            }
                            if c.state == ContainerState::Running
                                && matches!(c.health, Some(Health::Healthy) | None)
                            {
                                break;
                            }
                        }
                        DependencyCondition::ServiceCompletedSuccessfully => {
                            if exited {
                                if c.exit_code == Some(0) {
                                    break;
                                }
                                return Err(fail(format!(
                                    "{dep} exited with code {} ({service} waits for it to complete successfully)",
                                    c.exit_code.unwrap_or(-1)
                                )));
                            }
                        }
                    }
                }
                if Instant::now() >= self.deadline {
                    return Err(fail(format!(
                        "{service} gave up waiting for {dep} ({cond:?}) at the deadline"
                    )));
                }
                tokio::time::sleep(POLL).await;
            }
        }
        Ok(())
    }
}
