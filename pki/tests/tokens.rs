//! Join tokens, revocation and renewal timing.

// Test helpers outside #[test] fns panic on setup failure, like the tests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use convoy_pki::{
    Ca, HostIdentity, JoinToken, RevocationList, StoredToken, TokenError, parse_token, renewal_at,
};
use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::StdRng;

const FP: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

fn t(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

fn labels() -> BTreeMap<String, String> {
    BTreeMap::from([("gpu".to_owned(), "a100".to_owned())])
}

#[test]
fn token_format_and_parse() {
    let now = t(1_700_000_000);
    let (printed, stored) =
        JoinToken::new("web-1", labels(), Duration::from_secs(3600), now, FP).unwrap();
    let parts: Vec<&str> = printed.split('.').collect();
    assert_eq!(parts.len(), 4);
    assert_eq!(parts[0], "convoy1");
    assert_eq!(parts[1].len(), 16);
    assert_eq!(parts[2].len(), 64);
    assert_eq!(parts[3], FP);

    let parsed = parse_token(&format!("  {printed}\n")).unwrap();
    assert_eq!(parsed.id, stored.id);
    assert_eq!(parsed.id, parts[1]);
    assert_eq!(parsed.secret, parts[2]);
    assert_eq!(parsed.ca_fingerprint, FP);
    assert!(
        !format!("{parsed:?}").contains(&parsed.secret),
        "Debug redacts"
    );

    assert_eq!(stored.host, "web-1");
    assert_eq!(stored.labels, labels());
    assert_eq!(stored.expires_at_unix, 1_700_003_600);
    assert!(!stored.used);
    // Only the hash is stored.
    assert_ne!(stored.secret_hash_hex, parsed.secret);
    let json = serde_json::to_string(&stored).unwrap();
    assert!(!json.contains(&parsed.secret));
    let back: StoredToken = serde_json::from_str(&json).unwrap();
    assert_eq!(back, stored);

    stored.verify(&parsed.secret, now).unwrap();

    // Tokens are random.
    let (printed2, _) =
        JoinToken::new("web-1", labels(), Duration::from_secs(3600), now, FP).unwrap();
    assert_ne!(printed, printed2);
}

#[test]
fn token_with_real_ca_fingerprint() {
    let ca = Ca::generate("prod", SystemTime::now()).unwrap();
    let (printed, _) = JoinToken::new(
        "web-1",
        BTreeMap::new(),
        Duration::from_secs(60),
        SystemTime::now(),
        &ca.fingerprint_sha256(),
    )
    .unwrap();
    assert_eq!(
        parse_token(&printed).unwrap().ca_fingerprint,
        ca.fingerprint_sha256()
    );
}

#[test]
fn token_new_rejects_bad_input() {
    let now = t(1_700_000_000);
    let ttl = Duration::from_secs(60);
    assert!(matches!(
        JoinToken::new("Bad Host", BTreeMap::new(), ttl, now, FP),
        Err(TokenError::BadHost(_))
    ));
    assert!(matches!(
        JoinToken::new("web-1", BTreeMap::new(), ttl, now, "abc"),
        Err(TokenError::BadField { .. })
    ));
}

#[test]
fn token_verify_errors() {
    let now = t(1_700_000_000);
    let (printed, mut stored) =
        JoinToken::new("web-1", BTreeMap::new(), Duration::from_secs(600), now, FP).unwrap();
    let secret = parse_token(&printed).unwrap().secret;

    // Expiry: valid up to, not including, expires_at.
    stored.verify(&secret, t(1_700_000_599)).unwrap();
    assert_eq!(
        stored.verify(&secret, t(1_700_000_600)),
        Err(TokenError::Expired)
    );
    assert_eq!(
        stored.verify(&secret, t(1_800_000_000)),
        Err(TokenError::Expired)
    );

    // Wrong secret: another token's secret, a one-character change, garbage.
    let (other, _) =
        JoinToken::new("web-1", BTreeMap::new(), Duration::from_secs(600), now, FP).unwrap();
    let other_secret = parse_token(&other).unwrap().secret;
    assert_eq!(
        stored.verify(&other_secret, now),
        Err(TokenError::BadSecret)
    );
    let mut flipped = secret.clone().into_bytes();
    flipped[10] = if flipped[10] == b'0' { b'1' } else { b'0' };
    let flipped = String::from_utf8(flipped).unwrap();
    assert_eq!(stored.verify(&flipped, now), Err(TokenError::BadSecret));
    assert_eq!(stored.verify("zz", now), Err(TokenError::BadSecret));
    assert_eq!(stored.verify("", now), Err(TokenError::BadSecret));

    // A bad secret is reported even when expired (no state leak).
    assert_eq!(
        stored.verify(&other_secret, t(1_800_000_000)),
        Err(TokenError::BadSecret)
    );

    // Single use.
    stored.consume(&secret, now).unwrap();
    assert!(stored.used);
    assert_eq!(stored.verify(&secret, now), Err(TokenError::AlreadyUsed));
    assert_eq!(stored.consume(&secret, now), Err(TokenError::AlreadyUsed));

    // Tampered stored hash.
    let (printed, mut stored) =
        JoinToken::new("web-1", BTreeMap::new(), Duration::from_secs(600), now, FP).unwrap();
    let secret = parse_token(&printed).unwrap().secret;
    let first = if stored.secret_hash_hex.starts_with('0') {
        "1"
    } else {
        "0"
    };
    stored.secret_hash_hex.replace_range(0..1, first);
    assert_eq!(stored.verify(&secret, now), Err(TokenError::BadSecret));
}

#[test]
fn parse_token_errors() {
    let id = "0123456789abcdef";
    let secret = "ab".repeat(32);
    let good = format!("convoy1.{id}.{secret}.{FP}");
    assert!(parse_token(&good).is_ok());

    assert_eq!(parse_token(""), Err(TokenError::BadPrefix));
    assert_eq!(
        parse_token(&good.replacen("convoy1", "convoy2", 1)),
        Err(TokenError::BadPrefix)
    );
    assert_eq!(
        parse_token(&format!("convoy1.{id}.{secret}")),
        Err(TokenError::WrongPartCount(3))
    );
    assert_eq!(
        parse_token(&format!("{good}.extra")),
        Err(TokenError::WrongPartCount(5))
    );
    let field = |r: Result<_, TokenError>| match r {
        Err(TokenError::BadField { field, .. }) => field,
        other => panic!("expected BadField, got {other:?}"),
    };
    assert_eq!(
        field(parse_token(&format!("convoy1.0123.{secret}.{FP}"))),
        "id"
    );
    assert_eq!(
        field(parse_token(&format!(
            "convoy1.0123456789ABCDEF.{secret}.{FP}"
        ))),
        "id"
    );
    assert_eq!(
        field(parse_token(&format!(
            "convoy1.{id}.{}.{FP}",
            "g".repeat(64)
        ))),
        "secret"
    );
    assert_eq!(
        field(parse_token(&format!(
            "convoy1.{id}.{}.{FP}",
            "ab".repeat(31)
        ))),
        "secret"
    );
    assert_eq!(
        field(parse_token(&format!("convoy1.{id}.{secret}.{}", &FP[1..]))),
        "CA fingerprint"
    );
    // Error messages are readable.
    assert!(
        TokenError::BadField {
            field: "secret",
            expected_len: 64
        }
        .to_string()
        .contains("secret must be 64")
    );
}

fn identity(host: &str, serial: &str) -> HostIdentity {
    HostIdentity {
        fleet: "prod".into(),
        host: host.into(),
        serial_hex: serial.into(),
        not_after: t(0),
    }
}

#[test]
fn revocation() {
    let mut rl = RevocationList::default();
    let a = identity("web-1", "0aff");
    let b = identity("web-2", "0b00");
    assert!(!rl.is_revoked(&a));
    assert!(rl.revoke_host("web-1"));
    assert!(!rl.revoke_host("web-1"));
    assert!(rl.is_revoked(&a));
    assert!(!rl.is_revoked(&b));
    assert!(rl.revoke_serial("0B:00"));
    assert!(!rl.revoke_serial("0b00"));
    assert!(rl.is_revoked(&b));
    assert!(!rl.is_revoked(&identity("web-2", "0b01")));

    let json = serde_json::to_string(&rl).unwrap();
    let back: RevocationList = serde_json::from_str(&json).unwrap();
    assert_eq!(back, rl);
}

#[test]
fn renewal_spreads_over_the_window() {
    let nb = t(1_700_000_000);
    let na = nb + Duration::from_secs(86_400);
    let mut rng = StdRng::seed_from_u64(7);
    let fracs: Vec<f64> = (0..2000)
        .map(|_| {
            renewal_at(nb, na, &mut rng)
                .duration_since(nb)
                .unwrap()
                .as_secs_f64()
                / 86_400.0
        })
        .collect();
    let min = fracs.iter().cloned().fold(f64::MAX, f64::min);
    let max = fracs.iter().cloned().fold(f64::MIN, f64::max);
    assert!(min >= 0.6 && max <= 0.8, "{min} {max}");
    assert!(
        min < 0.61 && max > 0.79,
        "uniform over the window: {min} {max}"
    );
    // Degenerate lifetime.
    assert_eq!(renewal_at(na, nb, &mut rng), na);
    assert_eq!(renewal_at(nb, nb, &mut rng), nb);
}

proptest! {
    #[test]
    fn renewal_always_between_60_and_80_percent(
        start in 0u64..4_000_000_000,
        lifetime_secs in 0u64..(20 * 365 * 86_400),
        lifetime_nanos in 0u32..1_000_000_000,
        seed in any::<u64>(),
    ) {
        let nb = t(start);
        let lifetime = Duration::new(lifetime_secs, lifetime_nanos);
        let na = nb + lifetime;
        let mut rng = StdRng::seed_from_u64(seed);
        let at = renewal_at(nb, na, &mut rng);
        let offset = at.duration_since(nb).unwrap().as_nanos();
        let n = lifetime.as_nanos();
        // offset/n in [0.6, 0.8], exactly, up to integer rounding of 1ns.
        prop_assert!(offset * 5 + 5 > n * 3, "{offset} vs {n}");
        prop_assert!(offset * 5 <= n * 4, "{offset} vs {n}");
        prop_assert!(at <= na);
    }
}
