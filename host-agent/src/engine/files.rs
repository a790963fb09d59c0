//! Stack files on disk: each revision's rendered files (relative bind
//! sources) live under `<data_dir>/stacks/<stack>/<revision>/`, written
//! before its containers are created, collected once no record and no
//! container refers to them.

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};

use convoy_shared::render::RenderedStack;
use tracing::{debug, warn};

use super::exec::stack_containers;
use super::plan::LABEL_REVISION;
use crate::journal::{Journal, JournalError};
use crate::runtime::Runtime;

/// `<data_dir>/stacks/<stack>`.
pub fn stack_dir(data_dir: &Path, stack: &str) -> PathBuf {
    data_dir.join("stacks").join(stack)
}

/// `<data_dir>/stacks/<stack>/<revision>`.
pub fn revision_dir(data_dir: &Path, stack: &str, revision: &str) -> PathBuf {
    stack_dir(data_dir, stack).join(revision)
}

/// Writes the stack's files (relative bind sources) under `dir`. Paths are
/// checked to stay inside it.
pub fn write_files(stack: &RenderedStack, dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for (rel, content) in &stack.files {
        let rel_path = Path::new(rel);
        if rel_path
            .components()
            .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
        {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("stack file path {rel:?} leaves the stack directory"),
            ));
        }
        let path = dir.join(rel_path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        if std::fs::read(&path).is_ok_and(|old| old == *content) {
            continue;
        }
        let tmp = path.with_extension("convoy-tmp");
        std::fs::write(&tmp, content)?;
        std::fs::rename(&tmp, &path)?;
    }
    Ok(())
}

/// Drops the file dirs of `stack`'s revisions that no record (desired,
/// last-known-good) and no container refers to. Containers left unchanged
/// by later revisions still bind from the directory of the revision that
/// created them, so those stay too. Any read that fails skips the
/// collection: a dir kept too long costs disk, one removed too early breaks
/// a rollback.
pub async fn collect(journal: &dyn Journal, runtime: &dyn Runtime, data_dir: &Path, stack: &str) {
    let keep = match referenced(journal, stack) {
        Ok(keep) => keep,
        Err(e) => {
            warn!(%stack, error = %convoy_kit::error_chain(&e), "not collecting stack files: the journal cannot be read");
            return;
        }
    };
    let mut keep = keep;
    match stack_containers(runtime, stack).await {
        Ok(cs) => keep.extend(
            cs.iter()
                .filter_map(|c| c.labels.get(LABEL_REVISION).cloned()),
        ),
        Err(e) => {
            warn!(%stack, error = %convoy_kit::error_chain(&e), "not collecting stack files: cannot list containers");
            return;
        }
    }
    let dir = stack_dir(data_dir, stack);
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) => {
            debug!(dir = %dir.display(), error = %e, "no stack files to collect");
            return;
        }
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !keep.contains(&name)
            && let Err(err) = std::fs::remove_dir_all(e.path())
        {
            warn!(path = %e.path().display(), error = %err, "cannot remove old stack files");
        }
    }
}

fn referenced(journal: &dyn Journal, stack: &str) -> Result<BTreeSet<String>, JournalError> {
    let mut keep = BTreeSet::new();
    if let Some(l) = journal.lkg(stack)? {
        keep.insert(l.stack.revision);
    }
    if let Some(d) = journal.desired()? {
        keep.extend(
            d.state
                .stacks
                .iter()
                .filter(|s| s.name == stack)
                .map(|s| s.revision.clone()),
        );
    }
    Ok(keep)
}
