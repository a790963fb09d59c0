//! Removing stacks that left the desired state: only those this agent's
//! journal knows (applied, last-known-good or in flight; the in-flight
//! record is written before anything is created), so objects of other
//! agents sharing the engine stay untouched. Containers, then networks,
//! then named volumes when the stack asked for `remove_volumes`.

use std::collections::{BTreeMap, BTreeSet};

use convoy_kit::error_chain;
use convoy_shared::render::RenderedStack;
use tokio::time::Instant;
use tracing::warn;

use super::exec::{self, ExecError};
use super::files;
use super::plan::plan_removal;
use super::{DesiredRecord, Shared};
use crate::journal::{JournalError, LkgRecord, Phase};
use crate::report::{Report, ReportKind};

/// Why removals stopped.
#[derive(Debug)]
pub enum RemovalEnd {
    /// Superseded or stopping.
    Cancelled,
    /// The journal refused a read or a write (reported): the pass stops.
    Journal,
    /// A runtime step failed: retried on the next pass.
    Step(ExecError),
}

/// The journaled stacks that are not in `wanted` (pure).
pub fn stale_stacks(
    journaled: BTreeSet<String>,
    wanted: &[RenderedStack],
) -> impl Iterator<Item = String> {
    let wanted: BTreeSet<String> = wanted.iter().map(|s| s.name.clone()).collect();
    journaled.into_iter().filter(move |s| !wanted.contains(s))
}

fn journal_failed(sh: &Shared, d: &DesiredRecord, stack: &str, what: &str, e: &JournalError) {
    let msg = format!(
        "cannot {what} ({}); stopped here: containers are left as they are, the apply is \
         retried after a delay or when a new desired state arrives",
        error_chain(e)
    );
    sh.set_live(stack, Phase::Failed, msg.clone());
    sh.report(d, Report::new(ReportKind::Failed, stack, "", msg));
}

pub async fn remove_stale_stacks(sh: &Shared, d: &DesiredRecord) -> Result<(), RemovalEnd> {
    let j = sh.journal.as_ref();
    let known = (|| -> Result<_, JournalError> {
        let lkg: BTreeMap<String, LkgRecord> = j.all_lkg()?.into_iter().collect();
        let mut names: BTreeSet<String> = lkg.keys().cloned().collect();
        names.extend(j.all_applied()?.into_iter().map(|(k, _)| k));
        names.extend(j.all_inflight()?.into_iter().map(|(k, _)| k));
        Ok((lkg, names))
    })();
    let (lkg, journaled) = match known {
        Ok(k) => k,
        Err(e) => {
            journal_failed(sh, d, "", "read the stacks the journal knows", &e);
            return Err(RemovalEnd::Journal);
        }
    };
    for stack in stale_stacks(journaled, &d.state.stacks) {
        if sh.cancelled(d.generation) {
            return Err(RemovalEnd::Cancelled);
        }
        sh.set_live(&stack, Phase::Removing, "");
        let last = lkg.get(&stack);
        let remove_volumes = last.is_some_and(|l| l.stack.remove_volumes);
        let revision = last.map(|l| l.stack.revision.clone()).unwrap_or_default();
        let observed = exec::observe(sh.runtime.as_ref(), &stack)
            .await
            .map_err(|e| {
                RemovalEnd::Step(ExecError::Step {
                    service: String::new(),
                    container: None,
                    reason: error_chain(&e),
                })
            })?;
        let plan = plan_removal(&stack, &observed, remove_volumes);
        // The last-known-good spec gives the stop grace periods; without
        // one an empty stack stands in (compose's default grace).
        let spec = last
            .map(|l| l.stack.clone())
            .unwrap_or_else(|| RenderedStack {
                name: stack.clone(),
                revision: revision.clone(),
                compose: Default::default(),
                health: Default::default(),
                after: Vec::new(),
                remove_volumes,
                files: BTreeMap::new(),
            });
        let cancelled = || sh.cancelled(d.generation);
        let pins = BTreeMap::new();
        let ex = exec::Executor {
            runtime: sh.runtime.as_ref(),
            stack: &spec,
            pins: &pins,
            files_dir: files::revision_dir(&sh.data_dir, &stack, &revision),
            auth: None,
            deadline: Instant::now() + std::time::Duration::from_secs(60),
            cancelled: &cancelled,
        };
        match ex.run(&plan).await {
            Ok(()) => {}
            Err(ExecError::Cancelled) => return Err(RemovalEnd::Cancelled),
            Err(e) => return Err(RemovalEnd::Step(e)),
        }
        let forgot = j
            .remove_applied(&stack)
            .and_then(|()| j.remove_lkg(&stack))
            .and_then(|()| j.remove_inflight(&stack));
        if let Err(e) = forgot {
            journal_failed(sh, d, &stack, "record the removal in the journal", &e);
            return Err(RemovalEnd::Journal);
        }
        let dir = files::stack_dir(&sh.data_dir, &stack);
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => warn!(dir = %dir.display(), error = %e, "cannot remove the stack's files"),
        }
        sh.forget_live(&stack);
        sh.report(
            d,
            Report::new(
                ReportKind::Removed,
                &stack,
                &revision,
                format!(
                    "stack {stack} removed ({})",
                    if remove_volumes {
                        "volumes removed"
                    } else {
                        "volumes kept"
                    }
                ),
            ),
        );
    }
    Ok(())
}
