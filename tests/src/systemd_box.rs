//! A Debian system booted with systemd as PID 1 in a Docker container, for
//! running the real units under a real systemd: the root filesystem is made
//! with `mmdebstrap` (Debian's packages, no registry), cached as a tarball
//! under the target dir keyed by its package list, and imported with
//! `docker import`.
//!
//! The container is unprivileged; what systemd needs to boot and to start
//! hardened units in it (found by trying, see README "Operations"):
//! `--tmpfs /run --tmpfs /run/lock` (systemd wants them writable and
//! empty), `-v /sys/fs/cgroup:/sys/fs/cgroup:ro` (it finds its own
//! cgroup there), `--cap-add SYS_ADMIN` (the units' mount and user
//! namespaces: without it systemd silently skips the mount sandbox — a
//! ProtectSystem=strict service still sees `/` read-write — and
//! PrivateUsers= fails with 217/USER) and `container=docker` in the
//! environment. `--privileged` does not start here at all (the sandbox's
//! runc cannot apply every capability). `--network none`: everything
//! the tests do is on the container's loopback and the Docker socket.

// Plain threads drive `docker exec` here; no tokio runtime to block.
#![allow(clippy::disallowed_methods)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// Debian release of the rootfs (the machines' own, so its systemd is the
/// one operators of this kind run).
pub const SUITE: &str = "bookworm";

/// What the rootfs holds beyond `--variant=apt` (essential + apt): systemd
/// as init, and what our packages depend on, so `dpkg -i` can check the
/// Depends: fields with no network.
pub const PACKAGES: &[&str] = &[
    "systemd",
    "passwd",
    "init-system-helpers",
    "libssl3",
    "zlib1g",
];

/// The flags that boot systemd as PID 1 here (see the module docs).
pub const DOCKER_FLAGS: &[&str] = &[
    "--tmpfs",
    "/run",
    "--tmpfs",
    "/run/lock",
    "-v",
    "/sys/fs/cgroup:/sys/fs/cgroup:ro",
    "--cap-add",
    "SYS_ADMIN",
    "--network",
    "none",
];

/// The target dir (`target/`), from this test binary's path.
fn target_dir() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    // target/<profile>/deps/<test-binary>
    exe.ancestors()
        .nth(3)
        .map(Path::to_path_buf)
        .with_context(|| format!("no target dir above {}", exe.display()))
}

fn run(cmd: &mut Command) -> anyhow::Result<Output> {
    cmd.output().with_context(|| format!("running {cmd:?}"))
}

fn ok(cmd: &mut Command) -> anyhow::Result<String> {
    let o = run(cmd)?;
    if !o.status.success() {
        bail!(
            "{cmd:?} failed ({}): {}{}",
            o.status,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&o.stdout).into_owned())
}

/// The cache key: everything that goes into the rootfs.
fn key() -> anyhow::Result<String> {
    let spec = format!("{SUITE} --variant=apt --include={} v1", PACKAGES.join(","));
    let mut child = Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("running sha256sum")?;
    std::io::Write::write_all(
        &mut child.stdin.take().context("sha256sum stdin")?,
        spec.as_bytes(),
    )?;
    let out = child.wait_with_output()?;
    Ok(String::from_utf8_lossy(&out.stdout)[..16].to_owned())
}

/// `convoy-test/debian-systemd:<key>`, built at most once per package list:
/// reused from the engine, else imported from the cached tarball, else
/// made with mmdebstrap (about 30 s with a warm network, once).
pub fn image() -> anyhow::Result<String> {
    let key = key()?;
    let reference = format!("convoy-test/debian-systemd:{key}");
    let exists = |r: &str| -> anyhow::Result<bool> {
        let o = run(Command::new("docker").args(["image", "inspect", "--format", "{{.Id}}", r]))?;
        if o.status.success() {
            return Ok(true);
        }
        let err = String::from_utf8_lossy(&o.stderr);
        if err.contains("No such image") || err.contains("No such object") {
            return Ok(false);
        }
        bail!("DOCKER ENGINE UNREACHABLE: docker image inspect: {err}")
    };
    if exists(&reference)? {
        return Ok(reference);
    }
    let cache = target_dir()?.join("convoy-test-rootfs");
    std::fs::create_dir_all(&cache)?;
    // Test binaries run in parallel: one build, the others wait for it.
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(cache.join("lock"))?;
    lock.lock().context("locking the rootfs cache")?;
    if exists(&reference)? {
        return Ok(reference);
    }
    let tar = cache.join(format!("{SUITE}-{key}.tar"));
    if !tar.exists() {
        if Command::new("mmdebstrap")
            .arg("--version")
            .output()
            .is_err()
        {
            bail!("mmdebstrap is not installed: ./test.sh installs it (.ci/install-deps)");
        }
        let t0 = Instant::now();
        let partial = tar.with_extension("tar.partial");
        ok(Command::new("mmdebstrap")
            .args(["--quiet", "--variant=apt", "--format=tar"])
            .arg(format!("--include={}", PACKAGES.join(",")))
            .arg(SUITE)
            .arg(&partial))?;
        std::fs::rename(&partial, &tar)?;
        eprintln!(
            "mmdebstrap {SUITE} rootfs: {:.1} s, {} MiB (cached in {})",
            t0.elapsed().as_secs_f64(),
            std::fs::metadata(&tar)?.len() >> 20,
            tar.display()
        );
    }
    let t0 = Instant::now();
    ok(Command::new("docker")
        .args(["import", "--change", "CMD [\"/lib/systemd/systemd\"]"])
        .args(["--change", "ENV container=docker"])
        .arg(&tar)
        .arg(&reference))?;
    eprintln!("docker import: {:.1} s", t0.elapsed().as_secs_f64());
    Ok(reference)
}

/// One booted container; removed (with `docker rm -f`) when dropped.
pub struct SystemdBox {
    pub name: String,
}

impl SystemdBox {
    /// Boots a container named `name` with `extra` docker flags (bind
    /// mounts) and waits until systemd reports the system running.
    pub fn boot(name: &str, extra: &[String]) -> anyhow::Result<SystemdBox> {
        let image = image()?;
        let _ = Command::new("docker").args(["rm", "-f", name]).output();
        ok(Command::new("docker")
            .args(["run", "-d", "--name", name, "--hostname", name])
            .args(DOCKER_FLAGS)
            .args(extra)
            .arg(&image))?;
        let b = SystemdBox { name: name.into() };
        let t0 = Instant::now();
        loop {
            let o = b.exec(&["systemctl", "is-system-running"])?;
            let state = String::from_utf8_lossy(&o.stdout).trim().to_owned();
            if state == "running" || state == "degraded" {
                if state == "degraded" {
                    eprintln!(
                        "[{name}] degraded at boot: {}",
                        b.sh("systemctl --failed --no-legend")?
                    );
                }
                return Ok(b);
            }
            if t0.elapsed() > Duration::from_secs(60) {
                bail!(
                    "systemd did not boot in {name} (state {state:?}): {}",
                    String::from_utf8_lossy(
                        &run(Command::new("docker").args(["logs", name]))?.stderr
                    )
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// `docker exec` of one command; its output, whatever the status.
    pub fn exec(&self, args: &[&str]) -> anyhow::Result<Output> {
        run(Command::new("docker").args(["exec", &self.name]).args(args))
    }

    /// `sh -c SCRIPT` in the container; fails with its output unless it
    /// exits 0.
    pub fn sh(&self, script: &str) -> anyhow::Result<String> {
        let o = self.exec(&["sh", "-c", script])?;
        if !o.status.success() {
            bail!(
                "in {}: `{script}` failed ({}): {}{}",
                self.name,
                o.status,
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&o.stdout).into_owned())
    }

    /// `systemctl show -p ...` as a map.
    pub fn show(&self, unit: &str, props: &[&str]) -> anyhow::Result<BTreeMap<String, String>> {
        let out = self.sh(&format!("systemctl show -p {} {unit}", props.join(",")))?;
        Ok(out
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect())
    }

    /// Waits until `systemctl show` of `unit` satisfies `ok`; returns it.
    pub fn wait_unit(
        &self,
        unit: &str,
        what: &str,
        within: Duration,
        ok: impl Fn(&BTreeMap<String, String>) -> bool,
    ) -> anyhow::Result<BTreeMap<String, String>> {
        let props = [
            "ActiveState",
            "SubState",
            "Result",
            "NRestarts",
            "MainPID",
            "InvocationID",
            "ConditionResult",
        ];
        let t0 = Instant::now();
        loop {
            let s = self.show(unit, &props)?;
            if ok(&s) {
                return Ok(s);
            }
            if t0.elapsed() > within {
                bail!(
                    "{unit} in {}: not {what} after {within:?}: {s:?}\n{}",
                    self.name,
                    self.journal(unit)
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The unit's journal (for failure messages).
    pub fn journal(&self, unit: &str) -> String {
        self.sh(&format!("journalctl -u {unit} --no-pager -n 40"))
            .unwrap_or_else(|e| format!("(no journal: {e:#})"))
    }

    /// Creates the `docker` group with the GID of the host's Docker socket
    /// (as installing Docker would), so the agent's SupplementaryGroups=
    /// reaches the bind-mounted socket.
    pub fn docker_group(&self) -> anyhow::Result<()> {
        let gid = ok(Command::new("stat").args(["-c", "%g", "/var/run/docker.sock"]))?;
        self.sh(&format!("groupadd -g {} docker", gid.trim()))?;
        Ok(())
    }
}

impl Drop for SystemdBox {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for unit in ["convoy-control-plane", "convoy-agent"] {
                eprintln!("--- [{}] {unit}:\n{}", self.name, self.journal(unit));
            }
        }
        let _ = Command::new("docker")
            .args(["rm", "-f", "-v", &self.name])
            .output();
    }
}
