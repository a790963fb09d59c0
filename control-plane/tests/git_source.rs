//! The git source against real repositories made with the git CLI.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;

use convoy_control_plane::git::{Credentials, GitError, GitSource};
use convoy_shared::repo::load;

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.org")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.org")
        .output()
        .expect("git is installed (.ci/install-deps)");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn copy_dir(from: &Path, to: &Path) {
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

fn example_repo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/fleet");
    copy_dir(&example, dir.path());
    git(dir.path(), &["init", "-q", "-b", "main"]);
    git(dir.path(), &["add", "-A"]);
    git(dir.path(), &["commit", "-q", "-m", "first"]);
    dir
}

#[test]
fn follows_a_branch_and_reads_commits_without_checkout() {
    let origin = example_repo();
    let data = tempfile::tempdir().unwrap();
    let src = GitSource::new(
        origin.path().to_str().unwrap(),
        "main",
        Credentials::None,
        &data.path().join("mirror.git"),
    );
    let head = src.fetch().unwrap();
    assert_eq!(head, git(origin.path(), &["rev-parse", "HEAD"]));
    let (files, info) = src.read_commit(&head).unwrap();
    assert_eq!(info.summary, "first");
    let repo = load(&files).unwrap();
    assert_eq!(repo.fleet.name, "homelab");
    assert!(repo.stacks["proxy"].files.contains_key("Caddyfile"));

    // A new commit is seen by the next fetch; the old one stays readable.
    std::fs::write(origin.path().join("stacks/ollama/.env"), "UNUSED=1\n").unwrap();
    git(origin.path(), &["add", "-A"]);
    git(origin.path(), &["commit", "-q", "-m", "second"]);
    let head2 = src.fetch().unwrap();
    assert_ne!(head, head2);
    assert_eq!(src.read_commit(&head2).unwrap().1.summary, "second");
    assert_eq!(src.read_commit(&head).unwrap().1.summary, "first");

    // A force-push (history rewritten) is followed too.
    git(origin.path(), &["reset", "-q", "--hard", &head]);
    assert_eq!(src.fetch().unwrap(), head);
}

#[test]
fn file_urls_and_missing_branches() {
    let origin = example_repo();
    let data = tempfile::tempdir().unwrap();
    let url = format!("file://{}", origin.path().display());
    let src = GitSource::new(&url, "prod", Credentials::None, &data.path().join("m.git"));
    let err = src.fetch().unwrap_err();
    assert!(
        matches!(err, GitError::Git { .. } | GitError::NoBranch { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("prod"), "{err}");
    let src = GitSource::new(&url, "main", Credentials::None, &data.path().join("m.git"));
    assert_eq!(src.fetch().unwrap().len(), 40);
}

#[test]
fn unreachable_remote_is_an_error_not_a_hang() {
    let data = tempfile::tempdir().unwrap();
    let src = GitSource::new(
        "/nonexistent/fleet.git",
        "main",
        Credentials::None,
        &data.path().join("m.git"),
    );
    assert!(src.fetch().is_err());
}

#[test]
fn credentials_are_never_printed() {
    let c = Credentials::UserPass {
        user: "oauth2".into(),
        password: "glpat-secret".into(),
    };
    assert!(!format!("{c:?}").contains("glpat-secret"));
}
