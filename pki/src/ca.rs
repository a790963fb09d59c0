//! The fleet certificate authority and the certificates it issues.

use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use rand::RngCore;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use sha2::{Digest, Sha256};

use crate::error::{PkiError, Result};
use crate::identity::{spiffe_uri, validate_fleet_name, validate_host_name};
use crate::time::{from_unix_secs, set_validity};

/// Validity of a generated CA certificate: ten years.
pub const CA_LIFETIME: Duration = Duration::from_secs(10 * 365 * 24 * 60 * 60);

/// Default validity of agent client certificates.
pub const DEFAULT_AGENT_CERT_LIFETIME: Duration = Duration::from_secs(24 * 60 * 60);

/// Issued certificates are valid from `now - CLOCK_SKEW_ALLOWANCE`, so that a
/// peer whose clock is slightly behind still accepts them.
pub const CLOCK_SKEW_ALLOWANCE: Duration = Duration::from_secs(5 * 60);

/// A certificate with its freshly generated private key.
#[derive(Clone, PartialEq, Eq)]
pub struct IssuedCert {
    pub cert_pem: String,
    pub key_pem: String,
    pub serial_hex: String,
    pub not_after: SystemTime,
}

impl std::fmt::Debug for IssuedCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedCert")
            .field("serial_hex", &self.serial_hex)
            .field("not_after", &self.not_after)
            .field("key_pem", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// A certificate signed from a CSR; the private key never left the requester.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedCert {
    pub cert_pem: String,
    pub serial_hex: String,
    pub not_after: SystemTime,
}

/// The fleet CA (self-signed, or an operator-supplied CA/intermediate).
pub struct Ca {
    cert_pem: String,
    cert_der: Vec<u8>,
    key_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca")
            .field("fingerprint_sha256", &self.fingerprint_sha256())
            .finish_non_exhaustive()
    }
}

impl Ca {
    /// Generates a self-signed ECDSA P-256 CA named `Convoy CA <fleet>`,
    /// valid from `now` for [`CA_LIFETIME`].
    pub fn generate(fleet: &str, now: SystemTime) -> Result<Ca> {
        validate_fleet_name(fleet)?;
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .map_err(PkiError::rcgen("generating CA key"))?;
        let mut params = CertificateParams::default();
        params.distinguished_name = dn(&format!("Convoy CA {fleet}"));
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.serial_number = Some(random_serial());
        set_validity(&mut params, now - CLOCK_SKEW_ALLOWANCE, now + CA_LIFETIME)?;
        let cert = params
            .self_signed(&key)
            .map_err(PkiError::rcgen("self-signing CA certificate"))?;
        Ok(Ca {
            cert_pem: cert.pem(),
            cert_der: cert.der().to_vec(),
            key_pem: key.serialize_pem(),
            issuer: Issuer::new(params, key),
        })
    }

    /// Loads a CA (or intermediate) from PEM. Checks that the certificate is
    /// a CA and that the key belongs to it.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Ca> {
        let cert_der = first_cert_der(cert_pem, "CA certificate")?;
        let key = KeyPair::from_pem(key_pem).map_err(PkiError::rcgen("parsing CA private key"))?;
        let (_, x509) =
            x509_parser::parse_x509_certificate(&cert_der).map_err(|e| PkiError::Parse {
                what: "CA certificate",
                detail: e.to_string(),
            })?;
        if !x509.is_ca() {
            return Err(PkiError::InvalidCa(
                "basic constraints do not mark it as a CA".into(),
            ));
        }
        if x509.public_key().subject_public_key.data.as_ref() != key.public_key_raw() {
            return Err(PkiError::InvalidCa(
                "private key does not match the certificate".into(),
            ));
        }
        let issuer = Issuer::from_ca_cert_der(&cert_der.clone().into(), key)
            .map_err(PkiError::rcgen("reading CA certificate as issuer"))?;
        Ok(Ca {
            cert_pem: pem_encode("CERTIFICATE", &cert_der),
            cert_der,
            key_pem: key_pem.to_owned(),
            issuer,
        })
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA private key, PEM (PKCS#8). Handle with care.
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// The CA certificate, DER.
    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// Lowercase hex SHA-256 of the CA certificate DER; pinned in join tokens.
    pub fn fingerprint_sha256(&self) -> String {
        sha256_fingerprint(&self.cert_der)
    }

    /// Issues a TLS server certificate (server-auth EKU) for `names`: each
    /// name that parses as an IP address becomes an IP SAN, the rest DNS SANs.
    pub fn issue_server(
        &self,
        names: &[String],
        now: SystemTime,
        lifetime: Duration,
    ) -> Result<IssuedCert> {
        let first = names.first().ok_or(PkiError::NoServerNames)?;
        let mut sans = Vec::with_capacity(names.len());
        for name in names {
            sans.push(match name.parse::<IpAddr>() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) => SanType::DnsName(
                    name.clone()
                        .try_into()
                        .map_err(|_| PkiError::InvalidServerName(name.clone()))?,
                ),
            });
        }
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .map_err(PkiError::rcgen("generating server key"))?;
        let mut params = leaf_params(first, now, lifetime)?;
        params.subject_alt_names = sans;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(PkiError::rcgen("signing server certificate"))?;
        let (serial_hex, not_after) = serial_and_expiry(cert.der())?;
        Ok(IssuedCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            serial_hex,
            not_after,
        })
    }

    /// Signs an agent CSR as a client certificate (client-auth EKU) with CN
    /// `host` and SAN URI `spiffe://<fleet>/host/<host>`. Everything in the
    /// CSR except its public key is ignored: the identity is decided by the
    /// caller (from the join token or the authenticated stream). The CSR's
    /// self-signature is verified (proof of key possession).
    pub fn sign_agent_csr(
        &self,
        csr_pem: &str,
        fleet: &str,
        host: &str,
        now: SystemTime,
        lifetime: Duration,
    ) -> Result<SignedCert> {
        validate_fleet_name(fleet)?;
        validate_host_name(host)?;
        let mut csr = CertificateSigningRequestParams::from_pem(csr_pem)
            .map_err(PkiError::rcgen("parsing agent CSR"))?;
        let uri = spiffe_uri(fleet, host)
            .try_into()
            .map_err(PkiError::rcgen("encoding SPIFFE URI"))?;
        let mut params = leaf_params(host, now, lifetime)?;
        params.subject_alt_names = vec![SanType::URI(uri)];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        csr.params = params;
        let cert = csr
            .signed_by(&self.issuer)
            .map_err(PkiError::rcgen("signing agent certificate"))?;
        let (serial_hex, not_after) = serial_and_expiry(cert.der())?;
        Ok(SignedCert {
            cert_pem: cert.pem(),
            serial_hex,
            not_after,
        })
    }
}

/// Generates an agent key pair (ECDSA P-256) and returns it as PKCS#8 PEM.
pub fn generate_agent_key() -> Result<String> {
    KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map(|k| k.serialize_pem())
        .map_err(PkiError::rcgen("generating agent key"))
}

/// Builds a CSR (PEM) for the agent key. The CA ignores the requested names;
/// they are only informative.
pub fn make_csr(key_pem: &str, fleet: &str, host: &str) -> Result<String> {
    validate_fleet_name(fleet)?;
    validate_host_name(host)?;
    let key = KeyPair::from_pem(key_pem).map_err(PkiError::rcgen("parsing agent key"))?;
    let mut params = CertificateParams::default();
    params.distinguished_name = dn(host);
    params.subject_alt_names = vec![SanType::URI(
        spiffe_uri(fleet, host)
            .try_into()
            .map_err(PkiError::rcgen("encoding SPIFFE URI"))?,
    )];
    params
        .serialize_request(&key)
        .map_err(PkiError::rcgen("building CSR"))?
        .pem()
        .map_err(PkiError::rcgen("encoding CSR"))
}

/// Lowercase hex SHA-256 of some DER bytes (e.g. a CA certificate).
pub fn sha256_fingerprint(der: &[u8]) -> String {
    hex::encode(Sha256::digest(der))
}

fn dn(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn
}

fn leaf_params(cn: &str, now: SystemTime, lifetime: Duration) -> Result<CertificateParams> {
    let mut params = CertificateParams::default();
    params.distinguished_name = dn(cn);
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.use_authority_key_identifier_extension = true;
    params.serial_number = Some(random_serial());
    set_validity(&mut params, now - CLOCK_SKEW_ALLOWANCE, now + lifetime)?;
    Ok(params)
}

/// 16 random bytes, with the top bit cleared (positive INTEGER) and a
/// non-zero first byte (no DER stripping), so the encoding is exactly these
/// bytes.
fn random_serial() -> SerialNumber {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    bytes[0] = (bytes[0] & 0x7f) | 0x01;
    SerialNumber::from_slice(&bytes)
}

fn serial_and_expiry(der: &[u8]) -> Result<(String, SystemTime)> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| PkiError::Parse {
        what: "issued certificate",
        detail: e.to_string(),
    })?;
    Ok((
        hex::encode(cert.raw_serial()),
        from_unix_secs(cert.validity().not_after.timestamp()),
    ))
}

fn first_cert_der(pem: &str, what: &'static str) -> Result<Vec<u8>> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .next()
        .ok_or_else(|| PkiError::Pem {
            what,
            detail: "no CERTIFICATE block".into(),
        })?
        .map(|c| c.to_vec())
        .map_err(|e| PkiError::Pem {
            what,
            detail: e.to_string(),
        })
}

fn pem_encode(label: &str, der: &[u8]) -> String {
    // Standard base64 with 64-column lines, as in RFC 7468.
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut b64 = String::with_capacity(der.len().div_ceil(3) * 4);
    for chunk in der.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                b64.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                b64.push('=');
            }
        }
    }
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}
