//! `convoy-agent`: the per-host agent.

use clap::{Parser, Subcommand};

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
    /// Print the protocol version this build speaks.
    ProtocolVersion,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::ProtocolVersion => println!("{}", convoy_shared::proto::PROTOCOL_VERSION),
    }
    Ok(())
}
