//! The on-disk format-version stamp of a sled database.
//!
//! Compatibility promise (README, Upgrade): a newer build reads every older
//! format (record fields are only added, with `serde(default)`; a change an
//! older build would misread bumps the format and ships an in-place
//! upgrade); an older build refuses a newer format instead of misreading it.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum FormatError {
    #[error(
        "the data was written by a newer version (format {found}; this build reads up to {supported}): upgrade, or restore the backup taken before the upgrade"
    )]
    TooNew { found: u32, supported: u32 },
    #[error("reading or writing the format stamp")]
    Db(#[source] sled::Error),
}

/// Checks the stamp under `key` in `tree` against `supported`, stamping a
/// store that has none (stores from before the stamp existed are format 1,
/// and a new store is `supported`). Returns the format found (or written).
/// An unreadable stamp counts as too new: never guess.
pub fn check(tree: &sled::Tree, key: &[u8], supported: u32) -> Result<u32, FormatError> {
    match tree.get(key).map_err(FormatError::Db)? {
        None => {
            tree.insert(key, supported.to_string().as_bytes())
                .map_err(FormatError::Db)?;
            Ok(supported)
        }
        Some(v) => {
            let found = std::str::from_utf8(&v)
                .ok()
                .and_then(|s| s.parse::<u32>().ok())
                .unwrap_or(u32::MAX);
            if found > supported {
                Err(FormatError::TooNew { found, supported })
            } else {
                Ok(found)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_new_stores_accepts_older_refuses_newer() -> Result<(), Box<dyn std::error::Error>> {
        let db = sled::Config::new().temporary(true).open()?;
        let t = db.open_tree("meta")?;
        assert_eq!(check(&t, b"fmt", 2)?, 2);
        assert_eq!(check(&t, b"fmt", 3)?, 2, "an older stamp is read as it is");
        t.insert(b"fmt", b"9".as_slice())?;
        assert!(matches!(
            check(&t, b"fmt", 3),
            Err(FormatError::TooNew {
                found: 9,
                supported: 3
            })
        ));
        t.insert(b"fmt", b"garbage".as_slice())?;
        assert!(matches!(
            check(&t, b"fmt", 3),
            Err(FormatError::TooNew { .. })
        ));
        Ok(())
    }
}
