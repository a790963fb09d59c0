//! The rollout engine: turns accepted commits into rollouts and drives the
//! pure step function ([`super::step::step`]), writing every transition to
//! the [`RolloutStore`] *before* it is acted on. After a `kill -9` the
//! engine finds the running rollout where it was and re-delivers what the
//! last persisted state says hosts should have (every delivery is
//! idempotent: keyed by host and generation).
//!
//! The engine decides and persists; it does not deliver. Each call returns
//! the [`Effects`] of its steps once they are durable, for the caller (the
//! dispatcher) to route.
//!
//! Scale: the current rollout is kept in memory (one engine per store), and
//! a step writes only its header, the hosts whose phase changed, the new
//! history entries and its host assignments, in one store change; a
//! 10k-host rollout does not re-serialise every host on every report. Making
//! a step durable waits after the engine lock is released and is shared by
//! every step written meanwhile ([`RolloutStore::wait_durable`]); a step's
//! effects are returned only once its own writes are durable.

use std::sync::{Arc, Mutex, MutexGuard};

use convoy_shared::render::plan;
use convoy_shared::repo::Repo;
use convoy_shared::source::Diagnostic;

use super::plan::new_rollout;
use super::step::{
    Action, DEFAULT_MARGIN_MS, EventKind, HostPhase, HostRollout, Input, Rollout, RolloutStatus,
    step,
};
use crate::store::{CommitRecord, HostDesired, RolloutStep, RolloutStore, StoreError, Ticket};

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("rollout store")]
    Store(#[from] StoreError),
    #[error("no rollout is running")]
    NoRollout,
}

/// What a persisted step asks the rest of the control plane to do, in
/// order: put desired states on hosts' streams, record and alert on
/// events. Returned only once the step is durable; routing it is the
/// caller's job (the engine holds no handle on the gateway or the alerts).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
#[must_use = "a step's deliveries and events must be routed"]
pub struct Effects {
    pub deliveries: Vec<Delivery>,
    pub events: Vec<RolloutEvent>,
}

impl Effects {
    pub fn is_empty(&self) -> bool {
        self.deliveries.is_empty() && self.events.is_empty()
    }

    fn extend(&mut self, other: Effects) {
        self.deliveries.extend(other.deliveries);
        self.events.extend(other.events);
    }
}

/// A desired state to put on a host's stream now if it is connected
/// (otherwise it gets it on connect through [`Engine::desired_for`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub host: String,
    pub desired: HostDesired,
    pub state_json: Vec<u8>,
}

/// A rollout event, for the audit log and alerts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolloutEvent {
    pub rollout: String,
    pub commit: String,
    pub kind: EventKind,
    pub host: Option<String>,
    pub message: String,
}

/// A rollout a new commit started, with what starting it decided.
#[derive(Debug)]
pub struct Started {
    pub id: String,
    pub effects: Effects,
}

#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").finish_non_exhaustive()
    }
}

struct Inner {
    store: Arc<dyn RolloutStore>,
    /// One step at a time (the store persists, this orders); holds the
    /// current rollout.
    lock: Mutex<Cached>,
    margin_ms: u64,
}

/// The current rollout as last persisted.
#[derive(Default)]
struct Cached {
    loaded: bool,
    current: Option<Arc<Rollout>>,
}

/// What a persisted step still has to do once it is durable.
struct Pending {
    rollout: Arc<Rollout>,
    deliveries: Vec<(String, HostDesired)>,
    events: Vec<Action>,
    ticket: Ticket,
}

impl Engine {
    pub fn new(store: Arc<dyn RolloutStore>) -> Engine {
        Engine {
            inner: Arc::new(Inner {
                store,
                lock: Mutex::new(Cached::default()),
                margin_ms: DEFAULT_MARGIN_MS,
            }),
        }
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

    fn store(&self) -> &dyn RolloutStore {
        &*self.inner.store
    }

    pub fn last_good_commit(&self) -> Result<Option<String>, EngineError> {
        Ok(self.store().last_good_commit()?)
    }

    pub fn commit(&self, id: &str) -> Result<Option<CommitRecord>, EngineError> {
        Ok(self.store().commit(id)?)
    }

    pub fn current_rollout(&self) -> Result<Option<Rollout>, EngineError> {
        let mut c = self.locked();
        Ok(self.current_locked(&mut c)?.map(|r| (*r).clone()))
    }

    fn locked(&self) -> MutexGuard<'_, Cached> {
        self.inner.lock.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The current rollout, loaded from the store on first use.
    fn current_locked(&self, c: &mut Cached) -> Result<Option<Arc<Rollout>>, EngineError> {
        if !c.loaded {
            c.current = match self.store().current_rollout_id()? {
                Some(id) => self.store().rollout(&id)?.map(Arc::new),
                None => None,
            };
            c.loaded = true;
        }
        Ok(c.current.clone())
    }

    pub fn rollout(&self, id: &str) -> Result<Option<Rollout>, EngineError> {
        Ok(self.store().rollout(id)?)
    }

    /// Rollouts, newest first.
    pub fn rollouts(&self, limit: usize) -> Result<Vec<Rollout>, EngineError> {
        Ok(self.store().rollouts(limit)?)
    }

    /// The statuses of the newest `limit` rollouts, newest first, read
    /// without their host records (cheap at any fleet size).
    pub fn recent_statuses(&self, limit: usize) -> Result<Vec<RolloutStatus>, EngineError> {
        Ok(self.store().rollout_statuses(limit)?)
    }

    /// What `host` should run now, with the state JSON.
    pub fn desired_for(&self, host: &str) -> Result<Option<(HostDesired, Vec<u8>)>, EngineError> {
        let Some(d) = self.store().host_desired(host)? else {
            return Ok(None);
        };
        Ok(self
            .store()
            .rendered_state(host, &d.revision)?
            .map(|s| (d, s)))
    }

    /// Records a commit that failed validation: nothing is rolled out and
    /// the fleet stays on the last good commit. False if the commit was
    /// decided on before.
    pub fn reject_commit(
        &self,
        commit: &str,
        problems: Vec<Diagnostic>,
        now_ms: u64,
    ) -> Result<bool, EngineError> {
        let _g = self.locked();
        if self.store().commit(commit)?.is_some() {
            return Ok(false);
        }
        self.store().put_commit(&CommitRecord {
            id: commit.to_owned(),
            accepted: false,
            problems,
            at_ms: now_ms,
            rollout_id: None,
        })?;
        Ok(true)
    }

    /// Starts a rollout for a valid commit (superseding a running one).
    /// Returns None if this commit was seen before.
    pub fn accept_commit(
        &self,
        commit: &str,
        repo: &Repo,
        now_ms: u64,
    ) -> Result<Option<Started>, EngineError> {
        let mut c = self.locked();
        if self.store().commit(commit)?.is_some() {
            return Ok(None);
        }
        let p = plan(repo);
        // Sortable ids: newest last.
        let id = format!("r{:08}", self.store().next_rollout_seq()?);
        let mut previous = std::collections::BTreeMap::new();
        for name in p.hosts.keys() {
            if let Some(d) = self.store().host_desired(name)? {
                previous.insert(name.clone(), d.revision);
            }
        }
        let rollout = new_rollout(
            id.clone(),
            commit,
            repo,
            &p,
            |h| previous.get(h).cloned(),
            self.inner.margin_ms,
            now_ms,
        );
        // The states of the rollout's hosts, before the rollout that names
        // them (made durable with it).
        for (name, h) in &rollout.hosts {
            if let Some(state) = p.hosts.get(name) {
                self.store()
                    .put_rendered_state(name, &h.target_revision, &to_json(state))?;
            }
        }
        // Supersede the running rollout first (persisted), then start ours.
        let mut pending = Vec::new();
        if let Some(cur) = self.current_locked(&mut c)?
            && !cur.status.is_final()
        {
            pending.extend(self.apply_locked(
                &mut c,
                &cur,
                &Input::Supersede { by: id.clone() },
                now_ms,
            )?);
        }
        let rec = CommitRecord {
            id: commit.to_owned(),
            accepted: true,
            problems: repo.warnings.0.clone(),
            at_ms: now_ms,
            rollout_id: Some(id.clone()),
        };
        let ticket = self.store().start_rollout(&rec, &rollout)?;
        self.store().wait_durable(ticket)?;
        let rollout = Arc::new(rollout);
        c.current = Some(rollout.clone());
        pending.extend(self.apply_locked(&mut c, &rollout, &Input::Tick, now_ms)?);
        drop(c);
        let mut effects = Effects::default();
        for p in pending {
            effects.extend(self.perform(p)?);
        }
        Ok(Some(Started { id, effects }))
    }

    /// Feeds one input to the current rollout; returns the rollout after
    /// it (None: no rollout yet) and what the step decided.
    pub fn input(
        &self,
        input: &Input,
        now_ms: u64,
    ) -> Result<(Option<Rollout>, Effects), EngineError> {
        let (r, effects) = self.step_current(input, now_ms)?;
        Ok((r.map(|r| (*r).clone()), effects))
    }

    /// [`Engine::input`] without a copy of the rollout (a 10k-host rollout
    /// is large): what every agent report goes through.
    pub fn feed(&self, input: &Input, now_ms: u64) -> Result<Effects, EngineError> {
        self.step_current(input, now_ms).map(|(_, e)| e)
    }

    fn step_current(
        &self,
        input: &Input,
        now_ms: u64,
    ) -> Result<(Option<Arc<Rollout>>, Effects), EngineError> {
        let mut c = self.locked();
        let Some(cur) = self.current_locked(&mut c)? else {
            return Ok((None, Effects::default()));
        };
        let pending = self.apply_locked(&mut c, &cur, input, now_ms)?;
        let now = c.current.clone();
        drop(c);
        let effects = match pending {
            Some(p) => self.perform(p)?,
            None => Effects::default(),
        };
        Ok((now, effects))
    }

    /// `convoy promote`.
    pub fn promote(&self, now_ms: u64) -> Result<(Rollout, Effects), EngineError> {
        match self.input(&Input::Promote, now_ms)? {
            (Some(r), effects) => Ok((r, effects)),
            (None, _) => Err(EngineError::NoRollout),
        }
    }

    /// After a restart: re-deliver what hosts in flight should have (the
    /// gateway dedups by generation), then tick.
    pub fn resume(&self, now_ms: u64) -> Result<Effects, EngineError> {
        let mut c = self.locked();
        let Some(cur) = self.current_locked(&mut c)? else {
            return Ok(Effects::default());
        };
        let mut effects = Effects::default();
        for (host, h) in &cur.hosts {
            if matches!(
                h.phase,
                HostPhase::Sent | HostPhase::Delivered { .. } | HostPhase::Reverting
            ) && let Some((desired, state_json)) = self.desired_for(host)?
            {
                effects.deliveries.push(Delivery {
                    host: host.clone(),
                    desired,
                    state_json,
                });
            }
        }
        let pending = self.apply_locked(&mut c, &cur, &Input::Tick, now_ms)?;
        drop(c);
        if let Some(p) = pending {
            effects.extend(self.perform(p)?);
        }
        Ok(effects)
    }

    /// Steps and writes the result (host assignments with the rollout's
    /// changes, one store change), not yet durable; updates the cached
    /// current rollout. The returned step must go through
    /// [`Engine::perform`] (which waits for durability first).
    fn apply_locked(
        &self,
        c: &mut Cached,
        cur: &Arc<Rollout>,
        input: &Input,
        now_ms: u64,
    ) -> Result<Option<Pending>, EngineError> {
        let (next, actions) = step(cur, input, now_ms);
        if actions.is_empty() && next == **cur {
            return Ok(None);
        }
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
            let prev = self.store().host_desired(host)?;
            deliveries.push((
                host.clone(),
                HostDesired {
                    revision,
                    generation: prev.map_or(1, |p| p.generation + 1),
                    commit: next.commit.clone(),
                    rollout_id: next.id.clone(),
                },
            ));
        }
        let changed: Vec<(&str, &HostRollout)> = next
            .hosts
            .iter()
            .filter(|(name, h)| cur.hosts.get(*name) != Some(*h))
            .map(|(name, h)| (name.as_str(), h))
            .collect();
        let from = cur.history.len().min(next.history.len());
        let ticket = self.store().write_step(&RolloutStep {
            rollout: &next,
            hosts: &changed,
            history: &next.history[from..],
            history_from: from,
            assignments: &deliveries,
        })?;
        let next = Arc::new(next);
        if c.current.as_ref().is_some_and(|r| r.id == next.id) {
            c.current = Some(next.clone());
        }
        let events = actions
            .into_iter()
            .filter(|a| matches!(a, Action::Event { .. }))
            .collect();
        Ok(Some(Pending {
            rollout: next,
            deliveries,
            events,
            ticket,
        }))
    }

    /// Makes a step durable (shared with every step written meanwhile),
    /// then says what it decided.
    fn perform(&self, p: Pending) -> Result<Effects, EngineError> {
        self.store().wait_durable(p.ticket)?;
        let mut effects = Effects::default();
        for (host, desired) in p.deliveries {
            if let Some(state_json) = self.store().rendered_state(&host, &desired.revision)? {
                effects.deliveries.push(Delivery {
                    host,
                    desired,
                    state_json,
                });
            }
        }
        for a in p.events {
            if let Action::Event {
                kind,
                host,
                message,
            } = a
            {
                effects.events.push(RolloutEvent {
                    rollout: p.rollout.id.clone(),
                    commit: p.rollout.commit.clone(),
                    kind,
                    host,
                    message,
                });
            }
        }
        Ok(effects)
    }
}

fn to_json<T: serde::Serialize>(v: &T) -> Vec<u8> {
    // Our own plain data types: serialisation cannot fail.
    serde_json::to_vec(v).unwrap_or_default()
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
