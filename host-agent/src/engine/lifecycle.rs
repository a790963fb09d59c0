//! The stack lifecycle, pure: [`step`] takes where a stack is in its turn
//! ([`Stage`]) and what just happened ([`Event`]) and returns the next stage
//! and the [`Effect`]s to perform. No I/O and no clock here: the executor
//! (`turn.rs`) performs the effects — journal writes, Docker calls, reports —
//! and feeds back the event each action produced.
//!
//! One turn: journal the attempt, prepare (files and images; nothing is
//! stopped yet), converge (plan and run), gate on health. Healthy: the
//! revision becomes the last-known-good. Failed: read the failing
//! container's logs, then restore the last-known-good (prepare, converge,
//! gate again) or, on a first deploy, stop the stack. A stack `after` one
//! that is not healthy is not applied. A cancel (a newer desired state, or
//! SIGTERM) parks the turn with its in-flight record in place; the next
//! turn resumes from it (a rollback in flight is resumed as a rollback).
//!
//! # Guarantees
//! - Every action is preceded by the journal write that lets a crash
//!   resume it: the in-flight record before the first action of an attempt
//!   and of a rollback, the outcome before the in-flight record is cleared.
//! - A journal write that is refused ends the turn ([`Outcome::JournalFailed`]),
//!   with a report saying so; nothing after it is acted on.
//! - At most one action per effect list, and it comes last: the executor
//!   performs writes and reports in order, then the action, whose result is
//!   the next event.
//!
//! Later triggers fit as events into the same machine: a drift heal is a
//! turn that begins with the applied revision as its desired one, a
//! start-first update is another kind of converge.

use std::collections::BTreeMap;

use convoy_shared::render::RenderedStack;

use crate::journal::{AppliedRecord, Inflight, LkgRecord, Phase};
use crate::report::{GateFailure, ReportKind};

/// What the journal said about the stack when its turn began.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StackFacts {
    /// Stacks on this host that this one comes `after` and that are not
    /// healthy in this pass.
    pub blocked_by: Vec<String>,
    pub applied: Option<AppliedRecord>,
    /// The in-flight record of this very revision (a previous run was cut
    /// short); one of another revision is not resumed.
    pub inflight: Option<Inflight>,
    pub lkg: Option<LkgRecord>,
}

/// One stack's turn within a pass: fixed while it runs.
#[derive(Debug, Clone)]
pub struct Turn<'a> {
    pub stack: &'a RenderedStack,
    pub host_revision: &'a str,
    pub generation: u64,
    /// Wall time the turn began (the in-flight record's start).
    pub started_ms: i64,
    pub facts: StackFacts,
}

/// Which revision an action works on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Desired,
    LastKnownGood,
}

/// A failure and the failing container's last log lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failed {
    pub failure: GateFailure,
    pub tail: Vec<String>,
}

/// What the turn is attempting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// The desired revision.
    Desired,
    /// The last-known-good, because the desired revision failed so.
    Restore(Failed),
}

impl Attempt {
    pub fn target(&self) -> Target {
        match self {
            Attempt::Desired => Target::Desired,
            Attempt::Restore(_) => Target::LastKnownGood,
        }
    }
}

/// Where a stack is in its turn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stage {
    Idle,
    /// Files written, images made present; nothing is stopped yet.
    Preparing(Attempt),
    /// The plan runs (create, recreate, remove). `pulled`: preparing
    /// fetched an image, which counts as a change.
    Converging {
        attempt: Attempt,
        pulled: bool,
    },
    /// The health gate watches.
    Verifying(Attempt),
    /// The desired revision failed; reading the failing container's logs.
    ReadingLogs(GateFailure),
    /// A first deploy failed (nothing to restore): stopping the stack.
    Stopping(Failed),
    Done(Outcome),
}

/// How a turn ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Passed its gate; now the last-known-good (reported).
    Healthy,
    /// Already healthy at this revision and nothing changed (no report).
    UpToDate,
    /// This revision already failed here; not retried until a new one
    /// arrives (no report).
    AlreadyFailed,
    /// Failed and the last-known-good was restored (reported).
    RolledBack,
    /// Failed with nothing healthy to restore (reported).
    Failed,
    /// Comes `after` a stack that is not healthy: not applied (reported).
    Blocked,
    /// Cancelled (superseded or stopping): the in-flight record stays.
    Parked,
    /// A journal write was refused: the pass stops here (reported).
    JournalFailed,
}

impl Outcome {
    pub fn is_healthy(self) -> bool {
        matches!(self, Outcome::Healthy | Outcome::UpToDate)
    }
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Begin,
    Prepared {
        pulled: bool,
    },
    Converged {
        changed: bool,
    },
    /// Preparing or a plan step failed.
    StepFailed(GateFailure),
    LogsRead(Vec<String>),
    /// `image_ids`: service -> image id now running (desired only).
    GatePassed {
        image_ids: BTreeMap<String, String>,
        took_ms: u64,
    },
    GateFailed(GateFailure),
    Stopped,
    /// Superseded by a newer desired state, or the agent is stopping.
    Cancelled,
    /// The journal refused a write or a read: `what` the engine could
    /// not do ("record the in-flight apply in the journal"), `error` the
    /// journal's answer.
    JournalFailed {
        what: String,
        error: String,
    },
}

/// A journal write.
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    Inflight(Inflight),
    Applied(AppliedRecord),
    Lkg(LkgRecord),
    ClearInflight,
}

impl Write {
    /// What the write does, for the message when it is refused.
    pub fn action(&self) -> String {
        let what = match self {
            Write::Inflight(_) => "the in-flight apply",
            Write::Applied(_) => "the applied revision",
            Write::Lkg(_) => "the last-known-good revision",
            Write::ClearInflight => "the end of the in-flight apply",
        };
        format!("record {what} in the journal")
    }
}

/// A report to make (the executor stamps id, time, host revision, rollout).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Draft {
    pub kind: ReportKind,
    pub message: String,
    /// The failing service and its log tail.
    pub failure: Option<(String, Vec<String>)>,
    pub restored_revision: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Performed in order; a refused write ends the list with
    /// [`Event::JournalFailed`].
    Record(Write),
    /// The live phase and message `status` shows.
    Show(Phase, String),
    Report(Draft),
    /// Stack file directories nothing refers to any more can go.
    CollectFiles,
    // Actions (at most one per list, last); each answers with an event.
    /// Write the revision's files, make its images present. -> Prepared /
    /// StepFailed / Cancelled
    Prepare(Target),
    /// Plan against what runs and perform the plan. -> Converged /
    /// StepFailed / Cancelled
    Converge(Target),
    /// Watch health. -> GatePassed / GateFailed / Cancelled
    Gate(Target),
    /// -> LogsRead
    ReadLogs {
        container: String,
    },
    /// Stop every container of the stack. -> Stopped
    StopAll,
}

impl Effect {
    pub fn is_action(&self) -> bool {
        matches!(
            self,
            Effect::Prepare(_)
                | Effect::Converge(_)
                | Effect::Gate(_)
                | Effect::ReadLogs { .. }
                | Effect::StopAll
        )
    }
}

fn short(rev: &str) -> &str {
    rev.get(..12).unwrap_or(rev)
}

fn report(kind: ReportKind, message: String, failed: Option<&Failed>) -> Effect {
    Effect::Report(Draft {
        kind,
        message,
        failure: failed.map(|f| (f.failure.service.clone(), f.tail.clone())),
        restored_revision: None,
    })
}

impl Turn<'_> {
    fn inflight(&self, phase: Phase, started_ms: i64, failed: Option<&Failed>) -> Write {
        Write::Inflight(Inflight {
            revision: self.stack.revision.clone(),
            host_revision: self.host_revision.to_string(),
            generation: self.generation,
            phase,
            started_unix_ms: started_ms,
            failure: failed.map(|f| f.failure.clone()),
            log_tail: failed.map(|f| f.tail.clone()).unwrap_or_default(),
        })
    }

    fn applied(
        &self,
        phase: Phase,
        revision: &str,
        image_ids: BTreeMap<String, String>,
        now_ms: i64,
    ) -> Write {
        Write::Applied(AppliedRecord {
            revision: revision.to_string(),
            phase,
            attempted: self.stack.revision.clone(),
            image_ids,
            at_unix_ms: now_ms,
        })
    }

    fn begin(&self, now_ms: i64) -> (Stage, Vec<Effect>) {
        let f = &self.facts;
        if !f.blocked_by.is_empty() {
            let msg = format!(
                "not applied: stack(s) {} it must come after are not healthy on this host",
                f.blocked_by.join(", ")
            );
            return (
                Stage::Done(Outcome::Blocked),
                vec![
                    Effect::Show(Phase::Failed, msg.clone()),
                    report(ReportKind::Failed, msg, None),
                ],
            );
        }
        if f.inflight.is_none()
            && let Some(a) = &f.applied
            && a.attempted == self.stack.revision
            && matches!(a.phase, Phase::RolledBack | Phase::Failed)
        {
            // Re-sending the same state does not flap the stack.
            return (
                Stage::Done(Outcome::AlreadyFailed),
                vec![Effect::Show(
                    a.phase,
                    "this revision already failed its health gate here".into(),
                )],
            );
        }
        if let Some(i) = &f.inflight
            && i.phase == Phase::RollingBack
        {
            let failure = i.failure.clone().unwrap_or_else(|| GateFailure {
                service: String::new(),
                container: None,
                reason: "health gate failed (rollback resumed after a restart)".into(),
            });
            return self.roll_back(
                Failed {
                    failure,
                    tail: i.log_tail.clone(),
                },
                now_ms,
            );
        }
        (
            Stage::Preparing(Attempt::Desired),
            vec![
                Effect::Record(self.inflight(Phase::Applying, self.started_ms, None)),
                Effect::Show(Phase::Applying, String::new()),
                Effect::Prepare(Target::Desired),
            ],
        )
    }

    /// The desired revision failed: logs first when there is a container.
    fn desired_failed(&self, failure: GateFailure, now_ms: i64) -> (Stage, Vec<Effect>) {
        match &failure.container {
            Some(c) => {
                let container = c.clone();
                (
                    Stage::ReadingLogs(failure),
                    vec![Effect::ReadLogs { container }],
                )
            }
            None => self.roll_back(
                Failed {
                    failure,
                    tail: Vec::new(),
                },
                now_ms,
            ),
        }
    }

    fn roll_back(&self, failed: Failed, now_ms: i64) -> (Stage, Vec<Effect>) {
        let mut effects = vec![
            Effect::Record(self.inflight(Phase::RollingBack, now_ms, Some(&failed))),
            Effect::Show(Phase::RollingBack, failed.failure.reason.clone()),
        ];
        if self.facts.lkg.is_some() {
            effects.push(Effect::Prepare(Target::LastKnownGood));
            (Stage::Preparing(Attempt::Restore(failed)), effects)
        } else {
            effects.push(Effect::StopAll);
            (Stage::Stopping(failed), effects)
        }
    }

    fn restore_failed(&self, failed: &Failed, why: String, now_ms: i64) -> (Stage, Vec<Effect>) {
        let msg = format!("{}; {why}", failed.failure.reason);
        (
            Stage::Done(Outcome::Failed),
            vec![
                Effect::Record(self.applied(Phase::Failed, "", BTreeMap::new(), now_ms)),
                Effect::Record(Write::ClearInflight),
                Effect::Show(Phase::Failed, msg.clone()),
                report(ReportKind::Failed, msg, Some(failed)),
            ],
        )
    }

    /// Nothing changed and the stack is healthy at this revision already,
    /// with no earlier run of it cut short.
    fn settled(&self) -> bool {
        self.facts.inflight.is_none()
            && self
                .facts
                .applied
                .as_ref()
                .is_some_and(|a| a.revision == self.stack.revision && a.phase == Phase::Healthy)
    }
}

/// The transition function. `now_ms`: wall time, for the records.
pub fn step(turn: &Turn, stage: Stage, event: Event, now_ms: i64) -> (Stage, Vec<Effect>) {
    use Attempt::{Desired, Restore};
    let stack = turn.stack;
    match (stage, event) {
        (_, Event::JournalFailed { what, error }) => {
            let msg = format!(
                "cannot {what} ({error}); stopped here: containers are left as they are, the \
                 apply is retried after a delay or when a new desired state arrives"
            );
            (
                Stage::Done(Outcome::JournalFailed),
                vec![
                    Effect::Show(Phase::Failed, msg.clone()),
                    report(ReportKind::Failed, msg, None),
                ],
            )
        }
        (Stage::Done(o), _) => (Stage::Done(o), Vec::new()),
        (_, Event::Cancelled) => (Stage::Done(Outcome::Parked), Vec::new()),
        (Stage::Idle, Event::Begin) => turn.begin(now_ms),
        (Stage::Preparing(attempt), Event::Prepared { pulled }) => {
            let target = attempt.target();
            (
                Stage::Converging { attempt, pulled },
                vec![Effect::Converge(target)],
            )
        }
        (
            Stage::Preparing(Desired)
            | Stage::Converging {
                attempt: Desired, ..
            },
            Event::StepFailed(f),
        ) => turn.desired_failed(
            GateFailure {
                reason: format!("apply failed: {}", f.reason),
                ..f
            },
            now_ms,
        ),
        (
            Stage::Preparing(Restore(x))
            | Stage::Converging {
                attempt: Restore(x),
                ..
            },
            Event::StepFailed(f),
        ) => turn.restore_failed(
            &x,
            format!("restoring the last-known-good failed: {}", f.reason),
            now_ms,
        ),
        (
            Stage::Converging {
                attempt: Desired,
                pulled,
            },
            Event::Converged { changed },
        ) => {
            if !changed && !pulled && turn.settled() {
                return (
                    Stage::Done(Outcome::UpToDate),
                    vec![
                        Effect::Record(Write::ClearInflight),
                        Effect::Show(Phase::Healthy, "up to date".into()),
                    ],
                );
            }
            (
                Stage::Verifying(Desired),
                vec![
                    Effect::Record(turn.inflight(Phase::Verifying, turn.started_ms, None)),
                    Effect::Show(Phase::Verifying, String::new()),
                    Effect::Gate(Target::Desired),
                ],
            )
        }
        (
            Stage::Converging {
                attempt: Restore(x),
                ..
            },
            Event::Converged { .. },
        ) => (
            Stage::Verifying(Restore(x)),
            vec![Effect::Gate(Target::LastKnownGood)],
        ),
        (Stage::Verifying(Desired), Event::GatePassed { image_ids, took_ms }) => {
            let name = &stack.name;
            let msg = format!(
                "stack {name} is healthy at revision {} ({:.1}s)",
                short(&stack.revision),
                std::time::Duration::from_millis(took_ms).as_secs_f64()
            );
            (
                Stage::Done(Outcome::Healthy),
                vec![
                    Effect::Record(Write::Lkg(LkgRecord {
                        stack: stack.clone(),
                        image_ids: image_ids.clone(),
                        at_unix_ms: now_ms,
                    })),
                    Effect::Record(turn.applied(
                        Phase::Healthy,
                        &stack.revision,
                        image_ids,
                        now_ms,
                    )),
                    Effect::Record(Write::ClearInflight),
                    Effect::Show(Phase::Healthy, String::new()),
                    report(ReportKind::Healthy, msg, None),
                    Effect::CollectFiles,
                ],
            )
        }
        (Stage::Verifying(Desired), Event::GateFailed(f)) => turn.desired_failed(f, now_ms),
        (Stage::Verifying(Restore(x)), Event::GatePassed { .. }) => {
            let Some(lkg) = &turn.facts.lkg else {
                return internal(turn, "a restore without a last-known-good");
            };
            let msg = format!(
                "{}; rolled back to revision {}",
                x.failure.reason,
                short(&lkg.stack.revision)
            );
            let mut r = report(ReportKind::RolledBack, msg.clone(), Some(&x));
            if let Effect::Report(d) = &mut r {
                d.restored_revision = Some(lkg.stack.revision.clone());
            }
            (
                Stage::Done(Outcome::RolledBack),
                vec![
                    Effect::Record(turn.applied(
                        Phase::RolledBack,
                        &lkg.stack.revision,
                        lkg.image_ids.clone(),
                        now_ms,
                    )),
                    Effect::Record(Write::ClearInflight),
                    Effect::Show(Phase::RolledBack, msg),
                    r,
                ],
            )
        }
        (Stage::Verifying(Restore(x)), Event::GateFailed(f)) => turn.restore_failed(
            &x,
            format!(
                "the restored last-known-good is not healthy either: {}",
                f.reason
            ),
            now_ms,
        ),
        (Stage::ReadingLogs(failure), Event::LogsRead(tail)) => {
            turn.roll_back(Failed { failure, tail }, now_ms)
        }
        (Stage::Stopping(x), Event::Stopped) => {
            let msg = format!(
                "{}; no last-known-good revision to restore (first deploy): stack stopped",
                x.failure.reason
            );
            (
                Stage::Done(Outcome::Failed),
                vec![
                    Effect::Record(turn.applied(Phase::Failed, "", BTreeMap::new(), now_ms)),
                    Effect::Record(Write::ClearInflight),
                    Effect::Show(Phase::Failed, msg.clone()),
                    report(ReportKind::Failed, msg, Some(&x)),
                ],
            )
        }
        (stage, event) => internal(turn, &format!("{event:?} while {stage:?}")),
    }
}

/// An event the executor should never send in that stage: end the turn
/// visibly rather than loop.
fn internal(turn: &Turn, what: &str) -> (Stage, Vec<Effect>) {
    let msg = format!(
        "internal error in the apply of stack {}: {what}",
        turn.stack.name
    );
    (
        Stage::Done(Outcome::Failed),
        vec![
            Effect::Show(Phase::Failed, msg.clone()),
            report(ReportKind::Failed, msg, None),
        ],
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use convoy_shared::fleet::HealthPolicy;
    use proptest::prelude::*;

    use super::*;

    fn stack(name: &str, revision: &str) -> RenderedStack {
        RenderedStack {
            name: name.into(),
            revision: revision.into(),
            compose: Default::default(),
            health: HealthPolicy::default(),
            after: Vec::new(),
            remove_volumes: false,
            files: BTreeMap::new(),
        }
    }

    fn lkg(revision: &str) -> LkgRecord {
        LkgRecord {
            stack: stack("s", revision),
            image_ids: BTreeMap::from([("app".to_string(), "sha256:good".to_string())]),
            at_unix_ms: 1,
        }
    }

    fn applied(revision: &str, phase: Phase, attempted: &str) -> AppliedRecord {
        AppliedRecord {
            revision: revision.into(),
            phase,
            attempted: attempted.into(),
            image_ids: BTreeMap::new(),
            at_unix_ms: 1,
        }
    }

    fn turn(s: &RenderedStack, facts: StackFacts) -> Turn<'_> {
        Turn {
            stack: s,
            host_revision: "host-r",
            generation: 3,
            started_ms: 100,
            facts,
        }
    }

    fn failure(container: Option<&str>) -> GateFailure {
        GateFailure {
            service: "app".into(),
            container: container.map(str::to_string),
            reason: "service app exited with code 1".into(),
        }
    }

    /// Runs a turn to its end: `world` answers each effect (None: a write
    /// or report went through; Some(event): an action's answer or a
    /// refused write). Returns the outcome and every effect performed.
    fn drive(t: &Turn, mut world: impl FnMut(&Effect) -> Option<Event>) -> (Outcome, Vec<Effect>) {
        let mut stage = Stage::Idle;
        let mut event = Event::Begin;
        let mut performed = Vec::new();
        for _ in 0..30 {
            let (next, effects) = step(t, stage, event, 200);
            stage = next;
            let actions = effects.iter().filter(|e| e.is_action()).count();
            assert!(actions <= 1, "{effects:?}");
            if actions == 1 {
                assert!(effects.last().unwrap().is_action(), "{effects:?}");
            }
            if matches!(stage, Stage::Done(_)) {
                assert_eq!(actions, 0, "{effects:?}");
            } else {
                assert_eq!(
                    actions, 1,
                    "a live stage always acts: {stage:?} {effects:?}"
                );
            }
            let mut answer = None;
            for e in effects {
                performed.push(e.clone());
                if let Some(ev) = world(&e) {
                    answer = Some(ev);
                    break;
                }
            }
            match (answer, &stage) {
                (Some(ev), _) => event = ev,
                (None, Stage::Done(o)) => return (*o, performed),
                (None, s) => panic!("stalled in {s:?}"),
            }
        }
        panic!("no end after 30 steps: {performed:#?}")
    }

    /// Everything succeeds: the gate passes, the plan changed something.
    fn fine(e: &Effect) -> Option<Event> {
        match e {
            Effect::Prepare(_) => Some(Event::Prepared { pulled: false }),
            Effect::Converge(_) => Some(Event::Converged { changed: true }),
            Effect::Gate(_) => Some(Event::GatePassed {
                image_ids: BTreeMap::from([("app".to_string(), "sha256:new".to_string())]),
                took_ms: 2_500,
            }),
            Effect::ReadLogs { .. } => Some(Event::LogsRead(vec!["boom".into()])),
            Effect::StopAll => Some(Event::Stopped),
            _ => None,
        }
    }

    fn writes(performed: &[Effect]) -> Vec<&Write> {
        performed
            .iter()
            .filter_map(|e| match e {
                Effect::Record(w) => Some(w),
                _ => None,
            })
            .collect()
    }

    fn reports(performed: &[Effect]) -> Vec<&Draft> {
        performed
            .iter()
            .filter_map(|e| match e {
                Effect::Report(d) => Some(d),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_healthy_apply_journals_before_acting_and_records_the_lkg() {
        let s = stack("s", "rev-2-abcdefghijkl");
        let t = turn(&s, StackFacts::default());
        let (o, performed) = drive(&t, fine);
        assert_eq!(o, Outcome::Healthy);
        let Effect::Record(Write::Inflight(i)) = &performed[0] else {
            panic!("{performed:?}")
        };
        assert_eq!(
            (i.phase, i.generation, i.started_unix_ms),
            (Phase::Applying, 3, 100)
        );
        assert_eq!(performed[2], Effect::Prepare(Target::Desired));
        let w = writes(&performed);
        assert!(
            matches!(w[1], Write::Inflight(i) if i.phase == Phase::Verifying && i.started_unix_ms == 100)
        );
        let Write::Lkg(l) = w[2] else { panic!("{w:?}") };
        assert_eq!(l.stack.revision, s.revision);
        assert_eq!(l.image_ids["app"], "sha256:new");
        assert!(
            matches!(w[3], Write::Applied(a) if a.phase == Phase::Healthy && a.revision == s.revision)
        );
        assert_eq!(w[4], &Write::ClearInflight);
        let r = reports(&performed);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].kind, ReportKind::Healthy);
        assert_eq!(
            r[0].message,
            "stack s is healthy at revision rev-2-abcdef (2.5s)"
        );
        assert_eq!(performed.last(), Some(&Effect::CollectFiles));
    }

    #[test]
    fn nothing_changed_at_a_healthy_revision_is_up_to_date_without_a_report() {
        let s = stack("s", "r1");
        let facts = StackFacts {
            applied: Some(applied("r1", Phase::Healthy, "r1")),
            lkg: Some(lkg("r1")),
            ..Default::default()
        };
        let t = turn(&s, facts.clone());
        let (o, performed) = drive(&t, |e| match e {
            Effect::Converge(_) => Some(Event::Converged { changed: false }),
            e => fine(e),
        });
        assert_eq!(o, Outcome::UpToDate);
        assert!(reports(&performed).is_empty());
        assert_eq!(
            performed.last(),
            Some(&Effect::Show(Phase::Healthy, "up to date".into()))
        );
        // A pulled image is a change: gated again.
        let (o, performed) = drive(&t, |e| match e {
            Effect::Prepare(_) => Some(Event::Prepared { pulled: true }),
            Effect::Converge(_) => Some(Event::Converged { changed: false }),
            e => fine(e),
        });
        assert_eq!(o, Outcome::Healthy);
        assert!(performed.contains(&Effect::Gate(Target::Desired)));
        // So is a run of the same revision that a crash cut short.
        let mut resumed = facts;
        resumed.inflight = Some(Inflight {
            revision: "r1".into(),
            host_revision: "h".into(),
            generation: 2,
            phase: Phase::Verifying,
            started_unix_ms: 5,
            failure: None,
            log_tail: Vec::new(),
        });
        let t = turn(&s, resumed);
        let (o, _) = drive(&t, |e| match e {
            Effect::Converge(_) => Some(Event::Converged { changed: false }),
            e => fine(e),
        });
        assert_eq!(o, Outcome::Healthy);
    }

    #[test]
    fn a_failed_gate_reads_logs_then_restores_the_lkg() {
        let s = stack("s", "r2");
        let t = turn(
            &s,
            StackFacts {
                applied: Some(applied("r1", Phase::Healthy, "r1")),
                lkg: Some(lkg("r1")),
                ..Default::default()
            },
        );
        let mut gates = 0;
        let (o, performed) = drive(&t, |e| match e {
            Effect::Gate(Target::Desired) => {
                gates += 1;
                Some(Event::GateFailed(failure(Some("c-app"))))
            }
            e => fine(e),
        });
        assert_eq!(o, Outcome::RolledBack);
        assert_eq!(gates, 1);
        let logs = performed
            .iter()
            .position(|e| {
                *e == Effect::ReadLogs {
                    container: "c-app".into(),
                }
            })
            .unwrap();
        let Effect::Record(Write::Inflight(i)) = &performed[logs + 1] else {
            panic!("{performed:#?}")
        };
        assert_eq!(i.phase, Phase::RollingBack);
        assert_eq!(i.failure, Some(failure(Some("c-app"))));
        assert_eq!(i.log_tail, ["boom"]);
        for a in [
            Effect::Prepare(Target::LastKnownGood),
            Effect::Converge(Target::LastKnownGood),
            Effect::Gate(Target::LastKnownGood),
        ] {
            assert!(performed.contains(&a), "{a:?}");
        }
        let w = writes(&performed);
        let Write::Applied(a) = w[w.len() - 2] else {
            panic!("{w:?}")
        };
        assert_eq!(
            (a.phase, a.revision.as_str(), a.attempted.as_str()),
            (Phase::RolledBack, "r1", "r2")
        );
        assert_eq!(a.image_ids["app"], "sha256:good", "the LKG's pinned images");
        assert_eq!(w[w.len() - 1], &Write::ClearInflight);
        let r = reports(&performed);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].kind, ReportKind::RolledBack);
        assert_eq!(r[0].restored_revision.as_deref(), Some("r1"));
        assert_eq!(r[0].failure, Some(("app".into(), vec!["boom".into()])));
        assert_eq!(
            r[0].message,
            "service app exited with code 1; rolled back to revision r1"
        );
    }

    #[test]
    fn a_failed_first_deploy_stops_the_stack_and_reports_failed() {
        let s = stack("s", "r1");
        let t = turn(&s, StackFacts::default());
        let (o, performed) = drive(&t, |e| match e {
            Effect::Converge(_) => Some(Event::StepFailed(GateFailure {
                service: "web".into(),
                container: None,
                reason: "cannot create web: no such image".into(),
            })),
            e => fine(e),
        });
        assert_eq!(o, Outcome::Failed);
        assert!(performed.contains(&Effect::StopAll));
        assert!(
            !performed
                .iter()
                .any(|e| matches!(e, Effect::ReadLogs { .. }))
        );
        let w = writes(&performed);
        assert!(
            matches!(w[w.len() - 2], Write::Applied(a) if a.phase == Phase::Failed && a.revision.is_empty())
        );
        let r = reports(&performed);
        assert_eq!(r[0].kind, ReportKind::Failed);
        assert_eq!(
            r[0].message,
            "apply failed: cannot create web: no such image; no last-known-good revision to \
             restore (first deploy): stack stopped"
        );
    }

    #[test]
    fn an_unhealthy_restore_is_a_failure() {
        let s = stack("s", "r2");
        let t = turn(
            &s,
            StackFacts {
                lkg: Some(lkg("r1")),
                ..Default::default()
            },
        );
        let (o, performed) = drive(&t, |e| match e {
            Effect::Gate(_) => Some(Event::GateFailed(failure(None))),
            e => fine(e),
        });
        assert_eq!(o, Outcome::Failed);
        assert_eq!(
            reports(&performed)[0].message,
            "service app exited with code 1; the restored last-known-good is not healthy \
             either: service app exited with code 1"
        );
    }

    #[test]
    fn blocked_and_already_failed_stacks_are_not_touched() {
        let s = stack("s", "r2");
        let t = turn(
            &s,
            StackFacts {
                blocked_by: vec!["db".into(), "cache".into()],
                ..Default::default()
            },
        );
        let (o, performed) = drive(&t, fine);
        assert_eq!(o, Outcome::Blocked);
        assert!(writes(&performed).is_empty());
        assert_eq!(
            reports(&performed)[0].message,
            "not applied: stack(s) db, cache it must come after are not healthy on this host"
        );
        let t = turn(
            &s,
            StackFacts {
                applied: Some(applied("r1", Phase::RolledBack, "r2")),
                lkg: Some(lkg("r1")),
                ..Default::default()
            },
        );
        let (o, performed) = drive(&t, fine);
        assert_eq!(o, Outcome::AlreadyFailed);
        assert_eq!(performed.len(), 1, "{performed:?}");
    }

    #[test]
    fn a_rollback_in_flight_resumes_as_a_rollback() {
        let s = stack("s", "r2");
        let t = turn(
            &s,
            StackFacts {
                inflight: Some(Inflight {
                    revision: "r2".into(),
                    host_revision: "h".into(),
                    generation: 2,
                    phase: Phase::RollingBack,
                    started_unix_ms: 5,
                    failure: Some(failure(Some("c-app"))),
                    log_tail: vec!["boom".into()],
                }),
                applied: Some(applied("r1", Phase::Healthy, "r1")),
                lkg: Some(lkg("r1")),
                ..Default::default()
            },
        );
        let (o, performed) = drive(&t, fine);
        assert_eq!(o, Outcome::RolledBack);
        assert!(!performed.contains(&Effect::Prepare(Target::Desired)));
        assert_eq!(performed[2], Effect::Prepare(Target::LastKnownGood));
        assert_eq!(
            reports(&performed)[0].failure,
            Some(("app".into(), vec!["boom".into()]))
        );
    }

    #[test]
    fn cancel_parks_and_a_refused_write_ends_the_turn_reported() {
        let s = stack("s", "r1");
        let t = turn(&s, StackFacts::default());
        let (o, performed) = drive(&t, |e| match e {
            Effect::Gate(_) => Some(Event::Cancelled),
            e => fine(e),
        });
        assert_eq!(o, Outcome::Parked);
        assert!(
            matches!(writes(&performed).last(), Some(Write::Inflight(_))),
            "in-flight record stays"
        );

        let (o, performed) = drive(&t, |e| match e {
            Effect::Record(w @ Write::Lkg(_)) => Some(Event::JournalFailed {
                what: w.action(),
                error: "No space left on device (os error 28)".into(),
            }),
            e => fine(e),
        });
        assert_eq!(o, Outcome::JournalFailed);
        let r = reports(&performed);
        assert_eq!(r.len(), 1, "the healthy report is never made: {r:?}");
        assert_eq!(r[0].kind, ReportKind::Failed);
        assert!(
            r[0].message.starts_with(
                "cannot record the last-known-good revision in the journal (No space left on device"
            ),
            "{}",
            r[0].message
        );
    }

    /// A random world: each action succeeds, fails or is cancelled; each
    /// write may be refused.
    fn answer(e: &Effect, roll: u8) -> Option<Event> {
        let f = || {
            failure(if roll.is_multiple_of(2) {
                Some("c")
            } else {
                None
            })
        };
        match e {
            Effect::Record(w) => (roll < 12).then(|| Event::JournalFailed {
                what: w.action(),
                error: "ENOSPC".into(),
            }),
            Effect::Show(..) | Effect::Report(_) | Effect::CollectFiles => None,
            Effect::Prepare(_) => Some(match roll % 5 {
                0 => Event::StepFailed(f()),
                1 => Event::Cancelled,
                n => Event::Prepared { pulled: n == 2 },
            }),
            Effect::Converge(_) => Some(match roll % 5 {
                0 => Event::StepFailed(f()),
                1 => Event::Cancelled,
                n => Event::Converged { changed: n != 2 },
            }),
            Effect::Gate(_) => Some(match roll % 4 {
                0 => Event::GateFailed(f()),
                1 => Event::Cancelled,
                _ => Event::GatePassed {
                    image_ids: BTreeMap::new(),
                    took_ms: 1,
                },
            }),
            Effect::ReadLogs { .. } => Some(Event::LogsRead(vec!["l".into()])),
            Effect::StopAll => Some(Event::Stopped),
        }
    }

    fn arb_facts() -> impl Strategy<Value = StackFacts> {
        let phase = prop_oneof![
            Just(Phase::Healthy),
            Just(Phase::RolledBack),
            Just(Phase::Failed),
            Just(Phase::Applying),
            Just(Phase::Verifying),
            Just(Phase::RollingBack),
        ];
        (
            any::<bool>(),
            prop::option::of((phase.clone(), prop_oneof![Just("r1"), Just("r2")])),
            prop::option::of(phase),
            any::<bool>(),
        )
            .prop_map(|(blocked, applied_rec, inflight, has_lkg)| StackFacts {
                blocked_by: if blocked {
                    vec!["db".into()]
                } else {
                    Vec::new()
                },
                applied: applied_rec.map(|(p, attempted)| applied("r1", p, attempted)),
                inflight: inflight.map(|p| Inflight {
                    revision: "r2".into(),
                    host_revision: "h".into(),
                    generation: 1,
                    phase: p,
                    started_unix_ms: 1,
                    failure: None,
                    log_tail: Vec::new(),
                }),
                lkg: has_lkg.then(|| lkg("r1")),
            })
    }

    proptest! {
        /// Whatever the world answers: the turn ends; each list acts at
        /// most once, last; a write precedes every action of an attempt; a
        /// parked turn leaves its in-flight record; at most one report is
        /// made, and one always is unless nothing was attempted or the
        /// turn parked; an internal error never happens.
        #[test]
        fn every_turn_ends_consistently(facts in arb_facts(), rolls in prop::collection::vec(any::<u8>(), 40)) {
            let s = stack("s", "r2");
            let t = turn(&s, facts.clone());
            let mut i = 0;
            let (o, performed) = drive(&t, |e| {
                let roll = rolls[i % rolls.len()];
                i += 1;
                answer(e, roll)
            });
            let first_action = performed.iter().position(Effect::is_action);
            if let Some(a) = first_action {
                prop_assert!(
                    a >= 2 && matches!(&performed[a - 2], Effect::Record(Write::Inflight(_))),
                    "{:?}", performed
                );
            }
            // Nothing restores or stops before the rollback is journaled.
            let rollback = |e: &Effect| matches!(
                e,
                Effect::Prepare(Target::LastKnownGood) | Effect::StopAll
            );
            if let Some(a) = performed.iter().position(rollback) {
                prop_assert!(
                    matches!(&performed[a - 2], Effect::Record(Write::Inflight(i)) if i.phase == Phase::RollingBack),
                    "{:?}", performed
                );
            }
            let reports = reports(&performed);
            prop_assert!(reports.len() <= 1, "{:?}", reports);
            prop_assert!(reports.iter().all(|r| !r.message.contains("internal error")), "{:?}", reports);
            match o {
                Outcome::Parked => {
                    prop_assert!(reports.is_empty());
                    prop_assert!(
                        !writes(&performed).iter().any(|w| matches!(w, Write::ClearInflight | Write::Applied(_) | Write::Lkg(_))),
                        "{:?}", performed
                    );
                }
                Outcome::UpToDate | Outcome::AlreadyFailed => prop_assert!(reports.is_empty()),
                Outcome::RolledBack => {
                    prop_assert!(facts.lkg.is_some());
                    prop_assert_eq!(reports[0].kind, ReportKind::RolledBack);
                }
                Outcome::Healthy => {
                    prop_assert!(writes(&performed).iter().any(|w| matches!(w, Write::Lkg(l) if l.stack.revision == "r2")));
                    prop_assert_eq!(reports[0].kind, ReportKind::Healthy);
                }
                Outcome::Blocked => prop_assert!(writes(&performed).is_empty()),
                Outcome::Failed | Outcome::JournalFailed => prop_assert_eq!(reports[0].kind, ReportKind::Failed),
            }
            if !matches!(o, Outcome::Parked | Outcome::UpToDate | Outcome::AlreadyFailed) {
                prop_assert_eq!(reports.len(), 1);
            }
        }
    }
}
