//! The alert outbox in sled.
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

use std::cell::RefCell;
use std::ops::ControlFlow;

use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionalTree};

use super::{SledStore, backend, decode, encode, tx_error};
use crate::alerts::model::Alert;
use crate::store::{
    CondState, Condition, ConditionChange, DeliveryState, DeliveryStatus, NewAlert, OutboxStore,
    PendingEntry, Resolving, Result, StoreError,
};

type TxResult<T> = std::result::Result<T, ConflictableTransactionError<StoreError>>;

#[derive(Clone)]
pub(super) struct Trees {
    alerts: sled::Tree,
    by_id: sled::Tree,
    deliveries: sled::Tree,
    pending: sled::Tree,
    conditions: sled::Tree,
    resolving: sled::Tree,
}

struct Tx<'a> {
    alerts: &'a TransactionalTree,
    by_id: &'a TransactionalTree,
    deliveries: &'a TransactionalTree,
    pending: &'a TransactionalTree,
    conditions: &'a TransactionalTree,
    resolving: &'a TransactionalTree,
}

impl Trees {
    pub(super) fn open(db: &sled::Db) -> Result<Self> {
        let t = |name: &'static str| db.open_tree(name).map_err(backend("open tree"));
        Ok(Trees {
            alerts: t("alerts/alerts")?,
            by_id: t("alerts/by_id")?,
            deliveries: t("alerts/deliveries")?,
            pending: t("alerts/pending")?,
            conditions: t("alerts/conditions")?,
            resolving: t("alerts/resolving")?,
        })
    }

    /// Runs `f` in one transaction over all trees.
    fn tx<T>(&self, context: &'static str, f: impl Fn(&Tx<'_>) -> TxResult<T>) -> Result<T> {
        (
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
            )
            .map_err(tx_error(context))
    }
}

fn delivery_key(alert_id: &str, sink: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(alert_id.len() + sink.len() + 1);
    k.extend_from_slice(alert_id.as_bytes());
    k.push(0);
    k.extend_from_slice(sink.as_bytes());
    k
}

fn pending_key(due_ms: u64, dkey: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(8 + dkey.len());
    k.extend_from_slice(&due_ms.to_be_bytes());
    k.extend_from_slice(dkey);
    k
}

/// A pending key as an entry (None: not one of ours).
fn pending_entry(k: &[u8]) -> Option<PendingEntry> {
    let (due, rest) = k.split_at_checked(8)?;
    let nul = rest.iter().position(|b| *b == 0)?;
    Some(PendingEntry {
        due_ms: u64::from_be_bytes(due.try_into().ok()?),
        alert_id: String::from_utf8_lossy(&rest[..nul]).into_owned(),
        sink: String::from_utf8_lossy(&rest[nul + 1..]).into_owned(),
    })
}

fn abort(e: StoreError) -> ConflictableTransactionError<StoreError> {
    ConflictableTransactionError::Abort(e)
}

impl Tx<'_> {
    fn insert_alert(&self, a: &NewAlert) -> TxResult<()> {
        let alert = &a.alert;
        self.alerts.insert(
            &a.seq.to_be_bytes(),
            encode("alerts", alert).map_err(abort)?,
        )?;
        self.by_id
            .insert(alert.id.as_bytes(), &a.seq.to_be_bytes())?;
        for sink in &a.sinks {
            let d = DeliveryState::new(&alert.id, sink, a.now_ms);
            let dk = delivery_key(&alert.id, sink);
            self.deliveries
                .insert(dk.as_slice(), encode("deliveries", &d).map_err(abort)?)?;
            self.pending
                .insert(pending_key(a.now_ms, &dk), &[] as &[u8])?;
        }
        Ok(())
    }

    fn condition(&self, key: &str) -> TxResult<Option<Condition>> {
        match self.conditions.get(key.as_bytes())? {
            Some(b) => Ok(Some(
                decode("conditions", key.as_bytes(), &b).map_err(abort)?,
            )),
            None => Ok(None),
        }
    }

    /// Replaces a delivery record, moving its queue entry.
    fn put_delivery(&self, old: &DeliveryState, new: &DeliveryState) -> TxResult<()> {
        let dk = delivery_key(&new.alert_id, &new.sink);
        if old.state == DeliveryStatus::Pending {
            self.pending
                .remove(pending_key(old.next_attempt_at_ms, &dk))?;
        }
        if new.state == DeliveryStatus::Pending {
            self.pending
                .insert(pending_key(new.next_attempt_at_ms, &dk), &[] as &[u8])?;
        }
        self.deliveries
            .insert(dk, encode("deliveries", new).map_err(abort)?)?;
        Ok(())
    }
}

impl SledStore {
    fn deliveries_of(&self, alert_id: &str) -> Result<Vec<DeliveryState>> {
        let mut prefix = alert_id.as_bytes().to_vec();
        prefix.push(0);
        let mut out = Vec::new();
        for kv in self.outbox.deliveries.scan_prefix(prefix) {
            let (k, v) = kv.map_err(backend("reading deliveries"))?;
            out.push(decode("deliveries", &k, &v)?);
        }
        Ok(out)
    }
}

impl OutboxStore for SledStore {
    fn next_alert_seq(&self) -> Result<u64> {
        self.next_id()
    }

    fn alert_count(&self) -> Result<usize> {
        Ok(self.outbox.alerts.len())
    }

    fn pending_count(&self) -> Result<usize> {
        Ok(self.outbox.pending.len())
    }

    fn update_condition(
        &self,
        key: &str,
        decide: &mut dyn FnMut(Option<&Condition>) -> ConditionChange,
    ) -> Result<()> {
        // sled may run a transaction more than once; the last run is the
        // one applied.
        let decide = RefCell::new(decide);
        let wrote = std::cell::Cell::new(false);
        self.outbox.tx("alert condition", |tx| {
            let before = tx.condition(key)?;
            let change = (decide.borrow_mut())(before.as_ref());
            wrote.set(change != ConditionChange::default());
            if let Some(c) = &change.condition {
                tx.conditions
                    .insert(key.as_bytes(), encode("conditions", c).map_err(abort)?)?;
            }
            match change.resolving {
                Resolving::Keep => {}
                Resolving::Hold { since_ms } => {
                    tx.resolving
                        .insert(key.as_bytes(), &since_ms.to_be_bytes())?;
                }
                Resolving::Clear => {
                    tx.resolving.remove(key.as_bytes())?;
                }
            }
            if let Some(a) = &change.alert {
                tx.insert_alert(a)?;
            }
            Ok(())
        })?;
        // Nothing written (a duplicate, a resolve of a closed condition):
        // nothing to make durable.
        if wrote.get() { self.flush() } else { Ok(()) }
    }

    fn insert_alert(&self, alert: &NewAlert) -> Result<()> {
        self.outbox
            .tx("storing an alert", |tx| tx.insert_alert(alert))?;
        self.flush()
    }

    fn held_resolves(&self) -> Result<Vec<(String, u64)>> {
        let mut out = Vec::new();
        for kv in self.outbox.resolving.iter() {
            let (k, v) = kv.map_err(backend("reading held resolves"))?;
            let since = v.as_ref().try_into().map(u64::from_be_bytes).unwrap_or(0);
            out.push((String::from_utf8_lossy(&k).into_owned(), since));
        }
        Ok(out)
    }

    fn alert(&self, id: &str) -> Result<Option<Alert>> {
        let t = &self.outbox;
        let Some(seq) = t
            .by_id
            .get(id.as_bytes())
            .map_err(backend("reading alerts"))?
        else {
            return Ok(None);
        };
        match t.alerts.get(&seq).map_err(backend("reading alerts"))? {
            Some(b) => Ok(Some(decode("alerts", id.as_bytes(), &b)?)),
            None => Ok(None),
        }
    }

    fn alerts(&self, limit: usize, oldest_first: bool) -> Result<Vec<(Alert, Vec<DeliveryState>)>> {
        let iter: Box<dyn Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>>> = if oldest_first
        {
            Box::new(self.outbox.alerts.iter())
        } else {
            Box::new(self.outbox.alerts.iter().rev())
        };
        let mut out = Vec::new();
        for kv in iter.take(limit) {
            let (k, v) = kv.map_err(backend("reading alerts"))?;
            let alert: Alert = decode("alerts", &k, &v)?;
            let d = self.deliveries_of(&alert.id)?;
            out.push((alert, d));
        }
        Ok(out)
    }

    fn remove_alert(&self, id: &str) -> Result<()> {
        let Some(seq) = self
            .outbox
            .by_id
            .get(id.as_bytes())
            .map_err(backend("reading alerts"))?
        else {
            return Ok(());
        };
        let Some(alert) = self.alert(id)? else {
            return Ok(());
        };
        let ds = self.deliveries_of(id)?;
        self.outbox.tx("pruning an alert", |tx| {
            tx.alerts.remove(&seq)?;
            tx.by_id.remove(id.as_bytes())?;
            for d in &ds {
                let dk = delivery_key(&d.alert_id, &d.sink);
                tx.deliveries.remove(dk.as_slice())?;
                if d.state == DeliveryStatus::Pending {
                    tx.pending.remove(pending_key(d.next_attempt_at_ms, &dk))?;
                }
            }
            if let Some(c) = tx.condition(&alert.condition)?
                && c.alert.id == alert.id
                && (!c.resolvable || c.state == CondState::Resolved)
            {
                tx.conditions.remove(alert.condition.as_bytes())?;
            }
            Ok(())
        })
    }

    fn scan_pending(&self, visit: &mut dyn FnMut(&PendingEntry) -> ControlFlow<()>) -> Result<()> {
        for kv in self.outbox.pending.iter() {
            let (k, _) = kv.map_err(backend("reading the queue"))?;
            let Some(e) = pending_entry(&k) else {
                continue;
            };
            if visit(&e).is_break() {
                break;
            }
        }
        Ok(())
    }

    fn remove_pending(&self, e: &PendingEntry) -> Result<()> {
        self.outbox
            .pending
            .remove(pending_key(e.due_ms, &delivery_key(&e.alert_id, &e.sink)))
            .map_err(backend("updating the queue"))?;
        Ok(())
    }

    fn delivery(&self, alert_id: &str, sink: &str) -> Result<Option<DeliveryState>> {
        let dk = delivery_key(alert_id, sink);
        match self
            .outbox
            .deliveries
            .get(&dk)
            .map_err(backend("reading deliveries"))?
        {
            Some(b) => Ok(Some(decode("deliveries", &dk, &b)?)),
            None => Ok(None),
        }
    }

    fn update_delivery(
        &self,
        alert_id: &str,
        sink: &str,
        decide: &mut dyn FnMut(&DeliveryState) -> Option<DeliveryState>,
    ) -> Result<()> {
        let dk = delivery_key(alert_id, sink);
        let decide = RefCell::new(decide);
        self.outbox.tx("recording a delivery", |tx| {
            let Some(b) = tx.deliveries.get(dk.as_slice())? else {
                return Ok(());
            };
            let old: DeliveryState = decode("deliveries", &dk, &b).map_err(abort)?;
            if let Some(new) = (decide.borrow_mut())(&old) {
                tx.put_delivery(&old, &new)?;
            }
            Ok(())
        })
    }

    fn flush_outbox(&self) -> Result<()> {
        self.flush()
    }
}
