//! Verifying git forges' push webhooks, in constant time:
//! GitHub `X-Hub-Signature-256: sha256=<hex>` (HMAC-SHA256 of the raw
//! body), Gitea/Forgejo `X-Gitea-Signature` / `X-Forgejo-Signature` (bare
//! hex of the same HMAC), GitLab `X-Gitlab-Token` (the secret itself).

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forge {
    GitHub,
    Gitea,
    GitLab,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    #[error(
        "no signature header (X-Hub-Signature-256, X-Gitea-Signature, X-Forgejo-Signature or X-Gitlab-Token)"
    )]
    Missing,
    #[error("malformed signature header")]
    Malformed,
    #[error("signature does not match")]
    Mismatch,
}

/// HMAC-SHA256(secret, body) as lowercase hex (also used to sign our own
/// outgoing alert webhooks).
pub fn hmac_sha256_hex(secret: &[u8], body: &[u8]) -> String {
    // HMAC accepts keys of any length; new_from_slice cannot fail for it.
    match HmacSha256::new_from_slice(secret) {
        Ok(mut mac) => {
            mac.update(body);
            hex::encode(mac.finalize().into_bytes())
        }
        Err(_) => String::new(),
    }
}

fn verify_hmac_hex(secret: &[u8], body: &[u8], hex_sig: &str) -> Result<(), WebhookError> {
    let sig = hex::decode(hex_sig.trim()).map_err(|_| WebhookError::Malformed)?;
    let mut mac = HmacSha256::new_from_slice(secret).map_err(|_| WebhookError::Malformed)?;
    mac.update(body);
    // Constant-time comparison inside.
    mac.verify_slice(&sig).map_err(|_| WebhookError::Mismatch)
}

/// Verifies a webhook request; `header` looks a header up by its
/// (lowercase) name. Returns which forge signed it.
pub fn verify(
    secret: &[u8],
    body: &[u8],
    header: impl Fn(&str) -> Option<String>,
) -> Result<Forge, WebhookError> {
    if let Some(sig) = header("x-hub-signature-256") {
        let hex_sig = sig.strip_prefix("sha256=").ok_or(WebhookError::Malformed)?;
        verify_hmac_hex(secret, body, hex_sig)?;
        return Ok(
            if header("x-gitea-signature").is_some() || header("x-forgejo-signature").is_some() {
                Forge::Gitea
            } else {
                Forge::GitHub
            },
        );
    }
    if let Some(sig) = header("x-gitea-signature").or_else(|| header("x-forgejo-signature")) {
        verify_hmac_hex(secret, body, &sig)?;
        return Ok(Forge::Gitea);
    }
    if let Some(token) = header("x-gitlab-token") {
        let ok: bool = token.as_bytes().ct_eq(secret).into();
        return if ok {
            Ok(Forge::GitLab)
        } else {
            Err(WebhookError::Mismatch)
        };
    }
    Err(WebhookError::Missing)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), (*v).to_owned()))
            .collect();
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        }
    }

    /// GitHub's documented test vector.
    #[test]
    fn github_documented_vector() {
        let secret = b"It's a Secret to Everybody";
        let body = b"Hello, World!";
        let sig = "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert_eq!(hmac_sha256_hex(secret, body), sig);
        let h = headers(&[("X-Hub-Signature-256", &format!("sha256={sig}"))]);
        assert_eq!(verify(secret, body, h), Ok(Forge::GitHub));
        let h = headers(&[("X-Hub-Signature-256", &format!("sha256={sig}"))]);
        assert_eq!(
            verify(secret, b"Hello, World?", h),
            Err(WebhookError::Mismatch)
        );
        let h = headers(&[("X-Hub-Signature-256", sig)]);
        assert_eq!(verify(secret, body, h), Err(WebhookError::Malformed));
    }

    #[test]
    fn gitea_forgejo_and_gitlab() {
        let secret = b"s3cret";
        let body = br#"{"ref":"refs/heads/main"}"#;
        let sig = hmac_sha256_hex(secret, body);
        assert_eq!(
            verify(secret, body, headers(&[("X-Gitea-Signature", &sig)])),
            Ok(Forge::Gitea)
        );
        assert_eq!(
            verify(secret, body, headers(&[("X-Forgejo-Signature", &sig)])),
            Ok(Forge::Gitea)
        );
        assert_eq!(
            verify(secret, body, headers(&[("X-Gitea-Signature", "00")])),
            Err(WebhookError::Mismatch)
        );
        assert_eq!(
            verify(secret, body, headers(&[("X-Gitlab-Token", "s3cret")])),
            Ok(Forge::GitLab)
        );
        assert_eq!(
            verify(secret, body, headers(&[("X-Gitlab-Token", "s3cre")])),
            Err(WebhookError::Mismatch)
        );
        assert_eq!(
            verify(secret, body, headers(&[])),
            Err(WebhookError::Missing)
        );
    }
}
