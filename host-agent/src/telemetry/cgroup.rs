//! PID → container mapping through `/proc/<pid>/cgroup`.
//!
//! Every line is `hierarchy-id:controllers:path` (cgroup v1: one line per
//! hierarchy; v2: the single `0::path` line). The container ID is the
//! 64-hex-digit segment of the path, in any of the forms the engines write:
//!
//! | driver                         | path segment                                  |
//! |--------------------------------|-----------------------------------------------|
//! | Docker, cgroupfs               | `/docker/<id>`                                |
//! | Docker, systemd                | `/system.slice/docker-<id>.scope`             |
//! | containerd (CRI), systemd      | `.../kubepods-...slice/cri-containerd-<id>.scope` |
//! | containerd, systemd, nested    | `.../kubepods-...slice:cri-containerd:<id>`   |
//! | kubelet, cgroupfs              | `/kubepods/besteffort/pod<uid>/<id>`          |
//! | CRI-O / Podman                 | `crio-<id>.scope` / `libpod-<id>.scope`       |
//!
//! When several IDs appear (Docker in Docker), the innermost (last) one wins:
//! that is the container the process runs in.

use std::path::{Path, PathBuf};

/// Length of a full container ID (hex SHA-256).
const ID_LEN: usize = 64;

/// Prefixes an engine puts before the ID in a systemd scope name.
const SCOPE_PREFIXES: &[&str] = &[
    "docker-",
    "cri-containerd-",
    "crio-",
    "libpod-",
    "containerd-",
];

/// The container ID in the content of a `/proc/<pid>/cgroup` file, if any.
pub fn container_id_from_cgroup(content: &str) -> Option<String> {
    let mut found: Option<&str> = None;
    for line in content.lines() {
        // hierarchy-id:controllers:path (the path itself may contain ':').
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(_), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        if let Some(id) = container_id_from_path(path) {
            found = Some(id);
        }
    }
    found.map(str::to_string)
}

/// The innermost container ID in one cgroup path.
pub fn container_id_from_path(path: &str) -> Option<&str> {
    let mut found = None;
    for segment in path.split('/') {
        // `kubepods-....slice:cri-containerd:<id>`: the ID is the last field.
        for piece in segment.split(':') {
            if let Some(id) = id_in_segment(piece) {
                found = Some(id);
            }
        }
    }
    found
}

fn id_in_segment(segment: &str) -> Option<&str> {
    let mut s = segment.strip_suffix(".scope").unwrap_or(segment);
    for prefix in SCOPE_PREFIXES {
        if let Some(rest) = s.strip_prefix(prefix) {
            s = rest;
            break;
        }
    }
    is_container_id(s).then_some(s)
}

fn is_container_id(s: &str) -> bool {
    s.len() == ID_LEN
        && s.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

/// Reads `<proc_root>/<pid>/cgroup`; the root is injectable for tests.
#[derive(Debug, Clone)]
pub struct ProcCgroups {
    root: PathBuf,
}

impl Default for ProcCgroups {
    fn default() -> Self {
        Self::new("/proc")
    }
}

impl ProcCgroups {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The container `pid` runs in: `None` for a host process, a process
    /// that is gone, or an unreadable file (another PID namespace).
    pub fn container_of(&self, pid: u32) -> Option<String> {
        let path = self.root.join(pid.to_string()).join("cgroup");
        match std::fs::read_to_string(&path) {
            Ok(content) => container_id_from_cgroup(&content),
            Err(e) => {
                tracing::debug!(pid, path = %path.display(), error = %e, "cannot read cgroup of GPU process");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    const ID: &str = "738100ca50d29b94f506c6cce474fa418b114f10b43b9b6cc0eade31a88cd6de";
    const ID2: &str = "4a3c9bd0a1e0cb0b6d5c28a76cbc4c2e1c8f1e8ad9c1dc9a0bb4b4b9f2c0e7a1";

    #[test]
    fn cgroup_v1_cgroupfs_driver() {
        // Docker 20.10, cgroupfs driver, cgroup v1 (captured on this machine).
        let content = format!(
            "12:hugetlb:/docker/{ID}\n11:memory:/docker/{ID}\n9:name=systemd:/docker/{ID}\n\
             1:cpu,cpuacct:/docker/{ID}\n0::/docker/{ID}\n"
        );
        assert_eq!(container_id_from_cgroup(&content).as_deref(), Some(ID));
    }

    #[test]
    fn cgroup_v1_systemd_driver() {
        let content = format!(
            "11:blkio:/system.slice/docker-{ID}.scope\n\
             10:memory:/system.slice/docker-{ID}.scope\n\
             1:name=systemd:/system.slice/docker-{ID}.scope\n"
        );
        assert_eq!(container_id_from_cgroup(&content).as_deref(), Some(ID));
    }

    #[test]
    fn cgroup_v2_systemd_driver() {
        // Ubuntu 22.04 / Docker 24 default.
        let content = format!("0::/system.slice/docker-{ID}.scope\n");
        assert_eq!(container_id_from_cgroup(&content).as_deref(), Some(ID));
    }

    #[test]
    fn cgroup_v2_cgroupfs_driver() {
        let content = format!("0::/docker/{ID}\n");
        assert_eq!(container_id_from_cgroup(&content).as_deref(), Some(ID));
    }

    #[test]
    fn containerd_cri_systemd_scope() {
        let content = format!(
            "0::/kubepods.slice/kubepods-burstable.slice/\
             kubepods-burstable-pod2c4b7e1f_5d3a_4c1e_9f0b_1a2b3c4d5e6f.slice/cri-containerd-{ID}.scope\n"
        );
        assert_eq!(container_id_from_cgroup(&content).as_deref(), Some(ID));
    }

    #[test]
    fn containerd_systemd_colon_form() {
        let content = format!(
            "0::/system.slice/containerd.service/\
             kubepods-besteffort-pod0f1e2d3c_4b5a_6978_8796_a5b4c3d2e1f0.slice:cri-containerd:{ID}\n"
        );
        assert_eq!(container_id_from_cgroup(&content).as_deref(), Some(ID));
    }

    #[test]
    fn kubepods_cgroupfs_v1() {
        let content = format!(
            "11:memory:/kubepods/besteffort/pod0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0/{ID}\n\
             4:pids:/kubepods/besteffort/pod0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0/{ID}\n"
        );
        assert_eq!(container_id_from_cgroup(&content).as_deref(), Some(ID));
    }

    #[test]
    fn crio_and_podman_scopes() {
        assert_eq!(
            container_id_from_cgroup(&format!("0::/machine.slice/libpod-{ID}.scope/container\n"))
                .as_deref(),
            Some(ID)
        );
        assert_eq!(
            container_id_from_cgroup(&format!("0::/kubepods.slice/crio-{ID}.scope\n")).as_deref(),
            Some(ID)
        );
    }

    #[test]
    fn docker_in_docker_takes_innermost() {
        let content = format!("0::/docker/{ID}/docker/{ID2}\n");
        assert_eq!(container_id_from_cgroup(&content).as_deref(), Some(ID2));
    }

    #[test]
    fn host_processes_have_no_container() {
        for content in [
            "0::/\n",
            "0::/init.scope\n",
            "0::/user.slice/user-1000.slice/session-3.scope\n",
            "12:memory:/user.slice\n1:name=systemd:/system.slice/docker.service\n",
            "4:memory:/process_api/a7cc051103552092fc52b5e1de0b6bcf\n",
            "",
            "garbage without colons\n",
        ] {
            assert_eq!(container_id_from_cgroup(content), None, "{content:?}");
        }
    }

    #[test]
    fn rejects_near_misses() {
        // 63 hex digits, uppercase, non-hex.
        let short = &ID[..63];
        assert_eq!(
            container_id_from_cgroup(&format!("0::/docker/{short}\n")),
            None
        );
        let upper = ID.to_uppercase();
        assert_eq!(
            container_id_from_cgroup(&format!("0::/docker/{upper}\n")),
            None
        );
        let bad = format!("{}g", &ID[..63]);
        assert_eq!(
            container_id_from_cgroup(&format!("0::/docker/{bad}\n")),
            None
        );
    }

    #[test]
    fn reads_from_injected_proc_root() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("4242")).unwrap();
        std::fs::write(
            dir.path().join("4242/cgroup"),
            format!("0::/system.slice/docker-{ID}.scope\n"),
        )
        .unwrap();
        let proc = ProcCgroups::new(dir.path());
        assert_eq!(proc.container_of(4242).as_deref(), Some(ID));
        assert_eq!(proc.container_of(4243), None);
    }
}
