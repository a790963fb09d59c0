//! The engine's lifecycle end to end over the in-memory [`FakeRuntime`]
//! and a real sled journal behind the failure-injecting [`FaultyJournal`],
//! with tokio's clock paused (health windows of seconds pass at once). The
//! same paths against the real Docker engine: `tests/engine_docker.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use convoy_shared::compose::{ComposeFile, Dependency, DependencyCondition, Healthcheck, Service};
use convoy_shared::fleet::HealthPolicy;
use convoy_shared::render::{HOST_STATE_FORMAT, HostState, RenderedStack, content_hash};
use proptest::prelude::*;

use super::{StackEngine, StackEngineOptions};
use crate::journal::faulty::FaultyJournal;
use crate::journal::{Journal, Phase, SledJournal};
use crate::report::{Report, ReportKind};
use crate::runtime::fake::{Behaviour, FakeRuntime, Op};
use crate::runtime::{ContainerInfo, ContainerState, LABEL_SERVICE};

struct Rig {
    dir: tempfile::TempDir,
    rt: Arc<FakeRuntime>,
    journal: FaultyJournal,
    sled: Arc<dyn Journal>,
    engine: StackEngine,
    /// Image ids by reference.
    images: BTreeMap<&'static str, String>,
}

impl Rig {
    fn new() -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let rt = Arc::new(FakeRuntime::new());
        let mut images = BTreeMap::new();
        images.insert("web:1", rt.image("web:1", Behaviour::serve()));
        images.insert("app:1", rt.image("app:1", Behaviour::serve()));
        images.insert("app:bad", rt.image("app:bad", Behaviour::exit(1)));
        let sled: Arc<dyn Journal> =
            Arc::new(SledJournal::open(&dir.path().join("journal")).unwrap());
        let journal = FaultyJournal::new(sled.clone());
        let engine = open(&dir, &journal, &rt);
        Rig {
            dir,
            rt,
            journal,
            sled,
            engine,
            images,
        }
    }

    /// A restart: a new engine on the same journal and the same Docker.
    async fn restart(&mut self) {
        self.engine.abort().await;
        self.rt.clear_crash();
        self.engine = open(&self.dir, &self.journal, &self.rt);
    }

    /// Sets `state`, waits for the pass; returns the new reports (acked).
    async fn apply(&self, state: HostState) -> Vec<Report> {
        self.engine
            .set_desired(state, Some("rollout-1".into()))
            .unwrap();
        self.settle().await
    }

    async fn settle(&self) -> Vec<Report> {
        tokio::time::timeout(Duration::from_secs(600), self.engine.wait_idle())
            .await
            .expect("the pass never finished")
            .unwrap();
        let reports = self.engine.pending_reports().unwrap();
        self.engine
            .ack(&reports.iter().map(|r| r.id.clone()).collect::<Vec<_>>())
            .unwrap();
        reports
    }

    fn containers(&self, stack: &str) -> BTreeMap<String, ContainerInfo> {
        self.rt
            .containers()
            .into_iter()
            .filter(|c| c.labels.get("dev.convoy.stack").map(String::as_str) == Some(stack))
            .map(|c| (c.labels[LABEL_SERVICE].clone(), c))
            .collect()
    }

    fn stack_status(&self, stack: &str) -> super::StackStatus {
        let st = self.engine.status().unwrap();
        st.stacks.into_iter().find(|s| s.stack == stack).unwrap()
    }
}

fn open(dir: &tempfile::TempDir, journal: &FaultyJournal, rt: &Arc<FakeRuntime>) -> StackEngine {
    StackEngine::with_journal(
        dir.path().join("data"),
        Arc::new(journal.clone()),
        rt.clone(),
        StackEngineOptions::default(),
    )
    .unwrap()
}

fn web() -> Service {
    Service {
        image: "web:1".into(),
        healthcheck: Some(Healthcheck {
            test: vec![
                "CMD".into(),
                "wget".into(),
                "http://127.0.0.1/health".into(),
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

fn app(image: &str, greeting: &str) -> Service {
    Service {
        image: image.into(),
        environment: BTreeMap::from([("GREETING".to_string(), Some(greeting.to_string()))]),
        depends_on: BTreeMap::from([(
            "web".to_string(),
            Dependency {
                condition: DependencyCondition::ServiceHealthy,
                ..Default::default()
            },
        )]),
        ..Default::default()
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
    RenderedStack {
        name: name.to_string(),
        revision: content_hash(&(name, &compose, &health)),
        compose,
        health,
        after: Vec::new(),
        remove_volumes: false,
        files: BTreeMap::new(),
    }
}

fn two(name: &str, image: &str, greeting: &str) -> RenderedStack {
    stack(name, vec![("web", web()), ("app", app(image, greeting))])
}

fn host(stacks: Vec<RenderedStack>) -> HostState {
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

fn kinds(reports: &[Report], stack: &str) -> Vec<ReportKind> {
    reports
        .iter()
        .filter(|r| r.stack == stack)
        .map(|r| r.kind)
        .collect()
}

#[tokio::test(start_paused = true)]
async fn a_first_apply_comes_up_healthy_and_a_reapply_touches_nothing() {
    let rig = Rig::new();
    let v1 = two("s", "app:1", "v1");
    let reports = rig.apply(host(vec![v1.clone()])).await;
    assert_eq!(kinds(&reports, "s"), [ReportKind::Healthy], "{reports:#?}");
    assert!(reports.iter().any(|r| r.kind == ReportKind::HostHealthy));
    assert_eq!(reports[0].rollout_id, "rollout-1");
    let cs = rig.containers("s");
    assert_eq!(cs.len(), 2);
    for (svc, c) in &cs {
        assert_eq!(c.name, format!("s-{svc}-1"));
        assert_eq!(c.state, ContainerState::Running);
        assert_eq!(c.labels["dev.convoy.revision"], v1.revision);
    }
    let st = rig.stack_status("s");
    assert_eq!(st.applied_revision.as_deref(), Some(v1.revision.as_str()));
    assert_eq!(st.lkg_revision.as_deref(), Some(v1.revision.as_str()));
    assert_eq!(st.phase, Phase::Healthy);

    let creates = rig
        .rt
        .calls()
        .iter()
        .filter(|(op, _)| *op == Op::Create)
        .count();
    let reports = rig.apply(host(vec![v1])).await;
    assert!(kinds(&reports, "s").is_empty(), "{reports:#?}");
    assert_eq!(
        rig.rt
            .calls()
            .iter()
            .filter(|(op, _)| *op == Op::Create)
            .count(),
        creates,
        "nothing recreated"
    );
    assert_eq!(rig.containers("s")["app"].id, cs["app"].id);
}

#[tokio::test(start_paused = true)]
async fn a_failing_revision_rolls_back_to_the_lkg_with_pinned_images() {
    let rig = Rig::new();
    let v1 = two("s", "app:1", "v1");
    rig.apply(host(vec![v1.clone()])).await;
    let good = rig.containers("s");

    let v2 = two("s", "app:bad", "v2");
    rig.engine
        .set_desired(host(vec![v2.clone()]), Some("rollout-2".into()))
        .unwrap();
    let reports = rig.settle().await;
    let mine: Vec<&Report> = reports.iter().filter(|r| r.stack == "s").collect();
    assert_eq!(mine.len(), 1, "{reports:#?}");
    let r = mine[0];
    assert_eq!(r.kind, ReportKind::RolledBack);
    assert_eq!(r.failing_service, "app");
    assert_eq!(r.stack_revision, v2.revision);
    assert_eq!(r.restored_revision, v1.revision);
    assert_eq!(r.rollout_id, "rollout-2");
    assert!(r.message.contains("exited with code 1"), "{}", r.message);
    assert!(
        r.log_tail.iter().any(|l| l.contains("exiting with code 1")),
        "{:?}",
        r.log_tail
    );
    assert!(!reports.iter().any(|r| r.kind == ReportKind::HostHealthy));

    let now = rig.containers("s");
    assert_eq!(now["web"].id, good["web"].id, "web was never touched");
    assert_eq!(now["app"].state, ContainerState::Running);
    assert_eq!(now["app"].image_id, rig.images["app:1"]);
    assert_eq!(now["app"].image, rig.images["app:1"], "pinned by image id");
    assert_eq!(now["app"].labels["dev.convoy.revision"], v1.revision);
    let st = rig.stack_status("s");
    assert_eq!(st.phase, Phase::RolledBack);
    assert_eq!(st.applied_revision.as_deref(), Some(v1.revision.as_str()));
    assert_eq!(st.lkg_revision.as_deref(), Some(v1.revision.as_str()));
    assert_eq!(st.desired_revision.as_deref(), Some(v2.revision.as_str()));

    // The same failed state again: not retried, no flapping.
    let reports = rig.apply(host(vec![v2])).await;
    assert!(kinds(&reports, "s").is_empty(), "{reports:#?}");
    assert_eq!(rig.containers("s")["app"].id, now["app"].id);
}

#[tokio::test(start_paused = true)]
async fn a_failed_first_deploy_is_stopped_and_reported_failed() {
    let rig = Rig::new();
    let reports = rig.apply(host(vec![two("s", "app:bad", "v1")])).await;
    let mine: Vec<&Report> = reports.iter().filter(|r| r.stack == "s").collect();
    assert_eq!(mine.len(), 1, "{reports:#?}");
    assert_eq!(mine[0].kind, ReportKind::Failed);
    assert_eq!(mine[0].failing_service, "app");
    assert!(
        mine[0].message.contains("no last-known-good"),
        "{}",
        mine[0].message
    );
    let cs = rig.containers("s");
    assert_eq!(cs.len(), 2, "kept for their logs");
    assert!(
        cs.values().all(|c| c.state != ContainerState::Running),
        "{cs:#?}"
    );
    let st = rig.stack_status("s");
    assert_eq!((st.phase, st.lkg_revision), (Phase::Failed, None));
}

#[tokio::test(start_paused = true)]
async fn a_restore_that_is_not_healthy_either_reports_failed() {
    let rig = Rig::new();
    rig.apply(host(vec![two("s", "app:1", "v1")])).await;
    // Whatever app:1 depended on is gone now: it exits too.
    rig.rt
        .set_behaviour(&rig.images["app:1"], Behaviour::exit(2));
    let reports = rig.apply(host(vec![two("s", "app:bad", "v2")])).await;
    assert_eq!(kinds(&reports, "s"), [ReportKind::Failed], "{reports:#?}");
    assert!(
        reports[0]
            .message
            .contains("the restored last-known-good is not healthy either"),
        "{}",
        reports[0].message
    );
    assert_eq!(rig.stack_status("s").phase, Phase::Failed);
}

#[tokio::test(start_paused = true)]
async fn stacks_after_a_failed_one_are_not_applied() {
    let rig = Rig::new();
    let first = two("a", "app:bad", "v1");
    let mut dependent = stack("b", vec![("web", web())]);
    dependent.after = vec!["a".into()];
    let independent = stack("c", vec![("web", web())]);
    let reports = rig.apply(host(vec![first, dependent, independent])).await;
    assert_eq!(kinds(&reports, "a"), [ReportKind::Failed]);
    let b: Vec<&Report> = reports.iter().filter(|r| r.stack == "b").collect();
    assert_eq!(b.len(), 1);
    assert_eq!(b[0].kind, ReportKind::Failed);
    assert_eq!(
        b[0].message,
        "not applied: stack(s) a it must come after are not healthy on this host"
    );
    assert!(rig.containers("b").is_empty());
    assert_eq!(kinds(&reports, "c"), [ReportKind::Healthy]);
    assert!(!reports.iter().any(|r| r.kind == ReportKind::HostHealthy));
}

#[tokio::test(start_paused = true)]
async fn an_image_that_cannot_be_pulled_stops_nothing() {
    let rig = Rig::new();
    rig.apply(host(vec![two("s", "app:1", "v1")])).await;
    let before = rig.containers("s");
    let seen = rig.rt.calls().len();
    let reports = rig.apply(host(vec![two("s", "app:2", "v2")])).await;
    assert_eq!(
        kinds(&reports, "s"),
        [ReportKind::RolledBack],
        "{reports:#?}"
    );
    assert!(
        reports[0]
            .message
            .contains("image app:2 is not present locally and the pull failed"),
        "{}",
        reports[0].message
    );
    let after = rig.containers("s");
    assert_eq!(
        after["app"].id, before["app"].id,
        "the old app kept running"
    );
    assert!(
        !rig.rt.calls()[seen..]
            .iter()
            .any(|(op, _)| matches!(op, Op::Stop | Op::Remove | Op::Create)),
        "{:?}",
        &rig.rt.calls()[seen..]
    );

    // Pullable: pulled before anything stops, then applied.
    rig.rt.registry_image("app:3", Behaviour::serve());
    let reports = rig.apply(host(vec![two("s", "app:3", "v3")])).await;
    assert_eq!(kinds(&reports, "s"), [ReportKind::Healthy], "{reports:#?}");
    let calls = rig.rt.calls();
    let pull = calls
        .iter()
        .position(|(op, t)| *op == Op::Pull && t == "app:3")
        .unwrap();
    let stop = calls.iter().rposition(|(op, _)| *op == Op::Stop).unwrap();
    assert!(pull < stop, "download before kill");
}

#[tokio::test(start_paused = true)]
async fn a_full_disk_stops_the_apply_reports_live_and_retries() {
    let rig = Rig::new();
    let (a1, b1) = (two("a", "app:1", "v1"), stack("b", vec![("web", web())]));
    rig.apply(host(vec![a1, b1.clone()])).await;
    let before = rig.rt.containers();

    // The desired state is journaled, then the disk fills up.
    let a2 = two("a", "app:1", "v2");
    rig.engine
        .set_desired(host(vec![a2.clone(), b1.clone()]), None)
        .unwrap();
    rig.journal.set_full(true);
    // Acking what was sent live needs no journal write.
    let reports = rig.settle().await;
    assert_eq!(kinds(&reports, "a"), [ReportKind::Failed], "{reports:#?}");
    let msg = &reports[0].message;
    assert!(
        msg.starts_with("cannot record the in-flight apply in the journal (")
            && msg.contains("No space left on device")
            && msg.contains("containers are left as they are"),
        "{msg}"
    );
    assert_eq!(rig.rt.containers(), before, "nothing was touched");
    assert!(rig.journal.refused().iter().any(|w| w == "put_inflight a"));
    assert!(
        rig.sled.pending_reports().unwrap().is_empty(),
        "the report could not be journaled: it went out live"
    );
    assert_eq!(rig.stack_status("a").phase, Phase::Failed);

    // Room again: the retry (after a delay) applies it; the held report
    // is journaled with the next one.
    rig.journal.heal();
    tokio::time::sleep(Duration::from_secs(400)).await;
    let st = rig.stack_status("a");
    assert_eq!(
        st.applied_revision.as_deref(),
        Some(a2.revision.as_str()),
        "{st:?}"
    );
    assert_eq!(st.lkg_revision.as_deref(), Some(a2.revision.as_str()));
    let journaled = rig.sled.pending_reports().unwrap();
    assert_eq!(
        journaled
            .iter()
            .map(|r| (r.stack.as_str(), r.kind))
            .collect::<Vec<_>>(),
        [("a", ReportKind::Healthy), ("", ReportKind::HostHealthy)],
        "the acked live report is not journaled again"
    );
    assert_eq!(
        rig.containers("a")["app"].labels["dev.convoy.revision"],
        a2.revision
    );
}

#[tokio::test(start_paused = true)]
async fn a_journal_that_latches_its_error_waits_for_a_restart() {
    let mut rig = Rig::new();
    rig.apply(host(vec![two("a", "app:1", "v1")])).await;
    // As sled does: after one refused write, every later one is refused,
    // room or not, until the journal is reopened.
    rig.journal.set_latching(true);
    let a2 = two("a", "app:1", "v2");
    rig.engine
        .set_desired(host(vec![a2.clone()]), None)
        .unwrap();
    rig.journal.set_full(true);
    let reports = rig.settle().await;
    assert_eq!(kinds(&reports, "a"), [ReportKind::Failed], "{reports:#?}");
    assert!(rig.engine.journal_refuses_writes());
    assert_eq!(rig.engine.held_reports(), 0, "delivered and acked");
    rig.journal.set_full(false);
    let refused = rig.journal.refused().len();
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert_eq!(rig.journal.refused().len(), refused, "no pointless retries");
    assert!(rig.engine.pending_reports().unwrap().is_empty());
    assert!(
        rig.engine
            .set_desired(host(vec![a2.clone()]), None)
            .is_err()
    );
    assert_eq!(rig.engine.held_reports(), 1, "the refusal is reported live");

    // The restart reopens it and the apply resumes.
    rig.journal.heal();
    rig.restart().await;
    let reports = rig.settle().await;
    assert_eq!(kinds(&reports, "a"), [ReportKind::Healthy], "{reports:#?}");
    assert_eq!(
        rig.stack_status("a").lkg_revision.as_deref(),
        Some(a2.revision.as_str())
    );
}

#[tokio::test(start_paused = true)]
async fn a_refused_lkg_write_is_reported_and_the_retry_records_it() {
    let rig = Rig::new();
    rig.journal.fail("put_lkg");
    let s = two("s", "app:1", "v1");
    let reports = rig
        .apply(host(vec![s.clone(), stack("t", vec![("web", web())])]))
        .await;
    assert_eq!(kinds(&reports, "s"), [ReportKind::Failed], "{reports:#?}");
    assert!(
        reports[0]
            .message
            .starts_with("cannot record the last-known-good revision in the journal"),
        "{}",
        reports[0].message
    );
    assert!(
        rig.containers("t").is_empty(),
        "the pass stopped at the refused write"
    );
    assert_eq!(rig.stack_status("s").lkg_revision, None);
    rig.journal.heal();
    tokio::time::sleep(Duration::from_secs(400)).await;
    let reports = rig.settle().await;
    assert_eq!(kinds(&reports, "s"), [ReportKind::Healthy], "{reports:#?}");
    assert_eq!(kinds(&reports, "t"), [ReportKind::Healthy]);
    assert_eq!(
        rig.stack_status("s").lkg_revision.as_deref(),
        Some(s.revision.as_str())
    );
}

#[tokio::test(start_paused = true)]
async fn a_refused_desired_state_is_not_applied_and_reported_live() {
    let rig = Rig::new();
    rig.journal.set_full(true);
    let e = rig
        .engine
        .set_desired(host(vec![two("s", "app:1", "v1")]), Some("r9".into()))
        .unwrap_err();
    assert!(convoy_kit::error_chain(&e).contains("No space left"), "{e}");
    let reports = rig.engine.pending_reports().unwrap();
    assert_eq!(reports.len(), 1);
    assert_eq!(
        (reports[0].kind, reports[0].stack.as_str()),
        (ReportKind::Failed, "")
    );
    assert_eq!(reports[0].rollout_id, "r9");
    assert!(
        reports[0]
            .message
            .starts_with("cannot record the desired state")
    );
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert!(rig.rt.containers().is_empty());
}

#[tokio::test(start_paused = true)]
async fn stopping_parks_mid_gate_and_the_next_start_resumes() {
    let mut rig = Rig::new();
    rig.engine
        .set_desired(host(vec![two("s", "app:1", "v1")]), None)
        .unwrap();
    while rig.stack_status("s").phase != Phase::Verifying {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    rig.engine.shutdown().await;
    assert!(rig.engine.pending_reports().unwrap().is_empty());
    let inflight = rig.sled.inflight("s").unwrap().unwrap();
    assert_eq!(inflight.phase, Phase::Verifying);
    let cs = rig.containers("s");
    rig.restart().await;
    let reports = rig.settle().await;
    assert_eq!(kinds(&reports, "s"), [ReportKind::Healthy], "{reports:#?}");
    assert_eq!(rig.containers("s")["app"].id, cs["app"].id, "not recreated");
    assert!(rig.sled.inflight("s").unwrap().is_none());
}

#[tokio::test(start_paused = true)]
async fn a_newer_state_supersedes_a_running_apply() {
    let rig = Rig::new();
    rig.engine
        .set_desired(host(vec![two("s", "app:1", "v1")]), None)
        .unwrap();
    tokio::time::sleep(Duration::from_millis(700)).await;
    let v2 = two("s", "app:1", "v2");
    let reports = rig.apply(host(vec![v2.clone()])).await;
    let mine: Vec<&Report> = reports.iter().filter(|r| r.stack == "s").collect();
    assert_eq!(mine.len(), 1, "{reports:#?}");
    assert_eq!(
        (mine[0].kind, &mine[0].stack_revision),
        (ReportKind::Healthy, &v2.revision)
    );
}

#[tokio::test(start_paused = true)]
async fn a_removed_stack_goes_and_a_refused_removal_record_is_retried() {
    let rig = Rig::new();
    let keep = stack("k", vec![("web", web())]);
    rig.apply(host(vec![keep.clone(), two("gone", "app:1", "v1")]))
        .await;
    rig.journal.fail("remove_lkg");
    let reports = rig.apply(host(vec![keep.clone()])).await;
    assert_eq!(
        kinds(&reports, "gone"),
        [ReportKind::Failed],
        "{reports:#?}"
    );
    assert!(
        reports[0].message.contains("record the removal"),
        "{}",
        reports[0].message
    );
    assert!(
        rig.containers("gone").is_empty(),
        "the containers are gone already"
    );
    rig.journal.heal();
    tokio::time::sleep(Duration::from_secs(400)).await;
    let reports = rig.settle().await;
    assert_eq!(
        kinds(&reports, "gone"),
        [ReportKind::Removed],
        "{reports:#?}"
    );
    assert!(
        rig.rt
            .network_names()
            .iter()
            .all(|n| !n.starts_with("gone"))
    );
    assert!(
        rig.engine
            .status()
            .unwrap()
            .stacks
            .iter()
            .all(|s| s.stack != "gone")
    );
}

/// The calls a clean apply of `to` after `from` makes, on a fresh rig.
async fn dry_run(from: &HostState, to: &HostState) -> (usize, Vec<(Op, String)>) {
    let rig = Rig::new();
    rig.apply(from.clone()).await;
    let start = rig.rt.calls().len();
    rig.apply(to.clone()).await;
    (start, rig.rt.calls()[start..].to_vec())
}

/// v1 healthy, then `to` with Docker "crashing" the agent at call `at` of
/// that apply; the agent restarts and finishes. Returns the rig and every
/// report of the second apply (both runs).
async fn crash_then_restart(
    from: &HostState,
    to: &HostState,
    at: usize,
    after_effect: bool,
) -> (Rig, Vec<Report>) {
    let mut rig = Rig::new();
    rig.apply(from.clone()).await;
    let reached = rig.rt.crash_at(rig.rt.calls().len() + at, after_effect);
    rig.engine.set_desired(to.clone(), None).unwrap();
    tokio::time::timeout(Duration::from_secs(600), reached.notified())
        .await
        .expect("the crash point was never reached");
    rig.restart().await;
    // The crashed run's reports are in the journal, unacked: settle has
    // them too.
    let reports = rig.settle().await;
    (rig, reports)
}

#[tokio::test(start_paused = true)]
async fn a_crash_mid_plan_or_mid_rollback_resumes_where_it_was() {
    let v1 = host(vec![two("s", "app:1", "v1")]);
    let v2 = host(vec![two("s", "app:1", "v2")]);
    let (_, calls) = dry_run(&v1, &v2).await;
    let create = calls
        .iter()
        .position(|c| *c == (Op::Create, "s-app-1".to_string()))
        .unwrap();
    // Crash right after the old app is removed, before the new one exists.
    let (rig, reports) = crash_then_restart(&v1, &v2, create, false).await;
    assert_eq!(kinds(&reports, "s"), [ReportKind::Healthy], "{reports:#?}");
    let cs = rig.containers("s");
    assert_eq!(cs.len(), 2, "{cs:#?}");
    assert_eq!(
        cs["app"].labels["dev.convoy.revision"],
        v2.stacks[0].revision
    );

    // A rollback cut short resumes as a rollback, reported once.
    let bad = host(vec![two("s", "app:bad", "v2")]);
    let (_, calls) = dry_run(&v1, &bad).await;
    let restore = calls
        .iter()
        .rposition(|c| *c == (Op::Create, "s-app-1".to_string()))
        .unwrap();
    let (rig, reports) = crash_then_restart(&v1, &bad, restore, true).await;
    assert_eq!(
        kinds(&reports, "s"),
        [ReportKind::RolledBack],
        "{reports:#?}"
    );
    assert_eq!(rig.containers("s")["app"].image, rig.images["app:1"]);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// A crash at any engine call of an update (before or after the call
    /// takes effect), then a restart: the stack converges to what a clean
    /// run gives — the new revision healthy, or the old one restored when
    /// the new one fails — with one container per service, all running,
    /// and the outcome reported at least once and never contradicted.
    #[test]
    fn a_crash_at_any_call_then_restart_converges(
        failing in any::<bool>(),
        pick in 0.0f64..1.0,
        after_effect in any::<bool>(),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap();
        rt.block_on(async {
            let v1 = host(vec![two("s", "app:1", "v1")]);
            let to = host(vec![two("s", if failing { "app:bad" } else { "app:1" }, "v2")]);
            let (_, calls) = dry_run(&v1, &to).await;
            // The fraction `pick` of the dry run's calls.
            let at = ((calls.len() as f64) * pick) as usize;
            let (rig, reports) = crash_then_restart(&v1, &to, at, after_effect).await;
            let cs = rig.containers("s");
            prop_assert_eq!(cs.len(), 2, "{:#?}", cs);
            prop_assert_eq!(rig.rt.containers().len(), 2, "no duplicates or orphans");
            prop_assert!(cs.values().all(|c| c.state == ContainerState::Running), "{:#?}", cs);
            let k = kinds(&reports, "s");
            let st = rig.stack_status("s");
            if failing {
                prop_assert!(k.contains(&ReportKind::RolledBack), "{:?}", k);
                prop_assert!(!k.contains(&ReportKind::Healthy), "{:?}", k);
                prop_assert_eq!(&cs["app"].labels["dev.convoy.revision"], &v1.stacks[0].revision);
                prop_assert_eq!(st.applied_revision.as_ref(), Some(&v1.stacks[0].revision));
            } else {
                prop_assert!(k.contains(&ReportKind::Healthy), "{:?}", k);
                prop_assert!(!k.iter().any(|k| matches!(k, ReportKind::RolledBack | ReportKind::Failed)), "{:?}", k);
                prop_assert_eq!(&cs["app"].labels["dev.convoy.revision"], &to.stacks[0].revision);
                prop_assert_eq!(st.lkg_revision.as_ref(), Some(&to.stacks[0].revision));
            }
            Ok(())
        })?;
    }
}
