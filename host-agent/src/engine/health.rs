//! The health gate's decisions, pure: [`assess`] judges one look at a
//! stack's containers, [`GateWindow`] turns a series of looks and the time
//! they were taken into a verdict. The loop that takes the looks (engine
//! listing, probes, sleeping) is `gate.rs`.
//!
//! A stack passes when every service is running (not restarting), Docker
//! health is `healthy` where a healthcheck is defined, and every probe
//! passes, continuously for `min_healthy`, within `deadline`. An exit (other
//! than a one-shot's exit 0), a restart or an `unhealthy` fails it at once.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use convoy_shared::fleet::HealthPolicy;
use convoy_shared::render::RenderedStack;

use crate::report::GateFailure;
use crate::runtime::{ContainerInfo, ContainerState, Health, LABEL_SERVICE};

/// One look at a stack: `Ok(None)` all good, `Ok(Some(why))` not (yet)
/// healthy, `Err` failed for good. `baseline` holds each container's
/// restart count at the first look; `shots` the one-shot services (an exit
/// 0 is their success).
pub fn assess(
    stack: &RenderedStack,
    containers: &[ContainerInfo],
    baseline: &BTreeMap<String, u64>,
    shots: &BTreeSet<String>,
) -> Result<Option<GateFailure>, GateFailure> {
    let mut waiting = None;
    for (service, svc) in &stack.compose.services {
        let Some(c) = containers
            .iter()
            .find(|c| c.labels.get(LABEL_SERVICE) == Some(service))
        else {
            return Err(GateFailure {
                service: service.clone(),
                container: None,
                reason: format!("service {service} has no container"),
            });
        };
        let fail = |reason: String| GateFailure {
            service: service.clone(),
            container: Some(c.id.clone()),
            reason,
        };
        let before = baseline.get(&c.id).copied().unwrap_or(0);
        if c.restart_count > before {
            return Err(fail(format!(
                "service {service} restarted ({} restarts)",
                c.restart_count - before
            )));
        }
        match &c.state {
            ContainerState::Running => {}
            ContainerState::Exited | ContainerState::Dead => {
                if shots.contains(service) && c.exit_code == Some(0) {
                    continue;
                }
                return Err(fail(format!(
                    "service {service} exited with code {}",
                    c.exit_code.unwrap_or(-1)
                )));
            }
            ContainerState::Restarting => {
                return Err(fail(format!("service {service} is restarting")));
            }
            other => {
                waiting.get_or_insert(fail(format!("service {service} is {other:?}")));
                continue;
            }
        }
        let has_check = svc
            .healthcheck
            .as_ref()
            .is_some_and(|h| !h.disable && h.test.first().is_none_or(|t| t != "NONE"));
        match c.health {
            Some(Health::Unhealthy) => {
                return Err(fail(format!("service {service} is unhealthy")));
            }
            Some(Health::Starting) => {
                waiting.get_or_insert(fail(format!("service {service} health is starting")));
            }
            None if has_check => {
                waiting.get_or_insert(fail(format!("service {service} has no health yet")));
            }
            _ => {}
        }
    }
    Ok(waiting)
}

/// One look at a stack, probes included, as the gate loop took it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Look {
    /// Every service up (healthy where checked), every probe passing.
    Good,
    /// Not healthy yet: keep looking until the deadline.
    NotYet(GateFailure),
    /// Failed for good (an exit, a restart, `unhealthy`).
    Bad(GateFailure),
}

impl From<Result<Option<GateFailure>, GateFailure>> for Look {
    fn from(r: Result<Option<GateFailure>, GateFailure>) -> Look {
        match r {
            Ok(None) => Look::Good,
            Ok(Some(w)) => Look::NotYet(w),
            Err(f) => Look::Bad(f),
        }
    }
}

/// What the window says after a look.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Healthy,
    Failed(GateFailure),
    /// Look again.
    Watching,
}

/// The `min_healthy` / `deadline` window of one gate, fed looks and the
/// time since the stack's turn started (`at`; the deadline counts from
/// there, so slow container creation eats into it). Healthy once looks have
/// been good continuously for `min_healthy`; failed at once on a bad look,
/// or at the deadline when no good run is under way (a run that started
/// before the deadline may finish after it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GateWindow {
    deadline: Duration,
    min_healthy: Duration,
    healthy_since: Option<Duration>,
    last_wait: Option<GateFailure>,
    baseline: Option<BTreeMap<String, u64>>,
}

impl GateWindow {
    pub fn new(policy: &HealthPolicy) -> GateWindow {
        GateWindow {
            deadline: policy.deadline,
            min_healthy: policy.min_healthy,
            healthy_since: None,
            last_wait: None,
            baseline: None,
        }
    }

    /// Restart counts by container id, fixed at the first listing: a
    /// restart after it fails the gate.
    pub fn baseline(&mut self, containers: &[ContainerInfo]) -> &BTreeMap<String, u64> {
        self.baseline.get_or_insert_with(|| {
            containers
                .iter()
                .map(|c| (c.id.clone(), c.restart_count))
                .collect()
        })
    }

    pub fn observe(&mut self, at: Duration, look: Look) -> Verdict {
        match look {
            Look::Bad(f) => return Verdict::Failed(f),
            Look::Good => {
                let since = *self.healthy_since.get_or_insert(at);
                if at.saturating_sub(since) >= self.min_healthy {
                    return Verdict::Healthy;
                }
            }
            Look::NotYet(w) => {
                self.healthy_since = None;
                self.last_wait = Some(w);
            }
        }
        if self.healthy_since.is_none() && at >= self.deadline {
            let mut f = self.last_wait.take().unwrap_or_else(|| GateFailure {
                service: String::new(),
                container: None,
                reason: String::new(),
            });
            f.reason = format!(
                "not healthy for {:?} within the {:?} deadline (last: {})",
                self.min_healthy, self.deadline, f.reason
            );
            return Verdict::Failed(f);
        }
        Verdict::Watching
    }
}
#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use convoy_shared::compose::{ComposeFile, Healthcheck, Service};
    use proptest::prelude::*;

    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn policy(deadline: u64, min_healthy: u64) -> HealthPolicy {
        HealthPolicy {
            deadline: S * u32::try_from(deadline).unwrap(),
            min_healthy: S * u32::try_from(min_healthy).unwrap(),
            probes: Vec::new(),
        }
    }

    fn wait(why: &str) -> Look {
        Look::NotYet(GateFailure {
            service: "web".into(),
            container: None,
            reason: why.into(),
        })
    }

    #[test]
    fn healthy_after_min_healthy_of_continuous_good_looks() {
        let mut w = GateWindow::new(&policy(20, 3));
        assert_eq!(w.observe(S, Look::Good), Verdict::Watching);
        assert_eq!(w.observe(S * 3, Look::Good), Verdict::Watching);
        // A bad moment restarts the run.
        assert_eq!(w.observe(S * 4, wait("starting")), Verdict::Watching);
        assert_eq!(w.observe(S * 5, Look::Good), Verdict::Watching);
        assert_eq!(w.observe(S * 7, Look::Good), Verdict::Watching);
        assert_eq!(w.observe(S * 8, Look::Good), Verdict::Healthy);
    }

    #[test]
    fn deadline_fails_with_the_last_reason_unless_a_good_run_is_under_way() {
        let mut w = GateWindow::new(&policy(10, 5));
        assert_eq!(
            w.observe(S * 9, wait("health is starting")),
            Verdict::Watching
        );
        let Verdict::Failed(f) = w.observe(S * 10, wait("health is starting")) else {
            panic!("deadline passed")
        };
        assert_eq!(
            f.reason,
            "not healthy for 5s within the 10s deadline (last: health is starting)"
        );
        assert_eq!(f.service, "web");

        // Good from 8 s on: the run may finish past the deadline.
        let mut w = GateWindow::new(&policy(10, 5));
        assert_eq!(w.observe(S * 8, Look::Good), Verdict::Watching);
        assert_eq!(w.observe(S * 12, Look::Good), Verdict::Watching);
        assert_eq!(w.observe(S * 13, Look::Good), Verdict::Healthy);
    }

    #[test]
    fn a_bad_look_fails_at_once() {
        let mut w = GateWindow::new(&policy(10, 5));
        let f = GateFailure {
            service: "app".into(),
            container: Some("c1".into()),
            reason: "service app exited with code 1".into(),
        };
        assert_eq!(w.observe(S, Look::Good), Verdict::Watching);
        assert_eq!(w.observe(S * 2, Look::Bad(f.clone())), Verdict::Failed(f));
    }

    fn container(service: &str, state: ContainerState, health: Option<Health>) -> ContainerInfo {
        ContainerInfo {
            id: format!("id-{service}"),
            name: format!("s-{service}-1"),
            labels: BTreeMap::from([(LABEL_SERVICE.to_string(), service.to_string())]),
            state,
            exit_code: Some(0),
            health,
            restart_count: 0,
            image_id: "sha256:x".into(),
            image: "x".into(),
        }
    }

    #[test]
    fn assess_judges_states_health_restarts_and_one_shots() {
        let checked = Service {
            healthcheck: Some(Healthcheck {
                test: vec!["CMD".into(), "true".into()],
                interval: None,
                timeout: None,
                retries: None,
                start_period: None,
                start_interval: None,
                disable: false,
            }),
            ..Default::default()
        };
        let stack = RenderedStack {
            name: "s".into(),
            revision: "r".into(),
            compose: ComposeFile {
                services: BTreeMap::from([
                    ("web".to_string(), checked),
                    ("job".to_string(), Service::default()),
                ]),
                ..Default::default()
            },
            health: policy(10, 1),
            after: Vec::new(),
            remove_volumes: false,
            files: BTreeMap::new(),
        };
        let shots = BTreeSet::from(["job".to_string()]);
        let none = BTreeMap::new();
        let web = |h| container("web", ContainerState::Running, h);
        let job_done = container("job", ContainerState::Exited, None);
        assert_eq!(
            assess(
                &stack,
                &[web(Some(Health::Healthy)), job_done.clone()],
                &none,
                &shots
            ),
            Ok(None)
        );
        let r = assess(&stack, &[web(None), job_done.clone()], &none, &shots);
        assert!(
            matches!(&r, Ok(Some(w)) if w.reason.contains("no health yet")),
            "{r:?}"
        );
        let r = assess(
            &stack,
            &[web(Some(Health::Unhealthy)), job_done.clone()],
            &none,
            &shots,
        );
        assert!(
            matches!(&r, Err(f) if f.reason.contains("unhealthy")),
            "{r:?}"
        );
        let mut failed_job = job_done.clone();
        failed_job.exit_code = Some(3);
        let r = assess(
            &stack,
            &[web(Some(Health::Healthy)), failed_job],
            &none,
            &shots,
        );
        assert!(
            matches!(&r, Err(f) if f.reason.contains("exited with code 3")),
            "{r:?}"
        );
        let mut restarted = web(Some(Health::Healthy));
        restarted.restart_count = 2;
        let base = BTreeMap::from([("id-web".to_string(), 1)]);
        let r = assess(&stack, &[restarted, job_done.clone()], &base, &shots);
        assert!(
            matches!(&r, Err(f) if f.reason.contains("restarted (1 restarts)")),
            "{r:?}"
        );
        let r = assess(&stack, &[job_done], &none, &shots);
        assert!(
            matches!(&r, Err(f) if f.reason.contains("has no container")),
            "{r:?}"
        );
    }

    #[derive(Debug, Clone)]
    enum L {
        Good,
        NotYet,
        Bad,
    }

    fn arb_looks() -> impl Strategy<Value = Vec<(u64, L)>> {
        prop::collection::vec(
            (
                1u64..3_000,
                prop_oneof![4 => Just(L::Good), 3 => Just(L::NotYet), 1 => Just(L::Bad)],
            ),
            1..60,
        )
    }

    proptest! {
        /// Against a direct reading of the rule: healthy exactly when the
        /// good looks have run unbroken for min_healthy; failed on a bad
        /// look, or at the deadline with no good run under way; and a
        /// verdict is final (the loop stops at it).
        #[test]
        fn the_window_follows_the_rule(
            deadline_ms in 0u64..20_000,
            min_ms in 0u64..8_000,
            looks in arb_looks(),
        ) {
            let p = HealthPolicy {
                deadline: Duration::from_millis(deadline_ms),
                min_healthy: Duration::from_millis(min_ms),
                probes: Vec::new(),
            };
            let mut w = GateWindow::new(&p);
            let mut at = 0u64;
            let mut run_start: Option<u64> = None;
            for (step, l) in looks {
                at += step;
                let look = match l {
                    L::Good => Look::Good,
                    L::NotYet => wait("not yet"),
                    L::Bad => Look::Bad(GateFailure { service: "web".into(), container: None, reason: "bad".into() }),
                };
                let v = w.observe(Duration::from_millis(at), look);
                let expected = match l {
                    L::Bad => "failed",
                    L::Good => {
                        let since = *run_start.get_or_insert(at);
                        if at - since >= min_ms { "healthy" } else { "watching" }
                    }
                    L::NotYet => {
                        run_start = None;
                        if at >= deadline_ms { "failed" } else { "watching" }
                    }
                };
                let got = match &v {
                    Verdict::Healthy => "healthy",
                    Verdict::Failed(_) => "failed",
                    Verdict::Watching => "watching",
                };
                prop_assert_eq!(got, expected, "at {}ms", at);
                if got != "watching" {
                    break;
                }
            }
        }
    }
}
