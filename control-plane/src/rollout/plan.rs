//! A new rollout from a commit's render: the waves, and each host of a
//! wave with its target and previous revisions and its time budget. Pure.

use std::collections::BTreeMap;

use convoy_shared::render::{HostState, Plan};
use convoy_shared::repo::Repo;

use super::step::{PlannedHost, Rollout, WaveState};

/// A host's time budget: the sum of its stacks' deadlines (they apply one
/// after another) plus the margin.
pub fn budget_ms(state: &HostState, margin_ms: u64) -> u64 {
    state
        .stacks
        .iter()
        .map(|s| u64::try_from(s.health.deadline.as_millis()).unwrap_or(u64::MAX))
        .fold(margin_ms, u64::saturating_add)
}

/// The rollout `id` of `commit`: every host the plan puts in a wave, with
/// `previous(host)` the revision it was last given. Hosts in no wave are
/// left out (they keep what they have).
pub fn new_rollout(
    id: String,
    commit: &str,
    repo: &Repo,
    plan: &Plan,
    previous: impl Fn(&str) -> Option<String>,
    margin_ms: u64,
    now_ms: u64,
) -> Rollout {
    let wave_of: BTreeMap<&str, usize> = plan
        .waves
        .iter()
        .enumerate()
        .flat_map(|(i, w)| w.hosts.iter().map(move |h| (h.as_str(), i)))
        .collect();
    let hosts = plan
        .hosts
        .iter()
        .filter_map(|(name, state)| {
            let wave = wave_of.get(name.as_str()).copied()?;
            Some(PlannedHost {
                name: name.clone(),
                wave,
                target_revision: state.revision.clone(),
                previous_revision: previous(name),
                budget_ms: budget_ms(state, margin_ms),
            })
        })
        .collect();
    let waves = plan
        .waves
        .iter()
        .map(|w| WaveState {
            name: w.name.clone(),
            max_parallel: w.max_parallel,
            approval: w.approval,
            approved: false,
        })
        .collect();
    Rollout::new(
        id,
        commit.to_owned(),
        now_ms,
        repo.fleet.rollout.on_failure,
        waves,
        hosts,
    )
}
