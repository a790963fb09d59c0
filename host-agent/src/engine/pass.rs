//! One pass over the host's stacks, in `after` order, as a pure tally:
//! which stacks came up healthy, which are blocked by one that did not,
//! and whether the host as a whole is healthy at the end.

use std::collections::BTreeSet;

use convoy_shared::render::RenderedStack;

use super::lifecycle::Outcome;

/// One pass over the host's stacks, in `after` order: which came up
/// healthy, whether all did.
#[derive(Debug, Clone)]
pub struct PassTally {
    on_host: BTreeSet<String>,
    healthy: BTreeSet<String>,
    all_healthy: bool,
    any: bool,
}

impl PassTally {
    pub fn new(stacks: &[RenderedStack]) -> PassTally {
        PassTally {
            on_host: stacks.iter().map(|s| s.name.clone()).collect(),
            healthy: BTreeSet::new(),
            all_healthy: true,
            any: !stacks.is_empty(),
        }
    }

    /// The stacks `stack` comes after that are on this host and not
    /// healthy (yet) in this pass.
    pub fn blocked_by(&self, stack: &RenderedStack) -> Vec<String> {
        stack
            .after
            .iter()
            .filter(|a| self.on_host.contains(*a) && !self.healthy.contains(*a))
            .cloned()
            .collect()
    }

    pub fn record(&mut self, stack: &str, outcome: Outcome) {
        if outcome.is_healthy() {
            self.healthy.insert(stack.to_string());
        } else {
            self.all_healthy = false;
        }
    }

    /// Every stack of a non-empty state ended healthy: the host report.
    pub fn host_healthy(&self) -> bool {
        self.any && self.all_healthy
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn stack(name: &str, after: &[&str]) -> RenderedStack {
        RenderedStack {
            name: name.into(),
            revision: "1".into(),
            compose: Default::default(),
            health: Default::default(),
            after: after.iter().map(|s| s.to_string()).collect(),
            remove_volumes: false,
            files: BTreeMap::new(),
        }
    }

    #[test]
    fn pass_tally_blocks_dependents_of_stacks_not_healthy() {
        let web = stack("web", &["db", "elsewhere"]);
        let stacks = vec![stack("db", &[]), web.clone()];
        let mut t = PassTally::new(&stacks);
        assert_eq!(
            t.blocked_by(&web),
            ["db"],
            "stacks not on this host do not block"
        );
        t.record("db", Outcome::UpToDate);
        assert!(t.blocked_by(&web).is_empty());
        t.record("web", Outcome::Healthy);
        assert!(t.host_healthy());
        t.record("x", Outcome::RolledBack);
        assert!(!t.host_healthy());
        assert!(
            !PassTally::new(&[]).host_healthy(),
            "no stacks: no host report"
        );
    }
}
