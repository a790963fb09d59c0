//! What one host is meant to run: the stacks whose selector matches its
//! labels, fully interpolated, in `after` order, each with a content hash
//! (its revision), and the host revision over all of them. This is what the
//! control plane sends (`DesiredState.state_json`) and the agent journals.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::compose::ComposeFile;
use crate::fleet::HealthPolicy;

/// Format version of the JSON encoding of [`HostState`]; bump on any
/// incompatible change and keep reading the old one (README "Upgrades").
pub const HOST_STATE_FORMAT: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostState {
    pub format: u32,
    pub fleet: String,
    pub host: String,
    /// SHA-256 (hex) over the canonical encoding of `stacks`.
    pub revision: String,
    /// In apply order (`after` respected).
    pub stacks: Vec<RenderedStack>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RenderedStack {
    pub name: String,
    /// SHA-256 (hex) over the canonical encoding of everything below.
    pub revision: String,
    pub compose: ComposeFile,
    pub health: HealthPolicy,
    pub after: Vec<String>,
    pub remove_volumes: bool,
    /// Files of the stack directory referenced by relative bind mounts, by
    /// path relative to the stack directory. The agent writes them under its
    /// data dir and binds from there.
    pub files: BTreeMap<String, Vec<u8>>,
}
