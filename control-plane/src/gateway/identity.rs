//! Who an agent is: call authentication from its certificate, enrollment
//! with a join token, and certificate signing (enrollment and renewal).
//! The host name always comes from the certificate or the token, never
//! from the message.

use std::time::SystemTime;

use convoy_pki::{HostIdentity, TokenError};
use convoy_shared::proto::{EnrollRequest, EnrollResponse};
use tonic::Status;

use super::Gateway;
use super::tls::PeerInfo;
use crate::store::{CertRecord, HostRecord, StoreError, unix};

/// Largest CSR accepted (a P-256 CSR is under 1 KiB).
const MAX_CSR_BYTES: usize = 16 * 1024;

impl Gateway {
    /// Authenticates a call that needs a client certificate: ours (checked
    /// by rustls), with a valid identity for this fleet, unexpired now, and
    /// neither host nor serial revoked.
    pub(crate) fn authenticate(
        &self,
        peer: Option<&PeerInfo>,
        now: SystemTime,
    ) -> Result<HostIdentity, Status> {
        let der = peer
            .and_then(|p| p.client_cert.as_ref())
            .ok_or_else(|| Status::unauthenticated("a client certificate is required"))?;
        let id = convoy_pki::host_identity(der, self.fleet())
            .map_err(|e| Status::unauthenticated(format!("client certificate: {e}")))?;
        if id.not_after <= now {
            return Err(Status::unauthenticated("client certificate has expired"));
        }
        self.check_not_revoked(&id)?;
        Ok(id)
    }

    pub(crate) fn check_not_revoked(&self, id: &HostIdentity) -> Result<(), Status> {
        let revoked = self
            .store()
            .revocations()
            .map_err(|e| internal("reading revocations", &e))?;
        if revoked.is_revoked(id) {
            tracing::warn!(host = %id.host, serial = %id.serial_hex, "revoked certificate refused");
            return Err(Status::permission_denied("certificate revoked"));
        }
        Ok(())
    }

    /// Signs `csr_pem` for `host` (only its public key is used).
    pub(crate) fn sign(
        &self,
        csr_pem: &str,
        host: &str,
        now: SystemTime,
    ) -> Result<convoy_pki::SignedCert, Status> {
        if csr_pem.len() > MAX_CSR_BYTES {
            return Err(Status::invalid_argument("CSR larger than 16 KiB"));
        }
        self.ca()
            .sign_agent_csr(
                csr_pem,
                self.fleet(),
                host,
                now,
                self.cfg().agent_cert_lifetime,
            )
            .map_err(|e| Status::invalid_argument(format!("CSR: {e}")))
    }

    /// Records `signed` as the host's current certificate.
    pub(crate) fn record(
        &self,
        signed: &convoy_pki::SignedCert,
        host: &str,
        now: SystemTime,
    ) -> Result<(), Status> {
        self.store()
            .record_cert(&cert_record(signed, host, now))
            .map_err(|e| internal("recording certificate", &e))?;
        tracing::info!(host, serial = %signed.serial_hex, not_after = unix(signed.not_after), "agent certificate issued");
        Ok(())
    }

    pub(crate) fn enroll(
        &self,
        req: EnrollRequest,
        now: SystemTime,
    ) -> Result<EnrollResponse, Status> {
        let (id, secret) = split_token(&req.token, &self.ca().fingerprint_sha256())
            .ok_or_else(|| Status::permission_denied("join token refused: malformed"))?;
        let store = self.store();
        // Verify (without consuming) first, so that a bad CSR does not
        // burn the token; the consuming compare-and-swap below decides.
        let token = match store.token(&id) {
            Ok(Some(t)) => t,
            Ok(None) => return Err(Status::permission_denied("join token refused: unknown")),
            Err(e) => return Err(internal("reading token", &e)),
        };
        token.verify(&secret, now).map_err(token_status)?;
        // The identity comes from the token, never from the request.
        let host = token.host.clone();
        let signed = self.sign(&req.csr_pem, &host, now)?;
        let token = store
            .consume_token(&id, &secret, now)
            .map_err(|e| match e {
                StoreError::Token(t) => token_status(t),
                StoreError::UnknownToken => {
                    Status::permission_denied("join token refused: unknown")
                }
                other => internal("consuming token", &other),
            })?;
        let prev = store
            .host(&host)
            .map_err(|e| internal("reading host", &e))?;
        // One change: the host, its certificate, and the host-wide
        // revocation lifted (a new token is the way back in after a
        // revocation; the old certificates stay revoked by serial).
        store
            .enroll_host(
                &HostRecord {
                    name: host.clone(),
                    labels: token.labels.clone(),
                    last_seen_unix: prev.as_ref().map_or(0, |p| p.last_seen_unix),
                    cert_serial: String::new(),
                    cert_not_after_unix: 0,
                    enrolled_at_unix: unix(now),
                },
                &cert_record(&signed, &host, now),
            )
            .map_err(|e| internal("recording the enrollment", &e))?;
        tracing::info!(host = %host, serial = %signed.serial_hex, not_after = unix(signed.not_after), agent_version = %req.agent_version, "host enrolled");
        Ok(EnrollResponse {
            cert_pem: signed.cert_pem,
            ca_pem: self.ca().cert_pem().to_owned(),
            host,
            fleet: self.fleet().to_owned(),
            labels: token.labels.into_iter().collect(),
        })
    }
}

fn cert_record(signed: &convoy_pki::SignedCert, host: &str, now: SystemTime) -> CertRecord {
    CertRecord {
        serial: signed.serial_hex.clone(),
        host: host.to_owned(),
        not_after_unix: unix(signed.not_after),
        issued_at_unix: unix(now),
    }
}

/// Accepts `convoy1.<id>.<secret>` (what agents send: the CA hash is not
/// needed by the server) or the whole printed token.
fn split_token(token: &str, our_fingerprint: &str) -> Option<(String, String)> {
    let t = token.trim();
    let full = if t.split('.').count() == 3 {
        format!("{t}.{our_fingerprint}")
    } else {
        t.to_owned()
    };
    convoy_pki::parse_token(&full)
        .ok()
        .map(|p| (p.id, p.secret))
}

fn token_status(e: TokenError) -> Status {
    let why = match e {
        TokenError::Expired => "expired",
        TokenError::AlreadyUsed => "already used",
        _ => "invalid",
    };
    Status::permission_denied(format!("join token refused: {why}"))
}

pub(crate) fn internal(what: &str, e: &dyn std::error::Error) -> Status {
    tracing::error!(error = %crate::error_chain(e), "{what}");
    Status::internal(format!("{what} failed"))
}
