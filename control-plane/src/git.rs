//! The fleet repo as the control plane follows it: a bare mirror under the
//! data dir, fetched from the configured URL (a local path, file://,
//! https:// with a token, or ssh with a key), and commits read straight
//! from git objects into memory — no checkout, so a commit is loaded
//! exactly as it was pushed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use convoy_shared::limits::MAX_REPO_FILE_BYTES;
use convoy_shared::repo::MemSource;

/// Most bytes of one commit's tree the control plane reads.
pub const MAX_TREE_BYTES: u64 = 64 * 1024 * 1024;
/// Most files of one commit's tree.
pub const MAX_TREE_FILES: usize = 20_000;

#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("git: {context}: {source}")]
    Git {
        context: String,
        #[source]
        source: git2::Error,
    },
    #[error("branch {branch:?} not found in {url}")]
    NoBranch { branch: String, url: String },
    #[error("commit {0} is too large to load ({1})")]
    TooLarge(String, String),
}

fn ctx(context: impl Into<String>) -> impl FnOnce(git2::Error) -> GitError {
    let context = context.into();
    move |source| GitError::Git { context, source }
}

/// How to authenticate to the remote. Never logged.
#[derive(Clone, Default)]
pub enum Credentials {
    #[default]
    None,
    /// https: user (often "git" or "oauth2") and a token/password.
    UserPass { user: String, password: String },
    /// ssh: a private key file (and its passphrase, if any).
    SshKey {
        user: String,
        private_key: PathBuf,
        passphrase: Option<String>,
    },
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::None => write!(f, "None"),
            Self::UserPass { user, .. } => write!(f, "UserPass({user}, <redacted>)"),
            Self::SshKey {
                user, private_key, ..
            } => write!(f, "SshKey({user}, {})", private_key.display()),
        }
    }
}

/// A followed branch of a remote fleet repo.
#[derive(Debug)]
pub struct GitSource {
    url: String,
    branch: String,
    credentials: Credentials,
    mirror: PathBuf,
}

impl GitSource {
    /// `mirror` is where the bare mirror lives (created on first fetch).
    pub fn new(url: &str, branch: &str, credentials: Credentials, mirror: &Path) -> Self {
        Self {
            url: url.to_owned(),
            branch: branch.to_owned(),
            credentials,
            mirror: mirror.to_owned(),
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn branch(&self) -> &str {
        &self.branch
    }

    fn open_or_init(&self) -> Result<git2::Repository, GitError> {
        match git2::Repository::open_bare(&self.mirror) {
            Ok(r) => Ok(r),
            Err(_) => {
                if let Some(parent) = self.mirror.parent() {
                    std::fs::create_dir_all(parent).map_err(|e| GitError::Git {
                        context: format!("creating {}", parent.display()),
                        source: git2::Error::from_str(&e.to_string()),
                    })?;
                }
                git2::Repository::init_bare(&self.mirror).map_err(ctx(format!(
                    "creating the mirror {}",
                    self.mirror.display()
                )))
            }
        }
    }

    /// Fetches the branch and returns its head commit id (hex).
    pub fn fetch(&self) -> Result<String, GitError> {
        let repo = self.open_or_init()?;
        let mut remote = repo
            .remote_anonymous(&self.url)
            .map_err(ctx(format!("remote {}", self.url)))?;
        let mut callbacks = git2::RemoteCallbacks::new();
        let creds = self.credentials.clone();
        let mut attempts = 0u32;
        callbacks.credentials(move |_url, user_from_url, allowed| {
            // libgit2 calls again after a rejected credential: stop rather
            // than loop forever.
            attempts += 1;
            if attempts > 3 {
                return Err(git2::Error::from_str("authentication failed"));
            }
            match &creds {
                Credentials::UserPass { user, password }
                    if allowed.contains(git2::CredentialType::USER_PASS_PLAINTEXT) =>
                {
                    git2::Cred::userpass_plaintext(user, password)
                }
                Credentials::SshKey {
                    user,
                    private_key,
                    passphrase,
                } if allowed.contains(git2::CredentialType::SSH_KEY) => git2::Cred::ssh_key(
                    user_from_url.unwrap_or(user),
                    None,
                    private_key,
                    passphrase.as_deref(),
                ),
                _ => Err(git2::Error::from_str(
                    "the remote asks for credentials and none (or the wrong kind) are configured",
                )),
            }
        });
        let mut opts = git2::FetchOptions::new();
        opts.remote_callbacks(callbacks);
        opts.download_tags(git2::AutotagOption::None);
        let refspec = format!("+refs/heads/{0}:refs/heads/{0}", self.branch);
        remote
            .fetch(&[&refspec], Some(&mut opts), None)
            .map_err(ctx(format!("fetching {} from {}", self.branch, self.url)))?;
        let reference = repo
            .find_reference(&format!("refs/heads/{}", self.branch))
            .map_err(|_| GitError::NoBranch {
                branch: self.branch.clone(),
                url: self.url.clone(),
            })?;
        let commit = reference
            .peel_to_commit()
            .map_err(ctx("resolving the branch head"))?;
        Ok(commit.id().to_string())
    }

    /// Reads every file of `commit` into memory (bounded).
    pub fn read_commit(&self, commit: &str) -> Result<(MemSource, CommitInfo), GitError> {
        let repo = self.open_or_init()?;
        let oid = git2::Oid::from_str(commit).map_err(ctx(format!("commit id {commit}")))?;
        let c = repo
            .find_commit(oid)
            .map_err(ctx(format!("commit {commit}")))?;
        let info = CommitInfo {
            id: commit.to_owned(),
            summary: c.summary().ok().flatten().unwrap_or_default().to_owned(),
            author: c.author().name().unwrap_or_default().to_owned(),
            time_unix: c.time().seconds(),
        };
        let tree = c.tree().map_err(ctx("reading the tree"))?;
        let mut files = BTreeMap::new();
        let mut total: u64 = 0;
        let mut error: Option<GitError> = None;
        tree.walk(git2::TreeWalkMode::PreOrder, |dir, entry| {
            if entry.kind() != Some(git2::ObjectType::Blob) {
                return git2::TreeWalkResult::Ok;
            }
            let name = entry.name().unwrap_or_default();
            let path = format!("{dir}{name}");
            // Symlinks (mode 120000) are not followed: their "content" is
            // the link target, which the loader would treat as a file.
            if entry.filemode() == 0o120000 {
                return git2::TreeWalkResult::Ok;
            }
            let blob = match repo.find_blob(entry.id()) {
                Ok(b) => b,
                Err(e) => {
                    error = Some(GitError::Git {
                        context: format!("reading {path}"),
                        source: e,
                    });
                    return git2::TreeWalkResult::Abort;
                }
            };
            let size = blob.size() as u64;
            if size > MAX_REPO_FILE_BYTES {
                // Kept out; the loader reports it if a stack needs it.
                return git2::TreeWalkResult::Ok;
            }
            total += size;
            if total > MAX_TREE_BYTES || files.len() >= MAX_TREE_FILES {
                error = Some(GitError::TooLarge(
                    commit.to_owned(),
                    format!("more than {MAX_TREE_BYTES} bytes or {MAX_TREE_FILES} files"),
                ));
                return git2::TreeWalkResult::Abort;
            }
            files.insert(path, blob.content().to_vec());
            git2::TreeWalkResult::Ok
        })
        .map_err(ctx("walking the tree"))
        .or_else(|e| if error.is_some() { Ok(()) } else { Err(e) })?;
        if let Some(e) = error {
            return Err(e);
        }
        Ok((MemSource(files), info))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CommitInfo {
    pub id: String,
    pub summary: String,
    pub author: String,
    pub time_unix: i64,
}
