//! The report outbox: reports wait in the journal until the control plane
//! acknowledges them. A report the journal refuses (a full disk) is held in
//! memory instead — the stream sends it live while it is up — and moved
//! into the journal as soon as a later write goes through. Held reports are
//! lost if the agent stops first; at most [`MAX_HELD`] are kept.

use std::collections::{BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};

use convoy_kit::error_chain;
use tracing::{error, warn};

use crate::journal::{Journal, JournalResult};
use crate::report::Report;

/// Reports held in memory at most (the oldest go first): a disk that stays
/// full for days must not grow the agent without bound either.
pub const MAX_HELD: usize = 1_000;

#[derive(Debug)]
pub struct Outbox {
    journal: Arc<dyn Journal>,
    held: Mutex<VecDeque<Report>>,
}

impl Outbox {
    pub fn new(journal: Arc<dyn Journal>) -> Outbox {
        Outbox {
            journal,
            held: Mutex::new(VecDeque::new()),
        }
    }

    pub fn push(&self, r: Report) {
        let Ok(mut held) = self.held.lock() else {
            error!(stack = %r.stack, "report outbox lock poisoned; report dropped");
            return;
        };
        // Older held reports go into the journal first, in order.
        while let Some(old) = held.front() {
            if self.journal.push_report(old).is_err() {
                break;
            }
            held.pop_front();
        }
        if held.is_empty() {
            match self.journal.push_report(&r) {
                Ok(()) => return,
                Err(e) => error!(
                    stack = %r.stack,
                    kind = ?r.kind,
                    error = %error_chain(&e),
                    "cannot journal a report; holding it in memory (sent while the stream is up, \
                     lost if the agent stops before the journal takes it)"
                ),
            }
        }
        held.push_back(r);
        if held.len() > MAX_HELD {
            held.pop_front();
            warn!(
                max = MAX_HELD,
                "too many reports held in memory; the oldest was dropped"
            );
        }
    }

    /// Reports held in memory (not journaled), not yet acknowledged.
    pub fn held(&self) -> usize {
        self.held.lock().map_or(0, |h| h.len())
    }

    /// Unacknowledged reports, oldest first: the journal's and the held
    /// ones. A journal that cannot be read is logged and the held ones are
    /// still returned (they may be the only way out).
    pub fn pending(&self) -> Vec<Report> {
        let mut all = match self.journal.pending_reports() {
            Ok(r) => r,
            Err(e) => {
                error!(error = %error_chain(&e), "cannot read the report outbox");
                Vec::new()
            }
        };
        if let Ok(held) = self.held.lock() {
            all.extend(held.iter().cloned());
        }
        all.sort_by(|a, b| a.id.cmp(&b.id));
        all
    }

    /// Drops acknowledged reports (held or journaled); the journal is
    /// written only for the ones it holds.
    pub fn ack(&self, ids: &[String]) -> JournalResult<()> {
        let mut rest: BTreeSet<&String> = ids.iter().collect();
        if let Ok(mut held) = self.held.lock() {
            held.retain(|r| !rest.remove(&r.id));
        }
        if rest.is_empty() {
            return Ok(());
        }
        self.journal
            .ack(&rest.into_iter().cloned().collect::<Vec<_>>())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::journal::SledJournal;
    use crate::journal::faulty::FaultyJournal;
    use crate::report::ReportKind;

    #[test]
    fn refused_reports_are_held_sent_and_journaled_once_the_disk_has_room() {
        let dir = tempfile::tempdir().unwrap();
        let sled: Arc<dyn Journal> = Arc::new(SledJournal::open(&dir.path().join("j")).unwrap());
        let faulty = FaultyJournal::new(sled.clone());
        let outbox = Outbox::new(Arc::new(faulty.clone()));
        let r = |s: &str| Report::new(ReportKind::Healthy, s, "r", "ok".into());

        outbox.push(r("a"));
        faulty.set_full(true);
        outbox.push(r("b"));
        outbox.push(r("c"));
        let pending = outbox.pending();
        assert_eq!(
            pending.iter().map(|r| r.stack.as_str()).collect::<Vec<_>>(),
            ["a", "b", "c"],
            "held reports are pending too, in order"
        );
        assert_eq!(sled.pending_reports().unwrap().len(), 1);

        // Acked while held (the stream delivered it live): no journal
        // write needed; one journaled still needs the (full) journal.
        outbox.ack(&[pending[1].id.clone()]).unwrap();
        assert_eq!(outbox.pending().len(), 2);
        outbox.ack(&[pending[0].id.clone()]).unwrap_err();

        faulty.set_full(false);
        outbox.push(r("d"));
        let journaled: Vec<String> = sled
            .pending_reports()
            .unwrap()
            .into_iter()
            .map(|r| r.stack)
            .collect();
        assert_eq!(journaled, ["a", "c", "d"]);
        assert_eq!(outbox.pending().len(), 3);
    }

    #[test]
    fn held_reports_are_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let sled: Arc<dyn Journal> = Arc::new(SledJournal::open(&dir.path().join("j")).unwrap());
        let faulty = FaultyJournal::new(sled);
        faulty.set_full(true);
        let outbox = Outbox::new(Arc::new(faulty));
        for i in 0..MAX_HELD + 5 {
            outbox.push(Report::new(
                ReportKind::Progress,
                &format!("s{i}"),
                "r",
                String::new(),
            ));
        }
        let pending = outbox.pending();
        assert_eq!(pending.len(), MAX_HELD);
        assert_eq!(pending[0].stack, "s5", "the oldest went first");
    }
}
