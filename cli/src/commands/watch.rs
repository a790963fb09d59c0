//! `convoy rollout --watch`: follow a rollout until it ends, and first, when
//! no rollout id is given, find the rollout of the right commit.
//!
//! Which commit: `--commit` (resolved in the local checkout if it is not a
//! full id), else the HEAD of the checkout the command runs in when that is
//! the fleet repo the control plane follows (same path, or a remote with the
//! same host and path), else the control plane's git head. Right after a
//! commit the control plane has usually not fetched it yet
//! (`/api/v1/commits/{id}` answers 404), so the watch waits for it, asking
//! once for a fetch now (`POST /api/v1/sync`, which needs an admin token; a
//! read token just waits for the next poll). A rejected commit prints its
//! problems and fails; an accepted one names its rollout, which is then
//! followed. If the control plane's head moves past the commit (a newer one
//! was pushed and the commit itself will never be loaded), the watch follows
//! the head instead; a rollout superseded by a newer one is followed to the
//! newer one. The API is used as it is: `/api/v1/status`,
//! `/api/v1/commits/{id}`, `/api/v1/rollouts/{id}`.
//!
//! The decisions ([`commit_state`], [`rollout_end`], [`repo_key`]) are pure
//! and tested here; the loop around them only polls (every second) and
//! prints.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use reqwest::{Method, StatusCode};
use serde_json::Value;

use convoy_shared::source::Diagnostic;

use crate::client::{ApiClient, ClientError};
use crate::exit::{RolloutFailed, TimedOut, Usage};
use crate::output::{Format, Ui, write_out};
use crate::style::Palette;
use crate::tables::{chrono_now, rollout_text, short, status_word};

/// How often the watch polls the API (one small GET; the control plane
/// answers from memory).
const POLL: Duration = Duration::from_secs(1);

/// What the control plane knows of a commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommitState {
    /// Not fetched (yet): `/api/v1/commits/{id}` answered 404.
    NotSeen,
    /// Failed validation: nothing is rolled out.
    Rejected(Vec<Diagnostic>),
    /// Accepted, with the id of its rollout.
    RollingOut(String),
}

/// The state of a commit from its record (`None`: 404).
pub fn commit_state(record: Option<&Value>) -> Result<CommitState, String> {
    let Some(r) = record else {
        return Ok(CommitState::NotSeen);
    };
    match r.get("accepted").and_then(Value::as_bool) {
        Some(false) => {
            let problems = r
                .get("problems")
                .cloned()
                .map(serde_json::from_value::<Vec<Diagnostic>>)
                .transpose()
                .map_err(|e| format!("the commit's problems: {e}"))?
                .unwrap_or_default();
            Ok(CommitState::Rejected(problems))
        }
        Some(true) => r
            .get("rollout_id")
            .and_then(Value::as_str)
            .map(|id| CommitState::RollingOut(id.to_owned()))
            .ok_or_else(|| "an accepted commit without a rollout id".to_owned()),
        None => Err("a commit record without `accepted`".to_owned()),
    }
}

/// Where a rollout stands, for the watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RolloutEnd {
    /// Still running, waiting for approval, or rolling back.
    NotYet,
    Completed,
    /// Halted or rolled back: why.
    Failed(String),
    /// A newer commit's rollout took over: its id.
    Superseded(String),
}

pub fn rollout_end(v: &Value) -> RolloutEnd {
    let status = v.get("status").unwrap_or(&Value::Null);
    let word = status_word(status);
    let inner = |k: &str| {
        status
            .get(&word)
            .and_then(|i| i.get(k))
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_owned()
    };
    match word.as_str() {
        "Completed" => RolloutEnd::Completed,
        "Superseded" => RolloutEnd::Superseded(inner("by")),
        "Halted" => RolloutEnd::Failed(format!("halted at {}: {}", inner("host"), inner("reason"))),
        "RolledBack" => RolloutEnd::Failed(format!(
            "rolled back after {}: {}",
            inner("host"),
            inner("reason")
        )),
        // Running, WaitingApproval, RollingBack, and any state a newer
        // control plane may add: keep watching (the timeout bounds it).
        _ => RolloutEnd::NotYet,
    }
}

/// A repository's identity for comparing the control plane's git URL with
/// a checkout's remotes: host (lower case, no user or port) and path,
/// without a trailing `/` or `.git`. `https://git.example.com/ops/fleet.git`,
/// `ssh://git@git.example.com:22/ops/fleet` and `git@git.example.com:ops/fleet`
/// are the same repo.
pub fn repo_key(url: &str) -> String {
    let u = url.trim();
    let (rest, scp_like) = match u.split_once("://") {
        Some((_, rest)) => (rest, false),
        None => (u, true),
    };
    let (host, path) = if scp_like {
        match rest.split_once(':') {
            // `host:path` (scp-like), unless it is a plain local path.
            Some((h, p)) if !h.contains('/') => (h, p),
            _ => ("", rest),
        }
    } else {
        rest.split_once('/').unwrap_or((rest, ""))
    };
    let host = host.rsplit('@').next().unwrap_or(host);
    let host = host.split(':').next().unwrap_or(host).to_ascii_lowercase();
    let mut path = path.trim_end_matches('/');
    path = path.strip_suffix(".git").unwrap_or(path);
    format!(
        "{host}/{}",
        path.trim_start_matches('/').trim_end_matches('/')
    )
}

/// The checkout the command runs in, if it is the fleet repo at `git_url`.
struct Checkout {
    repo: git2::Repository,
}

impl Checkout {
    /// The checkout around the current directory, if any, and whether it is
    /// the fleet repo the control plane follows.
    fn discover(git_url: Option<&str>) -> Option<(Checkout, bool)> {
        let repo = git2::Repository::discover(".").ok()?;
        let is_fleet = git_url.is_some_and(|url| Checkout::matches(&repo, url));
        Some((Checkout { repo }, is_fleet))
    }

    fn matches(repo: &git2::Repository, url: &str) -> bool {
        // The control plane may follow the checkout itself (a local path,
        // as in the quickstart) ...
        let local = url.strip_prefix("file://").unwrap_or(url);
        if Path::new(local).is_absolute()
            && let (Ok(a), Some(Ok(b))) = (
                std::fs::canonicalize(local),
                repo.workdir().map(std::fs::canonicalize),
            )
            && (a == b || repo.path().canonicalize().is_ok_and(|g| g == a))
        {
            return true;
        }
        // ... or the checkout has a remote for the same repo.
        let want = repo_key(url);
        repo.remotes().is_ok_and(|names| {
            names.iter().flatten().flatten().any(|n| {
                repo.find_remote(n)
                    .ok()
                    .and_then(|r| r.url().ok().map(repo_key))
                    .is_some_and(|k| k == want)
            })
        })
    }

    fn resolve(&self, spec: &str) -> Option<String> {
        let c = self
            .repo
            .revparse_single(spec)
            .ok()?
            .peel_to_commit()
            .ok()?;
        Some(c.id().to_string())
    }

    /// Whether `newer` is a descendant of `older` here (both must be known).
    fn descends(&self, newer: &str, older: &str) -> bool {
        match (git2::Oid::from_str(newer), git2::Oid::from_str(older)) {
            (Ok(n), Ok(o)) => self.repo.graph_descendant_of(n, o).unwrap_or(false),
            _ => false,
        }
    }
}

fn is_full_id(s: &str) -> bool {
    s.len() == 40 && s.chars().all(|c| c.is_ascii_hexdigit())
}

fn git_head(status: &Value) -> Option<String> {
    status
        .pointer("/git/head")
        .and_then(Value::as_str)
        .filter(|h| !h.is_empty())
        .map(str::to_owned)
}

/// What `--watch` follows.
#[derive(Debug, Clone, Copy)]
pub struct Watch<'a> {
    pub id: Option<&'a str>,
    pub commit: Option<&'a str>,
    pub timeout: Duration,
}

/// `convoy rollout --watch [ID | --commit SHA]`.
pub async fn run(client: &ApiClient, ui: &Ui, w: Watch<'_>) -> anyhow::Result<()> {
    let deadline = Instant::now() + w.timeout;
    let limit = format!("--timeout {}s", w.timeout.as_secs());
    let id = match w.id {
        Some(id) => id.to_owned(),
        None => find_rollout(client, ui, w.commit, deadline, &limit).await?,
    };
    follow(client, ui, id, deadline, &limit).await
}

/// The rollout of the commit to watch, waiting for the control plane to see
/// the commit.
async fn find_rollout(
    client: &ApiClient,
    ui: &Ui,
    commit_flag: Option<&str>,
    deadline: Instant,
    limit: &str,
) -> anyhow::Result<String> {
    let status = client.request(Method::GET, "/api/v1/status", None).await?;
    let git_url = status.pointer("/git/url").and_then(Value::as_str);
    let branch = status
        .pointer("/git/branch")
        .and_then(Value::as_str)
        .unwrap_or("?");
    let checkout = Checkout::discover(git_url);
    let mut cp_head = git_head(&status);
    let resolved = commit_flag.and_then(|c| checkout.as_ref().and_then(|(co, _)| co.resolve(c)));
    let (mut target, why) = match (commit_flag, &checkout) {
        (Some(c), _) if is_full_id(c) => (c.to_ascii_lowercase(), "--commit"),
        (Some(_), _) if resolved.is_some() => (resolved.unwrap_or_default(), "--commit"),
        (Some(c), _) => match &cp_head {
            Some(h) if c.len() >= 4 && h.starts_with(&c.to_ascii_lowercase()) => {
                (h.clone(), "--commit")
            }
            _ => {
                return Err(Usage(format!(
                    "--commit {c}: not a full commit id, and not a commit of a local \
                     checkout or the control plane's head"
                ))
                .into());
            }
        },
        (None, Some((co, true))) => match co.resolve("HEAD") {
            Some(h) => (h, "this checkout's HEAD"),
            None => return Err(anyhow::anyhow!("this checkout has no HEAD commit yet")),
        },
        (None, other) => {
            if let (Some((_, false)), Some(url)) = (other, git_url) {
                ui.note(&format!(
                    "(this directory's git repo is not the fleet repo {url}; following \
                     the control plane's head; use --commit SHA to name one)"
                ));
            }
            match &cp_head {
                Some(h) => (h.clone(), "the control plane's git head"),
                None => {
                    // No git repo configured: the current rollout, if any.
                    let v = client
                        .request(Method::GET, "/api/v1/rollouts/current", None)
                        .await?;
                    return v
                        .get("id")
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                        .context("the current rollout has no id");
                }
            }
        }
    };
    let mut asked_sync = false;
    let mut announced = false;
    loop {
        let record = match client
            .request(Method::GET, &format!("/api/v1/commits/{target}"), None)
            .await
        {
            Ok(v) => Some(v),
            Err(ClientError::Api { status, .. }) if status == StatusCode::NOT_FOUND => None,
            Err(e) => return Err(e.into()),
        };
        match commit_state(record.as_ref()).map_err(anyhow::Error::msg)? {
            CommitState::RollingOut(id) => {
                if announced {
                    ui.note(&format!("commit {} is rollout {id}", short(&target)));
                }
                return Ok(id);
            }
            CommitState::Rejected(problems) => {
                for p in &problems {
                    eprintln!("{p}");
                }
                return Err(RolloutFailed(format!(
                    "commit {} was rejected ({} problem{}): nothing is rolled out, the fleet \
                     stays on its last good commit",
                    short(&target),
                    problems.len(),
                    if problems.len() == 1 { "" } else { "s" }
                ))
                .into());
            }
            CommitState::NotSeen => {}
        }
        if !announced {
            announced = true;
            ui.note(&format!(
                "waiting for the control plane to fetch commit {} ({why})",
                short(&target)
            ));
        }
        if !asked_sync {
            asked_sync = true;
            match client.request(Method::POST, "/api/v1/sync", None).await {
                Ok(_) => ui.note("asked the control plane to fetch now"),
                Err(e) => ui.note(&format!("(no fetch now: {e}; it fetches at its next poll)")),
            }
        }
        if Instant::now() >= deadline {
            return Err(TimedOut(format!(
                "{limit}: the control plane never saw commit {} (is it pushed to {branch}?)",
                short(&target)
            ))
            .into());
        }
        tokio::time::sleep(POLL).await;
        // A newer head that descends from the target means the target itself
        // will never be loaded (the control plane loads branch heads).
        let now_head = git_head(&client.request(Method::GET, "/api/v1/status", None).await?);
        if now_head != cp_head
            && let Some(h) = &now_head
            && *h != target
            && checkout
                .as_ref()
                .is_some_and(|(co, _)| co.descends(h, &target))
        {
            ui.note(&format!(
                "the control plane moved on to {}, which includes {}; following it",
                short(h),
                short(&target)
            ));
            target = h.clone();
        }
        cp_head = now_head;
    }
}

/// Prints the rollout at every change until it ends.
async fn follow(
    client: &ApiClient,
    ui: &Ui,
    mut id: String,
    deadline: Instant,
    limit: &str,
) -> anyhow::Result<()> {
    let mut last = String::new();
    loop {
        let v = client
            .request(Method::GET, &format!("/api/v1/rollouts/{id}"), None)
            .await?;
        let seen = match ui.format {
            Format::Table => rollout_text(&v, Palette::plain()),
            _ => v.to_string(),
        };
        if seen != last {
            write_out(&ui.render_stream_item(&v, &chrono_now(), rollout_text)?)?;
            last = seen;
        }
        match rollout_end(&v) {
            RolloutEnd::Completed => return Ok(()),
            RolloutEnd::Failed(why) => {
                return Err(RolloutFailed(format!("rollout {id} {why}")).into());
            }
            RolloutEnd::Superseded(by) => {
                ui.note(&format!(
                    "rollout {id} was superseded by {by}; following it"
                ));
                id = by;
                last.clear();
                continue;
            }
            RolloutEnd::NotYet => {}
        }
        if Instant::now() >= deadline {
            return Err(TimedOut(format!("{limit}: rollout {id} is still running")).into());
        }
        tokio::time::sleep(POLL).await;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_commit_is_unseen_rejected_with_its_problems_or_rolling_out() {
        assert_eq!(commit_state(None), Ok(CommitState::NotSeen));
        let rejected = json!({"id": "c", "accepted": false, "at_ms": 1, "rollout_id": null,
            "problems": [{"file": "fleet.toml", "line": 3, "col": 1, "severity": "error",
                          "message": "unknown key `hots`"}]});
        let CommitState::Rejected(p) = commit_state(Some(&rejected)).unwrap() else {
            panic!("not rejected")
        };
        assert_eq!(p[0].to_string(), "fleet.toml:3:1: unknown key `hots`");
        let ok = json!({"id": "c", "accepted": true, "problems": [], "rollout_id": "r00000002"});
        assert_eq!(
            commit_state(Some(&ok)),
            Ok(CommitState::RollingOut("r00000002".into()))
        );
        assert!(commit_state(Some(&json!({"accepted": true}))).is_err());
        assert!(commit_state(Some(&json!({}))).is_err());
    }

    #[test]
    fn rollouts_end_completed_failed_or_superseded() {
        let end = |status: Value| rollout_end(&json!({"id": "r1", "status": status}));
        assert_eq!(end(json!("Running")), RolloutEnd::NotYet);
        assert_eq!(end(json!("WaitingApproval")), RolloutEnd::NotYet);
        assert_eq!(
            end(json!({"RollingBack": {"host": "a", "reason": "x"}})),
            RolloutEnd::NotYet
        );
        assert_eq!(end(json!("Completed")), RolloutEnd::Completed);
        assert_eq!(
            end(json!({"Halted": {"host": "vps", "reason": "rolled_back: web unhealthy"}})),
            RolloutEnd::Failed("halted at vps: rolled_back: web unhealthy".into())
        );
        assert_eq!(
            end(json!({"RolledBack": {"host": "vps", "reason": "x"}})),
            RolloutEnd::Failed("rolled back after vps: x".into())
        );
        assert_eq!(
            end(json!({"Superseded": {"by": "r00000009"}})),
            RolloutEnd::Superseded("r00000009".into())
        );
        // A state this CLI does not know keeps the watch going.
        assert_eq!(end(json!("Pondering")), RolloutEnd::NotYet);
        assert_eq!(rollout_end(&json!({})), RolloutEnd::NotYet);
    }

    #[test]
    fn repo_keys_match_across_url_forms() {
        let k = "git.example.com/ops/fleet";
        for url in [
            "https://git.example.com/ops/fleet.git",
            "https://oauth2@Git.Example.com/ops/fleet/",
            "ssh://git@git.example.com:22/ops/fleet.git",
            "git@git.example.com:ops/fleet.git",
            "git.example.com:ops/fleet",
        ] {
            assert_eq!(repo_key(url), k, "{url}");
        }
        assert_ne!(repo_key("https://git.example.com/ops/other.git"), k);
        assert_eq!(repo_key("/srv/git/fleet.git"), "/srv/git/fleet");
        assert_eq!(repo_key("file:///srv/git/fleet"), "/srv/git/fleet");
    }

    #[test]
    fn the_local_checkout_matches_by_path_or_remote() {
        let dir = tempfile::tempdir().unwrap();
        let repo = git2::Repository::init(dir.path()).unwrap();
        let path = dir.path().display().to_string();
        assert!(Checkout::matches(&repo, &path));
        assert!(Checkout::matches(&repo, &format!("file://{path}/")));
        assert!(!Checkout::matches(
            &repo,
            "https://git.example.com/ops/fleet.git"
        ));
        repo.remote("origin", "git@git.example.com:ops/fleet.git")
            .unwrap();
        assert!(Checkout::matches(
            &repo,
            "https://git.example.com/ops/fleet.git"
        ));
        assert!(!Checkout::matches(
            &repo,
            "https://git.example.com/ops/other.git"
        ));
        assert!(is_full_id(&"a".repeat(40)) && !is_full_id("abc123"));
    }
}
