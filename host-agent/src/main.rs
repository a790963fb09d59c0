//! `convoy-agent`: the per-host agent.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use convoy_host_agent::engine::{Engine, Report, ReportKind};
use convoy_host_agent::hooks::EngineHooks;
use convoy_host_agent::journal::Phase;
use convoy_host_agent::runtime::BollardRuntime;
use convoy_host_agent::stream::{Agent, AgentConfig, AgentDir};
use convoy_host_agent::telemetry::{ContainerDirectory, Sampler, TelemetryBuffer, TelemetryConfig};
use convoy_shared::render::HostState;

#[derive(Debug, Parser)]
#[command(
    name = "convoy-agent",
    version,
    about = "Convoy host agent: applies compose stacks, gates them on health, rolls back on its own"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Join the fleet: make a key here, trade a join token for a certificate.
    Enroll {
        /// The control plane's agent port, HOST:PORT.
        #[arg(long)]
        server: String,
        /// The join token from `convoy tokens create`.
        #[arg(long, env = "CONVOY_JOIN_TOKEN", hide_env_values = true)]
        token: String,
        #[arg(long)]
        data_dir: PathBuf,
    },
    /// Keep the stream to the control plane open.
    Run {
        #[arg(long)]
        data_dir: PathBuf,
        /// TOML config (unknown keys are errors).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Print the protocol version this build speaks.
    ProtocolVersion,
    /// Apply a rendered host state (JSON, as `convoy validate --plan --json`
    /// prints under plan.hosts.<name>) locally, without a control plane.
    Apply {
        #[arg(long, env = "CONVOY_DATA_DIR")]
        data_dir: PathBuf,
        /// A rendered HostState JSON file (as `convoy validate --plan --json`
        /// prints under plan.hosts.<name>).
        #[arg(long, required_unless_present = "fleet", conflicts_with = "fleet")]
        state: Option<PathBuf>,
        /// Or a local fleet repo: render this host's desired state from it
        /// (validated exactly as the control plane does).
        #[arg(long, requires = "host")]
        fleet: Option<PathBuf>,
        /// The host of --fleet whose stacks to apply.
        #[arg(long)]
        host: Option<String>,
        /// Also wait for the health gates (and any rollback) to finish.
        /// Without it the command returns once every stack's containers are
        /// created; the gate resumes the next time the agent runs.
        #[arg(long)]
        wait: bool,
        /// Print reports as JSON lines.
        #[arg(long)]
        json: bool,
    },
    /// Show desired / applied / last-known-good revisions per stack.
    Status {
        #[arg(long, env = "CONVOY_DATA_DIR")]
        data_dir: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

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

enum StateSource {
    File(PathBuf),
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

async fn apply(
    data_dir: PathBuf,
    source: StateSource,
    wait: bool,
    json: bool,
) -> anyhow::Result<bool> {
    let host_state = load_state(&source)?;
    let runtime = BollardRuntime::connect().await?;
    let engine = Engine::open(&data_dir, Arc::new(runtime))?;
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

async fn status(data_dir: PathBuf, json: bool) -> anyhow::Result<()> {
    let runtime = BollardRuntime::connect().await?;
    let engine = Engine::open(&data_dir, Arc::new(runtime))?;
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

fn init_logging(default: &str) {
    let filter = std::env::var("CONVOY_LOG")
        .ok()
        .or_else(|| std::env::var("RUST_LOG").ok())
        .unwrap_or_else(|| default.into());
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(filter)
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default)),
        )
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
}

/// How often the container directory (GPU process → stack/service) is
/// re-read from the engine.
const CONTAINER_REFRESH: Duration = Duration::from_secs(30);

/// Starts the sampler (its own task, blocking pool for the reads: off the
/// apply path) and the container-directory refresher; returns the buffer
/// the stream drains.
async fn start_telemetry(cfg: &AgentConfig, runtime: Arc<BollardRuntime>) -> Arc<TelemetryBuffer> {
    let docker_version = match runtime.engine_version().await {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!(error = %e, "reading the Docker version failed; reported as empty");
            String::new()
        }
    };
    let config = TelemetryConfig {
        interval: cfg.telemetry_interval,
        gpus_enabled: cfg.gpus,
        docker_version,
        ..TelemetryConfig::default()
    }
    .with_nvml_library(cfg.nvml_library.as_deref());
    tracing::info!(
        interval_secs = config.interval.as_secs_f64(),
        gpus = config.gpus_enabled,
        nvml_library = %config.gpu.library.display(),
        "telemetry sampling"
    );
    let containers = ContainerDirectory::new();
    let sampler = Sampler::with_containers(config, containers.clone());
    let buffer = Arc::new(TelemetryBuffer::default());
    tokio::spawn(sampler.run(buffer.clone()));
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(CONTAINER_REFRESH);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match containers.refresh(runtime.as_ref()).await {
                Ok(n) => tracing::debug!(containers = n, "container directory refreshed"),
                Err(e) => tracing::warn!(error = %e, "refreshing the container directory failed"),
            }
        }
    });
    buffer
}

/// The daemon: the stream to the control plane, the engine behind it.
async fn run(data_dir: PathBuf, config: Option<PathBuf>) -> anyhow::Result<()> {
    let cfg = match &config {
        Some(p) => AgentConfig::load(p)?,
        None => AgentConfig::default(),
    };
    let runtime = Arc::new(
        BollardRuntime::connect()
            .await
            .context("connecting to the Docker engine")?,
    );
    let engine = Arc::new(Engine::open(&data_dir, runtime.clone()).context("opening the journal")?);
    let hooks = Arc::new(EngineHooks::new(engine.clone(), &data_dir));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let telemetry = start_telemetry(&cfg, runtime).await;
    let agent = Agent::new(AgentDir::new(&data_dir), cfg, hooks).with_telemetry(telemetry);
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        tracing::info!("signal received; shutting down (containers keep running)");
        stop_tx.send_replace(true);
    });
    let result = agent.run(stop_rx).await.context("agent stream");
    // Finish or park the current apply step and flush the journal.
    engine.shutdown().await;
    tracing::info!("agent stopped");
    result
}

#[tokio::main]
async fn main() -> anyhow::Result<std::process::ExitCode> {
    let cli = Cli::parse();
    match cli.command {
        Command::ProtocolVersion => println!("{}", convoy_shared::proto::PROTOCOL_VERSION),
        Command::Enroll {
            server,
            token,
            data_dir,
        } => {
            init_logging("info");
            let e = convoy_host_agent::stream::enroll(&server, &token, &AgentDir::new(&data_dir))
                .await
                .context("enrollment failed")?;
            println!("enrolled as host {} in fleet {}", e.host, e.fleet);
        }
        Command::Run { data_dir, config } => {
            init_logging("info");
            run(data_dir, config).await?;
        }
        Command::Apply {
            data_dir,
            state,
            fleet,
            host,
            wait,
            json,
        } => {
            let source = match (state, fleet, host) {
                (Some(s), _, _) => StateSource::File(s),
                (None, Some(f), Some(h)) => StateSource::Fleet(f, h),
                _ => anyhow::bail!("give --state FILE, or --fleet PATH --host NAME"),
            };
            init_logging("warn");
            if !apply(data_dir, source, wait, json).await? {
                return Ok(std::process::ExitCode::from(2));
            }
        }
        Command::Status { data_dir, json } => {
            init_logging("warn");
            status(data_dir, json).await?
        }
    }
    Ok(std::process::ExitCode::SUCCESS)
}
