//! Cost of one telemetry sample: wall time, CPU time of the sampling thread
//! (/proc/thread-self/schedstat, ns) and RSS, for
//!   - baseline: sysinfo refreshed directly with the same scope (CPU usage,
//!     RAM+swap, disks' space, networks), and `System::refresh_all()` for
//!     contrast;
//!   - the sampler, host only (NVML disabled);
//!   - the sampler, host + the fake 2-GPU libnvidia-ml.so (with one process
//!     mapped through /proc/<pid>/cgroup).
//!
//! No counting allocator: the workspace forbids `unsafe`, which a
//! `GlobalAlloc` needs; RSS growth over the run stands in for allocations.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use convoy_host_agent::telemetry::{GpuConfig, Sampler, TelemetryConfig};
use convoy_tests::fake_nvml::FakeNvml;
use sysinfo::{
    CpuRefreshKind, DiskRefreshKind, Disks, MemoryRefreshKind, Networks, RefreshKind, System,
};

const ITERATIONS: u32 = 300;

fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

struct Cost {
    name: &'static str,
    wall_us: f64,
    cpu_us: f64,
    rss_before_kib: u64,
    rss_after_kib: u64,
}

fn measure(name: &'static str, mut f: impl FnMut()) -> Cost {
    // Warm up (first refreshes list disks/interfaces, load libraries).
    for _ in 0..5 {
        f();
    }
    let rss_before_kib = rss_kib();
    let cpu0 = thread_cpu_ns();
    let t0 = Instant::now();
    for _ in 0..ITERATIONS {
        f();
    }
    let wall = t0.elapsed();
    let cpu = thread_cpu_ns().saturating_sub(cpu0);
    Cost {
        name,
        wall_us: wall.as_secs_f64() * 1e6 / f64::from(ITERATIONS),
        cpu_us: cpu as f64 / 1e3 / f64::from(ITERATIONS),
        rss_before_kib,
        rss_after_kib: rss_kib(),
    }
}

fn main() {
    let interval = Duration::from_secs(10);
    let mut costs = Vec::new();

    let mut system = System::new_with_specifics(
        RefreshKind::nothing()
            .with_cpu(CpuRefreshKind::nothing().with_cpu_usage())
            .with_memory(MemoryRefreshKind::everything()),
    );
    let mut disks = Disks::new_with_refreshed_list();
    let mut networks = Networks::new_with_refreshed_list();
    costs.push(measure("baseline: sysinfo direct, same scope", || {
        system.refresh_cpu_usage();
        system.refresh_memory();
        disks.refresh_specifics(true, DiskRefreshKind::nothing().with_storage());
        networks.refresh(true);
        std::hint::black_box(System::load_average());
    }));
    drop((system, disks, networks));

    let mut all = System::new_all();
    costs.push(measure("sysinfo System::refresh_all (contrast)", || {
        all.refresh_all();
    }));
    drop(all);

    let host_only = TelemetryConfig {
        gpus_enabled: false,
        docker_version: "20.10.24".into(),
        ..Default::default()
    };
    let mut sampler = Sampler::new(host_only);
    costs.push(measure("sampler: host only", || {
        std::hint::black_box(sampler.sample_once());
    }));
    drop(sampler);

    let dir = tempfile::tempdir().unwrap();
    let lib = FakeNvml {
        procs: vec![(std::process::id(), 1 << 30)],
        xid: None,
        gpus: None,
    }
    .build(dir.path())
    .unwrap();
    let with_gpu = TelemetryConfig {
        gpu: GpuConfig {
            library: lib,
            event_wait: Duration::from_secs(5),
            ..Default::default()
        },
        docker_version: "20.10.24".into(),
        ..Default::default()
    };
    let mut sampler = Sampler::new(with_gpu);
    assert_eq!(sampler.sample_once().gpus.len(), 2, "fake NVML loaded");
    costs.push(measure("sampler: host + 2 fake GPUs", || {
        std::hint::black_box(sampler.sample_once());
    }));

    let baseline = costs[0].cpu_us.max(f64::EPSILON);
    println!("\n{ITERATIONS} samples each; CPU = sampling thread's time on CPU (schedstat)\n");
    println!(
        "{:<40} {:>10} {:>10} {:>9} {:>12} {:>16}",
        "case", "wall µs", "cpu µs", "× base", "RSS KiB", "CPU share @10s"
    );
    for c in &costs {
        println!(
            "{:<40} {:>10.1} {:>10.1} {:>9.2} {:>5}→{:<6} {:>15.5}%",
            c.name,
            c.wall_us,
            c.cpu_us,
            c.cpu_us / baseline,
            c.rss_before_kib,
            c.rss_after_kib,
            c.cpu_us / interval.as_secs_f64() / 1e6 * 100.0,
        );
    }
    println!("\nprocess RSS at end: {} KiB", rss_kib());
}
