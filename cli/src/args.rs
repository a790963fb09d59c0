//! The command line: every subcommand and flag of `convoy` (clap derive).
//! `--api`, `--token`, `--ca` and `--json` are global; the first three also
//! come from `CONVOY_API`, `CONVOY_TOKEN` and `CONVOY_CA`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "convoy",
    version,
    about = "Convoy operator CLI: validate fleet repos, steer rollouts, manage hosts"
)]
pub struct Cli {
    /// The control plane's API.
    #[arg(
        long,
        global = true,
        env = "CONVOY_API",
        default_value = "https://127.0.0.1:8443"
    )]
    pub api: String,
    /// API bearer token.
    #[arg(long, global = true, env = "CONVOY_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// CA certificate to trust for the API (the fleet CA: ca.pem in the
    /// control plane's data dir).
    #[arg(long, global = true, env = "CONVOY_CA")]
    pub ca: Option<PathBuf>,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
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
pub enum AlertsCommand {
    /// Send a test alert to one sink (ignoring its filters).
    Test { sink: String },
}

#[derive(Debug, Subcommand)]
pub enum TokensCommand {
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
