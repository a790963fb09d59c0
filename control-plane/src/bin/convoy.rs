//! `convoy`: the operator CLI.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use convoy_control_plane::api::HostView;
use convoy_control_plane::client::ApiClient;
use convoy_control_plane::validate;

#[derive(Debug, Parser)]
#[command(
    name = "convoy",
    version,
    about = "Convoy operator CLI: validate fleet repos, steer rollouts, manage hosts"
)]
struct Cli {
    /// The control plane's API.
    #[arg(
        long,
        global = true,
        env = "CONVOY_API",
        default_value = "https://127.0.0.1:8443"
    )]
    api: String,
    /// API bearer token.
    #[arg(long, global = true, env = "CONVOY_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// CA certificate to trust for the API (the fleet CA: ca.pem in the
    /// control plane's data dir).
    #[arg(long, global = true, env = "CONVOY_CA")]
    ca: Option<PathBuf>,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check a fleet repo offline with the control plane's own loader.
    /// Exit 0: valid; 1: invalid (every problem printed as
    /// file:line:col: message); 2: usage error.
    Validate {
        /// The fleet repo's root (the directory holding fleet.toml).
        path: PathBuf,
        /// Print the result as JSON on stdout.
        #[arg(long)]
        json: bool,
        /// Also print, per host, the stacks it gets with their revisions,
        /// and the rollout waves with their hosts.
        #[arg(long)]
        plan: bool,
    },
    /// Join tokens.
    Tokens {
        #[command(subcommand)]
        command: TokensCommand,
    },
    /// List hosts: connected or not, last seen, certificate expiry.
    Hosts,
    /// Revoke a host: close its stream, refuse its certificate; it can
    /// re-join only with a new token.
    Revoke { host: String },
    /// Print the protocol version this build speaks.
    ProtocolVersion,
}

#[derive(Debug, Subcommand)]
enum TokensCommand {
    /// Create a one-time join token for a host; prints the token.
    Create {
        #[arg(long)]
        host: String,
        /// Labels, `k=v,k2=v2`.
        #[arg(long, value_delimiter = ',')]
        labels: Vec<String>,
        /// Lifetime (e.g. 30m, 1h, 24h).
        #[arg(long, default_value = "1h")]
        ttl: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let remote = match cli.command {
        Command::Validate { path, json, plan } => return validate::run(&path, json, plan),
        Command::ProtocolVersion => {
            println!("{}", convoy_shared::proto::PROTOCOL_VERSION);
            return ExitCode::SUCCESS;
        }
        Command::Tokens { .. } | Command::Hosts | Command::Revoke { .. } => remote(&cli),
    };
    match remote {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn remote(cli: &Cli) -> anyhow::Result<()> {
    let ca_path = cli
        .ca
        .as_ref()
        .context("--ca (or CONVOY_CA) is required: the fleet CA certificate (ca.pem in the control plane's data dir)")?;
    let ca_pem = std::fs::read_to_string(ca_path)
        .with_context(|| format!("reading {}", ca_path.display()))?;
    let client = ApiClient::new(
        &cli.api,
        cli.token.clone(),
        &ca_pem,
        &ca_path.display().to_string(),
    )?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    rt.block_on(async {
        match &cli.command {
            Command::Tokens {
                command: TokensCommand::Create { host, labels, ttl },
            } => {
                let mut map = BTreeMap::new();
                for l in labels.iter().filter(|l| !l.is_empty()) {
                    let (k, v) = l
                        .split_once('=')
                        .with_context(|| format!("label {l:?}: expected k=v"))?;
                    map.insert(k.trim().to_owned(), v.trim().to_owned());
                }
                let body = serde_json::json!({"host": host, "labels": map, "ttl": ttl});
                let v = client
                    .request(hyper::Method::POST, "/api/v1/tokens", Some(body))
                    .await?;
                if cli.json {
                    println!("{v}");
                } else {
                    let token = v
                        .get("token")
                        .and_then(|t| t.as_str())
                        .context("answer has no token")?;
                    println!("{token}");
                }
            }
            Command::Hosts => {
                let v = client
                    .request(hyper::Method::GET, "/api/v1/hosts", None)
                    .await?;
                if cli.json {
                    println!("{v}");
                } else {
                    let hosts: Vec<HostView> = serde_json::from_value(v)?;
                    print_hosts(&hosts);
                }
            }
            Command::Revoke { host } => {
                let v = client
                    .request(
                        hyper::Method::POST,
                        &format!("/api/v1/hosts/{host}/revoke"),
                        None,
                    )
                    .await?;
                if cli.json {
                    println!("{v}");
                } else {
                    let closed = v.get("stream_closed").and_then(|c| c.as_bool()) == Some(true);
                    println!(
                        "revoked {host}{}",
                        if closed { " (live stream closed)" } else { "" }
                    );
                }
            }
            Command::Validate { .. } | Command::ProtocolVersion => {}
        }
        Ok(())
    })
}

fn print_hosts(hosts: &[HostView]) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let ago = |t: u64| {
        if t == 0 {
            "never".to_owned()
        } else {
            format!("{}s ago", now.saturating_sub(t))
        }
    };
    println!(
        "{:<24} {:<10} {:<12} {:<16} LABELS",
        "HOST", "STATE", "LAST SEEN", "CERT EXPIRES IN"
    );
    for h in hosts {
        let state = if h.revoked {
            "revoked"
        } else if h.connected {
            "connected"
        } else {
            "offline"
        };
        let expires = if h.cert_not_after_unix == 0 {
            "-".to_owned()
        } else {
            format!("{}s", h.cert_not_after_unix.saturating_sub(now))
        };
        let labels: Vec<String> = h.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        println!(
            "{:<24} {:<10} {:<12} {:<16} {}",
            h.name,
            state,
            ago(h.last_seen_unix),
            expires,
            labels.join(",")
        );
    }
}
