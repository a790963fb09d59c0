//! The real units under a real systemd (PID 1 of a Debian container, see
//! `convoy_tests::systemd_box`), the daemons from our Debian packages and,
//! separately, from `systemd/install.sh`:
//!
//! - the packages install (users, data dirs, conffiles, units enabled and
//!   skipped until the host is enrolled / the fleet initialised);
//! - `Type=notify`: `systemctl start` returns once the daemon serves (the
//!   API answers on the first try);
//! - an agent enrolled against the control plane gets its stack rolled out
//!   (a real container on the host's engine, through the bind-mounted
//!   socket);
//! - `systemctl restart`, the watchdog (SIGSTOP: systemd aborts and
//!   restarts the agent after WatchdogSec, shortened to 4 s by a drop-in),
//!   `systemctl stop` — the stack keeps running through all three;
//! - upgrade in place (revision 2 over 1: both services restarted, the
//!   edited conffile kept, no prompt), remove (data kept) and purge.
//!
//! One drop-in exists only because this is a container: the control
//! plane's `ProtectProc=invisible` together with `PrivateUsers=yes` fails
//! to start (217/USER, "Failed to set up user namespacing") inside Docker
//! (systemd issue 29656); the test sets `ProtectProc=default` for it.

#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(clippy::disallowed_methods)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use convoy_tests::fleet::{containers, remove_prefix};
use convoy_tests::systemd_box::SystemdBox;
use convoy_tests::{binary, images};

const HOST: &str = "sd-host";
const CLI_ENV: &str = "CONVOY_API=https://127.0.0.1:8443 CONVOY_CA=/var/lib/convoy/ca.pem CONVOY_TOKEN=$(cat /root/admin-token)";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn nonce() -> u16 {
    (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos()
        ^ std::process::id()) as u16
}

/// Removes the stack's containers when the test ends, however it ends.
struct Stacks(String);
impl Drop for Stacks {
    fn drop(&mut self) {
        remove_prefix(&self.0);
    }
}

/// packaging/build-deb over the test binaries (debug profile, no
/// compression: the real command builds release and compresses).
fn build_debs(bins: &Path, out: &Path, revision: &str) -> Vec<PathBuf> {
    let t0 = Instant::now();
    let o = Command::new(repo_root().join("packaging/build-deb"))
        .arg("--bin-dir")
        .arg(bins)
        .arg("--out")
        .arg(out)
        .args(["--revision", revision, "--compress", "none"])
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "build-deb: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    eprintln!(
        "build-deb --revision {revision}: {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    String::from_utf8(o.stdout)
        .unwrap()
        .lines()
        .map(PathBuf::from)
        .collect()
}

/// A one-host fleet repo: one stack, one busybox httpd with a healthcheck
/// (no bind mounts and no probes: the agent runs in the container, the
/// stack on the host's engine).
fn write_repo(dir: &Path, stack: &str, image: &str) {
    std::fs::create_dir_all(dir.join("stacks").join(stack)).unwrap();
    std::fs::write(
        dir.join("fleet.toml"),
        format!(
            "[fleet]\nname = \"sdfleet\"\n\n[hosts.{HOST}]\nlabels = {{ role = \"web\" }}\n\n\
             [stacks.{stack}]\npath = \"stacks/{stack}\"\nhosts = \"role=web\"\n\
             [stacks.{stack}.health]\ndeadline = \"30s\"\nmin_healthy = \"2s\"\n"
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("stacks").join(stack).join("compose.yaml"),
        format!(
            "services:\n  web:\n    image: {image}\n    command: [\"httpd\", \"-f\", \"-p\", \"8080\", \"-h\", \"/www\"]\n    \
             stop_grace_period: 1s\n    healthcheck:\n      test: [\"CMD\", \"wget\", \"-q\", \"-O\", \"/dev/null\", \"http://127.0.0.1:8080/health\"]\n      \
             interval: 1s\n      timeout: 1s\n      retries: 2\n    restart: unless-stopped\n"
        ),
    )
    .unwrap();
    let git = |args: &[&str]| {
        let o = Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(["-c", "user.name=t", "-c", "user.email=t@example.org"])
            .args(args)
            .output()
            .expect("git is not installed: ./test.sh installs it (.ci/install-deps)");
        assert!(o.status.success(), "git {args:?}: {o:?}");
        String::from_utf8(o.stdout).unwrap()
    };
    git(&["init", "-q", "-b", "main"]);
    git(&["add", "-A"]);
    git(&["commit", "-q", "-m", "one stack"]);
}

fn head(dir: &Path) -> String {
    let o = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["rev-parse", "HEAD"])
        .output()
        .unwrap();
    String::from_utf8(o.stdout).unwrap().trim().to_owned()
}

fn wait<T>(what: &str, within: Duration, mut f: impl FnMut(&mut String) -> Option<T>) -> T {
    let t0 = Instant::now();
    let mut last = String::new();
    loop {
        if let Some(v) = f(&mut last) {
            return v;
        }
        assert!(
            t0.elapsed() < within,
            "timed out after {within:?} waiting for {what}; last: {last}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// The box's `convoy` CLI with the admin token saved at init.
fn cli(b: &SystemdBox, args: &str) -> anyhow::Result<String> {
    b.sh(&format!("{CLI_ENV} convoy {args}"))
}

fn cli_json(b: &SystemdBox, args: &str) -> anyhow::Result<serde_json::Value> {
    Ok(serde_json::from_str(&cli(b, &format!("{args} --json"))?)?)
}

fn status_of(v: &serde_json::Value) -> String {
    match &v["status"] {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Object(o) => o.keys().next().cloned().unwrap_or_default(),
        _ => String::new(),
    }
}

/// Waits until the agent's current invocation has logged "connected".
fn wait_agent_connected(b: &SystemdBox) {
    let inv = b.show("convoy-agent", &["InvocationID"]).unwrap()["InvocationID"].clone();
    wait("the agent's stream", Duration::from_secs(30), |last| {
        let out = b
            .sh(&format!(
                "journalctl --no-pager -o cat _SYSTEMD_INVOCATION_ID={inv}"
            ))
            .ok()?;
        *last = out.lines().rev().take(3).collect::<Vec<_>>().join(" | ");
        out.lines()
            .any(|l| l.contains("connected") && l.contains(HOST))
            .then_some(())
    });
}

/// The stack's containers on the host's engine: (id, state).
fn stack_ids(prefix: &str) -> Vec<(String, String)> {
    containers(prefix)
        .unwrap()
        .into_iter()
        .map(|c| (c.id, c.state))
        .collect()
}

fn active_running(s: &BTreeMap<String, String>) -> bool {
    s["ActiveState"] == "active" && s["SubState"] == "running"
}

/// Start a unit and check Type=notify readiness: `systemctl start` blocks
/// until READY=1, so the unit is active/running the moment it returns.
fn start_ready(b: &SystemdBox, unit: &str) -> BTreeMap<String, String> {
    b.sh(&format!("systemctl start {unit}")).unwrap();
    let s = b
        .show(
            unit,
            &[
                "Type",
                "ActiveState",
                "SubState",
                "NRestarts",
                "InvocationID",
                "MainPID",
            ],
        )
        .unwrap();
    assert_eq!(s["Type"], "notify", "{unit}: {s:?}");
    assert!(active_running(&s), "{unit} right after start: {s:?}");
    s
}

/// The unit's sandbox is really in place (systemd skips namespacing it
/// cannot set up in a container, "assuming containerized execution"): in
/// its own mount namespace `/` is read-only (ProtectSystem=strict) and
/// `/tmp` its own (PrivateTmp=); where asked, it has its own user namespace
/// (PrivateUsers=: a uid_map other than PID 1's). Read from files any
/// process may read (root here lacks CAP_SYS_PTRACE for /proc/PID/ns).
fn assert_sandboxed(b: &SystemdBox, unit: &str, own_userns: bool) {
    let pid = b.show(unit, &["MainPID"]).unwrap()["MainPID"].clone();
    let mounts = |p: &str| {
        b.sh(&format!("awk '{{print $5, $6}}' /proc/{p}/mountinfo"))
            .unwrap()
    };
    let (mine, init) = (mounts(&pid), mounts("1"));
    let opts = |m: &str, at: &str| -> Option<String> {
        m.lines()
            .filter_map(|l| l.split_once(' '))
            .filter(|(p, _)| *p == at)
            .map(|(_, o)| o.to_owned())
            .next_back()
    };
    assert!(
        opts(&mine, "/").is_some_and(|o| o.starts_with("ro")),
        "{unit}: / is not read-only in its namespace:\n{mine}"
    );
    assert!(
        opts(&mine, "/tmp").is_some() && opts(&init, "/tmp").is_none(),
        "{unit}: no private /tmp:\n{mine}"
    );
    let map = |p: &str| b.sh(&format!("cat /proc/{p}/uid_map")).unwrap();
    assert_eq!(
        map(&pid) != map("1"),
        own_userns,
        "{unit}: uid_map {} vs PID 1's {}",
        map(&pid),
        map("1")
    );
}

#[test]
fn debian_packages_install_run_upgrade_and_purge_under_real_systemd() {
    let t_all = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path();
    std::fs::set_permissions(work, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let bins = binary("convoy-agent")
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    let v1 = build_debs(&bins, &work.join("debs1"), "1");
    let v2 = build_debs(&bins, &work.join("debs2"), "2");
    assert_eq!((v1.len(), v2.len()), (2, 2), "{v1:?} {v2:?}");

    let n = nonce();
    let prefix = format!("sd{n:04x}");
    let _stacks = Stacks(prefix.clone());
    let stack = format!("{prefix}-www");
    let image = images::busybox_image("systemd").unwrap();
    let repo = work.join("fleet");
    write_repo(&repo, &stack, &image);
    let commit = head(&repo);

    let b = SystemdBox::boot(
        &format!("convoy-sd-deb-{n:04x}"),
        &[
            "-v".into(),
            "/var/run/docker.sock:/var/run/docker.sock".into(),
            "-v".into(),
            format!("{}:/srv/convoy-test:ro", work.display()),
        ],
    )
    .unwrap();
    let t_boot = t_all.elapsed();
    b.docker_group().unwrap();
    // The control plane (user `convoy` in the box) follows the repo through
    // the bind mount; libgit2 refuses a repo its user does not own.
    let chown_repo = || {
        let ids = b.sh("id -u convoy; id -g convoy").unwrap();
        let ids: Vec<&str> = ids.lines().collect();
        let o = Command::new("chown")
            .arg("-R")
            .arg(format!("{}:{}", ids[0], ids[1]))
            .arg(&repo)
            .output()
            .unwrap();
        assert!(o.status.success(), "{o:?}");
    };

    // --- 1. install: users, data dirs, conffiles, units enabled but skipped.
    let out = b.sh("dpkg -i /srv/convoy-test/debs1/*.deb 2>&1").unwrap();
    assert!(
        out.contains("sudo -u convoy-agent convoy-agent enroll --data-dir"),
        "{out}"
    );
    assert!(
        out.contains("sudo convoy-control-plane init --data-dir"),
        "{out}"
    );
    // The agent's data dir is made; the control plane's is made by `init`.
    assert_eq!(
        b.sh("stat -c '%a %U' /var/lib/convoy-agent").unwrap(),
        "700 convoy-agent\n"
    );
    b.sh("test ! -e /var/lib/convoy").unwrap();
    assert_eq!(
        b.sh("stat -c '%a %U:%G' /etc/convoy/control-plane.toml /etc/convoy/agent.toml")
            .unwrap(),
        "640 root:convoy\n644 root:root\n"
    );
    assert!(
        b.sh("id -nG convoy-agent").unwrap().contains("docker"),
        "the agent user is in group docker"
    );
    assert_eq!(
        b.sh("systemctl is-enabled convoy-agent convoy-control-plane")
            .unwrap(),
        "enabled\nenabled\n"
    );
    for unit in ["convoy-agent", "convoy-control-plane"] {
        let s = b
            .show(unit, &["ActiveState", "ConditionResult", "NRestarts"])
            .unwrap();
        assert_eq!(
            (s["ActiveState"].as_str(), s["ConditionResult"].as_str()),
            ("inactive", "no"),
            "{unit} before enroll/init is skipped, not failed: {s:?}"
        );
    }
    let conffiles = b
        .sh("dpkg-query -W -f='${Conffiles}\\n' convoy-agent convoy-control-plane")
        .unwrap();
    assert!(
        conffiles.contains("/etc/convoy/agent.toml")
            && conffiles.contains("/etc/convoy/control-plane.toml"),
        "{conffiles}"
    );

    chown_repo();

    // --- 2. test drop-ins (see the module docs) and the operator's config edit.
    b.sh(
        "mkdir -p /etc/systemd/system/convoy-control-plane.service.d /etc/systemd/system/convoy-agent.service.d && \
         printf '[Service]\\nProtectProc=default\\n' > /etc/systemd/system/convoy-control-plane.service.d/container.conf && \
         printf '[Service]\\nWatchdogSec=4s\\n' > /etc/systemd/system/convoy-agent.service.d/watchdog.conf && \
         printf '\\n[git]\\nurl = \"/srv/convoy-test/fleet\"\\npoll_interval = \"1s\"\\n' >> /etc/convoy/control-plane.toml && \
         systemctl daemon-reload",
    )
    .unwrap();

    // --- 3. init as root (as the README says), start: ready when start returns.
    let init = b
        .sh("convoy-control-plane init --data-dir /var/lib/convoy --fleet sdfleet --server-name 127.0.0.1")
        .unwrap();
    let admin = init
        .lines()
        .find_map(|l| l.strip_prefix("admin API token: "))
        .unwrap_or_else(|| panic!("no admin token in {init}"))
        .trim()
        .to_owned();
    b.sh(&format!("umask 077; echo {admin} > /root/admin-token"))
        .unwrap();
    let t0 = Instant::now();
    let cp = start_ready(&b, "convoy-control-plane");
    eprintln!("control plane ready in {:.2} s", t0.elapsed().as_secs_f64());
    // The first request succeeds: READY=1 came after the listeners.
    cli_json(&b, "hosts").unwrap();
    // StateDirectory= handed the root-made files to the daemon's user.
    assert_eq!(
        b.sh("stat -c %U /var/lib/convoy/ca-key.pem").unwrap(),
        "convoy\n"
    );
    assert_eq!(cp["NRestarts"], "0");
    assert_sandboxed(&b, "convoy-control-plane", true);

    // --- 4. enroll the agent, start it, the stack rolls out.
    let token = cli(
        &b,
        &format!("tokens create --host {HOST} --labels role=web --ttl 10m"),
    )
    .unwrap();
    // As the README says: as the agent's user, into the package's data dir.
    let out = b
        .sh(&format!(
            "setpriv --reuid convoy-agent --regid convoy-agent --init-groups convoy-agent enroll --data-dir /var/lib/convoy-agent --server 127.0.0.1:7443 --token {} 2>&1",
            token.trim()
        ))
        .unwrap();
    assert!(out.contains(&format!("enrolled as host {HOST}")), "{out}");
    let agent = start_ready(&b, "convoy-agent");
    assert_sandboxed(&b, "convoy-agent", false);
    wait_agent_connected(&b);
    assert_eq!(
        b.sh("stat -c %U /var/lib/convoy-agent/key.pem").unwrap(),
        "convoy-agent\n"
    );
    wait("the rollout to complete", Duration::from_secs(90), |last| {
        let r = cli_json(&b, "rollout").ok()?;
        *last = format!("commit {} status {}", r["commit"], r["status"]);
        (r["commit"] == commit.as_str() && status_of(&r).eq_ignore_ascii_case("completed"))
            .then_some(())
    });
    let ids = stack_ids(&prefix);
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert_eq!(ids[0].1, "running");
    eprintln!("rolled out at +{:.1} s", t_all.elapsed().as_secs_f64());

    // --- 5. systemctl restart: a new invocation, not counted as a failure.
    b.sh("systemctl restart convoy-agent").unwrap();
    let s = b
        .show(
            "convoy-agent",
            &["ActiveState", "SubState", "NRestarts", "InvocationID"],
        )
        .unwrap();
    assert!(active_running(&s), "{s:?}");
    assert_ne!(s["InvocationID"], agent["InvocationID"]);
    assert_eq!(s["NRestarts"], "0", "an operator restart is not a failure");
    wait_agent_connected(&b);
    assert_eq!(stack_ids(&prefix), ids, "restart touched the stack");

    // --- 6. watchdog: a stopped (wedged) agent is aborted and restarted.
    let before = b.show("convoy-agent", &["MainPID"]).unwrap()["MainPID"].clone();
    let t0 = Instant::now();
    b.sh("systemctl kill --kill-whom=main --signal=SIGSTOP convoy-agent")
        .unwrap();
    let s = b
        .wait_unit(
            "convoy-agent",
            "restarted by the watchdog",
            Duration::from_secs(40),
            |s| s["NRestarts"] == "1" && active_running(s) && s["MainPID"] != before,
        )
        .unwrap();
    eprintln!(
        "watchdog restart after {:.1} s (WatchdogSec=4s, RestartSec=5s): {s:?}",
        t0.elapsed().as_secs_f64()
    );
    let journal = b.journal("convoy-agent");
    assert!(
        journal.contains("Watchdog timeout") && journal.contains("watchdog"),
        "{journal}"
    );
    wait_agent_connected(&b);
    assert_eq!(stack_ids(&prefix), ids, "the watchdog touched the stack");

    // --- 7. systemctl stop: a clean exit, the stack keeps running.
    b.sh("systemctl stop convoy-agent").unwrap();
    let s = b
        .show("convoy-agent", &["ActiveState", "Result", "ExecMainStatus"])
        .unwrap();
    assert_eq!(
        (s["ActiveState"].as_str(), s["Result"].as_str()),
        ("inactive", "success"),
        "{s:?}\n{}",
        b.journal("convoy-agent")
    );
    assert_eq!(
        stack_ids(&prefix),
        ids,
        "stopping the agent stopped the stack"
    );
    start_ready(&b, "convoy-agent");
    wait_agent_connected(&b);

    // --- 8. upgrade in place: revision 2 over 1.
    let inv = |unit: &str| b.show(unit, &["InvocationID"]).unwrap()["InvocationID"].clone();
    let (cp_inv, agent_inv) = (inv("convoy-control-plane"), inv("convoy-agent"));
    // No terminal and no --force-conf*: a conffile prompt would fail dpkg.
    let out = b.sh("dpkg -i /srv/convoy-test/debs2/*.deb 2>&1").unwrap();
    assert_eq!(
        b.sh("dpkg-query -W -f='${Version}\\n' convoy-agent convoy-control-plane")
            .unwrap(),
        "0.1.0-2\n0.1.0-2\n",
        "{out}"
    );
    for (unit, old) in [
        ("convoy-control-plane", &cp_inv),
        ("convoy-agent", &agent_inv),
    ] {
        let s = b
            .wait_unit(
                unit,
                "restarted by the upgrade",
                Duration::from_secs(20),
                |s| active_running(s) && s["InvocationID"] != *old,
            )
            .unwrap();
        assert_eq!(s["NRestarts"], "0", "{unit}: {s:?}");
    }
    assert!(
        b.sh("cat /etc/convoy/control-plane.toml")
            .unwrap()
            .contains("url = \"/srv/convoy-test/fleet\""),
        "the edited conffile was replaced"
    );
    assert!(!out.contains("set it up"), "{out}");
    wait_agent_connected(&b);
    cli_json(&b, "hosts").unwrap();
    assert_eq!(stack_ids(&prefix), ids, "the upgrade touched the stack");

    // --- 9. remove keeps data and the stack; purge removes the data.
    b.sh("dpkg -r convoy-agent").unwrap();
    let s = b
        .show("convoy-agent", &["ActiveState", "LoadState"])
        .unwrap();
    assert_ne!(s["ActiveState"], "active", "{s:?}");
    assert_eq!(
        stack_ids(&prefix),
        ids,
        "removing the agent stopped the stack"
    );
    b.sh("test -f /var/lib/convoy-agent/key.pem && test -f /etc/convoy/agent.toml")
        .unwrap();
    b.sh("dpkg -P convoy-agent").unwrap();
    b.sh("test ! -e /var/lib/convoy-agent && test ! -e /etc/convoy/agent.toml && test -e /etc/convoy/control-plane.toml")
        .unwrap();
    b.sh("getent passwd convoy-agent").unwrap();
    eprintln!(
        "packages under systemd: boot {:.1} s, whole test {:.1} s",
        t_boot.as_secs_f64(),
        t_all.elapsed().as_secs_f64()
    );
}

/// A release directory as a tarball would carry it: binaries, install.sh,
/// layout.sh, the units, `config/` and the README.
fn release_dir(dir: &Path, bins: &Path) {
    std::fs::create_dir_all(dir.join("config")).unwrap();
    for b in ["convoy-agent", "convoy-control-plane", "convoy"] {
        std::fs::copy(bins.join(b), dir.join(b)).unwrap();
    }
    let root = repo_root();
    for f in [
        "install.sh",
        "layout.sh",
        "convoy-agent.service",
        "convoy-control-plane.service",
    ] {
        std::fs::copy(root.join("systemd").join(f), dir.join(f)).unwrap();
    }
    for f in ["agent.toml", "control-plane.toml"] {
        std::fs::copy(
            root.join("examples/config").join(f),
            dir.join("config").join(f),
        )
        .unwrap();
    }
    std::fs::copy(root.join("README.md"), dir.join("README.md")).unwrap();
}

#[test]
fn install_sh_installs_enrolls_upgrades_and_uninstalls_under_real_systemd() {
    let t_all = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path();
    std::fs::set_permissions(work, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let bins = binary("convoy-agent")
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    release_dir(&work.join("rel1"), &bins);
    // The next release: a changed agent binary (bytes appended to an ELF
    // file leave it runnable).
    release_dir(&work.join("rel2"), &bins);
    let mut agent2 = std::fs::read(work.join("rel2/convoy-agent")).unwrap();
    agent2.extend_from_slice(b"\0convoy-upgrade-2");
    std::fs::write(work.join("rel2/convoy-agent"), &agent2).unwrap();

    let n = nonce();
    let b = SystemdBox::boot(
        &format!("convoy-sd-inst-{n:04x}"),
        &[
            "-v".into(),
            "/var/run/docker.sock:/var/run/docker.sock".into(),
            "-v".into(),
            format!("{}:/srv/convoy-test:ro", work.display()),
        ],
    )
    .unwrap();
    b.docker_group().unwrap();
    // Container-only drop-in (see the module docs).
    b.sh(
        "mkdir -p /etc/systemd/system/convoy-control-plane.service.d && \
         printf '[Service]\\nProtectProc=default\\n' > /etc/systemd/system/convoy-control-plane.service.d/container.conf",
    )
    .unwrap();

    // --- 1. the control plane: init, enable, restart; ready on return.
    let out = b
        .sh("bash /srv/convoy-test/rel1/install.sh --control-plane --fleet isfleet --server-name 127.0.0.1 2>&1")
        .unwrap();
    let admin = out
        .lines()
        .find_map(|l| l.strip_prefix("admin API token: "))
        .unwrap_or_else(|| panic!("no admin token in {out}"))
        .trim()
        .to_owned();
    b.sh(&format!("umask 077; echo {admin} > /root/admin-token"))
        .unwrap();
    let s = b
        .show(
            "convoy-control-plane",
            &["Type", "ActiveState", "SubState", "UnitFileState"],
        )
        .unwrap();
    assert_eq!(
        (s["Type"].as_str(), s["UnitFileState"].as_str()),
        ("notify", "enabled"),
        "{s:?}"
    );
    assert!(active_running(&s), "{s:?}\n{out}");
    cli_json(&b, "hosts").unwrap();
    assert_eq!(
        b.sh("stat -c '%a %U' /var/lib/convoy /var/lib/convoy/ca-key.pem /usr/bin/convoy-control-plane /usr/lib/systemd/system/convoy-control-plane.service")
            .unwrap(),
        "700 convoy\n600 convoy\n755 root\n644 root\n"
    );

    // --- 2. the agent: enrolled by install.sh as root, handed to its user.
    let token = cli(&b, &format!("tokens create --host {HOST} --ttl 10m")).unwrap();
    let out = b
        .sh(&format!(
            "bash /srv/convoy-test/rel1/install.sh --agent --server 127.0.0.1:7443 --token {} 2>&1",
            token.trim()
        ))
        .unwrap();
    assert!(out.contains(&format!("enrolled as host {HOST}")), "{out}");
    let s = b
        .show("convoy-agent", &["ActiveState", "SubState", "InvocationID"])
        .unwrap();
    assert!(active_running(&s), "{s:?}\n{out}");
    wait_agent_connected(&b);
    assert_eq!(
        b.sh("stat -c %U /var/lib/convoy-agent/key.pem").unwrap(),
        "convoy-agent\n"
    );

    // --- 3. re-run: nothing to change, the services restarted and back.
    let inv1 = s["InvocationID"].clone();
    let out = b
        .sh("bash /srv/convoy-test/rel1/install.sh --agent --control-plane 2>&1")
        .unwrap();
    assert!(out.contains("already up to date"), "{out}");
    let s = b
        .show("convoy-agent", &["ActiveState", "SubState", "InvocationID"])
        .unwrap();
    assert!(active_running(&s) && s["InvocationID"] != inv1, "{s:?}");
    wait_agent_connected(&b);

    // --- 4. upgrade in place: the new binary runs.
    let inv2 = s["InvocationID"].clone();
    let out = b
        .sh("bash /srv/convoy-test/rel2/install.sh --agent 2>&1")
        .unwrap();
    assert!(out.contains("installed /usr/bin/convoy-agent"), "{out}");
    b.sh("cmp /usr/bin/convoy-agent /srv/convoy-test/rel2/convoy-agent")
        .unwrap();
    let s = b
        .show(
            "convoy-agent",
            &["ActiveState", "SubState", "InvocationID", "NRestarts"],
        )
        .unwrap();
    assert!(active_running(&s) && s["InvocationID"] != inv2, "{s:?}");
    assert_eq!(s["NRestarts"], "0");
    wait_agent_connected(&b);

    // --- 5. uninstall: units and binaries gone, data and config kept.
    b.sh("bash /srv/convoy-test/rel2/install.sh --uninstall 2>&1")
        .unwrap();
    for unit in ["convoy-agent", "convoy-control-plane"] {
        let s = b.show(unit, &["LoadState", "ActiveState"]).unwrap();
        assert_eq!(
            (s["LoadState"].as_str(), s["ActiveState"].as_str()),
            ("not-found", "inactive"),
            "{unit}: {s:?}"
        );
    }
    b.sh("test ! -e /usr/bin/convoy-agent && test -f /var/lib/convoy-agent/key.pem && test -f /var/lib/convoy/ca.pem && test -f /etc/convoy/agent.toml")
        .unwrap();
    eprintln!(
        "install.sh under systemd: whole test {:.1} s",
        t_all.elapsed().as_secs_f64()
    );
}
