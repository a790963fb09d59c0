//! The rollout engine: turns accepted commits into rollouts and drives the
//! pure step function ([`super::step::step`]), persisting every
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
//! - `rollouts`: rollout id → the rollout's header (a [`Rollout`] whose
//!   `hosts` and `history` are empty; records written before the split hold
//!   the whole rollout and are still read);
//! - `rollout_hosts`: `<rollout id>/<host>` → [`HostRollout`];
//! - `rollout_history`: `<rollout id>/<index, u64 BE>` → [`HistoryEntry`];
//! - `meta`: `current_rollout`, `last_good_commit`, `rollout_seq`.
//!
//! Scale: the current rollout is kept in memory (one engine per store), and
//! a step writes only its header, the hosts whose phase changed and the new
//! history entries, in one sled transaction; a 10k-host rollout no longer
//! re-serialises every host on every report. The flush that makes a step
//! durable runs after the engine lock is released and is shared by every
//! step written meanwhile ([`crate::store::GroupFlush`]); a step's actions
//! still run only once its own writes are flushed.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use sled::Transactional;

use serde::{Deserialize, Serialize};

use convoy_shared::render::{HostState, Plan, plan};
use convoy_shared::repo::Repo;
use convoy_shared::source::Diagnostic;

use super::step::{
    Action, DEFAULT_MARGIN_MS, EventKind, HistoryEntry, HostPhase, HostRollout, Input, PlannedHost,
    Rollout, RolloutStatus, WaveState, step,
};
use crate::store::GroupFlush;

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

struct Inner {
    states: sled::Tree,
    host_desired: sled::Tree,
    commits: sled::Tree,
    rollouts: sled::Tree,
    rollout_hosts: sled::Tree,
    rollout_history: sled::Tree,
    meta: sled::Tree,
    db: sled::Db,
    /// One step at a time (sled persists, this orders); holds the current
    /// rollout.
    lock: Mutex<Cached>,
    flusher: GroupFlush,
    margin_ms: u64,
}

/// The current rollout as last persisted.
#[derive(Default)]
struct Cached {
    loaded: bool,
    current: Option<Arc<Rollout>>,
    /// Loaded from a record that holds the whole rollout: the next write
    /// writes every host.
    write_all: bool,
}

/// What a persisted step still has to do once it is flushed.
struct Pending {
    rollout: Arc<Rollout>,
    deliveries: Vec<(String, HostDesired)>,
    events: Vec<Action>,
    written: u64,
}

/// A rollout's header as stored: everything but hosts and history.
#[derive(Serialize)]
struct HeaderRef<'a> {
    id: &'a str,
    commit: &'a str,
    created_ms: u64,
    on_failure: &'a convoy_shared::fleet::OnFailure,
    waves: &'a [WaveState],
    current_wave: usize,
    hosts: BTreeMap<String, HostRollout>,
    status: &'a RolloutStatus,
    history: &'a [HistoryEntry],
}

fn host_key(id: &str, host: &str) -> Vec<u8> {
    format!("{id}/{host}").into_bytes()
}

fn history_key(id: &str, index: usize) -> Vec<u8> {
    let mut k = format!("{id}/").into_bytes();
    k.extend_from_slice(&(index as u64).to_be_bytes());
    k
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
    pub fn open(db: &sled::Db) -> Result<Self, EngineError> {
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
                rollout_hosts: t("rollout_hosts")?,
                rollout_history: t("rollout_history")?,
                meta: t("meta")?,
                db: db.clone(),
                lock: Mutex::new(Cached::default()),
                flusher: GroupFlush::default(),
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
        let mut c = self.locked();
        Ok(self.current_locked(&mut c)?.map(|r| (*r).clone()))
    }

    fn locked(&self) -> MutexGuard<'_, Cached> {
        self.inner.lock.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The current rollout, loaded from sled on first use.
    fn current_locked(&self, c: &mut Cached) -> Result<Option<Arc<Rollout>>, EngineError> {
        if !c.loaded {
            let loaded = match self.meta_str("current_rollout")? {
                Some(id) => self.load(&id)?,
                None => None,
            };
            c.write_all = loaded.as_ref().is_some_and(|(_, whole)| *whole);
            c.current = loaded.map(|(r, _)| Arc::new(r));
            c.loaded = true;
        }
        Ok(c.current.clone())
    }

    pub fn rollout(&self, id: &str) -> Result<Option<Rollout>, EngineError> {
        Ok(self.load(id)?.map(|(r, _)| r))
    }

    /// Reads a rollout: its header plus its host and history records.
    /// The flag: the header held the whole rollout (written before the
    /// split).
    fn load(&self, id: &str) -> Result<Option<(Rollout, bool)>, EngineError> {
        let Some(mut r): Option<Rollout> = get_json(&self.inner.rollouts, "rollouts", id)? else {
            return Ok(None);
        };
        let whole = !r.hosts.is_empty();
        let prefix = format!("{id}/");
        for kv in self.inner.rollout_hosts.scan_prefix(prefix.as_bytes()) {
            let (k, v) = kv.map_err(store("reading rollout hosts"))?;
            let host = String::from_utf8_lossy(&k[prefix.len()..]).into_owned();
            let h: HostRollout =
                serde_json::from_slice(&v).map_err(|source| EngineError::Corrupt {
                    tree: "rollout_hosts",
                    key: format!("{id}/{host}"),
                    source,
                })?;
            r.hosts.insert(host, h);
        }
        for kv in self.inner.rollout_history.scan_prefix(prefix.as_bytes()) {
            let (_, v) = kv.map_err(store("reading rollout history"))?;
            let e: HistoryEntry =
                serde_json::from_slice(&v).map_err(|source| EngineError::Corrupt {
                    tree: "rollout_history",
                    key: id.to_owned(),
                    source,
                })?;
            r.history.push(e);
        }
        Ok(Some((r, whole)))
    }

    /// Rollouts, newest first.
    pub fn rollouts(&self, limit: usize) -> Result<Vec<Rollout>, EngineError> {
        let mut out = Vec::new();
        for item in self.inner.rollouts.iter().rev() {
            let (k, _) = item.map_err(store("listing rollouts"))?;
            if let Some((r, _)) = self.load(&String::from_utf8_lossy(&k))? {
                out.push(r);
            }
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    /// The statuses of the newest `limit` rollouts, newest first, read
    /// from their headers only (no host records: cheap at any fleet size).
    pub fn recent_statuses(&self, limit: usize) -> Result<Vec<RolloutStatus>, EngineError> {
        #[derive(Deserialize)]
        struct StatusOnly {
            status: RolloutStatus,
        }
        let mut out = Vec::new();
        for item in self.inner.rollouts.iter().rev().take(limit) {
            let (k, v) = item.map_err(store("listing rollouts"))?;
            let h: StatusOnly =
                serde_json::from_slice(&v).map_err(|source| EngineError::Corrupt {
                    tree: "rollouts",
                    key: String::from_utf8_lossy(&k).into_owned(),
                    source,
                })?;
            out.push(h.status);
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
        let _g = self.locked();
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
    ) -> Result<Option<Started>, EngineError> {
        let mut c = self.locked();
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
        self.persist(None, &rollout)?;
        self.flush()?;
        let rollout = Arc::new(rollout);
        c.current = Some(rollout.clone());
        c.write_all = false;
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

    fn flush(&self) -> Result<(), EngineError> {
        self.inner.db.flush().map_err(store("flushing")).map(|_| ())
    }

    /// Steps and writes the result (host assignments, then the rollout),
    /// not yet flushed; updates the cached current rollout. The returned
    /// effects must go through [`Engine::perform`] (which flushes first).
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
        let same_rollout = cur.id == next.id && !c.write_all;
        self.persist(same_rollout.then_some(&**cur), &next)?;
        let written = self.inner.flusher.wrote();
        let next = Arc::new(next);
        if c.current.as_ref().is_some_and(|r| r.id == next.id) {
            c.current = Some(next.clone());
            c.write_all = false;
        }
        let events = actions
            .into_iter()
            .filter(|a| matches!(a, Action::Event { .. }))
            .collect();
        Ok(Some(Pending {
            rollout: next,
            deliveries,
            events,
            written,
        }))
    }

    /// Writes `next` in one transaction: its header, the hosts that differ
    /// from `prev` (all of them without `prev`) and the history entries
    /// past `prev`'s.
    fn persist(&self, prev: Option<&Rollout>, next: &Rollout) -> Result<(), EngineError> {
        let id = next.id.as_str();
        let mut hosts = sled::Batch::default();
        for (name, h) in &next.hosts {
            if prev.and_then(|p| p.hosts.get(name)) != Some(h) {
                hosts.insert(host_key(id, name), to_json(h));
            }
        }
        let mut history = sled::Batch::default();
        let from = prev.map_or(0, |p| p.history.len().min(next.history.len()));
        for (i, e) in next.history.iter().enumerate().skip(from) {
            history.insert(history_key(id, i), to_json(e));
        }
        let header = to_json(&HeaderRef {
            id,
            commit: &next.commit,
            created_ms: next.created_ms,
            on_failure: &next.on_failure,
            waves: &next.waves,
            current_wave: next.current_wave,
            hosts: BTreeMap::new(),
            status: &next.status,
            history: &[],
        });
        let inner = &self.inner;
        (
            &inner.rollouts,
            &inner.rollout_hosts,
            &inner.rollout_history,
        )
            .transaction(|(r, h, e)| {
                h.apply_batch(&hosts)?;
                e.apply_batch(&history)?;
                r.insert(id.as_bytes(), header.as_slice())?;
                Ok::<_, sled::transaction::ConflictableTransactionError<()>>(())
            })
            .map_err(|e| match e {
                sled::transaction::TransactionError::Storage(source) => EngineError::Store {
                    context: "persisting the rollout".into(),
                    source,
                },
                sled::transaction::TransactionError::Abort(()) => EngineError::Store {
                    context: "persisting the rollout".into(),
                    source: sled::Error::ReportableBug("transaction aborted".into()),
                },
            })
    }

    /// Makes a step durable (one flush shared with every step written
    /// meanwhile), then says what it decided.
    fn perform(&self, p: Pending) -> Result<Effects, EngineError> {
        self.inner
            .flusher
            .flush_to(&self.inner.db, p.written)
            .map_err(store("flushing"))?;
        let mut effects = Effects::default();
        for (host, desired) in p.deliveries {
            if let Some(json) = self
                .inner
                .states
                .get(state_key(&host, &desired.revision))
                .map_err(store("reading a state"))?
            {
                effects.deliveries.push(Delivery {
                    host,
                    desired,
                    state_json: json.to_vec(),
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
