//! `convoy`: the operator CLI.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

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
    /// Print the protocol version this build speaks.
    ProtocolVersion,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::ProtocolVersion => {
            println!("{}", convoy_shared::proto::PROTOCOL_VERSION);
            ExitCode::SUCCESS
        }
    }
}
