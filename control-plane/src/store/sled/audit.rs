//! The audit log in sled: tree `audit`, keyed by a monotonic sequence
//! number (u64 BE), values JSON.

use std::sync::atomic::Ordering;

use super::{SledStore, backend, decode, encode};
use crate::store::{AuditEntry, AuditQuery, AuditStore, Result};

impl AuditStore for SledStore {
    fn append_audit(&self, entry: &AuditEntry, keep: usize) -> Result<u64> {
        let seq = self.next_id()?;
        let mut e = entry.clone();
        e.seq = seq;
        self.audit
            .insert(seq.to_be_bytes(), encode("audit", &e)?)
            .map_err(backend("audit write"))?;
        // The count is kept in memory (sled's len() walks the tree).
        let mut n = self.audit_len.fetch_add(1, Ordering::Relaxed) + 1;
        while n > keep {
            if self
                .audit
                .pop_min()
                .map_err(backend("audit prune"))?
                .is_none()
            {
                break;
            }
            n = self.audit_len.fetch_sub(1, Ordering::Relaxed) - 1;
        }
        Ok(seq)
    }

    fn audit(&self, q: &AuditQuery) -> Result<Vec<AuditEntry>> {
        let limit = q.limit();
        let end = q.before.unwrap_or(u64::MAX);
        let mut out = Vec::new();
        for item in self.audit.range(..end.to_be_bytes()).rev() {
            let (k, v) = item.map_err(backend("audit read"))?;
            let e: AuditEntry = match decode("audit", &k, &v) {
                Ok(e) => e,
                // One unreadable entry must not hide the log.
                Err(err) => {
                    tracing::warn!(error = %crate::error_chain(&err), "audit: undecodable entry skipped");
                    continue;
                }
            };
            if q.matches(&e) {
                out.push(e);
                if out.len() >= limit {
                    break;
                }
            }
        }
        Ok(out)
    }
}
