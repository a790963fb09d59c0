//! Error type for certificate and TLS operations.

use thiserror::Error;

/// Result alias for this crate.
pub type Result<T, E = PkiError> = std::result::Result<T, E>;

/// Errors from CA, certificate, identity and TLS operations.
#[derive(Debug, Error)]
pub enum PkiError {
    /// rcgen failed while generating keys, CSRs or certificates.
    #[error("{context}: {source}")]
    Rcgen {
        context: &'static str,
        #[source]
        source: rcgen::Error,
    },
    /// A certificate could not be parsed.
    #[error("parsing {what}: {detail}")]
    Parse { what: &'static str, detail: String },
    /// PEM input was malformed or empty.
    #[error("PEM for {what}: {detail}")]
    Pem { what: &'static str, detail: String },
    /// The supplied CA certificate is not usable as an issuer.
    #[error("CA certificate unusable: {0}")]
    InvalidCa(String),
    /// A host name failed validation.
    #[error("invalid host name {name:?}: {reason}")]
    InvalidHostName { name: String, reason: &'static str },
    /// A fleet name failed validation.
    #[error("invalid fleet name {name:?}: {reason}")]
    InvalidFleetName { name: String, reason: &'static str },
    /// A server certificate was requested with no names.
    #[error("server certificate needs at least one DNS name or IP address")]
    NoServerNames,
    /// A name could not be encoded as a DNS SAN.
    #[error("invalid server name {0:?}")]
    InvalidServerName(String),
    /// The certificate has no SPIFFE URI SAN.
    #[error("certificate has no spiffe:// URI SAN")]
    MissingIdentity,
    /// The certificate has more than one SPIFFE URI SAN.
    #[error("certificate has {0} spiffe:// URI SANs; exactly one is required")]
    AmbiguousIdentity(usize),
    /// The SPIFFE URI is not of the form `spiffe://<fleet>/host/<host>`.
    #[error("malformed identity URI {uri:?}: {reason}")]
    MalformedIdentity { uri: String, reason: &'static str },
    /// The SPIFFE URI names a different fleet.
    #[error("identity belongs to fleet {found:?}, expected {expected:?}")]
    WrongFleet { expected: String, found: String },
    /// A time value was outside what certificates can represent.
    #[error("time out of range: {0}")]
    TimeOutOfRange(&'static str),
    /// rustls rejected the configuration.
    #[error("TLS configuration: {0}")]
    Tls(String),
}

impl PkiError {
    pub(crate) fn rcgen(context: &'static str) -> impl FnOnce(rcgen::Error) -> PkiError {
        move |source| PkiError::Rcgen { context, source }
    }
}
