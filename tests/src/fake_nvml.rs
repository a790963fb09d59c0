//! Builds the fake `libnvidia-ml.so` (tests/fake-nvml/fake_nvml.c) with gcc
//! into a directory, so the real nvml-wrapper loading code can run against
//! it. Knobs are compiled in (`-D...`): a Rust test cannot safely set its own
//! environment (edition 2024 `set_var` is unsafe, and unsafe is forbidden).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

/// What the fake reports beyond its fixed two GPUs.
#[derive(Debug, Clone, Default)]
pub struct FakeNvml {
    /// Compute processes on GPU 0: `(pid, used bytes)`.
    pub procs: Vec<(u32, u64)>,
    /// One XID event `(gpu index, xid)`, delivered once on the event set.
    pub xid: Option<(u32, u64)>,
    /// Device count (0..=2); `None`: 2.
    pub gpus: Option<u32>,
}

/// Path of the C source.
pub fn source() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fake-nvml/fake_nvml.c")
}

impl FakeNvml {
    /// Compiles `dir/libnvidia-ml.so.1` and returns its path.
    pub fn build(&self, dir: &Path) -> anyhow::Result<PathBuf> {
        let out = dir.join("libnvidia-ml.so.1");
        let procs = self
            .procs
            .iter()
            .map(|(pid, bytes)| format!("{pid}:{bytes}"))
            .collect::<Vec<_>>()
            .join(",");
        let xid = self
            .xid
            .map(|(g, x)| format!("{g}:{x}"))
            .unwrap_or_default();
        let gpus = self.gpus.unwrap_or(2).to_string();
        let status = Command::new("gcc")
            .args(["-shared", "-fPIC", "-O2", "-Wall", "-Werror"])
            .arg(format!("-DFAKE_NVML_DEFAULT_PROCS=\"{procs}\""))
            .arg(format!("-DFAKE_NVML_DEFAULT_XID=\"{xid}\""))
            .arg(format!("-DFAKE_NVML_DEFAULT_GPUS=\"{gpus}\""))
            .arg("-o")
            .arg(&out)
            .arg(source())
            .status()
            .context("running gcc (is it installed?)")?;
        if !status.success() {
            bail!("gcc failed building the fake NVML: {status}");
        }
        Ok(out)
    }
}
