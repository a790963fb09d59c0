//! The audit log: every commit seen, rollout transition, report,
//! operator action (promote, abort, rollback, sync, join token, revoke),
//! with who did it and when. Append-only in the store, bounded: the oldest
//! entries are pruned past [`MAX_ENTRIES`].

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use convoy_kit::Clock;

use crate::store::{AuditStore, StoreError};

pub use crate::store::{AuditEntry, AuditQuery as Query};

/// Entries kept; older ones are pruned.
pub const MAX_ENTRIES: usize = 100_000;

#[derive(Debug, Clone)]
pub struct AuditLog {
    store: Arc<dyn AuditStore>,
    clock: Arc<dyn Clock>,
    failures: Arc<AtomicU64>,
}

impl AuditLog {
    pub fn new(store: Arc<dyn AuditStore>, clock: Arc<dyn Clock>) -> AuditLog {
        AuditLog {
            store,
            clock,
            failures: Arc::default(),
        }
    }

    /// Appends an entry (sequence and time filled in). A failed write is
    /// logged with its cause and counted ([`AuditLog::failures`]), not
    /// returned: the audit log must never stop the action it records.
    /// Blocking.
    pub fn record(&self, mut e: AuditEntry) {
        if e.at_unix_ms == 0 {
            e.at_unix_ms = self.clock.now_ms();
        }
        if let Err(err) = self.store.append_audit(&e, MAX_ENTRIES) {
            let n = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
            tracing::error!(error = %crate::error_chain(&err), kind = %e.kind, failures = n, "audit: write failed");
        }
    }

    /// Entries that could not be written since start.
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// Newest first, filtered. Blocking.
    pub fn query(&self, q: &Query) -> Result<Vec<AuditEntry>, StoreError> {
        self.store.audit(q)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_filters_and_pages() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::SledStore::open(dir.path()).unwrap();
        let log = AuditLog::new(Arc::new(store), convoy_kit::clock::system());
        for i in 0..10 {
            log.record(AuditEntry {
                who: "ops".into(),
                kind: if i % 2 == 0 { "report" } else { "promote" }.into(),
                host: format!("h{}", i % 3),
                message: format!("m{i}"),
                ..AuditEntry::default()
            });
        }
        let all = log.query(&Query::default()).unwrap();
        assert_eq!(all.len(), 10);
        assert_eq!(all[0].message, "m9", "newest first");
        let h1 = log
            .query(&Query {
                host: Some("h1".into()),
                ..Query::default()
            })
            .unwrap();
        assert!(h1.iter().all(|e| e.host == "h1"));
        assert_eq!(h1.len(), 3);
        let page1 = log
            .query(&Query {
                limit: Some(4),
                ..Query::default()
            })
            .unwrap();
        let page2 = log
            .query(&Query {
                limit: Some(4),
                before: page1.last().map(|e| e.seq),
                ..Query::default()
            })
            .unwrap();
        assert_eq!(page2[0].message, "m5");
        assert_eq!(page2.len(), 4);
    }

    #[test]
    fn a_record_uses_the_injected_clock() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::SledStore::open(dir.path()).unwrap();
        let clock = convoy_kit::ManualClock::at_ms(1_234);
        let log = AuditLog::new(Arc::new(store), Arc::new(clock));
        log.record(AuditEntry {
            kind: "sync".into(),
            ..AuditEntry::default()
        });
        assert_eq!(log.query(&Query::default()).unwrap()[0].at_unix_ms, 1_234);
        assert_eq!(log.failures(), 0);
    }
}
