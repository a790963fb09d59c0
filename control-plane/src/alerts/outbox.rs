//! The durable outbox in sled.
//!
//! Trees (all prefixed `alerts/`):
//! - `alerts`: seq (u64 BE, monotonic) → [`Alert`] JSON
//! - `by_id`: alert id → seq
//! - `deliveries`: `<alert id>\0<sink>` → [`DeliveryState`] JSON
//! - `pending`: `<next_attempt_at ms, u64 BE><alert id>\0<sink>` → `` (the
//!   worker's queue, ordered by due time)
//! - `conditions`: condition key → [`Condition`] JSON (open/resolving/resolved)
//! - `resolving`: condition key → since (ms BE): resolves held for the flap
//!   window
//!
//! Every change is one multi-tree transaction, so an alert and its delivery
//! records (and queue entries) appear together or not at all.

use serde::{Deserialize, Serialize};
use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError, TransactionalTree};

use super::AlertsError;
use super::model::Alert;

pub(crate) type TxResult<T> = Result<T, ConflictableTransactionError<AlertsError>>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    Pending,
    Delivered,
    GaveUp,
}

/// One alert's delivery to one sink.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryState {
    pub alert_id: String,
    pub sink: String,
    pub state: DeliveryStatus,
    pub attempts: u32,
    /// Unix ms; meaningful while pending.
    pub next_attempt_at_ms: u64,
    pub last_attempt_at_ms: Option<u64>,
    pub delivered_at_ms: Option<u64>,
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum CondState {
    Open,
    /// Resolved, but the "resolved" message waits out the flap window.
    Resolving,
    Resolved,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Condition {
    pub state: CondState,
    pub resolvable: bool,
    /// Times it re-opened while its resolve was held (flapping).
    pub flaps: u32,
    /// The opening alert (kept here so the resolve can be built even if the
    /// alert record was pruned).
    pub alert: Alert,
}

#[derive(Clone)]
pub(crate) struct Trees {
    pub alerts: sled::Tree,
    pub by_id: sled::Tree,
    pub deliveries: sled::Tree,
    pub pending: sled::Tree,
    pub conditions: sled::Tree,
    pub resolving: sled::Tree,
}

pub(crate) struct Tx<'a> {
    pub alerts: &'a TransactionalTree,
    pub by_id: &'a TransactionalTree,
    pub deliveries: &'a TransactionalTree,
    pub pending: &'a TransactionalTree,
    pub conditions: &'a TransactionalTree,
    pub resolving: &'a TransactionalTree,
}

impl Trees {
    pub fn open(db: &sled::Db) -> Result<Self, AlertsError> {
        Ok(Trees {
            alerts: db.open_tree("alerts/alerts")?,
            by_id: db.open_tree("alerts/by_id")?,
            deliveries: db.open_tree("alerts/deliveries")?,
            pending: db.open_tree("alerts/pending")?,
            conditions: db.open_tree("alerts/conditions")?,
            resolving: db.open_tree("alerts/resolving")?,
        })
    }

    /// Runs `f` in one transaction over all trees.
    pub fn tx<T>(&self, f: impl Fn(&Tx<'_>) -> TxResult<T>) -> Result<T, AlertsError> {
        let r = (
            &self.alerts,
            &self.by_id,
            &self.deliveries,
            &self.pending,
            &self.conditions,
            &self.resolving,
        )
            .transaction(
                |(alerts, by_id, deliveries, pending, conditions, resolving)| {
                    f(&Tx {
                        alerts,
                        by_id,
                        deliveries,
                        pending,
                        conditions,
                        resolving,
                    })
                },
            );
        match r {
            Ok(v) => Ok(v),
            Err(TransactionError::Abort(e)) => Err(e),
            Err(TransactionError::Storage(e)) => Err(AlertsError::Storage(e)),
        }
    }
}

pub(crate) fn delivery_key(alert_id: &str, sink: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(alert_id.len() + sink.len() + 1);
    k.extend_from_slice(alert_id.as_bytes());
    k.push(0);
    k.extend_from_slice(sink.as_bytes());
    k
}

pub(crate) fn pending_key(due_ms: u64, dkey: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(8 + dkey.len());
    k.extend_from_slice(&due_ms.to_be_bytes());
    k.extend_from_slice(dkey);
    k
}

/// Splits a pending key into (due ms, delivery key).
pub(crate) fn split_pending_key(k: &[u8]) -> Option<(u64, &[u8])> {
    let (due, rest) = k.split_at_checked(8)?;
    Some((u64::from_be_bytes(due.try_into().ok()?), rest))
}

pub(crate) fn enc<T: Serialize>(v: &T) -> TxResult<Vec<u8>> {
    serde_json::to_vec(v).map_err(|e| {
        ConflictableTransactionError::Abort(AlertsError::Corrupt {
            what: "encode".into(),
            source: e,
        })
    })
}

pub(crate) fn dec<T: for<'de> Deserialize<'de>>(what: &str, b: &[u8]) -> Result<T, AlertsError> {
    serde_json::from_slice(b).map_err(|e| AlertsError::Corrupt {
        what: what.to_owned(),
        source: e,
    })
}

pub(crate) fn dec_tx<T: for<'de> Deserialize<'de>>(what: &str, b: &[u8]) -> TxResult<T> {
    dec(what, b).map_err(ConflictableTransactionError::Abort)
}

impl Tx<'_> {
    /// Stores an alert with one pending delivery per sink, due now.
    pub fn insert_alert(
        &self,
        seq: u64,
        alert: &Alert,
        sinks: &[String],
        now_ms: u64,
    ) -> TxResult<()> {
        self.alerts.insert(&seq.to_be_bytes(), enc(alert)?)?;
        self.by_id.insert(alert.id.as_bytes(), &seq.to_be_bytes())?;
        for sink in sinks {
            let d = DeliveryState {
                alert_id: alert.id.clone(),
                sink: sink.clone(),
                state: DeliveryStatus::Pending,
                attempts: 0,
                next_attempt_at_ms: now_ms,
                last_attempt_at_ms: None,
                delivered_at_ms: None,
                last_error: None,
            };
            let dk = delivery_key(&alert.id, sink);
            self.deliveries.insert(dk.as_slice(), enc(&d)?)?;
            self.pending
                .insert(pending_key(now_ms, &dk), &[] as &[u8])?;
        }
        Ok(())
    }

    pub fn condition(&self, key: &str) -> TxResult<Option<Condition>> {
        match self.conditions.get(key.as_bytes())? {
            Some(b) => Ok(Some(dec_tx("condition", &b)?)),
            None => Ok(None),
        }
    }

    pub fn put_condition(&self, key: &str, c: &Condition) -> TxResult<()> {
        self.conditions.insert(key.as_bytes(), enc(c)?)?;
        Ok(())
    }

    /// Replaces a delivery record, moving its queue entry.
    pub fn put_delivery(&self, old: &DeliveryState, new: &DeliveryState) -> TxResult<()> {
        let dk = delivery_key(&new.alert_id, &new.sink);
        if old.state == DeliveryStatus::Pending {
            self.pending
                .remove(pending_key(old.next_attempt_at_ms, &dk))?;
        }
        if new.state == DeliveryStatus::Pending {
            self.pending
                .insert(pending_key(new.next_attempt_at_ms, &dk), &[] as &[u8])?;
        }
        self.deliveries.insert(dk, enc(new)?)?;
        Ok(())
    }
}

impl Trees {
    pub fn alert_by_id(&self, id: &str) -> Result<Option<Alert>, AlertsError> {
        let Some(seq) = self.by_id.get(id.as_bytes())? else {
            return Ok(None);
        };
        match self.alerts.get(seq)? {
            Some(b) => Ok(Some(dec("alert", &b)?)),
            None => Ok(None),
        }
    }

    pub fn deliveries_of(&self, alert_id: &str) -> Result<Vec<DeliveryState>, AlertsError> {
        let mut prefix = alert_id.as_bytes().to_vec();
        prefix.push(0);
        let mut out = Vec::new();
        for kv in self.deliveries.scan_prefix(prefix) {
            let (_, v) = kv?;
            out.push(dec("delivery", &v)?);
        }
        Ok(out)
    }

    pub fn delivery(&self, dkey: &[u8]) -> Result<Option<DeliveryState>, AlertsError> {
        match self.deliveries.get(dkey)? {
            Some(b) => Ok(Some(dec("delivery", &b)?)),
            None => Ok(None),
        }
    }
}
