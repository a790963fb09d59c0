//! What one host is meant to run: the stacks whose selector matches its
//! labels, fully interpolated, in `after` order, each with a content hash
//! (its revision), and the host revision over all of them. This is what the
//! control plane sends (`DesiredState.state_json`) and the agent journals.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::compose::ComposeFile;
use crate::fleet::{HealthPolicy, Wave};
use crate::repo::Repo;

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
    /// data dir and binds from there. Hex in JSON.
    #[serde(with = "hex_files")]
    pub files: BTreeMap<String, Vec<u8>>,
}

/// The content a stack revision covers (everything but the revision).
#[derive(Serialize)]
struct StackContent<'a> {
    name: &'a str,
    compose: &'a ComposeFile,
    health: &'a HealthPolicy,
    after: &'a [String],
    remove_volumes: bool,
    #[serde(with = "hex_files")]
    files: &'a BTreeMap<String, Vec<u8>>,
}

mod hex_files {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(
        files: &BTreeMap<String, Vec<u8>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.collect_map(files.iter().map(|(k, v)| (k, hex::encode(v))))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<String, Vec<u8>>, D::Error> {
        let raw = BTreeMap::<String, String>::deserialize(d)?;
        raw.into_iter()
            .map(|(k, v)| {
                hex::decode(&v)
                    .map(|b| (k, b))
                    .map_err(serde::de::Error::custom)
            })
            .collect()
    }
}

/// SHA-256 (hex) over the canonical JSON encoding of `value`: struct
/// fields in declaration order, maps sorted by key (every map in the model
/// is a `BTreeMap`), no whitespace. Comments, formatting and key order in
/// the source files cannot change it.
pub fn content_hash<T: Serialize + ?Sized>(value: &T) -> String {
    let mut h = Sha256::new();
    // Serialising our own model types cannot fail (no non-string map keys,
    // no failing Serialize impls); an error would hash as empty.
    if let Ok(bytes) = serde_json::to_vec(value) {
        h.update(&bytes);
    }
    hex::encode(h.finalize())
}

fn stack_order(repo: &Repo, on_host: &BTreeSet<&str>) -> Vec<String> {
    // Kahn's algorithm; ties broken by name so the order is stable.
    let mut indegree: BTreeMap<&str, usize> = on_host.iter().map(|s| (*s, 0)).collect();
    for s in on_host {
        for a in &repo.fleet.stacks[*s].after {
            if on_host.contains(a.as_str()) {
                *indegree.entry(s).or_default() += 1;
            }
        }
    }
    let mut ready: BTreeSet<&str> = indegree
        .iter()
        .filter(|(_, d)| **d == 0)
        .map(|(s, _)| *s)
        .collect();
    let mut out = Vec::new();
    while let Some(s) = ready.pop_first() {
        out.push(s.to_owned());
        for t in on_host {
            if repo.fleet.stacks[*t].after.iter().any(|a| a == s)
                && let Some(d) = indegree.get_mut(t)
            {
                *d -= 1;
                if *d == 0 {
                    ready.insert(t);
                }
            }
        }
    }
    out
}

/// The desired state of one host of the fleet (`None`: not in fleet.toml).
pub fn render_host(repo: &Repo, host: &str) -> Option<HostState> {
    let def = repo.fleet.hosts.get(host)?;
    let on_host: BTreeSet<&str> = repo
        .fleet
        .stacks
        .iter()
        .filter(|(_, s)| s.hosts.matches(&def.labels))
        .map(|(n, _)| n.as_str())
        .collect();
    let mut stacks = Vec::new();
    for name in stack_order(repo, &on_host) {
        let (Some(def), Some(loaded)) = (repo.fleet.stacks.get(&name), repo.stacks.get(&name))
        else {
            continue;
        };
        let content = StackContent {
            name: &name,
            compose: &loaded.compose,
            health: &def.health,
            after: &def.after,
            remove_volumes: def.remove_volumes,
            files: &loaded.files,
        };
        let revision = content_hash(&content);
        stacks.push(RenderedStack {
            name: name.clone(),
            revision,
            compose: loaded.compose.clone(),
            health: def.health.clone(),
            after: def.after.clone(),
            remove_volumes: def.remove_volumes,
            files: loaded.files.clone(),
        });
    }
    let revisions: Vec<(&str, &str)> = stacks
        .iter()
        .map(|s| (s.name.as_str(), s.revision.as_str()))
        .collect();
    Some(HostState {
        format: HOST_STATE_FORMAT,
        fleet: repo.fleet.name.clone(),
        host: host.to_owned(),
        revision: content_hash(&revisions),
        stacks,
    })
}

/// A wave of the rollout with the hosts it holds (each host is in the
/// first wave whose selector matches it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedWave {
    pub name: String,
    pub selector: String,
    pub hosts: Vec<String>,
    pub max_parallel: Option<u32>,
    pub approval: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub fleet: String,
    pub hosts: BTreeMap<String, HostState>,
    pub waves: Vec<PlannedWave>,
}

/// The wave a host belongs to (the first whose selector matches).
pub fn wave_of<'a>(waves: &'a [Wave], labels: &BTreeMap<String, String>) -> Option<&'a Wave> {
    waves.iter().find(|w| w.hosts.matches(labels))
}

pub fn plan(repo: &Repo) -> Plan {
    let hosts: BTreeMap<String, HostState> = repo
        .fleet
        .hosts
        .keys()
        .filter_map(|h| render_host(repo, h).map(|s| (h.clone(), s)))
        .collect();
    let waves = repo
        .fleet
        .rollout
        .waves
        .iter()
        .map(|w| PlannedWave {
            name: w.name.clone(),
            selector: w.hosts.as_str().to_owned(),
            hosts: repo
                .fleet
                .hosts
                .iter()
                .filter(|(_, d)| {
                    wave_of(&repo.fleet.rollout.waves, &d.labels).is_some_and(|f| f.name == w.name)
                })
                .map(|(h, _)| h.clone())
                .collect(),
            max_parallel: w.max_parallel,
            approval: w.approval,
        })
        .collect();
    Plan {
        fleet: repo.fleet.name.clone(),
        hosts,
        waves,
    }
}
