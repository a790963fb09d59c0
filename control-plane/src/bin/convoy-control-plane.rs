//! `convoy-control-plane`: the control plane daemon and its local admin commands.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use convoy_control_plane::config::FileConfig;
use convoy_control_plane::datadir::DataDir;
use convoy_control_plane::logging::{self, LogFormat};

#[derive(Debug, Parser)]
#[command(
    name = "convoy-control-plane",
    version,
    about = "Convoy control plane: git sync, rollouts, agent gateway, API"
)]
struct Cli {
    /// Log format on stderr.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "text",
        env = "CONVOY_LOG_FORMAT"
    )]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a data dir: the fleet CA (or load the operator's), the server
    /// certificate, the store, and a first admin API token.
    Init {
        #[arg(long)]
        data_dir: PathBuf,
        /// Fleet name (the SPIFFE trust domain of agent certificates).
        #[arg(long)]
        fleet: String,
        /// DNS names or IP addresses agents and operators use to reach the
        /// control plane (one or more).
        #[arg(long = "server-name", required = true, num_args = 1..)]
        server_names: Vec<String>,
        /// Use this CA (or intermediate) certificate instead of generating one.
        #[arg(long, requires = "ca_key")]
        ca_cert: Option<PathBuf>,
        /// The private key of --ca-cert.
        #[arg(long, requires = "ca_cert")]
        ca_key: Option<PathBuf>,
    },
    /// Run the daemon.
    Run {
        #[arg(long)]
        data_dir: PathBuf,
        /// TOML config file (unknown keys are errors); flags override it.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Agent port (gRPC over mTLS). Default 0.0.0.0:7443.
        #[arg(long)]
        agent_listen: Option<SocketAddr>,
        /// Operator API port (HTTPS). Default 127.0.0.1:8443.
        #[arg(long)]
        api_listen: Option<SocketAddr>,
    },
    /// Local API token management (the daemon must be stopped: sled locks
    /// its store).
    ApiToken {
        #[command(subcommand)]
        command: ApiTokenCommand,
    },
    /// Print the protocol version this build speaks.
    ProtocolVersion,
}

#[derive(Debug, Subcommand)]
enum ApiTokenCommand {
    /// Create an API token; prints it (only its hash is stored).
    Create {
        #[arg(long)]
        data_dir: PathBuf,
        /// A name to recognise it by.
        #[arg(long)]
        name: String,
        #[arg(long, value_enum, default_value = "read")]
        scope: ScopeArg,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum ScopeArg {
    Read,
    Admin,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    logging::init(cli.log_format, "info");
    match cli.command {
        Command::Init {
            data_dir,
            fleet,
            server_names,
            ca_cert,
            ca_key,
        } => {
            let ca = ca_cert.as_deref().zip(ca_key.as_deref());
            let out = convoy_control_plane::datadir::init(
                &DataDir::new(&data_dir),
                &fleet,
                &server_names,
                ca,
                std::time::SystemTime::now(),
            )
            .with_context(|| format!("initialising {}", data_dir.display()))?;
            println!("data dir:        {}", data_dir.display());
            println!("fleet:           {fleet}");
            println!("CA fingerprint:  sha256:{}", out.ca_fingerprint);
            println!("admin API token: {}", out.admin_token);
            println!("(the token is shown only now; the control plane keeps only its hash)");
        }
        Command::Run {
            data_dir,
            config,
            agent_listen,
            api_listen,
        } => {
            let file = match &config {
                Some(p) => FileConfig::load(p)?,
                None => FileConfig::default(),
            };
            let mut cfg = file.resolve()?;
            if let Some(a) = agent_listen {
                cfg.agent_listen = a;
            }
            if let Some(a) = api_listen {
                cfg.api_listen = a;
            }
            let rt = tokio::runtime::Runtime::new().context("starting the tokio runtime")?;
            rt.block_on(async {
                let server = convoy_control_plane::server::start(&DataDir::new(&data_dir), &cfg)
                    .await
                    .with_context(|| format!("starting from {}", data_dir.display()))?;
                wait_for_signal().await?;
                tracing::info!("signal received; shutting down");
                server.shutdown().await;
                Ok::<_, anyhow::Error>(())
            })?;
        }
        Command::ApiToken {
            command:
                ApiTokenCommand::Create {
                    data_dir,
                    name,
                    scope,
                },
        } => {
            let dir = DataDir::new(&data_dir);
            let store =
                convoy_control_plane::store::Store::open(&dir.state()).with_context(|| {
                    format!(
                        "opening the store in {} (is the daemon running?)",
                        data_dir.display()
                    )
                })?;
            let token = convoy_control_plane::datadir::new_api_token();
            store.put_api_token(
                &convoy_control_plane::store::api_token_hash(&token),
                &convoy_control_plane::store::ApiTokenRecord {
                    name,
                    scope: match scope {
                        ScopeArg::Read => convoy_control_plane::store::Scope::Read,
                        ScopeArg::Admin => convoy_control_plane::store::Scope::Admin,
                    },
                    created_unix: convoy_control_plane::store::unix(std::time::SystemTime::now()),
                },
            )?;
            println!("{token}");
        }
        Command::ProtocolVersion => {
            println!("{}", convoy_shared::proto::PROTOCOL_VERSION);
        }
    }
    Ok(())
}

async fn wait_for_signal() -> anyhow::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    tokio::select! {
        _ = term.recv() => {}
        r = tokio::signal::ctrl_c() => r.context("waiting for Ctrl-C")?,
    }
    Ok(())
}
