#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;

use convoy_shared::proto::v1::{
    DiskMetrics, GpuEvent, GpuProcess, HostMetrics, NetMetrics, TelemetryBatch,
};

use std::time::Duration;

use convoy_shared::proto::v1::{GpuEventKind, GpuSample, TelemetrySample};

use super::prometheus::format_value;
use super::*;

// The strict exposition-format parser is shared with the end-to-end
// tests (`convoy_tests::prom`).
use convoy_tests::prom::parse;

fn gpu0() -> GpuSample {
    GpuSample {
        index: 0,
        uuid: "GPU-aaaa".into(),
        name: "NVIDIA A100-SXM4-80GB".into(),
        driver_version: "550.54.15".into(),
        cuda_version: "12.4".into(),
        utilization_gpu_percent: Some(37),
        utilization_memory_percent: Some(21),
        memory_used_bytes: Some(10_737_418_240),
        memory_total_bytes: Some(85_899_345_920),
        temperature_celsius: Some(55),
        power_draw_milliwatts: Some(123_456),
        power_limit_milliwatts: Some(400_000),
        sm_clock_mhz: Some(1410),
        memory_clock_mhz: Some(1215),
        fan_speed_percent: Some(40),
        pcie_link_generation: Some(4),
        pcie_link_width: Some(16),
        ecc_corrected: Some(3),
        ecc_uncorrected: Some(1),
        retired_pages: Some(2),
        throttle_reasons: Some(4),
        processes: vec![
            GpuProcess {
                pid: 4242,
                used_memory_bytes: 8_589_934_592,
                container_id: "c0ffee".into(),
                stack: "llm".into(),
                service: "vllm".into(),
            },
            GpuProcess {
                pid: 77,
                used_memory_bytes: 1024,
                ..Default::default()
            },
        ],
        missing_fields: vec![],
    }
}

fn gpu1() -> GpuSample {
    GpuSample {
        index: 1,
        uuid: "GPU-bbbb".into(),
        // A hostile model name: quotes, backslash, newline.
        name: "Weird \"GPU\" \\ model\nline2".into(),
        temperature_celsius: Some(81),
        fan_speed_percent: None,
        missing_fields: vec!["fan_speed_percent".into(), "memory".into()],
        ..Default::default()
    }
}

fn host_metrics() -> HostMetrics {
    HostMetrics {
        cpu_percent: 25.0,
        cpu_per_core_percent: vec![10.0, 40.0],
        load1: 0.5,
        load5: 0.25,
        load15: 0.125,
        memory_used_bytes: 4_000_000_000,
        memory_total_bytes: 16_000_000_000,
        swap_used_bytes: 0,
        swap_total_bytes: 2_000_000_000,
        disks: vec![DiskMetrics {
            mount_point: "/".into(),
            device: "/dev/nvme0n1p2".into(),
            used_bytes: 100,
            total_bytes: 1000,
        }],
        networks: vec![NetMetrics {
            interface: "eth0".into(),
            rx_bytes: 5,
            tx_bytes: 7,
        }],
        uptime_seconds: 3600,
        os: "Debian GNU/Linux 13".into(),
        kernel: "6.1.0".into(),
        docker_version: "20.10.24".into(),
    }
}

fn sample(at: i64, gpus: Vec<GpuSample>, events: Vec<GpuEvent>) -> TelemetrySample {
    TelemetrySample {
        at_unix_ms: at,
        host: Some(host_metrics()),
        gpus,
        gpu_events: events,
    }
}

fn xid(uuid: &str, index: u32, value: u64) -> GpuEvent {
    GpuEvent {
        gpu_index: index,
        uuid: uuid.into(),
        kind: GpuEventKind::Xid as i32,
        value,
        ..Default::default()
    }
}

fn fleet() -> TelemetryStore {
    let mut store = TelemetryStore::default();
    store.ingest_batch(
        "gpu-box",
        TelemetryBatch {
            samples: vec![
                sample(1_000, vec![gpu0(), gpu1()], vec![xid("GPU-bbbb", 1, 13)]),
                sample(11_000, vec![gpu1(), gpu0()], vec![xid("GPU-bbbb", 1, 79)]),
            ],
            dropped: 3,
        },
    );
    store.ingest("cpu-box", sample(12_000, vec![], vec![]));
    store
}

#[test]
fn renders_host_metrics_for_every_host() {
    let exp = parse(&fleet().render_prometheus());
    assert_eq!(exp.value("convoy_hosts_reporting", &[]), 2.0);
    for host in ["gpu-box", "cpu-box"] {
        let h = [("host", host)];
        assert_eq!(exp.value("convoy_host_cpu_usage_ratio", &h), 0.25);
        assert_eq!(
            exp.value(
                "convoy_host_cpu_core_usage_ratio",
                &[("host", host), ("cpu", "1")]
            ),
            0.4
        );
        assert_eq!(exp.value("convoy_host_load15", &h), 0.125);
        assert_eq!(exp.value("convoy_host_memory_used_bytes", &h), 4e9);
        assert_eq!(exp.value("convoy_host_memory_total_bytes", &h), 16e9);
        assert_eq!(exp.value("convoy_host_swap_total_bytes", &h), 2e9);
        assert_eq!(exp.value("convoy_host_uptime_seconds", &h), 3600.0);
        assert_eq!(
            exp.value(
                "convoy_host_filesystem_size_bytes",
                &[
                    ("host", host),
                    ("mountpoint", "/"),
                    ("device", "/dev/nvme0n1p2")
                ]
            ),
            1000.0
        );
        assert_eq!(
            exp.value(
                "convoy_host_network_transmit_bytes_total",
                &[("host", host), ("device", "eth0")]
            ),
            7.0
        );
        assert_eq!(
            exp.value(
                "convoy_host_info",
                &[
                    ("host", host),
                    ("kernel", "6.1.0"),
                    ("docker_version", "20.10.24")
                ]
            ),
            1.0
        );
    }
    assert_eq!(
        exp.value(
            "convoy_host_last_sample_timestamp_seconds",
            &[("host", "gpu-box")]
        ),
        11.0
    );
    assert_eq!(
        exp.value(
            "convoy_host_telemetry_dropped_samples_total",
            &[("host", "gpu-box")]
        ),
        3.0
    );
    assert_eq!(
        exp.value(
            "convoy_host_telemetry_dropped_samples_total",
            &[("host", "cpu-box")]
        ),
        0.0
    );
    assert!(
        exp.find("convoy_gpu_info", &[("host", "cpu-box")])
            .is_empty()
    );
}

#[test]
fn renders_gpu_metrics_with_identity_labels() {
    let exp = parse(&fleet().render_prometheus());
    let g = [
        ("host", "gpu-box"),
        ("gpu", "0"),
        ("uuid", "GPU-aaaa"),
        ("model", "NVIDIA A100-SXM4-80GB"),
    ];
    let v = |name: &str| exp.value(name, &g);
    assert_eq!(v("convoy_gpu_utilization_ratio"), 0.37);
    assert_eq!(v("convoy_gpu_memory_utilization_ratio"), 0.21);
    assert_eq!(v("convoy_gpu_memory_used_bytes"), 10_737_418_240.0);
    assert_eq!(v("convoy_gpu_memory_total_bytes"), 85_899_345_920.0);
    assert_eq!(v("convoy_gpu_temperature_celsius"), 55.0);
    assert_eq!(v("convoy_gpu_power_watts"), 123.456);
    assert_eq!(v("convoy_gpu_power_limit_watts"), 400.0);
    assert_eq!(v("convoy_gpu_sm_clock_hertz"), 1.41e9);
    assert_eq!(v("convoy_gpu_memory_clock_hertz"), 1.215e9);
    assert_eq!(v("convoy_gpu_fan_speed_ratio"), 0.4);
    assert_eq!(v("convoy_gpu_pcie_link_generation"), 4.0);
    assert_eq!(v("convoy_gpu_pcie_link_width"), 16.0);
    assert_eq!(v("convoy_gpu_retired_pages"), 2.0);
    assert_eq!(v("convoy_gpu_throttle_reasons"), 4.0);
    assert_eq!(v("convoy_gpu_missing_fields"), 0.0);
    assert_eq!(v("convoy_gpu_processes"), 2.0);
    assert_eq!(v("convoy_gpu_xid_errors_total"), 0.0);
    let ecc = |t: &str| {
        let mut l = g.to_vec();
        l.push(("type", t));
        exp.value("convoy_gpu_ecc_errors_total", &l)
    };
    assert_eq!((ecc("corrected"), ecc("uncorrected")), (3.0, 1.0));
    assert_eq!(
        exp.value(
            "convoy_gpu_info",
            &[
                ("uuid", "GPU-aaaa"),
                ("driver_version", "550.54.15"),
                ("cuda_version", "12.4")
            ]
        ),
        1.0
    );
    let p = exp.find(
        "convoy_gpu_process_memory_bytes",
        &[("uuid", "GPU-aaaa"), ("pid", "4242")],
    );
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].value, 8_589_934_592.0);
    assert_eq!(
        (
            p[0].labels["container"].as_str(),
            p[0].labels["stack"].as_str(),
            p[0].labels["service"].as_str()
        ),
        ("c0ffee", "llm", "vllm")
    );
    let host_proc = exp.find("convoy_gpu_process_memory_bytes", &[("pid", "77")]);
    assert_eq!(
        (
            host_proc[0].labels["container"].as_str(),
            host_proc[0].value
        ),
        ("", 1024.0)
    );

    // GPU 1: missing fields are absent series, not zeros; XIDs accumulate.
    let g1 = [("host", "gpu-box"), ("uuid", "GPU-bbbb")];
    assert!(exp.find("convoy_gpu_fan_speed_ratio", &g1).is_empty());
    assert!(exp.find("convoy_gpu_memory_used_bytes", &g1).is_empty());
    assert_eq!(exp.value("convoy_gpu_missing_fields", &g1), 2.0);
    assert_eq!(exp.value("convoy_gpu_temperature_celsius", &g1), 81.0);
    assert_eq!(exp.value("convoy_gpu_xid_errors_total", &g1), 2.0);
    assert_eq!(exp.value("convoy_gpu_last_xid", &g1), 79.0);
    let mut xl = g1.to_vec();
    xl.push(("kind", "xid"));
    assert_eq!(exp.value("convoy_gpu_health_events_total", &xl), 2.0);
    xl[2] = ("kind", "lost");
    assert_eq!(exp.value("convoy_gpu_health_events_total", &xl), 0.0);
}

#[test]
fn help_and_type_for_every_family_and_counters_end_in_total() {
    let exp = parse(&fleet().render_prometheus());
    let names: BTreeSet<_> = exp.series.iter().map(|s| s.name.clone()).collect();
    for name in &names {
        assert!(
            exp.help.get(name).is_some_and(|h| !h.is_empty()),
            "HELP for {name}"
        );
        let kind = &exp.types[name];
        assert_eq!(
            kind == "counter",
            name.ends_with("_total"),
            "{name} is a {kind}"
        );
        assert!(name.starts_with("convoy_"), "{name}");
    }
    // Every metric is documented.
    let docs = include_str!("../../../docs/metrics.md");
    for name in &names {
        assert!(
            docs.contains(&format!("`{name}`")),
            "{name} missing from docs/metrics.md"
        );
    }
}

#[test]
fn label_values_are_escaped_and_round_trip() {
    let text = fleet().render_prometheus();
    assert!(
        text.contains(r#"model="Weird \"GPU\" \\ model\nline2""#),
        "escaped in the text: {}",
        text.lines()
            .find(|l| l.contains("Weird"))
            .unwrap_or_default()
    );
    let exp = parse(&text);
    let found = exp.find(
        "convoy_gpu_temperature_celsius",
        &[("model", "Weird \"GPU\" \\ model\nline2")],
    );
    assert_eq!(found.len(), 1, "the parser reads back the original value");
    assert_eq!(found[0].value, 81.0);
}

#[test]
fn empty_store_renders_a_valid_exposition() {
    let exp = parse(&TelemetryStore::default().render_prometheus());
    assert_eq!(exp.value("convoy_hosts_reporting", &[]), 0.0);
    assert_eq!(exp.series.len(), 1);
}

#[test]
fn special_values() {
    assert_eq!(format_value(f64::NAN), "NaN");
    assert_eq!(format_value(f64::INFINITY), "+Inf");
    assert_eq!(format_value(42_949_672_960u64), "42949672960");
    assert_eq!(format_value(0.37), "0.37");
}

#[test]
fn history_is_bounded_by_age() {
    let mut store = TelemetryStore::new(HistoryLimits {
        max_age: Duration::from_secs(60),
        max_entries: 1000,
    });
    for i in 0..100 {
        store.ingest("h", sample(i * 10_000, vec![], vec![]));
    }
    let h = store.host("h").unwrap();
    let ats: Vec<i64> = h.history().map(|s| s.at_unix_ms).collect();
    // Newest 990 s; keep ≥ 930 s.
    assert_eq!(ats, (93..100).map(|i| i * 10_000).collect::<Vec<_>>());
    assert_eq!(store.latest("h").unwrap().at_unix_ms, 990_000);
}

#[test]
fn history_is_bounded_by_count() {
    let mut store = TelemetryStore::new(HistoryLimits {
        max_age: Duration::from_secs(3600),
        max_entries: 5,
    });
    for i in 0..50 {
        store.ingest("h", sample(i, vec![], vec![]));
    }
    let ats: Vec<i64> = store
        .host("h")
        .unwrap()
        .history()
        .map(|s| s.at_unix_ms)
        .collect();
    assert_eq!(ats, vec![45, 46, 47, 48, 49]);
}

#[test]
fn default_history_is_one_hour() {
    let mut store = TelemetryStore::default();
    assert_eq!(store.limits().max_age, Duration::from_secs(3600));
    // Two hours at 10 s: exactly the last hour (361 samples, both ends) stays.
    for i in 0..=720 {
        store.ingest("h", sample(i * 10_000, vec![], vec![]));
    }
    let h = store.host("h").unwrap();
    assert_eq!(h.history().len(), 361);
    assert_eq!(h.history().next().unwrap().at_unix_ms, 3_600_000);
}

#[test]
fn out_of_order_samples_keep_time_order_and_latest() {
    let mut store = TelemetryStore::default();
    store.ingest("h", sample(30, vec![], vec![]));
    store.ingest("h", sample(10, vec![], vec![]));
    store.ingest("h", sample(20, vec![], vec![]));
    let ats: Vec<i64> = store
        .host("h")
        .unwrap()
        .history()
        .map(|s| s.at_unix_ms)
        .collect();
    assert_eq!(ats, vec![10, 20, 30]);
    assert_eq!(store.latest("h").unwrap().at_unix_ms, 30);
    assert!(store.remove_host("h"));
    assert!(store.latest("h").is_none());
}
