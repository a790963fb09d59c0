//! The operator CLI `convoy`: talks to the control plane's HTTPS API, and
//! runs what needs no control plane (`validate`, the offline check of a
//! fleet repo with the control plane's own loader; `quickstart`, a whole
//! Convoy on this machine; `context`, the named control planes of its
//! config file; `completions` and `man`, generated from the clap model).
//!
//! Data flow: [`args`] parses the command line; [`settings`] layers the
//! connection flags over the environment over the context of [`config`]
//! over defaults; [`commands::run`] sends each remote subcommand through one
//! [`client::ApiClient`] (reqwest, trusting only the fleet CA) and prints
//! through [`output::Ui`]: the API's answer as JSON or YAML, or a table
//! from [`tables`] / [`hostview`], coloured by [`style`] only on a terminal.
//! Failures map to the exit codes of [`exit`]. [`validate`] reads the repo
//! with `convoy_shared::repo::load_dir`; [`quickstart`] starts the sibling
//! binaries `convoy-control-plane` and `convoy-agent`.

pub mod args;
pub mod client;
pub mod commands;
pub mod config;
pub mod exit;
pub mod hostview;
pub mod output;
pub mod quickstart;
pub mod settings;
pub mod style;
pub mod tables;
pub mod validate;
