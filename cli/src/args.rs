//! The command line: every subcommand and flag of `convoy` (clap derive).
//! The connection flags (`--api`, `--ca`, `--token`, `--token-file`,
//! `--context`) and the output flags (`-o`, `--json`, `--color`) are
//! global. The connection flags hold only what was typed: the environment
//! and the config file's contexts are layered under them in
//! [`crate::settings`], not by clap.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::output::Format;
use crate::style::ColorChoice;

#[derive(Debug, Parser)]
#[command(
    name = "convoy",
    version,
    about = "Convoy operator CLI: validate fleet repos, steer rollouts, manage hosts",
    after_help = crate::exit::HELP_FOOTER
)]
pub struct Cli {
    /// The control plane's API, https://HOST:PORT [env: CONVOY_API]
    /// [default: the context's, else https://127.0.0.1:8443]
    #[arg(long, global = true, value_name = "URL")]
    pub api: Option<String>,
    /// API bearer token; visible to other local users in the process list,
    /// so prefer --token-file or a context [env: CONVOY_TOKEN]
    #[arg(
        long,
        global = true,
        value_name = "TOKEN",
        conflicts_with = "token_file"
    )]
    pub token: Option<String>,
    /// A file holding the API token, mode 0600 [env: CONVOY_TOKEN_FILE]
    #[arg(long, global = true, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// CA certificate to trust for the API (the fleet CA: ca.pem in the
    /// control plane's data dir) [env: CONVOY_CA]
    #[arg(long, global = true, value_name = "FILE")]
    pub ca: Option<PathBuf>,
    /// Use this context of the config file instead of the current one
    /// [env: CONVOY_CONTEXT]
    #[arg(long, global = true, value_name = "NAME")]
    pub context: Option<String>,
    /// Output format of commands that print data.
    #[arg(short = 'o', long, global = true, value_enum, value_name = "FORMAT")]
    pub output: Option<Format>,
    /// Same as `-o json` (kept for existing scripts).
    #[arg(long, global = true, conflicts_with = "output")]
    pub json: bool,
    /// Colour: auto = only on a terminal and when NO_COLOR is not set.
    #[arg(
        long,
        global = true,
        value_enum,
        value_name = "WHEN",
        default_value_t = ColorChoice::Auto
    )]
    pub color: ColorChoice,
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// The output format asked for (`--json` is `-o json`).
    pub fn format(&self) -> Format {
        if self.json {
            Format::Json
        } else {
            self.output.unwrap_or_default()
        }
    }
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    convoy_shared::duration::parse(s)
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check a fleet repo offline with the control plane's own loader.
    ///
    /// Exit 0: valid; 1: invalid (every problem printed as
    /// file:line:col: message); 2: usage error. `-o json|yaml` prints
    /// {valid, problems, plan}.
    Validate {
        /// The fleet repo's root (the directory holding fleet.toml).
        path: PathBuf,
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
    ///
    /// `--watch` without an id waits for the rollout of a commit: the one
    /// given with --commit, else (when run inside a checkout of the fleet
    /// repo) the checkout's HEAD, else the control plane's git head. Right
    /// after `git commit` (and push) it waits for the control plane to see
    /// the new commit (asking it to fetch now, with an admin token), then
    /// follows that commit's rollout; a newer commit's rollout that
    /// supersedes it is followed in turn. A rejected commit prints its
    /// problems. Exit 0: completed; 1: rejected, halted or rolled back;
    /// 6: --timeout passed.
    Rollout {
        /// A rollout id (default: the current one, or with --watch the
        /// commit's).
        id: Option<String>,
        /// Follow it, printing each change, until it ends.
        #[arg(short, long)]
        watch: bool,
        /// With --watch: the commit to wait for (a full id, or anything
        /// `git rev-parse` understands in the local fleet repo checkout).
        #[arg(long, requires = "watch", conflicts_with = "id", value_name = "SHA")]
        commit: Option<String>,
        /// With --watch: give up after this long (exit 6).
        #[arg(long, requires = "watch", default_value = "30m", value_parser = parse_duration, value_name = "DURATION")]
        timeout: Duration,
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
    /// Named control planes in the CLI's config file (API, CA, token).
    ///
    /// The file is $CONVOY_CLI_CONFIG, else $XDG_CONFIG_HOME/convoy/config.toml,
    /// else ~/.config/convoy/config.toml (mode 0600, written atomically).
    /// Settings in effect, highest first: flags, CONVOY_API / CONVOY_CA /
    /// CONVOY_TOKEN / CONVOY_TOKEN_FILE, the context (--context, else
    /// CONVOY_CONTEXT, else the current one), defaults.
    Context {
        #[command(subcommand)]
        command: ContextCommand,
    },
    /// Print a shell completion script (bash, zsh, fish, ...).
    ///
    /// bash: `convoy completions bash >
    /// ~/.local/share/bash-completion/completions/convoy`; zsh: save it as
    /// `_convoy` in a directory on $fpath; fish: `convoy completions fish >
    /// ~/.config/fish/completions/convoy.fish`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page, or write one page per command with --out DIR.
    ///
    /// `--out DIR` writes convoy.1, convoy-rollout.1, convoy-context-add.1,
    /// ... (read one with `man -l DIR/convoy.1`, or put DIR's parent on
    /// MANPATH as man1/).
    Man {
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ContextCommand {
    /// The contexts, the current one marked `*`.
    List,
    /// Make NAME the current context.
    Use { name: String },
    /// The settings in effect (API, CA, token source) and where each came
    /// from; the token itself is never printed.
    Show,
    /// Add a context from the global flags: `convoy context add NAME --api
    /// URL --ca FILE --token-file FILE` (or --token). Paths are stored
    /// absolute. The first context becomes the current one.
    Add {
        name: String,
        /// Replace a context of that name.
        #[arg(long)]
        force: bool,
        /// Also make it the current context.
        #[arg(long = "use")]
        make_current: bool,
    },
    /// Remove a context (if it was current, none is current afterwards).
    Remove { name: String },
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
