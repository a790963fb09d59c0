//! [`SledJournal`]: the [`Journal`] in sled. One tree per record kind,
//! values JSON, every write flushed before it returns.

use std::path::Path;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{
    AppliedRecord, DesiredRecord, Inflight, Journal, JournalError, JournalResult, LkgRecord,
    MAX_OUTBOX,
};
use crate::report::Report;

const DESIRED_KEY: &[u8] = b"state";
const COMPLETED_KEY: &[u8] = b"completed";

/// The journal's format version (default tree, key `journal_format`).
/// Compatibility promise: a newer agent reads every older journal (record
/// fields are only ever added, with `serde(default)`; a change an older
/// agent would misread bumps this and comes with an in-place upgrade); an
/// older agent refuses a newer journal rather than misreading it.
pub const JOURNAL_FORMAT: u32 = 1;
const FORMAT_KEY: &[u8] = b"journal_format";

fn db_err(tree: &'static str) -> impl Fn(sled::Error) -> JournalError {
    move |source| JournalError::Db { tree, source }
}

/// The journal in sled.
///
/// # Caveats
/// sled (0.34) latches its first I/O error: after a write fails (a full
/// disk), every later write fails with the same error even once there is
/// room again, and some block for good. So the first failed write latches
/// here too: later writes are refused at once without reaching sled
/// ([`JournalError::Latched`]), reads still go through, and
/// [`Journal::refuses_writes`] says the journal must be reopened — the
/// agent restarts for that.
#[derive(Debug, Clone)]
pub struct SledJournal {
    latched: Arc<Mutex<Option<String>>>,
    db: sled::Db,
    desired: sled::Tree,
    applied: sled::Tree,
    lkg: sled::Tree,
    inflight: sled::Tree,
    outbox: sled::Tree,
}

impl SledJournal {
    /// Opens (or creates) the journal under `path`.
    pub fn open(path: &Path) -> JournalResult<Self> {
        let db = sled::Config::new()
            .path(path)
            .mode(sled::Mode::HighThroughput)
            .open()
            .map_err(|source| JournalError::Open {
                path: path.to_path_buf(),
                source,
            })?;
        convoy_kit::format::check(&db, FORMAT_KEY, JOURNAL_FORMAT).map_err(|e| match e {
            convoy_kit::format::FormatError::TooNew { found, supported } => {
                JournalError::FormatTooNew {
                    path: path.to_path_buf(),
                    found,
                    supported,
                }
            }
            convoy_kit::format::FormatError::Db(e) => db_err("format")(e),
        })?;
        let tree = |name: &'static str| db.open_tree(name).map_err(db_err(name));
        Ok(Self {
            latched: Arc::default(),
            desired: tree("desired")?,
            applied: tree("applied")?,
            lkg: tree("lkg")?,
            inflight: tree("inflight")?,
            outbox: tree("outbox")?,
            db,
        })
    }

    /// Runs a write unless an earlier one latched; a store error latches.
    fn write(&self, f: impl FnOnce() -> JournalResult<()>) -> JournalResult<()> {
        let Ok(mut latched) = self.latched.lock() else {
            return Err(JournalError::Latched {
                first: "journal latch poisoned".into(),
            });
        };
        if let Some(first) = latched.as_ref() {
            return Err(JournalError::Latched {
                first: first.clone(),
            });
        }
        let r = f();
        if let Err(e @ (JournalError::Db { .. } | JournalError::Open { .. })) = &r {
            *latched = Some(convoy_kit::error_chain(e));
        }
        r
    }

    fn put<T: Serialize>(
        tree: &sled::Tree,
        name: &'static str,
        key: &[u8],
        value: &T,
    ) -> JournalResult<()> {
        let bytes = serde_json::to_vec(value)
            .map_err(|source| JournalError::Encode { tree: name, source })?;
        tree.insert(key, bytes).map_err(db_err(name))?;
        tree.flush().map_err(db_err(name))?;
        Ok(())
    }

    fn get<T: DeserializeOwned>(
        tree: &sled::Tree,
        name: &'static str,
        key: &[u8],
    ) -> JournalResult<Option<T>> {
        let Some(bytes) = tree.get(key).map_err(db_err(name))? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|source| JournalError::Decode {
                tree: name,
                key: String::from_utf8_lossy(key).into_owned(),
                source,
            })
    }

    fn del(tree: &sled::Tree, name: &'static str, key: &[u8]) -> JournalResult<()> {
        tree.remove(key).map_err(db_err(name))?;
        tree.flush().map_err(db_err(name))?;
        Ok(())
    }

    fn all<T: DeserializeOwned>(
        tree: &sled::Tree,
        name: &'static str,
    ) -> JournalResult<Vec<(String, T)>> {
        let mut out = Vec::new();
        for item in tree.iter() {
            let (k, v) = item.map_err(db_err(name))?;
            let key = String::from_utf8_lossy(&k).into_owned();
            let value = serde_json::from_slice(&v).map_err(|source| JournalError::Decode {
                tree: name,
                key: key.clone(),
                source,
            })?;
            out.push((key, value));
        }
        Ok(out)
    }
}

impl Journal for SledJournal {
    fn put_desired(&self, d: &DesiredRecord) -> JournalResult<()> {
        self.write(|| Self::put(&self.desired, "desired", DESIRED_KEY, d))
    }

    fn desired(&self) -> JournalResult<Option<DesiredRecord>> {
        Self::get(&self.desired, "desired", DESIRED_KEY)
    }

    fn completed(&self) -> JournalResult<u64> {
        Ok(Self::get(&self.desired, "desired", COMPLETED_KEY)?.unwrap_or(0))
    }

    fn put_completed(&self, generation: u64) -> JournalResult<()> {
        self.write(|| Self::put(&self.desired, "desired", COMPLETED_KEY, &generation))
    }

    fn put_applied(&self, stack: &str, r: &AppliedRecord) -> JournalResult<()> {
        self.write(|| Self::put(&self.applied, "applied", stack.as_bytes(), r))
    }

    fn applied(&self, stack: &str) -> JournalResult<Option<AppliedRecord>> {
        Self::get(&self.applied, "applied", stack.as_bytes())
    }

    fn all_applied(&self) -> JournalResult<Vec<(String, AppliedRecord)>> {
        Self::all(&self.applied, "applied")
    }

    fn remove_applied(&self, stack: &str) -> JournalResult<()> {
        self.write(|| Self::del(&self.applied, "applied", stack.as_bytes()))
    }

    fn put_lkg(&self, stack: &str, r: &LkgRecord) -> JournalResult<()> {
        self.write(|| Self::put(&self.lkg, "lkg", stack.as_bytes(), r))
    }

    fn lkg(&self, stack: &str) -> JournalResult<Option<LkgRecord>> {
        Self::get(&self.lkg, "lkg", stack.as_bytes())
    }

    fn all_lkg(&self) -> JournalResult<Vec<(String, LkgRecord)>> {
        Self::all(&self.lkg, "lkg")
    }

    fn remove_lkg(&self, stack: &str) -> JournalResult<()> {
        self.write(|| Self::del(&self.lkg, "lkg", stack.as_bytes()))
    }

    fn put_inflight(&self, stack: &str, r: &Inflight) -> JournalResult<()> {
        self.write(|| Self::put(&self.inflight, "inflight", stack.as_bytes(), r))
    }

    fn inflight(&self, stack: &str) -> JournalResult<Option<Inflight>> {
        Self::get(&self.inflight, "inflight", stack.as_bytes())
    }

    fn all_inflight(&self) -> JournalResult<Vec<(String, Inflight)>> {
        Self::all(&self.inflight, "inflight")
    }

    fn remove_inflight(&self, stack: &str) -> JournalResult<()> {
        self.write(|| Self::del(&self.inflight, "inflight", stack.as_bytes()))
    }

    fn push_report(&self, r: &Report) -> JournalResult<()> {
        self.write(|| {
            Self::put(&self.outbox, "outbox", r.id.as_bytes(), r)?;
            let excess = self.outbox.len().saturating_sub(MAX_OUTBOX);
            for _ in 0..excess {
                if self.outbox.pop_min().map_err(db_err("outbox"))?.is_none() {
                    break;
                }
            }
            Ok(())
        })
    }

    fn pending_reports(&self) -> JournalResult<Vec<Report>> {
        Ok(Self::all(&self.outbox, "outbox")?
            .into_iter()
            .map(|(_, r)| r)
            .collect())
    }

    fn ack(&self, ids: &[String]) -> JournalResult<()> {
        self.write(|| {
            for id in ids {
                self.outbox
                    .remove(id.as_bytes())
                    .map_err(db_err("outbox"))?;
            }
            self.outbox.flush().map_err(db_err("outbox"))?;
            Ok(())
        })
    }

    fn refuses_writes(&self) -> bool {
        self.latched.lock().map_or(true, |l| l.is_some())
    }

    fn flush(&self) -> JournalResult<()> {
        self.write(|| {
            self.db.flush().map_err(db_err("db"))?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::report::ReportKind;

    #[test]
    fn outbox_survives_reopen_until_acked_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal");
        let ids: Vec<String> = {
            let j = SledJournal::open(&path).unwrap();
            let mut ids = Vec::new();
            for i in 0..5 {
                let r = Report::new(ReportKind::Healthy, &format!("s{i}"), "r", "ok".into());
                ids.push(r.id.clone());
                j.push_report(&r).unwrap();
            }
            j.put_completed(7).unwrap();
            ids
        };
        let unique: std::collections::BTreeSet<&String> = ids.iter().collect();
        assert_eq!(unique.len(), 5);
        let j = SledJournal::open(&path).unwrap();
        assert_eq!(j.completed().unwrap(), 7);
        let pending = j.pending_reports().unwrap();
        assert_eq!(
            pending.iter().map(|r| r.id.clone()).collect::<Vec<_>>(),
            ids
        );
        j.ack(&ids[..3]).unwrap();
        j.ack(&["unknown".to_string()]).unwrap();
        let pending = j.pending_reports().unwrap();
        assert_eq!(pending.len(), 2);
        assert_eq!(pending[0].stack, "s3");
        let wire: convoy_shared::proto::v1::Report = pending[0].clone().into();
        assert_eq!(
            wire.kind,
            convoy_shared::proto::v1::ReportKind::Healthy as i32
        );
        assert_eq!(wire.id, ids[3]);
    }

    #[test]
    fn a_newer_journal_format_is_refused_and_older_ones_are_stamped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal");
        {
            // An old journal: no format key.
            let db = sled::open(&path).unwrap();
            db.open_tree("desired").unwrap();
            db.flush().unwrap();
        }
        {
            let j = SledJournal::open(&path).unwrap();
            assert_eq!(
                j.db.get(FORMAT_KEY).unwrap().unwrap().as_ref(),
                JOURNAL_FORMAT.to_string().as_bytes()
            );
            j.db.insert(FORMAT_KEY, b"99").unwrap();
            j.db.flush().unwrap();
        }
        let e = SledJournal::open(&path).err().unwrap();
        assert!(
            matches!(e, JournalError::FormatTooNew { found: 99, .. }),
            "{e}"
        );
    }

    #[test]
    fn a_store_error_latches_and_later_writes_are_refused_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let j = SledJournal::open(&dir.path().join("journal")).unwrap();
        j.put_completed(1).unwrap();
        assert!(!j.refuses_writes());
        // What sled answers on a full disk.
        let full = j.write(|| {
            Err(JournalError::Db {
                tree: "inflight",
                source: sled::Error::Io(std::io::Error::from_raw_os_error(28)),
            })
        });
        assert!(full.is_err());
        assert!(j.refuses_writes());
        let e = j.put_completed(2).unwrap_err();
        assert!(
            matches!(&e, JournalError::Latched { first } if first.contains("os error 28")),
            "{e}"
        );
        assert!(j.ack(&[]).is_err() && j.flush().is_err());
        assert_eq!(j.completed().unwrap(), 1, "reads still work");
        // An encoding error is the caller's, not the store's: no latch.
        let dir = tempfile::tempdir().unwrap();
        let j = SledJournal::open(&dir.path().join("journal")).unwrap();
        let bad = j.write(|| {
            Err(JournalError::Encode {
                tree: "applied",
                source: serde_json::from_str::<u8>("x").unwrap_err(),
            })
        });
        assert!(bad.is_err() && !j.refuses_writes());
    }
}
