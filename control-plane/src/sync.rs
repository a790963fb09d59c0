//! Following the fleet repo: the `[git]` config, fetching (poll + webhook
//! trigger), and loading and validating a new head into a [`Fetched`]
//! verdict. Acting on the verdict (starting or refusing a rollout, audit,
//! alerts) is the dispatcher's.

use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use convoy_shared::repo::Repo;
use convoy_shared::source::Diagnostic;

use crate::git::{CommitInfo, Credentials, GitSource};

/// How often the fleet repo is fetched without a webhook.
pub const DEFAULT_POLL: Duration = Duration::from_secs(60);

/// `[git]` in the control plane's config.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GitConfig {
    /// A local path, file://, https:// or ssh URL.
    pub url: String,
    #[serde(default = "default_branch")]
    pub branch: String,
    /// Default "60s".
    #[serde(default)]
    pub poll_interval: Option<String>,
    /// Shared secret of `POST /api/v1/webhooks/git`.
    #[serde(default)]
    pub webhook_secret: Option<String>,
    /// https: user name (e.g. "git", "oauth2") and token.
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub token: Option<String>,
    /// ssh: private key file.
    #[serde(default)]
    pub ssh_key: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for GitConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitConfig")
            .field("url", &self.url)
            .field("branch", &self.branch)
            .field("poll_interval", &self.poll_interval)
            .field(
                "webhook_secret",
                &self.webhook_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("username", &self.username)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("ssh_key", &self.ssh_key)
            .finish()
    }
}

fn default_branch() -> String {
    "main".into()
}

impl GitConfig {
    pub fn poll(&self) -> Result<Duration, String> {
        match &self.poll_interval {
            Some(s) => {
                let d = convoy_shared::duration::parse(s)?;
                if d < Duration::from_secs(1) {
                    return Err("git.poll_interval must be at least 1s".into());
                }
                Ok(d)
            }
            None => Ok(DEFAULT_POLL),
        }
    }

    fn credentials(&self) -> Credentials {
        if let Some(key) = &self.ssh_key {
            return Credentials::SshKey {
                user: self.username.clone().unwrap_or_else(|| "git".into()),
                private_key: key.clone(),
                passphrase: None,
            };
        }
        match &self.token {
            Some(t) => Credentials::UserPass {
                user: self.username.clone().unwrap_or_else(|| "git".into()),
                password: t.clone(),
            },
            None => Credentials::None,
        }
    }
}

/// The state of the git sync, for the API.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SyncState {
    pub url: String,
    pub branch: String,
    pub head: Option<String>,
    pub last_fetch_unix_ms: Option<u64>,
    pub last_error: Option<String>,
}

/// What a fetch found at the head of the branch.
#[derive(Debug)]
pub enum Fetched {
    /// A commit the control plane has already decided on.
    Seen { head: String },
    /// A new commit that loads and validates.
    Valid {
        head: String,
        repo: Box<Repo>,
        info: CommitInfo,
    },
    /// A new commit refused as a whole (`reason`: the first problems, one a
    /// line).
    Invalid {
        head: String,
        problems: Vec<Diagnostic>,
        reason: String,
    },
}

/// Most problems quoted in a rejected commit's reason (all are recorded).
const REASON_PROBLEMS: usize = 20;

/// The verdict on a loaded commit, for the fleet this control plane
/// serves. Pure.
pub fn verdict(
    fleet: &str,
    head: String,
    loaded: Result<Repo, convoy_shared::source::Diagnostics>,
    info: CommitInfo,
) -> Fetched {
    match loaded {
        Ok(repo) if repo.fleet.name != fleet => Fetched::Invalid {
            reason: format!(
                "fleet.toml names fleet {:?}, but this control plane serves {fleet:?}",
                repo.fleet.name
            ),
            head,
            problems: vec![],
        },
        Ok(repo) => Fetched::Valid {
            head,
            repo: Box::new(repo),
            info,
        },
        Err(diags) => Fetched::Invalid {
            reason: diags
                .errors()
                .take(REASON_PROBLEMS)
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n"),
            head,
            problems: diags.0,
        },
    }
}

/// The fleet repo source and the sync's state.
#[derive(Debug)]
pub struct GitSync {
    source: Option<(GitSource, Duration)>,
    webhook_secret: Option<String>,
    state: Mutex<SyncState>,
    now: Notify,
}

impl GitSync {
    /// `mirror`: where the bare mirror of the repo lives.
    pub fn new(git: Option<&GitConfig>, mirror: &std::path::Path) -> Result<GitSync, String> {
        let source = match git {
            Some(g) => Some((
                GitSource::new(&g.url, &g.branch, g.credentials(), mirror),
                g.poll()?,
            )),
            None => None,
        };
        Ok(GitSync {
            source,
            webhook_secret: git.and_then(|g| g.webhook_secret.clone()),
            state: Mutex::new(SyncState {
                url: git.map(|g| g.url.clone()).unwrap_or_default(),
                branch: git.map(|g| g.branch.clone()).unwrap_or_default(),
                ..SyncState::default()
            }),
            now: Notify::new(),
        })
    }

    pub fn configured(&self) -> bool {
        self.source.is_some()
    }

    pub fn poll_interval(&self) -> Duration {
        self.source.as_ref().map_or(DEFAULT_POLL, |(_, p)| *p)
    }

    pub fn webhook_secret(&self) -> Option<&str> {
        self.webhook_secret.as_deref()
    }

    pub fn state(&self) -> SyncState {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Asks the sync loop to fetch now (webhook, `convoy sync`).
    pub fn trigger(&self) {
        self.now.notify_one();
    }

    /// Resolves when [`GitSync::trigger`] was called.
    pub async fn triggered(&self) {
        self.now.notified().await;
    }

    /// Fetches, and loads a new head (`seen` says whether a commit was
    /// decided on before). Blocking (git, file reads).
    pub fn fetch(
        &self,
        fleet: &str,
        seen: impl FnOnce(&str) -> Result<bool, String>,
    ) -> Result<Fetched, String> {
        let Some((git, _)) = &self.source else {
            return Err("no git source configured".into());
        };
        let head = git.fetch().map_err(|e| e.to_string())?;
        if seen(&head)? {
            return Ok(Fetched::Seen { head });
        }
        let (files, info) = git.read_commit(&head).map_err(|e| e.to_string())?;
        Ok(verdict(
            fleet,
            head,
            convoy_shared::repo::load(&files),
            info,
        ))
    }

    /// Records a sync's outcome (the head now followed, or why not).
    pub fn finished(&self, outcome: Result<String, String>, at_ms: u64) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.last_fetch_unix_ms = Some(at_ms);
        match outcome {
            Ok(head) => {
                st.head = Some(head);
                st.last_error = None;
            }
            Err(e) => {
                tracing::warn!(error = %e, "fleet repo sync failed; keeping the last good commit");
                st.last_error = Some(e);
            }
        }
    }
}
