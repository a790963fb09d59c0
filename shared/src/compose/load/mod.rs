//! Compose file → [`ComposeFile`]: typed decoding
//! of an interpolated tree (see [`super::interpolate::interpolate_tree`]),
//! collecting every problem with its position instead of stopping at the
//! first.
//!
//! One file per area of the compose format:
//! - [`project`]: the file's top level (`name`, `networks`, `volumes`,
//!   `services`), the entry point [`decode`];
//! - [`service`]: one service — its allowed keys and the list of areas
//!   that decode them: `image.rs`, `command.rs`, `environment.rs`
//!   (`environment`, `env_file`), `ports.rs`, `volumes.rs` (mounts and
//!   top-level volumes), `networks.rs` (service networks and top-level
//!   networks), `depends_on.rs`, `healthcheck.rs`, `container.rs`
//!   (restart, labels, user, capabilities, devices, extra_hosts, logging,
//!   ulimits, stop), `deploy.rs` (resources and GPU reservations);
//! - [`spec`]: every service key of the compose specification, so a key
//!   no area decodes is "not supported" rather than unknown;
//! - [`references`]: the cross-checks within one file once every service
//!   is decoded.
//!
//! A new service key: a field in `model.rs` and, in the area file it
//! belongs to, its name in `AREA.keys` and its decoding in `decode`. A new
//! area: its file, a `mod` line here and one entry in
//! `service::AREAS`.

mod command;
mod container;
mod depends_on;
mod deploy;
mod environment;
mod healthcheck;
mod image;
mod networks;
mod ports;
pub mod project;
pub mod references;
pub mod service;
pub mod spec;
mod volumes;

use std::collections::BTreeMap;

use super::model::{ComposeFile, PortMapping};
use crate::source::node::Pos;

pub use command::split_shell_words;
pub use ports::parse_short_port;
pub use project::decode;
pub use references::find_cycle;
pub use service::{service_keys, unsupported_service_keys};

/// What the decoder needs from the stack directory.
pub trait StackFiles {
    /// Reads a file relative to the stack directory (the caller checks that
    /// it stays inside the repo).
    fn read(&self, rel: &str) -> Result<String, String>;
}

/// A relative bind mount's source and where it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindSource {
    pub rel: String,
    pub pos: Pos,
}

#[derive(Debug, Default)]
pub struct Decoded {
    pub compose: ComposeFile,
    pub binds: Vec<BindSource>,
    /// Position of each service name (for cross-file messages).
    pub service_pos: BTreeMap<String, Pos>,
    /// Position of each published port, per service.
    pub port_pos: Vec<(String, PortMapping, Pos)>,
}

/// Compose service names (and so container names) must be DNS-friendly.
pub fn valid_service_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}
