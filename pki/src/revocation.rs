//! Revoked hosts and certificate serials.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::identity::HostIdentity;

/// Hosts whose every certificate is revoked, and individual revoked serials
/// (lowercase hex, as in [`HostIdentity::serial_hex`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevocationList {
    pub hosts: BTreeSet<String>,
    pub serials: BTreeSet<String>,
}

impl RevocationList {
    /// Revokes every certificate for `host`. Returns false if it already was.
    pub fn revoke_host(&mut self, host: &str) -> bool {
        self.hosts.insert(host.to_owned())
    }

    /// Revokes one certificate by serial (hex; case-insensitive, ':' ignored).
    /// Returns false if it already was.
    pub fn revoke_serial(&mut self, serial_hex: &str) -> bool {
        self.serials.insert(normalize_serial(serial_hex))
    }

    /// Whether the identity's host or serial is revoked.
    pub fn is_revoked(&self, id: &HostIdentity) -> bool {
        self.hosts.contains(&id.host) || self.serials.contains(&normalize_serial(&id.serial_hex))
    }
}

fn normalize_serial(s: &str) -> String {
    s.chars()
        .filter(|c| *c != ':')
        .map(|c| c.to_ascii_lowercase())
        .collect()
}
