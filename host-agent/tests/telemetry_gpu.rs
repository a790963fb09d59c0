//! Telemetry against a fake libnvidia-ml.so (built here with gcc) and a REAL
//! container on the local Docker engine: the real nvml-wrapper loading code,
//! the real /proc/<pid>/cgroup of a running container, the real runtime
//! listing its compose labels. An unreachable engine fails these tests.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use convoy_host_agent::runtime::BollardRuntime;
use convoy_host_agent::telemetry::{
    ContainerDirectory, GpuConfig, ProcCgroups, Sampler, TelemetryBuffer, TelemetryConfig,
};
use convoy_shared::proto::v1::{GpuEventKind, GpuSample, TelemetrySample};
use convoy_tests::fake_nvml::FakeNvml;

const STACK: &str = "llm";
const SERVICE: &str = "vllm";

/// A running busybox container labelled like a compose service; removed on
/// drop (panic included).
struct Container {
    id: String,
    pid: u32,
}

impl Container {
    fn start(tag: &str) -> Self {
        let image = convoy_tests::images::busybox_image(tag).unwrap();
        let out = Command::new("docker")
            .args(["run", "-d", "--rm"])
            .args(["--label", &format!("com.docker.compose.project={STACK}")])
            .args(["--label", &format!("com.docker.compose.service={SERVICE}")])
            .args(["--label", "convoy.test=telemetry"])
            .arg(&image)
            .args(["sleep", "300"])
            .output()
            .expect("docker run");
        assert!(
            out.status.success(),
            "DOCKER ENGINE UNREACHABLE? docker run failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let out = Command::new("docker")
            .args(["inspect", "--format", "{{.State.Pid}}", &id])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let pid: u32 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
        assert!(pid > 0, "container {id} has no init pid");
        Self { id, pid }
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["rm", "-f", &self.id]).output();
    }
}

fn config(library: std::path::PathBuf) -> TelemetryConfig {
    TelemetryConfig {
        interval: Duration::from_millis(200),
        gpu: GpuConfig {
            library,
            event_wait: Duration::from_millis(100),
            retry_interval: Duration::from_secs(600),
            ..GpuConfig::default()
        },
        docker_version: "20.10.24".into(),
        ..TelemetryConfig::default()
    }
}

fn gpu(sample: &TelemetrySample, index: u32) -> &GpuSample {
    sample.gpus.iter().find(|g| g.index == index).unwrap()
}

#[test]
fn real_container_pid_maps_to_its_id() {
    let c = Container::start("telemetry");
    let mapped = ProcCgroups::default().container_of(c.pid);
    assert_eq!(mapped.as_deref(), Some(c.id.as_str()), "pid {}", c.pid);
    // Our own process is not in a Docker container of this engine.
    assert_eq!(
        ProcCgroups::default().container_of(std::process::id()),
        None
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fake_nvml_two_gpus_processes_and_xid() {
    let c = Container::start("telemetry");
    let runtime = BollardRuntime::connect().await.unwrap();
    let containers = ContainerDirectory::new();
    containers.refresh(&runtime).await.unwrap();
    assert_eq!(
        containers.labels_of(&c.id),
        Some((STACK.to_string(), SERVICE.to_string())),
        "the runtime lists the container's compose labels"
    );

    let dir = tempfile::tempdir().unwrap();
    let host_pid = std::process::id();
    let lib = FakeNvml {
        procs: vec![(c.pid, 1_234_567_890), (host_pid, 4096)],
        xid: Some((1, 79)),
        gpus: None,
    }
    .build(dir.path())
    .unwrap();

    let mut sampler = Sampler::with_containers(config(lib), containers);
    let first = tokio::task::spawn_blocking(move || {
        let s = sampler.sample_once();
        (sampler, s)
    })
    .await
    .unwrap();
    let (mut sampler, sample) = first;
    assert!(sampler.gpus_loaded());
    assert!(sample.host.is_some());
    assert_eq!(sample.gpus.len(), 2, "{:?}", sample.gpus);

    let g0 = gpu(&sample, 0);
    assert_eq!(g0.uuid, "GPU-00000000-1111-2222-3333-444444444444");
    assert_eq!(g0.name, "NVIDIA Fake A100");
    assert_eq!(g0.driver_version, "550.54.15");
    assert_eq!(g0.cuda_version, "12.4");
    assert_eq!(g0.utilization_gpu_percent, Some(37));
    assert_eq!(g0.utilization_memory_percent, Some(21));
    assert_eq!(g0.memory_total_bytes, Some(42_949_672_960));
    assert_eq!(g0.memory_used_bytes, Some(10_737_418_240));
    assert_eq!(g0.temperature_celsius, Some(55));
    assert_eq!(g0.power_draw_milliwatts, Some(123_456));
    assert_eq!(g0.power_limit_milliwatts, Some(400_000));
    assert_eq!(g0.sm_clock_mhz, Some(1410));
    assert_eq!(g0.memory_clock_mhz, Some(1215));
    assert_eq!(g0.fan_speed_percent, Some(40));
    assert_eq!(g0.pcie_link_generation, Some(4));
    assert_eq!(g0.pcie_link_width, Some(16));
    assert_eq!(g0.ecc_corrected, Some(3));
    assert_eq!(g0.ecc_uncorrected, Some(0));
    assert_eq!(g0.retired_pages, Some(1));
    assert_eq!(g0.throttle_reasons, Some(0x4));
    assert!(g0.missing_fields.is_empty(), "{:?}", g0.missing_fields);

    // Processes: the container's init pid → its ID → compose labels; our own
    // (host) pid has no container.
    assert_eq!(g0.processes.len(), 2, "{:?}", g0.processes);
    let p = g0.processes.iter().find(|p| p.pid == c.pid).unwrap();
    assert_eq!(p.used_memory_bytes, 1_234_567_890);
    assert_eq!(p.container_id, c.id);
    assert_eq!((p.stack.as_str(), p.service.as_str()), (STACK, SERVICE));
    let h = g0.processes.iter().find(|p| p.pid == host_pid).unwrap();
    assert_eq!(
        (
            h.used_memory_bytes,
            h.container_id.as_str(),
            h.stack.as_str()
        ),
        (4096, "", "")
    );

    let g1 = gpu(&sample, 1);
    assert_eq!(g1.uuid, "GPU-55555555-6666-7777-8888-999999999999");
    assert_eq!(g1.name, "NVIDIA Fake L4");
    assert_eq!(g1.fan_speed_percent, None);
    assert_eq!(g1.missing_fields, vec!["fan_speed_percent".to_string()]);
    assert_eq!(g1.temperature_celsius, Some(81));
    assert_eq!(g1.ecc_uncorrected, Some(2));
    assert_eq!(g1.retired_pages, Some(1));
    assert!(g1.processes.is_empty());
    // 23622320128 / 24159191040 = 97.8 % ≥ 95 %: memory nearly full, derived.
    let mut events = sample.gpu_events.clone();

    // The XID arrives from the event thread; collect until seen.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !events.iter().any(|e| e.kind == GpuEventKind::Xid as i32) {
        assert!(Instant::now() < deadline, "no XID event: {events:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
        let (s, sample) = tokio::task::spawn_blocking(move || {
            let s2 = sampler.sample_once();
            (sampler, s2)
        })
        .await
        .unwrap();
        sampler = s;
        assert_eq!(sample.gpus.len(), 2);
        events.extend(sample.gpu_events);
    }
    let xids: Vec<_> = events
        .iter()
        .filter(|e| e.kind == GpuEventKind::Xid as i32)
        .collect();
    assert_eq!(xids.len(), 1, "delivered once: {events:?}");
    assert_eq!((xids[0].gpu_index, xids[0].value), (1, 79));
    assert_eq!(xids[0].uuid, "GPU-55555555-6666-7777-8888-999999999999");
    let full: Vec<_> = events
        .iter()
        .filter(|e| e.kind == GpuEventKind::MemoryNearlyFull as i32)
        .collect();
    assert_eq!(full.len(), 1, "{events:?}");
    assert_eq!(full[0].gpu_index, 1);
    assert!(
        !events.iter().any(|e| e.kind == GpuEventKind::Lost as i32),
        "{events:?}"
    );
    drop(c);
}

#[test]
fn missing_library_means_no_gpus() {
    let mut sampler = Sampler::new(config("/nonexistent/dir/libnvidia-ml.so.1".into()));
    for _ in 0..3 {
        let s = sampler.sample_once();
        assert!(s.gpus.is_empty() && s.gpu_events.is_empty());
        assert!(s.host.is_some());
    }
    assert!(!sampler.gpus_loaded());
}

#[test]
fn a_library_that_is_not_nvml_means_no_gpus() {
    // A real shared object without NVML's symbols: nvmlInit_v2 fails to resolve.
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("empty.c");
    std::fs::write(&src, "int not_nvml(void) { return 0; }\n").unwrap();
    let lib = dir.path().join("libempty.so");
    let st = Command::new("gcc")
        .args(["-shared", "-fPIC", "-o"])
        .arg(&lib)
        .arg(&src)
        .status()
        .unwrap();
    assert!(st.success());
    let mut sampler = Sampler::new(config(lib));
    let s = sampler.sample_once();
    assert!(s.gpus.is_empty());
    assert!(!sampler.gpus_loaded());
}

#[test]
fn zero_devices_means_no_gpus() {
    let dir = tempfile::tempdir().unwrap();
    let lib = FakeNvml {
        gpus: Some(0),
        ..Default::default()
    }
    .build(dir.path())
    .unwrap();
    let mut sampler = Sampler::new(config(lib));
    assert!(sampler.sample_once().gpus.is_empty());
    assert!(!sampler.gpus_loaded());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_fills_the_buffer_and_drops_oldest() {
    let dir = tempfile::tempdir().unwrap();
    let lib = FakeNvml::default().build(dir.path()).unwrap();
    let buffer = Arc::new(TelemetryBuffer::new(2));
    let task = tokio::spawn(Sampler::new(config(lib)).run(buffer.clone()));
    let deadline = Instant::now() + Duration::from_secs(15);
    while buffer.dropped_total() < 2 {
        assert!(
            Instant::now() < deadline,
            "sampler produced too little: {}",
            buffer.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    task.abort();
    let batch = buffer.take_batch(10).unwrap();
    assert_eq!(batch.samples.len(), 2);
    assert!(batch.dropped >= 2);
    assert!(batch.samples[0].at_unix_ms <= batch.samples[1].at_unix_ms);
    assert!(
        batch
            .samples
            .iter()
            .all(|s| s.gpus.len() == 2 && s.host.is_some())
    );
}
