//! What each subcommand does. [`run`] handles the local ones (`validate`,
//! `quickstart`, `protocol-version`) and hands the rest to [`remote`], which
//! builds one [`ApiClient`] and calls the subcommand's function in
//! [`hosts`], [`rollouts`] or [`events`]. Each prints the API's JSON with
//! `--json`, a table from [`crate::tables`] otherwise.
//!
//! Exit codes: 0 done, 1 failed (the error chain on stderr as
//! `error: ...`), 2 usage (clap; `validate` on a path that is no directory).

pub mod events;
pub mod hosts;
pub mod rollouts;

use std::process::ExitCode;

use anyhow::Context;

use crate::args::{AlertsCommand, Cli, Command, TokensCommand};
use crate::client::ApiClient;
use crate::{quickstart, validate};

/// Runs the parsed command line.
pub fn run(cli: &Cli) -> ExitCode {
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
            let opts = quickstart::Options {
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
            rt.block_on(quickstart::run(opts))
        }
        _ => remote(cli),
    };
    match remote {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The subcommands that talk to the control plane's API.
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
    let c = &client;
    let json = cli.json;
    rt.block_on(async {
        match &cli.command {
            Command::Tokens {
                command: TokensCommand::Create { host, labels, ttl },
            } => hosts::create_token(c, json, host, labels, ttl).await,
            Command::Hosts => hosts::list(c, json).await,
            Command::Host { name } => hosts::show(c, json, name).await,
            Command::Revoke { host } => hosts::revoke(c, json, host).await,
            Command::Status => rollouts::status(c, json).await,
            Command::Rollout { id, watch } => rollouts::show(c, json, id.as_deref(), *watch).await,
            Command::Rollouts => rollouts::list(c, json).await,
            Command::Promote => rollouts::promote(c, json).await,
            Command::Abort { reason } => {
                rollouts::stop(c, json, "/api/v1/rollouts/abort", reason.as_deref()).await
            }
            Command::Rollback { reason } => {
                rollouts::stop(c, json, "/api/v1/rollouts/rollback", reason.as_deref()).await
            }
            Command::Sync => rollouts::sync(c).await,
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
                    events::alerts(c, json).await
                } else {
                    let filter = events::Filter {
                        host: host.as_deref(),
                        stack: stack.as_deref(),
                        rollout: rollout.as_deref(),
                        kind: kind.as_deref(),
                        before: *before,
                        limit: *limit,
                    };
                    events::audit(c, json, &filter).await
                }
            }
            Command::Alerts {
                command: AlertsCommand::Test { sink },
            } => events::test_alert(c, sink).await,
            Command::Validate { .. } | Command::ProtocolVersion | Command::Quickstart { .. } => {
                Ok(())
            }
        }
    })
}
