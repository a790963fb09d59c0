//! Helpers for Convoy's end-to-end tests: locating (and building) the real
//! binaries, building local test images (no registry here), temp fleet repos.

pub mod fake_nvml;
pub mod fleet;
pub mod images;
pub mod prom;
pub mod systemd_box;

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// Path of a workspace binary (`convoy`, `convoy-agent`,
/// `convoy-control-plane`). The first call runs `cargo build --bins` for the
/// workspace so the tests never exercise a stale binary: this crate does not
/// depend on the daemons, so `cargo test` alone would not rebuild them.
pub fn binary(name: &str) -> anyhow::Result<PathBuf> {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let dir = BUILT
        .get_or_init(|| build_bins().map_err(|e| format!("{e:#}")))
        .as_ref()
        .map_err(|e| anyhow::anyhow!("building the workspace binaries failed: {e}"))?;
    let path = dir.join(name);
    anyhow::ensure!(path.exists(), "{} was not built", path.display());
    Ok(path)
}

fn build_bins() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    // target/<profile>/deps/<test-binary> -> target/<profile>
    let profile_dir = exe
        .parent()
        .and_then(|p| p.parent())
        .ok_or_else(|| anyhow::anyhow!("cannot locate the target dir from {}", exe.display()))?
        .to_path_buf();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--workspace", "--bins", "--quiet"]);
    if profile_dir.file_name().is_some_and(|n| n == "release") {
        cmd.arg("--release");
    }
    if let Some(target) = profile_dir.parent() {
        cmd.arg("--target-dir").arg(target);
    }
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"));
    let status = cmd.status()?;
    anyhow::ensure!(status.success(), "cargo build --workspace --bins: {status}");
    Ok(profile_dir)
}
