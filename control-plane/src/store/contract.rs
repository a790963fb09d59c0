//! The store's contract, as test functions over `&dyn Store`: every
//! backend runs the same suite (see `sled/tests.rs`; a second backend
//! calls [`CASES`] the same way with its own fresh stores).

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::time::{Duration, SystemTime};

use convoy_pki::{JoinToken, parse_token};
use convoy_shared::fleet::OnFailure;
use convoy_shared::proto::Report;

use super::*;
use crate::alerts::model::{Alert, EventKind, Severity};
use crate::rollout::step::{HostPhase, HostRollout, Input, PlannedHost, WaveState, step};

/// One contract case: a check of a fresh, empty store.
pub(crate) type Case = fn(&dyn Store);

/// Every contract case with its name.
pub(crate) const CASES: &[(&str, Case)] = &[
    ("fleet_name", fleet_name),
    (
        "join_tokens_are_consumed_once",
        join_tokens_are_consumed_once,
    ),
    ("hosts_and_last_seen", hosts_and_last_seen),
    ("enrollment_is_one_change", enrollment_is_one_change),
    ("revocations", revocations),
    ("reports_are_kept_once_per_id", reports_are_kept_once_per_id),
    ("api_tokens", api_tokens),
    ("rollouts_start_and_step", rollouts_start_and_step),
    ("commits_and_states", commits_and_states),
    ("audit_log", audit_log),
    (
        "outbox_conditions_and_deliveries",
        outbox_conditions_and_deliveries,
    ),
    ("outbox_prune", outbox_prune),
    ("export_visits_every_record", export_visits_every_record),
];

fn at(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
}

const FP: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

fn host(name: &str) -> HostRecord {
    HostRecord {
        name: name.into(),
        labels: BTreeMap::from([("role".into(), "edge".into())]),
        last_seen_unix: 0,
        cert_serial: String::new(),
        cert_not_after_unix: 0,
        enrolled_at_unix: 100,
    }
}

fn cert(serial: &str, host: &str) -> CertRecord {
    CertRecord {
        serial: serial.into(),
        host: host.into(),
        not_after_unix: 9_000,
        issued_at_unix: 100,
    }
}

fn fleet_name(s: &dyn Store) {
    assert!(matches!(s.fleet(), Err(StoreError::NoFleet)));
    s.set_fleet("prod").unwrap();
    assert_eq!(s.fleet().unwrap(), "prod");
}

fn join_tokens_are_consumed_once(s: &dyn Store) {
    let (printed, stored) = JoinToken::new(
        "web-1",
        BTreeMap::new(),
        Duration::from_secs(60),
        at(1_000),
        FP,
    )
    .unwrap();
    let secret = parse_token(&printed).unwrap().secret;
    s.put_token(&stored).unwrap();
    assert_eq!(s.token(&stored.id).unwrap().unwrap().host, "web-1");
    assert!(s.token("nope").unwrap().is_none());
    let used = s.consume_token(&stored.id, &secret, at(1_010)).unwrap();
    assert_eq!(used.host, "web-1");
    assert!(matches!(
        s.consume_token(&stored.id, &secret, at(1_011)),
        Err(StoreError::Token(_))
    ));
    assert!(matches!(
        s.consume_token("nope", &secret, at(1_011)),
        Err(StoreError::UnknownToken)
    ));
    let (printed, stored) = JoinToken::new(
        "web-2",
        BTreeMap::new(),
        Duration::from_secs(60),
        at(1_000),
        FP,
    )
    .unwrap();
    s.put_token(&stored).unwrap();
    assert!(matches!(
        s.consume_token(
            &stored.id,
            &parse_token(&printed).unwrap().secret,
            at(2_000)
        ),
        Err(StoreError::Token(_))
    ));
}

fn hosts_and_last_seen(s: &dyn Store) {
    s.put_host(&host("b")).unwrap();
    s.put_host(&host("a")).unwrap();
    assert_eq!(s.host_count().unwrap(), 2);
    let names: Vec<String> = s.hosts().unwrap().into_iter().map(|h| h.name).collect();
    assert_eq!(names, ["a", "b"]);
    s.touch_host("a", at(5_000)).unwrap();
    assert_eq!(s.host("a").unwrap().unwrap().last_seen_unix, 5_000);
    // Touching a host that is not enrolled creates nothing.
    s.touch_host("ghost", at(5_000)).unwrap();
    assert!(s.host("ghost").unwrap().is_none());
    s.flush().unwrap();
}

fn enrollment_is_one_change(s: &dyn Store) {
    s.put_host(&host("web")).unwrap();
    s.record_cert(&cert("01", "web")).unwrap();
    assert_eq!(s.host("web").unwrap().unwrap().cert_serial, "01");
    s.revoke_host("web", at(200)).unwrap();
    let mut again = host("web");
    again.enrolled_at_unix = 300;
    s.enroll_host(&again, &cert("02", "web")).unwrap();
    let h = s.host("web").unwrap().unwrap();
    assert_eq!(
        (h.cert_serial.as_str(), h.cert_not_after_unix),
        ("02", 9_000)
    );
    assert_eq!(h.enrolled_at_unix, 300);
    let r = s.revocations().unwrap();
    assert!(
        !r.hosts.contains("web"),
        "the host-wide revocation is lifted"
    );
    assert!(
        r.serials.contains("01"),
        "the old certificate stays revoked"
    );
    assert!(!r.serials.contains("02"));
    let mut serials: Vec<String> = s
        .certs_of("web")
        .unwrap()
        .into_iter()
        .map(|c| c.serial)
        .collect();
    serials.sort();
    assert_eq!(serials, ["01", "02"]);
}

fn revocations(s: &dyn Store) {
    s.put_host(&host("gpu")).unwrap();
    s.record_cert(&cert("aa", "gpu")).unwrap();
    s.record_cert(&cert("bb", "gpu")).unwrap();
    s.record_cert(&cert("cc", "other")).unwrap();
    s.revoke_host("gpu", at(10)).unwrap();
    let r = s.revocations().unwrap();
    assert!(r.hosts.contains("gpu"));
    assert!(r.serials.contains("aa") && r.serials.contains("bb"));
    assert!(!r.serials.contains("cc"));
    s.unrevoke_host("gpu").unwrap();
    let r = s.revocations().unwrap();
    assert!(!r.hosts.contains("gpu") && r.serials.contains("aa"));
}

fn report(host: &str, message: &str) -> StoredReport {
    StoredReport {
        host: host.into(),
        report: Report {
            message: message.into(),
            ..Report::default()
        },
    }
}

fn reports_are_kept_once_per_id(s: &dyn Store) {
    assert!(s.put_report("0002-a", &report("a", "second")).unwrap());
    assert!(s.put_report("0001-a", &report("a", "first")).unwrap());
    assert!(s.put_report("0001-b", &report("b", "other")).unwrap());
    assert!(!s.put_report("0001-a", &report("a", "resent")).unwrap());
    assert_eq!(s.report("0001-a").unwrap().unwrap().report.message, "first");
    assert!(s.report("0009").unwrap().is_none());
    let of_a: Vec<(String, String)> = s
        .reports_of("a")
        .unwrap()
        .into_iter()
        .map(|(id, r)| (id, r.report.message))
        .collect();
    assert_eq!(
        of_a,
        [
            ("0001-a".to_owned(), "first".to_owned()),
            ("0002-a".to_owned(), "second".to_owned())
        ]
    );
}

fn api_tokens(s: &dyn Store) {
    let rec = ApiTokenRecord {
        name: "ci".into(),
        scope: Scope::Read,
        created_unix: 7,
    };
    s.put_api_token(&api_token_hash("cvat_x"), &rec).unwrap();
    assert_eq!(
        s.api_tokens().unwrap(),
        vec![(api_token_hash("cvat_x"), rec)]
    );
}

fn planned(name: &str, wave: usize) -> PlannedHost {
    PlannedHost {
        name: name.into(),
        wave,
        target_revision: format!("new-{name}"),
        previous_revision: None,
        budget_ms: 10_000,
    }
}

fn rollout(id: &str) -> Rollout {
    Rollout::new(
        id.into(),
        format!("commit-{id}"),
        1_000,
        OnFailure::Halt,
        vec![WaveState {
            name: "all".into(),
            max_parallel: None,
            approval: false,
            approved: false,
        }],
        vec![planned("a", 0), planned("b", 0)],
    )
}

fn commit(id: &str, rollout: Option<&str>) -> CommitRecord {
    CommitRecord {
        id: id.into(),
        accepted: rollout.is_some(),
        problems: vec![],
        at_ms: 1_000,
        rollout_id: rollout.map(str::to_owned),
    }
}

fn rollouts_start_and_step(s: &dyn Store) {
    let first = s.next_rollout_seq().unwrap();
    assert!(s.next_rollout_seq().unwrap() > first);
    assert!(s.current_rollout_id().unwrap().is_none());
    let r1 = rollout("r1");
    let t = s.start_rollout(&commit("c1", Some("r1")), &r1).unwrap();
    s.wait_durable(t).unwrap();
    assert_eq!(s.rollout("r1").unwrap().unwrap(), r1);
    assert_eq!(s.current_rollout_id().unwrap().as_deref(), Some("r1"));
    assert_eq!(s.last_good_commit().unwrap().as_deref(), Some("c1"));
    assert_eq!(
        s.commit("c1").unwrap().unwrap().rollout_id.as_deref(),
        Some("r1")
    );

    // One step: both hosts sent, a history entry, two assignments.
    let (next, _) = step(&r1, &Input::Tick, 2_000);
    let hosts: Vec<(&str, &HostRollout)> = next
        .hosts
        .iter()
        .filter(|(n, h)| r1.hosts.get(*n) != Some(*h))
        .map(|(n, h)| (n.as_str(), h))
        .collect();
    assert_eq!(hosts.len(), 2);
    let desired = |h: &str| HostDesired {
        revision: format!("new-{h}"),
        generation: 1,
        commit: "commit-r1".into(),
        rollout_id: "r1".into(),
    };
    let assignments = vec![
        ("a".to_owned(), desired("a")),
        ("b".to_owned(), desired("b")),
    ];
    let t = s
        .write_step(&RolloutStep {
            rollout: &next,
            hosts: &hosts,
            history: &next.history[r1.history.len()..],
            history_from: r1.history.len(),
            assignments: &assignments,
        })
        .unwrap();
    s.wait_durable(t).unwrap();
    let back = s.rollout("r1").unwrap().unwrap();
    assert_eq!(back, next);
    assert!(back.hosts.values().all(|h| h.phase == HostPhase::Sent));
    assert_eq!(s.host_desired("a").unwrap().unwrap(), desired("a"));
    assert!(s.host_desired("c").unwrap().is_none());

    // A second rollout: newest first, statuses without hosts.
    let mut r2 = rollout("r2");
    r2.status = RolloutStatus::Completed;
    let t = s.start_rollout(&commit("c2", Some("r2")), &r2).unwrap();
    s.wait_durable(t).unwrap();
    let ids: Vec<String> = s.rollouts(10).unwrap().into_iter().map(|r| r.id).collect();
    assert_eq!(ids, ["r2", "r1"]);
    assert_eq!(s.rollouts(1).unwrap().len(), 1);
    assert_eq!(
        s.rollout_statuses(10).unwrap(),
        vec![RolloutStatus::Completed, next.status.clone()]
    );
    assert_eq!(s.current_rollout_id().unwrap().as_deref(), Some("r2"));
    assert!(s.rollout("r9").unwrap().is_none());
}

fn commits_and_states(s: &dyn Store) {
    s.put_commit(&commit("bad", None)).unwrap();
    assert!(!s.commit("bad").unwrap().unwrap().accepted);
    assert!(s.commit("other").unwrap().is_none());
    assert!(
        s.last_good_commit().unwrap().is_none(),
        "a rejected commit is not good"
    );
    s.put_rendered_state("vps", "rev1", b"{\"x\":1}").unwrap();
    assert_eq!(
        s.rendered_state("vps", "rev1").unwrap().as_deref(),
        Some(&b"{\"x\":1}"[..])
    );
    assert!(s.rendered_state("vps", "rev2").unwrap().is_none());
    assert!(s.rendered_state("laptop", "rev1").unwrap().is_none());
}

fn entry(i: u64) -> AuditEntry {
    AuditEntry {
        at_unix_ms: i,
        who: "ops".into(),
        kind: if i.is_multiple_of(2) {
            "report"
        } else {
            "promote"
        }
        .into(),
        host: format!("h{}", i % 3),
        message: format!("m{i}"),
        ..AuditEntry::default()
    }
}

fn audit_log(s: &dyn Store) {
    let mut last = 0;
    for i in 0..10 {
        let seq = s.append_audit(&entry(i), 8).unwrap();
        assert!(seq > last || i == 0, "sequence numbers grow");
        last = seq;
    }
    let all = s.audit(&AuditQuery::default()).unwrap();
    assert_eq!(all.len(), 8, "the oldest are pruned past `keep`");
    assert_eq!(all[0].message, "m9", "newest first");
    assert_eq!(all[7].message, "m2");
    let h1 = s
        .audit(&AuditQuery {
            host: Some("h1".into()),
            ..AuditQuery::default()
        })
        .unwrap();
    assert!(h1.iter().all(|e| e.host == "h1") && h1.len() == 2);
    let page1 = s
        .audit(&AuditQuery {
            limit: Some(3),
            ..AuditQuery::default()
        })
        .unwrap();
    let page2 = s
        .audit(&AuditQuery {
            limit: Some(3),
            before: page1.last().map(|e| e.seq),
            ..AuditQuery::default()
        })
        .unwrap();
    assert_eq!(page2[0].message, "m6");
}

fn alert(id: &str, condition: &str, at_ms: u64) -> Alert {
    Alert {
        id: id.into(),
        condition: condition.into(),
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
        created_at_ms: at_ms,
        only_sink: None,
    }
}

fn pending(s: &dyn Store) -> Vec<PendingEntry> {
    let mut out = Vec::new();
    s.scan_pending(&mut |e| {
        out.push(e.clone());
        ControlFlow::Continue(())
    })
    .unwrap();
    out
}

fn open_condition(s: &dyn Store, key: &str, id: &str, at_ms: u64, sinks: &[&str]) {
    let seq = s.next_alert_seq().unwrap();
    let a = alert(id, key, at_ms);
    s.update_condition(key, &mut |before| {
        assert!(before.is_none());
        ConditionChange {
            condition: Some(Condition {
                state: CondState::Open,
                resolvable: true,
                flaps: 0,
                alert: a.clone(),
            }),
            resolving: Resolving::Keep,
            alert: Some(NewAlert {
                seq,
                alert: a.clone(),
                sinks: sinks.iter().map(|s| (*s).to_owned()).collect(),
                now_ms: at_ms,
            }),
        }
    })
    .unwrap();
}

fn outbox_conditions_and_deliveries(s: &dyn Store) {
    open_condition(s, "host_offline/edge", "a1", 2_000, &["slack", "hook"]);
    open_condition(s, "host_offline/core", "a2", 1_000, &["hook"]);
    assert_eq!(s.alert_count().unwrap(), 2);
    assert_eq!(s.pending_count().unwrap(), 3);
    let due: Vec<(u64, String)> = pending(s)
        .into_iter()
        .map(|e| (e.due_ms, e.alert_id))
        .collect();
    assert_eq!(due[0], (1_000, "a2".into()), "the queue is in due order");
    // Stop early.
    let mut seen = 0;
    s.scan_pending(&mut |_| {
        seen += 1;
        ControlFlow::Break(())
    })
    .unwrap();
    assert_eq!(seen, 1);

    // A delivery succeeds: it leaves the queue.
    s.update_delivery("a1", "slack", &mut |d| {
        let mut n = d.clone();
        n.state = DeliveryStatus::Delivered;
        n.attempts = 1;
        n.delivered_at_ms = Some(2_100);
        Some(n)
    })
    .unwrap();
    assert_eq!(
        s.delivery("a1", "slack").unwrap().unwrap().state,
        DeliveryStatus::Delivered
    );
    assert_eq!(s.pending_count().unwrap(), 2);
    // A retry moves its queue entry.
    s.update_delivery("a1", "hook", &mut |d| {
        let mut n = d.clone();
        n.next_attempt_at_ms = 9_000;
        Some(n)
    })
    .unwrap();
    assert!(
        pending(s)
            .iter()
            .any(|e| e.alert_id == "a1" && e.due_ms == 9_000)
    );
    // No change asked: nothing moves; an unknown delivery is left alone.
    s.update_delivery("a1", "hook", &mut |_| None).unwrap();
    s.update_delivery("zz", "hook", &mut |_| panic!("no such delivery"))
        .unwrap();
    assert!(s.delivery("zz", "hook").unwrap().is_none());

    // Resolving: the condition is held, then cleared.
    s.update_condition("host_offline/edge", &mut |before| {
        let mut c = before.cloned().expect("open");
        c.state = CondState::Resolving;
        ConditionChange {
            condition: Some(c),
            resolving: Resolving::Hold { since_ms: 3_000 },
            alert: None,
        }
    })
    .unwrap();
    assert_eq!(
        s.held_resolves().unwrap(),
        vec![("host_offline/edge".to_owned(), 3_000)]
    );
    s.update_condition("host_offline/edge", &mut |before| {
        assert_eq!(before.map(|c| c.state), Some(CondState::Resolving));
        ConditionChange {
            resolving: Resolving::Clear,
            ..ConditionChange::default()
        }
    })
    .unwrap();
    assert!(s.held_resolves().unwrap().is_empty());

    // Listing, both ways, with deliveries.
    let newest: Vec<String> = s
        .alerts(10, false)
        .unwrap()
        .into_iter()
        .map(|(a, _)| a.id)
        .collect();
    assert_eq!(newest, ["a2", "a1"]);
    let oldest = s.alerts(1, true).unwrap();
    assert_eq!(oldest[0].0.id, "a1");
    assert_eq!(oldest[0].1.len(), 2);
    assert_eq!(
        s.alert("a2").unwrap().unwrap().condition,
        "host_offline/core"
    );
    assert!(s.alert("nope").unwrap().is_none());

    // A test message: no condition.
    let seq = s.next_alert_seq().unwrap();
    s.insert_alert(&NewAlert {
        seq,
        alert: alert("t1", "test/hook/1", 4_000),
        sinks: vec!["hook".into()],
        now_ms: 4_000,
    })
    .unwrap();
    assert_eq!(s.alert_count().unwrap(), 3);
    // A queue entry whose delivery is gone can be dropped.
    let e = pending(s).into_iter().find(|e| e.alert_id == "t1").unwrap();
    s.remove_pending(&e).unwrap();
    assert!(pending(s).iter().all(|e| e.alert_id != "t1"));
}

fn outbox_prune(s: &dyn Store) {
    open_condition(s, "host_offline/a", "p1", 1_000, &["hook"]);
    open_condition(s, "host_offline/b", "p2", 1_000, &["hook"]);
    // p1's condition resolved: pruning p1 drops it; p2's is open: kept.
    s.update_condition("host_offline/a", &mut |before| {
        let mut c = before.cloned().expect("open");
        c.state = CondState::Resolved;
        ConditionChange {
            condition: Some(c),
            ..ConditionChange::default()
        }
    })
    .unwrap();
    s.remove_alert("p1").unwrap();
    s.remove_alert("p2").unwrap();
    s.remove_alert("never").unwrap();
    assert_eq!(s.alert_count().unwrap(), 0);
    assert_eq!(s.pending_count().unwrap(), 0);
    assert!(s.delivery("p1", "hook").unwrap().is_none());
    let mut seen = BTreeMap::new();
    for key in ["host_offline/a", "host_offline/b"] {
        s.update_condition(key, &mut |before| {
            seen.insert(key, before.map(|c| c.state));
            ConditionChange::default()
        })
        .unwrap();
    }
    assert_eq!(
        seen["host_offline/a"], None,
        "a closed condition goes with its alert"
    );
    assert_eq!(
        seen["host_offline/b"],
        Some(CondState::Open),
        "an open one stays (it still dedups)"
    );
}

fn export_visits_every_record(s: &dyn Store) {
    s.put_host(&host("exported")).unwrap();
    let mut collections = 0;
    let mut records = 0;
    let mut found = false;
    s.export(&mut |item| {
        match item {
            Exported::Collection(_) => collections += 1,
            Exported::Record { key, .. } => {
                records += 1;
                found |= key == b"exported";
            }
            Exported::End => {}
        }
        Ok(())
    })
    .unwrap();
    assert!(collections > 0 && records > 0 && found);
    // A visitor's error stops the export.
    let err = s.export(&mut |_| Err(std::io::Error::other("disk full")));
    assert!(matches!(err, Err(ExportError::Write(_))));
}
