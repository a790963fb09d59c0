//! `convoy`: the operator CLI.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use convoy_control_plane::validate;

#[derive(Debug, Parser)]
#[command(
    name = "convoy",
    version,
    about = "Convoy operator CLI: validate fleet repos, steer rollouts, manage hosts"
)]
struct Cli {
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
    /// Print the protocol version this build speaks.
    ProtocolVersion,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Validate { path, json, plan } => validate::run(&path, json, plan),
        Command::ProtocolVersion => {
            println!("{}", convoy_shared::proto::PROTOCOL_VERSION);
            ExitCode::SUCCESS
        }
    }
}
