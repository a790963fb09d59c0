//! Loading and validating a whole fleet repo: `fleet.toml`, every stack's
//! compose file, `.env`, `env_file`s and relatively bound files. Every
//! problem is collected (never just the first) as `path:line:col: message`,
//! with paths relative to the repo root.
//!
//! - [`source`]: where the files come from (a directory or a git tree);
//! - [`load`]: the order of it all — `fleet.toml` (`fleet_toml.rs`, its
//!   `[stacks.NAME]` tables in `stack_def.rs`), then each stack's directory
//!   (`stack.rs`, which hands the compose file to `compose::load`), then
//!   `checks.rs` across the fleet.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::compose::{ComposeFile, PortMapping};
use crate::fleet::Fleet;
use crate::source::Diagnostics;
use crate::source::node::Pos;

mod checks;
mod fleet_toml;
mod load;
pub mod source;
mod stack;
mod stack_def;

pub use fleet_toml::valid_name;
pub use load::{load, load_dir};
pub use source::{DirSource, MemSource, RepoSource, SourceError, normalise_rel};

pub const FLEET_FILE: &str = "fleet.toml";
/// Compose file names looked for in a stack directory, in compose's order.
pub const COMPOSE_FILES: &[&str] = &[
    "compose.yaml",
    "compose.yml",
    "docker-compose.yaml",
    "docker-compose.yml",
];
/// Default per-attempt probe timeout.
pub const DEFAULT_PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// One stack, loaded and decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadedStack {
    pub compose: ComposeFile,
    /// The compose file's path, relative to the repo.
    pub compose_path: String,
    /// Files bound relatively, by path relative to the stack directory.
    pub files: BTreeMap<String, Vec<u8>>,
    /// Every published port with where it was written.
    pub ports: Vec<(String, PortMapping, Pos)>,
}

/// A valid fleet repo (warnings may remain).
#[derive(Debug, Clone, PartialEq)]
pub struct Repo {
    pub fleet: Fleet,
    pub stacks: BTreeMap<String, LoadedStack>,
    pub warnings: Diagnostics,
}
