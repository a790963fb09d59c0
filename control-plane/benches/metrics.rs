//! `/metrics` encoding cost by fleet size: prints a table (not a timed
//! test). `cargo bench -p convoy-control-plane --bench metrics`.
//!
//! Each host has host metrics (8 cores, 2 disks, 2 interfaces); one in ten
//! has two GPUs with two processes each. Figures: median of 5 encodes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::Instant;

use convoy_control_plane::telemetry::{ControlPlaneHealth, TelemetryStore, prometheus};
use convoy_shared::proto::v1::{
    DiskMetrics, GpuProcess, GpuSample, HostMetrics, NetMetrics, TelemetryBatch, TelemetrySample,
};

fn sample(i: usize) -> TelemetrySample {
    let gpus = if i.is_multiple_of(10) {
        (0..2)
            .map(|g| GpuSample {
                index: g,
                uuid: format!("GPU-{i}-{g}"),
                name: "NVIDIA A100-SXM4-80GB".into(),
                utilization_gpu_percent: Some(37),
                memory_used_bytes: Some(10 << 30),
                memory_total_bytes: Some(80 << 30),
                temperature_celsius: Some(55),
                power_draw_milliwatts: Some(123_456),
                processes: (0..2)
                    .map(|p| GpuProcess {
                        pid: 1000 + p,
                        used_memory_bytes: 1 << 30,
                        container_id: format!("c{p}"),
                        stack: "ollama".into(),
                        service: "ollama".into(),
                    })
                    .collect(),
                ..GpuSample::default()
            })
            .collect()
    } else {
        vec![]
    };
    TelemetrySample {
        at_unix_ms: 1_700_000_000_000,
        host: Some(HostMetrics {
            os: "Debian GNU/Linux 13".into(),
            kernel: "6.1.0".into(),
            docker_version: "26.1".into(),
            cpu_percent: 25.0,
            cpu_per_core_percent: vec![10.0; 8],
            memory_used_bytes: 4_000_000_000,
            memory_total_bytes: 16_000_000_000,
            disks: (0..2)
                .map(|d| DiskMetrics {
                    mount_point: format!("/mnt/{d}"),
                    device: format!("/dev/sd{d}"),
                    used_bytes: 100,
                    total_bytes: 1000,
                })
                .collect(),
            networks: (0..2)
                .map(|n| NetMetrics {
                    interface: format!("eth{n}"),
                    rx_bytes: 5,
                    tx_bytes: 7,
                })
                .collect(),
            ..HostMetrics::default()
        }),
        gpus,
        ..TelemetrySample::default()
    }
}

fn median_ms(mut f: impl FnMut() -> usize) -> (f64, usize) {
    let mut times = Vec::new();
    let mut bytes = 0;
    for _ in 0..5 {
        let t = Instant::now();
        bytes = f();
        times.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    (times[2], bytes)
}

fn main() {
    println!("| hosts | series bytes | /metrics encode (ms) |");
    println!("|---:|---:|---:|");
    for hosts in [1_000, 10_000] {
        let mut store = TelemetryStore::default();
        for i in 0..hosts {
            store.ingest_batch(
                &format!("host-{i:05}"),
                TelemetryBatch {
                    samples: vec![sample(i)],
                    dropped: 0,
                },
            );
        }
        let shared = Arc::new(Mutex::new(store));
        let (ms, bytes) = median_ms(|| {
            let r = prometheus::registry(shared.clone(), ControlPlaneHealth::default());
            prometheus::encode(&r).len()
        });
        println!("| {hosts} | {bytes} | {ms:.1} |");
    }
}
