//! The health gate's loop: look at the stack every [`POLL`] (engine
//! listing, then the probes once the containers are fine), feed each look
//! to the pure [`GateWindow`] until it decides or the caller cancels.

use std::time::Duration;

use convoy_shared::render::RenderedStack;
use tokio::time::Instant;

use super::exec::stack_containers;
use super::health::{GateWindow, Look, Verdict, assess};
use super::plan::oneshots;
use super::probe::Prober;
use crate::report::GateFailure;
use crate::runtime::{LABEL_SERVICE, Runtime};

/// How often the gate looks.
pub const POLL: Duration = Duration::from_millis(500);

/// What the gate needs from its caller besides the stack: when the window
/// started and how to tell it to stop early.
pub struct GateContext<'a> {
    pub started: Instant,
    /// Returns true when the gate must stop (superseded, shutting down).
    pub cancelled: &'a (dyn Fn() -> bool + Send + Sync),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GateOutcome {
    Healthy,
    Failed(GateFailure),
    Cancelled,
}

/// Watches `stack` until it is healthy for `min_healthy`, fails, passes its
/// deadline (counted from `ctx.started`), or is cancelled.
pub async fn gate(
    runtime: &dyn Runtime,
    prober: &Prober,
    stack: &RenderedStack,
    ctx: GateContext<'_>,
) -> GateOutcome {
    let shots = oneshots(&stack.compose);
    let mut window = GateWindow::new(&stack.health);
    loop {
        if (ctx.cancelled)() {
            return GateOutcome::Cancelled;
        }
        let look = match stack_containers(runtime, &stack.name).await {
            Err(e) => Look::NotYet(GateFailure {
                service: String::new(),
                container: None,
                reason: format!("cannot list containers: {}", convoy_kit::error_chain(&e)),
            }),
            Ok(cs) => match Look::from(assess(stack, &cs, window.baseline(&cs), &shots)) {
                Look::Good => {
                    let mut look = Look::Good;
                    for p in &stack.health.probes {
                        if let Err(why) = prober.probe(p).await {
                            let container = cs
                                .iter()
                                .find(|c| c.labels.get(LABEL_SERVICE) == Some(&p.service))
                                .map(|c| c.id.clone());
                            look = Look::NotYet(GateFailure {
                                service: p.service.clone(),
                                container,
                                reason: format!("probe failed: {why}"),
                            });
                            break;
                        }
                    }
                    look
                }
                other => other,
            },
        };
        match window.observe(ctx.started.elapsed(), look) {
            Verdict::Healthy => return GateOutcome::Healthy,
            Verdict::Failed(f) => return GateOutcome::Failed(f),
            Verdict::Watching => tokio::time::sleep(POLL).await,
        }
    }
}
