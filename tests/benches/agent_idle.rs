//! An agent idle as users run it: enrolled, connected, one healthy stack,
//! sampling telemetry every 10 s. Prints its RSS and CPU share over the
//! idle window, side by side with the control plane's.
//!
//! `cargo bench -p convoy-tests --bench agent_idle -- [SECONDS]` (default 180).
//! Goal (issue 6): agent RSS <= 10 MiB and CPU <= 0.1 % of one core.
#![allow(clippy::unwrap_used, clippy::expect_used)]
// A plain main thread, no runtime: blocking sleeps are the point.
#![allow(clippy::disallowed_methods)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use convoy_tests::fleet::{Fleet, HOSTS, StackSpec};

fn stat(pid: u32) -> (u64, u64, u64) {
    // utime + stime in clock ticks, then VmRSS and VmHWM in KiB.
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib = |key: &str| {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (ticks, kib("VmRSS:"), kib("VmHWM:"))
}

fn main() {
    let secs: u64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(180);
    let specs: BTreeMap<String, StackSpec> = HOSTS
        .iter()
        .map(|(h, _, _)| ((*h).to_owned(), StackSpec::new("idle")))
        .collect();
    let mut f = Fleet::new("idle", &specs).unwrap();
    f.add_all_agents(&BTreeMap::new()).unwrap();
    let head = f.head().unwrap();
    f.wait_rollout(&head, "Completed", Duration::from_secs(120));
    let agent = f.agents["laptop"]
        .proc
        .as_ref()
        .and_then(|p| p.pid())
        .unwrap();
    let cp = f.cp.as_ref().and_then(|p| p.pid()).unwrap();
    // Let start-up settle (first samples, image facts, journal writes).
    std::thread::sleep(Duration::from_secs(15));
    let hz = 100.0; // USER_HZ on Linux
    let (a0, _, _) = stat(agent);
    let (c0, _, _) = stat(cp);
    let t0 = Instant::now();
    eprintln!("idle for {secs} s (agent pid {agent}, control plane pid {cp}) ...");
    std::thread::sleep(Duration::from_secs(secs));
    let el = t0.elapsed().as_secs_f64();
    let (a1, a_rss, a_hwm) = stat(agent);
    let (c1, c_rss, c_hwm) = stat(cp);
    let share = |d: u64| (d as f64 / hz) / el * 100.0;
    println!();
    println!("idle {secs} s, 3 agents connected, 1 stack each, telemetry every 10 s");
    println!(
        "{:<22} {:>10} {:>10} {:>12}",
        "process", "RSS", "peak RSS", "CPU (1 core)"
    );
    println!(
        "{:<22} {:>7} KiB {:>7} KiB {:>11.3}%",
        "convoy-agent (laptop)",
        a_rss,
        a_hwm,
        share(a1 - a0)
    );
    println!(
        "{:<22} {:>7} KiB {:>7} KiB {:>11.3}%",
        "convoy-control-plane",
        c_rss,
        c_hwm,
        share(c1 - c0)
    );
    println!(
        "agent vs goal: RSS {:.2}x of 10 MiB, CPU {:.2}x of 0.1 %",
        a_rss as f64 / 10240.0,
        share(a1 - a0) / 0.1
    );
}
