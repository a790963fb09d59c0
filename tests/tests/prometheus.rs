//! A real Prometheus (Debian's) scrapes a real fleet: the control plane and
//! three agents as processes (one with the fake NVML: two GPUs, one XID,
//! one compute process in a container), with the scrape config of
//! docs/metrics.md (HTTPS with the fleet CA, a read-scope bearer token) and
//! docs/prometheus/convoy-rules.yml loaded. Through Prometheus' HTTP query
//! API: host, GPU, rollout and alert-outbox series are there, the recording
//! rules evaluate, ConvoyGpuXid fires, a failed rollout fires
//! ConvoyRolloutFailed, and every query of the Grafana dashboard returns
//! data. Offline: promtool checks and unit-tests the rules, and every
//! series the rules and the dashboard name is documented in docs/metrics.md.

#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(clippy::disallowed_methods)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use convoy_tests::binary;
use convoy_tests::fake_nvml::FakeNvml;
use convoy_tests::fleet::{Fleet, HOSTS, StackSpec, free_port, wait_until};

fn docs() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs")
}

fn promtool(args: &[&str]) -> String {
    let o = Command::new("promtool")
        .args(args)
        .current_dir(docs().join("prometheus"))
        .output()
        .expect(
            "promtool is not installed: ./test.sh installs Debian's prometheus (.ci/install-deps)",
        );
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.status.success(), "promtool {args:?}: {text}");
    text
}

/// Every `convoy_...` series name in a PromQL expression.
fn series_names(expr: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let b = expr.as_bytes();
    let mut i = 0;
    while let Some(at) = expr[i..].find("convoy_") {
        let start = i + at;
        let ok_before = start == 0
            || !(b[start - 1].is_ascii_alphanumeric()
                || b[start - 1] == b'_'
                || b[start - 1] == b':');
        let mut end = start;
        while end < b.len() && (b[end].is_ascii_alphanumeric() || b[end] == b'_') {
            end += 1;
        }
        if ok_before {
            out.insert(expr[start..end].to_owned());
        }
        i = end;
    }
    out
}

/// The rules' expressions (the `expr:` values, folded `>` blocks included).
fn rule_exprs() -> Vec<String> {
    let text = std::fs::read_to_string(docs().join("prometheus/convoy-rules.yml")).unwrap();
    let mut out = Vec::new();
    let mut lines = text.lines().peekable();
    while let Some(l) = lines.next() {
        let Some(rest) = l.trim_start().strip_prefix("expr:") else {
            continue;
        };
        let rest = rest.trim();
        if rest == ">" {
            let indent = |s: &str| s.len() - s.trim_start().len();
            let base = indent(l);
            let mut e = String::new();
            while let Some(n) = lines.peek() {
                if n.trim().is_empty() || indent(n) <= base {
                    break;
                }
                e.push_str(n.trim());
                e.push(' ');
                lines.next();
            }
            out.push(e.trim().to_owned());
        } else {
            out.push(rest.to_owned());
        }
    }
    out
}

/// The Grafana dashboard's queries (every panel target's `expr`).
fn dashboard_exprs() -> Vec<String> {
    let d: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(docs().join("grafana/convoy-fleet.json")).unwrap(),
    )
    .unwrap();
    let mut out = Vec::new();
    for p in d["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().into_iter().flatten() {
            out.push(t["expr"].as_str().unwrap().to_owned());
        }
    }
    out
}

#[test]
fn rules_check_and_pass_their_unit_tests_and_use_documented_series() {
    let out = promtool(&["check", "rules", "convoy-rules.yml"]);
    assert!(out.contains("SUCCESS"), "{out}");
    let out = promtool(&["test", "rules", "convoy-rules.test.yml"]);
    assert!(out.contains("SUCCESS"), "{out}");

    let documented = std::fs::read_to_string(docs().join("metrics.md")).unwrap();
    let exprs: Vec<String> = rule_exprs().into_iter().chain(dashboard_exprs()).collect();
    assert!(exprs.len() > 20, "{exprs:?}");
    let mut seen = BTreeSet::new();
    for e in &exprs {
        for name in series_names(e) {
            assert!(
                documented.contains(&format!("`{name}`")),
                "{name} (in {e:?}) is not a series of docs/metrics.md"
            );
            seen.insert(name);
        }
    }
    // The dashboard covers hosts, rollouts, stacks and GPUs per container.
    let dash = dashboard_exprs().join("\n");
    for needed in [
        "convoy_host_info",
        "convoy_rollout_current_status",
        "convoy_rollouts",
        "convoy_gpu_process_memory_bytes",
        "convoy_gpu_utilization_ratio",
    ] {
        assert!(dash.contains(needed), "the dashboard lacks {needed}");
    }
    eprintln!(
        "{} expressions, {} distinct series: {seen:?}",
        exprs.len(),
        seen.len()
    );
}

struct Prometheus {
    child: Child,
    port: u16,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    /// `GET /api/v1/query`: the `data.result` array, or why not.
    fn try_query(&self, q: &str) -> Result<Vec<serde_json::Value>, String> {
        let o = Command::new("curl")
            .args(["-sS", "--fail-with-body", "--max-time", "10", "-G"])
            .arg(format!("http://127.0.0.1:{}/api/v1/query", self.port))
            .arg("--data-urlencode")
            .arg(format!("query={q}"))
            .output()
            .expect("curl is not installed: ./test.sh installs it (.ci/install-deps)");
        if !o.status.success() {
            return Err(format!(
                "curl: {}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            ));
        }
        let v: serde_json::Value = serde_json::from_slice(&o.stdout)
            .map_err(|e| format!("{e}: {}", String::from_utf8_lossy(&o.stdout)))?;
        if v["status"] != "success" {
            return Err(v.to_string());
        }
        Ok(v["data"]["result"].as_array().cloned().unwrap_or_default())
    }

    fn query(&self, q: &str) -> Vec<serde_json::Value> {
        self.try_query(q)
            .unwrap_or_else(|e| panic!("query {q}: {e}"))
    }

    /// Polls until the query returns something (Prometheus still starting
    /// counts as nothing yet).
    fn wait(&self, what: &str, q: &str, within: Duration) -> Vec<serde_json::Value> {
        wait_until(what, within, |last| match self.try_query(q) {
            Ok(r) if !r.is_empty() => Some(r),
            Ok(r) => {
                *last = format!("{q} = {r:?}");
                None
            }
            Err(e) => {
                *last = format!("{q}: {e}");
                None
            }
        })
    }
}

fn value(r: &serde_json::Value) -> f64 {
    r["value"][1].as_str().unwrap().parse().unwrap()
}

fn labels(r: &serde_json::Value) -> BTreeMap<String, String> {
    r["metric"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
        .collect()
}

#[test]
fn a_real_prometheus_scrapes_a_real_fleet() {
    let t_all = Instant::now();
    let _slot = convoy_tests::fleet::slot();
    let stacks: BTreeMap<String, StackSpec> = HOSTS
        .iter()
        .map(|(h, _, _)| (h.to_string(), StackSpec::new("v1")))
        .collect();
    let mut f = Fleet::new("prom", &stacks).unwrap();

    // A read-scope token for Prometheus (made offline: daemon stopped).
    f.kill_cp();
    let out = Command::new(binary("convoy-control-plane").unwrap())
        .args([
            "api-token",
            "create",
            "--name",
            "prometheus",
            "--scope",
            "read",
            "--data-dir",
        ])
        .arg(&f.cp_data)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let read_token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    f.start_cp().unwrap();

    // A GPU process inside a compose-labelled container on the host's
    // engine: the agent maps its PID to the container through
    // /proc/<pid>/cgroup and the container's labels.
    let gpu_ctr = format!("{}-llm-vllm-1", f.prefix);
    let o = Command::new("docker")
        .args(["run", "-d", "--name", &gpu_ctr])
        .args([
            "--label",
            &format!("com.docker.compose.project={}-llm", f.prefix),
        ])
        .args(["--label", "com.docker.compose.service=vllm"])
        .args([&f.image, "sleep", "600"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    let ctr_id = String::from_utf8(o.stdout).unwrap().trim().to_owned();
    struct Rm(String);
    impl Drop for Rm {
        fn drop(&mut self) {
            let _ = Command::new("docker").args(["rm", "-f", &self.0]).output();
        }
    }
    let _rm = Rm(ctr_id.clone());
    let pid = String::from_utf8(
        Command::new("docker")
            .args(["inspect", "--format", "{{.State.Pid}}", &ctr_id])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()
    .trim()
    .to_owned();
    let lib = FakeNvml {
        procs: vec![],
        xid: Some((1, 79)),
        gpus: None,
    }
    .build(f.tmp.path())
    .unwrap();
    for (host, _, _) in HOSTS {
        let env = if host == "gpubox" {
            vec![
                ("CONVOY_NVML_LIBRARY".to_owned(), lib.display().to_string()),
                ("FAKE_NVML_PROCS".to_owned(), format!("{pid}:2147483648")),
            ]
        } else {
            Vec::new()
        };
        f.add_agent_with_env(host, None, env).unwrap();
    }
    let head = f.head().unwrap();
    f.wait_rollout(&head, "Completed", Duration::from_secs(120));

    // Prometheus with the documented scrape config, made local.
    let dir = f.tmp.path().join("prometheus");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("convoy-token"), &read_token).unwrap();
    std::fs::copy(f.cp_data.join("ca.pem"), dir.join("convoy-ca.pem")).unwrap();
    let md = std::fs::read_to_string(docs().join("metrics.md")).unwrap();
    let block = md
        .split("```yaml\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("no yaml scrape config in docs/metrics.md");
    let mut scrape = block.to_owned();
    for (from, to) in [
        (
            "/etc/prometheus/convoy-token".to_owned(),
            dir.join("convoy-token").display().to_string(),
        ),
        (
            "/etc/prometheus/convoy-ca.pem".to_owned(),
            dir.join("convoy-ca.pem").display().to_string(),
        ),
        (
            "convoy-cp.example.com:8443".to_owned(),
            format!("127.0.0.1:{}", f.api_port),
        ),
        (
            "scrape_interval: 15s".to_owned(),
            "scrape_interval: 1s".to_owned(),
        ),
    ] {
        assert!(
            scrape.contains(&from),
            "the documented scrape config lost {from:?}"
        );
        scrape = scrape.replace(&from, &to);
    }
    let config = format!(
        "global:\n  evaluation_interval: 1s\nrule_files:\n  - {}\n{scrape}",
        docs().join("prometheus/convoy-rules.yml").display()
    );
    std::fs::write(dir.join("prometheus.yml"), &config).unwrap();
    let port = free_port().unwrap();
    let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
    let child = Command::new("prometheus")
        .arg(format!("--config.file={}", dir.join("prometheus.yml").display()))
        .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("prometheus is not installed: ./test.sh installs Debian's prometheus (.ci/install-deps)");
    let prom = Prometheus { child, port };
    let t_prom = Instant::now();

    // The scrape works: TLS against the fleet CA, the read token accepted.
    let up = prom.wait(
        "a successful scrape",
        "up{job=\"convoy\"} == 1",
        Duration::from_secs(30),
    );
    eprintln!(
        "first successful scrape {:.1} s after Prometheus started",
        t_prom.elapsed().as_secs_f64()
    );
    assert_eq!(
        labels(&up[0])["instance"],
        format!("127.0.0.1:{}", f.api_port)
    );

    // Hosts.
    let hosts = prom.wait(
        "three hosts",
        "count(convoy_host_info) == 3",
        Duration::from_secs(30),
    );
    assert_eq!(value(&hosts[0]), 3.0);
    for (host, _, _) in HOSTS {
        let m = prom.query(&format!(
            "convoy_host_memory_total_bytes{{host=\"{host}\"}}"
        ));
        assert!(m.len() == 1 && value(&m[0]) > 0.0, "{host}: {m:?}");
    }
    // GPUs of gpubox (the fake's values), and only there.
    let temp = prom.query("convoy_gpu_temperature_celsius");
    let temps: BTreeMap<String, f64> = temp
        .iter()
        .map(|r| {
            (
                format!("{}/{}", labels(r)["host"], labels(r)["gpu"]),
                value(r),
            )
        })
        .collect();
    assert_eq!(
        temps,
        BTreeMap::from([("gpubox/0".into(), 55.0), ("gpubox/1".into(), 81.0)])
    );
    let procs = prom.wait(
        "the GPU process mapped to its container",
        "convoy_gpu_process_memory_bytes{service=\"vllm\"}",
        Duration::from_secs(60),
    );
    let l = labels(&procs[0]);
    assert_eq!(
        (
            l["container"].as_str(),
            l["stack"].as_str(),
            l["pid"].as_str()
        ),
        (
            ctr_id.as_str(),
            format!("{}-llm", f.prefix).as_str(),
            pid.as_str()
        ),
        "{l:?}"
    );
    assert_eq!(value(&procs[0]), 2_147_483_648.0);
    // Rollouts and the alert outbox.
    let cur = prom.query("convoy_rollout_current_status == 1");
    assert_eq!(labels(&cur[0])["status"], "completed", "{cur:?}");
    let completed = prom.query("convoy_rollouts{status=\"completed\"}");
    assert!(value(&completed[0]) >= 1.0, "{completed:?}");
    assert_eq!(prom.query("convoy_alert_outbox_pending").len(), 1);
    // The XID: counted, an event, and our alert rule fires on it.
    prom.wait(
        "the XID on GPU 1",
        "convoy_gpu_last_xid{host=\"gpubox\",gpu=\"1\"} == 79",
        Duration::from_secs(60),
    );
    prom.wait(
        "the XID health event",
        "convoy_gpu_health_events_total{kind=\"xid\"} >= 1",
        Duration::from_secs(10),
    );
    let fired = prom.wait(
        "ConvoyGpuXid firing",
        "ALERTS{alertname=\"ConvoyGpuXid\",alertstate=\"firing\"}",
        Duration::from_secs(30),
    );
    assert_eq!(labels(&fired[0])["host"], "gpubox");
    assert_eq!(labels(&fired[0])["severity"], "critical");
    // Recording rules evaluate over the real series.
    // (every host's sample timestamp must have moved: agents sample every 10 s)
    prom.wait(
        "the recording rule to count every host",
        "convoy:hosts_reporting_recently:count == 3",
        Duration::from_secs(60),
    );
    assert_eq!(prom.query("convoy:gpu_memory_used:ratio").len(), 2);
    // The dashboard: every query runs and returns data.
    for e in dashboard_exprs() {
        let q = e.replace("$host", ".*").replace("$__rate_interval", "1m");
        let r = prom.wait(&format!("dashboard query {e}"), &q, Duration::from_secs(30));
        assert!(!r.is_empty(), "{e}");
    }

    // A commit whose health gate fails on the staging host: the rollout
    // halts, and ConvoyRolloutFailed fires.
    let mut bad = stacks.clone();
    bad.insert(
        "laptop".into(),
        StackSpec {
            msg: "v2".into(),
            healthy: false,
            services: 1,
        },
    );
    f.write_repo(&bad).unwrap();
    let commit = f.commit("a failing health gate").unwrap();
    f.wait_rollout(&commit, "Halted", Duration::from_secs(120));
    let fired = prom.wait(
        "ConvoyRolloutFailed firing",
        "ALERTS{alertname=\"ConvoyRolloutFailed\",alertstate=\"firing\"}",
        Duration::from_secs(30),
    );
    assert_eq!(labels(&fired[0])["status"], "halted");
    eprintln!(
        "real Prometheus over a real fleet: {:.1} s",
        t_all.elapsed().as_secs_f64()
    );
}
