//! The CLI as a new user meets it, on the real Docker engine: `convoy
//! quickstart` runs (and keeps running), its saved `quickstart` context makes
//! a plain `convoy status` work from another shell with no variables set,
//! and the first thing it tells you to try — edit the page, `git commit`,
//! `convoy rollout --watch` in the repo — waits for that commit's rollout,
//! follows it to `completed` (exit 0), and the new page is served. Ctrl-C
//! (SIGINT) then stops Convoy cleanly.
//!
//! It uses the demo stack `hello` on port 8088 like tests/quickstart.rs;
//! cargo runs test binaries one after another, so the two never overlap.
#![allow(clippy::unwrap_used, clippy::expect_used)]
// Plain threads and child processes here; no tokio runtime to block.
#![allow(clippy::disallowed_methods)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn docker(args: &[&str]) -> String {
    let out = Command::new("docker")
        .args(args)
        .output()
        .expect("DOCKER CLI MISSING");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn remove_demo() {
    for id in docker(&["ps", "-aq", "--filter", "label=dev.convoy.stack=hello"]).split_whitespace()
    {
        docker(&["rm", "-f", id]);
    }
    docker(&["network", "rm", "hello_default"]);
}

/// The running quickstart: Ctrl-C'd when dropped (also on a panic), so its
/// control plane and agent stop with it; killed only if that hangs.
struct Quickstart {
    child: Child,
    stdout: Arc<Mutex<String>>,
}

impl Quickstart {
    fn interrupt(&mut self) -> Option<std::process::ExitStatus> {
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(30) {
            if let Ok(Some(st)) = self.child.try_wait() {
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        None
    }

    fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }
}

impl Drop for Quickstart {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.interrupt();
        }
    }
}

fn git(repo: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args([
            "-c",
            "user.name=new user",
            "-c",
            "user.email=user@example.org",
        ])
        .args(args)
        .output()
        .expect("git is missing: ./test.sh installs it (.ci/install-deps)");
    assert!(out.status.success(), "git {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn after_quickstart_status_just_works_and_rollout_watch_follows_the_next_commit() {
    let convoy = convoy_tests::binary("convoy").unwrap();
    remove_demo();
    let dir = tempfile::tempdir().unwrap();
    let cli_config = dir.path().join("home/.config/convoy/config.toml");
    let qs = dir.path().join("qs");
    let clean_env = |cmd: &mut Command| {
        cmd.env("CONVOY_CLI_CONFIG", &cli_config);
        for v in [
            "CONVOY_API",
            "CONVOY_TOKEN",
            "CONVOY_TOKEN_FILE",
            "CONVOY_CA",
            "CONVOY_CONTEXT",
        ] {
            cmd.env_remove(v);
        }
    };
    let mut cmd = Command::new(&convoy);
    clean_env(&mut cmd);
    let mut child = cmd
        .arg("quickstart")
        .arg("--dir")
        .arg(&qs)
        .args(["--agent-port", &free_port().to_string()])
        .args(["--api-port", &free_port().to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = Arc::new(Mutex::new(String::new()));
    let pipe = child.stdout.take().unwrap();
    let sink = stdout.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            let mut s = sink.lock().unwrap();
            s.push_str(&line);
            s.push('\n');
        }
    });
    let mut q = Quickstart { child, stdout };

    let t0 = Instant::now();
    while !q.stdout().contains("Convoy is running") {
        let agent_log = || std::fs::read_to_string(qs.join("agent.log")).unwrap_or_default();
        if let Ok(Some(st)) = q.child.try_wait() {
            panic!("quickstart exited ({st}):\n{}\n{}", q.stdout(), agent_log());
        }
        assert!(
            t0.elapsed() < Duration::from_secs(240),
            "quickstart did not come up:\n{}\n{}",
            q.stdout(),
            agent_log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let printed = q.stdout();
    assert!(
        printed.contains("saved the CLI context `quickstart`"),
        "{printed}"
    );
    assert!(printed.contains("rollout --watch"), "{printed}");

    // Another shell, no variables: the context is current.
    let run = |args: &[&str], cwd: &Path| {
        let mut cmd = Command::new(&convoy);
        clean_env(&mut cmd);
        cmd.args(args).current_dir(cwd).output().unwrap()
    };
    let status = run(&["status"], dir.path());
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(status.status.success(), "{status:?}");
    assert!(text.contains("fleet            quickstart"), "{text}");
    assert!(text.contains("completed"), "{text}");

    // What the quickstart says to try: edit, commit, watch.
    let repo = qs.join("fleet-repo");
    let page = repo.join("stacks/hello/www/index.html");
    let html = std::fs::read_to_string(&page).unwrap();
    std::fs::write(
        &page,
        html.replace("Hello from Convoy", "Hello again, new user"),
    )
    .unwrap();
    git(&repo, &["commit", "-q", "-am", "new page"]);
    let head = git(&repo, &["rev-parse", "HEAD"]);
    let watch = run(&["rollout", "--watch", "--timeout", "180s"], &repo);
    let out = String::from_utf8_lossy(&watch.stdout);
    let err = String::from_utf8_lossy(&watch.stderr);
    eprintln!("convoy rollout --watch:\n{err}{out}");
    assert_eq!(watch.status.code(), Some(0), "{out}\n{err}");
    assert!(
        out.contains(&format!("commit {}", &head[..12])),
        "{out}\n{err}"
    );
    let last_block = out.rsplit("--- ").next().unwrap_or_default();
    assert!(last_block.contains("completed"), "{out}\n{err}");
    // Every block shown is the new commit's rollout.
    for block in out.split("--- ").filter(|b| !b.trim().is_empty()) {
        assert!(
            block.contains(&head[..12]),
            "an older rollout shown:\n{out}"
        );
    }
    let body = Command::new("busybox")
        .args(["wget", "-q", "-O", "-", "http://127.0.0.1:8088/"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&body.stdout).contains("Hello again, new user"),
        "{body:?}"
    );

    // Ctrl-C stops Convoy cleanly.
    let st = q.interrupt().expect("quickstart did not stop on Ctrl-C");
    assert!(st.success(), "{st}\n{}", q.stdout());
    drop(q);
    remove_demo();
}
