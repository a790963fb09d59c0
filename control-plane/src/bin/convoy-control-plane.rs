//! `convoy-control-plane`: the control plane daemon and its local admin commands.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use convoy_control_plane::config::{DEFAULT_CONFIG_FILE, Layered};
use convoy_control_plane::datadir::DataDir;
use convoy_control_plane::logging::{self, LogFormat};
use convoy_control_plane::store::FleetStore as _;
use convoy_kit::layers;

#[derive(Debug, Parser)]
#[command(
    name = "convoy-control-plane",
    version,
    about = "Convoy control plane: git sync, rollouts, agent gateway, API"
)]
struct Cli {
    /// Log format on stderr (`run`: overrides the config's `log_format`).
    #[arg(long, global = true, value_enum, env = "CONVOY_LOG_FORMAT")]
    log_format: Option<LogFormat>,
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
    /// Run the daemon. Settings: defaults < config file < CONVOY_* env <
    /// flags (README "Operations").
    Run {
        /// Data dir. Default: `data_dir` in the config, else /var/lib/convoy.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// TOML config file (unknown keys are errors). Default
        /// /etc/convoy/control-plane.toml if it exists.
        #[arg(long, env = "CONVOY_CONFIG")]
        config: Option<PathBuf>,
        /// Agent port (gRPC over mTLS). Default 0.0.0.0:7443.
        #[arg(long)]
        agent_listen: Option<SocketAddr>,
        /// Operator API port (HTTPS). Default 127.0.0.1:8443.
        #[arg(long)]
        api_listen: Option<SocketAddr>,
        /// Log filter (`info`, `debug`, ...). CONVOY_LOG / RUST_LOG win.
        #[arg(long)]
        log_level: Option<String>,
        /// Print the effective configuration (secrets redacted) and exit.
        #[arg(long)]
        print_config: bool,
    },
    /// Write a backup of a data dir (CA, certificates, store). Through the
    /// running daemon's API when it holds the store, directly otherwise.
    Backup {
        #[arg(long, env = "CONVOY_DATA_DIR")]
        data_dir: PathBuf,
        /// The backup file to write (created 0600; "-" for stdout).
        #[arg(long)]
        out: PathBuf,
        /// The daemon's API, used when the store is locked. Default:
        /// https://127.0.0.1:<api port of the config file>.
        #[arg(long, env = "CONVOY_API")]
        api: Option<String>,
        /// An admin API token (needed for an online backup).
        #[arg(long, env = "CONVOY_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// Config file, to find the API port. Default
        /// /etc/convoy/control-plane.toml if it exists.
        #[arg(long, env = "CONVOY_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Restore a backup into a data dir (the daemon must be stopped).
    Restore {
        #[arg(long, env = "CONVOY_DATA_DIR")]
        data_dir: PathBuf,
        #[arg(long)]
        from: PathBuf,
        /// Replace the contents of a non-empty data dir.
        #[arg(long)]
        force: bool,
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
    if !matches!(cli.command, Command::Run { .. }) {
        logging::init(cli.log_format.unwrap_or(LogFormat::Text), "info");
    }
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
            log_level,
            print_config,
        } => {
            let flags = layers::Flags::new()
                .set("data_dir", data_dir.map(|d| d.display().to_string()))
                .set("agent_listen", agent_listen)
                .set("api_listen", api_listen)
                .set("log_level", log_level)
                .set(
                    "log_format",
                    cli.log_format.map(|f| match f {
                        LogFormat::Text => "text",
                        LogFormat::Json => "json",
                    }),
                )
                .into_table();
            let (file, required) = layers::config_file(config, DEFAULT_CONFIG_FILE);
            let layered = Layered::build(Some(&file), required, |n| std::env::var(n).ok(), flags)
                .map_err(|e| anyhow::anyhow!(convoy_control_plane::error_chain(&e)))?;
            if print_config {
                print!("{}", layered.redacted_toml());
                return Ok(());
            }
            let cfg = layered.config;
            logging::init(cfg.log_format, &cfg.log_level);
            let data_dir = cfg.data_dir.clone();
            let rt = tokio::runtime::Runtime::new().context("starting the tokio runtime")?;
            rt.block_on(serve(data_dir, cfg))?;
        }
        Command::Backup {
            data_dir,
            out,
            api,
            token,
            config,
        } => backup(&data_dir, &out, api, token, config)?,
        Command::Restore {
            data_dir,
            from,
            force,
        } => {
            let f = std::fs::File::open(&from)
                .with_context(|| format!("opening {}", from.display()))?;
            let s = convoy_control_plane::backup::restore(
                std::io::BufReader::new(f),
                &DataDir::new(&data_dir),
                force,
            )
            .map_err(|e| anyhow::anyhow!(convoy_control_plane::error_chain(&e)))?;
            println!(
                "restored {} files, {} trees, {} records into {}",
                s.files,
                s.trees,
                s.records,
                data_dir.display()
            );
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
                convoy_control_plane::store::SledStore::open(&dir.state()).with_context(|| {
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

/// The daemon: start, tell systemd (READY=1 once both listeners are bound
/// and the controller runs), ping the watchdog from this loop while the
/// store answers, and on SIGTERM/SIGINT say STOPPING=1, drain and flush.
async fn serve(
    data_dir: PathBuf,
    cfg: convoy_control_plane::config::RunConfig,
) -> anyhow::Result<()> {
    use convoy_kit::sd_notify;
    let server = convoy_control_plane::server::start(&DataDir::new(&data_dir), &cfg)
        .await
        .with_context(|| format!("starting from {}", data_dir.display()))?;
    let status = format!(
        "serving agents on {}, the API on {}",
        server.agent_addr, server.api_addr
    );
    if let Err(e) = sd_notify::ready(&status) {
        tracing::warn!(error = %e, "sd_notify READY failed");
    }
    let watchdog = sd_notify::watchdog_interval();
    if let Some(w) = watchdog {
        tracing::info!(
            interval_ms = w.as_millis() as u64,
            "systemd watchdog enabled"
        );
    }
    let mut tick = tokio::time::interval(watchdog.unwrap_or(Duration::from_secs(3600)));
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    loop {
        tokio::select! {
            _ = term.recv() => break,
            r = tokio::signal::ctrl_c() => { r.context("waiting for Ctrl-C")?; break }
            _ = tick.tick(), if watchdog.is_some() => {
                // Ping only while the store answers (a wedged sled or a
                // starved runtime stops the pings and systemd restarts us).
                let store = server.gateway.store().clone();
                let probe = tokio::time::timeout(
                    watchdog.unwrap_or(Duration::from_secs(1)),
                    tokio::task::spawn_blocking(move || store.fleet().is_ok()),
                )
                .await;
                if matches!(probe, Ok(Ok(true))) {
                    if let Err(e) = sd_notify::watchdog() {
                        tracing::warn!(error = %e, "sd_notify WATCHDOG failed");
                    }
                } else {
                    tracing::error!("store did not answer; withholding the watchdog ping");
                }
            }
        }
    }
    tracing::info!("signal received; shutting down");
    let _ = sd_notify::stopping();
    server.shutdown().await;
    Ok(())
}

fn backup(
    data_dir: &Path,
    out: &Path,
    api: Option<String>,
    token: Option<String>,
    config: Option<PathBuf>,
) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let dir = DataDir::new(data_dir);
    // Write to a temp file next to the target and rename at the end: a
    // failed backup never leaves a file that looks like one.
    let to_stdout = out == Path::new("-");
    let tmp = if to_stdout {
        None
    } else {
        Some(out.with_extension("partial"))
    };
    let open = |p: &Path| {
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(p)
            .with_context(|| format!("creating {}", p.display()))
    };
    anyhow::ensure!(
        dir.ca_cert().exists(),
        "{} is not a control plane data dir (no ca.pem)",
        data_dir.display()
    );
    // Offline first: sled's lock says whether the daemon is running.
    let offline = match sled::Config::new().path(dir.state()).open() {
        Ok(db) => Some(db),
        Err(e) => {
            tracing::info!(error = %e, "store is in use; backing up through the daemon's API");
            None
        }
    };
    let summary = if let Some(db) = offline {
        let s = match &tmp {
            Some(t) => {
                let f = open(t)?;
                let mut w = std::io::BufWriter::new(f);
                let s = convoy_control_plane::backup::write(&dir, &db, &mut w);
                w.flush().context("writing the backup")?;
                w.get_ref().sync_all().context("syncing the backup")?;
                s
            }
            None => convoy_control_plane::backup::write(&dir, &db, std::io::stdout().lock()),
        }
        .map_err(|e| anyhow::anyhow!(convoy_control_plane::error_chain(&e)))?;
        format!(
            "offline backup: {} files, {} trees, {} records, {} bytes",
            s.files, s.trees, s.records, s.bytes
        )
    } else {
        let token = token.context(
            "the daemon is running (the store is locked): an online backup needs an admin \
             API token (--token or CONVOY_TOKEN)",
        )?;
        let api = match api {
            Some(a) => a,
            None => {
                let (file, required) = layers::config_file(config, DEFAULT_CONFIG_FILE);
                let l = Layered::build(
                    Some(&file),
                    required,
                    |n| std::env::var(n).ok(),
                    toml::Table::new(),
                )
                .map_err(|e| anyhow::anyhow!(convoy_control_plane::error_chain(&e)))?;
                format!("https://127.0.0.1:{}", l.config.api_listen.port())
            }
        };
        let ca_path = dir.ca_cert();
        let ca = std::fs::read_to_string(&ca_path)
            .with_context(|| format!("reading {}", ca_path.display()))?;
        let http = convoy_kit::https::client(&ca).map_err(|e| {
            anyhow::anyhow!(
                "CA certificate {}: {}",
                ca_path.display(),
                convoy_control_plane::error_chain(&e)
            )
        })?;
        let rt = tokio::runtime::Runtime::new().context("starting the tokio runtime")?;
        let n = rt.block_on(async {
            let timeout = Duration::from_secs(3600);
            match &tmp {
                Some(t) => {
                    let f = open(t)?;
                    let mut f = tokio::fs::File::from_std(f);
                    let n = download(&http, &api, &token, &mut f, timeout).await?;
                    f.sync_all().await.context("syncing the backup")?;
                    Ok::<_, anyhow::Error>(n)
                }
                None => download(&http, &api, &token, &mut tokio::io::stdout(), timeout).await,
            }
        })?;
        // Check it end to end before calling it a backup.
        if let Some(t) = &tmp {
            let scratch = tempdir_near(out)?;
            let f = std::fs::File::open(t).with_context(|| format!("reading {}", t.display()))?;
            let r = convoy_control_plane::backup::restore(
                std::io::BufReader::new(f),
                &DataDir::new(scratch.join("check")),
                false,
            );
            let _ = std::fs::remove_dir_all(&scratch);
            r.map_err(|e| {
                anyhow::anyhow!(
                    "the backup from {api} does not verify: {}",
                    convoy_control_plane::error_chain(&e)
                )
            })?;
        }
        format!("online backup through {api}: {n} bytes, verified")
    };
    if let Some(t) = &tmp {
        std::fs::rename(t, out).with_context(|| format!("renaming to {}", out.display()))?;
        eprintln!("{summary} -> {}", out.display());
    } else {
        eprintln!("{summary}");
    }
    Ok(())
}

/// `POST {api}/api/v1/backup` and streams the (binary) answer into `out`;
/// returns the number of bytes written. Bounded by `timeout`, not by size:
/// backups are large.
async fn download(
    http: &reqwest::Client,
    api: &str,
    token: &str,
    out: &mut (impl tokio::io::AsyncWrite + Unpin),
    timeout: Duration,
) -> anyhow::Result<u64> {
    use tokio::io::AsyncWriteExt;
    let url = format!("{}/api/v1/backup", api.trim_end_matches('/'));
    let fail = |e: reqwest::Error| {
        if e.is_timeout() {
            anyhow::anyhow!(
                "downloading from {api}: timed out after {}s",
                timeout.as_secs()
            )
        } else {
            anyhow::anyhow!(
                "downloading from {api}: {}",
                convoy_control_plane::error_chain(&e)
            )
        }
    };
    let mut resp = http
        .post(&url)
        .bearer_auth(token)
        .timeout(timeout)
        .send()
        .await
        .map_err(fail)?;
    let status = resp.status();
    if !status.is_success() {
        // An error answer is a small JSON body; read at most 64 KiB of it.
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(fail)? {
            body.extend_from_slice(&chunk);
            if body.len() > 64 * 1024 {
                break;
            }
        }
        let message = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.pointer("/error/message")?.as_str().map(str::to_owned))
            .unwrap_or_else(|| "request failed".into());
        anyhow::bail!("{status}: {message}");
    }
    let mut n = 0u64;
    while let Some(chunk) = resp.chunk().await.map_err(fail)? {
        out.write_all(&chunk).await.context("writing the backup")?;
        n += chunk.len() as u64;
    }
    out.flush().await.context("writing the backup")?;
    Ok(n)
}

/// A private scratch dir next to `path` (same filesystem, no /tmp needed).
fn tempdir_near(path: &Path) -> anyhow::Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let dir = parent.join(format!(".convoy-backup-check-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&dir)
        .with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}
