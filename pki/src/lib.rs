//! Convoy's public-key infrastructure: the fleet CA, the control plane's
//! server certificate, agent client certificates (SAN URI
//! `spiffe://<fleet>/host/<name>`), join tokens, revocation and renewal
//! timing. Pure functions over bytes and an injected clock; the daemons do
//! the I/O.

mod ca;
mod error;
mod identity;
mod renewal;
mod revocation;
mod time;
mod tls;
mod token;

pub use ca::{
    CA_LIFETIME, CLOCK_SKEW_ALLOWANCE, Ca, DEFAULT_AGENT_CERT_LIFETIME, IssuedCert, SignedCert,
    generate_agent_key, make_csr, sha256_fingerprint,
};
pub use error::{PkiError, Result};
pub use identity::{
    HostIdentity, host_identity, spiffe_uri, validate_fleet_name, validate_host_name,
};
pub use renewal::renewal_at;
pub use revocation::RevocationList;
pub use tls::{ALPN_H2, client_config, server_config};
pub use token::{JoinToken, ParsedToken, StoredToken, TOKEN_PREFIX, TokenError, parse_token};
