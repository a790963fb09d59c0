//! The rollout records in sled.
//!
//! Trees:
//! - `states`: `<host>/<host revision>` → HostState JSON (written once per
//!   host and revision, shared by every commit that renders the same state);
//! - `host_desired`: host → [`HostDesired`] (what the host should run now);
//! - `commits`: commit id → [`CommitRecord`] (accepted or rejected, problems);
//! - `rollouts`: rollout id → the rollout's header (a [`Rollout`] whose
//!   `hosts` and `history` are empty);
//! - `rollout_hosts`: `<rollout id>/<host>` → [`HostRollout`];
//! - `rollout_history`: `<rollout id>/<index, u64 BE>` → [`HistoryEntry`];
//! - `meta`: `current_rollout`, `last_good_commit`, `rollout_seq`.
//!
//! Headers written before hosts and history had their own trees hold the
//! whole rollout; [`SledStore::open`] splits them once.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sled::Transactional;
use sled::transaction::ConflictableTransactionError;

use super::{SledStore, backend, decode, encode, get, tx_error};
use crate::rollout::step::{HistoryEntry, HostRollout, Rollout, RolloutStatus, WaveState};
use crate::store::{
    CommitRecord, HostDesired, Result, RolloutStep, RolloutStore, StoreError, Ticket,
};

#[derive(Clone)]
pub(super) struct Trees {
    pub(super) states: sled::Tree,
    pub(super) host_desired: sled::Tree,
    pub(super) commits: sled::Tree,
    pub(super) rollouts: sled::Tree,
    pub(super) rollout_hosts: sled::Tree,
    pub(super) rollout_history: sled::Tree,
    pub(super) meta: sled::Tree,
}

impl Trees {
    pub(super) fn open(db: &sled::Db) -> Result<Trees> {
        let t = |name: &'static str| db.open_tree(name).map_err(backend("open tree"));
        Ok(Trees {
            states: t("states")?,
            host_desired: t("host_desired")?,
            commits: t("commits")?,
            rollouts: t("rollouts")?,
            rollout_hosts: t("rollout_hosts")?,
            rollout_history: t("rollout_history")?,
            meta: t("meta")?,
        })
    }
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

fn header(r: &Rollout) -> Result<Vec<u8>> {
    encode(
        "rollouts",
        &HeaderRef {
            id: &r.id,
            commit: &r.commit,
            created_ms: r.created_ms,
            on_failure: &r.on_failure,
            waves: &r.waves,
            current_wave: r.current_wave,
            hosts: BTreeMap::new(),
            status: &r.status,
            history: &[],
        },
    )
}

fn host_key(id: &str, host: &str) -> Vec<u8> {
    format!("{id}/{host}").into_bytes()
}

fn history_key(id: &str, index: usize) -> Vec<u8> {
    let mut k = format!("{id}/").into_bytes();
    k.extend_from_slice(&(index as u64).to_be_bytes());
    k
}

fn state_key(host: &str, revision: &str) -> Vec<u8> {
    format!("{host}/{revision}").into_bytes()
}

type TxResult = std::result::Result<(), ConflictableTransactionError<StoreError>>;

/// The encoded writes of one rollout change.
struct Writes {
    header: Vec<u8>,
    hosts: sled::Batch,
    history: sled::Batch,
    assignments: sled::Batch,
}

fn writes(step: &RolloutStep<'_>) -> Result<Writes> {
    let id = step.rollout.id.as_str();
    let mut hosts = sled::Batch::default();
    for (name, h) in step.hosts {
        hosts.insert(host_key(id, name), encode("rollout_hosts", h)?);
    }
    let mut history = sled::Batch::default();
    for (i, e) in step.history.iter().enumerate() {
        history.insert(
            history_key(id, step.history_from + i),
            encode("rollout_history", e)?,
        );
    }
    let mut assignments = sled::Batch::default();
    for (host, d) in step.assignments {
        assignments.insert(host.as_bytes(), encode("host_desired", d)?);
    }
    Ok(Writes {
        header: header(step.rollout)?,
        hosts,
        history,
        assignments,
    })
}

impl SledStore {
    /// Reads a rollout: its header plus its host and history records.
    fn load_rollout(&self, id: &str) -> Result<Option<Rollout>> {
        let t = &self.rollouts;
        let Some(mut r): Option<Rollout> = get(&t.rollouts, "rollouts", id)? else {
            return Ok(None);
        };
        let prefix = format!("{id}/");
        for kv in t.rollout_hosts.scan_prefix(prefix.as_bytes()) {
            let (k, v) = kv.map_err(backend("reading rollout hosts"))?;
            let host = String::from_utf8_lossy(&k[prefix.len()..]).into_owned();
            let h: HostRollout = decode("rollout_hosts", &k, &v)?;
            r.hosts.insert(host, h);
        }
        // A header from before the split already holds its history.
        if r.history.is_empty() {
            for kv in t.rollout_history.scan_prefix(prefix.as_bytes()) {
                let (k, v) = kv.map_err(backend("reading rollout history"))?;
                r.history.push(decode("rollout_history", &k, &v)?);
            }
        }
        Ok(Some(r))
    }

    /// Splits headers written before hosts and history had their own trees
    /// (one transaction each; a no-op once done).
    pub(super) fn upgrade_rollouts(&self) -> Result<()> {
        let mut whole = Vec::new();
        for kv in self.rollouts.rollouts.iter() {
            let (k, v) = kv.map_err(backend("scanning rollouts"))?;
            let r: Rollout = decode("rollouts", &k, &v)?;
            if !r.hosts.is_empty() || !r.history.is_empty() {
                whole.push(r);
            }
        }
        for r in whole {
            let hosts: Vec<(&str, &HostRollout)> =
                r.hosts.iter().map(|(n, h)| (n.as_str(), h)).collect();
            let w = writes(&RolloutStep {
                rollout: &r,
                hosts: &hosts,
                history: &r.history,
                history_from: 0,
                assignments: &[],
            })?;
            self.apply(&w, &r.id)?;
            tracing::info!(rollout = %r.id, hosts = hosts.len(), "rollout record split into per-host records");
        }
        self.flush()
    }

    fn apply(&self, w: &Writes, id: &str) -> Result<()> {
        let t = &self.rollouts;
        (
            &t.rollouts,
            &t.rollout_hosts,
            &t.rollout_history,
            &t.host_desired,
        )
            .transaction(|(r, h, e, d)| {
                d.apply_batch(&w.assignments)?;
                h.apply_batch(&w.hosts)?;
                e.apply_batch(&w.history)?;
                r.insert(id.as_bytes(), w.header.as_slice())?;
                Ok::<_, ConflictableTransactionError<StoreError>>(())
            })
            .map_err(tx_error("persisting the rollout"))
    }
}

impl RolloutStore for SledStore {
    fn commit(&self, id: &str) -> Result<Option<CommitRecord>> {
        get(&self.rollouts.commits, "commits", id)
    }

    fn put_commit(&self, rec: &CommitRecord) -> Result<()> {
        self.rollouts
            .commits
            .insert(rec.id.as_bytes(), encode("commits", rec)?)
            .map_err(backend("recording a commit"))?;
        self.flush()
    }

    fn last_good_commit(&self) -> Result<Option<String>> {
        meta_str(&self.rollouts.meta, "last_good_commit")
    }

    fn put_rendered_state(&self, host: &str, revision: &str, state_json: &[u8]) -> Result<()> {
        self.rollouts
            .states
            .insert(state_key(host, revision), state_json)
            .map_err(backend("storing a rendered state"))?;
        Ok(())
    }

    fn rendered_state(&self, host: &str, revision: &str) -> Result<Option<Vec<u8>>> {
        Ok(self
            .rollouts
            .states
            .get(state_key(host, revision))
            .map_err(backend("reading a state"))?
            .map(|v| v.to_vec()))
    }

    fn host_desired(&self, host: &str) -> Result<Option<HostDesired>> {
        get(&self.rollouts.host_desired, "host_desired", host)
    }

    fn next_rollout_seq(&self) -> Result<u64> {
        Ok(self
            .rollouts
            .meta
            .update_and_fetch("rollout_seq", |old| {
                let n = old
                    .and_then(|o| <[u8; 8]>::try_from(o).ok())
                    .map_or(0, u64::from_be_bytes);
                Some((n + 1).to_be_bytes().to_vec())
            })
            .map_err(backend("allocating a rollout id"))?
            .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
            .map_or(1, u64::from_be_bytes))
    }

    fn current_rollout_id(&self) -> Result<Option<String>> {
        meta_str(&self.rollouts.meta, "current_rollout")
    }

    fn start_rollout(&self, commit: &CommitRecord, rollout: &Rollout) -> Result<Ticket> {
        let hosts: Vec<(&str, &HostRollout)> =
            rollout.hosts.iter().map(|(n, h)| (n.as_str(), h)).collect();
        let w = writes(&RolloutStep {
            rollout,
            hosts: &hosts,
            history: &rollout.history,
            history_from: 0,
            assignments: &[],
        })?;
        let commit_bytes = encode("commits", commit)?;
        let t = &self.rollouts;
        (
            &t.rollouts,
            &t.rollout_hosts,
            &t.rollout_history,
            &t.commits,
            &t.meta,
        )
            .transaction(|(r, h, e, c, m)| -> TxResult {
                h.apply_batch(&w.hosts)?;
                e.apply_batch(&w.history)?;
                r.insert(rollout.id.as_bytes(), w.header.as_slice())?;
                c.insert(commit.id.as_bytes(), commit_bytes.as_slice())?;
                m.insert("last_good_commit", commit.id.as_bytes())?;
                m.insert("current_rollout", rollout.id.as_bytes())?;
                Ok(())
            })
            .map_err(tx_error("starting the rollout"))?;
        Ok(Ticket(self.flusher.wrote()))
    }

    fn write_step(&self, step: &RolloutStep<'_>) -> Result<Ticket> {
        let w = writes(step)?;
        self.apply(&w, &step.rollout.id)?;
        Ok(Ticket(self.flusher.wrote()))
    }

    fn wait_durable(&self, ticket: Ticket) -> Result<()> {
        self.flusher
            .flush_to(&self.db, ticket.0)
            .map_err(backend("flush"))
    }

    fn rollout(&self, id: &str) -> Result<Option<Rollout>> {
        self.load_rollout(id)
    }

    fn rollouts(&self, limit: usize) -> Result<Vec<Rollout>> {
        let mut out = Vec::new();
        for item in self.rollouts.rollouts.iter().rev() {
            if out.len() >= limit {
                break;
            }
            let (k, _) = item.map_err(backend("listing rollouts"))?;
            if let Some(r) = self.load_rollout(&String::from_utf8_lossy(&k))? {
                out.push(r);
            }
        }
        Ok(out)
    }

    fn rollout_statuses(&self, limit: usize) -> Result<Vec<RolloutStatus>> {
        #[derive(Deserialize)]
        struct StatusOnly {
            status: RolloutStatus,
        }
        let mut out = Vec::new();
        for item in self.rollouts.rollouts.iter().rev().take(limit) {
            let (k, v) = item.map_err(backend("listing rollouts"))?;
            let h: StatusOnly = decode("rollouts", &k, &v)?;
            out.push(h.status);
        }
        Ok(out)
    }
}

fn meta_str(meta: &sled::Tree, key: &str) -> Result<Option<String>> {
    Ok(meta
        .get(key)
        .map_err(backend("reading meta"))?
        .map(|v| String::from_utf8_lossy(&v).into_owned()))
}
