//! Raising and resolving alert conditions, and emitting held resolves:
//! what to do with a condition is a pure function of its current state
//! (`decide_*`); the store applies the change atomically.

use super::model::{self, Alert, AlertEvent, EventKind};
use super::{Alerts, AlertsError, Raised, ms};
use crate::store::{CondState, Condition, ConditionChange, NewAlert, Resolving};

/// Raising an alert for a condition in state `before`.
pub(super) fn decide_raise(
    before: Option<&Condition>,
    new: &NewAlert,
    resolvable: bool,
) -> (ConditionChange, Raised) {
    match before {
        Some(c) if c.state == CondState::Open => (
            ConditionChange::default(),
            Raised::Duplicate {
                id: c.alert.id.clone(),
            },
        ),
        Some(c) if c.state == CondState::Resolving => {
            let mut c = c.clone();
            c.state = CondState::Open;
            c.flaps = c.flaps.saturating_add(1);
            let raised = Raised::Flapped {
                id: c.alert.id.clone(),
                flaps: c.flaps,
            };
            (
                ConditionChange {
                    condition: Some(c),
                    resolving: Resolving::Clear,
                    alert: None,
                },
                raised,
            )
        }
        _ => (
            ConditionChange {
                condition: Some(Condition {
                    state: CondState::Open,
                    resolvable,
                    flaps: 0,
                    alert: new.alert.clone(),
                }),
                resolving: Resolving::Keep,
                alert: Some(new.clone()),
            },
            Raised::New {
                id: new.alert.id.clone(),
                sinks: new.sinks.clone(),
            },
        ),
    }
}

/// Resolving a condition in state `before` at `now_ms`: an open,
/// resolvable one is held for the flap window. The bool: it was open.
pub(super) fn decide_resolve(before: Option<&Condition>, now_ms: u64) -> (ConditionChange, bool) {
    match before {
        Some(c) if c.state == CondState::Open && c.resolvable => {
            let mut c = c.clone();
            c.state = CondState::Resolving;
            (
                ConditionChange {
                    condition: Some(c),
                    resolving: Resolving::Hold { since_ms: now_ms },
                    alert: None,
                },
                true,
            )
        }
        _ => (ConditionChange::default(), false),
    }
}

/// The "resolved" message of a condition's opening alert.
pub(super) fn resolved_alert(c: &Condition, now_ms: u64) -> Alert {
    let mut a = c.alert.clone();
    a.id = format!("{}.resolved", c.alert.id);
    a.resolved = true;
    a.created_at_ms = now_ms;
    a.summary = match (a.kind, &a.host) {
        (EventKind::HostOffline, Some(h)) => format!("Host {h} is back online"),
        _ => format!("Resolved: {}", c.alert.summary),
    };
    if c.flaps > 0 {
        a.summary.push_str(&format!(" (flapped {} times)", c.flaps));
        a.details.insert("flaps".into(), c.flaps.to_string());
    }
    a
}

/// A held resolve whose flap window passed: the condition becomes resolved
/// and its "resolved" message is stored (unless it re-opened meanwhile).
/// Returns the message's id and sink count when one is stored.
pub(super) fn decide_emit(
    before: Option<&Condition>,
    seq: u64,
    now_ms: u64,
    sinks: impl Fn(&Alert) -> Vec<String>,
) -> (ConditionChange, Option<(String, usize)>) {
    let clear = ConditionChange {
        resolving: Resolving::Clear,
        ..ConditionChange::default()
    };
    let Some(c) = before.filter(|c| c.state == CondState::Resolving) else {
        return (clear, None);
    };
    let alert = resolved_alert(c, now_ms);
    let sinks = sinks(&alert);
    let emitted = (alert.id.clone(), sinks.len());
    let mut c = c.clone();
    c.state = CondState::Resolved;
    (
        ConditionChange {
            condition: Some(c),
            resolving: Resolving::Clear,
            alert: Some(NewAlert {
                seq,
                alert,
                sinks,
                now_ms,
            }),
        },
        Some(emitted),
    )
}

impl Alerts {
    /// Records an event: a new alert (durably queued for every matching
    /// sink before this returns), or nothing new if its condition is open.
    /// `HostOnline` resolves `host_offline/<host>`.
    pub async fn raise(&self, event: AlertEvent) -> Result<Raised, AlertsError> {
        if let AlertEvent::HostOnline { .. } = &event {
            let condition = event.condition_key();
            let changed = self.resolve(&condition).await?;
            return Ok(Raised::Resolved { condition, changed });
        }
        let now = self.now_ms();
        let seq = self.blocking(|s| s.next_alert_seq()).await?;
        let is_test = matches!(event, AlertEvent::Test { .. });
        let key = if let AlertEvent::Test { sink, .. } = &event {
            if self.inner.config.sink(sink).is_none() {
                return Err(AlertsError::UnknownSink(sink.clone()));
            }
            format!("test/{sink}/{seq}")
        } else {
            event.condition_key()
        };
        let mut alert = event.to_alert(model::alert_id(&key, seq), &self.inner.public_url, now);
        alert.condition = key.clone();
        let sinks = self.matching_sinks(&alert);
        let new = NewAlert {
            seq,
            alert,
            sinks,
            now_ms: now,
        };
        let raised = if is_test {
            let n = new.clone();
            self.blocking(move |s| s.insert_alert(&n)).await?;
            Raised::New {
                id: new.alert.id.clone(),
                sinks: new.sinks.clone(),
            }
        } else {
            let resolvable = event.resolvable();
            let (k, n) = (key.clone(), new.clone());
            self.blocking(move |s| {
                let mut raised = None;
                s.update_condition(&k, &mut |before| {
                    let (change, r) = decide_raise(before, &n, resolvable);
                    raised = Some(r);
                    change
                })?;
                Ok(raised)
            })
            .await?
            .unwrap_or(Raised::Duplicate {
                id: new.alert.id.clone(),
            })
        };
        if let Raised::New { id, sinks } = &raised {
            self.counted(1);
            tracing::info!(alert = %id, condition = %key, kind = %new.alert.kind, severity = %new.alert.severity, sinks = sinks.len(), "alert raised");
        } else {
            tracing::debug!(condition = %key, ?raised, "alert condition already open");
        }
        self.inner.wake.notify_one();
        Ok(raised)
    }

    /// Resolves an open condition. The "resolved" message goes out once it
    /// stayed resolved for `flap_window` (re-raising it before that is
    /// flapping: same alert). Returns whether an open condition was found.
    pub async fn resolve(&self, condition_key: &str) -> Result<bool, AlertsError> {
        let now = self.now_ms();
        let k = condition_key.to_owned();
        let changed = self
            .blocking(move |s| {
                let mut changed = false;
                s.update_condition(&k, &mut |before| {
                    let (change, c) = decide_resolve(before, now);
                    changed = c;
                    change
                })?;
                Ok(changed)
            })
            .await?;
        if changed {
            tracing::info!(condition = %condition_key, "alert condition resolved (held for flap window)");
            self.inner.wake.notify_one();
        }
        Ok(changed)
    }

    /// Emits resolve messages whose flap window has passed; returns when the
    /// next one is due.
    pub(super) async fn emit_resolves(&self, now: u64) -> Result<Option<u64>, AlertsError> {
        let window = ms(self.inner.config.flap_window);
        let held = self.blocking(|s| s.held_resolves()).await?;
        let mut next: Option<u64> = None;
        for (key, since) in held {
            let at = since.saturating_add(window);
            if at > now {
                next = Some(next.map_or(at, |n| n.min(at)));
                continue;
            }
            let me = self.clone();
            let k = key.clone();
            let emitted = self
                .blocking(move |s| {
                    let seq = s.next_alert_seq()?;
                    let mut emitted = None;
                    s.update_condition(&k, &mut |before| {
                        let (change, e) = decide_emit(before, seq, now, |a| me.matching_sinks(a));
                        emitted = e;
                        change
                    })?;
                    Ok(emitted)
                })
                .await?;
            if let Some((id, n)) = emitted {
                self.counted(1);
                tracing::info!(alert = %id, condition = %key, sinks = n, "alert resolved");
            }
        }
        Ok(next)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::alerts::model::Severity;

    fn alert(id: &str) -> Alert {
        Alert {
            id: id.into(),
            condition: "host_offline/edge".into(),
            kind: EventKind::HostOffline,
            severity: Severity::Warning,
            resolved: false,
            fleet: "prod".into(),
            host: Some("edge".into()),
            stack: None,
            rollout: None,
            commit: None,
            summary: "Host edge is offline".into(),
            details: BTreeMap::new(),
            link: String::new(),
            created_at_ms: 1,
            only_sink: None,
        }
    }

    fn new(id: &str) -> NewAlert {
        NewAlert {
            seq: 7,
            alert: alert(id),
            sinks: vec!["hook".into()],
            now_ms: 1,
        }
    }

    fn cond(state: CondState) -> Condition {
        Condition {
            state,
            resolvable: true,
            flaps: 0,
            alert: alert("first"),
        }
    }

    #[test]
    fn an_open_condition_dedups_a_resolving_one_flaps_a_closed_one_reopens() {
        let (c, r) = decide_raise(None, &new("a"), true);
        assert!(matches!(r, Raised::New { ref id, .. } if id == "a"));
        assert!(c.alert.is_some() && c.condition.is_some());

        let (c, r) = decide_raise(Some(&cond(CondState::Open)), &new("b"), true);
        assert_eq!(r, Raised::Duplicate { id: "first".into() });
        assert_eq!(c, ConditionChange::default());

        let (c, r) = decide_raise(Some(&cond(CondState::Resolving)), &new("b"), true);
        assert_eq!(
            r,
            Raised::Flapped {
                id: "first".into(),
                flaps: 1
            }
        );
        assert_eq!(c.resolving, Resolving::Clear);
        assert!(c.alert.is_none(), "a flap sends nothing new");

        let (_, r) = decide_raise(Some(&cond(CondState::Resolved)), &new("c"), true);
        assert!(matches!(r, Raised::New { ref id, .. } if id == "c"));
    }

    #[test]
    fn only_an_open_resolvable_condition_is_held_for_resolve() {
        let (c, open) = decide_resolve(Some(&cond(CondState::Open)), 50);
        assert!(open);
        assert_eq!(c.resolving, Resolving::Hold { since_ms: 50 });
        let mut one_shot = cond(CondState::Open);
        one_shot.resolvable = false;
        assert!(!decide_resolve(Some(&one_shot), 50).1);
        assert!(!decide_resolve(Some(&cond(CondState::Resolving)), 50).1);
        assert!(!decide_resolve(None, 50).1);
    }

    #[test]
    fn a_held_resolve_emits_once_with_its_flaps() {
        let mut c = cond(CondState::Resolving);
        c.flaps = 3;
        let (change, emitted) = decide_emit(Some(&c), 9, 100, |_| vec!["hook".into()]);
        assert_eq!(emitted, Some(("first.resolved".into(), 1)));
        let a = change.alert.expect("a resolve message").alert;
        assert!(a.resolved);
        assert_eq!(a.summary, "Host edge is back online (flapped 3 times)");
        assert_eq!(change.condition.map(|c| c.state), Some(CondState::Resolved));
        // Re-opened meanwhile: nothing to emit, the hold is dropped.
        let (change, emitted) = decide_emit(Some(&cond(CondState::Open)), 9, 100, |_| vec![]);
        assert!(emitted.is_none() && change.alert.is_none());
        assert_eq!(change.resolving, Resolving::Clear);
    }
}
