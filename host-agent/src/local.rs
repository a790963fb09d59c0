//! `convoy-agent apply` and `status`: the engine on this host without a
//! control plane (single-host users, debugging, tests). Reports are printed
//! instead of sent, and acknowledged once printed.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use convoy_shared::render::HostState;

use crate::engine::StackEngine;
use crate::journal::Phase;
use crate::report::{Report, ReportKind};
use crate::runtime::BollardRuntime;

fn print_report(r: &Report, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string(r)?);
        return Ok(());
    }
    let stack = if r.stack.is_empty() { "-" } else { &r.stack };
    println!(
        "{:<12} {:<20} {}",
        format!("{:?}", r.kind),
        stack,
        r.message
    );
    if !r.failing_service.is_empty() {
        println!("  failing service: {}", r.failing_service);
    }
    for l in &r.log_tail {
        println!("  | {l}");
    }
    Ok(())
}

/// Where `apply` takes the host state from.
#[derive(Debug)]
pub enum StateSource {
    /// A rendered HostState JSON file.
    File(PathBuf),
    /// A local fleet repo and the host to render.
    Fleet(PathBuf, String),
}

fn load_state(source: &StateSource) -> anyhow::Result<HostState> {
    match source {
        StateSource::File(state) => {
            let text = std::fs::read_to_string(state)
                .with_context(|| format!("reading {}", state.display()))?;
            serde_json::from_str(&text)
                .with_context(|| format!("{} is not a rendered host state", state.display()))
        }
        StateSource::Fleet(path, host) => {
            let repo = convoy_shared::repo::load_dir(path).map_err(|d| {
                anyhow::anyhow!("{} is not a valid fleet repo:\n{d}", path.display())
            })?;
            for w in &repo.warnings.0 {
                eprintln!("{w}");
            }
            convoy_shared::render::render_host(&repo, host)
                .with_context(|| format!("host {host:?} is not in {}/fleet.toml", path.display()))
        }
    }
}

/// `convoy-agent apply`: sets the state, waits (for the gates with
/// `wait`, else until every stack is past its apply steps), prints the
/// reports. `Ok(false)` when a stack failed or rolled back.
pub async fn apply(
    data_dir: PathBuf,
    source: StateSource,
    wait: bool,
    json: bool,
) -> anyhow::Result<bool> {
    let host_state = load_state(&source)?;
    let runtime = BollardRuntime::connect().await?;
    let engine = StackEngine::open(&data_dir, Arc::new(runtime))?;
    engine.set_desired(host_state, None)?;
    if wait {
        engine.wait_idle().await?;
    } else {
        // Return once every stack is past its apply steps.
        loop {
            let st = engine.status()?;
            let busy = st.stacks.iter().any(|s| {
                s.desired_revision.is_some()
                    && matches!(
                        s.phase,
                        Phase::Pending | Phase::Applying | Phase::RollingBack | Phase::Removing
                    )
            });
            if st.completed_generation >= st.generation || !busy {
                break;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
    engine.shutdown().await;
    let reports = engine.pending_reports()?;
    let mut ok = true;
    for r in &reports {
        print_report(r, json)?;
        ok &= !matches!(r.kind, ReportKind::Failed | ReportKind::RolledBack);
    }
    // Printed = delivered: there is no control plane to send them to.
    engine.ack(&reports.iter().map(|r| r.id.clone()).collect::<Vec<_>>())?;
    Ok(ok)
}

/// `convoy-agent status`: the journal's view, as a table or JSON.
pub async fn status(data_dir: PathBuf, json: bool) -> anyhow::Result<()> {
    let runtime = BollardRuntime::connect().await?;
    let engine = StackEngine::open(&data_dir, Arc::new(runtime))?;
    let st = engine.status()?;
    engine.shutdown().await;
    if json {
        println!("{}", serde_json::to_string_pretty(&st)?);
        return Ok(());
    }
    println!(
        "host revision: {}",
        st.host_revision.as_deref().unwrap_or("-")
    );
    println!(
        "{:<20} {:<12} {:<14} {:<14} {:<14} MESSAGE",
        "STACK", "PHASE", "DESIRED", "APPLIED", "LKG"
    );
    let short = |r: &Option<String>| {
        r.as_deref()
            .map_or("-".to_string(), |r| r.chars().take(12).collect())
    };
    for s in &st.stacks {
        println!(
            "{:<20} {:<12} {:<14} {:<14} {:<14} {}",
            s.stack,
            format!("{:?}", s.phase),
            short(&s.desired_revision),
            short(&s.applied_revision),
            short(&s.lkg_revision),
            s.message
        );
    }
    Ok(())
}
