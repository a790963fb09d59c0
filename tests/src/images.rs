//! Local test images. The engine here cannot pull, so tests build their own
//! from Debian's `busybox-static`: a rootfs holding `/bin/busybox` and a
//! symlink per applet (sh, httpd, nc, sleep, wget...), turned into an image
//! with `docker import`. Each tag writes its own `/etc/convoy-test-version`,
//! so `v1` and `v2` are different image IDs.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context, bail};

/// Repository of the test images.
pub const REPO: &str = "convoy-test/busybox";

/// Where Debian's busybox-static puts its binary.
const BUSYBOX: &str = "/bin/busybox";

/// Builds (once; later calls reuse it) `convoy-test/busybox:<tag>` and
/// returns its reference. Fails loudly if the engine is unreachable.
pub fn busybox_image(tag: &str) -> anyhow::Result<String> {
    let reference = format!("{REPO}:{tag}");
    if image_exists(&reference)? {
        return Ok(reference);
    }
    // Test binaries run in parallel processes: serialise builds so two
    // imports of one tag never retag the image under a running test.
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(std::env::temp_dir().join("convoy-test-images.lock"))
        .context("opening the image build lock")?;
    lock.lock().context("taking the image build lock")?;
    if image_exists(&reference)? {
        return Ok(reference);
    }
    let busybox = Path::new(BUSYBOX);
    if !busybox.exists() {
        bail!(
            "{BUSYBOX} is missing: install Debian's busybox-static (./test.sh installs it through .ci/install-deps)"
        );
    }
    let root = tempfile_dir()?;
    let bin = root.join("bin");
    std::fs::create_dir_all(&bin)?;
    std::fs::create_dir_all(root.join("etc"))?;
    std::fs::create_dir_all(root.join("tmp"))?;
    std::fs::create_dir_all(root.join("www"))?;
    std::fs::copy(busybox, bin.join("busybox")).context("copying busybox")?;
    let list = Command::new(busybox).arg("--list").output()?;
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        let applet = applet.trim();
        if !applet.is_empty() && applet != "busybox" {
            std::os::unix::fs::symlink("busybox", bin.join(applet))?;
        }
    }
    std::fs::write(root.join("etc/convoy-test-version"), format!("{tag}\n"))?;
    std::fs::write(root.join("www/health"), "ok\n")?;
    std::fs::write(
        root.join("etc/passwd"),
        "root:x:0:0:root:/:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n",
    )?;
    std::fs::write(root.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n")?;

    let tar = Command::new("tar")
        .arg("-C")
        .arg(&root)
        .args(["-cf", "-", "."])
        .output()
        .context("running tar")?;
    if !tar.status.success() {
        bail!("tar failed: {}", String::from_utf8_lossy(&tar.stderr));
    }
    let mut import = Command::new("docker")
        .args([
            "import",
            "--change",
            "CMD [\"sh\"]",
            "--change",
            "ENV PATH=/bin",
            "-",
            &reference,
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("running docker import (is the docker CLI installed?)")?;
    import
        .stdin
        .take()
        .context("docker import stdin")?
        .write_all(&tar.stdout)?;
    let out = import.wait_with_output()?;
    let _ = std::fs::remove_dir_all(&root);
    if !out.status.success() {
        bail!(
            "docker import {reference} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(reference)
}

/// The engine's image ID for a reference.
pub fn image_id(reference: &str) -> anyhow::Result<String> {
    let out = Command::new("docker")
        .args(["image", "inspect", "--format", "{{.Id}}", reference])
        .output()?;
    if !out.status.success() {
        bail!(
            "docker image inspect {reference}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn image_exists(reference: &str) -> anyhow::Result<bool> {
    let out = Command::new("docker")
        .args(["image", "inspect", "--format", "{{.Id}}", reference])
        .output()
        .context("running docker (is the docker CLI installed?)")?;
    if out.status.success() {
        return Ok(true);
    }
    let err = String::from_utf8_lossy(&out.stderr);
    if err.contains("No such image") || err.contains("No such object") {
        return Ok(false);
    }
    bail!("DOCKER ENGINE UNREACHABLE: docker image inspect failed: {err}")
}

fn tempfile_dir() -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!(
        "convoy-image-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_nanos()
    ));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
