//! Exit codes, one table for the whole CLI (README, `--help` footer):
//! scripts can tell "the control plane is down" from "my token is wrong"
//! from "no such host" without parsing messages.

use reqwest::StatusCode;
use thiserror::Error;

use crate::client::ClientError;

/// Done.
pub const OK: u8 = 0;
/// Failed: an error, an invalid fleet repo (`validate`), a rejected commit
/// or a rollout that halted or rolled back (`rollout --watch`).
pub const FAILURE: u8 = 1;
/// Usage: bad flags or arguments, no CA or API configured, an unknown
/// context, an unreadable or insecure config or token file.
pub const USAGE: u8 = 2;
/// The control plane could not be reached (TCP, TLS or a timeout).
pub const UNREACHABLE: u8 = 3;
/// The API refused the token (401 or 403).
pub const AUTH: u8 = 4;
/// The API has no such thing (404: host, rollout, commit).
pub const NOT_FOUND: u8 = 5;
/// `rollout --watch` gave up after `--timeout`.
pub const TIMED_OUT: u8 = 6;

/// The `--help` footer (and the man pages' extra section).
pub const HELP_FOOTER: &str = "\
Exit codes:
  0  ok
  1  failed (error; invalid fleet repo; rejected commit, halted or rolled-back rollout)
  2  usage (bad flags; no API/CA configured; unknown context; insecure token file)
  3  control plane unreachable (connect, TLS or timeout)
  4  auth refused (401/403: missing, wrong or read-only token)
  5  not found (404)
  6  rollout --watch timed out

Settings come from flags, then CONVOY_API / CONVOY_TOKEN / CONVOY_TOKEN_FILE /
CONVOY_CA, then the current context of the config file
($CONVOY_CLI_CONFIG, else $XDG_CONFIG_HOME/convoy/config.toml, else
~/.config/convoy/config.toml; see `convoy context --help`).";

/// A usage problem found after parsing (exit 2).
#[derive(Debug, Error)]
#[error("{0}")]
pub struct Usage(pub String);

/// `rollout --watch`: the rollout (or its commit) did not succeed (exit 1).
#[derive(Debug, Error)]
#[error("{0}")]
pub struct RolloutFailed(pub String);

/// `rollout --watch`: `--timeout` passed (exit 6).
#[derive(Debug, Error)]
#[error("gave up after {0}")]
pub struct TimedOut(pub String);

/// The exit code for an error: the first cause in its chain that has one.
pub fn code_for(e: &anyhow::Error) -> u8 {
    for cause in e.chain() {
        if let Some(c) = cause.downcast_ref::<ClientError>() {
            return match c {
                ClientError::Connect { .. } | ClientError::Timeout => UNREACHABLE,
                ClientError::Api { status, .. } => match *status {
                    StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => AUTH,
                    StatusCode::NOT_FOUND => NOT_FOUND,
                    _ => FAILURE,
                },
                ClientError::BadUrl(_) | ClientError::Ca { .. } => USAGE,
                _ => FAILURE,
            };
        }
        if cause.is::<Usage>() {
            return USAGE;
        }
        if cause.is::<TimedOut>() {
            return TIMED_OUT;
        }
        if cause.is::<RolloutFailed>() {
            return FAILURE;
        }
    }
    FAILURE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_of_failure_has_its_code_through_any_context() {
        let api = |status| {
            anyhow::Error::new(ClientError::Api {
                status,
                message: "m".into(),
            })
            .context("GET /api/v1/hosts")
        };
        assert_eq!(code_for(&api(StatusCode::UNAUTHORIZED)), AUTH);
        assert_eq!(code_for(&api(StatusCode::FORBIDDEN)), AUTH);
        assert_eq!(code_for(&api(StatusCode::NOT_FOUND)), NOT_FOUND);
        assert_eq!(code_for(&api(StatusCode::CONFLICT)), FAILURE);
        let down = anyhow::Error::new(ClientError::Connect {
            addr: "127.0.0.1:1".into(),
            cause: "Connection refused".into(),
        });
        assert_eq!(code_for(&down), UNREACHABLE);
        assert_eq!(code_for(&ClientError::Timeout.into()), UNREACHABLE);
        assert_eq!(code_for(&ClientError::BadUrl("x".into()).into()), USAGE);
        assert_eq!(
            code_for(&anyhow::Error::new(Usage("no CA".into())).context("x")),
            USAGE
        );
        assert_eq!(code_for(&TimedOut("5m".into()).into()), TIMED_OUT);
        assert_eq!(code_for(&RolloutFailed("halted".into()).into()), FAILURE);
        assert_eq!(code_for(&anyhow::anyhow!("anything else")), FAILURE);
    }
}
