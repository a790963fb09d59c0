//! `convoy`: the operator CLI. Everything lives in the `convoy_cli` library
//! (the tests use its client and texts); this only parses the command line.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    convoy_cli::commands::run(&convoy_cli::args::Cli::parse())
}
