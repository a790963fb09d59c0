use std::collections::BTreeSet;

use proptest::prelude::*;

use super::*;

fn report_of(kind: ReportKind, failing_service: &str) -> Report {
    Report {
        id: "r-1".into(),
        kind: kind as i32,
        stack: "web".into(),
        host_revision: "rev-2".into(),
        rollout_id: "r00000001".into(),
        message: "healthcheck failed".into(),
        failing_service: failing_service.into(),
        ..Report::default()
    }
}

#[test]
fn a_resent_report_feeds_the_same_input_with_the_same_reason_as_the_live_one() {
    for kind in [
        ReportKind::HostHealthy,
        ReportKind::RolledBack,
        ReportKind::Failed,
    ] {
        for service in ["", "api"] {
            let r = report_of(kind, service);
            let live = report("prod", "vps", &r, true, "c1");
            let resent = report("prod", "vps", &r, false, "c1");
            assert!(live.input.is_some(), "{kind:?}");
            assert_eq!(live.input, resent.input, "{kind:?} service {service:?}");
        }
    }
    let r = report_of(ReportKind::RolledBack, "api");
    let Some(Input::HostFailed { reason, .. }) = report("prod", "vps", &r, false, "c1").input
    else {
        panic!("a failure feeds HostFailed");
    };
    assert_eq!(reason, "stack web (service api): healthcheck failed");
}

#[test]
fn only_a_new_report_raises_an_alert_and_is_audited() {
    let r = report_of(ReportKind::RolledBack, "");
    let live = report("prod", "vps", &r, true, "c1");
    assert_eq!(
        live.alert,
        Some(AlertEvent::HostRolledBack {
            fleet: "prod".into(),
            host: "vps".into(),
            stack: "web".into(),
            commit: "c1".into(),
            reason: "stack web: healthcheck failed".into(),
        })
    );
    let audit = live.audit.expect("audited");
    assert_eq!((audit.who.as_str(), audit.kind.as_str()), ("vps", "report"));
    assert_eq!(audit.message, "RolledBack: healthcheck failed");
    let resent = report("prod", "vps", &r, false, "c1");
    assert!(resent.alert.is_none() && resent.audit.is_none());

    let failed = report(
        "prod",
        "vps",
        &report_of(ReportKind::Failed, ""),
        true,
        "c1",
    );
    assert!(matches!(failed.alert, Some(AlertEvent::StackFailed { .. })));
    let healthy = report(
        "prod",
        "vps",
        &report_of(ReportKind::HostHealthy, ""),
        true,
        "c1",
    );
    assert!(healthy.alert.is_none() && healthy.audit.is_some());
    let progress = report(
        "prod",
        "vps",
        &report_of(ReportKind::Unspecified, ""),
        true,
        "",
    );
    assert!(progress.input.is_none() && progress.alert.is_none());
}

proptest! {
    /// Whatever the report says, its resend feeds exactly what the live
    /// report fed.
    #[test]
    fn resend_and_live_inputs_agree(
        kind in 0i32..8,
        stack in "[a-z]{0,8}",
        service in "[a-z]{0,8}",
        message in ".{0,40}",
        revision in "[0-9a-f]{0,12}",
    ) {
        let r = Report {
            kind,
            stack,
            failing_service: service,
            message,
            host_revision: revision,
            ..Report::default()
        };
        prop_assert_eq!(
            report("f", "h", &r, true, "c").input,
            report("f", "h", &r, false, "c").input
        );
    }
}

#[test]
fn gpu_events_name_the_gpu_by_uuid_and_map_their_fault() {
    let e = GpuEvent {
        gpu_index: 1,
        uuid: "GPU-bbbb".into(),
        kind: GpuEventKind::Xid as i32,
        value: 79,
        ..GpuEvent::default()
    };
    let AlertEvent::GpuEvent {
        gpu,
        fault,
        code,
        detail,
        ..
    } = gpu_alert("prod", "gpubox", &e)
    else {
        panic!("a GPU alert");
    };
    assert_eq!(
        (gpu.as_str(), fault, code),
        ("GPU-bbbb", GpuFault::Xid, Some(79))
    );
    assert_eq!(detail, "GPU 1: xid");
    let lost = GpuEvent {
        gpu_index: 3,
        kind: GpuEventKind::Lost as i32,
        message: "fell off the bus".into(),
        ..GpuEvent::default()
    };
    let AlertEvent::GpuEvent {
        gpu,
        fault,
        code,
        detail,
        ..
    } = gpu_alert("prod", "gpubox", &lost)
    else {
        panic!("a GPU alert");
    };
    assert_eq!(
        (gpu.as_str(), fault, code),
        ("3", GpuFault::FellOffBus, None)
    );
    assert_eq!(detail, "GPU 3: fell off the bus");
}

fn host(name: &str, not_after: u64) -> HostRecord {
    HostRecord {
        name: name.into(),
        labels: Default::default(),
        last_seen_unix: 0,
        cert_serial: String::new(),
        cert_not_after_unix: not_after,
        enrolled_at_unix: 0,
    }
}

#[test]
fn certificates_near_expiry_raise_and_renewed_ones_resolve() {
    let now = 1_000_000;
    let warning = Duration::from_secs(3600);
    let hosts = [
        host("soon", now + 60),
        host("later", now + 7200),
        host("never-issued", 0),
        host("revoked", now + 60),
        host("expired", now - 10),
    ];
    let mut revoked = RevocationList::default();
    revoked.revoke_host("revoked");
    let out = cert_expiry("prod", &hosts, &revoked, now, warning);
    let raised: BTreeSet<_> = out
        .iter()
        .filter_map(|c| match c {
            CertAlert::Raise(AlertEvent::CertExpiring { host, .. }) => host.clone(),
            _ => None,
        })
        .collect();
    assert_eq!(raised, BTreeSet::from(["soon".into(), "expired".into()]));
    assert_eq!(
        out.iter()
            .filter(|c| matches!(c, CertAlert::Resolve(_)))
            .collect::<Vec<_>>(),
        vec![&CertAlert::Resolve("cert_expiring/agent later".into())]
    );
}

fn event(kind: EventKind) -> RolloutEvent {
    RolloutEvent {
        rollout: "r7".into(),
        commit: "c7".into(),
        kind,
        host: Some("vps".into()),
        message: "host vps failed".into(),
    }
}

#[test]
fn rollout_events_are_audited_and_the_final_ones_alert() {
    let (audit, alert) = rollout_event("prod", &event(EventKind::RolloutHalted));
    assert_eq!(
        (
            audit.kind.as_str(),
            audit.host.as_str(),
            audit.rollout.as_str()
        ),
        ("rollout", "vps", "r7")
    );
    assert_eq!(
        alert,
        Some(AlertEvent::RolloutHalted {
            fleet: "prod".into(),
            rollout: "r7".into(),
            commit: "c7".into(),
            reason: "host vps failed".into(),
        })
    );
    for kind in [EventKind::RolloutRollingBack, EventKind::RolloutRolledBack] {
        assert!(matches!(
            rollout_event("prod", &event(kind)).1,
            Some(AlertEvent::RolloutFailed { .. })
        ));
    }
    assert!(matches!(
        rollout_event("prod", &event(EventKind::RolloutCompleted)).1,
        Some(AlertEvent::RolloutCompleted { .. })
    ));
    for kind in [
        EventKind::WaveStarted,
        EventKind::HostHealthy,
        EventKind::HostFailed,
        EventKind::WaitingApproval,
        EventKind::RolloutSuperseded,
    ] {
        assert!(rollout_event("prod", &event(kind)).1.is_none(), "{kind:?}");
    }
}
