//! The bounded hand-off between the sampler and the stream.

use std::collections::VecDeque;
use std::sync::Mutex;

use convoy_shared::proto::v1::{TelemetryBatch, TelemetrySample};
use tokio::sync::Notify;

/// Default capacity: one hour of samples at the default 10 s interval.
pub const DEFAULT_BUFFER_CAPACITY: usize = 360;

#[derive(Debug, Default)]
struct Inner {
    samples: VecDeque<TelemetrySample>,
    /// Dropped since the last batch was taken.
    dropped: u64,
    dropped_total: u64,
}

/// A bounded FIFO of samples. When full, a push drops the OLDEST sample and
/// counts it; the count goes out with (and is reset by) the next batch.
/// Shared as `Arc<TelemetryBuffer>` between the sampler and the stream.
#[derive(Debug)]
pub struct TelemetryBuffer {
    capacity: usize,
    inner: Mutex<Inner>,
    notify: Notify,
}

impl Default for TelemetryBuffer {
    fn default() -> Self {
        Self::new(DEFAULT_BUFFER_CAPACITY)
    }
}

impl TelemetryBuffer {
    /// `capacity` is at least 1.
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            capacity,
            inner: Mutex::new(Inner {
                samples: VecDeque::with_capacity(capacity.min(64)),
                ..Inner::default()
            }),
            notify: Notify::new(),
        }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding this lock leaves a consistent deque behind.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends a sample, dropping the oldest when full. Returns whether one
    /// was dropped.
    pub fn push(&self, sample: TelemetrySample) -> bool {
        let dropped = {
            let mut inner = self.lock();
            let dropped = if inner.samples.len() >= self.capacity {
                inner.samples.pop_front();
                inner.dropped += 1;
                inner.dropped_total += 1;
                true
            } else {
                false
            };
            inner.samples.push_back(sample);
            dropped
        };
        self.notify.notify_one();
        dropped
    }

    /// Takes up to `max` samples (oldest first) and the drop count since the
    /// previous batch; `None` when there is nothing to report.
    pub fn take_batch(&self, max: usize) -> Option<TelemetryBatch> {
        let mut inner = self.lock();
        if inner.samples.is_empty() && inner.dropped == 0 {
            return None;
        }
        let n = inner.samples.len().min(max.max(1));
        let samples: Vec<_> = inner.samples.drain(..n).collect();
        let dropped = std::mem::take(&mut inner.dropped);
        Some(TelemetryBatch { samples, dropped })
    }

    /// Puts a batch that could not be sent back at the front (its samples
    /// stay oldest); whatever no longer fits is dropped and counted.
    pub fn requeue(&self, batch: TelemetryBatch) {
        let mut inner = self.lock();
        inner.dropped += batch.dropped;
        for sample in batch.samples.into_iter().rev() {
            if inner.samples.len() >= self.capacity {
                // The requeued samples are older than everything queued.
                inner.dropped += 1;
                inner.dropped_total += 1;
                continue;
            }
            inner.samples.push_front(sample);
        }
    }

    /// Waits until a sample is pushed (for the stream's send loop).
    pub async fn notified(&self) {
        self.notify.notified().await;
    }

    pub fn len(&self) -> usize {
        self.lock().samples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops since the last batch.
    pub fn pending_dropped(&self) -> u64 {
        self.lock().dropped
    }

    /// Drops since start.
    pub fn dropped_total(&self) -> u64 {
        self.lock().dropped_total
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn sample(at: i64) -> TelemetrySample {
        TelemetrySample {
            at_unix_ms: at,
            ..Default::default()
        }
    }

    fn ats(batch: &TelemetryBatch) -> Vec<i64> {
        batch.samples.iter().map(|s| s.at_unix_ms).collect()
    }

    #[test]
    fn drops_oldest_and_reports_count_once() {
        let buf = TelemetryBuffer::new(3);
        for at in 1..=5 {
            buf.push(sample(at));
        }
        assert_eq!(buf.len(), 3);
        assert_eq!(buf.pending_dropped(), 2);
        let batch = buf.take_batch(10).unwrap();
        assert_eq!(ats(&batch), vec![3, 4, 5]);
        assert_eq!(batch.dropped, 2);
        assert!(buf.take_batch(10).is_none(), "count is reset by the batch");
        buf.push(sample(6));
        let batch = buf.take_batch(10).unwrap();
        assert_eq!((ats(&batch), batch.dropped), (vec![6], 0));
        assert_eq!(buf.dropped_total(), 2);
    }

    #[test]
    fn batches_are_bounded_and_in_order() {
        let buf = TelemetryBuffer::new(10);
        for at in 1..=5 {
            buf.push(sample(at));
        }
        assert_eq!(ats(&buf.take_batch(2).unwrap()), vec![1, 2]);
        assert_eq!(ats(&buf.take_batch(2).unwrap()), vec![3, 4]);
        assert_eq!(ats(&buf.take_batch(2).unwrap()), vec![5]);
    }

    #[test]
    fn requeue_keeps_order_and_counts_overflow() {
        let buf = TelemetryBuffer::new(3);
        buf.push(sample(1));
        buf.push(sample(2));
        let batch = buf.take_batch(2).unwrap();
        buf.push(sample(3));
        buf.push(sample(4));
        buf.requeue(batch); // room for one: 2 fits, 1 is dropped
        let batch = buf.take_batch(10).unwrap();
        assert_eq!(ats(&batch), vec![2, 3, 4]);
        assert_eq!(batch.dropped, 1);
    }

    #[test]
    fn drop_count_alone_is_reported() {
        let buf = TelemetryBuffer::new(1);
        buf.push(sample(1));
        buf.push(sample(2));
        let b = buf.take_batch(10).unwrap();
        assert_eq!((ats(&b), b.dropped), (vec![2], 1));
    }

    #[tokio::test]
    async fn push_wakes_a_waiter() {
        let buf = std::sync::Arc::new(TelemetryBuffer::new(2));
        let b2 = buf.clone();
        let waiter = tokio::spawn(async move { b2.notified().await });
        tokio::task::yield_now().await;
        buf.push(sample(1));
        tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .unwrap()
            .unwrap();
    }
}
