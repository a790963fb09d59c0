//! The runtime layer against the REAL Docker engine on this host. No
//! skipping: an unreachable engine fails these tests loudly. Every object is
//! labelled with a per-run label and removed by it, even on panic.

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use convoy_host_agent::runtime::{
    BollardRuntime, ContainerState, Health, LABEL_PROJECT, LABEL_SERVICE, LabelFilter, NetworkSpec,
    Runtime, RuntimeError, VolumeSpec, container_spec, wait_for_health,
};
use convoy_shared::compose::{
    Healthcheck, MountKind, PortMapping, Protocol, RestartPolicy, Service, ServiceNetwork,
    VolumeMount,
};

const RUN_LABEL: &str = "convoy.test.run";

/// A unique run id; removes everything carrying it on drop (panic included)
/// through the docker CLI, which needs no async context.
struct Run {
    id: String,
}

impl Run {
    fn new(name: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        Self {
            id: format!("cvt{name}{}x{nanos}", std::process::id()),
        }
    }

    fn labels(&self) -> BTreeMap<String, String> {
        BTreeMap::from([(RUN_LABEL.to_string(), self.id.clone())])
    }

    fn filter(&self) -> LabelFilter {
        LabelFilter::new().label(RUN_LABEL, &self.id)
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        let filter = format!("label={RUN_LABEL}={}", self.id);
        for (list, rm) in [
            (vec!["ps", "-aq"], vec!["rm", "-fv"]),
            (vec!["network", "ls", "-q"], vec!["network", "rm"]),
            (vec!["volume", "ls", "-q"], vec!["volume", "rm", "-f"]),
        ] {
            let Ok(out) = Command::new("docker")
                .args(&list)
                .args(["--filter", &filter])
                .output()
            else {
                continue;
            };
            let ids: Vec<String> = String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .map(str::to_string)
                .collect();
            if !ids.is_empty() {
                let _ = Command::new("docker").args(&rm).args(&ids).output();
            }
        }
    }
}

async fn runtime() -> Arc<dyn Runtime> {
    match BollardRuntime::connect().await {
        Ok(rt) => Arc::new(rt.with_pull_timeout(Duration::from_secs(25))),
        Err(e) => panic!(
            "DOCKER ENGINE UNREACHABLE — these tests need a real Docker engine \
             (honours DOCKER_HOST): {e}"
        ),
    }
}

/// The local busybox image, built once per test process: concurrent
/// `docker import`s of one tag would retag it under the tests' feet.
fn busybox() -> String {
    static IMAGE: OnceLock<String> = OnceLock::new();
    IMAGE
        .get_or_init(|| {
            convoy_tests::images::busybox_image("host-agent-runtime")
                .unwrap_or_else(|e| panic!("building the local busybox test image failed: {e:#}"))
        })
        .clone()
}

fn service(image: &str, command: &[&str]) -> Service {
    Service {
        image: image.to_string(),
        command: Some(command.iter().map(|s| s.to_string()).collect()),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn container_lifecycle_on_the_real_engine() {
    let rt = runtime().await;
    let image = busybox();
    let image_id = rt
        .image_exists(&image)
        .await
        .unwrap()
        .expect("image present");
    let run = Run::new("life");
    let project = run.id.clone();

    // Network and volume, as compose would name them.
    let default_net = format!("{project}_default");
    let back_net = format!("{project}_back");
    for name in [&default_net, &back_net] {
        rt.create_network(&NetworkSpec {
            name: name.clone(),
            labels: run.labels(),
            ..Default::default()
        })
        .await
        .unwrap();
    }
    let vol = rt
        .create_volume(&VolumeSpec {
            name: format!("{project}_data"),
            labels: run.labels(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(vol.labels[RUN_LABEL], run.id);
    let nets = rt.list_networks(&run.filter()).await.unwrap();
    assert_eq!(nets.len(), 2, "{nets:?}");
    let vols = rt.list_volumes(&run.filter()).await.unwrap();
    assert_eq!(vols.len(), 1);
    assert_eq!(vols[0].name, format!("{project}_data"));

    // The service: logs two lines, healthchecked every second, one published
    // port, a named volume, a tmpfs and two networks.
    let mut svc = service(
        &image,
        &[
            "sh",
            "-c",
            "echo oops >&2; sleep 0.2; echo hello; echo world; sleep 3600",
        ],
    );
    svc.healthcheck = Some(Healthcheck {
        test: vec!["CMD".into(), "true".into()],
        interval: Some(Duration::from_secs(1)),
        timeout: Some(Duration::from_secs(1)),
        retries: Some(3),
        start_period: None,
        start_interval: None,
        disable: false,
    });
    svc.restart = RestartPolicy::UnlessStopped;
    svc.environment.insert("GREETING".into(), Some("hi".into()));
    svc.ports = vec![PortMapping {
        target: 8080,
        published: None,
        host_ip: Some("127.0.0.1".into()),
        protocol: Protocol::Tcp,
    }];
    svc.volumes = vec![
        VolumeMount {
            kind: MountKind::Volume,
            source: Some("data".into()),
            target: "/data".into(),
            read_only: false,
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
            tmpfs_size: Some(8 * 1024 * 1024),
            nocopy: false,
        },
    ];
    svc.networks
        .insert("default".into(), ServiceNetwork::default());
    svc.networks.insert(
        "back".into(),
        ServiceNetwork {
            aliases: vec!["api".into()],
            ipv4_address: None,
        },
    );
    svc.stop_grace_period = Some(Duration::from_secs(1));
    let spec = container_spec(&project, "web", &svc, 1, &run.labels());
    let id = rt.create_container(&spec).await.unwrap();

    let listed = rt.list_containers(&run.filter()).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].state, ContainerState::Created);
    assert_eq!(listed[0].name, format!("{project}-web-1"));

    rt.start_container(&id).await.unwrap();
    let by_service = LabelFilter::new()
        .label(LABEL_PROJECT, &project)
        .label(LABEL_SERVICE, "web");
    let listed = rt.list_containers(&by_service).await.unwrap();
    assert_eq!(listed.len(), 1);
    let info = &listed[0];
    assert_eq!(info.id, id);
    assert_eq!(info.state, ContainerState::Running);
    assert_eq!(info.image_id, image_id);
    assert_eq!(info.image, image);
    assert_eq!(info.restart_count, 0);
    assert_eq!(info.labels["com.docker.compose.container-number"], "1");
    assert_eq!(info.labels["com.docker.compose.oneoff"], "False");
    assert!(matches!(
        info.health,
        Some(Health::Starting | Health::Healthy)
    ));

    let healthy = wait_for_health(rt.as_ref(), &id, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(healthy.health, Some(Health::Healthy));

    // Both networks are attached, aliases included; the tmpfs has its size.
    let docker = bollard::Docker::connect_with_defaults().unwrap();
    let raw = docker.inspect_container(&id, None).await.unwrap();
    let networks = raw.network_settings.unwrap().networks.unwrap();
    assert!(networks.contains_key(&default_net), "{networks:?}");
    let back = &networks[&back_net];
    let aliases = back.aliases.clone().unwrap_or_default();
    assert!(aliases.contains(&"api".to_string()), "{aliases:?}");
    assert!(aliases.contains(&"web".to_string()), "{aliases:?}");
    let host = raw.host_config.unwrap();
    let tmpfs = host
        .mounts
        .unwrap()
        .into_iter()
        .find(|m| m.target.as_deref() == Some("/scratch"))
        .unwrap();
    assert_eq!(
        tmpfs.tmpfs_options.unwrap().size_bytes,
        Some(8 * 1024 * 1024)
    );
    let bindings = host.port_bindings.unwrap();
    assert_eq!(
        bindings["8080/tcp"].clone().unwrap()[0].host_ip.as_deref(),
        Some("127.0.0.1")
    );

    // stdout and stderr are separate streams: no order between them.
    let mut logs = rt.logs_tail(&id, 10).await.unwrap();
    logs.sort();
    assert_eq!(logs, vec!["hello", "oops", "world"]);
    let last = rt.logs_tail(&id, 2).await.unwrap();
    assert_eq!(last, vec!["hello", "world"]);

    let t = Instant::now();
    rt.stop_container(&id, Duration::from_secs(1))
        .await
        .unwrap();
    assert!(t.elapsed() < Duration::from_secs(15));
    let stopped = rt.inspect_container(&id).await.unwrap();
    assert_eq!(stopped.state, ContainerState::Exited);
    assert!(stopped.exit_code.is_some_and(|c| c != 0), "{stopped:?}");
    // Stopping again is fine.
    rt.stop_container(&id, Duration::from_secs(1))
        .await
        .unwrap();

    rt.remove_container(&id, true).await.unwrap();
    assert!(rt.list_containers(&run.filter()).await.unwrap().is_empty());
    let err = rt.inspect_container(&id).await.unwrap_err();
    assert!(err.is_not_found(), "{err}");

    for name in [&default_net, &back_net] {
        rt.remove_network(name).await.unwrap();
    }
    rt.remove_volume(&vol.name).await.unwrap();
    assert!(rt.list_networks(&run.filter()).await.unwrap().is_empty());
    assert!(rt.list_volumes(&run.filter()).await.unwrap().is_empty());
    let err = rt.remove_volume(&vol.name).await.unwrap_err();
    assert!(err.is_not_found(), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn unhealthy_and_exited_containers_are_reported() {
    let rt = runtime().await;
    let image = busybox();
    let run = Run::new("sick");
    let project = run.id.clone();
    rt.create_network(&NetworkSpec {
        name: format!("{project}_default"),
        labels: run.labels(),
        ..Default::default()
    })
    .await
    .unwrap();

    let mut sick = service(&image, &["sleep", "3600"]);
    sick.healthcheck = Some(Healthcheck {
        test: vec!["CMD".into(), "false".into()],
        interval: Some(Duration::from_secs(1)),
        timeout: Some(Duration::from_secs(1)),
        retries: Some(1),
        start_period: None,
        start_interval: None,
        disable: false,
    });
    let sick_id = rt
        .create_container(&container_spec(&project, "sick", &sick, 1, &run.labels()))
        .await
        .unwrap();
    rt.start_container(&sick_id).await.unwrap();

    let quitter = service(&image, &["sh", "-c", "echo bye; exit 3"]);
    let quit_id = rt
        .create_container(&container_spec(
            &project,
            "quit",
            &quitter,
            1,
            &run.labels(),
        ))
        .await
        .unwrap();
    rt.start_container(&quit_id).await.unwrap();

    let err = wait_for_health(rt.as_ref(), &sick_id, Duration::from_secs(30))
        .await
        .unwrap_err();
    assert!(matches!(err, RuntimeError::Unhealthy { .. }), "{err}");
    assert_eq!(
        rt.inspect_container(&sick_id).await.unwrap().health,
        Some(Health::Unhealthy)
    );

    let deadline = Instant::now() + Duration::from_secs(20);
    let quit = loop {
        let info = rt.inspect_container(&quit_id).await.unwrap();
        if info.state == ContainerState::Exited || Instant::now() > deadline {
            break info;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(quit.state, ContainerState::Exited);
    assert_eq!(quit.exit_code, Some(3));
    assert_eq!(quit.health, None);
    assert_eq!(rt.logs_tail(&quit_id, 5).await.unwrap(), vec!["bye"]);
    let err = wait_for_health(rt.as_ref(), &quit_id, Duration::from_secs(5))
        .await
        .unwrap_err();
    assert!(matches!(err, RuntimeError::Unhealthy { .. }), "{err}");

    assert_eq!(rt.list_containers(&run.filter()).await.unwrap().len(), 2);
    for id in [sick_id, quit_id] {
        rt.remove_container(&id, true).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_image_fails_create_with_not_found() {
    let rt = runtime().await;
    let run = Run::new("noimg");
    rt.create_network(&NetworkSpec {
        name: format!("{}_default", run.id),
        labels: run.labels(),
        ..Default::default()
    })
    .await
    .unwrap();
    let svc = service("convoy-test/does-not-exist:never", &["true"]);
    let err = rt
        .create_container(&container_spec(&run.id, "x", &svc, 1, &run.labels()))
        .await
        .unwrap_err();
    assert!(err.is_not_found(), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn images_exist_tag_and_pull_fails_fast_without_registry() {
    let rt = runtime().await;
    let image = busybox();
    let expected = convoy_tests::images::image_id(&image).unwrap();
    assert_eq!(
        rt.image_exists(&image).await.unwrap(),
        Some(expected.clone())
    );
    assert_eq!(
        rt.image_exists("convoy-test/no-such-image:nope")
            .await
            .unwrap(),
        None
    );

    // Tag, see it, untag.
    let run = Run::new("tag");
    let tag = run.id.clone();
    rt.tag_image(&image, "convoy-test/busybox-tagged", &tag)
        .await
        .unwrap();
    let tagged = format!("convoy-test/busybox-tagged:{tag}");
    assert_eq!(rt.image_exists(&tagged).await.unwrap(), Some(expected));
    let rmi = Command::new("docker")
        .args(["rmi", &tagged])
        .output()
        .unwrap();
    assert!(
        rmi.status.success(),
        "{}",
        String::from_utf8_lossy(&rmi.stderr)
    );

    // No registry reachable here: the pull must fail, and quickly.
    let t = Instant::now();
    let res = tokio::time::timeout(
        Duration::from_secs(30),
        rt.pull_image("convoy-test/no-such-image:nope", None),
    )
    .await
    .expect("pull of a nonexistent image hung for 30s");
    let err = res.unwrap_err();
    eprintln!("pull error (expected): {err}");
    assert!(
        matches!(
            err,
            RuntimeError::Docker {
                op: "pull image",
                ..
            } | RuntimeError::NotFound { .. }
        ),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("convoy-test/no-such-image:nope"),
        "{err}"
    );
    assert!(t.elapsed() < Duration::from_secs(30));
}
