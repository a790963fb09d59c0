//! Conversions between `SystemTime` and the certificate time types.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::{PkiError, Result};

/// Seconds since the Unix epoch (negative before it).
pub(crate) fn unix_secs(t: SystemTime) -> Result<i64> {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).map_err(|_| PkiError::TimeOutOfRange("after epoch")),
        Err(e) => i64::try_from(e.duration().as_secs())
            .map(|s| -s)
            .map_err(|_| PkiError::TimeOutOfRange("before epoch")),
    }
}

/// `SystemTime` from seconds since the Unix epoch.
pub(crate) fn from_unix_secs(secs: i64) -> SystemTime {
    if secs >= 0 {
        UNIX_EPOCH + Duration::from_secs(secs.unsigned_abs())
    } else {
        UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
    }
}

/// Sets `not_before`/`not_after` on rcgen params. The `time` values are built
/// through x509-parser's `ASN1Time`, so this crate needs no direct `time`
/// dependency (both resolve to the same `time` 0.3).
pub(crate) fn set_validity(
    params: &mut rcgen::CertificateParams,
    not_before: SystemTime,
    not_after: SystemTime,
) -> Result<()> {
    let conv = |t: SystemTime| -> Result<_> {
        x509_parser::time::ASN1Time::from_timestamp(unix_secs(t)?)
            .map(|a| a.to_datetime())
            .map_err(|_| PkiError::TimeOutOfRange("not representable in a certificate"))
    };
    params.not_before = conv(not_before)?;
    params.not_after = conv(not_after)?;
    Ok(())
}
