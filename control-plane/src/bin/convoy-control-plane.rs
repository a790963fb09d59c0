//! `convoy-control-plane`: the control plane daemon and its local admin commands.

use clap::{Parser, Subcommand};
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
    /// Print the protocol version this build speaks.
    ProtocolVersion,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    logging::init(cli.log_format, "info");
    match cli.command {
        Command::ProtocolVersion => {
            println!("{}", convoy_shared::proto::PROTOCOL_VERSION);
        }
    }
    Ok(())
}
