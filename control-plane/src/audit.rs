//! The audit log: every commit seen, rollout transition, report,
//! operator action (promote, abort, rollback, sync, join token, revoke),
//! with who did it and when. Append-only in sled (tree `audit`, keyed by a
//! monotonic sequence number), bounded: the oldest entries are pruned past
//! [`MAX_ENTRIES`].

use std::sync::Arc;

use convoy_kit::Clock;
use serde::{Deserialize, Serialize};

/// Entries kept; older ones are pruned.
pub const MAX_ENTRIES: usize = 100_000;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub seq: u64,
    pub at_unix_ms: u64,
    /// An API token's name, a host name, `git` or `control-plane`.
    pub who: String,
    /// e.g. `commit_accepted`, `commit_rejected`, `rollout`, `report`,
    /// `promote`, `abort`, `rollback`, `sync`, `token_created`, `revoke`.
    pub kind: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub host: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub stack: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub rollout: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub commit: String,
    pub message: String,
}

/// Filters of `GET /api/v1/events`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Query {
    pub host: Option<String>,
    pub stack: Option<String>,
    pub rollout: Option<String>,
    pub kind: Option<String>,
    /// Entries older than this sequence number (pagination: pass the
    /// smallest `seq` of the previous page).
    pub before: Option<u64>,
    /// At most this many (default 100, max 1000).
    pub limit: Option<usize>,
}

#[derive(Debug, Clone)]
pub struct AuditLog {
    db: sled::Db,
    tree: sled::Tree,
    clock: Arc<dyn Clock>,
}

impl AuditLog {
    pub fn open(db: &sled::Db, clock: Arc<dyn Clock>) -> Result<AuditLog, sled::Error> {
        Ok(AuditLog {
            db: db.clone(),
            tree: db.open_tree("audit")?,
            clock,
        })
    }

    /// Appends an entry (sequence and time filled in). Errors are logged,
    /// not returned: the audit log must never stop the action it records.
    pub fn record(&self, mut e: AuditEntry) {
        let seq = match self.db.generate_id() {
            Ok(s) => s,
            Err(err) => {
                tracing::error!(error = %err, "audit: no sequence number");
                return;
            }
        };
        e.seq = seq;
        if e.at_unix_ms == 0 {
            e.at_unix_ms = self.clock.now_ms();
        }
        let bytes = match serde_json::to_vec(&e) {
            Ok(b) => b,
            Err(err) => {
                tracing::error!(error = %err, "audit: encoding failed");
                return;
            }
        };
        if let Err(err) = self.tree.insert(seq.to_be_bytes(), bytes) {
            tracing::error!(error = %err, "audit: write failed");
            return;
        }
        while self.tree.len() > MAX_ENTRIES {
            if self.tree.pop_min().ok().flatten().is_none() {
                break;
            }
        }
    }

    /// Newest first, filtered.
    pub fn query(&self, q: &Query) -> Result<Vec<AuditEntry>, sled::Error> {
        let limit = q.limit.unwrap_or(100).clamp(1, 1000);
        let end = q.before.unwrap_or(u64::MAX);
        let mut out = Vec::new();
        for item in self.tree.range(..end.to_be_bytes()).rev() {
            let (_, v) = item?;
            let Ok(e) = serde_json::from_slice::<AuditEntry>(&v) else {
                continue;
            };
            let keep = q.host.as_ref().is_none_or(|h| &e.host == h)
                && q.stack.as_ref().is_none_or(|s| &e.stack == s)
                && q.rollout.as_ref().is_none_or(|r| &e.rollout == r)
                && q.kind.as_ref().is_none_or(|k| &e.kind == k);
            if keep {
                out.push(e);
                if out.len() >= limit {
                    break;
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_filters_and_pages() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let log = AuditLog::open(&db, convoy_kit::clock::system()).unwrap();
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
}
