//! `convoy-agent`: the per-host agent.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use convoy_host_agent::bridge::StreamBridge;
use convoy_host_agent::engine::StackEngine;
use convoy_host_agent::local::{self, StateSource};
use convoy_host_agent::runtime::BollardRuntime;
use convoy_host_agent::stream::{Agent, AgentConfig, AgentDir};
use convoy_host_agent::telemetry::{ContainerDirectory, Sampler, TelemetryBuffer, TelemetryConfig};

#[derive(Debug, Parser)]
#[command(
    name = "convoy-agent",
    version,
    about = "Convoy host agent: applies compose stacks, gates them on health, rolls back on its own"
)]
struct Cli {
    /// Log format on stderr (`run`: overrides the config's `log_format`).
    #[arg(long, global = true, value_enum, env = "CONVOY_LOG_FORMAT")]
    log_format: Option<LogFormat>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// Default data dir (the unit's `StateDirectory=convoy-agent`).
const DEFAULT_DATA_DIR: &str = "/var/lib/convoy-agent";
/// Default config file.
const DEFAULT_CONFIG_FILE: &str = "/etc/convoy/agent.toml";
/// Keys `CONVOY_<KEY>` environment variables override
/// (`server` -> `CONVOY_SERVER`). The first three are the daemon's own,
/// handled here; the rest are [`AgentConfig`]'s.
const ENV_KEYS: &[&str] = &[
    "data_dir",
    "log_level",
    "log_format",
    "server",
    "backoff_base",
    "backoff_cap",
    "stable_after",
    "telemetry_interval",
    "nvml_library",
    "gpus",
];
/// How often the daemon checks whether its journal still takes writes.
const JOURNAL_CHECK: Duration = Duration::from_secs(2);
/// A journal that refuses writes (sled after an I/O error such as a full
/// disk) is only fixed by reopening it: the daemon exits for systemd to
/// restart it (`Restart=on-failure`, 5 s), after at most this long for the
/// reports it holds in memory to reach the control plane.
const JOURNAL_EXIT_GRACE: Duration = Duration::from_secs(30);
/// How long SIGTERM waits for the current apply step before a hard stop
/// (the journal is crash-safe; the unit's TimeoutStopSec is 90 s).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(60);

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
    /// Keep the stream to the control plane open. Settings: defaults <
    /// config file < CONVOY_* env < flags (README "Operations").
    Run {
        /// Data dir. Default: `data_dir` in the config, else
        /// /var/lib/convoy-agent.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// TOML config (unknown keys are errors). Default
        /// /etc/convoy/agent.toml if it exists.
        #[arg(long, env = "CONVOY_CONFIG")]
        config: Option<PathBuf>,
        /// The control plane's agent port, HOST:PORT (overrides the one
        /// recorded at enrollment).
        #[arg(long)]
        server: Option<String>,
        /// Log filter (`info`, `debug`, ...). CONVOY_LOG / RUST_LOG win.
        #[arg(long)]
        log_level: Option<String>,
        /// Print the effective configuration and exit.
        #[arg(long)]
        print_config: bool,
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

fn init_logging(format: LogFormat, default: &str) {
    let filter = std::env::var("CONVOY_LOG")
        .ok()
        .or_else(|| std::env::var("RUST_LOG").ok())
        .unwrap_or_else(|| default.into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(filter)
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn duration_str(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// The built-in defaults, as the bottom layer and for `--print-config`.
fn defaults_table() -> toml::Table {
    let d = AgentConfig::default();
    let mut t = toml::Table::new();
    let mut put = |k: &str, v: String| {
        t.insert(k.into(), toml::Value::String(v));
    };
    put("data_dir", DEFAULT_DATA_DIR.into());
    put("log_level", "info".into());
    put("log_format", "text".into());
    put("backoff_base", duration_str(d.backoff_base));
    put("backoff_cap", duration_str(d.backoff_cap));
    put("stable_after", duration_str(d.stable_after));
    put("telemetry_interval", duration_str(d.telemetry_interval));
    if let Some(lib) = &d.nvml_library {
        put("nvml_library", lib.display().to_string());
    }
    t.insert("gpus".into(), toml::Value::Boolean(d.gpus));
    t
}

/// The daemon's own settings; the rest of the table is [`AgentConfig`]'s.
struct Daemon {
    data_dir: PathBuf,
    log_level: String,
    log_format: LogFormat,
    stream: AgentConfig,
    /// The effective table, for `--print-config`.
    table: toml::Table,
}

fn layered(file: &std::path::Path, required: bool, flags: toml::Table) -> anyhow::Result<Daemon> {
    use convoy_kit::layers;
    let mut table = defaults_table();
    if required || file.exists() {
        let t = layers::load_file(file)?;
        layers::merge(&mut table, t);
    }
    let mut over = toml::Table::new();
    layers::apply_env(&mut over, ENV_KEYS, |n| std::env::var(n).ok())?;
    layers::merge(&mut over, flags);
    layers::merge(&mut table, over);
    let mut rest = table.clone();
    let mut take = |k: &str| -> anyhow::Result<String> {
        match rest.remove(k) {
            Some(toml::Value::String(s)) => Ok(s),
            Some(other) => anyhow::bail!("{k}: expected a string, got {other}"),
            None => anyhow::bail!("{k}: missing"),
        }
    };
    let data_dir = PathBuf::from(take("data_dir")?);
    let log_level = take("log_level")?;
    tracing_subscriber::EnvFilter::try_new(&log_level)
        .map_err(|e| anyhow::anyhow!("log_level: {e}"))?;
    let log_format = match take("log_format")?.as_str() {
        "text" => LogFormat::Text,
        "json" => LogFormat::Json,
        other => anyhow::bail!("log_format: {other:?}: expected \"text\" or \"json\""),
    };
    let stream = AgentConfig::parse(&rest.to_string())
        .map_err(|e| anyhow::anyhow!("{} (+ environment/flags): {e}", file.display()))?;
    Ok(Daemon {
        data_dir,
        log_level,
        log_format,
        stream,
        table,
    })
}

/// Connects to Docker, retrying (with READY=1 sent and the watchdog fed
/// meanwhile) until it answers or the agent is told to stop.
async fn connect_docker(
    stop: &mut tokio::sync::watch::Receiver<bool>,
    watchdog: Option<Duration>,
) -> anyhow::Result<Option<BollardRuntime>> {
    use convoy_kit::sd_notify;
    let mut announced = false;
    loop {
        match BollardRuntime::connect().await {
            Ok(r) => return Ok(Some(r)),
            Err(e) => {
                tracing::warn!(error = %convoy_kit::error_chain(&e), "Docker engine unreachable; retrying every 5s");
                if !announced {
                    // Up and retrying: systemd should not time us out.
                    let _ = sd_notify::ready("waiting for the Docker engine");
                    announced = true;
                }
            }
        }
        let wait = tokio::time::sleep(Duration::from_secs(5));
        tokio::pin!(wait);
        let mut tick = tokio::time::interval(watchdog.unwrap_or(Duration::from_secs(3600)));
        loop {
            tokio::select! {
                _ = &mut wait => break,
                _ = stop.wait_for(|s| *s) => return Ok(None),
                _ = tick.tick(), if watchdog.is_some() => { let _ = sd_notify::watchdog(); }
            }
        }
    }
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
            tracing::warn!(error = %convoy_kit::error_chain(&e), "reading the Docker version failed; reported as empty");
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
                Err(e) => {
                    tracing::warn!(error = %convoy_kit::error_chain(&e), "refreshing the container directory failed")
                }
            }
        }
    });
    buffer
}

/// The daemon: the stream to the control plane, the engine behind it.
/// READY=1 once the journal is open (and Docker answers, or is being
/// retried); WATCHDOG=1 from this loop while the journal answers;
/// STOPPING=1 on SIGTERM, then the current apply step finishes or parks
/// and the journal is flushed. Containers keep running.
async fn run(d: Daemon) -> anyhow::Result<()> {
    use convoy_kit::sd_notify;
    let data_dir = d.data_dir;
    let watchdog = sd_notify::watchdog_interval();
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        tracing::info!("signal received; shutting down (containers keep running)");
        let _ = sd_notify::stopping();
        stop_tx.send_replace(true);
    });
    let Some(runtime) = connect_docker(&mut stop_rx, watchdog).await? else {
        tracing::info!("agent stopped before Docker answered");
        return Ok(());
    };
    let runtime = Arc::new(runtime);
    let engine =
        Arc::new(StackEngine::open(&data_dir, runtime.clone()).context("opening the journal")?);
    let hooks = Arc::new(StreamBridge::new(engine.clone(), &data_dir));
    let telemetry = start_telemetry(&d.stream, runtime).await;
    let agent = Agent::new(AgentDir::new(&data_dir), d.stream, hooks).with_telemetry(telemetry);
    if let Err(e) = sd_notify::ready(&format!("running from {}", data_dir.display())) {
        tracing::warn!(error = %e, "sd_notify READY failed");
    }
    let stream = agent.run(stop_rx.clone());
    tokio::pin!(stream);
    let mut tick = tokio::time::interval(watchdog.unwrap_or(Duration::from_secs(3600)));
    let mut journal_check = tokio::time::interval(JOURNAL_CHECK);
    let mut exit_at: Option<tokio::time::Instant> = None;
    let result = loop {
        tokio::select! {
            r = &mut stream => break r.context("agent stream"),
            _ = journal_check.tick() => {
                if engine.journal_refuses_writes() {
                    let at = *exit_at.get_or_insert_with(|| {
                        tracing::error!(
                            grace_secs = JOURNAL_EXIT_GRACE.as_secs(),
                            "the journal takes no more writes; exiting once the reports held in memory are delivered"
                        );
                        tokio::time::Instant::now() + JOURNAL_EXIT_GRACE
                    });
                    if engine.held_reports() == 0 || tokio::time::Instant::now() >= at {
                        break Err(anyhow::anyhow!(
                            "the journal in {} takes no more writes (a full disk? see the error logged before): \
                             exiting so that systemd restarts the agent and it reopens the journal",
                            data_dir.display()
                        ));
                    }
                }
            }
            _ = tick.tick(), if watchdog.is_some() => {
                // Fed only while the journal answers: a wedged store or a
                // starved runtime gets the agent restarted.
                let e = engine.clone();
                let probe = tokio::time::timeout(
                    watchdog.unwrap_or(Duration::from_secs(1)),
                    tokio::task::spawn_blocking(move || e.status().is_ok()),
                )
                .await;
                if matches!(probe, Ok(Ok(true))) {
                    let _ = sd_notify::watchdog();
                } else {
                    tracing::error!("journal did not answer; withholding the watchdog ping");
                }
            }
        }
    };
    // Finish or park the current apply step and flush the journal; past the
    // grace period, stop hard (the journal is crash-safe by design).
    if tokio::time::timeout(SHUTDOWN_GRACE, engine.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("apply step did not park within 60s; stopping hard");
        engine.abort().await;
    }
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
            init_logging(cli.log_format.unwrap_or(LogFormat::Text), "info");
            let e = convoy_host_agent::stream::enroll(&server, &token, &AgentDir::new(&data_dir))
                .await
                .context("enrollment failed")?;
            println!("enrolled as host {} in fleet {}", e.host, e.fleet);
        }
        Command::Run {
            data_dir,
            config,
            server,
            log_level,
            print_config,
        } => {
            let mut flags = toml::Table::new();
            let mut flag = |k: &str, v: Option<String>| {
                if let Some(v) = v {
                    flags.insert(k.into(), toml::Value::String(v));
                }
            };
            flag("data_dir", data_dir.map(|d| d.display().to_string()));
            flag("server", server);
            flag("log_level", log_level);
            flag(
                "log_format",
                cli.log_format.map(|f| match f {
                    LogFormat::Text => "text".into(),
                    LogFormat::Json => "json".into(),
                }),
            );
            let (file, required) = match config {
                Some(p) => (p, true),
                None => (PathBuf::from(DEFAULT_CONFIG_FILE), false),
            };
            let d = layered(&file, required, flags)?;
            if print_config {
                // Nothing in the agent's config is secret (the join token
                // is never stored; the key lives in the data dir).
                print!("{}", d.table);
                return Ok(std::process::ExitCode::SUCCESS);
            }
            init_logging(d.log_format, &d.log_level);
            run(d).await?;
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
            init_logging(cli.log_format.unwrap_or(LogFormat::Text), "warn");
            if !local::apply(data_dir, source, wait, json).await? {
                return Ok(std::process::ExitCode::from(2));
            }
        }
        Command::Status { data_dir, json } => {
            init_logging(cli.log_format.unwrap_or(LogFormat::Text), "warn");
            local::status(data_dir, json).await?
        }
    }
    Ok(std::process::ExitCode::SUCCESS)
}
