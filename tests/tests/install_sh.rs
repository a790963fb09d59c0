//! `systemd/install.sh` in a throwaway root (`--root`, `--no-start`):
//! install with a real enrollment against a running control plane,
//! re-install (idempotent: same files, config edits kept, no duplicates),
//! the installed configs are valid for both daemons, uninstall keeps config
//! and data, purge removes them. And shellcheck passes.

#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(clippy::disallowed_methods)]

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use convoy_tests::binary;

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../systemd/install.sh")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn ok(o: Output) -> String {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.status.success(), "status {}: {text}", o.status);
    text
}

fn install(root: &Path, bins: &Path, extra: &[&str]) -> Output {
    Command::new("bash")
        .arg(script())
        .arg("--root")
        .arg(root)
        .arg("--bin-dir")
        .arg(bins)
        .args(extra)
        .output()
        .unwrap()
}

/// Every file under `root`: relative path -> (mode, length, mtime). Equal
/// mtimes mean the installer did not even rewrite a file.
type Snap = BTreeMap<String, (u32, u64, std::time::SystemTime)>;

fn snapshot(root: &Path) -> Snap {
    fn walk(base: &Path, dir: &Path, out: &mut Snap) {
        for e in std::fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            let md = std::fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(base).unwrap().display().to_string();
            let mode = md.permissions().mode() & 0o7777;
            if md.is_dir() {
                out.insert(format!("{rel}/"), (mode, 0, std::time::UNIX_EPOCH));
                walk(base, &p, out);
            } else {
                out.insert(rel, (mode, md.len(), md.modified().unwrap()));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

#[test]
fn install_reinstall_uninstall_purge_in_a_throwaway_root() {
    let tmp = tempfile::tempdir().unwrap();
    // The binaries, as a release tarball would carry them.
    let bins = tmp.path().join("bins");
    std::fs::create_dir(&bins).unwrap();
    for b in ["convoy-agent", "convoy-control-plane", "convoy"] {
        std::fs::copy(binary(b).unwrap(), bins.join(b)).unwrap();
    }

    // A control plane to enroll against.
    let cp_data = tmp.path().join("cp");
    let init = ok(Command::new(bins.join("convoy-control-plane"))
        .args([
            "init",
            "--fleet",
            "inst",
            "--server-name",
            "127.0.0.1",
            "--data-dir",
        ])
        .arg(&cp_data)
        .output()
        .unwrap());
    let admin = init
        .lines()
        .find_map(|l| l.strip_prefix("admin API token: "))
        .unwrap()
        .trim()
        .to_owned();
    let (agent_port, api_port) = (free_port(), free_port());
    let _cp = Kill(
        Command::new(bins.join("convoy-control-plane"))
            .args(["run", "--data-dir"])
            .arg(&cp_data)
            .args(["--agent-listen", &format!("127.0.0.1:{agent_port}")])
            .args(["--api-listen", &format!("127.0.0.1:{api_port}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let cli = |args: &[&str]| {
        Command::new(bins.join("convoy"))
            .args(args)
            .env("CONVOY_API", format!("https://127.0.0.1:{api_port}"))
            .env("CONVOY_TOKEN", &admin)
            .env("CONVOY_CA", cp_data.join("ca.pem"))
            .output()
            .unwrap()
    };
    let t0 = Instant::now();
    let token = loop {
        let o = cli(&["tokens", "create", "--host", "installed-host"]);
        if o.status.success() {
            break String::from_utf8(o.stdout).unwrap().trim().to_owned();
        }
        assert!(
            t0.elapsed() < Duration::from_secs(15),
            "API did not come up"
        );
        std::thread::sleep(Duration::from_millis(100));
    };

    // 1. Install both daemons, enrolling the agent. The root holds what the
    //    old layout's install.sh left (its files are migrated away) and an
    //    operator's own unit (kept).
    let root = tmp.path().join("root");
    let old_unit = root.join("etc/systemd/system/convoy-agent.service");
    let own_unit = root.join("etc/systemd/system/convoy-control-plane.service");
    let old_bin = root.join("usr/local/bin/convoy-agent");
    std::fs::create_dir_all(old_unit.parent().unwrap()).unwrap();
    std::fs::create_dir_all(old_bin.parent().unwrap()).unwrap();
    std::fs::write(
        &old_unit,
        "# Convoy host agent. Installed by systemd/install.sh; see README\n",
    )
    .unwrap();
    std::fs::write(&own_unit, "# the operator's own\n").unwrap();
    std::fs::write(&old_bin, "old").unwrap();
    let server = format!("127.0.0.1:{agent_port}");
    let out = ok(install(
        &root,
        &bins,
        &[
            "--agent",
            "--control-plane",
            "--server",
            &server,
            "--token",
            &token,
            "--no-start",
        ],
    ));
    assert!(
        out.contains("--root: skipping useradd convoy-agent"),
        "{out}"
    );
    assert!(
        out.contains("--root: skipping systemctl daemon-reload"),
        "{out}"
    );
    assert!(out.contains("enrolled as host installed-host"), "{out}");
    assert!(
        !old_unit.exists() && !old_bin.exists(),
        "old layout kept:\n{out}"
    );
    assert!(own_unit.exists(), "an operator's unit was removed:\n{out}");
    std::fs::remove_file(&own_unit).unwrap();
    for f in [
        "usr/bin/convoy-agent",
        "usr/bin/convoy-control-plane",
        "usr/bin/convoy",
        "usr/lib/systemd/system/convoy-agent.service",
        "usr/lib/systemd/system/convoy-control-plane.service",
        "etc/convoy/agent.toml",
        "etc/convoy/control-plane.toml",
        "usr/share/doc/convoy-agent/README.md",
        "usr/share/doc/convoy-control-plane/README.md",
        "var/lib/convoy-agent/cert.pem",
    ] {
        assert!(root.join(f).exists(), "{f} missing:\n{out}");
    }
    let mode = |p: &str| {
        std::fs::metadata(root.join(p))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode("usr/bin/convoy-agent"), 0o755);
    assert_eq!(mode("var/lib/convoy-agent"), 0o700);
    assert_eq!(mode("var/lib/convoy"), 0o700);
    assert_eq!(mode("etc/convoy/control-plane.toml"), 0o640);
    // The unit files are the ones in the repo.
    assert_eq!(
        std::fs::read(root.join("usr/lib/systemd/system/convoy-agent.service")).unwrap(),
        std::fs::read(script().with_file_name("convoy-agent.service")).unwrap()
    );

    // The installed configs are valid and give the unit's data dirs.
    let print = |bin: &str, cfg: &str, data: &str| {
        ok(Command::new(root.join("usr/bin").join(bin))
            .args(["run", "--print-config", "--config"])
            .arg(root.join("etc/convoy").join(cfg))
            .env("CONVOY_DATA_DIR", data)
            .output()
            .unwrap())
    };
    let a = print("convoy-agent", "agent.toml", "/var/lib/convoy-agent");
    assert!(a.contains("data_dir = \"/var/lib/convoy-agent\""), "{a}");
    let c = print(
        "convoy-control-plane",
        "control-plane.toml",
        "/var/lib/convoy",
    );
    assert!(c.contains("data_dir = \"/var/lib/convoy\""), "{c}");
    assert!(c.contains("api_listen = \"127.0.0.1:8443\""), "{c}");

    // 2. Re-install: identical tree, the operator's config edit kept, the
    //    enrollment untouched (the token is not reused).
    std::fs::write(root.join("etc/convoy/agent.toml"), "backoff_cap = \"5s\"\n").unwrap();
    let before = snapshot(&root);
    let out = ok(install(
        &root,
        &bins,
        &[
            "--agent",
            "--control-plane",
            "--server",
            &server,
            "--token",
            "cvjt_used",
            "--no-start",
        ],
    ));
    assert!(out.contains("already enrolled"), "{out}");
    assert!(out.contains("kept"), "{out}");
    assert!(out.contains("already up to date"), "{out}");
    assert_eq!(
        before,
        snapshot(&root),
        "re-install changed the tree:\n{out}"
    );

    // 3. An upgrade (a changed binary) replaces it in place.
    let mut changed = std::fs::read(bins.join("convoy")).unwrap();
    changed.extend_from_slice(b"\0upgrade");
    std::fs::write(bins.join("convoy"), &changed).unwrap();
    let out = ok(install(&root, &bins, &["--no-start"]));
    assert!(out.contains("installed"), "{out}");
    assert_eq!(std::fs::read(root.join("usr/bin/convoy")).unwrap(), changed);
    let after = snapshot(&root);
    assert_eq!(before.len(), after.len(), "files added by the upgrade");

    // 4. Uninstall: binaries, units and docs gone; config and data kept.
    let out = ok(install(&root, &bins, &["--uninstall"]));
    for f in [
        "usr/bin/convoy-agent",
        "usr/bin/convoy-control-plane",
        "usr/bin/convoy",
        "usr/lib/systemd/system/convoy-agent.service",
        "usr/lib/systemd/system/convoy-control-plane.service",
        "usr/share/doc/convoy-agent",
        "usr/share/doc/convoy-control-plane",
    ] {
        assert!(!root.join(f).exists(), "{f} left behind:\n{out}");
    }
    assert!(root.join("var/lib/convoy-agent/cert.pem").exists());
    assert!(root.join("etc/convoy/agent.toml").exists());

    // Re-installing after an uninstall picks the enrollment up again.
    let out = ok(install(&root, &bins, &["--agent", "--no-start"]));
    assert!(root.join("usr/bin/convoy-agent").exists(), "{out}");

    // 5. Purge: config and data gone too.
    ok(install(&root, &bins, &["--uninstall", "--purge"]));
    for f in ["var/lib/convoy-agent", "var/lib/convoy", "etc/convoy"] {
        assert!(!root.join(f).exists(), "{f} survived --purge");
    }

    // Bad usage is refused.
    let o = install(&root, &bins, &["--server", &server]);
    assert!(!o.status.success());
    let o = install(&root, &bins, &["--purge"]);
    assert!(!o.status.success());
}

#[test]
fn install_sh_passes_shellcheck() {
    // -x: follow `. layout.sh`, so the shared layout is checked too.
    let o = Command::new("shellcheck")
        .arg("-x")
        .arg(script())
        .output()
        .expect("shellcheck is not installed: ./test.sh installs it (.ci/install-deps)");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
}
