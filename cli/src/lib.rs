//! The operator CLI `convoy`: talks to the control plane's HTTPS API, and
//! runs the two things that need no control plane (`validate`, the offline
//! check of a fleet repo with the control plane's own loader, and
//! `quickstart`, a whole Convoy on this machine).
//!
//! Data flow: [`args`] parses the command line; [`commands::run`] sends each
//! remote subcommand through one [`client::ApiClient`] (reqwest, trusting
//! only the fleet CA) and prints the JSON answer with `--json`, or a table
//! from [`tables`] / [`hostview`] otherwise. [`validate`] reads the repo
//! with `convoy_shared::repo::load_dir`; [`quickstart`] starts the sibling
//! binaries `convoy-control-plane` and `convoy-agent`.

pub mod args;
pub mod client;
pub mod commands;
pub mod hostview;
pub mod quickstart;
pub mod tables;
pub mod validate;
