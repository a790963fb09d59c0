//! The pure planner: (desired stack, observed engine objects) -> an ordered
//! [`StackPlan`]. No I/O here; the executor performs the plan.
//!
//! A plan is a list of batches. Batches run one after the other; the steps
//! of one batch are independent of each other and run concurrently. The
//! order is: prepare (networks, volumes, images), remove obsolete
//! containers, one batch per `depends_on` level of the services that need
//! work, then remove networks/volumes no longer wanted.

use std::collections::{BTreeMap, BTreeSet};

use convoy_shared::compose::{ComposeFile, DependencyCondition, MountKind, Service};
use convoy_shared::render::RenderedStack;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::runtime::{
    ContainerInfo, ContainerSpec, ContainerState, LABEL_CONFIG_HASH, LABEL_PROJECT, LABEL_SERVICE,
    NetworkInfo, VolumeInfo, config_hash, container_name, container_spec_in, engine_network_name,
    engine_volume_name,
};

/// Every object Convoy creates carries `dev.convoy.managed=true`; Convoy
/// never touches an object without it.
pub const LABEL_MANAGED: &str = "dev.convoy.managed";
/// The stack (compose project) an object belongs to.
pub const LABEL_STACK: &str = "dev.convoy.stack";
/// The stack revision a container was created for.
pub const LABEL_REVISION: &str = "dev.convoy.revision";
/// Compose's network/volume key labels (so `docker compose` recognises them).
pub const LABEL_COMPOSE_NETWORK: &str = "com.docker.compose.network";
pub const LABEL_COMPOSE_VOLUME: &str = "com.docker.compose.volume";

/// What the engine holds for one stack (objects carrying our labels).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observed {
    pub containers: Vec<ContainerInfo>,
    pub networks: Vec<NetworkInfo>,
    pub volumes: Vec<VolumeInfo>,
}

/// Image facts the planner needs, gathered by the executor before planning.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageFacts {
    /// Image reference -> local image id; a reference absent here is not
    /// present locally and gets an [`Step::EnsureImage`].
    pub local: BTreeMap<String, String>,
    /// Service -> image id to run instead of its reference (a last-known-good
    /// restore pins the exact images it ran; no registry needed).
    pub pins: BTreeMap<String, String>,
}

/// One idempotent step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Step {
    CreateNetwork {
        key: String,
        name: String,
        driver: Option<String>,
        internal: bool,
        labels: BTreeMap<String, String>,
    },
    CreateVolume {
        key: String,
        name: String,
        driver: Option<String>,
        driver_opts: BTreeMap<String, String>,
        labels: BTreeMap<String, String>,
    },
    /// Make sure the image is present (pull when it is not).
    EnsureImage {
        image: String,
    },
    /// Wait for `deps`, create the container, start it.
    Create {
        service: String,
        deps: Vec<(String, DependencyCondition)>,
        spec: Box<SpecRef>,
    },
    /// Wait for `deps`, start an existing (created, up-to-date) container.
    Start {
        service: String,
        deps: Vec<(String, DependencyCondition)>,
        container: String,
    },
    /// Wait for `deps`, stop + remove `old`, create, start.
    Recreate {
        service: String,
        deps: Vec<(String, DependencyCondition)>,
        old: String,
        reason: String,
        spec: Box<SpecRef>,
    },
    /// Stop and remove a container (tolerates it being gone).
    Remove {
        service: String,
        container: String,
    },
    RemoveNetwork {
        name: String,
    },
    RemoveVolume {
        name: String,
    },
}

/// A container to create: the service and the engine-facing spec values
/// the executor needs (the full [`ContainerSpec`] is rebuilt from the stack
/// by [`desired_spec`], which keeps plans serialisable and small).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpecRef {
    pub name: String,
    pub image: String,
    pub hash: String,
}

impl Step {
    /// The service a step is about, if any.
    pub fn service(&self) -> Option<&str> {
        match self {
            Step::Create { service, .. }
            | Step::Start { service, .. }
            | Step::Recreate { service, .. }
            | Step::Remove { service, .. } => Some(service),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StackPlan {
    pub stack: String,
    /// Run in order; the steps inside one batch run concurrently.
    pub batches: Vec<Vec<Step>>,
}

impl StackPlan {
    pub fn is_empty(&self) -> bool {
        self.batches.iter().all(Vec::is_empty)
    }

    pub fn steps(&self) -> impl Iterator<Item = &Step> {
        self.batches.iter().flatten()
    }

    fn push(&mut self, batch: Vec<Step>) {
        if !batch.is_empty() {
            self.batches.push(batch);
        }
    }
}

/// The base labels of every object of `stack`.
pub fn stack_labels(stack: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_MANAGED.to_string(), "true".to_string()),
        (LABEL_STACK.to_string(), stack.to_string()),
    ])
}

/// Services that some other service waits on with
/// `service_completed_successfully`: one-shots, allowed to exit 0.
pub fn oneshots(compose: &ComposeFile) -> BTreeSet<String> {
    compose
        .services
        .values()
        .flat_map(|s| s.depends_on.iter())
        .filter(|(_, d)| d.condition == DependencyCondition::ServiceCompletedSuccessfully)
        .map(|(n, _)| n.clone())
        .collect()
}

/// The config hash Convoy puts in `com.docker.compose.config-hash`: the
/// service's hash, plus the content of the files its relative binds use
/// (a changed bound file must recreate the container).
pub fn service_hash(stack: &RenderedStack, svc: &Service) -> String {
    let base = config_hash(svc);
    let rel: Vec<&str> = svc
        .volumes
        .iter()
        .filter(|m| m.kind == MountKind::Bind && m.relative)
        .filter_map(|m| m.source.as_deref())
        .map(|s| s.trim_start_matches("./").trim_end_matches('/'))
        .collect();
    if rel.is_empty() {
        return base;
    }
    let mut h = Sha256::new();
    h.update(base.as_bytes());
    for (path, content) in &stack.files {
        if rel
            .iter()
            .any(|r| path == r || path.starts_with(&format!("{r}/")))
        {
            h.update(path.as_bytes());
            h.update([0]);
            h.update(Sha256::digest(content));
        }
    }
    hex::encode(h.finalize())
}

/// The full container spec of `service` at this stack revision (relative
/// binds are still relative; the executor resolves them).
pub fn desired_spec(
    stack: &RenderedStack,
    service: &str,
    pins: &BTreeMap<String, String>,
) -> Option<ContainerSpec> {
    let svc = stack.compose.services.get(service)?;
    let mut extra = stack_labels(&stack.name);
    extra.insert(LABEL_REVISION.into(), stack.revision.clone());
    let mut spec = container_spec_in(&stack.compose, &stack.name, service, 1, &extra)?;
    spec.labels
        .insert(LABEL_CONFIG_HASH.into(), service_hash(stack, svc));
    if let Some(id) = pins.get(service) {
        spec.image = id.clone();
    }
    Some(spec)
}

/// Networks the stack uses: every key a service joins (`default` when a
/// service names none), minus external ones.
fn desired_networks(stack: &RenderedStack) -> BTreeMap<String, Step> {
    let mut keys = BTreeSet::new();
    for svc in stack.compose.services.values() {
        if svc.networks.is_empty() {
            keys.insert("default".to_string());
        }
        keys.extend(svc.networks.keys().cloned());
    }
    let mut out = BTreeMap::new();
    for key in keys {
        let def = stack.compose.networks.get(&key);
        if def.is_some_and(|d| d.external) {
            continue;
        }
        let name = engine_network_name(&stack.name, &key, def);
        let mut labels = def.map(|d| d.labels.clone()).unwrap_or_default();
        labels.extend(stack_labels(&stack.name));
        labels.insert(LABEL_PROJECT.into(), stack.name.clone());
        labels.insert(LABEL_COMPOSE_NETWORK.into(), key.clone());
        out.insert(
            name.clone(),
            Step::CreateNetwork {
                key,
                name,
                driver: def.and_then(|d| d.driver.clone()),
                internal: def.is_some_and(|d| d.internal),
                labels,
            },
        );
    }
    out
}

fn desired_volumes(stack: &RenderedStack) -> BTreeMap<String, Step> {
    let mut out = BTreeMap::new();
    for (key, def) in &stack.compose.volumes {
        if def.external {
            continue;
        }
        let name = engine_volume_name(&stack.name, key, Some(def));
        let mut labels = def.labels.clone();
        labels.extend(stack_labels(&stack.name));
        labels.insert(LABEL_PROJECT.into(), stack.name.clone());
        labels.insert(LABEL_COMPOSE_VOLUME.into(), key.clone());
        out.insert(
            name.clone(),
            Step::CreateVolume {
                key: key.clone(),
                name,
                driver: def.driver.clone(),
                driver_opts: def.driver_opts.clone(),
                labels,
            },
        );
    }
    out
}

/// `depends_on` levels: level 0 has no (present) dependencies, level n
/// depends only on lower levels. A cycle (the validator rejects them) ends
/// up in one last level rather than looping.
pub fn levels(compose: &ComposeFile) -> Vec<Vec<String>> {
    let mut placed: BTreeMap<&str, usize> = BTreeMap::new();
    let mut remaining: BTreeSet<&str> = compose.services.keys().map(String::as_str).collect();
    let mut out: Vec<Vec<String>> = Vec::new();
    while !remaining.is_empty() {
        let ready: Vec<&str> = remaining
            .iter()
            .copied()
            .filter(|s| {
                compose.services[*s]
                    .depends_on
                    .keys()
                    .all(|d| placed.contains_key(d.as_str()) || !compose.services.contains_key(d))
            })
            .collect();
        let level: Vec<&str> = if ready.is_empty() {
            remaining.iter().copied().collect()
        } else {
            ready
        };
        for s in &level {
            remaining.remove(s);
            placed.insert(s, out.len());
        }
        out.push(level.into_iter().map(str::to_owned).collect());
    }
    out
}

/// Why the container of a service must be recreated, if it must.
fn recreate_reason(
    c: &ContainerInfo,
    spec: &ContainerSpec,
    want_image: Option<&String>,
    oneshot: bool,
) -> Option<String> {
    let want_hash = spec.labels.get(LABEL_CONFIG_HASH);
    if c.labels.get(LABEL_CONFIG_HASH) != want_hash {
        return Some("configuration changed".into());
    }
    match want_image {
        None => return Some("image not present locally".into()),
        Some(id) if *id != c.image_id => return Some("image changed".into()),
        Some(_) => {}
    }
    match c.state {
        ContainerState::Exited | ContainerState::Dead => {
            if oneshot && c.exit_code == Some(0) {
                None
            } else {
                Some(format!("container exited (code {:?})", c.exit_code))
            }
        }
        _ => None,
    }
}

/// The images (references, or pinned ids) the stack needs that are not
/// present locally, each once.
pub fn missing_images(stack: &RenderedStack, images: &ImageFacts) -> Vec<String> {
    let wanted: BTreeSet<&String> = stack
        .compose
        .services
        .iter()
        .map(|(name, svc)| images.pins.get(name).unwrap_or(&svc.image))
        .collect();
    wanted
        .into_iter()
        .filter(|r| !images.local.contains_key(*r))
        .cloned()
        .collect()
}

/// Plans one stack towards `desired`.
pub fn plan_stack(desired: &RenderedStack, observed: &Observed, images: &ImageFacts) -> StackPlan {
    let mut plan = StackPlan {
        stack: desired.name.clone(),
        batches: Vec::new(),
    };
    let managed = |labels: &BTreeMap<String, String>| {
        labels.get(LABEL_MANAGED).is_some_and(|v| v == "true")
            && labels.get(LABEL_STACK) == Some(&desired.name)
    };
    let containers: Vec<&ContainerInfo> = observed
        .containers
        .iter()
        .filter(|c| managed(&c.labels))
        .collect();

    // Prepare: networks, volumes, images.
    let mut prepare = Vec::new();
    let nets = desired_networks(desired);
    let have_nets: BTreeSet<&str> = observed
        .networks
        .iter()
        .filter(|n| managed(&n.labels))
        .map(|n| n.name.as_str())
        .collect();
    for (name, step) in &nets {
        if !have_nets.contains(name.as_str()) {
            prepare.push(step.clone());
        }
    }
    let vols = desired_volumes(desired);
    let have_vols: BTreeSet<&str> = observed
        .volumes
        .iter()
        .filter(|v| managed(&v.labels))
        .map(|v| v.name.as_str())
        .collect();
    for (name, step) in &vols {
        if !have_vols.contains(name.as_str()) {
            prepare.push(step.clone());
        }
    }
    let mut want_image: BTreeMap<&str, Option<&String>> = BTreeMap::new();
    for (name, svc) in &desired.compose.services {
        if let Some(pin) = images.pins.get(name) {
            // A pinned id is its own reference.
            want_image.insert(name, images.local.get(pin).map(|_| pin));
        } else {
            want_image.insert(name, images.local.get(&svc.image));
        }
    }
    prepare.extend(
        missing_images(desired, images)
            .into_iter()
            .map(|image| Step::EnsureImage { image }),
    );
    plan.push(prepare);

    // Remove containers of services gone from the stack, and extras
    // (duplicates, other container numbers) of the ones still here.
    let mut removes = Vec::new();
    let mut current: BTreeMap<&str, &ContainerInfo> = BTreeMap::new();
    for c in &containers {
        let service = c
            .labels
            .get(LABEL_SERVICE)
            .map(String::as_str)
            .unwrap_or("");
        let keep = desired.compose.services.contains_key(service)
            && c.name == container_name(&desired.name, service, 1)
            && !current.contains_key(service);
        if keep {
            current.insert(service, c);
        } else {
            removes.push(Step::Remove {
                service: service.to_string(),
                container: c.id.clone(),
            });
        }
    }
    plan.push(removes);

    // Services, level by level.
    let shots = oneshots(&desired.compose);
    for level in levels(&desired.compose) {
        let mut batch = Vec::new();
        for service in level {
            let Some(svc) = desired.compose.services.get(&service) else {
                continue;
            };
            let Some(spec) = desired_spec(desired, &service, &images.pins) else {
                continue;
            };
            let deps: Vec<(String, DependencyCondition)> = svc
                .depends_on
                .iter()
                .filter(|(d, _)| desired.compose.services.contains_key(*d))
                .map(|(d, dep)| (d.clone(), dep.condition))
                .collect();
            let spec_ref = Box::new(SpecRef {
                name: spec.name.clone(),
                image: spec.image.clone(),
                hash: spec
                    .labels
                    .get(LABEL_CONFIG_HASH)
                    .cloned()
                    .unwrap_or_default(),
            });
            let want = want_image.get(service.as_str()).copied().flatten();
            match current.get(service.as_str()) {
                None => batch.push(Step::Create {
                    service,
                    deps,
                    spec: spec_ref,
                }),
                Some(c) => {
                    if let Some(reason) =
                        recreate_reason(c, &spec, want, shots.contains(service.as_str()))
                    {
                        batch.push(Step::Recreate {
                            service,
                            deps,
                            old: c.id.clone(),
                            reason,
                            spec: spec_ref,
                        });
                    } else if c.state == ContainerState::Created {
                        batch.push(Step::Start {
                            service,
                            deps,
                            container: c.id.clone(),
                        });
                    }
                }
            }
        }
        plan.push(batch);
    }

    // Networks no longer used (their containers are gone by now).
    let mut cleanup = Vec::new();
    for n in observed.networks.iter().filter(|n| managed(&n.labels)) {
        if !nets.contains_key(&n.name) {
            cleanup.push(Step::RemoveNetwork {
                name: n.name.clone(),
            });
        }
    }
    if desired.remove_volumes {
        for v in observed.volumes.iter().filter(|v| managed(&v.labels)) {
            if !vols.contains_key(&v.name) {
                cleanup.push(Step::RemoveVolume {
                    name: v.name.clone(),
                });
            }
        }
    }
    plan.push(cleanup);
    plan
}

/// Plans the removal of a whole stack: its containers, then its networks,
/// then (only with `remove_volumes`) its named volumes.
pub fn plan_removal(stack: &str, observed: &Observed, remove_volumes: bool) -> StackPlan {
    let managed = |labels: &BTreeMap<String, String>| {
        labels.get(LABEL_MANAGED).is_some_and(|v| v == "true")
            && labels.get(LABEL_STACK).map(String::as_str) == Some(stack)
    };
    let mut plan = StackPlan {
        stack: stack.to_string(),
        batches: Vec::new(),
    };
    plan.push(
        observed
            .containers
            .iter()
            .filter(|c| managed(&c.labels))
            .map(|c| Step::Remove {
                service: c.labels.get(LABEL_SERVICE).cloned().unwrap_or_default(),
                container: c.id.clone(),
            })
            .collect(),
    );
    plan.push(
        observed
            .networks
            .iter()
            .filter(|n| managed(&n.labels))
            .map(|n| Step::RemoveNetwork {
                name: n.name.clone(),
            })
            .collect(),
    );
    if remove_volumes {
        plan.push(
            observed
                .volumes
                .iter()
                .filter(|v| managed(&v.labels))
                .map(|v| Step::RemoveVolume {
                    name: v.name.clone(),
                })
                .collect(),
        );
    }
    plan
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use convoy_shared::compose::Dependency;
    use convoy_shared::fleet::HealthPolicy;
    use proptest::prelude::*;

    use super::*;
    use crate::engine::exec::{network_spec, volume_spec};

    fn svc(image: &str, env: &str, deps: &[(&str, DependencyCondition)]) -> Service {
        Service {
            image: image.into(),
            environment: BTreeMap::from([("V".to_string(), Some(env.to_string()))]),
            depends_on: deps
                .iter()
                .map(|(d, c)| {
                    (
                        d.to_string(),
                        Dependency {
                            condition: *c,
                            ..Default::default()
                        },
                    )
                })
                .collect(),
            ..Default::default()
        }
    }

    fn stack(services: Vec<(&str, Service)>) -> RenderedStack {
        RenderedStack {
            name: "shop".into(),
            revision: "r1".into(),
            compose: ComposeFile {
                services: services
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v))
                    .collect(),
                ..Default::default()
            },
            health: HealthPolicy::default(),
            after: vec![],
            remove_volumes: false,
            files: BTreeMap::new(),
        }
    }

    fn fake_id(image: &str) -> String {
        format!("sha256:{}", hex::encode(Sha256::digest(image.as_bytes())))
    }

    /// Applies a plan to a simulated engine (one-shots exit 0 at once).
    fn simulate(
        stack: &RenderedStack,
        plan: &StackPlan,
        obs: &mut Observed,
        images: &mut ImageFacts,
        next_id: &mut u64,
    ) {
        let shots = oneshots(&stack.compose);
        for step in plan.steps() {
            match step {
                Step::CreateNetwork { .. } => {
                    let s = network_spec(step).unwrap();
                    obs.networks.push(NetworkInfo {
                        id: s.name.clone(),
                        name: s.name,
                        driver: "bridge".into(),
                        labels: s.labels,
                    });
                }
                Step::CreateVolume { .. } => {
                    let s = volume_spec(step).unwrap();
                    obs.volumes.push(VolumeInfo {
                        name: s.name,
                        driver: "local".into(),
                        labels: s.labels,
                    });
                }
                Step::EnsureImage { image } => {
                    images.local.insert(image.clone(), fake_id(image));
                }
                Step::Create { service, .. } | Step::Recreate { service, .. } => {
                    if let Step::Recreate { old, .. } = step {
                        obs.containers.retain(|c| c.id != *old);
                    }
                    let spec = desired_spec(stack, service, &images.pins).unwrap();
                    *next_id += 1;
                    let oneshot = shots.contains(service);
                    obs.containers.push(ContainerInfo {
                        id: format!("c{next_id}"),
                        name: spec.name.clone(),
                        labels: spec.labels.clone(),
                        state: if oneshot {
                            ContainerState::Exited
                        } else {
                            ContainerState::Running
                        },
                        exit_code: Some(0),
                        health: None,
                        restart_count: 0,
                        image_id: images.local[&spec.image].clone(),
                        image: spec.image.clone(),
                    });
                }
                Step::Start { container, .. } => {
                    for c in &mut obs.containers {
                        if c.id == *container {
                            c.state = ContainerState::Running;
                        }
                    }
                }
                Step::Remove { container, .. } => obs.containers.retain(|c| c.id != *container),
                Step::RemoveNetwork { name } => obs.networks.retain(|n| n.name != *name),
                Step::RemoveVolume { name } => obs.volumes.retain(|v| v.name != *name),
            }
        }
    }

    fn converge(stack: &RenderedStack, obs: &mut Observed, images: &mut ImageFacts) -> StackPlan {
        let plan = plan_stack(stack, obs, images);
        let mut n = 1000;
        simulate(stack, &plan, obs, images, &mut n);
        plan
    }

    fn names(plan: &StackPlan) -> Vec<String> {
        plan.steps()
            .map(|s| match s {
                Step::Create { service, .. } => format!("create {service}"),
                Step::Start { service, .. } => format!("start {service}"),
                Step::Recreate { service, .. } => format!("recreate {service}"),
                Step::Remove { service, .. } => format!("remove {service}"),
                Step::CreateNetwork { name, .. } => format!("net {name}"),
                Step::CreateVolume { name, .. } => format!("vol {name}"),
                Step::EnsureImage { image } => format!("image {image}"),
                Step::RemoveNetwork { name } => format!("rmnet {name}"),
                Step::RemoveVolume { name } => format!("rmvol {name}"),
            })
            .collect()
    }

    #[test]
    fn first_plan_orders_by_depends_on_and_batches_independent_services() {
        let s = stack(vec![
            ("db", svc("pg", "1", &[])),
            ("cache", svc("redis", "1", &[])),
            (
                "migrate",
                svc("app", "1", &[("db", DependencyCondition::ServiceHealthy)]),
            ),
            (
                "web",
                svc(
                    "app",
                    "1",
                    &[
                        ("migrate", DependencyCondition::ServiceCompletedSuccessfully),
                        ("cache", DependencyCondition::ServiceStarted),
                    ],
                ),
            ),
        ]);
        let mut images = ImageFacts::default();
        images.local.insert("pg".into(), fake_id("pg"));
        let plan = plan_stack(&s, &Observed::default(), &images);
        assert_eq!(plan.batches[0].len(), 3, "network + 2 missing images");
        assert!(names(&plan).contains(&"net shop_default".to_string()));
        assert!(names(&plan).contains(&"image redis".to_string()));
        assert!(
            !names(&plan).contains(&"image pg".to_string()),
            "local image: no pull"
        );
        let svc_batches: Vec<Vec<String>> = plan.batches[1..]
            .iter()
            .map(|b| {
                b.iter()
                    .filter_map(|s| s.service().map(str::to_owned))
                    .collect()
            })
            .collect();
        assert_eq!(
            svc_batches,
            vec![
                vec!["cache".to_string(), "db".to_string()],
                vec!["migrate".into()],
                vec!["web".into()]
            ]
        );
        let web = plan.steps().find(|s| s.service() == Some("web")).unwrap();
        let Step::Create { deps, spec, .. } = web else {
            panic!("{web:?}")
        };
        assert_eq!(spec.name, "shop-web-1");
        assert_eq!(deps.len(), 2);
    }

    #[test]
    fn only_changed_services_are_recreated() {
        let v1 = stack(vec![
            ("db", svc("pg", "1", &[])),
            (
                "web",
                svc("app", "1", &[("db", DependencyCondition::ServiceStarted)]),
            ),
        ]);
        let mut obs = Observed::default();
        let mut images = ImageFacts::default();
        converge(&v1, &mut obs, &mut images);
        assert!(plan_stack(&v1, &obs, &images).is_empty());

        let mut v2 = v1.clone();
        v2.revision = "r2".into();
        v2.compose.services.get_mut("web").unwrap().environment =
            BTreeMap::from([("V".to_string(), Some("2".to_string()))]);
        let plan = plan_stack(&v2, &obs, &images);
        assert_eq!(names(&plan), vec!["recreate web"]);

        // A new image id behind the same tag recreates too.
        images.local.insert("pg".into(), "sha256:new".into());
        let plan = plan_stack(&v1, &obs, &images);
        assert_eq!(names(&plan), vec!["recreate db"]);
        let Step::Recreate { reason, .. } = &plan.batches[0][0] else {
            panic!()
        };
        assert_eq!(reason, "image changed");
    }

    #[test]
    fn exited_created_unmanaged_and_removed_services() {
        let v1 = stack(vec![
            ("db", svc("pg", "1", &[])),
            ("init", svc("app", "1", &[])),
            (
                "web",
                svc(
                    "app",
                    "1",
                    &[("init", DependencyCondition::ServiceCompletedSuccessfully)],
                ),
            ),
        ]);
        let mut obs = Observed::default();
        let mut images = ImageFacts::default();
        converge(&v1, &mut obs, &mut images);
        // The one-shot exited 0: fine. Exit 1 or a crashed db: recreate.
        assert!(plan_stack(&v1, &obs, &images).is_empty());
        for c in &mut obs.containers {
            match c.labels[LABEL_SERVICE].as_str() {
                "init" => c.exit_code = Some(1),
                "db" => c.state = ContainerState::Exited,
                "web" => c.state = ContainerState::Created,
                _ => {}
            }
        }
        // Someone else's container with compose labels but not ours.
        obs.containers.push(ContainerInfo {
            id: "foreign".into(),
            name: "shop-web-2".into(),
            labels: BTreeMap::from([(LABEL_SERVICE.to_string(), "web".to_string())]),
            state: ContainerState::Running,
            exit_code: None,
            health: None,
            restart_count: 0,
            image_id: "x".into(),
            image: "x".into(),
        });
        let mut got = names(&plan_stack(&v1, &obs, &images));
        got.sort();
        assert_eq!(got, vec!["recreate db", "recreate init", "start web"]);

        // Drop a service: its container goes, the rest stays.
        let mut v2 = v1.clone();
        v2.compose.services.remove("db");
        let mut obs2 = Observed::default();
        let mut images2 = ImageFacts::default();
        converge(&v1, &mut obs2, &mut images2);
        assert_eq!(names(&plan_stack(&v2, &obs2, &images2)), vec!["remove db"]);

        // Whole-stack removal: containers, networks, volumes only on request.
        obs2.volumes.push(VolumeInfo {
            name: "shop_data".into(),
            driver: "local".into(),
            labels: stack_labels("shop"),
        });
        let p = plan_removal("shop", &obs2, false);
        assert_eq!(p.batches.len(), 2);
        assert_eq!(p.batches[0].len(), 3);
        assert_eq!(names(&p)[3], "rmnet shop_default");
        let p = plan_removal("shop", &obs2, true);
        assert_eq!(names(&p).last().unwrap(), "rmvol shop_data");
        assert!(plan_removal("other", &obs2, true).is_empty());
    }

    #[test]
    fn pins_run_the_recorded_image_id_without_changing_the_config_hash() {
        let v1 = stack(vec![("web", svc("app:1", "1", &[]))]);
        let mut images = ImageFacts::default();
        images
            .local
            .insert("sha256:old".into(), "sha256:old".into());
        images.pins.insert("web".into(), "sha256:old".into());
        let spec = desired_spec(&v1, "web", &images.pins).unwrap();
        assert_eq!(spec.image, "sha256:old");
        let unpinned = desired_spec(&v1, "web", &BTreeMap::new()).unwrap();
        assert_eq!(
            spec.labels[LABEL_CONFIG_HASH],
            unpinned.labels[LABEL_CONFIG_HASH]
        );
        let mut obs = Observed::default();
        let plan = converge(&v1, &mut obs, &mut images);
        assert!(
            !names(&plan).iter().any(|n| n.starts_with("image")),
            "pinned id is local"
        );
        assert_eq!(obs.containers[0].image_id, "sha256:old");
        assert!(plan_stack(&v1, &obs, &images).is_empty());
    }

    #[test]
    fn bound_file_content_is_part_of_the_hash() {
        let mut s = svc("app", "1", &[]);
        s.volumes = vec![convoy_shared::compose::VolumeMount {
            kind: MountKind::Bind,
            source: Some("./conf".into()),
            target: "/conf".into(),
            read_only: true,
            relative: true,
            tmpfs_size: None,
            nocopy: false,
        }];
        let mut v1 = stack(vec![("web", s)]);
        v1.files.insert("conf/a.conf".into(), b"one".to_vec());
        let h1 = service_hash(&v1, &v1.compose.services["web"]);
        v1.files.insert("conf/a.conf".into(), b"two".to_vec());
        let h2 = service_hash(&v1, &v1.compose.services["web"]);
        v1.files.insert("other.txt".into(), b"x".to_vec());
        let h3 = service_hash(&v1, &v1.compose.services["web"]);
        assert_ne!(h1, h2);
        assert_eq!(h2, h3, "files the service does not bind do not count");
    }

    fn arb_stack() -> impl Strategy<Value = RenderedStack> {
        // Up to 6 services; each may depend on earlier ones (acyclic).
        prop::collection::vec(
            (
                prop::sample::select(vec!["img-a", "img-b", "img-c"]),
                0u8..3,
                prop::collection::vec((0usize..6, 0u8..3), 0..3),
                any::<bool>(),
            ),
            1..6,
        )
        .prop_map(|raw| {
            let mut services = BTreeMap::new();
            for (i, (image, env, deps, on_net)) in raw.iter().enumerate() {
                let mut s = svc(image, &env.to_string(), &[]);
                for (d, c) in deps {
                    if *d < i {
                        let cond = match c {
                            0 => DependencyCondition::ServiceStarted,
                            1 => DependencyCondition::ServiceHealthy,
                            _ => DependencyCondition::ServiceCompletedSuccessfully,
                        };
                        s.depends_on.insert(
                            format!("s{d}"),
                            Dependency {
                                condition: cond,
                                ..Default::default()
                            },
                        );
                    }
                }
                if *on_net {
                    s.networks.insert("back".into(), Default::default());
                }
                services.insert(format!("s{i}"), s);
            }
            let mut st = stack(vec![]);
            st.compose.services = services;
            st
        })
    }

    proptest! {
        #[test]
        fn applying_the_plan_converges(
            before in arb_stack(),
            after in arb_stack(),
            kill in prop::collection::vec(any::<bool>(), 6),
        ) {
            // Start from a converged older revision, then perturb it.
            let mut obs = Observed::default();
            let mut images = ImageFacts::default();
            converge(&before, &mut obs, &mut images);
            for (c, k) in obs.containers.iter_mut().zip(&kill) {
                if *k {
                    c.state = ContainerState::Exited;
                    c.exit_code = Some(137);
                }
            }
            let plan = plan_stack(&after, &obs, &images);
            // depends_on order: a service's step comes in a later batch
            // than any of its dependencies' steps.
            let batch_of: BTreeMap<&str, usize> = plan
                .batches
                .iter()
                .enumerate()
                .flat_map(|(i, b)| b.iter().filter(|s| !matches!(s, Step::Remove { .. })).filter_map(move |s| s.service().map(|n| (n, i))))
                .collect();
            for (name, svc) in &after.compose.services {
                for dep in svc.depends_on.keys() {
                    if let (Some(a), Some(b)) = (batch_of.get(name.as_str()), batch_of.get(dep.as_str())) {
                        prop_assert!(a > b, "{name} (batch {a}) before its dependency {dep} (batch {b})");
                    }
                }
            }
            let mut n = 0;
            simulate(&after, &plan, &mut obs, &mut images, &mut n);
            let second = plan_stack(&after, &obs, &images);
            prop_assert!(second.is_empty(), "second plan not empty: {:?}", second);
            // Exactly one container per desired service, compose-named.
            let mut got: Vec<String> = obs.containers.iter().map(|c| c.name.clone()).collect();
            got.sort();
            let mut want: Vec<String> = after.compose.services.keys().map(|s| format!("shop-{s}-1")).collect();
            want.sort();
            prop_assert_eq!(got, want);
            // Networks: exactly those the services use.
            let uses_default = after.compose.services.values().any(|s| s.networks.is_empty());
            let uses_back = after.compose.services.values().any(|s| !s.networks.is_empty());
            prop_assert_eq!(obs.networks.iter().any(|n| n.name == "shop_default"), uses_default);
            prop_assert_eq!(obs.networks.iter().any(|n| n.name == "shop_back"), uses_back);
        }
    }
}
