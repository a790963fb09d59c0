//! End-to-end: the real `convoy-control-plane`, `convoy` and `convoy-agent`
//! binaries, the real Docker engine, a real git fleet repo and real TLS.
//!
//! Three agents — `vps` {role=edge, env=prod}, `laptop` {role=core,
//! env=staging}, `gpubox` {role=gpu, env=prod} — each with its own data dir,
//! against one control plane. The agents share this machine's Docker
//! engine, so each host gets its own stack (`<prefix>-<host>`, selected by
//! its role label) and no stack publishes ports. Waves: staging, then prod
//! with `max_parallel = 1`. Health: Docker healthchecks every second,
//! `deadline = 20s`, `min_healthy = 2s`.
//!
//! Random trials print their seed; replay with `CONVOY_E2E_SEED=<seed>`.
//! `CONVOY_E2E_PARALLEL` bounds how many fleets run at once (default 3).

#![allow(clippy::unwrap_used, clippy::expect_used)]
// Plain threads drive child processes here; no tokio runtime to block.
#![allow(clippy::disallowed_methods)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use convoy_tests::fleet::{
    Ctr, Fleet, HOSTS, Proxy, Rng, StackSpec, container_env, slot, wait_until,
};

const ROLLOUT: Duration = Duration::from_secs(120);

fn specs(msg: &str) -> BTreeMap<String, StackSpec> {
    HOSTS
        .iter()
        .map(|(h, _, _)| ((*h).to_owned(), StackSpec::new(msg)))
        .collect()
}

/// A fleet with all three agents up and healthy on the first commit.
fn boot(tag: &str, initial: &BTreeMap<String, StackSpec>, proxies: &[&str]) -> (Fleet, Vec<Proxy>) {
    let t0 = Instant::now();
    let mut f = Fleet::new(tag, initial).unwrap();
    let mut ps = Vec::new();
    let mut ports = BTreeMap::new();
    for h in proxies {
        let p = Proxy::start(f.agent_port).unwrap();
        ports.insert((*h).to_owned(), p.port);
        ps.push(p);
    }
    f.add_all_agents(&ports).unwrap();
    let head = f.head().unwrap();
    f.wait_rollout(&head, "Completed", ROLLOUT);
    let revs = f.expected_revisions().unwrap();
    for (h, _, _) in HOSTS {
        let n = initial[h].services;
        f.wait_stack(h, &revs[h].1, n, Duration::from_secs(30));
    }
    eprintln!("[{}] fleet up in {:?}", f.prefix, t0.elapsed());
    (f, ps)
}

fn keys(cs: &[Ctr]) -> Vec<(String, String, String, String)> {
    cs.iter().map(Ctr::key).collect()
}

fn history(r: &serde_json::Value) -> Vec<String> {
    r["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["what"].as_str().unwrap().to_owned())
        .collect()
}

fn count(h: &[String], prefix: &str) -> usize {
    h.iter().filter(|e| e.starts_with(prefix)).count()
}

/// Every host Healthy on its expected revision, once in history, one
/// completion; every stack's containers healthy on their stack revision.
fn assert_converged(f: &Fleet, r: &serde_json::Value, msg: &str) {
    let revs = f.expected_revisions().unwrap();
    let h = history(r);
    for (host, _, _) in HOSTS {
        assert_eq!(Fleet::phase(r, host), "Healthy", "{host}: {r:#}");
        assert_eq!(r["hosts"][host]["target_revision"], revs[host].0.as_str());
        assert_eq!(
            count(&h, &format!("host {host} healthy on")),
            1,
            "{host} healthy exactly once: {h:#?}"
        );
        let cs = f.wait_stack(host, &revs[host].1, 1, Duration::from_secs(20));
        assert_eq!(
            container_env(&cs[0].id, "MSG").unwrap().as_deref(),
            Some(msg),
            "{host} runs the new config"
        );
    }
    assert_eq!(count(&h, "completed"), 1, "{h:#?}");
}

#[test]
fn good_change_rolls_through_the_waves() {
    let _slot = slot();
    let t0 = Instant::now();
    let (f, _) = boot("1", &specs("v1"), &[]);
    f.write_repo(&specs("v2")).unwrap();
    let commit = f.commit("v2 everywhere").unwrap();
    // Watch the rollout: staging (laptop) first, then prod one at a time.
    let mut seen_order: Vec<String> = Vec::new();
    let final_view = wait_until("the v2 rollout to complete", ROLLOUT, |last| {
        let r = f.rollout().ok()?;
        if r["commit"] != commit.as_str() {
            *last = format!("still on {}", r["commit"]);
            return None;
        }
        *last = r["hosts"].to_string();
        let busy = |h: &str| matches!(Fleet::phase(&r, h).as_str(), "Sent" | "Delivered");
        let started = |h: &str| Fleet::phase(&r, h) != "Pending";
        if started("vps") || started("gpubox") {
            assert_eq!(
                Fleet::phase(&r, "laptop"),
                "Healthy",
                "prod started before staging was healthy: {r:#}"
            );
        }
        assert!(
            !(busy("vps") && busy("gpubox")),
            "max_parallel 1 violated: {r:#}"
        );
        for (h, _, _) in HOSTS {
            if Fleet::phase(&r, h) == "Healthy" && !seen_order.iter().any(|x| x == h) {
                seen_order.push(h.to_owned());
            }
        }
        (r["status"] == "Completed").then_some(r)
    });
    // Hosts in a wave go alphabetically: gpubox before vps.
    let h = history(&final_view);
    let pos = |host: &str| {
        h.iter()
            .position(|e| e.starts_with(&format!("host {host} healthy")))
            .unwrap()
    };
    assert!(
        pos("laptop") < pos("gpubox") && pos("gpubox") < pos("vps"),
        "{h:#?}"
    );
    eprintln!("[{}] healthy order as polled: {seen_order:?}", f.prefix);
    assert_converged(&f, &final_view, "v2");
    eprintln!("[{}] scenario 1 took {:?}", f.prefix, t0.elapsed());
}

#[test]
fn failing_gate_rolls_back_on_first_host_and_halts() {
    let _slot = slot();
    let t0 = Instant::now();
    let (f, _) = boot("2", &specs("v1"), &[]);
    let old = f.expected_revisions().unwrap();
    let before: BTreeMap<&str, Vec<Ctr>> = HOSTS
        .iter()
        .map(|(h, _, _)| (*h, f.stack_containers(h)))
        .collect();
    let mut bad = specs("bad");
    for s in bad.values_mut() {
        s.healthy = false;
    }
    f.write_repo(&bad).unwrap();
    let commit = f
        .commit("a release whose healthcheck always fails")
        .unwrap();
    let r = f.wait_rollout(&commit, "Halted", ROLLOUT);
    assert_eq!(r["status"]["Halted"]["host"], "laptop", "{r:#}");
    assert_eq!(Fleet::phase(&r, "laptop"), "Failed");
    for h in ["vps", "gpubox"] {
        assert_eq!(Fleet::phase(&r, h), "Pending", "{h} must not get it: {r:#}");
    }
    // The laptop's agent restored the old config by itself.
    let cs = f.wait_stack("laptop", &old["laptop"].1, 1, Duration::from_secs(30));
    assert_eq!(
        container_env(&cs[0].id, "MSG").unwrap().as_deref(),
        Some("v1")
    );
    let reports = f.reports("laptop").unwrap();
    assert!(
        reports.iter().any(|x| x["kind"] == "RolledBack"
            && x["stack"] == f.stack("laptop").as_str()
            && x["failing_service"] == "web"),
        "{reports:#?}"
    );
    // The other hosts never saw it: same containers, same revision.
    std::thread::sleep(Duration::from_secs(2));
    for h in ["vps", "gpubox"] {
        let now = f.stack_containers(h);
        assert_eq!(keys(&now), keys(&before[h]), "{h}'s containers changed");
        assert!(now.iter().all(Ctr::healthy));
    }
    // Alerts reached the local sink.
    wait_until(
        "host_rolled_back and rollout_halted alerts",
        Duration::from_secs(30),
        |last| {
            let kinds = f.sink.kinds();
            *last = format!("{kinds:?}");
            (kinds.iter().any(|k| k == "host_rolled_back")
                && kinds.iter().any(|k| k == "rollout_halted"))
            .then_some(())
        },
    );
    let got = f.sink.received();
    let rb = got
        .iter()
        .find(|a| a["kind"] == "host_rolled_back")
        .unwrap();
    assert!(rb.to_string().contains("laptop"), "{rb:#}");
    eprintln!("[{}] scenario 2 took {:?}", f.prefix, t0.elapsed());
}

#[test]
fn control_plane_kill9_mid_rollout_resumes() {
    let _slot = slot();
    let t0 = Instant::now();
    let (mut rng, seed) = Rng::from_env_or_time();
    eprintln!("control_plane_kill9_mid_rollout_resumes: CONVOY_E2E_SEED={seed}");
    let (mut f, _) = boot("3", &specs("v1"), &[]);
    for trial in 0..3 {
        let msg = format!("k{trial}");
        f.write_repo(&specs(&msg)).unwrap();
        let commit = f.commit(&msg).unwrap();
        let kills = 1 + rng.range(0, 2);
        for k in 0..kills {
            let at = rng.range(0, 9_000);
            std::thread::sleep(Duration::from_millis(at));
            let view = f
                .rollout()
                .map(|r| r["hosts"].to_string())
                .unwrap_or_default();
            eprintln!(
                "[{}] seed {seed} trial {trial} kill {k}: kill -9 at +{at} ms; hosts {view}",
                f.prefix
            );
            f.kill_cp();
            std::thread::sleep(Duration::from_millis(rng.range(0, 1_000)));
            f.start_cp().unwrap();
        }
        let r = f.wait_rollout(&commit, "Completed", ROLLOUT);
        let h = history(&r);
        assert_eq!(count(&h, "created"), 1, "seed {seed}: {h:#?}");
        assert_eq!(count(&h, "wave prod started"), 1, "seed {seed}: {h:#?}");
        assert_converged(&f, &r, &msg);
        // Exactly one rollout per commit.
        let all = f.api_get("/api/v1/rollouts").unwrap();
        assert_eq!(
            all.as_array()
                .unwrap()
                .iter()
                .filter(|x| x["commit"] == commit.as_str())
                .count(),
            1,
            "seed {seed}: one rollout per commit"
        );
    }
    eprintln!(
        "[{}] scenario 3 took {:?} (seed {seed})",
        f.prefix,
        t0.elapsed()
    );
}

#[test]
fn agent_kill9_mid_apply_converges_without_orphans() {
    let _slot = slot();
    let t0 = Instant::now();
    let (mut rng, seed) = Rng::from_env_or_time();
    eprintln!("agent_kill9_mid_apply_converges_without_orphans: CONVOY_E2E_SEED={seed}");
    let mut initial = specs("v1");
    initial.get_mut("laptop").unwrap().services = 3;
    let (mut f, _) = boot("4", &initial, &[]);
    for trial in 0..3 {
        let mut next = initial.clone();
        let msg = format!("a{trial}");
        next.get_mut("laptop").unwrap().msg = msg.clone();
        f.write_repo(&next).unwrap();
        let commit = f.commit(&msg).unwrap();
        let revs = f.expected_revisions().unwrap();
        // Wait until the laptop has the new state (delivered), then kill
        // its agent at a random point of the apply / health watch.
        wait_until(
            "the laptop to get the new state",
            Duration::from_secs(30),
            |last| {
                let r = f.rollout().ok()?;
                *last = r["hosts"]["laptop"].to_string();
                (r["commit"] == commit.as_str()
                    && matches!(Fleet::phase(&r, "laptop").as_str(), "Delivered" | "Healthy"))
                .then_some(())
            },
        );
        let at = rng.range(0, 2_500);
        std::thread::sleep(Duration::from_millis(at));
        let seen = f.stack_containers("laptop");
        eprintln!(
            "[{}] seed {seed} trial {trial}: kill -9 agent at +{at} ms; containers {:?}",
            f.prefix,
            seen.iter()
                .map(|c| format!(
                    "{}:{}:{}",
                    c.name,
                    c.state,
                    &c.revision[..8.min(c.revision.len())]
                ))
                .collect::<Vec<_>>()
        );
        f.kill_agent("laptop");
        std::thread::sleep(Duration::from_millis(300));
        f.start_agent("laptop").unwrap();
        let r = f.wait_rollout(&commit, "Completed", ROLLOUT);
        assert_eq!(
            count(&history(&r), "host laptop healthy on"),
            1,
            "seed {seed}"
        );
        let cs = f.wait_stack("laptop", &revs["laptop"].1, 3, Duration::from_secs(30));
        let mut services: Vec<&str> = cs.iter().map(|c| c.service.as_str()).collect();
        services.sort_unstable();
        assert_eq!(services, ["web", "web2", "web3"], "seed {seed}: {cs:#?}");
        for c in &cs {
            assert_eq!(
                container_env(&c.id, "MSG").unwrap().as_deref(),
                Some(msg.as_str())
            );
        }
        // Nothing else of ours anywhere (no orphan, no leftover old one).
        let all = convoy_tests::fleet::containers(&f.prefix).unwrap();
        assert_eq!(all.len(), 5, "seed {seed}: {all:#?}");
    }
    eprintln!(
        "[{}] scenario 4 took {:?} (seed {seed})",
        f.prefix,
        t0.elapsed()
    );
}

#[test]
fn partitioned_agent_keeps_running_and_reports_once() {
    let _slot = slot();
    let t0 = Instant::now();
    let (f, proxies) = boot("5", &specs("v1"), &["gpubox"]);
    let proxy = &proxies[0];
    let before = f.stack_containers("gpubox");

    // Phase A: cut, then a change: it must reach gpubox only after the heal.
    proxy.cut();
    f.wait_connected(&["gpubox"], false, Duration::from_secs(10));
    f.write_repo(&specs("v2")).unwrap();
    let commit = f.commit("v2 while gpubox is cut off").unwrap();
    let revs = f.expected_revisions().unwrap();
    wait_until("laptop healthy, gpubox waiting", ROLLOUT, |last| {
        let r = f.rollout().ok()?;
        *last = r["hosts"].to_string();
        (r["commit"] == commit.as_str()
            && Fleet::phase(&r, "laptop") == "Healthy"
            && Fleet::phase(&r, "gpubox") == "Sent")
            .then_some(())
    });
    let cut_until = Instant::now() + Duration::from_secs(4);
    while Instant::now() < cut_until {
        let now = f.stack_containers("gpubox");
        assert_eq!(
            keys(&now),
            keys(&before),
            "gpubox's stack changed during the partition"
        );
        assert!(now.iter().all(Ctr::healthy), "{now:?}");
        let r = f.rollout().unwrap();
        assert_eq!(Fleet::phase(&r, "vps"), "Pending", "{r:#}");
        std::thread::sleep(Duration::from_millis(300));
    }
    proxy.heal();
    let r = f.wait_rollout(&commit, "Completed", ROLLOUT);
    assert_converged(&f, &r, "v2");

    // Phase B: gpubox gets a change, is cut off right after delivery, and
    // applies it while partitioned: its reports wait in its outbox.
    let mut next = specs("v2");
    next.get_mut("gpubox").unwrap().msg = "v3".into();
    f.write_repo(&next).unwrap();
    let commit3 = f.commit("v3 on gpubox").unwrap();
    let revs3 = f.expected_revisions().unwrap();
    wait_until("gpubox to get v3", Duration::from_secs(30), |last| {
        let r = f.rollout().ok()?;
        *last = r["hosts"]["gpubox"].to_string();
        (r["commit"] == commit3.as_str() && Fleet::phase(&r, "gpubox") == "Delivered").then_some(())
    });
    proxy.cut();
    f.wait_stack("gpubox", &revs3["gpubox"].1, 1, Duration::from_secs(30));
    // Past min_healthy: the agent has made its healthy reports by now.
    std::thread::sleep(Duration::from_secs(4));
    let r = f.rollout().unwrap();
    assert_eq!(
        Fleet::phase(&r, "gpubox"),
        "Delivered",
        "a report crossed the cut: {r:#}"
    );
    let during = f.reports("gpubox").unwrap();
    assert!(
        !during
            .iter()
            .any(|x| x["host_revision"] == revs3["gpubox"].0.as_str()),
        "{during:#?}"
    );
    proxy.heal();
    let r = f.wait_rollout(&commit3, "Completed", ROLLOUT);
    assert_eq!(count(&history(&r), "host gpubox healthy on"), 1);
    // Every report about v2 and v3 arrived exactly once.
    let reports = f.reports("gpubox").unwrap();
    for (hrev, srev) in [&revs["gpubox"], &revs3["gpubox"]] {
        let n = |kind: &str, key: &str, val: &str| {
            reports
                .iter()
                .filter(|x| x["kind"] == kind && x[key] == val)
                .count()
        };
        assert_eq!(n("Healthy", "stack_revision", srev), 1, "{reports:#?}");
        assert_eq!(n("HostHealthy", "host_revision", hrev), 1, "{reports:#?}");
    }
    let mut ids: Vec<&str> = reports.iter().map(|x| x["id"].as_str().unwrap()).collect();
    let total = ids.len();
    ids.dedup();
    assert_eq!(ids.len(), total);
    let cs = f.wait_stack("gpubox", &revs3["gpubox"].1, 1, Duration::from_secs(10));
    assert_eq!(
        container_env(&cs[0].id, "MSG").unwrap().as_deref(),
        Some("v3")
    );
    eprintln!(
        "[{}] scenario 5 took {:?} ({} proxied connections)",
        f.prefix,
        t0.elapsed(),
        proxy.relayed()
    );
}

#[test]
fn revoked_host_is_cut_off_and_its_stacks_keep_running() {
    let _slot = slot();
    let t0 = Instant::now();
    let (f, _) = boot("6", &specs("v1"), &[]);
    let before = f.stack_containers("gpubox");
    let t = Instant::now();
    let o = f.cli(&["revoke", "gpubox"]).unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    f.wait_connected(&["gpubox"], false, Duration::from_secs(2));
    let cut = t.elapsed();
    eprintln!("[{}] revoked stream closed within {cut:?}", f.prefix);
    // It stays cut off (the agent keeps retrying and is refused) and the
    // others stay connected.
    std::thread::sleep(Duration::from_secs(4));
    let hosts = f.cli_json(&["hosts"]).unwrap();
    let g = hosts
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["name"] == "gpubox")
        .unwrap();
    assert_eq!(g["connected"], false);
    assert_eq!(g["revoked"], true);
    f.wait_connected(&["vps", "laptop"], true, Duration::from_secs(1));
    let log = std::fs::read_to_string(&f.cp_log).unwrap();
    assert!(
        log.contains("revoked certificate refused"),
        "no refusal logged"
    );
    let now = f.stack_containers("gpubox");
    assert_eq!(
        keys(&now),
        keys(&before),
        "the revoked host's stack changed"
    );
    assert!(now.iter().all(Ctr::healthy), "{now:?}");
    eprintln!("[{}] scenario 6 took {:?}", f.prefix, t0.elapsed());
}
