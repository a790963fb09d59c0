//! The typed, validated form of `fleet.toml` (the contract in DESIGN.md
//! "The fleet repo").

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::Selector;

/// Defaults from DESIGN.md.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(120);
pub const DEFAULT_MIN_HEALTHY: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fleet {
    pub name: String,
    pub hosts: BTreeMap<String, HostDef>,
    pub stacks: BTreeMap<String, StackDef>,
    pub rollout: RolloutPolicy,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostDef {
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StackDef {
    pub name: String,
    /// Relative to the repo root, normalised, never escaping it.
    pub path: String,
    pub hosts: Selector,
    /// Stacks that must be applied and healthy on the same host first.
    pub after: Vec<String>,
    pub health: HealthPolicy,
    /// Remove the stack's named volumes when the stack is removed from a host.
    pub remove_volumes: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthPolicy {
    /// The stack must be healthy within this time after its apply starts.
    pub deadline: Duration,
    /// ... and stay healthy continuously for this long.
    pub min_healthy: Duration,
    pub probes: Vec<Probe>,
}

impl Default for HealthPolicy {
    fn default() -> Self {
        Self {
            deadline: DEFAULT_DEADLINE,
            min_healthy: DEFAULT_MIN_HEALTHY,
            probes: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Probe {
    /// The service the probe belongs to (reported when it fails).
    pub service: String,
    pub check: ProbeCheck,
    /// Per-attempt timeout (default 2s).
    pub timeout: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProbeCheck {
    /// GET the URL; healthy on a 2xx/3xx status.
    Http { url: String },
    /// Open a TCP connection to `host:port`.
    Tcp { address: String },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RolloutPolicy {
    /// In order. When fleet.toml has none: one wave named "all" holding every host.
    pub waves: Vec<Wave>,
    pub on_failure: OnFailure,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Wave {
    pub name: String,
    pub hosts: Selector,
    /// Hosts of this wave updating at once; `None` = all of them.
    pub max_parallel: Option<u32>,
    /// Wait for `convoy promote` before this wave starts.
    pub approval: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnFailure {
    /// Stop the rollout where it failed.
    #[default]
    Halt,
    /// Stop, and send the previous desired state to hosts already updated.
    Rollback,
}
