//! Scale bench: N simulated agents in this process (the real stream client,
//! real TLS, real gRPC streams; a fake container runtime that reports every
//! desired state healthy at once) against a real `convoy-control-plane`
//! process following a local git fleet repo.
//!
//! Run (release build of the control plane first):
//!   cargo build --release -p convoy-control-plane --bin convoy-control-plane
//!   cargo bench -p convoy-tests --bench fleet_scale -- 1000 5000 10000
//!
//! Options: `--cp-bin PATH` (default: `$CARGO_TARGET_DIR/release/convoy-control-plane`
//! or `target/release/...`), `--idle-secs S` (default 30), `--state-dir DIR`
//! (where the control plane's data dir goes; default the system temp dir, i.e.
//! a real disk: sled flushes cost what they cost in production). Agent data
//! dirs go to /dev/shm.
//!
//! Not part of `cargo test` (bench target, `test = false`).

#![allow(clippy::unwrap_used, clippy::expect_used)]
// std::thread::sleep runs on the bench's main thread and the log reader
// thread, never on a tokio worker (the agents run on their own runtime).
#![allow(clippy::disallowed_methods)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, bail};
use convoy_host_agent::stream::{Agent, AgentConfig, AgentDir, AgentHooks};
use convoy_shared::proto::{DesiredState, Report, ReportKind};
use tokio::sync::watch;

const FLEET: &str = "bench";

// ------------------------------------------------------------ fake runtime

/// What one simulated agent saw.
#[derive(Default)]
struct Slot {
    /// Every desired state arrival: (when, revision).
    arrivals: Vec<(Instant, String)>,
    /// Reports not yet acked.
    pending: Vec<Report>,
    desired: String,
}

/// Shared by all agents: one slot per agent.
struct Recorder {
    slots: Vec<Mutex<Slot>>,
    /// Agents that have received at least one desired state since `epoch`
    /// was last bumped.
    seen: AtomicUsize,
}

impl Recorder {
    fn slot(&self, i: usize) -> std::sync::MutexGuard<'_, Slot> {
        self.slots[i].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How many agents have an arrival after `t` (with revision `rev`, if given).
    fn count_since(&self, t: Instant, rev: Option<&str>) -> usize {
        (0..self.slots.len())
            .filter(|&i| {
                self.slot(i)
                    .arrivals
                    .iter()
                    .any(|(at, r)| *at >= t && rev.is_none_or(|x| x == r))
            })
            .count()
    }

    /// First arrival after `t` per agent (with revision `rev`, if given).
    fn first_since(&self, t: Instant, rev: Option<&str>) -> Vec<Option<Instant>> {
        (0..self.slots.len())
            .map(|i| {
                self.slot(i)
                    .arrivals
                    .iter()
                    .find(|(at, r)| *at >= t && rev.is_none_or(|x| x == r))
                    .map(|(at, _)| *at)
            })
            .collect()
    }
}

/// The fake container runtime: records each desired state and reports it
/// healthy at once.
struct SimHooks {
    i: usize,
    host: String,
    rec: Arc<Recorder>,
}

#[async_trait::async_trait]
impl AgentHooks for SimHooks {
    async fn on_desired(&self, state: DesiredState) {
        let now = Instant::now();
        let mut s = self.rec.slot(self.i);
        if s.arrivals.is_empty() {
            self.rec.seen.fetch_add(1, Ordering::Relaxed);
        }
        s.arrivals.push((now, state.revision.clone()));
        s.desired = state.revision.clone();
        let n = s.arrivals.len();
        s.pending.push(Report {
            id: format!("{}-{}-{n}", self.host, &state.revision),
            host_revision: state.revision.clone(),
            kind: ReportKind::HostHealthy as i32,
            message: "simulated: healthy".into(),
            rollout_id: state.rollout_id.clone(),
            at_unix_ms: unix_ms(),
            ..Report::default()
        });
    }

    fn pending_reports(&self) -> Vec<Report> {
        self.rec.slot(self.i).pending.clone()
    }

    fn ack(&self, ids: &[String]) {
        self.rec
            .slot(self.i)
            .pending
            .retain(|r| !ids.contains(&r.id));
    }

    fn desired_revision(&self) -> String {
        self.rec.slot(self.i).desired.clone()
    }
}

fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

// ------------------------------------------------------- control plane

/// Events seen on the control plane's log (stderr, text format).
#[derive(Default)]
struct CpLog {
    accepted: Vec<(Instant, String)>,
    completed: Vec<(Instant, String)>,
    running: Option<Instant>,
    lines: u64,
}

struct Cp {
    child: Child,
    log: Arc<Mutex<CpLog>>,
}

impl Cp {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn start(bin: &Path, data: &Path, config: &Path, log_path: &Path) -> Result<Cp> {
        // The workspace forbids unsafe code, so no setrlimit here: a shell
        // raises the fd limit and execs the daemon (same pid).
        let mut child = Command::new("sh")
            .arg("-c")
            .arg("ulimit -n \"$(ulimit -Hn)\" && exec \"$0\" \"$@\"")
            .arg(bin)
            .arg("run")
            .arg("--data-dir")
            .arg(data)
            .arg("--config")
            .arg(config)
            .env("CONVOY_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting the control plane")?;
        let stderr = child.stderr.take().context("no stderr")?;
        let log = Arc::new(Mutex::new(CpLog::default()));
        let l2 = log.clone();
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log_path)?;
        std::thread::spawn(move || {
            let rd = BufReader::new(stderr);
            for line in rd.lines() {
                let Ok(line) = line else { break };
                let now = Instant::now();
                let mut g = l2.lock().unwrap_or_else(|e| e.into_inner());
                g.lines += 1;
                if line.contains("commit accepted") {
                    g.accepted.push((now, field(&line, "rollout")));
                } else if line.contains("RolloutCompleted") {
                    g.completed.push((now, field(&line, "rollout")));
                } else if line.contains("control plane running") {
                    g.running = Some(now);
                }
                drop(g);
                let _ = writeln!(file, "{line}");
            }
        });
        Ok(Cp { child, log })
    }

    fn wait_log(
        &self,
        what: &str,
        timeout: Duration,
        f: impl Fn(&CpLog) -> Option<Instant>,
    ) -> Result<Instant> {
        let end = Instant::now() + timeout;
        loop {
            if let Some(t) = f(&self.log.lock().unwrap_or_else(|e| e.into_inner())) {
                return Ok(t);
            }
            if Instant::now() > end {
                bail!("timed out waiting for {what}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn stop(&mut self) -> Result<Duration> {
        let t = Instant::now();
        let st = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid().to_string())
            .status()?;
        if !st.success() {
            bail!("kill -TERM failed");
        }
        self.child.wait()?;
        Ok(t.elapsed())
    }
}

/// `rollout=r00000002` → `r00000002` (tracing's text format).
fn field(line: &str, name: &str) -> String {
    let key = format!("{name}=");
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key.as_str()))
        .unwrap_or("")
        .to_owned()
}

/// (RSS bytes, utime+stime ticks).
fn proc_stats(pid: u32) -> Result<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let rss_kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("VmRSS")?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the parenthesised command name.
    let rest = stat.rsplit_once(')').context("stat")?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state); utime = field 14, stime = field 15.
    let utime: u64 = f.get(11).and_then(|v| v.parse().ok()).context("utime")?;
    let stime: u64 = f.get(12).and_then(|v| v.parse().ok()).context("stime")?;
    Ok((rss_kb * 1024, utime + stime))
}

fn clk_tck() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

// --------------------------------------------------------------- set-up

fn sh(dir: &Path, args: &[&str]) -> Result<String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .current_dir(dir)
        .output()
        .with_context(|| format!("running {args:?}"))?;
    if !out.status.success() {
        bail!(
            "{args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn host_name(i: usize) -> String {
    format!("sim{i:05}")
}

fn write_fleet(repo: &Path, n: usize, version: u32) -> Result<()> {
    let mut t = format!("[fleet]\nname = \"{FLEET}\"\n\n");
    for i in 0..n {
        t.push_str(&format!(
            "[hosts.{}]\nlabels = {{ role = \"sim\" }}\n",
            host_name(i)
        ));
    }
    t.push_str("\n[stacks.web]\npath = \"stacks/web\"\nhosts = \"role=sim\"\n");
    std::fs::write(repo.join("fleet.toml"), t)?;
    std::fs::create_dir_all(repo.join("stacks/web"))?;
    std::fs::write(
        repo.join("stacks/web/compose.yaml"),
        format!(
            "services:\n  web:\n    image: busybox:1\n    command: [\"sleep\", \"infinity\"]\n    environment:\n      VERSION: \"{version}\"\n"
        ),
    )?;
    Ok(())
}

fn commit(repo: &Path, msg: &str) -> Result<()> {
    sh(repo, &["git", "add", "-A"])?;
    sh(
        repo,
        &[
            "git",
            "-c",
            "user.name=bench",
            "-c",
            "user.email=bench@invalid",
            "commit",
            "-q",
            "-m",
            msg,
        ],
    )?;
    Ok(())
}

/// Issues N agent certificates offline with the data dir's CA, writes each
/// agent's data dir, and records hosts and certificates in the control
/// plane's store as enrollment would (one flush at the end).
fn enroll_offline(data: &Path, agents: &Path, server: &str, n: usize) -> Result<()> {
    let ca_pem = std::fs::read_to_string(data.join("ca.pem"))?;
    let ca_key = std::fs::read_to_string(data.join("ca-key.pem"))?;
    let now = SystemTime::now();
    let lifetime = convoy_pki::DEFAULT_AGENT_CERT_LIFETIME;
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let results: Vec<Vec<(String, convoy_pki::SignedCert)>> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..threads)
            .map(|t| {
                let (ca_pem, ca_key) = (&ca_pem, &ca_key);
                s.spawn(move || -> Result<Vec<(String, convoy_pki::SignedCert)>> {
                    let ca = convoy_pki::Ca::from_pem(ca_pem, ca_key)?;
                    let mut out = Vec::new();
                    for i in (t..n).step_by(threads) {
                        let host = host_name(i);
                        let dir = AgentDir::new(agents.join(&host));
                        dir.create()?;
                        let key = convoy_pki::generate_agent_key()?;
                        let csr = convoy_pki::make_csr(&key, FLEET, &host)?;
                        let signed = ca.sign_agent_csr(&csr, FLEET, &host, now, lifetime)?;
                        write_mode(&dir.key(), key.as_bytes(), 0o600)?;
                        write_mode(&dir.cert(), signed.cert_pem.as_bytes(), 0o644)?;
                        write_mode(&dir.ca(), ca_pem.as_bytes(), 0o644)?;
                        let enr =
                            serde_json::json!({"server": server, "host": host, "fleet": FLEET});
                        write_mode(&dir.enrollment(), enr.to_string().as_bytes(), 0o644)?;
                        out.push((host, signed));
                    }
                    Ok(out)
                })
            })
            .collect();
        hs.into_iter()
            .map(|h| h.join().expect("enroll thread panicked"))
            .collect::<Result<Vec<_>>>()
    })?;
    // The records enrollment writes (store.rs: hosts, certs), put directly
    // into the trees with one flush instead of N.
    let store = convoy_control_plane::store::SledStore::open(&data.join("state"))?;
    let hosts = store.db().open_tree("hosts")?;
    let certs = store.db().open_tree("certs")?;
    let t = convoy_control_plane::store::unix;
    for (host, signed) in results.into_iter().flatten() {
        let h = convoy_control_plane::store::HostRecord {
            name: host.clone(),
            labels: BTreeMap::from([("role".to_owned(), "sim".to_owned())]),
            last_seen_unix: 0,
            cert_serial: signed.serial_hex.clone(),
            cert_not_after_unix: t(signed.not_after),
            enrolled_at_unix: t(now),
        };
        let c = convoy_control_plane::store::CertRecord {
            serial: signed.serial_hex.clone(),
            host: host.clone(),
            not_after_unix: t(signed.not_after),
            issued_at_unix: t(now),
        };
        hosts.insert(host.as_bytes(), serde_json::to_vec(&h)?)?;
        certs.insert(signed.serial_hex.as_bytes(), serde_json::to_vec(&c)?)?;
    }
    store.flush()?;
    Ok(())
}

fn write_mode(p: &Path, data: &[u8], mode: u32) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(p)?;
    f.write_all(data)?;
    Ok(())
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

// ------------------------------------------------------------------ run

#[derive(Debug, Default, Clone)]
struct Row {
    n: usize,
    connect_s: f64,
    initial_rollout_s: f64,
    detect_s: f64,
    fan_p50_ms: f64,
    fan_p99_ms: f64,
    fan_max_ms: f64,
    rollout_s: f64,
    rss_idle_mib: f64,
    rss_conn_mib: f64,
    kib_per_agent: f64,
    cpu_idle_pct: f64,
    bench_cpu_idle_pct: f64,
    stop_s: f64,
    reconnect_s: f64,
    reconnect_from_up_s: f64,
}

struct Opts {
    cp_bin: PathBuf,
    idle_secs: u64,
    state_dir: PathBuf,
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) -> Result<()> {
    let end = Instant::now() + timeout;
    while !f() {
        if Instant::now() > end {
            bail!("timed out waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

fn run_one(n: usize, o: &Opts) -> Result<Row> {
    let mut row = Row {
        n,
        ..Row::default()
    };
    let work = tempfile::Builder::new()
        .prefix("convoy-scale-")
        .tempdir_in(&o.state_dir)?;
    let shm = tempfile::Builder::new()
        .prefix("convoy-scale-agents-")
        .tempdir_in("/dev/shm")
        .or_else(|_| tempfile::tempdir())?;
    let data = work.path().join("cp");
    let repo = work.path().join("fleet");
    let agent_port = free_port()?;
    let api_port = free_port()?;
    let server = format!("127.0.0.1:{agent_port}");
    eprintln!("[N={n}] init, {n} certificates, fleet repo");
    let t0 = Instant::now();
    sh(
        work.path(),
        &[
            o.cp_bin.to_str().context("cp bin path")?,
            "init",
            "--data-dir",
            data.to_str().context("path")?,
            "--fleet",
            FLEET,
            "--server-name",
            "127.0.0.1",
        ],
    )?;
    enroll_offline(&data, shm.path(), &server, n)?;
    std::fs::create_dir_all(&repo)?;
    sh(&repo, &["git", "init", "-q", "-b", "main"])?;
    write_fleet(&repo, n, 1)?;
    commit(&repo, "v1")?;
    eprintln!("[N={n}] set-up took {:.1}s", t0.elapsed().as_secs_f64());
    let config = work.path().join("cp.toml");
    std::fs::write(
        &config,
        format!(
            "agent_listen = \"127.0.0.1:{agent_port}\"\napi_listen = \"127.0.0.1:{api_port}\"\nheartbeat_interval = \"15s\"\n\n[git]\nurl = \"{}\"\nbranch = \"main\"\npoll_interval = \"1s\"\n",
            repo.display()
        ),
    )?;
    let log_path = work.path().join("cp.log");
    let mut cp = Cp::start(&o.cp_bin, &data, &config, &log_path)?;
    cp.wait_log("the first commit", Duration::from_secs(120), |l| {
        l.accepted.first().map(|a| a.0)
    })?;
    std::thread::sleep(Duration::from_secs(2));
    let (rss_idle, _) = proc_stats(cp.pid())?;
    row.rss_idle_mib = rss_idle as f64 / 1048576.0;

    // ---- connect N agents
    let rec = Arc::new(Recorder {
        slots: (0..n).map(|_| Mutex::new(Slot::default())).collect(),
        seen: AtomicUsize::new(0),
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let cfg = AgentConfig {
        server: Some(server.clone()),
        ..AgentConfig::default()
    };
    eprintln!("[N={n}] connecting {n} agents");
    let t_connect = Instant::now();
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        let host = host_name(i);
        let hooks = Arc::new(SimHooks {
            i,
            host: host.clone(),
            rec: rec.clone(),
        });
        let agent = Agent::new(AgentDir::new(shm.path().join(&host)), cfg.clone(), hooks);
        let stop = stop_rx.clone();
        tasks.push(rt.spawn(async move { agent.run(stop).await }));
    }
    // Connected = Welcome received and the desired state on connect
    // delivered (the control plane sends it right after Welcome).
    wait_until("all agents connected", Duration::from_secs(600), || {
        rec.seen.load(Ordering::Relaxed) >= n
    })?;
    row.connect_s = t_connect.elapsed().as_secs_f64();
    eprintln!("[N={n}] all connected in {:.2}s", row.connect_s);
    let first_rollout = cp
        .log
        .lock()
        .map(|l| l.accepted[0].1.clone())
        .unwrap_or_default();
    let t_done = cp.wait_log("the first rollout", Duration::from_secs(900), |l| {
        l.completed
            .iter()
            .find(|c| c.1 == first_rollout)
            .map(|c| c.0)
    })?;
    row.initial_rollout_s = t_done.duration_since(t_connect).as_secs_f64();
    eprintln!(
        "[N={n}] initial rollout complete {:.2}s after the connect start",
        row.initial_rollout_s
    );
    std::thread::sleep(Duration::from_secs(5));
    let (rss_conn, _) = proc_stats(cp.pid())?;
    row.rss_conn_mib = rss_conn as f64 / 1048576.0;
    row.kib_per_agent = (rss_conn.saturating_sub(rss_idle)) as f64 / 1024.0 / n as f64;

    // ---- idle CPU with heartbeats
    eprintln!("[N={n}] idle for {}s", o.idle_secs);
    let tck = clk_tck();
    let me = std::process::id();
    let (_, c0) = proc_stats(cp.pid())?;
    let (_, b0) = proc_stats(me)?;
    let ti = Instant::now();
    std::thread::sleep(Duration::from_secs(o.idle_secs));
    let (_, c1) = proc_stats(cp.pid())?;
    let (_, b1) = proc_stats(me)?;
    let el = ti.elapsed().as_secs_f64();
    row.cpu_idle_pct = (c1 - c0) as f64 / tck / el * 100.0;
    row.bench_cpu_idle_pct = (b1 - b0) as f64 / tck / el * 100.0;

    // ---- fan-out of one commit
    eprintln!("[N={n}] pushing one commit");
    write_fleet(&repo, n, 2)?;
    let t_commit = Instant::now();
    commit(&repo, "v2")?;
    let (t_acc, rollout2) = {
        let t = cp.wait_log("the second commit", Duration::from_secs(120), |l| {
            l.accepted.get(1).map(|a| a.0)
        })?;
        let id = cp
            .log
            .lock()
            .map(|l| l.accepted[1].1.clone())
            .unwrap_or_default();
        (t, id)
    };
    row.detect_s = t_acc.duration_since(t_commit).as_secs_f64();
    // The new revision: whatever arrives after the commit.
    wait_until(
        "the new desired state everywhere",
        Duration::from_secs(900),
        || rec.count_since(t_commit, None) >= n,
    )?;
    let firsts = rec.first_since(t_commit, None);
    let mut lat: Vec<f64> = firsts
        .iter()
        .flatten()
        .map(|t| t.saturating_duration_since(t_acc).as_secs_f64() * 1000.0)
        .collect();
    lat.sort_by(f64::total_cmp);
    row.fan_p50_ms = pct(&lat, 50.0);
    row.fan_p99_ms = pct(&lat, 99.0);
    row.fan_max_ms = lat.last().copied().unwrap_or(f64::NAN);
    let t_done = cp.wait_log("the second rollout", Duration::from_secs(900), |l| {
        l.completed.iter().find(|c| c.1 == rollout2).map(|c| c.0)
    })?;
    row.rollout_s = t_done.duration_since(t_acc).as_secs_f64();
    eprintln!(
        "[N={n}] fan-out p50 {:.0} ms p99 {:.0} ms max {:.0} ms; rollout complete in {:.2}s",
        row.fan_p50_ms, row.fan_p99_ms, row.fan_max_ms, row.rollout_s
    );
    std::thread::sleep(Duration::from_secs(3));

    // ---- restart
    eprintln!("[N={n}] restarting the control plane");
    let t_kill = Instant::now();
    row.stop_s = cp.stop()?.as_secs_f64();
    let mut cp = Cp::start(&o.cp_bin, &data, &config, &log_path)?;
    let t_up = cp.wait_log(
        "the restarted control plane",
        Duration::from_secs(120),
        |l| l.running,
    )?;
    wait_until("all agents reconnected", Duration::from_secs(900), || {
        rec.count_since(t_kill + Duration::from_millis(1), None) >= n
    })?;
    let last = rec
        .first_since(t_kill, None)
        .into_iter()
        .flatten()
        .max()
        .unwrap_or(t_kill);
    row.reconnect_s = last.duration_since(t_kill).as_secs_f64();
    row.reconnect_from_up_s = last.saturating_duration_since(t_up).as_secs_f64();
    eprintln!(
        "[N={n}] all reconnected {:.2}s after SIGTERM ({:.2}s after the new process was serving)",
        row.reconnect_s, row.reconnect_from_up_s
    );

    // ---- tear down
    stop_tx.send_replace(true);
    rt.block_on(async {
        for t in tasks {
            let _ = tokio::time::timeout(Duration::from_secs(20), t).await;
        }
    });
    rt.shutdown_timeout(Duration::from_secs(5));
    let lines = cp.log.lock().map(|l| l.lines).unwrap_or(0);
    cp.stop()?;
    eprintln!(
        "[N={n}] control plane log: {lines} lines after restart, in {}",
        log_path.display()
    );
    if std::env::var_os("CONVOY_BENCH_KEEP").is_some() {
        let _ = work.keep();
    }
    Ok(row)
}

fn print_table(rows: &[Row]) {
    println!();
    println!(
        "Convoy scale bench (one control plane process; agents simulated in one process; {} cores)",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "{:>6} | {:>9} | {:>9} | {:>7} | {:>17} | {:>9} | {:>9} | {:>9} | {:>8} | {:>9} | {:>10}",
        "agents",
        "connect",
        "1st roll",
        "detect",
        "fan-out p50/p99/max",
        "rollout",
        "RSS idle",
        "RSS conn",
        "KiB/agt",
        "CPU idle",
        "reconnect"
    );
    for r in rows {
        println!(
            "{:>6} | {:>8.2}s | {:>8.2}s | {:>6.2}s | {:>5.0}/{:>5.0}/{:>5.0}ms | {:>8.2}s | {:>6.1}MiB | {:>6.1}MiB | {:>8.1} | {:>8.1}% | {:>9.2}s",
            r.n,
            r.connect_s,
            r.initial_rollout_s,
            r.detect_s,
            r.fan_p50_ms,
            r.fan_p99_ms,
            r.fan_max_ms,
            r.rollout_s,
            r.rss_idle_mib,
            r.rss_conn_mib,
            r.kib_per_agent,
            r.cpu_idle_pct,
            r.reconnect_s
        );
    }
    println!();
    println!(
        "goals (10k agents, 2 cores): fan-out p99 <= 1000 ms, <= 64 KiB RSS per agent, full reconnect <= 60 s"
    );
    for r in rows {
        println!(
            "{:>6} agents: fan-out p99 {:.2}x goal, RSS/agent {:.2}x goal, reconnect {:.2}x goal (ratio <= 1 meets it); bench process CPU while idle {:.1}%, control plane stop took {:.2}s, reconnect after serving {:.2}s",
            r.n,
            r.fan_p99_ms / 1000.0,
            r.kib_per_agent / 64.0,
            r.reconnect_s / 60.0,
            r.bench_cpu_idle_pct,
            r.stop_s,
            r.reconnect_from_up_s
        );
    }
    println!(
        "connect: start of N agents until each got Welcome + its desired state; detect: git commit until the control plane logs \"commit accepted\" (poll 1s);"
    );
    println!(
        "fan-out: from \"commit accepted\" until each agent holds the new desired state; rollout: \"commit accepted\" until RolloutCompleted;"
    );
    println!(
        "KiB/agt: (RSS with N connected - RSS before any agent) / N; CPU idle: control plane utime+stime over the idle window (heartbeat 15s, no telemetry);"
    );
    println!(
        "reconnect: SIGTERM until every agent holds its desired state again from the new process (backoff base 500ms, cap 60s)."
    );
}

fn main() -> Result<()> {
    let mut ns = Vec::new();
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target")));
    let mut o = Opts {
        cp_bin: target.join("release/convoy-control-plane"),
        idle_secs: 30,
        state_dir: std::env::temp_dir(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--cp-bin" => o.cp_bin = args.next().context("--cp-bin PATH")?.into(),
            "--idle-secs" => o.idle_secs = args.next().context("--idle-secs S")?.parse()?,
            "--state-dir" => o.state_dir = args.next().context("--state-dir DIR")?.into(),
            "--bench" => {}
            s => ns.push(
                s.parse::<usize>()
                    .with_context(|| format!("not a count: {s}"))?,
            ),
        }
    }
    if ns.is_empty() {
        ns = vec![1000, 5000, 10000];
    }
    if !o.cp_bin.exists() {
        bail!(
            "{} not found: cargo build --release -p convoy-control-plane --bin convoy-control-plane (or --cp-bin)",
            o.cp_bin.display()
        );
    }
    // Raise our own fd limit to the hard limit (no unsafe: prlimit(1)).
    let nofile_line = || {
        std::fs::read_to_string("/proc/self/limits")
            .unwrap_or_default()
            .lines()
            .find(|l| l.starts_with("Max open files"))
            .unwrap_or("")
            .to_owned()
    };
    if let Some(hard) = nofile_line().split_whitespace().nth(4) {
        let _ = Command::new("prlimit")
            .arg("--pid")
            .arg(std::process::id().to_string())
            .arg(format!("--nofile={hard}:{hard}"))
            .status();
    }
    let nofile = nofile_line();
    eprintln!("{nofile}");
    let mut rows = Vec::new();
    for n in ns {
        match run_one(n, &o) {
            Ok(r) => {
                rows.push(r);
                print_table(&rows);
            }
            Err(e) => {
                eprintln!("[N={n}] failed: {e:#}");
                print_table(&rows);
                return Err(e);
            }
        }
    }
    Ok(())
}
