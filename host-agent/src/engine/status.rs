//! What `convoy-agent status` shows: per stack the desired, applied and
//! last-known-good revisions and the phase, built from the journal's
//! records and the engine's live phase (a pure function of both).

use std::collections::{BTreeMap, BTreeSet};

use crate::journal::{AppliedRecord, DesiredRecord, Inflight, LkgRecord, Phase};

/// One stack as `status()` shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StackStatus {
    pub stack: String,
    pub desired_revision: Option<String>,
    pub applied_revision: Option<String>,
    pub lkg_revision: Option<String>,
    pub phase: Phase,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct HostStatus {
    pub host_revision: Option<String>,
    pub generation: u64,
    pub completed_generation: u64,
    pub stacks: Vec<StackStatus>,
}

/// Every stack any record or the desired state names; the live phase when
/// the engine has one, else the in-flight or applied record's.
pub fn stacks(
    desired: Option<&DesiredRecord>,
    applied: &BTreeMap<String, AppliedRecord>,
    lkg: &BTreeMap<String, LkgRecord>,
    inflight: &BTreeMap<String, Inflight>,
    live: &BTreeMap<String, (Phase, String)>,
) -> Vec<StackStatus> {
    let mut names: BTreeSet<String> = applied.keys().cloned().collect();
    names.extend(lkg.keys().cloned());
    names.extend(inflight.keys().cloned());
    let desired_revs: BTreeMap<String, String> = desired
        .map(|d| {
            d.state
                .stacks
                .iter()
                .map(|s| (s.name.clone(), s.revision.clone()))
                .collect()
        })
        .unwrap_or_default();
    names.extend(desired_revs.keys().cloned());
    names
        .into_iter()
        .map(|name| {
            let (phase, message) = live.get(&name).cloned().unwrap_or_else(|| {
                let phase = inflight
                    .get(&name)
                    .map(|i| i.phase)
                    .or_else(|| applied.get(&name).map(|a| a.phase))
                    .unwrap_or(Phase::Pending);
                (phase, String::new())
            });
            StackStatus {
                desired_revision: desired_revs.get(&name).cloned(),
                applied_revision: applied
                    .get(&name)
                    .map(|a| a.revision.clone())
                    .filter(|r| !r.is_empty()),
                lkg_revision: lkg.get(&name).map(|l| l.stack.revision.clone()),
                phase,
                message,
                stack: name,
            }
        })
        .collect()
}
