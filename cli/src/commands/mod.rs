//! What each subcommand does. [`run`] handles the local ones (`validate`,
//! `quickstart`, `context`, `completions`, `man`, `protocol-version`) and
//! hands the rest to [`remote`], which resolves the settings (flags > env >
//! context > defaults, [`crate::settings`]), builds one [`ApiClient`] and
//! calls the subcommand's function in [`hosts`], [`rollouts`], [`watch`] or
//! [`events`]. Each prints through [`Ui`]: a table, or the API's answer as
//! JSON or YAML.
//!
//! Exit codes: [`crate::exit`] (0 ok, 1 failed, 2 usage, 3 unreachable,
//! 4 auth refused, 5 not found, 6 watch timed out); the error chain goes to
//! stderr as `error: ...`.

pub mod contexts;
pub mod events;
pub mod generate;
pub mod hosts;
pub mod rollouts;
pub mod watch;

use std::process::ExitCode;

use anyhow::Context;

use crate::args::{AlertsCommand, Cli, Command, TokensCommand};
use crate::client::ApiClient;
use crate::exit::{self, Usage};
use crate::output::Ui;
use crate::{quickstart, validate};

/// Runs the parsed command line.
pub fn run(cli: &Cli) -> ExitCode {
    let ui = Ui::detect(cli.format(), cli.color);
    let result = match &cli.command {
        Command::Validate { path, plan } => return validate::run(path, &ui, *plan),
        Command::ProtocolVersion => {
            let v = serde_json::json!({"protocol_version": convoy_shared::proto::PROTOCOL_VERSION});
            ui.emit(&v, |v, _| v["protocol_version"].to_string())
        }
        Command::Completions { shell } => generate::completions(*shell),
        Command::Man { out } => generate::man(out.as_deref()),
        Command::Context { command } => contexts::run(cli, &ui, command),
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
            tokio::runtime::Runtime::new()
                .context("starting the runtime")
                .and_then(|rt| rt.block_on(quickstart::run(opts, &ui)))
        }
        _ => remote(cli, &ui),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            ui.error(&format!("{e:#}"));
            ExitCode::from(exit::code_for(&e))
        }
    }
}

/// The API client for the settings in effect.
pub fn client(cli: &Cli) -> anyhow::Result<ApiClient> {
    let s = contexts::effective(cli)?;
    let ca_path = s.ca_path()?;
    let ca_pem = std::fs::read_to_string(ca_path)
        .map_err(|e| Usage(format!("reading the CA {}: {e}", ca_path.display())))?;
    let token = s.read_token()?;
    Ok(ApiClient::new(
        &s.api.0,
        token,
        &ca_pem,
        &ca_path.display().to_string(),
    )?)
}

/// The subcommands that talk to the control plane's API.
fn remote(cli: &Cli, ui: &Ui) -> anyhow::Result<()> {
    let client = client(cli)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    let c = &client;
    rt.block_on(async {
        match &cli.command {
            Command::Tokens {
                command: TokensCommand::Create { host, labels, ttl },
            } => hosts::create_token(c, ui, host, labels, ttl).await,
            Command::Hosts => hosts::list(c, ui).await,
            Command::Host { name } => hosts::show(c, ui, name).await,
            Command::Revoke { host } => hosts::revoke(c, ui, host).await,
            Command::Status => rollouts::status(c, ui).await,
            Command::Rollout {
                id,
                watch: true,
                commit,
                timeout,
            } => {
                let w = watch::Watch {
                    id: id.as_deref(),
                    commit: commit.as_deref(),
                    timeout: *timeout,
                };
                watch::run(c, ui, w).await
            }
            Command::Rollout { id, .. } => rollouts::show(c, ui, id.as_deref()).await,
            Command::Rollouts => rollouts::list(c, ui).await,
            Command::Promote => rollouts::promote(c, ui).await,
            Command::Abort { reason } => {
                rollouts::stop(c, ui, "/api/v1/rollouts/abort", reason.as_deref()).await
            }
            Command::Rollback { reason } => {
                rollouts::stop(c, ui, "/api/v1/rollouts/rollback", reason.as_deref()).await
            }
            Command::Sync => rollouts::sync(c, ui).await,
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
                    events::alerts(c, ui).await
                } else {
                    let filter = events::Filter {
                        host: host.as_deref(),
                        stack: stack.as_deref(),
                        rollout: rollout.as_deref(),
                        kind: kind.as_deref(),
                        before: *before,
                        limit: *limit,
                    };
                    events::audit(c, ui, &filter).await
                }
            }
            Command::Alerts {
                command: AlertsCommand::Test { sink },
            } => events::test_alert(c, ui, sink).await,
            Command::Validate { .. }
            | Command::ProtocolVersion
            | Command::Quickstart { .. }
            | Command::Context { .. }
            | Command::Completions { .. }
            | Command::Man { .. } => Ok(()),
        }
    })
}
