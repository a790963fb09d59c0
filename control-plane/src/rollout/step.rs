//! The rollout state machine, as a pure step function:
//! (rollout state, one input, now) -> (next state, actions).
//!
//! No I/O and no clock: the engine persists the returned state in sled
//! *before* it performs the actions, so a control plane killed at any point
//! resumes from the last persisted state and re-performs at most the actions
//! of one step (each action is idempotent on the receiving side: a desired
//! state is keyed by host and revision, alerts by their id).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use convoy_shared::fleet::OnFailure;

/// Extra time, past the sum of a host's stack deadlines, before a host that
/// has not reported is declared failed (pulls and restarts take time).
pub const DEFAULT_MARGIN_MS: u64 = 60_000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RolloutStatus {
    /// Walking the waves.
    Running,
    /// The current wave needs `convoy promote`.
    WaitingApproval,
    /// Every host is healthy on its new revision.
    Completed,
    /// A host failed; `on_failure = "halt"`: stopped where it was.
    Halted { host: String, reason: String },
    /// A host failed; `on_failure = "rollback"`: previous states sent to
    /// the hosts already updated, waiting for them to report.
    RollingBack { host: String, reason: String },
    /// The rollback finished (every reverted host reported or timed out).
    RolledBack { host: String, reason: String },
    /// A newer commit took over.
    Superseded { by: String },
}

impl RolloutStatus {
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            Self::Completed
                | Self::Halted { .. }
                | Self::RolledBack { .. }
                | Self::Superseded { .. }
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum HostPhase {
    /// Waiting for its wave (or for a free slot in it).
    Pending,
    /// The new revision equals what the host already has: nothing to send.
    Unchanged,
    /// Desired state handed to the gateway; not yet on the host's stream.
    Sent,
    /// Delivered on the host's stream at `since_ms`; the deadline runs.
    Delivered {
        since_ms: u64,
    },
    Healthy,
    Failed {
        reason: String,
    },
    /// Previous state sent back (on_failure = rollback).
    Reverting,
    /// The host reported its previous revision healthy again (or it was
    /// never changed).
    Reverted,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostRollout {
    /// Index into `waves`.
    pub wave: usize,
    pub target_revision: String,
    /// What the host had before (None: it had nothing from us).
    pub previous_revision: Option<String>,
    pub phase: HostPhase,
    /// Sum of the host's stack deadlines plus the margin.
    pub budget_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaveState {
    pub name: String,
    pub max_parallel: Option<u32>,
    pub approval: bool,
    pub approved: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rollout {
    pub id: String,
    pub commit: String,
    pub created_ms: u64,
    pub on_failure: OnFailure,
    pub waves: Vec<WaveState>,
    pub current_wave: usize,
    pub hosts: BTreeMap<String, HostRollout>,
    pub status: RolloutStatus,
    /// Every transition, for the audit log and `convoy rollout`.
    pub history: Vec<HistoryEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub at_ms: u64,
    pub what: String,
}

/// What the step function reacts to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Input {
    /// Time passed (the engine ticks every second or so).
    Tick,
    /// The gateway put the host's desired state on its stream.
    Delivered { host: String, revision: String },
    /// A host reported: healthy on `revision`, or failed/rolled back on it.
    HostHealthy { host: String, revision: String },
    HostFailed {
        host: String,
        revision: String,
        reason: String,
    },
    /// `convoy promote`.
    Promote,
    /// `convoy abort`: stop where it is (hosts keep what they have).
    Abort { reason: String },
    /// `convoy rollback`: stop, and send the previous state to every host
    /// that got (or is getting) the new one.
    Rollback { reason: String },
    /// A newer commit's rollout takes over.
    Supersede { by: String },
}

/// What the engine must do after persisting the new state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Action {
    /// Give the host its new desired state (revision of the rollout).
    SendTarget { host: String, revision: String },
    /// Give the host back its previous desired state.
    SendPrevious {
        host: String,
        revision: Option<String>,
    },
    /// An event for the audit log / alerts.
    Event {
        kind: EventKind,
        host: Option<String>,
        message: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    WaveStarted,
    WaitingApproval,
    HostHealthy,
    HostFailed,
    RolloutCompleted,
    RolloutHalted,
    RolloutRollingBack,
    RolloutRolledBack,
    RolloutSuperseded,
}

/// A host of the plan: its wave, its revisions, its time budget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedHost {
    pub name: String,
    pub wave: usize,
    pub target_revision: String,
    pub previous_revision: Option<String>,
    pub budget_ms: u64,
}

impl Rollout {
    /// A new rollout. Hosts whose target equals their previous revision
    /// are `Unchanged` from the start. Call [`step`] with `Input::Tick` to
    /// start it.
    pub fn new(
        id: String,
        commit: String,
        now_ms: u64,
        on_failure: OnFailure,
        waves: Vec<WaveState>,
        hosts: Vec<PlannedHost>,
    ) -> Self {
        let hosts = hosts
            .into_iter()
            .map(|h| {
                let phase = if h.previous_revision.as_deref() == Some(h.target_revision.as_str()) {
                    HostPhase::Unchanged
                } else {
                    HostPhase::Pending
                };
                (
                    h.name,
                    HostRollout {
                        wave: h.wave,
                        target_revision: h.target_revision,
                        previous_revision: h.previous_revision,
                        phase,
                        budget_ms: h.budget_ms,
                    },
                )
            })
            .collect();
        Self {
            id,
            commit,
            created_ms: now_ms,
            on_failure,
            waves,
            current_wave: 0,
            hosts,
            status: RolloutStatus::Running,
            history: vec![HistoryEntry {
                at_ms: now_ms,
                what: "created".into(),
            }],
        }
    }

    fn in_flight(&self, wave: usize) -> usize {
        self.hosts
            .values()
            .filter(|h| {
                h.wave == wave && matches!(h.phase, HostPhase::Sent | HostPhase::Delivered { .. })
            })
            .count()
    }

    fn wave_done(&self, wave: usize) -> bool {
        self.hosts
            .values()
            .filter(|h| h.wave == wave)
            .all(|h| matches!(h.phase, HostPhase::Healthy | HostPhase::Unchanged))
    }

    fn log(&mut self, now_ms: u64, what: String) {
        self.history.push(HistoryEntry {
            at_ms: now_ms,
            what,
        });
    }
}

/// The step function. Pure: same inputs, same outputs.
pub fn step(prev: &Rollout, input: &Input, now_ms: u64) -> (Rollout, Vec<Action>) {
    let mut r = prev.clone();
    let mut actions = Vec::new();
    match input {
        Input::Supersede { by } => {
            if !r.status.is_final() {
                r.status = RolloutStatus::Superseded { by: by.clone() };
                r.log(now_ms, format!("superseded by {by}"));
                actions.push(Action::Event {
                    kind: EventKind::RolloutSuperseded,
                    host: None,
                    message: format!("rollout {} superseded by {by}", r.id),
                });
            }
            return (r, actions);
        }
        _ if r.status.is_final() => return (r, actions),
        Input::Abort { reason } => {
            r.status = RolloutStatus::Halted {
                host: String::new(),
                reason: reason.clone(),
            };
            r.log(now_ms, format!("aborted: {reason}"));
            actions.push(Action::Event {
                kind: EventKind::RolloutHalted,
                host: None,
                message: format!("rollout {} aborted: {reason}", r.id),
            });
            return (r, actions);
        }
        Input::Rollback { reason } => {
            if matches!(
                r.status,
                RolloutStatus::Running | RolloutStatus::WaitingApproval
            ) {
                let on_failure = r.on_failure;
                r.on_failure = OnFailure::Rollback;
                fail(&mut r, "", reason, now_ms, &mut actions);
                r.on_failure = on_failure;
            }
        }
        Input::Promote => {
            if let Some(w) = r.waves.get_mut(r.current_wave)
                && w.approval
                && !w.approved
            {
                w.approved = true;
                let name = w.name.clone();
                r.log(now_ms, format!("wave {name} approved"));
                if r.status == RolloutStatus::WaitingApproval {
                    r.status = RolloutStatus::Running;
                }
            }
        }
        Input::Delivered { host, revision } => {
            if let Some(h) = r.hosts.get_mut(host)
                && h.phase == HostPhase::Sent
                && &h.target_revision == revision
            {
                h.phase = HostPhase::Delivered { since_ms: now_ms };
            }
        }
        Input::HostHealthy { host, revision } => {
            let mut logged = None;
            if let Some(h) = r.hosts.get_mut(host) {
                match &h.phase {
                    HostPhase::Sent | HostPhase::Delivered { .. }
                        if &h.target_revision == revision =>
                    {
                        h.phase = HostPhase::Healthy;
                        logged = Some(format!("host {host} healthy on {}", short(revision)));
                    }
                    HostPhase::Reverting if h.previous_revision.as_ref() == Some(revision) => {
                        h.phase = HostPhase::Reverted;
                        logged = Some(format!("host {host} back on {}", short(revision)));
                    }
                    _ => {}
                }
            }
            if let Some(what) = logged {
                r.log(now_ms, what.clone());
                actions.push(Action::Event {
                    kind: EventKind::HostHealthy,
                    host: Some(host.clone()),
                    message: what,
                });
            }
        }
        Input::HostFailed {
            host,
            revision,
            reason,
        } => {
            let failed_now = match r.hosts.get_mut(host) {
                Some(h)
                    if matches!(h.phase, HostPhase::Sent | HostPhase::Delivered { .. })
                        && &h.target_revision == revision =>
                {
                    h.phase = HostPhase::Failed {
                        reason: reason.clone(),
                    };
                    true
                }
                Some(h) if h.phase == HostPhase::Reverting => {
                    // The revert itself failed on the host: nothing more
                    // we can send; count it as done reverting.
                    h.phase = HostPhase::Failed {
                        reason: format!("revert failed: {reason}"),
                    };
                    false
                }
                _ => false,
            };
            if failed_now {
                fail(&mut r, host, reason, now_ms, &mut actions);
            }
        }
        Input::Tick => {
            // Deadlines of delivered hosts.
            let expired: Vec<(String, u64)> = r
                .hosts
                .iter()
                .filter_map(|(n, h)| match h.phase {
                    HostPhase::Delivered { since_ms }
                        if now_ms >= since_ms.saturating_add(h.budget_ms) =>
                    {
                        Some((n.clone(), h.budget_ms))
                    }
                    _ => None,
                })
                .collect();
            if let Some((host, budget)) = expired.into_iter().next()
                && matches!(
                    r.status,
                    RolloutStatus::Running | RolloutStatus::WaitingApproval
                )
            {
                let reason = format!("no healthy report within {} s", budget / 1000);
                if let Some(h) = r.hosts.get_mut(&host) {
                    h.phase = HostPhase::Failed {
                        reason: reason.clone(),
                    };
                }
                fail(&mut r, &host, &reason, now_ms, &mut actions);
            }
            // Reverting hosts that never answer: give up on them after their budget.
            if let RolloutStatus::RollingBack { .. } = r.status {
                // Nothing time-based here: a revert that never reports keeps
                // the rollout in RollingBack, shown as such; a newer commit
                // supersedes it.
            }
        }
    }
    advance(&mut r, now_ms, &mut actions);
    (r, actions)
}

fn fail(r: &mut Rollout, host: &str, reason: &str, now_ms: u64, actions: &mut Vec<Action>) {
    if !host.is_empty() {
        r.log(now_ms, format!("host {host} failed: {reason}"));
        actions.push(Action::Event {
            kind: EventKind::HostFailed,
            host: Some(host.to_owned()),
            message: format!("host {host} failed: {reason}"),
        });
    }
    if !matches!(
        r.status,
        RolloutStatus::Running | RolloutStatus::WaitingApproval
    ) {
        return;
    }
    match r.on_failure {
        OnFailure::Halt => {
            r.status = RolloutStatus::Halted {
                host: host.to_owned(),
                reason: reason.to_owned(),
            };
            r.log(now_ms, "halted".into());
            actions.push(Action::Event {
                kind: EventKind::RolloutHalted,
                host: Some(host.to_owned()),
                message: format!("rollout {} halted: host {host} failed: {reason}", r.id),
            });
        }
        OnFailure::Rollback => {
            r.status = RolloutStatus::RollingBack {
                host: host.to_owned(),
                reason: reason.to_owned(),
            };
            // Every other host that got (or is getting) the new state goes
            // back. The failed host already restored itself on its own.
            let names: Vec<String> = r.hosts.keys().cloned().collect();
            for n in names {
                if n == host {
                    continue;
                }
                if let Some(h) = r.hosts.get_mut(&n)
                    && matches!(
                        h.phase,
                        HostPhase::Sent | HostPhase::Delivered { .. } | HostPhase::Healthy
                    )
                {
                    h.phase = HostPhase::Reverting;
                    actions.push(Action::SendPrevious {
                        host: n.clone(),
                        revision: h.previous_revision.clone(),
                    });
                }
            }
            r.log(now_ms, "rolling back".into());
            actions.push(Action::Event {
                kind: EventKind::RolloutRollingBack,
                host: Some(host.to_owned()),
                message: format!(
                    "rollout {} rolling back: host {host} failed: {reason}",
                    r.id
                ),
            });
        }
    }
}

/// Moves waves forward and hands out free slots.
fn advance(r: &mut Rollout, now_ms: u64, actions: &mut Vec<Action>) {
    if let RolloutStatus::RollingBack { host, reason } = &r.status {
        let still = r.hosts.values().any(|h| h.phase == HostPhase::Reverting);
        if !still {
            let (host, reason) = (host.clone(), reason.clone());
            r.status = RolloutStatus::RolledBack {
                host: host.clone(),
                reason: reason.clone(),
            };
            r.log(now_ms, "rolled back".into());
            actions.push(Action::Event {
                kind: EventKind::RolloutRolledBack,
                host: Some(host.clone()),
                message: format!(
                    "rollout {} rolled back after host {host} failed: {reason}",
                    r.id
                ),
            });
        }
        return;
    }
    if !matches!(
        r.status,
        RolloutStatus::Running | RolloutStatus::WaitingApproval
    ) {
        return;
    }
    loop {
        let wave = r.current_wave;
        if wave >= r.waves.len() {
            r.status = RolloutStatus::Completed;
            r.log(now_ms, "completed".into());
            actions.push(Action::Event {
                kind: EventKind::RolloutCompleted,
                host: None,
                message: format!("rollout {} completed", r.id),
            });
            return;
        }
        let w = &r.waves[wave];
        let has_work = r
            .hosts
            .values()
            .any(|h| h.wave == wave && h.phase != HostPhase::Unchanged);
        if has_work && w.approval && !w.approved {
            if r.status != RolloutStatus::WaitingApproval {
                r.status = RolloutStatus::WaitingApproval;
                let name = w.name.clone();
                r.log(now_ms, format!("wave {name} waits for approval"));
                actions.push(Action::Event {
                    kind: EventKind::WaitingApproval,
                    host: None,
                    message: format!("rollout {}: wave {name} waits for `convoy promote`", r.id),
                });
            }
            return;
        }
        r.status = RolloutStatus::Running;
        let limit = w.max_parallel.map_or(usize::MAX, |m| m as usize);
        let mut free = limit.saturating_sub(r.in_flight(wave));
        let pending: Vec<String> = r
            .hosts
            .iter()
            .filter(|(_, h)| h.wave == wave && h.phase == HostPhase::Pending)
            .map(|(n, _)| n.clone())
            .collect();
        let first_send = r
            .hosts
            .values()
            .filter(|h| h.wave == wave)
            .all(|h| matches!(h.phase, HostPhase::Pending | HostPhase::Unchanged));
        if first_send && !pending.is_empty() {
            let name = r.waves[wave].name.clone();
            r.log(now_ms, format!("wave {name} started"));
            actions.push(Action::Event {
                kind: EventKind::WaveStarted,
                host: None,
                message: format!("rollout {}: wave {name} started", r.id),
            });
        }
        for n in pending {
            if free == 0 {
                break;
            }
            if let Some(h) = r.hosts.get_mut(&n) {
                h.phase = HostPhase::Sent;
                actions.push(Action::SendTarget {
                    host: n.clone(),
                    revision: h.target_revision.clone(),
                });
                free -= 1;
            }
        }
        if r.wave_done(wave) {
            r.current_wave += 1;
            continue;
        }
        return;
    }
}

fn short(rev: &str) -> &str {
    rev.get(..12).unwrap_or(rev)
}

/// Hosts currently updating, for display.
pub fn updating(r: &Rollout) -> BTreeSet<&str> {
    r.hosts
        .iter()
        .filter(|(_, h)| matches!(h.phase, HostPhase::Sent | HostPhase::Delivered { .. }))
        .map(|(n, _)| n.as_str())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn wave(name: &str, max: Option<u32>, approval: bool) -> WaveState {
        WaveState {
            name: name.into(),
            max_parallel: max,
            approval,
            approved: false,
        }
    }

    fn host(name: &str, wave: usize, prev: Option<&str>) -> PlannedHost {
        PlannedHost {
            name: name.into(),
            wave,
            target_revision: format!("new-{name}"),
            previous_revision: prev.map(str::to_owned),
            budget_ms: 10_000,
        }
    }

    fn sends(actions: &[Action]) -> Vec<String> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::SendTarget { host, .. } => Some(host.clone()),
                _ => None,
            })
            .collect()
    }

    fn two_waves(on_failure: OnFailure) -> Rollout {
        Rollout::new(
            "r1".into(),
            "c1".into(),
            0,
            on_failure,
            vec![wave("staging", None, false), wave("prod", Some(1), false)],
            vec![
                host("laptop", 0, Some("old")),
                host("vps", 1, Some("old")),
                host("gpu", 1, None),
            ],
        )
    }

    fn healthy(r: &Rollout, h: &str, now: u64) -> (Rollout, Vec<Action>) {
        step(
            r,
            &Input::HostHealthy {
                host: h.into(),
                revision: format!("new-{h}"),
            },
            now,
        )
    }

    #[test]
    fn walks_waves_in_order_with_max_parallel() {
        let r = two_waves(OnFailure::Halt);
        let (r, a) = step(&r, &Input::Tick, 1);
        assert_eq!(sends(&a), vec!["laptop"]);
        let (r, a) = healthy(&r, "laptop", 2);
        // prod: max_parallel 1, alphabetical: gpu first.
        assert_eq!(sends(&a), vec!["gpu"]);
        let (r, a) = healthy(&r, "gpu", 3);
        assert_eq!(sends(&a), vec!["vps"]);
        let (r, _) = healthy(&r, "vps", 4);
        assert_eq!(r.status, RolloutStatus::Completed);
    }

    #[test]
    fn halt_stops_the_rollout_and_sends_nothing_more() {
        let r = two_waves(OnFailure::Halt);
        let (r, _) = step(&r, &Input::Tick, 1);
        let (r, a) = step(
            &r,
            &Input::HostFailed {
                host: "laptop".into(),
                revision: "new-laptop".into(),
                reason: "unhealthy".into(),
            },
            2,
        );
        assert!(matches!(r.status, RolloutStatus::Halted { .. }));
        assert!(sends(&a).is_empty());
        let (r2, a) = step(&r, &Input::Tick, 100_000);
        assert_eq!(r2.status, r.status);
        assert!(a.is_empty());
    }

    #[test]
    fn rollback_reverts_updated_hosts() {
        let r = two_waves(OnFailure::Rollback);
        let (r, _) = step(&r, &Input::Tick, 1);
        let (r, _) = healthy(&r, "laptop", 2);
        let (r, a) = step(
            &r,
            &Input::HostFailed {
                host: "gpu".into(),
                revision: "new-gpu".into(),
                reason: "rolled back".into(),
            },
            3,
        );
        assert!(matches!(r.status, RolloutStatus::RollingBack { .. }));
        assert!(a.contains(&Action::SendPrevious {
            host: "laptop".into(),
            revision: Some("old".into())
        }));
        let (r, _) = step(
            &r,
            &Input::HostHealthy {
                host: "laptop".into(),
                revision: "old".into(),
            },
            4,
        );
        assert!(matches!(r.status, RolloutStatus::RolledBack { .. }));
    }

    #[test]
    fn deadline_counts_from_delivery() {
        let r = two_waves(OnFailure::Halt);
        let (r, _) = step(&r, &Input::Tick, 0);
        // Offline for a long time: no failure while only Sent.
        let (r, _) = step(&r, &Input::Tick, 1_000_000);
        assert_eq!(r.status, RolloutStatus::Running);
        let (r, _) = step(
            &r,
            &Input::Delivered {
                host: "laptop".into(),
                revision: "new-laptop".into(),
            },
            1_000_000,
        );
        let (r, _) = step(&r, &Input::Tick, 1_005_000);
        assert_eq!(r.status, RolloutStatus::Running);
        let (r, _) = step(&r, &Input::Tick, 1_010_000);
        assert!(
            matches!(r.status, RolloutStatus::Halted { .. }),
            "{:?}",
            r.status
        );
    }

    #[test]
    fn approval_waits_for_promote() {
        let r = Rollout::new(
            "r".into(),
            "c".into(),
            0,
            OnFailure::Halt,
            vec![wave("a", None, false), wave("b", None, true)],
            vec![host("x", 0, None), host("y", 1, None)],
        );
        let (r, _) = step(&r, &Input::Tick, 0);
        let (r, a) = healthy(&r, "x", 1);
        assert_eq!(r.status, RolloutStatus::WaitingApproval);
        assert!(sends(&a).is_empty());
        let (r, a) = step(&r, &Input::Promote, 2);
        assert_eq!(sends(&a), vec!["y"]);
        let (r, _) = healthy(&r, "y", 3);
        assert_eq!(r.status, RolloutStatus::Completed);
    }

    #[test]
    fn unchanged_hosts_are_skipped_and_stale_reports_ignored() {
        let mut h = host("same", 0, None);
        h.previous_revision = Some(h.target_revision.clone());
        let r = Rollout::new(
            "r".into(),
            "c".into(),
            0,
            OnFailure::Halt,
            vec![wave("all", None, false)],
            vec![h],
        );
        let (r, a) = step(&r, &Input::Tick, 0);
        assert!(sends(&a).is_empty());
        assert_eq!(r.status, RolloutStatus::Completed);

        let r = two_waves(OnFailure::Halt);
        let (r, _) = step(&r, &Input::Tick, 0);
        // A report for an older revision changes nothing.
        let (r2, _) = step(
            &r,
            &Input::HostFailed {
                host: "laptop".into(),
                revision: "older".into(),
                reason: "x".into(),
            },
            1,
        );
        assert_eq!(r2.status, RolloutStatus::Running);
    }

    #[test]
    fn abort_and_operator_rollback() {
        let r = two_waves(OnFailure::Halt);
        let (r, _) = step(&r, &Input::Tick, 0);
        let (aborted, a) = step(
            &r,
            &Input::Abort {
                reason: "by ops".into(),
            },
            1,
        );
        assert!(matches!(aborted.status, RolloutStatus::Halted { .. }));
        assert!(sends(&a).is_empty());
        // Rollback: the laptop (updated) gets its previous state back, even
        // though on_failure is halt.
        let (r, _) = healthy(&r, "laptop", 2);
        let (r, a) = step(
            &r,
            &Input::Rollback {
                reason: "by ops".into(),
            },
            3,
        );
        assert!(
            matches!(r.status, RolloutStatus::RollingBack { .. }),
            "{:?}",
            r.status
        );
        assert!(
            a.iter()
                .any(|x| matches!(x, Action::SendPrevious { host, .. } if host == "laptop"))
        );
        assert_eq!(r.on_failure, OnFailure::Halt);
    }

    #[test]
    fn supersede_is_final() {
        let r = two_waves(OnFailure::Halt);
        let (r, _) = step(&r, &Input::Tick, 0);
        let (r, _) = step(&r, &Input::Supersede { by: "r2".into() }, 1);
        assert!(r.status.is_final());
        let (_, a) = healthy(&r, "laptop", 2);
        assert!(a.is_empty());
    }

    fn arb_input(hosts: Vec<String>) -> impl Strategy<Value = Input> {
        let h = prop::sample::select(hosts);
        prop_oneof![
            Just(Input::Tick),
            Just(Input::Promote),
            h.clone().prop_map(|host| Input::HostHealthy {
                revision: format!("new-{host}"),
                host
            }),
            h.clone().prop_map(|host| Input::Delivered {
                revision: format!("new-{host}"),
                host
            }),
            h.clone().prop_map(|host| Input::HostHealthy {
                host,
                revision: "old".into()
            }),
            h.prop_map(|host| Input::HostFailed {
                revision: format!("new-{host}"),
                host,
                reason: "x".into()
            }),
        ]
    }

    proptest! {
        /// Whatever happens: at most max_parallel hosts of a wave update at
        /// once; no host is sent before every earlier wave is done; nothing
        /// is sent after a failure; a host is sent its target at most once.
        #[test]
        fn invariants_hold(
            rollback in any::<bool>(),
            inputs in prop::collection::vec(
                arb_input(vec!["a".into(), "b".into(), "c".into(), "d".into(), "e".into()]),
                1..60,
            ),
        ) {
            let mut r = Rollout::new(
                "r".into(),
                "c".into(),
                0,
                if rollback { OnFailure::Rollback } else { OnFailure::Halt },
                vec![wave("w0", Some(1), false), wave("w1", Some(2), true)],
                vec![host("a", 0, Some("old")), host("b", 0, Some("old")), host("c", 1, None), host("d", 1, Some("old")), host("e", 1, Some("old"))],
            );
            let mut sent: BTreeMap<String, usize> = BTreeMap::new();
            let mut now = 0;
            let (next, a) = step(&r, &Input::Tick, now);
            r = next;
            let mut all_actions = a;
            for input in &inputs {
                now += 700;
                let failed_before = matches!(r.status, RolloutStatus::Halted{..} | RolloutStatus::RollingBack{..} | RolloutStatus::RolledBack{..});
                let (next, a) = step(&r, input, now);
                if failed_before {
                    prop_assert!(sends(&a).is_empty());
                }
                for h in sends(&a) {
                    let wave = next.hosts[&h].wave;
                    for (n, other) in &next.hosts {
                        if other.wave < wave {
                            prop_assert!(matches!(other.phase, HostPhase::Healthy | HostPhase::Unchanged), "{n} not done before wave {wave}");
                        }
                    }
                }
                all_actions.extend(a);
                r = next;
                for (i, w) in r.waves.iter().enumerate() {
                    if let Some(m) = w.max_parallel {
                        prop_assert!(r.in_flight(i) <= m as usize);
                    }
                }
            }
            for h in sends(&all_actions) {
                *sent.entry(h).or_default() += 1;
            }
            prop_assert!(sent.values().all(|c| *c == 1));
            // Rollback: every host told to revert had been sent its target.
            for a in &all_actions {
                if let Action::SendPrevious { host, .. } = a {
                    prop_assert!(sent.contains_key(host));
                }
            }
            if r.status == RolloutStatus::Completed {
                prop_assert!(r.hosts.values().all(|h| matches!(h.phase, HostPhase::Healthy | HostPhase::Unchanged)));
            }
        }
    }
}
