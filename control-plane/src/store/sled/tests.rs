use super::*;
use crate::store::{FleetStore, contract};

fn fresh() -> (tempfile::TempDir, SledStore) {
    let dir = tempfile::tempdir().unwrap();
    let s = SledStore::open(&dir.path().join("state")).unwrap();
    (dir, s)
}

#[test]
fn the_store_contract_holds_for_sled() {
    for (name, case) in contract::CASES {
        let (_dir, s) = fresh();
        let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| case(&s)));
        assert!(run.is_ok(), "contract case {name} failed on sled");
    }
}

#[test]
fn a_newer_store_format_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state");
    {
        let s = SledStore::open(&path).unwrap();
        assert_eq!(
            s.fleet
                .meta
                .get(STORE_FORMAT_KEY)
                .unwrap()
                .unwrap()
                .as_ref(),
            b"1"
        );
        s.fleet.meta.insert(STORE_FORMAT_KEY, b"2").unwrap();
        FleetStore::flush(&s).unwrap();
    }
    assert!(matches!(
        SledStore::open(&path),
        Err(StoreError::FormatTooNew {
            found: 2,
            supported: 1
        })
    ));
}

#[test]
fn rollouts_written_whole_are_split_on_open() {
    use crate::rollout::step::{HistoryEntry, HostPhase, HostRollout, Rollout, RolloutStatus};
    use crate::store::RolloutStore;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state");
    let whole = Rollout {
        id: "r00000001".into(),
        commit: "c1".into(),
        created_ms: 1,
        on_failure: convoy_shared::fleet::OnFailure::Halt,
        waves: vec![],
        current_wave: 0,
        hosts: [(
            "vps".to_owned(),
            HostRollout {
                wave: 0,
                target_revision: "t".into(),
                previous_revision: None,
                phase: HostPhase::Sent,
                budget_ms: 5,
            },
        )]
        .into(),
        status: RolloutStatus::Running,
        history: vec![HistoryEntry {
            at_ms: 1,
            what: "created".into(),
        }],
    };
    {
        // As an older build wrote it: the whole rollout in the header.
        let db = sled::open(&path).unwrap();
        db.open_tree("rollouts")
            .unwrap()
            .insert("r00000001", serde_json::to_vec(&whole).unwrap())
            .unwrap();
        db.flush().unwrap();
    }
    let s = SledStore::open(&path).unwrap();
    assert_eq!(s.rollout("r00000001").unwrap().unwrap(), whole);
    assert_eq!(s.rollouts.rollout_hosts.len(), 1);
    assert_eq!(s.rollouts.rollout_history.len(), 1);
    let header: Rollout =
        serde_json::from_slice(&s.rollouts.rollouts.get("r00000001").unwrap().unwrap()).unwrap();
    assert!(header.hosts.is_empty() && header.history.is_empty());
}
