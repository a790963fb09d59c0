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
    /// One host's telemetry: CPU, memory, disks, and each GPU with its
    /// numbers and the containers (stack/service) using it.
    Host { name: String },
    /// Revoke a host: close its stream, refuse its certificate; it can
    /// re-join only with a new token.
    Revoke { host: String },
    /// Run a whole Convoy on this machine on embedded defaults: a control
    /// plane, a local git fleet repo, one enrolled agent and a demo stack.
    Quickstart {
        /// Where the quickstart keeps its data, repo and logs.
        #[arg(long, default_value = ".convoy-quickstart")]
        dir: PathBuf,
        #[arg(long, default_value_t = 7443)]
        agent_port: u16,
        #[arg(long, default_value_t = 8443)]
        api_port: u16,
        /// On exit, also remove the demo stack and the quickstart dir.
        #[arg(long)]
        cleanup: bool,
        /// Exit as soon as the first rollout completed (for scripts and CI).
        #[arg(long)]
        exit_after_rollout: bool,
    },
    /// The fleet at a glance: git sync, last good commit, current rollout.
    Status,
    /// Show the current rollout (or one by id); `--watch` follows it until
    /// it ends.
    Rollout {
        /// A rollout id (default: the current one).
        id: Option<String>,
        #[arg(long)]
        watch: bool,
    },
    /// Recent rollouts, newest first.
    Rollouts,
    /// Let the current rollout's waiting wave start (`approval = true`).
    Promote,
    /// Stop the current rollout where it is (hosts keep what they have).
    Abort {
        #[arg(long)]
        reason: Option<String>,
    },
    /// Stop the current rollout and send the previous state to every host
    /// already updated.
    Rollback {
        #[arg(long)]
        reason: Option<String>,
    },
    /// Fetch the fleet repo now instead of at the next poll.
    Sync,
    /// The audit log, newest first: commits, rollout transitions, reports,
    /// operator actions (with the API token's name).
    Events {
        #[arg(long)]
        host: Option<String>,
        #[arg(long)]
        stack: Option<String>,
        #[arg(long)]
        rollout: Option<String>,
        #[arg(long)]
        kind: Option<String>,
        /// Entries older than this sequence number (the next page).
        #[arg(long)]
        before: Option<u64>,
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Show alerts and their delivery state per sink instead.
        #[arg(long)]
        alerts: bool,
    },
    /// Alert sinks.
    Alerts {
        #[command(subcommand)]
        command: AlertsCommand,
    },
    /// Print the protocol version this build speaks.
    ProtocolVersion,
}

#[derive(Debug, Subcommand)]
enum AlertsCommand {
    /// Send a test alert to one sink (ignoring its filters).
    Test { sink: String },
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
    let remote = match &cli.command {
        Command::Validate { path, json, plan } => return validate::run(path, *json, *plan),
        Command::ProtocolVersion => {
            println!("{}", convoy_shared::proto::PROTOCOL_VERSION);
            return ExitCode::SUCCESS;
        }
        Command::Quickstart {
            dir,
            agent_port,
            api_port,
            cleanup,
            exit_after_rollout,
        } => {
            let opts = convoy_control_plane::quickstart::Options {
                dir: dir.clone(),
                agent_port: *agent_port,
                api_port: *api_port,
                cleanup: *cleanup,
                exit_after_rollout: *exit_after_rollout,
            };
            let rt = match tokio::runtime::Runtime::new() {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("error: starting the runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            rt.block_on(convoy_control_plane::quickstart::run(opts))
        }
        _ => remote(&cli),
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
            Command::Host { name } => {
                let v = client
                    .request(
                        hyper::Method::GET,
                        &format!("/api/v1/hosts/{name}/telemetry"),
                        None,
                    )
                    .await?;
                if cli.json {
                    println!("{v}");
                } else {
                    print!("{}", convoy_control_plane::hostview::host_text(&v));
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
            Command::Status => {
                let v = client
                    .request(hyper::Method::GET, "/api/v1/status", None)
                    .await?;
                if cli.json {
                    println!("{v}");
                } else {
                    print_status(&v);
                }
            }
            Command::Rollout { id, watch } => {
                let path = match id {
                    Some(id) => format!("/api/v1/rollouts/{id}"),
                    None => "/api/v1/rollouts/current".to_owned(),
                };
                let mut last = String::new();
                loop {
                    let v = client.request(hyper::Method::GET, &path, None).await?;
                    let shown = if cli.json {
                        v.to_string()
                    } else {
                        rollout_text(&v)
                    };
                    if shown != last {
                        if *watch && !cli.json {
                            println!("--- {}", chrono_now());
                        }
                        println!("{shown}");
                        last = shown;
                    }
                    let done = v
                        .get("status")
                        .map(|s| {
                            !matches!(
                                status_word(s).as_str(),
                                "Running" | "WaitingApproval" | "RollingBack"
                            )
                        })
                        .unwrap_or(true);
                    if !*watch || done {
                        break;
                    }
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                }
            }
            Command::Promote => {
                let v = client
                    .request(hyper::Method::POST, "/api/v1/rollouts/promote", None)
                    .await?;
                if cli.json {
                    println!("{v}");
                } else {
                    println!("{}", rollout_text(&v));
                }
            }
            Command::Sync => {
                client
                    .request(hyper::Method::POST, "/api/v1/sync", None)
                    .await?;
                println!("sync queued");
            }
            Command::Events {
                host,
                stack,
                rollout,
                kind,
                before,
                limit,
                alerts,
            } => {
                if *alerts {
                    let v = client
                        .request(hyper::Method::GET, "/api/v1/alerts", None)
                        .await?;
                    if cli.json {
                        println!("{v}");
                    } else {
                        print_events(&v);
                    }
                } else {
                    let mut q = vec![format!("limit={limit}")];
                    for (k, v) in [
                        ("host", host),
                        ("stack", stack),
                        ("rollout", rollout),
                        ("kind", kind),
                    ] {
                        if let Some(v) = v {
                            q.push(format!("{k}={v}"));
                        }
                    }
                    if let Some(b) = before {
                        q.push(format!("before={b}"));
                    }
                    let v = client
                        .request(
                            hyper::Method::GET,
                            &format!("/api/v1/events?{}", q.join("&")),
                            None,
                        )
                        .await?;
                    if cli.json {
                        println!("{v}");
                    } else {
                        print_audit(&v);
                    }
                }
            }
            Command::Rollouts => {
                let v = client
                    .request(hyper::Method::GET, "/api/v1/rollouts", None)
                    .await?;
                if cli.json {
                    println!("{v}");
                } else if let Some(list) = v.as_array() {
                    println!(
                        "{:<12} {:<14} {:<16} SUMMARY",
                        "ROLLOUT", "COMMIT", "CREATED"
                    );
                    for r in list {
                        println!(
                            "{:<12} {:<14} {:<16} {}",
                            r["id"].as_str().unwrap_or("?"),
                            short(r["commit"].as_str().unwrap_or("?")),
                            r["created_unix_ms"]
                                .as_u64()
                                .map(|ms| (ms / 1000).to_string())
                                .unwrap_or_default(),
                            r["summary"].as_str().unwrap_or("")
                        );
                    }
                }
            }
            Command::Abort { reason } | Command::Rollback { reason } => {
                let path = if matches!(cli.command, Command::Abort { .. }) {
                    "/api/v1/rollouts/abort"
                } else {
                    "/api/v1/rollouts/rollback"
                };
                let body = reason.as_ref().map_or_else(
                    || serde_json::json!({}),
                    |r| serde_json::json!({"reason": r}),
                );
                let v = client
                    .request(hyper::Method::POST, path, Some(body))
                    .await?;
                if cli.json {
                    println!("{v}");
                } else {
                    println!("{}", rollout_text(&v));
                }
            }
            Command::Alerts {
                command: AlertsCommand::Test { sink },
            } => {
                let v = client
                    .request(
                        hyper::Method::POST,
                        "/api/v1/alerts/test",
                        Some(serde_json::json!({"sink": sink})),
                    )
                    .await?;
                println!(
                    "test alert {} queued for {sink}",
                    v.get("id").and_then(|i| i.as_str()).unwrap_or("?")
                );
            }
            Command::Validate { .. } | Command::ProtocolVersion | Command::Quickstart { .. } => {}
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

fn chrono_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (h, m, s) = ((secs / 3600) % 24, (secs / 60) % 60, secs % 60);
    format!("{h:02}:{m:02}:{s:02} UTC")
}

fn short(s: &str) -> &str {
    s.get(..12).unwrap_or(s)
}

fn status_word(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Object(m) => m.keys().next().cloned().unwrap_or_default(),
        other => other.to_string(),
    }
}

fn rollout_text(v: &serde_json::Value) -> String {
    let mut out = String::new();
    let get = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or("-").to_owned();
    out.push_str(&format!(
        "rollout {}  commit {}  {}\n",
        get("id"),
        short(&get("commit")),
        get("summary")
    ));
    if let Some(hosts) = v.get("hosts").and_then(|h| h.as_object()) {
        out.push_str(&format!(
            "  {:<20} {:<12} {:<14} {:<8} TARGET\n",
            "HOST", "WAVE", "PHASE", "ONLINE"
        ));
        for (name, h) in hosts {
            let phase = status_word(h.get("phase").unwrap_or(&serde_json::Value::Null));
            out.push_str(&format!(
                "  {:<20} {:<12} {:<14} {:<8} {}\n",
                name,
                h.get("wave").and_then(|w| w.as_str()).unwrap_or("-"),
                phase,
                if h.get("online").and_then(|o| o.as_bool()) == Some(true) {
                    "yes"
                } else {
                    "no"
                },
                short(
                    h.get("target_revision")
                        .and_then(|t| t.as_str())
                        .unwrap_or("-")
                ),
            ));
        }
    }
    out.trim_end().to_owned()
}

fn print_status(v: &serde_json::Value) {
    let git = v.get("git");
    let gs = |k: &str| {
        git.and_then(|g| g.get(k))
            .and_then(|x| x.as_str())
            .unwrap_or("-")
            .to_owned()
    };
    println!(
        "fleet            {}",
        v.get("fleet").and_then(|f| f.as_str()).unwrap_or("-")
    );
    println!("repo             {} ({})", gs("url"), gs("branch"));
    println!("head             {}", short(&gs("head")));
    if let Some(e) = git
        .and_then(|g| g.get("last_error"))
        .and_then(|e| e.as_str())
    {
        println!("last sync error  {e}");
    }
    println!(
        "last good commit {}",
        short(
            v.get("last_good_commit")
                .and_then(|c| c.as_str())
                .unwrap_or("-")
        )
    );
    let connected: Vec<&str> = v
        .get("connected_hosts")
        .and_then(|c| c.as_array())
        .map(|a| a.iter().filter_map(|x| x.as_str()).collect())
        .unwrap_or_default();
    println!(
        "connected hosts  {}",
        if connected.is_empty() {
            "-".to_owned()
        } else {
            connected.join(", ")
        }
    );
    match v.get("current_rollout") {
        Some(r) if !r.is_null() => println!("{}", rollout_text(r)),
        _ => println!("no rollout yet"),
    }
}

fn print_events(v: &serde_json::Value) {
    let Some(list) = v.as_array() else { return };
    if list.is_empty() {
        println!("no alerts");
        return;
    }
    for e in list {
        let a = &e["alert"];
        let states: Vec<String> = e["deliveries"]
            .as_array()
            .map(|d| {
                d.iter()
                    .map(|x| {
                        format!(
                            "{}:{}",
                            x["sink"].as_str().unwrap_or("?"),
                            status_word(&x["state"])
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        println!(
            "{}  {:<8} {:<22} {}  [{}]",
            a["id"].as_str().unwrap_or("?"),
            status_word(&a["severity"]),
            status_word(&a["kind"]),
            a["summary"].as_str().unwrap_or(""),
            states.join(" ")
        );
    }
}

fn print_audit(v: &serde_json::Value) {
    let Some(list) = v.as_array() else { return };
    if list.is_empty() {
        println!("no events");
        return;
    }
    for e in list {
        let secs = e["at_unix_ms"].as_u64().unwrap_or(0) / 1000;
        let (h, m, s) = ((secs / 3600) % 24, (secs / 60) % 60, secs % 60);
        let mut subject = Vec::new();
        for k in ["host", "stack", "rollout"] {
            if let Some(x) = e[k].as_str() {
                subject.push(format!("{k}={x}"));
            }
        }
        if let Some(c) = e["commit"].as_str() {
            subject.push(format!("commit={}", short(c)));
        }
        println!(
            "{:>6} {h:02}:{m:02}:{s:02} {:<16} {:<16} {}  {}",
            e["seq"].as_u64().unwrap_or(0),
            e["kind"].as_str().unwrap_or("?"),
            e["who"].as_str().unwrap_or("?"),
            subject.join(" "),
            e["message"].as_str().unwrap_or("")
        );
    }
    if let Some(last) = list.last().and_then(|e| e["seq"].as_u64()) {
        println!("(older: --before {last})");
    }
}
