//! JSON bodies of the operator HTTP API that both the control plane (which
//! serves them) and the CLI (which reads them) name. Plain data, serde only.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One row of `GET /api/v1/hosts`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct HostView {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub connected: bool,
    pub last_seen_unix: u64,
    pub cert_serial: String,
    pub cert_not_after_unix: u64,
    pub revoked: bool,
}
