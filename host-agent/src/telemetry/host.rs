//! Host figures through sysinfo, refreshed narrowly: CPU usage, memory,
//! mounted filesystems' space and interface counters only (never the process
//! table, which is the expensive part of sysinfo).

use convoy_shared::proto::v1::{DiskMetrics, HostMetrics, NetMetrics};
use sysinfo::{
    CpuRefreshKind, DiskRefreshKind, Disks, MemoryRefreshKind, Networks, RefreshKind, System,
};

/// Pseudo and container-layer filesystems that are not "disks".
const SKIPPED_FILESYSTEMS: &[&str] = &[
    "overlay",
    "tmpfs",
    "devtmpfs",
    "squashfs",
    "proc",
    "sysfs",
    "cgroup",
    "cgroup2",
    "nsfs",
    "ramfs",
    "autofs",
    "devpts",
    "mqueue",
    "fuse.lxcfs",
    "tracefs",
    "debugfs",
];

/// Keeps sysinfo's state between samples: CPU usage is a delta between two
/// refreshes, so the first sample after start reports the usage since boot.
pub struct HostSampler {
    system: System,
    disks: Disks,
    networks: Networks,
    docker_version: String,
    os: String,
    kernel: String,
}

impl std::fmt::Debug for HostSampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostSampler")
            .field("os", &self.os)
            .finish_non_exhaustive()
    }
}

impl HostSampler {
    pub fn new(docker_version: impl Into<String>) -> Self {
        let system = System::new_with_specifics(
            RefreshKind::nothing()
                .with_cpu(CpuRefreshKind::nothing().with_cpu_usage())
                .with_memory(MemoryRefreshKind::nothing().with_ram().with_swap()),
        );
        Self {
            system,
            disks: Disks::new_with_refreshed_list_specifics(
                DiskRefreshKind::nothing().with_storage(),
            ),
            networks: Networks::new_with_refreshed_list(),
            docker_version: docker_version.into(),
            os: System::long_os_version().unwrap_or_default(),
            kernel: System::kernel_version().unwrap_or_default(),
        }
    }

    pub fn set_docker_version(&mut self, version: impl Into<String>) {
        self.docker_version = version.into();
    }

    pub fn sample(&mut self) -> HostMetrics {
        self.system.refresh_cpu_usage();
        self.system
            .refresh_memory_specifics(MemoryRefreshKind::nothing().with_ram().with_swap());
        self.disks
            .refresh_specifics(true, DiskRefreshKind::nothing().with_storage());
        self.networks.refresh(true);
        let load = System::load_average();

        let mut disks: Vec<DiskMetrics> = Vec::with_capacity(self.disks.list().len());
        for disk in self.disks.list() {
            let fs = disk.file_system().to_string_lossy();
            if SKIPPED_FILESYSTEMS.contains(&fs.as_ref()) || disk.total_space() == 0 {
                continue;
            }
            let mount_point = disk.mount_point().to_string_lossy().into_owned();
            // Bind mounts of one filesystem show up repeatedly: keep the first.
            if disks.iter().any(|d| d.mount_point == mount_point) {
                continue;
            }
            disks.push(DiskMetrics {
                mount_point,
                device: disk.name().to_string_lossy().into_owned(),
                used_bytes: disk.total_space().saturating_sub(disk.available_space()),
                total_bytes: disk.total_space(),
            });
        }
        let mut networks: Vec<NetMetrics> = self
            .networks
            .iter()
            .map(|(name, data)| NetMetrics {
                interface: name.clone(),
                rx_bytes: data.total_received(),
                tx_bytes: data.total_transmitted(),
            })
            .collect();
        networks.sort_by(|a, b| a.interface.cmp(&b.interface));

        HostMetrics {
            cpu_percent: f64::from(self.system.global_cpu_usage()),
            cpu_per_core_percent: self
                .system
                .cpus()
                .iter()
                .map(|c| f64::from(c.cpu_usage()))
                .collect(),
            load1: load.one,
            load5: load.five,
            load15: load.fifteen,
            memory_used_bytes: self.system.used_memory(),
            memory_total_bytes: self.system.total_memory(),
            swap_used_bytes: self.system.used_swap(),
            swap_total_bytes: self.system.total_swap(),
            disks,
            networks,
            uptime_seconds: System::uptime(),
            os: self.os.clone(),
            kernel: self.kernel.clone(),
            docker_version: self.docker_version.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    #[allow(clippy::disallowed_methods)] // a plain thread: no runtime to block
    fn samples_this_machine() {
        let mut host = HostSampler::new("20.10.24");
        std::thread::sleep(sysinfo::MINIMUM_CPU_UPDATE_INTERVAL);
        let m = host.sample();
        let cores = std::thread::available_parallelism().unwrap().get();
        assert_eq!(m.cpu_per_core_percent.len(), cores);
        assert!((0.0..=100.0).contains(&m.cpu_percent), "{}", m.cpu_percent);
        assert!(m.memory_total_bytes > 0 && m.memory_used_bytes <= m.memory_total_bytes);
        assert!(m.uptime_seconds > 0);
        assert!(!m.kernel.is_empty());
        assert_eq!(m.docker_version, "20.10.24");
        assert!(
            m.networks.iter().any(|n| n.interface == "lo"),
            "{:?}",
            m.networks
        );
        for d in &m.disks {
            assert!(d.used_bytes <= d.total_bytes, "{d:?}");
        }
        // /proc/loadavg agrees with what we report (within drift).
        let loadavg = std::fs::read_to_string("/proc/loadavg").unwrap();
        let one: f64 = loadavg.split_whitespace().next().unwrap().parse().unwrap();
        assert!((one - m.load1).abs() < 2.0, "{one} vs {}", m.load1);
    }
}
