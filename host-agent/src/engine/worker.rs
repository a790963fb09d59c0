//! The apply task: one pass per desired generation not yet completed —
//! removals, then each stack's turn in `after` order, then the host report.
//! A pass stopped by a journal error is retried after a delay (growing, with
//! full jitter) or at once when a newer desired state arrives.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use convoy_kit::backoff::Backoff;
use convoy_kit::error_chain;
use tokio::time::Instant;
use tracing::{error, info, warn};

use super::lifecycle::Outcome;
use super::pass::PassTally;
use super::removal::{self, RemovalEnd};
use super::{DesiredRecord, Shared, turn};
use crate::report::{Report, ReportKind};

/// First retry of a pass the journal stopped; doubles up to [`RETRY_CAP`].
/// A full disk is fixed by a person or a log rotation: seconds to hours.
const RETRY_BASE: Duration = Duration::from_secs(5);
const RETRY_CAP: Duration = Duration::from_secs(300);
/// "No timed retry" (a year; `Instant` has no infinity).
const NEVER: Duration = Duration::from_secs(365 * 24 * 3600);

/// How one pass ended.
enum PassEnd {
    Completed,
    /// Superseded or stopping: the next pass picks up.
    Interrupted,
    /// A journal read or write was refused (reported).
    JournalFailed,
}

pub async fn run(sh: Arc<Shared>) {
    // The last generation applied completely, and a pass the journal
    // stopped: its generation and when to try again.
    let mut finished = *sh.done.borrow();
    let mut failed: Option<(u64, Instant)> = None;
    let mut backoff = Backoff::new(RETRY_BASE, RETRY_CAP);
    loop {
        if sh.shutdown.load(Ordering::SeqCst) {
            break;
        }
        let desired = match sh.journal.desired() {
            Ok(d) => d,
            Err(e) => {
                error!(error = %error_chain(&e), "cannot read the desired state; retrying");
                let g = sh.generation.load(Ordering::SeqCst);
                failed = Some((g, Instant::now() + backoff.next_delay(&mut rand::rng())));
                None
            }
        };
        // A generation newer than the published one is a `set_desired`
        // between its journal write and its wake-up: wait for the wake.
        if let Some(d) = &desired
            && d.generation > finished
            && d.generation <= sh.generation.load(Ordering::SeqCst)
            && failed.is_none_or(|(g, at)| d.generation > g || Instant::now() >= at)
        {
            match pass(&sh, d).await {
                PassEnd::Interrupted => {}
                PassEnd::Completed => match sh.journal.put_completed(d.generation) {
                    Ok(()) => {
                        finished = d.generation;
                        failed = None;
                        backoff.reset();
                        sh.done.send_replace(d.generation);
                    }
                    Err(e) => {
                        error!(error = %error_chain(&e), "cannot record the completed apply; the pass will run again");
                        failed = Some((
                            d.generation,
                            Instant::now() + backoff.next_delay(&mut rand::rng()),
                        ));
                        sh.done.send_replace(d.generation);
                    }
                },
                PassEnd::JournalFailed => {
                    if sh.journal.refuses_writes() {
                        // Retrying cannot help until the journal is
                        // reopened: only a restart moves on (a new state
                        // would be refused too).
                        error!(
                            "apply stopped: the journal takes no more writes until the agent restarts"
                        );
                        failed = Some((d.generation, Instant::now() + NEVER));
                    } else {
                        let delay = backoff.next_delay(&mut rand::rng());
                        warn!(
                            retry_in_secs = delay.as_secs_f64(),
                            "apply stopped on a journal error"
                        );
                        failed = Some((d.generation, Instant::now() + delay));
                    }
                    sh.done.send_replace(d.generation);
                }
            }
            continue;
        }
        let retry_at = failed.map(|(_, at)| at);
        tokio::select! {
            _ = sh.wake.notified() => {}
            _ = async {
                match retry_at {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            } => {}
        }
    }
}

/// Applies the whole desired state once: removals first, then every stack
/// in `after` order.
async fn pass(sh: &Shared, d: &DesiredRecord) -> PassEnd {
    info!(host_revision = %d.state.revision, generation = d.generation, "applying desired state");
    match removal::remove_stale_stacks(sh, d).await {
        Ok(()) => {}
        Err(RemovalEnd::Cancelled) => return PassEnd::Interrupted,
        Err(RemovalEnd::Journal) => return PassEnd::JournalFailed,
        Err(RemovalEnd::Step(e)) => {
            warn!(error = %e, "removing stale stacks failed; will retry on the next apply");
        }
    }
    let mut tally = PassTally::new(&d.state.stacks);
    for stack in &d.state.stacks {
        if sh.cancelled(d.generation) {
            return PassEnd::Interrupted;
        }
        match turn::run(sh, d, stack, tally.blocked_by(stack)).await {
            Outcome::Parked => return PassEnd::Interrupted,
            Outcome::JournalFailed => return PassEnd::JournalFailed,
            outcome => tally.record(&stack.name, outcome),
        }
    }
    if tally.host_healthy() {
        sh.report(
            d,
            Report::new(
                ReportKind::HostHealthy,
                "",
                "",
                format!("host revision {} is applied and healthy", d.state.revision),
            ),
        );
    }
    PassEnd::Completed
}
