//! A failure-injecting [`Journal`] for the engine's tests: wraps a real
//! journal and makes chosen writes fail as a full disk does (`ENOSPC` from
//! the store), so the tests exercise what the engine does when a write is
//! refused. Reads always pass through.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use super::{
    AppliedRecord, DesiredRecord, Inflight, Journal, JournalError, JournalResult, LkgRecord,
};
use crate::report::Report;

#[derive(Debug, Default)]
struct Faults {
    /// Every write fails.
    full: bool,
    /// Writes by method name (`put_lkg`, `push_report`, ...) that fail.
    failing: BTreeSet<&'static str>,
    /// Writes that went through, in order (`method stack`).
    written: Vec<String>,
    /// Writes refused.
    refused: Vec<String>,
    /// Like sled: the first refused write makes the journal refuse every
    /// later one until it is reopened ([`FaultyJournal::heal`] here).
    latching: bool,
    latched: bool,
}

#[derive(Debug, Clone)]
pub struct FaultyJournal {
    inner: Arc<dyn Journal>,
    faults: Arc<Mutex<Faults>>,
}

impl FaultyJournal {
    pub fn new(inner: Arc<dyn Journal>) -> FaultyJournal {
        FaultyJournal {
            inner,
            faults: Arc::default(),
        }
    }

    /// The disk fills up (`true`) or has room again (`false`).
    pub fn set_full(&self, full: bool) {
        self.faults.lock().unwrap().full = full;
    }

    /// Writes through `method` fail until [`FaultyJournal::heal`].
    pub fn fail(&self, method: &'static str) {
        self.faults.lock().unwrap().failing.insert(method);
    }

    /// Refusals latch, as sled's do.
    pub fn set_latching(&self, on: bool) {
        self.faults.lock().unwrap().latching = on;
    }

    pub fn heal(&self) {
        let mut f = self.faults.lock().unwrap();
        f.full = false;
        f.latched = false;
        f.failing.clear();
    }

    pub fn written(&self) -> Vec<String> {
        self.faults.lock().unwrap().written.clone()
    }

    pub fn refused(&self) -> Vec<String> {
        self.faults.lock().unwrap().refused.clone()
    }

    fn write<T>(
        &self,
        method: &'static str,
        key: &str,
        f: impl FnOnce(&dyn Journal) -> JournalResult<T>,
    ) -> JournalResult<T> {
        let what = format!("{method} {key}");
        {
            let mut faults = self.faults.lock().unwrap();
            if faults.full || faults.latched || faults.failing.contains(method) {
                faults.latched = faults.latching;
                faults.refused.push(what);
                return Err(JournalError::Db {
                    tree: method,
                    source: ::sled::Error::Io(std::io::Error::from_raw_os_error(28)),
                });
            }
        }
        let r = f(self.inner.as_ref())?;
        self.faults.lock().unwrap().written.push(what);
        Ok(r)
    }
}

impl Journal for FaultyJournal {
    fn put_desired(&self, d: &DesiredRecord) -> JournalResult<()> {
        self.write("put_desired", &d.state.revision, |j| j.put_desired(d))
    }
    fn desired(&self) -> JournalResult<Option<DesiredRecord>> {
        self.inner.desired()
    }
    fn completed(&self) -> JournalResult<u64> {
        self.inner.completed()
    }
    fn put_completed(&self, generation: u64) -> JournalResult<()> {
        self.write("put_completed", &generation.to_string(), |j| {
            j.put_completed(generation)
        })
    }
    fn put_applied(&self, stack: &str, r: &AppliedRecord) -> JournalResult<()> {
        self.write("put_applied", stack, |j| j.put_applied(stack, r))
    }
    fn applied(&self, stack: &str) -> JournalResult<Option<AppliedRecord>> {
        self.inner.applied(stack)
    }
    fn all_applied(&self) -> JournalResult<Vec<(String, AppliedRecord)>> {
        self.inner.all_applied()
    }
    fn remove_applied(&self, stack: &str) -> JournalResult<()> {
        self.write("remove_applied", stack, |j| j.remove_applied(stack))
    }
    fn put_lkg(&self, stack: &str, r: &LkgRecord) -> JournalResult<()> {
        self.write("put_lkg", stack, |j| j.put_lkg(stack, r))
    }
    fn lkg(&self, stack: &str) -> JournalResult<Option<LkgRecord>> {
        self.inner.lkg(stack)
    }
    fn all_lkg(&self) -> JournalResult<Vec<(String, LkgRecord)>> {
        self.inner.all_lkg()
    }
    fn remove_lkg(&self, stack: &str) -> JournalResult<()> {
        self.write("remove_lkg", stack, |j| j.remove_lkg(stack))
    }
    fn put_inflight(&self, stack: &str, r: &Inflight) -> JournalResult<()> {
        self.write("put_inflight", stack, |j| j.put_inflight(stack, r))
    }
    fn inflight(&self, stack: &str) -> JournalResult<Option<Inflight>> {
        self.inner.inflight(stack)
    }
    fn all_inflight(&self) -> JournalResult<Vec<(String, Inflight)>> {
        self.inner.all_inflight()
    }
    fn remove_inflight(&self, stack: &str) -> JournalResult<()> {
        self.write("remove_inflight", stack, |j| j.remove_inflight(stack))
    }
    fn push_report(&self, r: &Report) -> JournalResult<()> {
        self.write("push_report", &r.stack, |j| j.push_report(r))
    }
    fn pending_reports(&self) -> JournalResult<Vec<Report>> {
        self.inner.pending_reports()
    }
    fn ack(&self, ids: &[String]) -> JournalResult<()> {
        self.write("ack", "", |j| j.ack(ids))
    }
    fn flush(&self) -> JournalResult<()> {
        self.write("flush", "", |j| j.flush())
    }
    fn refuses_writes(&self) -> bool {
        self.faults.lock().unwrap().latched
    }
}
