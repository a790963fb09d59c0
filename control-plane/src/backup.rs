//! Backups of a control plane data dir: the CA, the server certificate and
//! every sled tree, in one self-checking file.
//!
//! sled allows one process per database, so a running daemon is backed up
//! by itself (`POST /api/v1/backup`, admin scope, streamed), a stopped one
//! by `convoy-control-plane backup` opening the store directly. Each record
//! is read atomically; records written while a backup runs may or may not
//! be in it, but every record in it is whole. The git mirror is not backed
//! up: it is re-fetched from the fleet repo on start.
//!
//! Format (version 1), all integers big-endian:
//! `CONVOY-BACKUP\n`, `u32` version, then records: `F` file (`u16` name
//! length, name, `u32` mode, `u64` length, bytes), `T` tree (`u32` name
//! length, name, then entries `u32` key length + key + `u32` value length +
//! value, ended by `u32::MAX`), and `E` followed by the SHA-256 of every
//! byte before it.

use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::datadir::DataDir;
use crate::store::{Export, ExportError, Exported, StoreError};

const MAGIC: &[u8] = b"CONVOY-BACKUP\n";
const VERSION: u32 = 1;
const END_OF_TREE: u32 = u32::MAX;
/// Refuse absurd lengths in a corrupt file instead of allocating them.
const MAX_FIELD: u64 = 256 * 1024 * 1024;

/// The data dir files a backup carries, with the mode they are restored at.
pub const FILES: [(&str, u32); 4] = [
    ("ca.pem", 0o644),
    ("ca-key.pem", 0o600),
    ("server.pem", 0o644),
    ("server-key.pem", 0o600),
];

#[derive(Debug, Error)]
pub enum BackupError {
    #[error("{action} {path}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("writing the backup")]
    Write(#[source] io::Error),
    #[error("reading the backup")]
    Read(#[source] io::Error),
    #[error("not a Convoy backup, or corrupt: {0}")]
    Corrupt(String),
    #[error("store: {0}")]
    Sled(#[from] sled::Error),
    #[error("reading the store")]
    Store(#[source] StoreError),
    #[error("{0} is not empty; pass --force to replace its contents")]
    NotEmpty(PathBuf),
}

fn io_err(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> BackupError {
    let path = path.to_path_buf();
    move |source| BackupError::Io {
        action,
        path,
        source,
    }
}

/// What a backup or restore covered.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    pub files: usize,
    pub trees: usize,
    pub records: usize,
    pub bytes: u64,
}

struct HashingWriter<W> {
    inner: W,
    hash: Sha256,
    bytes: u64,
}

impl<W: Write> HashingWriter<W> {
    fn put(&mut self, data: &[u8]) -> Result<(), BackupError> {
        self.hash.update(data);
        self.bytes += data.len() as u64;
        self.inner.write_all(data).map_err(BackupError::Write)
    }
}

/// Writes a backup of `dir` (its files) and `store` (every collection) to
/// `out`.
pub fn write<W: Write>(dir: &DataDir, store: &dyn Export, out: W) -> Result<Summary, BackupError> {
    let mut w = HashingWriter {
        inner: out,
        hash: Sha256::new(),
        bytes: 0,
    };
    let mut sum = Summary::default();
    w.put(MAGIC)?;
    w.put(&VERSION.to_be_bytes())?;
    for (name, _) in FILES {
        let path = dir.root.join(name);
        let data = fs::read(&path).map_err(io_err("reading", &path))?;
        let mode = fs::metadata(&path)
            .map_err(io_err("reading", &path))?
            .permissions()
            .mode()
            & 0o777;
        w.put(b"F")?;
        w.put(&(name.len() as u16).to_be_bytes())?;
        w.put(name.as_bytes())?;
        w.put(&mode.to_be_bytes())?;
        w.put(&(data.len() as u64).to_be_bytes())?;
        w.put(&data)?;
        sum.files += 1;
    }
    let mut failed = None;
    let res = store.export(&mut |item| {
        let put = match item {
            Exported::Collection(name) => w
                .put(b"T")
                .and_then(|()| w.put(&(name.len() as u32).to_be_bytes()))
                .and_then(|()| w.put(name)),
            Exported::Record { key, value } => {
                sum.records += 1;
                w.put(&(key.len() as u32).to_be_bytes())
                    .and_then(|()| w.put(key))
                    .and_then(|()| w.put(&(value.len() as u32).to_be_bytes()))
                    .and_then(|()| w.put(value))
            }
            Exported::End => {
                sum.trees += 1;
                w.put(&END_OF_TREE.to_be_bytes())
            }
        };
        // Keep our error (with its context); the store only needs to stop.
        put.map_err(|e| {
            failed = Some(e);
            io::Error::other("backup write failed")
        })
    });
    if let Some(e) = failed {
        return Err(e);
    }
    res.map_err(|e| match e {
        ExportError::Store(e) => BackupError::Store(e),
        ExportError::Write(e) => BackupError::Write(e),
    })?;
    w.put(b"E")?;
    let digest = w.hash.clone().finalize();
    w.inner.write_all(&digest).map_err(BackupError::Write)?;
    w.inner.flush().map_err(BackupError::Write)?;
    sum.bytes = w.bytes + digest.len() as u64;
    Ok(sum)
}

/// Backs up a stopped control plane's data dir (fails if the daemon holds
/// the store's lock).
pub fn write_offline<W: Write>(dir: &DataDir, out: W) -> Result<Summary, BackupError> {
    let db = sled::open(dir.state())?;
    write(dir, &db, out)
}

struct HashingReader<R> {
    inner: R,
    hash: Sha256,
}

impl<R: Read> HashingReader<R> {
    fn take(&mut self, n: u64) -> Result<Vec<u8>, BackupError> {
        if n > MAX_FIELD {
            return Err(BackupError::Corrupt(format!("field of {n} bytes")));
        }
        let mut buf = vec![0u8; n as usize];
        self.inner.read_exact(&mut buf).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                BackupError::Corrupt("truncated".into())
            } else {
                BackupError::Read(e)
            }
        })?;
        self.hash.update(&buf);
        Ok(buf)
    }
    fn u8(&mut self) -> Result<u8, BackupError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, BackupError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32, BackupError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> Result<u64, BackupError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(&b);
        Ok(u64::from_be_bytes(a))
    }
}

/// Restores a backup into `dir`. A non-empty `dir` is refused unless
/// `force`, which removes the files and store a backup holds first (other
/// files, such as the git mirror, are left alone). The restored files keep
/// their recorded modes, keys never wider than 0600; the dir is 0700. The
/// whole file is verified (checksum) before it is committed: a corrupt
/// backup leaves `dir` untouched.
pub fn restore<R: Read>(input: R, dir: &DataDir, force: bool) -> Result<Summary, BackupError> {
    if let Ok(mut entries) = fs::read_dir(&dir.root)
        && entries.next().is_some()
        && !force
    {
        return Err(BackupError::NotEmpty(dir.root.clone()));
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir.root)
        .map_err(io_err("creating", &dir.root))?;
    fs::set_permissions(&dir.root, fs::Permissions::from_mode(0o700))
        .map_err(io_err("setting the mode of", &dir.root))?;
    // Stage next to the target, then swap in: a corrupt backup changes nothing.
    let staging = dir.root.join(".restore-staging");
    if staging.exists() {
        fs::remove_dir_all(&staging).map_err(io_err("removing", &staging))?;
    }
    fs::DirBuilder::new()
        .mode(0o700)
        .create(&staging)
        .map_err(io_err("creating", &staging))?;
    let result = read_into(input, &staging);
    let sum = match result {
        Ok(s) => s,
        Err(e) => {
            let _ = fs::remove_dir_all(&staging);
            return Err(e);
        }
    };
    let state = dir.state();
    if state.exists() {
        fs::remove_dir_all(&state).map_err(io_err("removing", &state))?;
    }
    for (name, _) in FILES {
        let target = dir.root.join(name);
        if target.exists() {
            fs::remove_file(&target).map_err(io_err("removing", &target))?;
        }
        let from = staging.join(name);
        if from.exists() {
            fs::rename(&from, &target).map_err(io_err("moving into place", &target))?;
        }
    }
    fs::rename(staging.join("state"), &state).map_err(io_err("moving into place", &state))?;
    fs::set_permissions(&state, fs::Permissions::from_mode(0o700))
        .map_err(io_err("setting the mode of", &state))?;
    fs::remove_dir_all(&staging).map_err(io_err("removing", &staging))?;
    Ok(sum)
}

fn read_into<R: Read>(input: R, staging: &Path) -> Result<Summary, BackupError> {
    let mut r = HashingReader {
        inner: input,
        hash: Sha256::new(),
    };
    let mut sum = Summary::default();
    if r.take(MAGIC.len() as u64)? != MAGIC {
        return Err(BackupError::Corrupt("bad magic".into()));
    }
    let version = r.u32()?;
    if version != VERSION {
        return Err(BackupError::Corrupt(format!(
            "format version {version}; this build reads {VERSION}"
        )));
    }
    let db = sled::open(staging.join("state"))?;
    loop {
        match r.u8()? {
            b'F' => {
                let n = r.u16()?;
                let name = String::from_utf8(r.take(u64::from(n))?)
                    .map_err(|_| BackupError::Corrupt("file name".into()))?;
                let Some((_, max_mode)) = FILES.iter().find(|(f, _)| *f == name) else {
                    return Err(BackupError::Corrupt(format!("unexpected file {name:?}")));
                };
                let mode = r.u32()? & max_mode;
                let len = r.u64()?;
                let data = r.take(len)?;
                let path = staging.join(&name);
                convoy_kit::fsx::write_new(&path, &data, mode).map_err(io_err("writing", &path))?;
                sum.files += 1;
            }
            b'T' => {
                let n = r.u32()?;
                let name = r.take(u64::from(n))?;
                let tree = db.open_tree(&name)?;
                loop {
                    let kl = r.u32()?;
                    if kl == END_OF_TREE {
                        break;
                    }
                    let k = r.take(u64::from(kl))?;
                    let vl = r.u32()?;
                    let v = r.take(u64::from(vl))?;
                    tree.insert(k, v)?;
                    sum.records += 1;
                }
                sum.trees += 1;
            }
            b'E' => break,
            other => return Err(BackupError::Corrupt(format!("record tag {other:#x}"))),
        }
    }
    let want = r.hash.clone().finalize();
    let mut got = [0u8; 32];
    r.inner
        .read_exact(&mut got)
        .map_err(|_| BackupError::Corrupt("missing checksum".into()))?;
    if got[..] != want[..] {
        return Err(BackupError::Corrupt("checksum mismatch".into()));
    }
    db.flush()?;
    drop(db);
    Ok(sum)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn fake_dir(root: &Path) -> DataDir {
        let d = DataDir::new(root);
        fs::DirBuilder::new().mode(0o700).create(root).unwrap();
        for (name, mode) in FILES {
            crate::datadir::write_file(&d.root.join(name), name.as_bytes(), mode).unwrap();
        }
        d
    }

    #[test]
    fn round_trip_keeps_trees_files_and_modes() {
        let tmp = tempfile::tempdir().unwrap();
        let src = fake_dir(&tmp.path().join("a"));
        let db = sled::open(src.state()).unwrap();
        db.insert("top", "1").unwrap();
        let t = db.open_tree("tokens").unwrap();
        for i in 0..100u32 {
            t.insert(i.to_be_bytes(), format!("v{i}").as_bytes())
                .unwrap();
        }
        let mut buf = Vec::new();
        let s = write(&src, &db, &mut buf).unwrap();
        assert_eq!(s.files, 4);
        assert_eq!(s.records, 101);
        drop(db);

        let dst = DataDir::new(tmp.path().join("b"));
        let r = restore(&buf[..], &dst, false).unwrap();
        assert_eq!((r.files, r.records), (4, 101));
        let db = sled::open(dst.state()).unwrap();
        assert_eq!(db.get("top").unwrap().unwrap().as_ref(), b"1");
        let t = db.open_tree("tokens").unwrap();
        assert_eq!(t.len(), 100);
        assert_eq!(t.get(7u32.to_be_bytes()).unwrap().unwrap().as_ref(), b"v7");
        drop(db);
        let mode = |n: &str| fs::metadata(dst.root.join(n)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode("ca-key.pem"), 0o600);
        assert_eq!(mode("server-key.pem"), 0o600);
        assert_eq!(mode("ca.pem"), 0o644);
        assert_eq!(
            fs::metadata(&dst.root).unwrap().permissions().mode() & 0o777,
            0o700
        );
        assert_eq!(fs::read(dst.root.join("ca.pem")).unwrap(), b"ca.pem");

        // Non-empty without --force: refused; with: replaced.
        assert!(matches!(
            restore(&buf[..], &dst, false),
            Err(BackupError::NotEmpty(_))
        ));
        restore(&buf[..], &dst, true).unwrap();

        // Corruption anywhere is caught and leaves the target alone.
        let mut bad = buf.clone();
        let mid = bad.len() / 2;
        bad[mid] ^= 0xff;
        assert!(restore(&bad[..], &dst, true).is_err());
        assert!(restore(&buf[..buf.len() - 5], &dst, true).is_err());
        let db = sled::open(dst.state()).unwrap();
        assert_eq!(db.open_tree("tokens").unwrap().len(), 100);
    }
}
