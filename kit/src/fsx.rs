//! Writing files so that a crash never leaves a half-written one and a
//! secret is never briefly readable by others.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Creates `path` (it must not exist) with `mode` from the start, writes
/// `data` and syncs it.
pub fn write_new(path: &Path, data: &[u8], mode: u32) -> io::Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)?;
    f.write_all(data)?;
    f.sync_all()
}

/// Replaces `path` atomically: writes a temporary file beside it with
/// `mode`, syncs it, renames it over `path` and syncs the directory. A crash
/// at any point leaves either the old content or the new one.
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> io::Result<()> {
    let tmp = temp_beside(path)?;
    let res = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        // The umask may have narrowed `mode` at creation; set it exactly.
        f.set_permissions(std::fs::Permissions::from_mode(mode))?;
        f.write_all(data)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        sync_dir(path)
    })();
    if res.is_err() {
        let _ignored = std::fs::remove_file(&tmp);
    }
    res
}

/// Syncs the directory holding `path`, so a rename or creation in it
/// survives a power loss.
pub fn sync_dir(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => File::open(dir)?.sync_all(),
        _ => File::open(".")?.sync_all(),
    }
}

fn temp_beside(path: &Path) -> io::Result<PathBuf> {
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    let mut tmp = name.to_os_string();
    tmp.push(format!(
        ".tmp.{}.{}",
        std::process::id(),
        rand::random::<u32>()
    ));
    Ok(path.with_file_name(tmp))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_with_exact_mode_and_leaves_no_temp() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let p = dir.path().join("key.pem");
        write_atomic(&p, b"one", 0o600)?;
        write_atomic(&p, b"two", 0o600)?;
        assert_eq!(std::fs::read(&p)?, b"two");
        assert_eq!(std::fs::metadata(&p)?.permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::read_dir(dir.path())?.count(), 1);
        Ok(())
    }

    #[test]
    fn write_new_refuses_an_existing_file() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let p = dir.path().join("f");
        write_new(&p, b"a", 0o644)?;
        assert_eq!(
            write_new(&p, b"b", 0o644).map_err(|e| e.kind()),
            Err(io::ErrorKind::AlreadyExists)
        );
        Ok(())
    }
}
