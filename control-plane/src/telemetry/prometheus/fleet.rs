//! The fleet's families: per host (CPU, memory, disks, network) and per
//! GPU (utilisation, memory, clocks, power, ECC/XID, processes), one pass
//! over the store per family.

use std::fmt;

use convoy_shared::proto::v1::{GpuEventKind, GpuSample, HostMetrics, TelemetrySample};
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::MetricType;

use super::family::{NO_LABELS, Value, counter, family, gauge};
use crate::telemetry::event_kind_label;
use crate::telemetry::store::{HostTelemetry, TelemetryStore};

/// A host with its newest sample and its GPUs in index order, prepared
/// once per scrape.
struct HostView<'a> {
    name: &'a str,
    t: &'a HostTelemetry,
    sample: Option<&'a TelemetrySample>,
    gpus: Vec<&'a GpuSample>,
}

impl<'a> HostView<'a> {
    fn host(&self) -> Option<&'a HostMetrics> {
        self.sample.and_then(|s| s.host.as_ref())
    }
}

pub(super) fn encode_fleet(store: &TelemetryStore, enc: &mut DescriptorEncoder) -> fmt::Result {
    let hosts: Vec<HostView<'_>> = store
        .hosts()
        .map(|(name, t)| {
            let sample = t.latest();
            let mut gpus: Vec<&GpuSample> =
                sample.map(|s| s.gpus.iter().collect()).unwrap_or_default();
            gpus.sort_by_key(|g| g.index);
            HostView {
                name,
                t,
                sample,
                gpus,
            }
        })
        .collect();
    gauge(
        enc,
        "convoy_hosts_reporting",
        "Hosts with telemetry in the control plane.",
        |f| f.series(&NO_LABELS, hosts.len() as u64),
    )?;
    counter(
        enc,
        "convoy_host_telemetry_dropped_samples",
        "Samples the agent dropped (oldest first) while its stream was down.",
        |f| {
            for h in &hosts {
                f.series(&[("host", h.name)], h.t.dropped_samples)?;
            }
            Ok(())
        },
    )?;
    gauge(
        enc,
        "convoy_host_last_sample_timestamp_seconds",
        "Agent-side time of the host's newest sample (Unix seconds).",
        |f| {
            for h in &hosts {
                if let Some(s) = h.sample {
                    f.series(&[("host", h.name)], s.at_unix_ms as f64 / 1000.0)?;
                }
            }
            Ok(())
        },
    )?;
    encode_hosts(&hosts, enc)?;
    encode_gpus(&hosts, enc)
}

/// A family with one series per host that has host metrics.
fn per_host<'d>(
    enc: &mut DescriptorEncoder<'d>,
    hosts: &[HostView<'_>],
    kind: MetricType,
    name: &'static str,
    help: &'static str,
    value: impl Fn(&HostMetrics) -> Value,
) -> fmt::Result {
    family(enc, kind, name, help, |f| {
        for h in hosts {
            if let Some(m) = h.host() {
                f.series(&[("host", h.name)], value(m))?;
            }
        }
        Ok(())
    })
}

fn encode_hosts(hosts: &[HostView<'_>], enc: &mut DescriptorEncoder) -> fmt::Result {
    gauge(
        enc,
        "convoy_host_info",
        "Host facts as labels; always 1.",
        |f| {
            for h in hosts {
                if let Some(m) = h.host() {
                    let labels = [
                        ("host", h.name),
                        ("os", m.os.as_str()),
                        ("kernel", m.kernel.as_str()),
                        ("docker_version", m.docker_version.as_str()),
                    ];
                    f.series(&labels, 1u64)?;
                }
            }
            Ok(())
        },
    )?;
    per_host(
        enc,
        hosts,
        MetricType::Gauge,
        "convoy_host_cpu_usage_ratio",
        "CPU busy share over the last sampling interval, all cores (0..1).",
        |m| Value::Float(m.cpu_percent / 100.0),
    )?;
    gauge(
        enc,
        "convoy_host_cpu_core_usage_ratio",
        "CPU busy share over the last sampling interval, per core (0..1).",
        |f| {
            for h in hosts {
                let Some(m) = h.host() else { continue };
                for (i, pct) in m.cpu_per_core_percent.iter().enumerate() {
                    let cpu = i.to_string();
                    f.series(&[("host", h.name), ("cpu", cpu.as_str())], pct / 100.0)?;
                }
            }
            Ok(())
        },
    )?;
    type Field = fn(&HostMetrics) -> Value;
    let gauges: [(&'static str, &'static str, Field); 8] = [
        ("convoy_host_load1", "1-minute load average.", |m| {
            Value::Float(m.load1)
        }),
        ("convoy_host_load5", "5-minute load average.", |m| {
            Value::Float(m.load5)
        }),
        ("convoy_host_load15", "15-minute load average.", |m| {
            Value::Float(m.load15)
        }),
        ("convoy_host_memory_used_bytes", "Memory in use.", |m| {
            Value::Int(m.memory_used_bytes)
        }),
        ("convoy_host_memory_total_bytes", "Installed memory.", |m| {
            Value::Int(m.memory_total_bytes)
        }),
        ("convoy_host_swap_used_bytes", "Swap in use.", |m| {
            Value::Int(m.swap_used_bytes)
        }),
        ("convoy_host_swap_total_bytes", "Swap size.", |m| {
            Value::Int(m.swap_total_bytes)
        }),
        ("convoy_host_uptime_seconds", "Time since boot.", |m| {
            Value::Int(m.uptime_seconds)
        }),
    ];
    for (name, help, value) in gauges {
        per_host(enc, hosts, MetricType::Gauge, name, help, value)?;
    }
    type DiskField = fn(&convoy_shared::proto::v1::DiskMetrics) -> u64;
    let disks: [(&'static str, &'static str, DiskField); 2] = [
        (
            "convoy_host_filesystem_used_bytes",
            "Filesystem space in use.",
            |d| d.used_bytes,
        ),
        (
            "convoy_host_filesystem_size_bytes",
            "Filesystem size.",
            |d| d.total_bytes,
        ),
    ];
    for (name, help, value) in disks {
        gauge(enc, name, help, |f| {
            for h in hosts {
                let Some(m) = h.host() else { continue };
                for d in &m.disks {
                    let labels = [
                        ("host", h.name),
                        ("mountpoint", d.mount_point.as_str()),
                        ("device", d.device.as_str()),
                    ];
                    f.series(&labels, value(d))?;
                }
            }
            Ok(())
        })?;
    }
    type NetField = fn(&convoy_shared::proto::v1::NetMetrics) -> u64;
    let nets: [(&'static str, &'static str, NetField); 2] = [
        (
            "convoy_host_network_receive_bytes",
            "Bytes received on the interface.",
            |n| n.rx_bytes,
        ),
        (
            "convoy_host_network_transmit_bytes",
            "Bytes sent on the interface.",
            |n| n.tx_bytes,
        ),
    ];
    for (name, help, value) in nets {
        counter(enc, name, help, |f| {
            for h in hosts {
                let Some(m) = h.host() else { continue };
                for n in &m.networks {
                    f.series(
                        &[("host", h.name), ("device", n.interface.as_str())],
                        value(n),
                    )?;
                }
            }
            Ok(())
        })?;
    }
    Ok(())
}

/// The identity labels of a GPU series.
fn gpu_labels<'a>(host: &'a str, index: &'a str, g: &'a GpuSample) -> [(&'static str, &'a str); 4] {
    [
        ("host", host),
        ("gpu", index),
        ("uuid", g.uuid.as_str()),
        ("model", g.name.as_str()),
    ]
}

/// Calls `each` for every GPU of every host with its identity labels.
fn for_gpus<'h>(
    hosts: &'h [HostView<'h>],
    mut each: impl FnMut(&'h HostView<'h>, &'h GpuSample, [(&'static str, &str); 4]) -> fmt::Result,
) -> fmt::Result {
    for h in hosts {
        for g in &h.gpus {
            let index = g.index.to_string();
            each(h, g, gpu_labels(h.name, &index, g))?;
        }
    }
    Ok(())
}

fn encode_gpus(hosts: &[HostView<'_>], enc: &mut DescriptorEncoder) -> fmt::Result {
    gauge(
        enc,
        "convoy_gpu_info",
        "GPU facts as labels; always 1.",
        |f| {
            for_gpus(hosts, |_, g, gl| {
                let extra = [
                    ("driver_version", g.driver_version.as_str()),
                    ("cuda_version", g.cuda_version.as_str()),
                ];
                f.series(&(gl, extra), 1u64)
            })
        },
    )?;
    let pct = |v: Option<u32>| v.map(|v| Value::Float(f64::from(v) / 100.0));
    let num = |v: Option<u32>| v.map(|v| Value::Int(u64::from(v)));
    let big = |v: Option<u64>| v.map(Value::Int);
    let mhz = |v: Option<u32>| v.map(|v| Value::Int(u64::from(v) * 1_000_000));
    let mw = |v: Option<u32>| v.map(|v| Value::Float(f64::from(v) / 1000.0));
    type GpuField = Box<dyn Fn(&GpuSample) -> Option<Value>>;
    let gauges: [(&'static str, &'static str, GpuField); 14] = [
        (
            "convoy_gpu_utilization_ratio",
            "Share of time a kernel ran on the GPU (0..1).",
            Box::new(move |g| pct(g.utilization_gpu_percent)),
        ),
        (
            "convoy_gpu_memory_utilization_ratio",
            "Share of time device memory was read or written (0..1).",
            Box::new(move |g| pct(g.utilization_memory_percent)),
        ),
        (
            "convoy_gpu_memory_used_bytes",
            "GPU framebuffer memory in use.",
            Box::new(move |g| big(g.memory_used_bytes)),
        ),
        (
            "convoy_gpu_memory_total_bytes",
            "GPU framebuffer memory installed.",
            Box::new(move |g| big(g.memory_total_bytes)),
        ),
        (
            "convoy_gpu_temperature_celsius",
            "GPU die temperature.",
            Box::new(move |g| num(g.temperature_celsius)),
        ),
        (
            "convoy_gpu_power_watts",
            "GPU power draw.",
            Box::new(move |g| mw(g.power_draw_milliwatts)),
        ),
        (
            "convoy_gpu_power_limit_watts",
            "Enforced GPU power limit.",
            Box::new(move |g| mw(g.power_limit_milliwatts)),
        ),
        (
            "convoy_gpu_sm_clock_hertz",
            "SM clock.",
            Box::new(move |g| mhz(g.sm_clock_mhz)),
        ),
        (
            "convoy_gpu_memory_clock_hertz",
            "Memory clock.",
            Box::new(move |g| mhz(g.memory_clock_mhz)),
        ),
        (
            "convoy_gpu_fan_speed_ratio",
            "Intended fan speed (0..1).",
            Box::new(move |g| pct(g.fan_speed_percent)),
        ),
        (
            "convoy_gpu_pcie_link_generation",
            "Current PCIe link generation.",
            Box::new(move |g| num(g.pcie_link_generation)),
        ),
        (
            "convoy_gpu_pcie_link_width",
            "Current PCIe link width (lanes).",
            Box::new(move |g| num(g.pcie_link_width)),
        ),
        (
            "convoy_gpu_retired_pages",
            "Memory pages retired (single- plus double-bit ECC causes).",
            Box::new(move |g| num(g.retired_pages)),
        ),
        (
            "convoy_gpu_throttle_reasons",
            "Bitmask of NVML clock throttle reasons (0: not throttled).",
            Box::new(move |g| big(g.throttle_reasons)),
        ),
    ];
    for (name, help, value) in &gauges {
        gauge(enc, name, help, |f| {
            for_gpus(hosts, |_, g, gl| match value(g) {
                Some(v) => f.series(&gl, v),
                None => Ok(()),
            })
        })?;
    }
    counter(
        enc,
        "convoy_gpu_ecc_errors",
        "ECC memory errors over the GPU's lifetime (aggregate counter), by type.",
        |f| {
            for_gpus(hosts, |_, g, gl| {
                for (kind, value) in [
                    ("corrected", g.ecc_corrected),
                    ("uncorrected", g.ecc_uncorrected),
                ] {
                    if let Some(v) = value {
                        f.series(&(gl, [("type", kind)]), v)?;
                    }
                }
                Ok(())
            })
        },
    )?;
    gauge(
        enc,
        "convoy_gpu_missing_fields",
        "Fields NVML could not read for this GPU on the newest sample.",
        |f| {
            for_gpus(hosts, |_, g, gl| {
                f.series(&gl, g.missing_fields.len() as u64)
            })
        },
    )?;
    counter(
        enc,
        "convoy_gpu_xid_errors",
        "XID errors reported by the driver since the control plane started.",
        |f| {
            for_gpus(hosts, |h, g, gl| {
                f.series(&gl, h.t.xid.get(&g.uuid).map_or(0, |x| x.total))
            })
        },
    )?;
    gauge(
        enc,
        "convoy_gpu_last_xid",
        "Number of the most recent XID error (0: none seen).",
        |f| {
            for_gpus(hosts, |h, g, gl| {
                f.series(&gl, h.t.xid.get(&g.uuid).map_or(0, |x| x.last))
            })
        },
    )?;
    counter(
        enc,
        "convoy_gpu_health_events",
        "GPU health events since the control plane started, by kind.",
        |f| {
            for_gpus(hosts, |h, g, gl| {
                let counts = h.t.events.get(&g.uuid);
                for kind in [
                    GpuEventKind::Xid,
                    GpuEventKind::EccUncorrected,
                    GpuEventKind::OverTemperature,
                    GpuEventKind::Lost,
                    GpuEventKind::MemoryNearlyFull,
                ] {
                    let n = counts
                        .and_then(|c| c.get(&(kind as i32)))
                        .copied()
                        .unwrap_or(0);
                    f.series(&(gl, [("kind", event_kind_label(kind))]), n)?;
                }
                Ok(())
            })
        },
    )?;
    gauge(
        enc,
        "convoy_gpu_processes",
        "Compute processes running on the GPU.",
        |f| for_gpus(hosts, |_, g, gl| f.series(&gl, g.processes.len() as u64)),
    )?;
    gauge(
        enc,
        "convoy_gpu_process_memory_bytes",
        "GPU memory used by one compute process, with its container and compose stack/service (empty outside containers).",
        |f| {
            for_gpus(hosts, |_, g, gl| {
                for p in &g.processes {
                    let pid = p.pid.to_string();
                    let extra = [
                        ("pid", pid.as_str()),
                        ("container", p.container_id.as_str()),
                        ("stack", p.stack.as_str()),
                        ("service", p.service.as_str()),
                    ];
                    f.series(&(gl, extra), p.used_memory_bytes)?;
                }
                Ok(())
            })
        },
    )
}
