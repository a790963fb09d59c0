//! The rollout engine: turns accepted commits into rollouts and drives the
//! pure step function ([`crate::rollout::step`]), persisting every
//! transition in sled *before* acting on it. After a `kill -9` the engine
//! reopens the same trees, finds the running rollout where it was, and
//! re-delivers what the last persisted state says hosts should have (every
//! delivery is idempotent: keyed by host and generation).
//!
//! Trees:
//! - `states`: `<host>/<host revision>` → HostState JSON (hosts with the
//!   same stacks share a revision, but each state names its host; written once
//!   per host and revision, shared by
//!   every commit that renders the same state);
//! - `host_desired`: host → [`HostDesired`] (what the host should run now);
//! - `commits`: commit id → [`CommitRecord`] (accepted or rejected, problems);
//! - `rollouts`: rollout id → [`Rollout`];
//! - `meta`: `current_rollout`, `last_good_commit`, `rollout_seq`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use convoy_shared::render::{HostState, Plan, plan};
use convoy_shared::repo::Repo;
use convoy_shared::source::Diagnostic;

use crate::rollout::{
    Action, DEFAULT_MARGIN_MS, HostPhase, Input, PlannedHost, Rollout, RolloutStatus, WaveState,
    step,
};

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("store: {context}: {source}")]
    Store {
        context: String,
        #[source]
        source: sled::Error,
    },
    #[error("corrupt record in {tree}/{key}: {source}")]
    Corrupt {
        tree: &'static str,
        key: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("no rollout is running")]
    NoRollout,
}

fn store(context: impl Into<String>) -> impl FnOnce(sled::Error) -> EngineError {
    let context = context.into();
    move |source| EngineError::Store { context, source }
}

/// What a host should run now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostDesired {
    pub revision: String,
    /// Monotonic per host; the agent refuses a lower one.
    pub generation: u64,
    pub commit: String,
    pub rollout_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitRecord {
    pub id: String,
    pub accepted: bool,
    pub problems: Vec<Diagnostic>,
    pub at_ms: u64,
    pub rollout_id: Option<String>,
}

/// Where the engine's decisions go: the agent gateway and the alerting.
pub trait Outlet: Send + Sync {
    /// Put the host's desired state on its stream now if it is connected
    /// (otherwise it gets it on connect through [`Engine::desired_for`]).
    fn deliver(&self, host: &str, desired: &HostDesired, state_json: &[u8]);
    /// A rollout event (audit log and alerts).
    fn event(&self, rollout: &Rollout, action: &Action);
}

#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    states: sled::Tree,
    host_desired: sled::Tree,
    commits: sled::Tree,
    rollouts: sled::Tree,
    meta: sled::Tree,
    db: sled::Db,
    outlet: Arc<dyn Outlet>,
    /// One step at a time (sled persists, this orders).
    lock: Mutex<()>,
    margin_ms: u64,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").finish_non_exhaustive()
    }
}

fn get_json<T: for<'de> Deserialize<'de>>(
    tree: &sled::Tree,
    name: &'static str,
    key: &str,
) -> Result<Option<T>, EngineError> {
    match tree
        .get(key)
        .map_err(store(format!("reading {name}/{key}")))?
    {
        Some(v) => serde_json::from_slice(&v)
            .map(Some)
            .map_err(|source| EngineError::Corrupt {
                tree: name,
                key: key.to_owned(),
                source,
            }),
        None => Ok(None),
    }
}

fn to_json<T: Serialize>(v: &T) -> Vec<u8> {
    // Our own plain data types: serialisation cannot fail.
    serde_json::to_vec(v).unwrap_or_default()
}

impl Engine {
    pub fn open(db: &sled::Db, outlet: Arc<dyn Outlet>) -> Result<Self, EngineError> {
        let t = |name: &str| {
            db.open_tree(name)
                .map_err(store(format!("opening tree {name}")))
        };
        Ok(Self {
            inner: Arc::new(Inner {
                states: t("states")?,
                host_desired: t("host_desired")?,
                commits: t("commits")?,
                rollouts: t("rollouts")?,
                meta: t("meta")?,
                db: db.clone(),
                outlet,
                lock: Mutex::new(()),
                margin_ms: DEFAULT_MARGIN_MS,
            }),
        })
    }

    /// For tests: a smaller margin past the stack deadlines.
    pub fn with_margin_ms(self, margin_ms: u64) -> Self {
        match Arc::try_unwrap(self.inner) {
            Ok(mut inner) => {
                inner.margin_ms = margin_ms;
                Self {
                    inner: Arc::new(inner),
                }
            }
            Err(inner) => Self { inner },
        }
    }

    fn meta_str(&self, key: &str) -> Result<Option<String>, EngineError> {
        Ok(self
            .inner
            .meta
            .get(key)
            .map_err(store(format!("reading meta/{key}")))?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    pub fn last_good_commit(&self) -> Result<Option<String>, EngineError> {
        self.meta_str("last_good_commit")
    }

    pub fn commit(&self, id: &str) -> Result<Option<CommitRecord>, EngineError> {
        get_json(&self.inner.commits, "commits", id)
    }

    pub fn current_rollout(&self) -> Result<Option<Rollout>, EngineError> {
        match self.meta_str("current_rollout")? {
            Some(id) => self.rollout(&id),
            None => Ok(None),
        }
    }

    pub fn rollout(&self, id: &str) -> Result<Option<Rollout>, EngineError> {
        get_json(&self.inner.rollouts, "rollouts", id)
    }

    /// Rollouts, newest first.
    pub fn rollouts(&self, limit: usize) -> Result<Vec<Rollout>, EngineError> {
        let mut out = Vec::new();
        for item in self.inner.rollouts.iter().rev() {
            let (k, v) = item.map_err(store("listing rollouts"))?;
            match serde_json::from_slice::<Rollout>(&v) {
                Ok(r) => out.push(r),
                Err(source) => {
                    return Err(EngineError::Corrupt {
                        tree: "rollouts",
                        key: String::from_utf8_lossy(&k).into_owned(),
                        source,
                    });
                }
            }
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    /// What `host` should run now, with the state JSON.
    pub fn desired_for(&self, host: &str) -> Result<Option<(HostDesired, Vec<u8>)>, EngineError> {
        let Some(d): Option<HostDesired> =
            get_json(&self.inner.host_desired, "host_desired", host)?
        else {
            return Ok(None);
        };
        let state = self
            .inner
            .states
            .get(state_key(host, &d.revision))
            .map_err(store("reading a state"))?;
        Ok(state.map(|s| (d, s.to_vec())))
    }

    /// Records a commit that failed validation: nothing is rolled out and
    /// the fleet stays on the last good commit.
    pub fn reject_commit(
        &self,
        commit: &str,
        problems: Vec<Diagnostic>,
        now_ms: u64,
    ) -> Result<bool, EngineError> {
        let _g = self.inner.lock.lock().unwrap_or_else(|e| e.into_inner());
        if self.commit(commit)?.is_some() {
            return Ok(false);
        }
        let rec = CommitRecord {
            id: commit.to_owned(),
            accepted: false,
            problems,
            at_ms: now_ms,
            rollout_id: None,
        };
        self.inner
            .commits
            .insert(commit, to_json(&rec))
            .map_err(store("recording a rejected commit"))?;
        self.flush()?;
        Ok(true)
    }

    /// Starts a rollout for a valid commit (superseding a running one).
    /// Returns None if this commit was seen before.
    pub fn accept_commit(
        &self,
        commit: &str,
        repo: &Repo,
        now_ms: u64,
    ) -> Result<Option<String>, EngineError> {
        let _g = self.inner.lock.lock().unwrap_or_else(|e| e.into_inner());
        if self.commit(commit)?.is_some() {
            return Ok(None);
        }
        let p: Plan = plan(repo);
        let seq = self
            .inner
            .meta
            .update_and_fetch("rollout_seq", |old| {
                let n = old
                    .and_then(|o| <[u8; 8]>::try_from(o).ok())
                    .map_or(0, u64::from_be_bytes);
                Some((n + 1).to_be_bytes().to_vec())
            })
            .map_err(store("allocating a rollout id"))?
            .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
            .map_or(1, u64::from_be_bytes);
        // Sortable ids: newest last in the tree.
        let id = format!("r{seq:08}");
        let wave_of: BTreeMap<&str, usize> = p
            .waves
            .iter()
            .enumerate()
            .flat_map(|(i, w)| w.hosts.iter().map(move |h| (h.as_str(), i)))
            .collect();
        let mut hosts = Vec::new();
        for (name, state) in &p.hosts {
            let Some(wave) = wave_of.get(name.as_str()).copied() else {
                continue;
            };
            self.inner
                .states
                .insert(state_key(name, &state.revision), to_json(state))
                .map_err(store("storing a rendered state"))?;
            let previous: Option<HostDesired> =
                get_json(&self.inner.host_desired, "host_desired", name)?;
            hosts.push(PlannedHost {
                name: name.clone(),
                wave,
                target_revision: state.revision.clone(),
                previous_revision: previous.map(|d| d.revision),
                budget_ms: budget_ms(state, self.inner.margin_ms),
            });
        }
        let waves = p
            .waves
            .iter()
            .map(|w| WaveState {
                name: w.name.clone(),
                max_parallel: w.max_parallel,
                approval: w.approval,
                approved: false,
            })
            .collect();
        let rollout = Rollout::new(
            id.clone(),
            commit.to_owned(),
            now_ms,
            repo.fleet.rollout.on_failure,
            waves,
            hosts,
        );
        // Supersede the running rollout first (persisted), then start ours.
        if let Some(cur) = self.current_rollout()?
            && !cur.status.is_final()
        {
            self.apply_locked(&cur, &Input::Supersede { by: id.clone() }, now_ms)?;
        }
        let rec = CommitRecord {
            id: commit.to_owned(),
            accepted: true,
            problems: repo.warnings.0.clone(),
            at_ms: now_ms,
            rollout_id: Some(id.clone()),
        };
        self.inner
            .commits
            .insert(commit, to_json(&rec))
            .map_err(store("recording the commit"))?;
        self.inner
            .meta
            .insert("last_good_commit", commit.as_bytes())
            .map_err(store("recording the last good commit"))?;
        self.inner
            .meta
            .insert("current_rollout", id.as_bytes())
            .map_err(store("recording the current rollout"))?;
        self.inner
            .rollouts
            .insert(id.as_bytes(), to_json(&rollout))
            .map_err(store("storing the rollout"))?;
        self.flush()?;
        self.apply_locked(&rollout, &Input::Tick, now_ms)?;
        Ok(Some(id))
    }

    /// Feeds one input to the current rollout.
    pub fn input(&self, input: &Input, now_ms: u64) -> Result<Option<Rollout>, EngineError> {
        let _g = self.inner.lock.lock().unwrap_or_else(|e| e.into_inner());
        let Some(cur) = self.current_rollout()? else {
            return Ok(None);
        };
        self.apply_locked(&cur, input, now_ms).map(Some)
    }

    /// `convoy promote`.
    pub fn promote(&self, now_ms: u64) -> Result<Rollout, EngineError> {
        self.input(&Input::Promote, now_ms)?
            .ok_or(EngineError::NoRollout)
    }

    /// After a restart: re-deliver what hosts in flight should have (the
    /// gateway dedups by generation), then tick.
    pub fn resume(&self, now_ms: u64) -> Result<(), EngineError> {
        let _g = self.inner.lock.lock().unwrap_or_else(|e| e.into_inner());
        let Some(cur) = self.current_rollout()? else {
            return Ok(());
        };
        for (host, h) in &cur.hosts {
            if matches!(
                h.phase,
                HostPhase::Sent | HostPhase::Delivered { .. } | HostPhase::Reverting
            ) && let Some((d, json)) = self.desired_for(host)?
            {
                self.inner.outlet.deliver(host, &d, &json);
            }
        }
        self.apply_locked(&cur, &Input::Tick, now_ms)?;
        Ok(())
    }

    fn flush(&self) -> Result<(), EngineError> {
        self.inner.db.flush().map_err(store("flushing")).map(|_| ())
    }

    /// Steps, persists (state + host assignments, flushed), then acts.
    fn apply_locked(
        &self,
        cur: &Rollout,
        input: &Input,
        now_ms: u64,
    ) -> Result<Rollout, EngineError> {
        let (next, actions) = step(cur, input, now_ms);
        if next == *cur && actions.is_empty() {
            return Ok(next);
        }
        // Assignments first, so a crash after persisting the rollout never
        // leaves a Sent host without its desired state.
        let mut deliveries = Vec::new();
        for a in &actions {
            let (host, revision) = match a {
                Action::SendTarget { host, revision } => (host, Some(revision.clone())),
                Action::SendPrevious { host, revision } => (host, revision.clone()),
                Action::Event { .. } => continue,
            };
            let Some(revision) = revision else {
                // The host had nothing from us before: it keeps what it
                // restored on its own (nothing to send back).
                continue;
            };
            let prev: Option<HostDesired> =
                get_json(&self.inner.host_desired, "host_desired", host)?;
            let d = HostDesired {
                revision,
                generation: prev.map_or(1, |p| p.generation + 1),
                commit: next.commit.clone(),
                rollout_id: next.id.clone(),
            };
            self.inner
                .host_desired
                .insert(host.as_bytes(), to_json(&d))
                .map_err(store("assigning a desired state"))?;
            deliveries.push((host.clone(), d));
        }
        self.inner
            .rollouts
            .insert(next.id.as_bytes(), to_json(&next))
            .map_err(store("persisting the rollout"))?;
        self.flush()?;
        for (host, d) in deliveries {
            if let Some(json) = self
                .inner
                .states
                .get(state_key(&host, &d.revision))
                .map_err(store("reading a state"))?
            {
                self.inner.outlet.deliver(&host, &d, &json);
            }
        }
        for a in &actions {
            if let Action::Event { .. } = a {
                self.inner.outlet.event(&next, a);
            }
        }
        Ok(next)
    }
}

fn state_key(host: &str, revision: &str) -> Vec<u8> {
    format!("{host}/{revision}").into_bytes()
}

/// A host's time budget: the sum of its stacks' deadlines (they apply one
/// after another) plus the margin.
pub fn budget_ms(state: &HostState, margin_ms: u64) -> u64 {
    state
        .stacks
        .iter()
        .map(|s| u64::try_from(s.health.deadline.as_millis()).unwrap_or(u64::MAX))
        .fold(margin_ms, u64::saturating_add)
}

/// Status of a rollout for display.
pub fn describe(r: &Rollout) -> String {
    match &r.status {
        RolloutStatus::Running => "running".into(),
        RolloutStatus::WaitingApproval => "waiting for approval (convoy promote)".into(),
        RolloutStatus::Completed => "completed".into(),
        RolloutStatus::Halted { host, reason } => format!("halted: {host}: {reason}"),
        RolloutStatus::RollingBack { host, reason } => format!("rolling back: {host}: {reason}"),
        RolloutStatus::RolledBack { host, reason } => format!("rolled back: {host}: {reason}"),
        RolloutStatus::Superseded { by } => format!("superseded by {by}"),
    }
}
