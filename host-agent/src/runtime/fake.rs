//! [`FakeRuntime`]: an in-memory container engine behind the [`Runtime`]
//! trait, for the engine's lifecycle tests (tests only; the bollard runtime
//! is tested against the real engine).
//!
//! It keeps containers, networks, volumes and images the way the engine
//! does where the agent can tell: names are unique, a container needs its
//! image and networks, named volumes are created on use, stop/remove of a
//! missing object is `NotFound`. What a container does once started comes
//! from its image's [`Behaviour`], evaluated against tokio's clock (run the
//! tests with paused time and the gate's windows pass instantly). Faults
//! are injected per operation, and a "crash" makes the N-th call never
//! return (before or after its effect) so a test can abort the engine at
//! that exact point.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::{
    ContainerInfo, ContainerSpec, ContainerState, Health, LabelFilter, NetworkInfo, NetworkSpec,
    RegistryAuth, Runtime, RuntimeError, RuntimeResult, VolumeInfo, VolumeSpec,
};
use convoy_shared::compose::MountKind;

/// What a container started from an image does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Behaviour {
    /// Runs until stopped; with a healthcheck, `healthy` after the delay.
    Serve { healthy_after: Duration },
    /// Runs for `after`, then exits with `code`.
    Exit { after: Duration, code: i64 },
    /// Runs; with a healthcheck, turns `unhealthy` after the delay.
    Unhealthy { after: Duration },
    /// Crashes and is restarted by its policy every `every`.
    CrashLoop { every: Duration },
}

impl Behaviour {
    pub fn serve() -> Behaviour {
        Behaviour::Serve {
            healthy_after: Duration::from_secs(2),
        }
    }

    pub fn exit(code: i64) -> Behaviour {
        Behaviour::Exit {
            after: Duration::from_secs(1),
            code,
        }
    }
}

/// The operations, for fault injection and the call log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Op {
    ListContainers,
    Inspect,
    Create,
    Start,
    Stop,
    Remove,
    Logs,
    ListNetworks,
    CreateNetwork,
    RemoveNetwork,
    ListVolumes,
    CreateVolume,
    RemoveVolume,
    ImageExists,
    Pull,
    Tag,
}

#[derive(Debug, Clone)]
struct Fault {
    op: Op,
    /// Substring of the call's target; empty: any.
    target: String,
    remaining: u32,
}

#[derive(Debug, Clone)]
struct Crash {
    at: usize,
    after_effect: bool,
    reached: Arc<Notify>,
}

#[derive(Debug, Clone)]
struct Container {
    info: ContainerInfo,
    spec: ContainerSpec,
    behaviour: Behaviour,
    started: Option<Instant>,
    /// Set by a stop: when and the exit code.
    stopped: Option<i64>,
    logs: Vec<String>,
}

impl Container {
    fn has_check(&self) -> bool {
        self.spec
            .healthcheck
            .as_ref()
            .is_some_and(|h| !h.disable && h.test.first().is_none_or(|t| t != "NONE"))
    }

    /// The container as the engine would show it now.
    fn view(&self, now: Instant) -> ContainerInfo {
        let mut info = self.info.clone();
        let Some(started) = self.started else {
            info.state = ContainerState::Created;
            return info;
        };
        if let Some(code) = self.stopped {
            info.state = ContainerState::Exited;
            info.exit_code = Some(code);
            return info;
        }
        let up = now.saturating_duration_since(started);
        info.state = ContainerState::Running;
        let check = self.has_check();
        info.health = check.then_some(Health::Starting);
        match &self.behaviour {
            Behaviour::Serve { healthy_after } => {
                if check && up >= *healthy_after {
                    info.health = Some(Health::Healthy);
                }
            }
            Behaviour::Exit { after, code } => {
                if up >= *after {
                    info.state = ContainerState::Exited;
                    info.exit_code = Some(*code);
                }
            }
            Behaviour::Unhealthy { after } => {
                if check && up >= *after {
                    info.health = Some(Health::Unhealthy);
                }
            }
            Behaviour::CrashLoop { every } => {
                let every = every.as_millis().max(1);
                info.restart_count = u64::try_from(up.as_millis() / every).unwrap_or(u64::MAX);
            }
        }
        info
    }

    fn log_lines(&self, now: Instant) -> Vec<String> {
        let mut lines = self.logs.clone();
        if let (Some(started), None, Behaviour::Exit { after, code }) =
            (self.started, self.stopped, &self.behaviour)
            && now.saturating_duration_since(started) >= *after
        {
            lines.push(format!("{} exiting with code {code}", self.info.name));
        }
        lines
    }
}

#[derive(Debug, Default)]
struct State {
    containers: BTreeMap<String, Container>,
    networks: BTreeMap<String, NetworkInfo>,
    volumes: BTreeMap<String, VolumeInfo>,
    /// Local images: reference -> id.
    local: BTreeMap<String, String>,
    /// Pullable images: reference -> id.
    registry: BTreeMap<String, String>,
    behaviours: BTreeMap<String, Behaviour>,
    faults: Vec<Fault>,
    crash: Option<Crash>,
    calls: Vec<(Op, String)>,
    next_id: u64,
}

impl State {
    fn id(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        format!("{prefix}{:012x}", self.next_id)
    }

    fn image_digest(&mut self) -> String {
        self.next_id += 1;
        format!("sha256:{:064x}", self.next_id)
    }

    fn find(&self, id_or_name: &str) -> Option<String> {
        if self.containers.contains_key(id_or_name) {
            return Some(id_or_name.to_string());
        }
        self.containers
            .values()
            .find(|c| c.info.name == id_or_name)
            .map(|c| c.info.id.clone())
    }

    fn image_id(&self, reference: &str) -> Option<String> {
        if let Some(id) = self.local.get(reference) {
            return Some(id.clone());
        }
        self.local.values().find(|id| *id == reference).cloned()
    }
}

/// See the module docs. Cheap to share (`Arc<FakeRuntime>`).
#[derive(Debug, Default)]
pub struct FakeRuntime {
    state: Mutex<State>,
}

fn matches(labels: &BTreeMap<String, String>, filter: &LabelFilter) -> bool {
    filter.conditions().iter().all(|c| match c.split_once('=') {
        Some((k, v)) => labels.get(k).is_some_and(|x| x == v),
        None => labels.contains_key(c.as_str()),
    })
}

fn not_found(kind: &'static str, id: &str) -> RuntimeError {
    RuntimeError::NotFound {
        kind,
        id: id.to_string(),
    }
}

impl FakeRuntime {
    pub fn new() -> FakeRuntime {
        FakeRuntime::default()
    }

    /// A local image; returns its id.
    pub fn image(&self, reference: &str, behaviour: Behaviour) -> String {
        let mut s = self.state.lock().unwrap();
        let id = s.image_digest();
        s.local.insert(reference.to_string(), id.clone());
        s.behaviours.insert(id.clone(), behaviour);
        id
    }

    /// An image only the registry has (a pull fetches it).
    pub fn registry_image(&self, reference: &str, behaviour: Behaviour) -> String {
        let mut s = self.state.lock().unwrap();
        let id = s.image_digest();
        s.registry.insert(reference.to_string(), id.clone());
        s.behaviours.insert(id.clone(), behaviour);
        id
    }

    /// Containers started from image `id` from now on behave so.
    pub fn set_behaviour(&self, id: &str, behaviour: Behaviour) {
        self.state
            .lock()
            .unwrap()
            .behaviours
            .insert(id.to_string(), behaviour);
    }

    /// The next `times` calls of `op` whose target contains `target` fail.
    pub fn fail(&self, op: Op, target: &str, times: u32) {
        self.state.lock().unwrap().faults.push(Fault {
            op,
            target: target.to_string(),
            remaining: times,
        });
    }

    /// Call number `at` (0-based, every operation counts) never returns:
    /// before its effect, or after it with `after_effect`. The returned
    /// notify fires when it is reached.
    pub fn crash_at(&self, at: usize, after_effect: bool) -> Arc<Notify> {
        let reached = Arc::new(Notify::new());
        self.state.lock().unwrap().crash = Some(Crash {
            at,
            after_effect,
            reached: reached.clone(),
        });
        reached
    }

    pub fn clear_crash(&self) {
        self.state.lock().unwrap().crash = None;
    }

    /// Every call so far: operation and target.
    pub fn calls(&self) -> Vec<(Op, String)> {
        self.state.lock().unwrap().calls.clone()
    }

    /// The containers as the engine shows them now.
    pub fn containers(&self) -> Vec<ContainerInfo> {
        let s = self.state.lock().unwrap();
        let now = Instant::now();
        s.containers.values().map(|c| c.view(now)).collect()
    }

    pub fn network_names(&self) -> Vec<String> {
        self.state
            .lock()
            .unwrap()
            .networks
            .keys()
            .cloned()
            .collect()
    }

    pub fn volume_names(&self) -> Vec<String> {
        self.state.lock().unwrap().volumes.keys().cloned().collect()
    }

    /// Logs the call, applies faults; returns the crash to honour.
    fn enter(&self, op: Op, target: &str) -> Result<Option<Crash>, RuntimeError> {
        let mut s = self.state.lock().unwrap();
        let n = s.calls.len();
        s.calls.push((op, target.to_string()));
        let crash = s.crash.clone().filter(|c| c.at == n);
        if let Some(f) = s
            .faults
            .iter_mut()
            .find(|f| f.op == op && f.remaining > 0 && target.contains(f.target.as_str()))
        {
            f.remaining -= 1;
            return Err(RuntimeError::Unexpected {
                op: "fake",
                target: target.to_string(),
                detail: format!("injected {op:?} fault"),
            });
        }
        Ok(crash)
    }

    async fn call<T>(
        &self,
        op: Op,
        target: &str,
        effect: impl FnOnce(&mut State) -> RuntimeResult<T>,
    ) -> RuntimeResult<T> {
        let crash = self.enter(op, target)?;
        if let Some(c) = &crash
            && !c.after_effect
        {
            c.reached.notify_one();
            std::future::pending::<()>().await;
        }
        let r = effect(&mut self.state.lock().unwrap());
        if let Some(c) = crash {
            c.reached.notify_one();
            std::future::pending::<()>().await;
        }
        r
    }
}

#[async_trait]
impl Runtime for FakeRuntime {
    async fn list_containers(&self, filter: &LabelFilter) -> RuntimeResult<Vec<ContainerInfo>> {
        self.call(Op::ListContainers, &format!("{filter:?}"), |s| {
            let now = Instant::now();
            Ok(s.containers
                .values()
                .filter(|c| matches(&c.info.labels, filter))
                .map(|c| c.view(now))
                .collect())
        })
        .await
    }

    async fn inspect_container(&self, id: &str) -> RuntimeResult<ContainerInfo> {
        self.call(Op::Inspect, id, |s| {
            let id = s.find(id).ok_or_else(|| not_found("container", id))?;
            Ok(s.containers[&id].view(Instant::now()))
        })
        .await
    }

    async fn create_container(&self, spec: &ContainerSpec) -> RuntimeResult<String> {
        self.call(Op::Create, &spec.name, |s| {
            if s.find(&spec.name).is_some() {
                return Err(RuntimeError::Unexpected {
                    op: "create container",
                    target: spec.name.clone(),
                    detail: "Conflict. The container name is already in use".into(),
                });
            }
            let image_id = s
                .image_id(&spec.image)
                .ok_or_else(|| not_found("image", &spec.image))?;
            if let Some(n) = spec
                .networks
                .iter()
                .find(|n| !s.networks.contains_key(&n.name))
            {
                return Err(not_found("network", &n.name));
            }
            for m in &spec.mounts {
                if m.kind == MountKind::Volume
                    && let Some(name) = &m.source
                {
                    s.volumes.entry(name.clone()).or_insert_with(|| VolumeInfo {
                        name: name.clone(),
                        driver: "local".into(),
                        labels: BTreeMap::new(),
                    });
                }
            }
            let id = s.id("c");
            let behaviour = s
                .behaviours
                .get(&image_id)
                .cloned()
                .unwrap_or_else(Behaviour::serve);
            let info = ContainerInfo {
                id: id.clone(),
                name: spec.name.clone(),
                labels: spec.labels.clone(),
                state: ContainerState::Created,
                exit_code: Some(0),
                health: None,
                restart_count: 0,
                image_id,
                image: spec.image.clone(),
            };
            s.containers.insert(
                id.clone(),
                Container {
                    info,
                    spec: spec.clone(),
                    behaviour,
                    started: None,
                    stopped: None,
                    logs: Vec::new(),
                },
            );
            Ok(id)
        })
        .await
    }

    async fn start_container(&self, id: &str) -> RuntimeResult<()> {
        self.call(Op::Start, id, |s| {
            let id = s.find(id).ok_or_else(|| not_found("container", id))?;
            let now = Instant::now();
            let c = s.containers.get_mut(&id).expect("found");
            if c.started.is_some() && c.view(now).state == ContainerState::Running {
                return Ok(());
            }
            c.started = Some(now);
            c.stopped = None;
            let env = c.spec.env.join(" ");
            c.logs.push(format!("{} started {env}", c.info.name));
            Ok(())
        })
        .await
    }

    async fn stop_container(&self, id: &str, _grace: Duration) -> RuntimeResult<()> {
        self.call(Op::Stop, id, |s| {
            let id = s.find(id).ok_or_else(|| not_found("container", id))?;
            let now = Instant::now();
            let c = s.containers.get_mut(&id).expect("found");
            if c.started.is_some() && c.view(now).state == ContainerState::Running {
                c.stopped = Some(143);
                c.logs.push(format!("{} stopped", c.info.name));
            }
            Ok(())
        })
        .await
    }

    async fn remove_container(
        &self,
        id: &str,
        _remove_anonymous_volumes: bool,
    ) -> RuntimeResult<()> {
        self.call(Op::Remove, id, |s| {
            let id = s.find(id).ok_or_else(|| not_found("container", id))?;
            s.containers.remove(&id);
            Ok(())
        })
        .await
    }

    async fn logs_tail(&self, id: &str, lines: usize) -> RuntimeResult<Vec<String>> {
        self.call(Op::Logs, id, |s| {
            let id = s.find(id).ok_or_else(|| not_found("container", id))?;
            let mut out = s.containers[&id].log_lines(Instant::now());
            if out.len() > lines {
                out.drain(..out.len() - lines);
            }
            Ok(out)
        })
        .await
    }

    async fn list_networks(&self, filter: &LabelFilter) -> RuntimeResult<Vec<NetworkInfo>> {
        self.call(Op::ListNetworks, &format!("{filter:?}"), |s| {
            Ok(s.networks
                .values()
                .filter(|n| matches(&n.labels, filter))
                .cloned()
                .collect())
        })
        .await
    }

    async fn create_network(&self, spec: &NetworkSpec) -> RuntimeResult<String> {
        self.call(Op::CreateNetwork, &spec.name, |s| {
            if s.networks.contains_key(&spec.name) {
                return Err(RuntimeError::Unexpected {
                    op: "create network",
                    target: spec.name.clone(),
                    detail: "network with name already exists".into(),
                });
            }
            let id = s.id("n");
            s.networks.insert(
                spec.name.clone(),
                NetworkInfo {
                    id: id.clone(),
                    name: spec.name.clone(),
                    driver: spec.driver.clone().unwrap_or_else(|| "bridge".into()),
                    labels: spec.labels.clone(),
                },
            );
            Ok(id)
        })
        .await
    }

    async fn remove_network(&self, id_or_name: &str) -> RuntimeResult<()> {
        self.call(Op::RemoveNetwork, id_or_name, |s| {
            let name = s
                .networks
                .values()
                .find(|n| n.name == id_or_name || n.id == id_or_name)
                .map(|n| n.name.clone())
                .ok_or_else(|| not_found("network", id_or_name))?;
            if s.containers
                .values()
                .any(|c| c.spec.networks.iter().any(|n| n.name == name))
            {
                return Err(RuntimeError::Unexpected {
                    op: "remove network",
                    target: name,
                    detail: "network has active endpoints".into(),
                });
            }
            s.networks.remove(&name);
            Ok(())
        })
        .await
    }

    async fn list_volumes(&self, filter: &LabelFilter) -> RuntimeResult<Vec<VolumeInfo>> {
        self.call(Op::ListVolumes, &format!("{filter:?}"), |s| {
            Ok(s.volumes
                .values()
                .filter(|v| matches(&v.labels, filter))
                .cloned()
                .collect())
        })
        .await
    }

    async fn create_volume(&self, spec: &VolumeSpec) -> RuntimeResult<VolumeInfo> {
        self.call(Op::CreateVolume, &spec.name, |s| {
            Ok(s.volumes
                .entry(spec.name.clone())
                .or_insert_with(|| VolumeInfo {
                    name: spec.name.clone(),
                    driver: spec.driver.clone().unwrap_or_else(|| "local".into()),
                    labels: spec.labels.clone(),
                })
                .clone())
        })
        .await
    }

    async fn remove_volume(&self, name: &str) -> RuntimeResult<()> {
        self.call(Op::RemoveVolume, name, |s| {
            if s.volumes.remove(name).is_none() {
                return Err(not_found("volume", name));
            }
            Ok(())
        })
        .await
    }

    async fn image_exists(&self, reference: &str) -> RuntimeResult<Option<String>> {
        self.call(Op::ImageExists, reference, |s| Ok(s.image_id(reference)))
            .await
    }

    async fn pull_image(
        &self,
        reference: &str,
        _auth: Option<&RegistryAuth>,
    ) -> RuntimeResult<String> {
        self.call(Op::Pull, reference, |s| {
            let id = s
                .registry
                .get(reference)
                .cloned()
                .ok_or_else(|| not_found("image", reference))?;
            s.local.insert(reference.to_string(), id.clone());
            Ok(id)
        })
        .await
    }

    async fn tag_image(&self, source: &str, repo: &str, tag: &str) -> RuntimeResult<()> {
        self.call(Op::Tag, source, |s| {
            let id = s
                .image_id(source)
                .ok_or_else(|| not_found("image", source))?;
            s.local.insert(format!("{repo}:{tag}"), id);
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::{NetworkAttachment, wait_for_health};
    use convoy_shared::compose::Healthcheck;

    fn spec(name: &str, image: &str, checked: bool) -> ContainerSpec {
        ContainerSpec {
            name: name.into(),
            image: image.into(),
            labels: BTreeMap::from([("dev.convoy.stack".to_string(), "s".to_string())]),
            networks: vec![NetworkAttachment {
                name: "s_default".into(),
                aliases: Vec::new(),
                ipv4_address: None,
            }],
            healthcheck: checked.then(|| Healthcheck {
                test: vec!["CMD".into(), "true".into()],
                interval: None,
                timeout: None,
                retries: None,
                start_period: None,
                start_interval: None,
                disable: false,
            }),
            ..Default::default()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn containers_follow_their_image_behaviour_and_the_engine_rules() {
        let rt = FakeRuntime::new();
        rt.image("web:1", Behaviour::serve());
        rt.image("bad:1", Behaviour::exit(3));
        let net = NetworkSpec {
            name: "s_default".into(),
            ..Default::default()
        };
        // No network yet: refused, as the engine does.
        let e = rt.create_container(&spec("s-web-1", "web:1", true)).await;
        assert!(
            matches!(
                e,
                Err(RuntimeError::NotFound {
                    kind: "network",
                    ..
                })
            ),
            "{e:?}"
        );
        rt.create_network(&net).await.unwrap();
        let web = rt
            .create_container(&spec("s-web-1", "web:1", true))
            .await
            .unwrap();
        assert!(
            rt.create_container(&spec("s-web-1", "web:1", true))
                .await
                .is_err()
        );
        let e = rt
            .create_container(&spec("s-x-1", "missing:1", false))
            .await;
        assert!(
            matches!(e, Err(RuntimeError::NotFound { kind: "image", .. })),
            "{e:?}"
        );
        rt.start_container(&web).await.unwrap();
        let c = wait_for_health(&rt, &web, Duration::from_secs(10))
            .await
            .unwrap();
        assert_eq!(c.health, Some(Health::Healthy));
        assert_eq!(rt.inspect_container("s-web-1").await.unwrap().id, web);

        let bad = rt
            .create_container(&spec("s-bad-1", "bad:1", false))
            .await
            .unwrap();
        rt.start_container(&bad).await.unwrap();
        tokio::time::sleep(Duration::from_secs(2)).await;
        let c = rt.inspect_container(&bad).await.unwrap();
        assert_eq!((c.state, c.exit_code), (ContainerState::Exited, Some(3)));
        let logs = rt.logs_tail(&bad, 10).await.unwrap();
        assert!(
            logs.last().unwrap().contains("exiting with code 3"),
            "{logs:?}"
        );

        // A network in use cannot go; a stopped, removed container frees it.
        assert!(rt.remove_network("s_default").await.is_err());
        let filter = LabelFilter::new().label("dev.convoy.stack", "s");
        assert_eq!(rt.list_containers(&filter).await.unwrap().len(), 2);
        for id in [&web, &bad] {
            rt.stop_container(id, Duration::from_secs(1)).await.unwrap();
            rt.remove_container(id, true).await.unwrap();
        }
        assert!(
            rt.remove_container(&web, true)
                .await
                .unwrap_err()
                .is_not_found()
        );
        rt.remove_network("s_default").await.unwrap();
        assert!(rt.list_containers(&filter).await.unwrap().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn faults_pulls_and_crash_points() {
        let rt = Arc::new(FakeRuntime::new());
        let id = rt.registry_image("remote:1", Behaviour::serve());
        assert_eq!(rt.image_exists("remote:1").await.unwrap(), None);
        rt.fail(Op::Pull, "remote", 1);
        assert!(rt.pull_image("remote:1", None).await.is_err());
        assert_eq!(rt.pull_image("remote:1", None).await.unwrap(), id);
        assert_eq!(rt.image_exists(&id).await.unwrap(), Some(id.clone()));
        assert!(
            rt.pull_image("nowhere:1", None)
                .await
                .unwrap_err()
                .is_not_found()
        );

        // The next call hangs after taking effect.
        let n = rt.calls().len();
        let reached = rt.crash_at(n, true);
        let r2 = rt.clone();
        let task = tokio::spawn(async move {
            r2.create_network(&NetworkSpec {
                name: "n1".into(),
                ..Default::default()
            })
            .await
        });
        reached.notified().await;
        task.abort();
        assert!(task.await.unwrap_err().is_cancelled());
        assert_eq!(rt.network_names(), vec!["n1".to_string()]);
        assert_eq!(
            rt.calls().last().unwrap(),
            &(Op::CreateNetwork, "n1".to_string())
        );
    }
}
