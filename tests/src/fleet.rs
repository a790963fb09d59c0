//! A whole fleet on one machine for the end-to-end tests: a control plane
//! (`convoy-control-plane init/run`, killable with SIGKILL and restartable
//! on the same data dir and ports), agents with their own data dirs and
//! host names, a git fleet repo the test commits to, a recording HTTP alert
//! sink, a TCP proxy that can partition an agent from the control plane,
//! and wait helpers with timeouts and readable failures.
//!
//! Every stack and the fleet carry a per-test unique prefix; dropping the
//! [`Fleet`] (also while a test panics) kills every process it started and
//! removes every container and network of that prefix. On a panic it prints
//! the tails of the daemons' logs.

// Plain threads drive child processes and sockets here; no tokio runtime
// to block.
#![allow(clippy::disallowed_methods)]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::binary;

/// A small seeded RNG (splitmix64): trials print their seed and can be
/// replayed with `CONVOY_E2E_SEED`.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// Seeded from `CONVOY_E2E_SEED` when set, else from the clock.
    pub fn from_env_or_time() -> (Rng, u64) {
        let seed = std::env::var("CONVOY_E2E_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(1, |d| d.as_nanos() as u64)
                    ^ u64::from(std::process::id())
            });
        (Rng(seed), seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `lo..hi` (milliseconds, for random kill points).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        lo + self.next_u64() % (hi - lo)
    }
}

pub fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Polls `f` every 100 ms until it returns `Some`, or panics after
/// `within` with `what` and the last thing `f` described.
pub fn wait_until<T>(
    what: &str,
    within: Duration,
    mut f: impl FnMut(&mut String) -> Option<T>,
) -> T {
    let t0 = Instant::now();
    let mut last = String::new();
    loop {
        last.clear();
        if let Some(v) = f(&mut last) {
            return v;
        }
        if t0.elapsed() > within {
            panic!("timed out after {within:?} waiting for {what}; last seen: {last}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Bounds how many fleets run at once (each is a control plane, three
/// agents and their containers; the machine has 2 cores).
/// `CONVOY_E2E_PARALLEL` overrides the default of 3.
pub fn slot() -> SlotGuard {
    static STATE: (Mutex<usize>, std::sync::Condvar) = (Mutex::new(0), std::sync::Condvar::new());
    let limit = std::env::var("CONVOY_E2E_PARALLEL")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3usize)
        .max(1);
    let mut n = STATE.0.lock().unwrap_or_else(|e| e.into_inner());
    while *n >= limit {
        n = STATE.1.wait(n).unwrap_or_else(|e| e.into_inner());
    }
    *n += 1;
    SlotGuard(&STATE)
}

/// Releases a [`slot`] when dropped.
pub struct SlotGuard(&'static (Mutex<usize>, std::sync::Condvar));

impl Drop for SlotGuard {
    fn drop(&mut self) {
        let mut n = self.0.0.lock().unwrap_or_else(|e| e.into_inner());
        *n = n.saturating_sub(1);
        self.0.1.notify_one();
    }
}

/// A child process killed (SIGKILL) when dropped.
#[derive(Debug)]
pub struct Proc {
    child: Option<Child>,
}

impl Proc {
    fn spawn(cmd: &mut Command, log: &Path) -> anyhow::Result<Proc> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("opening {}", log.display()))?;
        let child = cmd
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("spawning a daemon")?;
        Ok(Proc { child: Some(child) })
    }
    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// `kill -9` and reap.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// One container as `docker ps -a` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ctr {
    pub id: String,
    pub name: String,
    pub state: String,
    pub status: String,
    pub revision: String,
    pub service: String,
    pub stack: String,
}

impl Ctr {
    /// What must not change on a host left alone: the container itself
    /// (its id), its name, state and revision.
    pub fn key(&self) -> (String, String, String, String) {
        (
            self.id.clone(),
            self.name.clone(),
            self.state.clone(),
            self.revision.clone(),
        )
    }
    pub fn healthy(&self) -> bool {
        self.state == "running" && self.status.contains("(healthy)")
    }
}

/// Every container carrying `dev.convoy.managed` whose stack starts with
/// `prefix`.
pub fn containers(prefix: &str) -> anyhow::Result<Vec<Ctr>> {
    let out = Command::new("docker")
        .args([
            "ps",
            "-a",
            "--no-trunc",
            "--filter",
            "label=dev.convoy.managed",
            "--format",
            "{{.ID}}|{{.Names}}|{{.State}}|{{.Status}}|{{.Label \"dev.convoy.revision\"}}|{{.Label \"com.docker.compose.service\"}}|{{.Label \"dev.convoy.stack\"}}",
        ])
        .output()
        .context("running docker ps")?;
    if !out.status.success() {
        bail!(
            "DOCKER ENGINE UNREACHABLE: docker ps: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let mut v = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let f: Vec<&str> = line.split('|').collect();
        if f.len() != 7 || !f[6].starts_with(prefix) {
            continue;
        }
        v.push(Ctr {
            id: f[0].into(),
            name: f[1].into(),
            state: f[2].into(),
            status: f[3].into(),
            revision: f[4].into(),
            service: f[5].into(),
            stack: f[6].into(),
        });
    }
    v.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(v)
}

/// An environment variable of a container's config.
pub fn container_env(id: &str, key: &str) -> anyhow::Result<Option<String>> {
    let out = Command::new("docker")
        .args(["inspect", "--format", "{{json .Config.Env}}", id])
        .output()?;
    if !out.status.success() {
        bail!(
            "docker inspect {id}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let env: Vec<String> = serde_json::from_slice(&out.stdout)?;
    Ok(env
        .iter()
        .find_map(|e| e.strip_prefix(&format!("{key}=")).map(str::to_owned)))
}

/// Removes every container and network of the prefix.
pub fn remove_prefix(prefix: &str) {
    if let Ok(cs) = containers(prefix) {
        let ids: Vec<String> = cs.into_iter().map(|c| c.id).collect();
        if !ids.is_empty() {
            let _ = Command::new("docker")
                .args(["rm", "-f", "-v"])
                .args(&ids)
                .output();
        }
    }
    if let Ok(out) = Command::new("docker")
        .args(["network", "ls", "--format", "{{.Name}}"])
        .output()
    {
        let nets: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|n| n.starts_with(prefix))
            .map(str::to_owned)
            .collect();
        if !nets.is_empty() {
            let _ = Command::new("docker")
                .args(["network", "rm"])
                .args(&nets)
                .output();
        }
    }
}

// ------------------------------------------------------------ alert sink

/// A local HTTP server recording every JSON body POSTed to it.
#[derive(Debug, Clone)]
pub struct AlertSink {
    pub port: u16,
    received: Arc<Mutex<Vec<serde_json::Value>>>,
}

impl AlertSink {
    pub fn start() -> anyhow::Result<AlertSink> {
        let l = TcpListener::bind("127.0.0.1:0")?;
        let port = l.local_addr()?.port();
        let received = Arc::new(Mutex::new(Vec::new()));
        let rec = received.clone();
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(s) = s else { continue };
                let rec = rec.clone();
                std::thread::spawn(move || {
                    let _ = serve_one(s, &rec);
                });
            }
        });
        Ok(AlertSink { port, received })
    }
    pub fn received(&self) -> Vec<serde_json::Value> {
        self.received
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
    /// Kinds of the alerts received so far.
    pub fn kinds(&self) -> Vec<String> {
        self.received()
            .iter()
            .filter_map(|v| v["kind"].as_str().map(str::to_owned))
            .collect()
    }
}

fn serve_one(mut s: TcpStream, rec: &Mutex<Vec<serde_json::Value>>) -> anyhow::Result<()> {
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let (head_end, len) = loop {
        let n = s.read(&mut chunk)?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..i]).to_ascii_lowercase();
            let len = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            break (i + 4, len);
        }
    };
    while buf.len() < head_end + len {
        let n = s.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = &buf[head_end..buf.len().min(head_end + len)];
    if let Ok(v) = serde_json::from_slice(body) {
        rec.lock().unwrap_or_else(|e| e.into_inner()).push(v);
    }
    s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")?;
    Ok(())
}

// ------------------------------------------------------------ TCP proxy

/// A TCP proxy between an agent and the control plane that the test can
/// cut (close every relayed connection, refuse new ones) and heal.
#[derive(Debug, Clone)]
pub struct Proxy {
    pub port: u16,
    cut: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
    relayed: Arc<std::sync::atomic::AtomicU64>,
}

impl Proxy {
    pub fn start(upstream: u16) -> anyhow::Result<Proxy> {
        let l = TcpListener::bind("127.0.0.1:0")?;
        let port = l.local_addr()?.port();
        let p = Proxy {
            port,
            cut: Arc::new(AtomicBool::new(false)),
            conns: Arc::new(Mutex::new(Vec::new())),
            relayed: Arc::new(std::sync::atomic::AtomicU64::new(0)),
        };
        let me = p.clone();
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(down) = s else { continue };
                if me.cut.load(Ordering::SeqCst) {
                    let _ = down.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(up) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    let _ = down.shutdown(Shutdown::Both);
                    continue;
                };
                me.relayed.fetch_add(1, Ordering::SeqCst);
                let pairs = [
                    (down.try_clone(), up.try_clone()),
                    (up.try_clone(), down.try_clone()),
                ];
                {
                    let mut c = me.conns.lock().unwrap_or_else(|e| e.into_inner());
                    c.push(down);
                    c.push(up);
                }
                for (from, to) in pairs {
                    if let (Ok(mut from), Ok(mut to)) = (from, to) {
                        std::thread::spawn(move || {
                            let _ = std::io::copy(&mut from, &mut to);
                            let _ = to.shutdown(Shutdown::Both);
                            let _ = from.shutdown(Shutdown::Both);
                        });
                    }
                }
            }
        });
        Ok(p)
    }
    /// Drops every relayed connection and refuses new ones.
    pub fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        let mut c = self.conns.lock().unwrap_or_else(|e| e.into_inner());
        for s in c.drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
    pub fn heal(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
    /// Connections relayed so far.
    pub fn relayed(&self) -> u64 {
        self.relayed.load(Ordering::SeqCst)
    }
}

// ------------------------------------------------------------ the fleet

/// What one stack of the test fleet runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackSpec {
    /// Goes into the containers' `MSG` environment (a new value is a new
    /// revision).
    pub msg: String,
    /// `false`: the healthcheck is `false`, so the gate fails.
    pub healthy: bool,
    /// Services `web`, `web2`, ... (more services make an apply longer).
    pub services: usize,
}

impl StackSpec {
    pub fn new(msg: &str) -> StackSpec {
        StackSpec {
            msg: msg.into(),
            healthy: true,
            services: 1,
        }
    }
}

/// The three hosts, their labels and waves.
pub const HOSTS: [(&str, &str, &str); 3] = [
    ("vps", "edge", "prod"),
    ("laptop", "core", "staging"),
    ("gpubox", "gpu", "prod"),
];

#[derive(Debug)]
pub struct Agent {
    pub name: String,
    pub data: PathBuf,
    pub config: PathBuf,
    pub log: PathBuf,
    pub proc: Option<Proc>,
    /// Extra environment of its process (e.g. `CONVOY_NVML_LIBRARY`).
    pub env: Vec<(String, String)>,
}

#[derive(Debug)]
pub struct Fleet {
    pub tmp: tempfile::TempDir,
    /// Fleet name and stack-name prefix, unique per test.
    pub prefix: String,
    pub repo: PathBuf,
    pub cp_data: PathBuf,
    pub cp_config: PathBuf,
    pub cp_log: PathBuf,
    pub agent_port: u16,
    pub api_port: u16,
    pub admin: String,
    pub cp: Option<Proc>,
    pub agents: BTreeMap<String, Agent>,
    pub sink: AlertSink,
    pub image: String,
}

fn run_ok(cmd: &mut Command) -> anyhow::Result<String> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

impl Fleet {
    /// Stack name of a host's stack.
    pub fn stack(&self, host: &str) -> String {
        format!("{}-{host}", self.prefix)
    }

    /// A control plane with a fresh CA, a fleet repo at `initial` (one
    /// stack per host) and a recording alert sink; no agents yet.
    pub fn new(tag: &str, initial: &BTreeMap<String, StackSpec>) -> anyhow::Result<Fleet> {
        let image = crate::images::busybox_image("e2e")?;
        let tmp = tempfile::Builder::new().prefix("convoy-e2e-").tempdir()?;
        let nonce = Rng::from_env_or_time().0.next_u64() & 0xffff;
        let prefix = format!("e2e{tag}-{nonce:04x}");
        eprintln!("[{prefix}] fleet in {}", tmp.path().display());
        let repo = tmp.path().join("repo");
        std::fs::create_dir_all(&repo)?;
        run_ok(
            Command::new("git")
                .arg("-C")
                .arg(&repo)
                .args(["init", "-q", "-b", "main"]),
        )?;
        let cp_data = tmp.path().join("cp");
        let out = run_ok(
            Command::new(binary("convoy-control-plane")?)
                .args(["init", "--fleet", &prefix, "--server-name", "127.0.0.1"])
                .arg("--data-dir")
                .arg(&cp_data),
        )?;
        let admin = out
            .lines()
            .find_map(|l| l.strip_prefix("admin API token: "))
            .context("init printed no admin token")?
            .trim()
            .to_owned();
        let sink = AlertSink::start()?;
        let cp_config = tmp.path().join("cp.toml");
        std::fs::write(
            &cp_config,
            format!(
                "[git]\nurl = \"{}\"\npoll_interval = \"1s\"\nwebhook_secret = \"e2e-webhook-secret\"\n\n\
                 [alerts]\nretry_base = \"200ms\"\nretry_cap = \"1s\"\n\n\
                 [[alerts.sinks]]\nname = \"local\"\nkind = \"webhook\"\nurl = \"http://127.0.0.1:{}/hook\"\nsecret = \"e2e-sink-secret\"\n",
                repo.display(),
                sink.port
            ),
        )?;
        let mut f = Fleet {
            cp_log: tmp.path().join("cp.log"),
            tmp,
            prefix,
            repo,
            cp_data,
            cp_config,
            agent_port: free_port()?,
            api_port: free_port()?,
            admin,
            cp: None,
            agents: BTreeMap::new(),
            sink,
            image,
        };
        f.write_repo(initial)?;
        f.commit("initial fleet")?;
        f.start_cp()?;
        Ok(f)
    }

    /// Writes fleet.toml and one stack per host.
    pub fn write_repo(&self, stacks: &BTreeMap<String, StackSpec>) -> anyhow::Result<()> {
        let mut toml = format!("[fleet]\nname = \"{}\"\n\n", self.prefix);
        for (host, role, env) in HOSTS {
            let _ = writeln!(
                toml,
                "[hosts.{host}]\nlabels = {{ role = \"{role}\", env = \"{env}\" }}\n"
            );
        }
        let stacks_dir = self.repo.join("stacks");
        let _ = std::fs::remove_dir_all(&stacks_dir);
        for (host, role, _) in HOSTS {
            let Some(spec) = stacks.get(host) else {
                continue;
            };
            let name = self.stack(host);
            let _ = writeln!(
                toml,
                "[stacks.{name}]\npath = \"stacks/{name}\"\nhosts = \"role={role}\"\n\
                 [stacks.{name}.health]\ndeadline = \"20s\"\nmin_healthy = \"2s\"\n"
            );
            let dir = stacks_dir.join(&name);
            std::fs::create_dir_all(&dir)?;
            std::fs::write(
                dir.join(".env"),
                format!("IMAGE={}\nMSG={}\n", self.image, spec.msg),
            )?;
            let check = if spec.healthy {
                r#"["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/health"]"#
            } else {
                r#"["CMD", "false"]"#
            };
            let mut compose = String::from("services:\n");
            for i in 0..spec.services.max(1) {
                let svc = if i == 0 {
                    "web".to_owned()
                } else {
                    format!("web{}", i + 1)
                };
                let _ = write!(
                    compose,
                    "  {svc}:\n    image: ${{IMAGE}}\n    command: [\"httpd\", \"-f\", \"-p\", \"8080\", \"-h\", \"/www\"]\n    \
                     environment:\n      MSG: \"${{MSG}}\"\n    stop_grace_period: 1s\n    \
                     healthcheck:\n      test: {check}\n      interval: 1s\n      timeout: 1s\n      retries: 2\n    \
                     restart: unless-stopped\n"
                );
            }
            std::fs::write(dir.join("compose.yaml"), compose)?;
        }
        let _ = write!(
            toml,
            "[rollout]\nwaves = [\n  {{ name = \"staging\", hosts = \"env=staging\" }},\n  \
             {{ name = \"prod\", hosts = \"env=prod\", max_parallel = 1 }},\n]\non_failure = \"halt\"\n"
        );
        std::fs::write(self.repo.join("fleet.toml"), toml)?;
        Ok(())
    }

    /// Commits everything to `main`; returns the commit id.
    pub fn commit(&self, msg: &str) -> anyhow::Result<String> {
        let git = |args: &[&str]| {
            run_ok(
                Command::new("git")
                    .arg("-C")
                    .arg(&self.repo)
                    .args(["-c", "user.name=e2e", "-c", "user.email=e2e@example.org"])
                    .args(args),
            )
        };
        git(&["add", "-A"])?;
        git(&["commit", "-q", "-m", msg])?;
        Ok(git(&["rev-parse", "HEAD"])?.trim().to_owned())
    }

    /// The repo's HEAD.
    pub fn head(&self) -> anyhow::Result<String> {
        Ok(run_ok(
            Command::new("git")
                .arg("-C")
                .arg(&self.repo)
                .args(["rev-parse", "HEAD"]),
        )?
        .trim()
        .to_owned())
    }

    /// The revisions the control plane will compute for this repo state:
    /// host -> (host revision, stack revision).
    pub fn expected_revisions(&self) -> anyhow::Result<BTreeMap<String, (String, String)>> {
        let repo = convoy_shared::repo::load_dir(&self.repo)
            .map_err(|e| anyhow::anyhow!("the test fleet repo is invalid: {e:?}"))?;
        let mut out = BTreeMap::new();
        for (host, _, _) in HOSTS {
            let st = convoy_shared::render::render_host(&repo, host)
                .with_context(|| format!("no state for {host}"))?;
            let stack = st
                .stacks
                .iter()
                .find(|s| s.name == self.stack(host))
                .map(|s| s.revision.clone())
                .unwrap_or_default();
            out.insert(host.to_owned(), (st.revision, stack));
        }
        Ok(out)
    }

    pub fn start_cp(&mut self) -> anyhow::Result<()> {
        let mut cmd = Command::new(binary("convoy-control-plane")?);
        cmd.args(["run", "--data-dir"])
            .arg(&self.cp_data)
            .arg("--config")
            .arg(&self.cp_config)
            .args(["--agent-listen", &format!("127.0.0.1:{}", self.agent_port)])
            .args(["--api-listen", &format!("127.0.0.1:{}", self.api_port)]);
        self.cp = Some(Proc::spawn(&mut cmd, &self.cp_log)?);
        wait_until("the API to answer", Duration::from_secs(20), |last| {
            let o = self.cli(&["hosts"]).ok()?;
            *last = String::from_utf8_lossy(&o.stderr).into_owned();
            o.status.success().then_some(())
        });
        Ok(())
    }

    pub fn kill_cp(&mut self) {
        if let Some(mut p) = self.cp.take() {
            p.kill9();
        }
    }

    /// Runs the `convoy` CLI against this control plane. Its config file is
    /// one of this fleet's (none), never the user's own contexts.
    pub fn cli(&self, args: &[&str]) -> anyhow::Result<std::process::Output> {
        Ok(Command::new(binary("convoy")?)
            .args(args)
            .env("CONVOY_CLI_CONFIG", self.tmp.path().join("cli-config.toml"))
            .env_remove("CONVOY_CONTEXT")
            .env_remove("CONVOY_TOKEN_FILE")
            .env("CONVOY_API", format!("https://127.0.0.1:{}", self.api_port))
            .env("CONVOY_TOKEN", &self.admin)
            .env("CONVOY_CA", self.cp_data.join("ca.pem"))
            .output()?)
    }

    /// `convoy ARGS --json`, parsed.
    pub fn cli_json(&self, args: &[&str]) -> anyhow::Result<serde_json::Value> {
        let mut a = args.to_vec();
        a.push("--json");
        let o = self.cli(&a)?;
        if !o.status.success() {
            bail!(
                "convoy {a:?}: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            );
        }
        Ok(serde_json::from_slice(&o.stdout)?)
    }

    /// A raw GET on the API (for endpoints the CLI does not cover).
    pub fn api_get(&self, path: &str) -> anyhow::Result<serde_json::Value> {
        let out = run_ok(
            Command::new("curl")
                .args(["-sS", "--fail", "--max-time", "10", "--cacert"])
                .arg(self.cp_data.join("ca.pem"))
                .arg("-H")
                .arg(format!("Authorization: Bearer {}", self.admin))
                .arg(format!("https://127.0.0.1:{}{path}", self.api_port)),
        )?;
        Ok(serde_json::from_str(&out)?)
    }

    /// Enrolls `host` and starts its agent. `server_port`: where the agent
    /// dials (the control plane, or a proxy in front of it).
    pub fn add_agent(&mut self, host: &str, server_port: Option<u16>) -> anyhow::Result<()> {
        self.add_agent_with_env(host, server_port, Vec::new())
    }

    /// [`Fleet::add_agent`] with extra environment for the agent process.
    pub fn add_agent_with_env(
        &mut self,
        host: &str,
        server_port: Option<u16>,
        extra_env: Vec<(String, String)>,
    ) -> anyhow::Result<()> {
        let (_, role, env) = HOSTS
            .iter()
            .find(|(h, _, _)| *h == host)
            .context("unknown test host")?;
        let o = self.cli(&[
            "tokens",
            "create",
            "--host",
            host,
            "--labels",
            &format!("role={role},env={env}"),
            "--ttl",
            "10m",
        ])?;
        if !o.status.success() {
            bail!("tokens create: {}", String::from_utf8_lossy(&o.stderr));
        }
        let token = String::from_utf8_lossy(&o.stdout).trim().to_owned();
        let data = self.tmp.path().join(format!("agent-{host}"));
        run_ok(
            Command::new(binary("convoy-agent")?)
                .args([
                    "enroll",
                    "--server",
                    &format!("127.0.0.1:{}", self.agent_port),
                    "--token",
                    &token,
                    "--data-dir",
                ])
                .arg(&data),
        )?;
        let config = self.tmp.path().join(format!("agent-{host}.toml"));
        let mut cfg = String::from("backoff_base = \"100ms\"\nbackoff_cap = \"1s\"\n");
        if let Some(p) = server_port {
            let _ = writeln!(cfg, "server = \"127.0.0.1:{p}\"");
        }
        std::fs::write(&config, cfg)?;
        let log = self.tmp.path().join(format!("agent-{host}.log"));
        self.agents.insert(
            host.to_owned(),
            Agent {
                name: host.to_owned(),
                data,
                config,
                log,
                proc: None,
                env: extra_env,
            },
        );
        self.start_agent(host)
    }

    pub fn start_agent(&mut self, host: &str) -> anyhow::Result<()> {
        let bin = binary("convoy-agent")?;
        let a = self.agents.get_mut(host).context("no such agent")?;
        let mut cmd = Command::new(bin);
        cmd.args(["run", "--data-dir"])
            .arg(&a.data)
            .arg("--config")
            .arg(&a.config)
            .env("CONVOY_LOG", "info,convoy_host_agent=debug")
            .envs(a.env.iter().map(|(k, v)| (k, v)));
        a.proc = Some(Proc::spawn(&mut cmd, &a.log)?);
        Ok(())
    }

    pub fn kill_agent(&mut self, host: &str) {
        if let Some(a) = self.agents.get_mut(host)
            && let Some(mut p) = a.proc.take()
        {
            p.kill9();
        }
    }

    /// The three standard agents, all dialling the control plane directly
    /// except those given a proxy port.
    pub fn add_all_agents(&mut self, proxies: &BTreeMap<String, u16>) -> anyhow::Result<()> {
        for (host, _, _) in HOSTS {
            self.add_agent(host, proxies.get(host).copied())?;
        }
        Ok(())
    }

    /// The current rollout as `convoy rollout --json` shows it.
    pub fn rollout(&self) -> anyhow::Result<serde_json::Value> {
        self.cli_json(&["rollout"])
    }

    /// Waits until the current rollout is for `commit` and has the given
    /// final status ("Completed", "Halted", ...); returns it.
    pub fn wait_rollout(&self, commit: &str, status: &str, within: Duration) -> serde_json::Value {
        wait_until(
            &format!(
                "rollout of {} to be {status}",
                &commit[..8.min(commit.len())]
            ),
            within,
            |last| {
                let r = match self.rollout() {
                    Ok(r) => r,
                    Err(e) => {
                        *last = format!("{e:#}");
                        return None;
                    }
                };
                *last = format!(
                    "commit {} status {} hosts {}",
                    r["commit"], r["status"], r["hosts"]
                );
                let st = match &r["status"] {
                    serde_json::Value::String(s) => s.clone(),
                    serde_json::Value::Object(o) => o.keys().next().cloned().unwrap_or_default(),
                    _ => String::new(),
                };
                (r["commit"] == commit && st == status).then_some(r)
            },
        )
    }

    /// Phase name of a host in a rollout view ("Healthy", "Delivered", ...).
    pub fn phase(rollout: &serde_json::Value, host: &str) -> String {
        match &rollout["hosts"][host]["phase"] {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Object(o) => o.keys().next().cloned().unwrap_or_default(),
            other => other.to_string(),
        }
    }

    /// Waits until every host is connected (or, with `false`, not).
    pub fn wait_connected(&self, hosts: &[&str], want: bool, within: Duration) {
        wait_until(&format!("{hosts:?} connected={want}"), within, |last| {
            let v = self.cli_json(&["hosts"]).ok()?;
            *last = v.to_string();
            let arr = v.as_array()?;
            hosts
                .iter()
                .all(|h| {
                    arr.iter()
                        .any(|x| x["name"] == *h && x["connected"].as_bool() == Some(want))
                })
                .then_some(())
        });
    }

    /// Containers of one host's stack.
    pub fn stack_containers(&self, host: &str) -> Vec<Ctr> {
        let stack = self.stack(host);
        containers(&self.prefix)
            .unwrap_or_else(|e| panic!("{e:#}"))
            .into_iter()
            .filter(|c| c.stack == stack)
            .collect()
    }

    /// Waits until `host`'s stack runs exactly `services` healthy
    /// containers, all labelled with `revision`, and nothing else.
    pub fn wait_stack(
        &self,
        host: &str,
        revision: &str,
        services: usize,
        within: Duration,
    ) -> Vec<Ctr> {
        wait_until(
            &format!(
                "{host}'s stack healthy on {}",
                &revision[..12.min(revision.len())]
            ),
            within,
            |last| {
                let cs = self.stack_containers(host);
                *last = format!("{cs:?}");
                (cs.len() == services && cs.iter().all(|c| c.healthy() && c.revision == revision))
                    .then_some(cs)
            },
        )
    }

    /// Reports the control plane stored for a host (oldest first).
    pub fn reports(&self, host: &str) -> anyhow::Result<Vec<serde_json::Value>> {
        let v = self.api_get(&format!("/api/v1/hosts/{host}/reports"))?;
        Ok(v.as_array().cloned().unwrap_or_default())
    }

    fn dump_logs(&self) {
        let tail = |p: &Path| {
            let text = std::fs::read_to_string(p).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(60)..].join("\n")
        };
        eprintln!(
            "----- [{}] control plane log (tail) -----\n{}",
            self.prefix,
            tail(&self.cp_log)
        );
        for a in self.agents.values() {
            eprintln!(
                "----- [{}] agent {} log (tail) -----\n{}",
                self.prefix,
                a.name,
                tail(&a.log)
            );
        }
        if let Ok(cs) = containers(&self.prefix) {
            eprintln!("----- [{}] containers -----\n{cs:#?}", self.prefix);
        }
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.dump_logs();
        }
        for a in self.agents.values_mut() {
            if let Some(mut p) = a.proc.take() {
                p.kill9();
            }
        }
        self.kill_cp();
        remove_prefix(&self.prefix);
    }
}
