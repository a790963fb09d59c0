//! The engine against the REAL Docker engine: apply, no-op re-apply,
//! targeted recreate, early gate failure with rollback to the
//! last-known-good, first-deploy failure, stack removal, and crash safety.
//! An unreachable engine fails these tests loudly. Every object carries a
//! per-test stack name and is removed on drop (panic included).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use convoy_host_agent::engine::StackEngine;
use convoy_host_agent::report::{Report, ReportKind};
use convoy_host_agent::runtime::{
    BollardRuntime, ContainerInfo, ContainerState, Health, LABEL_CONFIG_HASH, LABEL_ONEOFF,
    LABEL_PROJECT, LABEL_SERVICE, LabelFilter, Runtime,
};
use convoy_shared::compose::{
    ComposeFile, Dependency, DependencyCondition, Healthcheck, MountKind, Service, VolumeDef,
    VolumeMount,
};
use convoy_shared::fleet::HealthPolicy;
use convoy_shared::render::{HOST_STATE_FORMAT, HostState, RenderedStack, content_hash};

const IMAGE_TAG: &str = "engine-it";

fn image() -> String {
    static IMG: OnceLock<String> = OnceLock::new();
    IMG.get_or_init(|| {
        convoy_tests::images::busybox_image(IMAGE_TAG).expect("building the test image")
    })
    .clone()
}

/// Unique stack names; removes every object of those stacks on drop.
struct Guard {
    stacks: Vec<String>,
}

impl Guard {
    fn new(prefix: &str, n: usize) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let stacks = (0..n)
            .map(|i| {
                format!(
                    "cvt{prefix}{i}x{}{}",
                    std::process::id(),
                    nanos % 1_000_000_000
                )
            })
            .collect();
        Self { stacks }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        for stack in &self.stacks {
            let filter = format!("label=dev.convoy.stack={stack}");
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
}

async fn runtime() -> Arc<dyn Runtime> {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    match BollardRuntime::connect().await {
        Ok(rt) => Arc::new(rt.with_pull_timeout(Duration::from_secs(10))),
        Err(e) => panic!("DOCKER ENGINE UNREACHABLE — these tests need a real Docker engine: {e}"),
    }
}

fn web() -> Service {
    Service {
        image: image(),
        command: Some(vec![
            "httpd".into(),
            "-f".into(),
            "-p".into(),
            "8080".into(),
            "-h".into(),
            "/www".into(),
        ]),
        healthcheck: Some(Healthcheck {
            test: vec![
                "CMD".into(),
                "wget".into(),
                "-q".into(),
                "-O-".into(),
                "http://127.0.0.1:8080/health".into(),
            ],
            interval: Some(Duration::from_secs(1)),
            timeout: Some(Duration::from_secs(1)),
            retries: Some(2),
            start_period: None,
            start_interval: None,
            disable: false,
        }),
        stop_grace_period: Some(Duration::from_secs(1)),
        ..Default::default()
    }
}

fn app(greeting: &str) -> Service {
    Service {
        image: image(),
        command: Some(vec![
            "sh".into(),
            "-c".into(),
            "echo app-started $GREETING; exec sleep 3600".into(),
        ]),
        environment: BTreeMap::from([("GREETING".to_string(), Some(greeting.to_string()))]),
        depends_on: BTreeMap::from([(
            "web".to_string(),
            Dependency {
                condition: DependencyCondition::ServiceHealthy,
                ..Default::default()
            },
        )]),
        stop_grace_period: Some(Duration::from_secs(1)),
        ..Default::default()
    }
}

fn failing_app() -> Service {
    Service {
        command: Some(vec![
            "sh".into(),
            "-c".into(),
            "echo boom-from-app-1; echo boom-from-app-2 >&2; exit 1".into(),
        ]),
        ..app("broken")
    }
}

fn stack(name: &str, services: Vec<(&str, Service)>) -> RenderedStack {
    let compose = ComposeFile {
        services: services
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
        ..Default::default()
    };
    let health = HealthPolicy {
        deadline: Duration::from_secs(20),
        min_healthy: Duration::from_secs(2),
        probes: Vec::new(),
    };
    let revision = content_hash(&(name, &compose, &health));
    RenderedStack {
        name: name.to_string(),
        revision,
        compose,
        health,
        after: Vec::new(),
        remove_volumes: false,
        files: BTreeMap::new(),
    }
}

fn host_state(stacks: Vec<RenderedStack>) -> HostState {
    let revs: Vec<(&str, &str)> = stacks
        .iter()
        .map(|s| (s.name.as_str(), s.revision.as_str()))
        .collect();
    HostState {
        format: HOST_STATE_FORMAT,
        fleet: "test".into(),
        host: "local".into(),
        revision: content_hash(&revs),
        stacks,
    }
}

async fn containers(rt: &dyn Runtime, stack: &str) -> Vec<ContainerInfo> {
    rt.list_containers(&LabelFilter::new().label("dev.convoy.stack", stack))
        .await
        .unwrap()
}

fn by_service(cs: &[ContainerInfo]) -> BTreeMap<String, ContainerInfo> {
    cs.iter()
        .map(|c| (c.labels[LABEL_SERVICE].clone(), c.clone()))
        .collect()
}

/// Applies and waits; returns the new reports (acked) and the time taken.
async fn apply(engine: &StackEngine, state: HostState) -> (Vec<Report>, Duration) {
    let t = Instant::now();
    engine.set_desired(state, Some("rollout-1".into())).unwrap();
    tokio::time::timeout(Duration::from_secs(60), engine.wait_idle())
        .await
        .expect("apply took over 60s")
        .unwrap();
    let took = t.elapsed();
    let reports = engine.pending_reports().unwrap();
    engine
        .ack(&reports.iter().map(|r| r.id.clone()).collect::<Vec<_>>())
        .unwrap();
    assert!(
        engine.pending_reports().unwrap().is_empty(),
        "ack drops reports"
    );
    (reports, took)
}

fn kinds(reports: &[Report], stack: &str) -> Vec<ReportKind> {
    reports
        .iter()
        .filter(|r| r.stack == stack)
        .map(|r| r.kind)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_two_service_stack_comes_up_healthy_with_compose_names_and_labels() {
    let rt = runtime().await;
    let g = Guard::new("a", 1);
    let name = &g.stacks[0];
    let dir = tempfile::tempdir().unwrap();
    let engine = StackEngine::open(dir.path().join("data"), rt.clone()).unwrap();
    let s = stack(name, vec![("web", web()), ("app", app("v1"))]);
    let (reports, took) = apply(&engine, host_state(vec![s.clone()])).await;
    assert_eq!(
        kinds(&reports, name),
        vec![ReportKind::Healthy],
        "{reports:#?}"
    );
    assert!(reports.iter().any(|r| r.kind == ReportKind::HostHealthy));
    let r = reports
        .iter()
        .find(|r| r.kind == ReportKind::Healthy)
        .unwrap();
    assert_eq!(r.stack_revision, s.revision);
    assert_eq!(r.rollout_id, "rollout-1");
    eprintln!("a: healthy after {took:?}");

    let cs = by_service(&containers(rt.as_ref(), name).await);
    assert_eq!(cs.len(), 2);
    for svc in ["web", "app"] {
        let c = &cs[svc];
        assert_eq!(c.name, format!("{name}-{svc}-1"));
        assert_eq!(c.state, ContainerState::Running);
        assert_eq!(c.labels[LABEL_PROJECT], *name);
        assert_eq!(c.labels[LABEL_ONEOFF], "False");
        assert!(!c.labels[LABEL_CONFIG_HASH].is_empty());
        assert_eq!(c.labels["dev.convoy.managed"], "true");
        assert_eq!(c.labels["dev.convoy.revision"], s.revision);
        assert_eq!(
            c.image_id,
            convoy_tests::images::image_id(&image()).unwrap()
        );
    }
    assert_eq!(cs["web"].health, Some(Health::Healthy));
    let logs = rt.logs_tail(&cs["app"].id, 10).await.unwrap();
    assert!(
        logs.iter().any(|l| l.contains("app-started v1")),
        "{logs:?}"
    );

    let st = engine.status().unwrap();
    let ss = st.stacks.iter().find(|x| x.stack == *name).unwrap();
    assert_eq!(ss.applied_revision.as_deref(), Some(s.revision.as_str()));
    assert_eq!(ss.lkg_revision.as_deref(), Some(s.revision.as_str()));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("data"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);
    }
    engine.shutdown().await;
    // Containers keep running when the agent stops.
    let cs = containers(rt.as_ref(), name).await;
    assert!(cs.iter().all(|c| c.state == ContainerState::Running));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b_reapply_is_a_no_op_and_a_changed_service_alone_is_recreated() {
    let rt = runtime().await;
    let g = Guard::new("b", 1);
    let name = &g.stacks[0];
    let dir = tempfile::tempdir().unwrap();
    let engine = StackEngine::open(dir.path(), rt.clone()).unwrap();
    let v1 = stack(name, vec![("web", web()), ("app", app("v1"))]);
    let (reports, _) = apply(&engine, host_state(vec![v1.clone()])).await;
    assert_eq!(kinds(&reports, name), vec![ReportKind::Healthy]);
    let before = by_service(&containers(rt.as_ref(), name).await);

    // Same state again: nothing recreated.
    let t = Instant::now();
    let (reports, _) = apply(&engine, host_state(vec![v1.clone()])).await;
    eprintln!("b: no-op re-apply took {:?}", t.elapsed());
    assert!(kinds(&reports, name).is_empty(), "{reports:#?}");
    let same = by_service(&containers(rt.as_ref(), name).await);
    assert_eq!(before["web"].id, same["web"].id);
    assert_eq!(before["app"].id, same["app"].id);

    // Change app's environment only.
    let v2 = stack(name, vec![("web", web()), ("app", app("v2"))]);
    let (reports, took) = apply(&engine, host_state(vec![v2.clone()])).await;
    eprintln!("b: targeted recreate took {took:?}");
    assert_eq!(
        kinds(&reports, name),
        vec![ReportKind::Healthy],
        "{reports:#?}"
    );
    let after = by_service(&containers(rt.as_ref(), name).await);
    assert_eq!(after.len(), 2);
    assert_eq!(
        before["web"].id, after["web"].id,
        "web is unchanged and left alone"
    );
    assert_ne!(
        before["app"].id, after["app"].id,
        "app changed and was recreated"
    );
    assert_eq!(after["app"].labels["dev.convoy.revision"], v2.revision);
    let logs = rt.logs_tail(&after["app"].id, 10).await.unwrap();
    assert!(
        logs.iter().any(|l| l.contains("app-started v2")),
        "{logs:?}"
    );
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c_failing_revision_fails_early_and_rolls_back_to_lkg() {
    let rt = runtime().await;
    let g = Guard::new("c", 1);
    let name = &g.stacks[0];
    let dir = tempfile::tempdir().unwrap();
    let engine = StackEngine::open(dir.path(), rt.clone()).unwrap();
    let v1 = stack(name, vec![("web", web()), ("app", app("v1"))]);
    let (reports, _) = apply(&engine, host_state(vec![v1.clone()])).await;
    assert_eq!(kinds(&reports, name), vec![ReportKind::Healthy]);
    let good = by_service(&containers(rt.as_ref(), name).await);

    let v2 = stack(name, vec![("web", web()), ("app", failing_app())]);
    let t = Instant::now();
    engine
        .set_desired(host_state(vec![v2.clone()]), Some("rollout-2".into()))
        .unwrap();
    // The gate must fail well before the 20 s deadline: poll the phase.
    let failed_at = loop {
        let st = engine.status().unwrap();
        let ss = st.stacks.iter().find(|x| x.stack == *name).unwrap().clone();
        if matches!(
            ss.phase,
            convoy_host_agent::journal::Phase::RollingBack
                | convoy_host_agent::journal::Phase::RolledBack
                | convoy_host_agent::journal::Phase::Failed
        ) {
            break t.elapsed();
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "gate did not fail early"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    tokio::time::timeout(Duration::from_secs(60), engine.wait_idle())
        .await
        .unwrap()
        .unwrap();
    let total = t.elapsed();
    eprintln!("c: gate failed after {failed_at:?}, rolled back and verified after {total:?}");
    assert!(
        failed_at < Duration::from_secs(10),
        "gate failed after {failed_at:?}, deadline is 20s"
    );

    let reports = engine.pending_reports().unwrap();
    let rb: Vec<&Report> = reports.iter().filter(|r| r.stack == *name).collect();
    assert_eq!(rb.len(), 1, "{reports:#?}");
    let r = rb[0];
    assert_eq!(r.kind, ReportKind::RolledBack, "{r:#?}");
    assert_eq!(r.failing_service, "app");
    assert_eq!(r.stack_revision, v2.revision);
    assert_eq!(r.restored_revision, v1.revision);
    assert_eq!(r.rollout_id, "rollout-2");
    assert!(r.message.contains("exited with code 1"), "{}", r.message);
    assert!(
        r.log_tail.iter().any(|l| l.contains("boom-from-app-1")),
        "{:?}",
        r.log_tail
    );
    assert!(
        r.log_tail.iter().any(|l| l.contains("boom-from-app-2")),
        "{:?}",
        r.log_tail
    );
    assert!(!reports.iter().any(|r| r.kind == ReportKind::HostHealthy));

    // The old config runs again, healthy; web was never touched.
    let now = by_service(&containers(rt.as_ref(), name).await);
    assert_eq!(now.len(), 2);
    assert_eq!(now["web"].id, good["web"].id);
    assert_eq!(
        now["app"].labels[LABEL_CONFIG_HASH],
        good["app"].labels[LABEL_CONFIG_HASH]
    );
    assert_eq!(now["app"].state, ContainerState::Running);
    assert_eq!(now["app"].image_id, good["app"].image_id);
    // Pinned by image id.
    assert!(
        now["app"].image.starts_with("sha256:"),
        "{}",
        now["app"].image
    );
    let logs = rt.logs_tail(&now["app"].id, 10).await.unwrap();
    assert!(
        logs.iter().any(|l| l.contains("app-started v1")),
        "{logs:?}"
    );
    let st = engine.status().unwrap();
    let ss = st.stacks.iter().find(|x| x.stack == *name).unwrap();
    assert_eq!(ss.applied_revision.as_deref(), Some(v1.revision.as_str()));
    assert_eq!(ss.lkg_revision.as_deref(), Some(v1.revision.as_str()));
    assert_eq!(ss.desired_revision.as_deref(), Some(v2.revision.as_str()));
    engine
        .ack(&reports.iter().map(|r| r.id.clone()).collect::<Vec<_>>())
        .unwrap();

    // Re-sending the same failed state does not flap the stack.
    let (reports, _) = apply(&engine, host_state(vec![v2.clone()])).await;
    assert!(kinds(&reports, name).is_empty(), "{reports:#?}");
    assert_eq!(
        by_service(&containers(rt.as_ref(), name).await)["app"].id,
        now["app"].id
    );
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn d_failing_first_deploy_reports_failed() {
    let rt = runtime().await;
    let g = Guard::new("d", 1);
    let name = &g.stacks[0];
    let dir = tempfile::tempdir().unwrap();
    let engine = StackEngine::open(dir.path(), rt.clone()).unwrap();
    let s = stack(name, vec![("web", web()), ("app", failing_app())]);
    let (reports, took) = apply(&engine, host_state(vec![s.clone()])).await;
    eprintln!("d: failed first deploy reported after {took:?}");
    assert!(took < Duration::from_secs(15), "{took:?}");
    let mine: Vec<&Report> = reports.iter().filter(|r| r.stack == *name).collect();
    assert_eq!(mine.len(), 1, "{reports:#?}");
    assert_eq!(mine[0].kind, ReportKind::Failed);
    assert_eq!(mine[0].failing_service, "app");
    assert!(
        mine[0].message.contains("no last-known-good"),
        "{}",
        mine[0].message
    );
    assert!(
        mine[0]
            .log_tail
            .iter()
            .any(|l| l.contains("boom-from-app-1"))
    );
    // The failed stack is left stopped.
    let cs = containers(rt.as_ref(), name).await;
    assert_eq!(cs.len(), 2);
    assert!(
        cs.iter().all(|c| c.state != ContainerState::Running),
        "{cs:#?}"
    );
    let st = engine.status().unwrap();
    let ss = st.stacks.iter().find(|x| x.stack == *name).unwrap();
    assert_eq!(ss.phase, convoy_host_agent::journal::Phase::Failed);
    assert_eq!(ss.lkg_revision, None);
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e_removed_stack_is_removed_with_networks_but_volumes_kept() {
    let rt = runtime().await;
    let g = Guard::new("e", 2);
    let (keep, gone) = (&g.stacks[0], &g.stacks[1]);
    let dir = tempfile::tempdir().unwrap();
    let engine = StackEngine::open(dir.path(), rt.clone()).unwrap();
    let mut w = web();
    w.volumes = vec![VolumeMount {
        kind: MountKind::Volume,
        source: Some("data".into()),
        target: "/data".into(),
        read_only: false,
        relative: false,
        tmpfs_size: None,
        nocopy: false,
    }];
    let mut s_gone = stack(gone, vec![("web", w)]);
    s_gone
        .compose
        .volumes
        .insert("data".into(), VolumeDef::default());
    s_gone.revision = content_hash(&(gone, &s_gone.compose));
    let s_keep = stack(keep, vec![("web", web())]);
    let (reports, _) = apply(&engine, host_state(vec![s_keep.clone(), s_gone.clone()])).await;
    assert_eq!(
        kinds(&reports, gone),
        vec![ReportKind::Healthy],
        "{reports:#?}"
    );
    assert_eq!(kinds(&reports, keep), vec![ReportKind::Healthy]);
    let vol = format!("{gone}_data");
    let net = format!("{gone}_default");
    let f = LabelFilter::new().label("dev.convoy.stack", gone);
    assert_eq!(rt.list_networks(&f).await.unwrap().len(), 1);
    assert_eq!(rt.list_volumes(&f).await.unwrap()[0].name, vol);
    let kept_id = by_service(&containers(rt.as_ref(), keep).await)["web"]
        .id
        .clone();

    let t = Instant::now();
    let (reports, _) = apply(&engine, host_state(vec![s_keep.clone()])).await;
    eprintln!("e: removal took {:?}", t.elapsed());
    assert_eq!(
        kinds(&reports, gone),
        vec![ReportKind::Removed],
        "{reports:#?}"
    );
    assert!(containers(rt.as_ref(), gone).await.is_empty());
    assert!(
        rt.list_networks(&f)
            .await
            .unwrap()
            .iter()
            .all(|n| n.name != net)
    );
    assert!(rt.list_networks(&f).await.unwrap().is_empty());
    let vols = rt.list_volumes(&f).await.unwrap();
    assert_eq!(vols.len(), 1, "named volume kept");
    assert_eq!(vols[0].name, vol);
    // The other stack is untouched.
    assert_eq!(
        by_service(&containers(rt.as_ref(), keep).await)["web"].id,
        kept_id
    );
    let st = engine.status().unwrap();
    assert!(st.stacks.iter().all(|x| x.stack != *gone));
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f_crash_mid_plan_then_rerun_converges_without_duplicates() {
    let rt = runtime().await;
    let g = Guard::new("f", 1);
    let name = &g.stacks[0];
    let dir = tempfile::tempdir().unwrap();
    let s = stack(name, vec![("web", web()), ("app", app("v1"))]);
    let engine = StackEngine::open(dir.path(), rt.clone()).unwrap();
    engine
        .set_desired(host_state(vec![s.clone()]), None)
        .unwrap();
    // Wait until web exists (app is then waiting for web to be healthy).
    let t = Instant::now();
    loop {
        if !containers(rt.as_ref(), name).await.is_empty() {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(20));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    engine.abort().await;
    let mid = containers(rt.as_ref(), name).await;
    eprintln!(
        "f: aborted after {:?} with {} container(s)",
        t.elapsed(),
        mid.len()
    );
    assert_eq!(mid.len(), 1, "aborted mid-plan: app not created yet");
    assert!(engine.pending_reports().unwrap().is_empty());
    drop(engine);

    // Restart: the journal's unfinished apply resumes on open.
    let engine = StackEngine::open(dir.path(), rt.clone()).unwrap();
    tokio::time::timeout(Duration::from_secs(60), engine.wait_idle())
        .await
        .unwrap()
        .unwrap();
    let reports = engine.pending_reports().unwrap();
    assert_eq!(
        kinds(&reports, name),
        vec![ReportKind::Healthy],
        "{reports:#?}"
    );
    let cs = containers(rt.as_ref(), name).await;
    assert_eq!(cs.len(), 2, "no duplicates or orphans: {cs:#?}");
    let by = by_service(&cs);
    assert_eq!(by["web"].id, mid[0].id, "web was kept across the crash");
    assert!(cs.iter().all(|c| c.state == ContainerState::Running));

    // Crash again while the gate runs, then re-run: still converged.
    engine
        .set_desired(
            host_state(vec![stack(name, vec![("web", web()), ("app", app("v2"))])]),
            None,
        )
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    engine.abort().await;
    drop(engine);
    let engine = StackEngine::open(dir.path(), rt.clone()).unwrap();
    tokio::time::timeout(Duration::from_secs(60), engine.wait_idle())
        .await
        .unwrap()
        .unwrap();
    let cs = containers(rt.as_ref(), name).await;
    assert_eq!(cs.len(), 2, "{cs:#?}");
    let by = by_service(&cs);
    assert_eq!(by["web"].id, mid[0].id);
    let logs = rt.logs_tail(&by["app"].id, 10).await.unwrap();
    assert!(
        logs.iter().any(|l| l.contains("app-started v2")),
        "{logs:?}"
    );
    let reports = engine.pending_reports().unwrap();
    assert_eq!(
        reports
            .iter()
            .filter(|r| r.stack == *name && r.kind == ReportKind::Healthy)
            .count(),
        2,
        "{reports:#?}"
    );
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g_cli_apply_and_status() {
    let rt = runtime().await;
    let g = Guard::new("g", 1);
    let name = &g.stacks[0];
    let dir = tempfile::tempdir().unwrap();
    let state = host_state(vec![stack(name, vec![("web", web())])]);
    let file = dir.path().join("state.json");
    std::fs::write(&file, serde_json::to_vec(&state).unwrap()).unwrap();
    let data = dir.path().join("data");
    let bin = env!("CARGO_BIN_EXE_convoy-agent");
    let out = tokio::process::Command::new(bin)
        .args(["apply", "--data-dir"])
        .arg(&data)
        .arg("--state")
        .arg(&file)
        .arg("--wait")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("Healthy") && stdout.contains(name.as_str()),
        "{stdout}"
    );
    assert!(stdout.contains("HostHealthy"), "{stdout}");
    assert_eq!(containers(rt.as_ref(), name).await.len(), 1);
    let out = tokio::process::Command::new(bin)
        .args(["status", "--json", "--data-dir"])
        .arg(&data)
        .output()
        .await
        .unwrap();
    assert!(out.status.success());
    let st: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let s = &st["stacks"][0];
    assert_eq!(s["stack"], name.as_str());
    assert_eq!(s["phase"], "healthy");
    assert_eq!(s["applied_revision"], state.stacks[0].revision.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h_newer_state_supersedes_and_after_dependents_wait_for_healthy() {
    let rt = runtime().await;
    let g = Guard::new("h", 2);
    let (first, second) = (&g.stacks[0], &g.stacks[1]);
    let dir = tempfile::tempdir().unwrap();
    let engine = StackEngine::open(dir.path(), rt.clone()).unwrap();

    // v1 is superseded by v2 while it applies; v2 wins.
    let v1 = stack(first, vec![("web", web()), ("app", app("v1"))]);
    let v2 = stack(first, vec![("web", web()), ("app", app("v2"))]);
    engine
        .set_desired(host_state(vec![v1.clone()]), None)
        .unwrap();
    tokio::time::sleep(Duration::from_millis(700)).await;
    let (reports, took) = apply(&engine, host_state(vec![v2.clone()])).await;
    eprintln!("h: superseded apply converged after {took:?}");
    let mine: Vec<&Report> = reports.iter().filter(|r| r.stack == *first).collect();
    assert_eq!(mine.len(), 1, "{reports:#?}");
    assert_eq!(mine[0].kind, ReportKind::Healthy);
    assert_eq!(mine[0].stack_revision, v2.revision);
    let cs = by_service(&containers(rt.as_ref(), first).await);
    assert_eq!(cs.len(), 2);
    let logs = rt.logs_tail(&cs["app"].id, 10).await.unwrap();
    assert!(
        logs.iter().any(|l| l.contains("app-started v2")),
        "{logs:?}"
    );

    // A stack `after` a failing one is not applied.
    let broken = stack(first, vec![("web", web()), ("app", failing_app())]);
    let mut dependent = stack(second, vec![("web", web())]);
    dependent.after = vec![first.clone()];
    let (reports, _) = apply(&engine, host_state(vec![broken, dependent])).await;
    assert_eq!(
        kinds(&reports, first),
        vec![ReportKind::RolledBack],
        "{reports:#?}"
    );
    let dep: Vec<&Report> = reports.iter().filter(|r| r.stack == *second).collect();
    assert_eq!(dep.len(), 1);
    assert_eq!(dep[0].kind, ReportKind::Failed);
    assert!(
        dep[0].message.contains(first.as_str()),
        "{}",
        dep[0].message
    );
    assert!(containers(rt.as_ref(), second).await.is_empty());
    engine.shutdown().await;
}
