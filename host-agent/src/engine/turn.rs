//! One stack's turn: reads what the journal knows, then drives the pure
//! [`lifecycle`](super::lifecycle) — performs each effect it returns
//! (journal writes, live status, reports, Docker work) and feeds back the
//! event the action produced, until the turn is done.

use std::collections::BTreeMap;

use convoy_kit::error_chain;
use convoy_shared::limits::MAX_LOG_LINES;
use convoy_shared::render::RenderedStack;
use tokio::time::Instant;
use tracing::{error, info, warn};

use super::exec::{self, DEFAULT_GRACE, ExecError};
use super::files;
use super::gate::{self, GateContext, GateOutcome};
use super::lifecycle::{self, Effect, Event, Outcome, StackFacts, Stage, Target, Turn, Write};
use super::plan::{StackPlan, Step, missing_images, plan_stack};
use super::{DesiredRecord, Shared};
use crate::journal::{Journal, JournalResult};
use crate::report::{GateFailure, Report};
use crate::runtime::LABEL_SERVICE;

fn facts(
    j: &dyn Journal,
    stack: &RenderedStack,
    blocked_by: Vec<String>,
) -> JournalResult<StackFacts> {
    Ok(StackFacts {
        blocked_by,
        applied: j.applied(&stack.name)?,
        inflight: j
            .inflight(&stack.name)?
            .filter(|i| i.revision == stack.revision),
        lkg: j.lkg(&stack.name)?,
    })
}

/// Runs `stack`'s turn to its end.
pub async fn run(
    sh: &Shared,
    d: &DesiredRecord,
    stack: &RenderedStack,
    blocked_by: Vec<String>,
) -> Outcome {
    let (facts, mut event) = match facts(sh.journal.as_ref(), stack, blocked_by) {
        Ok(f) => (f, Event::Begin),
        Err(e) => (
            StackFacts::default(),
            Event::JournalFailed {
                what: "read the stack's records from the journal".into(),
                error: error_chain(&e),
            },
        ),
    };
    let turn = Turn {
        stack,
        host_revision: &d.state.revision,
        generation: d.generation,
        started_ms: crate::unix_ms(),
        facts,
    };
    let mut performer = Performer {
        sh,
        d,
        turn: &turn,
        started: Instant::now(),
    };
    let mut stage = Stage::Idle;
    loop {
        let (next, effects) = lifecycle::step(&turn, stage, event, crate::unix_ms());
        stage = next;
        let mut answer = None;
        for effect in effects {
            if let Some(ev) = performer.perform(effect).await {
                answer = Some(ev);
                break;
            }
        }
        match (answer, &stage) {
            (Some(ev), _) => event = ev,
            (None, Stage::Done(outcome)) => return *outcome,
            (None, other) => {
                // The lifecycle always ends a live stage's effects with an
                // action; anything else is a bug, not a reason to spin.
                error!(stack = %stack.name, stage = ?other, "lifecycle gave no action; turn ended");
                return Outcome::Failed;
            }
        }
    }
}

struct Performer<'a> {
    sh: &'a Shared,
    d: &'a DesiredRecord,
    turn: &'a Turn<'a>,
    /// When the current attempt started: its deadline counts from here.
    started: Instant,
}

impl Performer<'_> {
    fn target(&self, t: Target) -> (&RenderedStack, BTreeMap<String, String>) {
        match (t, &self.turn.facts.lkg) {
            (Target::LastKnownGood, Some(lkg)) => (&lkg.stack, lkg.image_ids.clone()),
            _ => (self.turn.stack, BTreeMap::new()),
        }
    }

    fn cancelled(&self) -> impl Fn() -> bool + Send + Sync + '_ {
        let generation = self.d.generation;
        move || self.sh.cancelled(generation)
    }

    /// Performs one effect; an action (or a refused write) answers with
    /// the next event.
    async fn perform(&mut self, effect: Effect) -> Option<Event> {
        let name = self.turn.stack.name.as_str();
        let j = self.sh.journal.as_ref();
        match effect {
            Effect::Record(w) => {
                let r = match &w {
                    Write::Inflight(i) => j.put_inflight(name, i),
                    Write::Applied(a) => j.put_applied(name, a),
                    Write::Lkg(l) => j.put_lkg(name, l),
                    Write::ClearInflight => j.remove_inflight(name),
                };
                r.err().map(|e| {
                    error!(stack = %name, error = %error_chain(&e), "cannot {}", w.action());
                    Event::JournalFailed {
                        what: w.action(),
                        error: error_chain(&e),
                    }
                })
            }
            Effect::Show(phase, message) => {
                self.sh.set_live(name, phase, message);
                None
            }
            Effect::Report(draft) => {
                let mut r = Report::new(draft.kind, name, &self.turn.stack.revision, draft.message);
                if let Some((service, tail)) = draft.failure {
                    r = r.with_failure(&service, tail);
                }
                r.restored_revision = draft.restored_revision.unwrap_or_default();
                self.sh.report(self.d, r);
                None
            }
            Effect::CollectFiles => {
                files::collect(j, self.sh.runtime.as_ref(), &self.sh.data_dir, name).await;
                None
            }
            Effect::Prepare(t) => {
                self.started = Instant::now();
                Some(match self.prepare(t).await {
                    Ok(pulled) => Event::Prepared { pulled },
                    Err(e) => self.step_failed(e),
                })
            }
            Effect::Converge(t) => Some(match self.converge(t).await {
                Ok(changed) => Event::Converged { changed },
                Err(e) => self.step_failed(e),
            }),
            Effect::Gate(t) => Some(self.gate(t).await),
            Effect::ReadLogs { container } => Some(Event::LogsRead(
                match self.sh.runtime.logs_tail(&container, MAX_LOG_LINES).await {
                    Ok(lines) => lines,
                    Err(e) => vec![format!("(cannot read logs: {})", error_chain(&e))],
                },
            )),
            Effect::StopAll => {
                self.stop_all().await;
                Some(Event::Stopped)
            }
        }
    }

    fn step_failed(&self, e: ExecError) -> Event {
        match e {
            ExecError::Cancelled => Event::Cancelled,
            ExecError::Step {
                service,
                container,
                reason,
            } => {
                warn!(stack = %self.turn.stack.name, %service, %reason, "apply step failed");
                Event::StepFailed(GateFailure {
                    service,
                    container,
                    reason,
                })
            }
        }
    }

    fn executor<'s>(
        &'s self,
        stack: &'s RenderedStack,
        pins: &'s BTreeMap<String, String>,
        cancelled: &'s (dyn Fn() -> bool + Send + Sync),
    ) -> exec::Executor<'s> {
        exec::Executor {
            runtime: self.sh.runtime.as_ref(),
            stack,
            pins,
            files_dir: files::revision_dir(&self.sh.data_dir, &stack.name, &stack.revision),
            auth: self.sh.options.registry_auth.as_ref(),
            deadline: self.started + stack.health.deadline,
            cancelled,
        }
    }

    /// Files written, every image present (pulled when missing); nothing
    /// stopped. Returns whether an image was pulled.
    async fn prepare(&self, t: Target) -> Result<bool, ExecError> {
        let (stack, pins) = self.target(t);
        let dir = files::revision_dir(&self.sh.data_dir, &stack.name, &stack.revision);
        files::write_files(stack, &dir).map_err(|e| {
            exec::step_err(
                "",
                format!("cannot write stack files to {}: {e}", dir.display()),
            )
        })?;
        let images = exec::image_facts(self.sh.runtime.as_ref(), stack, &pins)
            .await
            .map_err(|e| exec::step_err("", error_chain(&e)))?;
        let missing = missing_images(stack, &images);
        if missing.is_empty() {
            return Ok(false);
        }
        let pulls = StackPlan {
            stack: stack.name.clone(),
            batches: vec![
                missing
                    .into_iter()
                    .map(|image| Step::EnsureImage { image })
                    .collect(),
            ],
        };
        let cancelled = self.cancelled();
        self.executor(stack, &pins, &cancelled).run(&pulls).await?;
        Ok(true)
    }

    /// Plans against what runs and performs the plan; whether it changed
    /// anything.
    async fn converge(&self, t: Target) -> Result<bool, ExecError> {
        let (stack, pins) = self.target(t);
        let rt = self.sh.runtime.as_ref();
        let to_step = |e: crate::runtime::RuntimeError| exec::step_err("", error_chain(&e));
        let observed = exec::observe(rt, &stack.name).await.map_err(to_step)?;
        let images = exec::image_facts(rt, stack, &pins).await.map_err(to_step)?;
        let plan = plan_stack(stack, &observed, &images);
        if plan.is_empty() {
            return Ok(false);
        }
        info!(stack = %stack.name, revision = %stack.revision, steps = plan.steps().count(), "running plan");
        let cancelled = self.cancelled();
        self.executor(stack, &pins, &cancelled).run(&plan).await?;
        Ok(true)
    }

    async fn gate(&self, t: Target) -> Event {
        let (stack, _) = self.target(t);
        let cancelled = self.cancelled();
        let outcome = gate::gate(
            self.sh.runtime.as_ref(),
            &self.sh.prober,
            stack,
            GateContext {
                started: self.started,
                cancelled: &cancelled,
            },
        )
        .await;
        match outcome {
            GateOutcome::Cancelled => Event::Cancelled,
            GateOutcome::Failed(f) => {
                warn!(stack = %stack.name, service = %f.service, reason = %f.reason, "health gate failed");
                Event::GateFailed(f)
            }
            GateOutcome::Healthy => Event::GatePassed {
                image_ids: match t {
                    Target::Desired => self.running_image_ids().await,
                    Target::LastKnownGood => BTreeMap::new(),
                },
                took_ms: u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX),
            },
        }
    }

    /// The image ids the stack's containers run, by service (empty when
    /// the listing fails: the record then pins nothing, as a first deploy).
    async fn running_image_ids(&self) -> BTreeMap<String, String> {
        match exec::stack_containers(self.sh.runtime.as_ref(), &self.turn.stack.name).await {
            Ok(cs) => cs
                .into_iter()
                .filter_map(|c| {
                    c.labels
                        .get(LABEL_SERVICE)
                        .cloned()
                        .map(|s| (s, c.image_id))
                })
                .collect(),
            Err(e) => {
                warn!(stack = %self.turn.stack.name, error = %error_chain(&e), "cannot read the image ids that run");
                BTreeMap::new()
            }
        }
    }

    /// First deploy failed: stop what was started so a crash loop does not
    /// keep running; the containers stay for their logs.
    async fn stop_all(&self) {
        let stack = self.turn.stack;
        let rt = self.sh.runtime.as_ref();
        let cs = match exec::stack_containers(rt, &stack.name).await {
            Ok(cs) => cs,
            Err(e) => {
                warn!(stack = %stack.name, error = %error_chain(&e), "cannot list the failed stack's containers to stop them");
                return;
            }
        };
        let stops = cs.iter().map(|c| {
            let grace = c
                .labels
                .get(LABEL_SERVICE)
                .and_then(|svc| stack.compose.services.get(svc))
                .and_then(|s| s.stop_grace_period)
                .unwrap_or(DEFAULT_GRACE);
            rt.stop_container(&c.id, grace)
        });
        for r in futures::future::join_all(stops).await {
            if let Err(e) = r {
                warn!(stack = %stack.name, error = %error_chain(&e), "cannot stop a container of the failed stack");
            }
        }
    }
}
