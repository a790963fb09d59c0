//! `convoy-agent`: the per-host agent.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use convoy_host_agent::stream::{Agent, AgentConfig, AgentDir, FileHooks};

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
}

fn init_logging() {
    let filter = std::env::var("CONVOY_LOG")
        .ok()
        .or_else(|| std::env::var("RUST_LOG").ok())
        .unwrap_or_else(|| "info".into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(filter)
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .try_init();
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::ProtocolVersion => println!("{}", convoy_shared::proto::PROTOCOL_VERSION),
        Command::Enroll {
            server,
            token,
            data_dir,
        } => {
            init_logging();
            let rt = runtime()?;
            let e = rt
                .block_on(convoy_host_agent::stream::enroll(
                    &server,
                    &token,
                    &AgentDir::new(&data_dir),
                ))
                .context("enrollment failed")?;
            println!("enrolled as host {} in fleet {}", e.host, e.fleet);
        }
        Command::Run { data_dir, config } => {
            init_logging();
            let cfg = match &config {
                Some(p) => AgentConfig::load(p)?,
                None => AgentConfig::default(),
            };
            let rt = runtime()?;
            rt.block_on(async {
                let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
                let agent = Agent::new(
                    AgentDir::new(&data_dir),
                    cfg,
                    Arc::new(FileHooks::new(&data_dir)),
                );
                let mut term =
                    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                        .context("installing the SIGTERM handler")?;
                tokio::spawn(async move {
                    tokio::select! {
                        _ = term.recv() => {}
                        _ = tokio::signal::ctrl_c() => {}
                    }
                    tracing::info!("signal received; shutting down");
                    stop_tx.send_replace(true);
                });
                agent.run(stop_rx).await.context("agent stream")?;
                tracing::info!("agent stopped");
                Ok::<_, anyhow::Error>(())
            })?;
        }
    }
    Ok(())
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Runtime::new().context("starting the tokio runtime")
}
