//! Where a fleet repo's files come from: a checked-out directory
//! ([`DirSource`], which refuses symlinks out of the repo) or a map of paths
//! to bytes ([`MemSource`]: a git tree read by the control plane, tests, the
//! fuzzer). Every read is bounded by `MAX_REPO_FILE_BYTES`.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use crate::limits::MAX_REPO_FILE_BYTES;

/// Where the repo's files come from: a directory, or a git tree.
pub trait RepoSource {
    /// Reads a file by its path relative to the repo root (`/`-separated,
    /// already normalised). Err(NotFound) when it does not exist.
    fn read(&self, rel: &str) -> Result<Vec<u8>, SourceError>;
    /// Whether `rel` is a directory.
    fn is_dir(&self, rel: &str) -> bool;
    /// Files (not directories) below `rel`, recursively, as repo-relative paths.
    fn files_under(&self, rel: &str) -> Result<Vec<String>, SourceError>;
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    #[error("{0} does not exist")]
    NotFound(String),
    #[error("{0} is larger than {MAX_REPO_FILE_BYTES} bytes")]
    TooLarge(String),
    #[error("{0} points outside the repository")]
    Escapes(String),
    #[error("cannot read {path}: {reason}")]
    Io { path: String, reason: String },
}

/// A fleet repo checked out in a directory.
pub struct DirSource {
    root: PathBuf,
}

impl DirSource {
    pub fn new(root: &Path) -> Result<Self, SourceError> {
        let root = root.canonicalize().map_err(|e| SourceError::Io {
            path: root.display().to_string(),
            reason: e.to_string(),
        })?;
        Ok(Self { root })
    }

    fn resolve(&self, rel: &str) -> Result<PathBuf, SourceError> {
        let p = self.root.join(rel);
        let real = p.canonicalize().map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                SourceError::NotFound(rel.to_owned())
            } else {
                SourceError::Io {
                    path: rel.to_owned(),
                    reason: e.to_string(),
                }
            }
        })?;
        if !real.starts_with(&self.root) {
            return Err(SourceError::Escapes(rel.to_owned()));
        }
        Ok(real)
    }
}

impl RepoSource for DirSource {
    fn read(&self, rel: &str) -> Result<Vec<u8>, SourceError> {
        let p = self.resolve(rel)?;
        let io = |e: std::io::Error| SourceError::Io {
            path: rel.to_owned(),
            reason: e.to_string(),
        };
        let meta = std::fs::metadata(&p).map_err(io)?;
        if meta.is_dir() {
            return Err(SourceError::Io {
                path: rel.to_owned(),
                reason: "is a directory".into(),
            });
        }
        if meta.len() > MAX_REPO_FILE_BYTES {
            return Err(SourceError::TooLarge(rel.to_owned()));
        }
        std::fs::read(&p).map_err(io)
    }

    fn is_dir(&self, rel: &str) -> bool {
        self.resolve(rel).is_ok_and(|p| p.is_dir())
    }

    fn files_under(&self, rel: &str) -> Result<Vec<String>, SourceError> {
        let base = self.resolve(rel)?;
        let mut out = Vec::new();
        let mut todo = vec![(base, rel.trim_end_matches('/').to_owned())];
        while let Some((dir, rel_dir)) = todo.pop() {
            let entries = std::fs::read_dir(&dir).map_err(|e| SourceError::Io {
                path: rel_dir.clone(),
                reason: e.to_string(),
            })?;
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let child_rel = format!("{rel_dir}/{name}");
                let real = self.resolve(&child_rel)?;
                if real.is_dir() {
                    todo.push((real, child_rel));
                } else {
                    out.push(child_rel);
                }
                if out.len() > 10_000 {
                    return Err(SourceError::TooLarge(rel.to_owned()));
                }
            }
        }
        out.sort();
        Ok(out)
    }
}

/// A fleet repo held in memory (a git tree read into a map, tests, fuzzing).
#[derive(Debug, Clone, Default)]
pub struct MemSource(pub BTreeMap<String, Vec<u8>>);

impl RepoSource for MemSource {
    fn read(&self, rel: &str) -> Result<Vec<u8>, SourceError> {
        match self.0.get(rel) {
            Some(b) if b.len() as u64 > MAX_REPO_FILE_BYTES => {
                Err(SourceError::TooLarge(rel.to_owned()))
            }
            Some(b) => Ok(b.clone()),
            None => Err(SourceError::NotFound(rel.to_owned())),
        }
    }

    fn is_dir(&self, rel: &str) -> bool {
        let prefix = format!("{rel}/");
        self.0.keys().any(|k| k.starts_with(&prefix))
    }

    fn files_under(&self, rel: &str) -> Result<Vec<String>, SourceError> {
        let prefix = format!("{rel}/");
        Ok(self
            .0
            .keys()
            .filter(|k| k.starts_with(&prefix))
            .cloned()
            .collect())
    }
}

pub(super) fn read_text(src: &dyn RepoSource, rel: &str) -> Result<String, String> {
    let bytes = src.read(rel).map_err(|e| e.to_string())?;
    String::from_utf8(bytes).map_err(|_| format!("{rel} is not valid UTF-8"))
}

/// Normalises a repo-relative path, refusing absolute paths and `..` that
/// would leave the repo.
pub fn normalise_rel(p: &str) -> Result<String, String> {
    let path = Path::new(p);
    let mut parts: Vec<String> = Vec::new();
    for c in path.components() {
        match c {
            Component::Normal(s) => parts.push(s.to_string_lossy().into_owned()),
            Component::CurDir => {}
            Component::ParentDir => {
                if parts.pop().is_none() {
                    return Err(format!("{p:?} leaves the repository"));
                }
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(format!("{p:?} must be relative to the repository root"));
            }
        }
    }
    if parts.is_empty() {
        return Err(format!(
            "{p:?} is the repository root, not a stack directory"
        ));
    }
    Ok(parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rel_paths() {
        assert_eq!(normalise_rel("stacks/./web/").as_deref(), Ok("stacks/web"));
        assert!(normalise_rel("../x").is_err());
        assert!(normalise_rel("/abs").is_err());
        assert!(normalise_rel(".").is_err());
    }
}
