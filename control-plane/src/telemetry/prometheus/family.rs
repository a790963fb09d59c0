//! Writing one metric family through the encoder: its `# HELP`/`# TYPE`
//! header goes out with its first series, so a family without series writes
//! nothing (as a hand-grouped exposition would).

use std::fmt;

use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;

/// A series without labels.
pub(super) const NO_LABELS: [(&str, &str); 0] = [];

/// A sample value: integers (bytes, counts) stay exact.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Value {
    Int(u64),
    Float(f64),
}

impl From<u64> for Value {
    fn from(v: u64) -> Self {
        Value::Int(v)
    }
}

impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Float(v)
    }
}

/// One metric family being written: its `# HELP`/`# TYPE` header goes out
/// with its first series, so a family without series writes nothing.
pub(super) struct Family<'s, 'd> {
    name: &'static str,
    help: &'static str,
    kind: MetricType,
    pending: Option<&'s mut DescriptorEncoder<'d>>,
    open: Option<MetricEncoder<'s>>,
}

impl<'s, 'd> Family<'s, 'd> {
    pub(super) fn series(
        &mut self,
        labels: &impl EncodeLabelSet,
        value: impl Into<Value>,
    ) -> fmt::Result {
        if let Some(enc) = self.pending.take() {
            self.open = Some(enc.encode_descriptor(self.name, self.help, None, self.kind)?);
        }
        let Some(metric) = self.open.as_mut() else {
            return Err(fmt::Error);
        };
        let mut m = metric.encode_family(labels)?;
        match (self.kind, value.into()) {
            (MetricType::Counter, Value::Int(v)) => {
                m.encode_counter::<NoLabelSet, _, u64>(&v, None)
            }
            (MetricType::Counter, Value::Float(v)) => {
                m.encode_counter::<NoLabelSet, _, f64>(&v, None)
            }
            (_, Value::Int(v)) => m.encode_gauge(&v),
            (_, Value::Float(v)) => m.encode_gauge(&v),
        }
    }
}

pub(super) fn family<'d>(
    enc: &mut DescriptorEncoder<'d>,
    kind: MetricType,
    name: &'static str,
    help: &'static str,
    write: impl FnOnce(&mut Family<'_, 'd>) -> fmt::Result,
) -> fmt::Result {
    let mut f = Family {
        name,
        help,
        kind,
        pending: Some(enc),
        open: None,
    };
    write(&mut f)
}

pub(super) fn gauge<'d>(
    enc: &mut DescriptorEncoder<'d>,
    name: &'static str,
    help: &'static str,
    write: impl FnOnce(&mut Family<'_, 'd>) -> fmt::Result,
) -> fmt::Result {
    family(enc, MetricType::Gauge, name, help, write)
}

/// `name` without `_total` (the encoder adds it).
pub(super) fn counter<'d>(
    enc: &mut DescriptorEncoder<'d>,
    name: &'static str,
    help: &'static str,
    write: impl FnOnce(&mut Family<'_, 'd>) -> fmt::Result,
) -> fmt::Result {
    family(enc, MetricType::Counter, name, help, write)
}
