//! The rollout engine over the real sled store: waves, reports, restarts.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::{Arc, Mutex};

use convoy_control_plane::rollout::{Effects, Engine, HostDesired, Input, Rollout, RolloutStatus};
use convoy_control_plane::store::SledStore;
use convoy_shared::repo::{Repo, load_dir};

#[derive(Default)]
struct Recorder {
    deliveries: Mutex<Vec<(String, HostDesired)>>,
    events: Mutex<Vec<String>>,
}

impl Recorder {
    /// Takes in what a step decided (the engine returns it; the daemon's
    /// dispatcher routes it).
    fn absorb(&self, effects: Effects) {
        for d in effects.deliveries {
            let state: serde_json::Value = serde_json::from_slice(&d.state_json).unwrap();
            assert_eq!(state["revision"], d.desired.revision.as_str());
            assert_eq!(state["host"], d.host.as_str());
            self.deliveries.lock().unwrap().push((d.host, d.desired));
        }
        for e in effects.events {
            self.events.lock().unwrap().push(format!("{:?}", e.kind));
        }
    }

    fn hosts(&self) -> Vec<String> {
        self.deliveries
            .lock()
            .unwrap()
            .iter()
            .map(|(h, _)| h.clone())
            .collect()
    }
    fn take(&self) -> Vec<(String, HostDesired)> {
        std::mem::take(&mut *self.deliveries.lock().unwrap())
    }
}

/// Opens the store again after the previous handle was dropped. sled's own
/// background flusher lets go of the file lock a moment after the drop (a
/// restarted process would not see the lock at all), so retry briefly.
fn reopen(path: &Path) -> SledStore {
    let start = std::time::Instant::now();
    loop {
        match SledStore::open(path) {
            Ok(db) => return db,
            Err(e) if start.elapsed() < std::time::Duration::from_secs(10) => {
                let _ = e;
                std::thread::yield_now();
            }
            Err(e) => panic!("reopening the store: {e}"),
        }
    }
}

fn example() -> convoy_shared::repo::Repo {
    load_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/fleet")).unwrap()
}

fn healthy(engine: &Engine, rec: &Recorder, host: &str, revision: &str, now: u64) -> Rollout {
    let (r, effects) = engine
        .input(
            &Input::HostHealthy {
                host: host.into(),
                revision: revision.into(),
            },
            now,
        )
        .unwrap();
    rec.absorb(effects);
    r.unwrap()
}

/// Starts a commit's rollout; returns its id.
fn accept(engine: &Engine, rec: &Recorder, commit: &str, repo: &Repo, now: u64) -> String {
    let started = engine.accept_commit(commit, repo, now).unwrap().unwrap();
    rec.absorb(started.effects);
    started.id
}

#[test]
fn walks_the_example_fleet_and_survives_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let repo = example();
    let rec = Arc::new(Recorder::default());
    let id = {
        let db = SledStore::open(dir.path()).unwrap();
        let engine = Engine::new(Arc::new(db));
        let id = accept(&engine, &rec, "c1", &repo, 1_000);
        // Staging first: only the laptop.
        assert_eq!(rec.hosts(), vec!["thinkpad"]);
        // The same commit again is a no-op.
        assert!(engine.accept_commit("c1", &repo, 1_001).unwrap().is_none());
        id
        // Dropped here: like a kill, nothing else persisted.
    };
    let db = reopen(dir.path());
    let engine = Engine::new(Arc::new(db));
    let cur = engine.current_rollout().unwrap().unwrap();
    assert_eq!(cur.id, id);
    rec.take();
    // Resume re-delivers the in-flight host, with the same generation.
    rec.absorb(engine.resume(2_000).unwrap());
    let again = rec.take();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].0, "thinkpad");
    assert_eq!(again[0].1.generation, 1);
    let laptop_rev = again[0].1.revision.clone();

    // Healthy laptop: prod starts with max_parallel 1 (alphabetical).
    let r = healthy(&engine, &rec, "thinkpad", &laptop_rev, 3_000);
    assert_eq!(r.status, RolloutStatus::Running);
    let prod = rec.take();
    assert_eq!(prod.len(), 1, "{prod:?}");
    assert_eq!(prod[0].0, "rtx3090");
    let r = healthy(&engine, &rec, "rtx3090", &prod[0].1.revision, 4_000);
    let next = rec.take();
    assert_eq!(next[0].0, "vps");
    assert_eq!(r.status, RolloutStatus::Running);
    let r = healthy(&engine, &rec, "vps", &next[0].1.revision, 5_000);
    assert_eq!(r.status, RolloutStatus::Completed);
    assert_eq!(engine.last_good_commit().unwrap().as_deref(), Some("c1"));
    let (d, _) = engine.desired_for("vps").unwrap().unwrap();
    assert_eq!(d.commit, "c1");
    let events = rec.events.lock().unwrap().clone();
    assert_eq!(
        events.iter().filter(|e| *e == "RolloutCompleted").count(),
        1,
        "{events:?}"
    );
}

#[test]
fn unchanged_hosts_get_nothing_and_failures_halt() {
    let dir = tempfile::tempdir().unwrap();
    let db = SledStore::open(dir.path()).unwrap();
    let rec = Arc::new(Recorder::default());
    let engine = Engine::new(Arc::new(db));
    let repo = example();
    accept(&engine, &rec, "c1", &repo, 0);
    for (i, h) in ["thinkpad", "rtx3090", "vps"].iter().enumerate() {
        let (d, _) = engine.desired_for(h).unwrap().unwrap();
        healthy(&engine, &rec, h, &d.revision, 10 + i as u64);
    }
    assert_eq!(
        engine.current_rollout().unwrap().unwrap().status,
        RolloutStatus::Completed
    );
    rec.take();
    // A new commit with the same content: every host is unchanged.
    let id2 = accept(&engine, &rec, "c2", &repo, 100);
    assert!(rec.take().is_empty());
    assert_eq!(
        engine.rollout(&id2).unwrap().unwrap().status,
        RolloutStatus::Completed
    );

    // A commit that changes only the laptop's stack, which then fails.
    let mut changed = repo.clone();
    changed
        .fleet
        .stacks
        .get_mut("monitoring")
        .unwrap()
        .health
        .deadline = std::time::Duration::from_secs(300);
    accept(&engine, &rec, "c3", &changed, 200);
    let sent = rec.take();
    assert_eq!(sent.len(), 1);
    let (r, effects) = engine
        .input(
            &Input::HostFailed {
                host: "thinkpad".into(),
                revision: sent[0].1.revision.clone(),
                reason: "grafana unhealthy".into(),
            },
            300,
        )
        .unwrap();
    rec.absorb(effects);
    let r = r.unwrap();
    assert!(
        matches!(r.status, RolloutStatus::Halted { .. }),
        "{:?}",
        r.status
    );
    assert!(rec.take().is_empty(), "nothing sent after a halt");
    assert_eq!(sent[0].1.generation, 2, "generations grow per host");
}

#[test]
fn rejected_commits_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = SledStore::open(dir.path()).unwrap();
    let rec = Arc::new(Recorder::default());
    let engine = Engine::new(Arc::new(db));
    accept(&engine, &rec, "good", &example(), 0);
    rec.take();
    assert!(engine.reject_commit("bad", vec![], 1).unwrap());
    assert!(!engine.reject_commit("bad", vec![], 2).unwrap());
    assert!(rec.take().is_empty());
    assert_eq!(engine.last_good_commit().unwrap().as_deref(), Some("good"));
    assert!(!engine.commit("bad").unwrap().unwrap().accepted);
}
