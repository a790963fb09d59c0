//! Day-2 operations with the real binaries: the systemd notify protocol
//! (READY only once serving, WATCHDOG pings, STOPPING) read from a fake
//! NOTIFY_SOCKET; SIGTERM during an apply (exit 0, journal consistent,
//! containers keep running, a restarted agent converges); a backup taken
//! while tokens are being written restores to a working control plane that
//! an enrolled agent reconnects to with its certificate.

#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(clippy::disallowed_methods)]

use std::collections::BTreeMap;
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use convoy_shared::compose::{ComposeFile, Healthcheck, Service};
use convoy_shared::fleet::HealthPolicy;
use convoy_shared::render::{HOST_STATE_FORMAT, HostState, RenderedStack, content_hash};
use convoy_tests::binary;

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "status {}\nstdout: {}\nstderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// `init` a control plane data dir; returns the admin API token.
fn init_cp(data: &Path) -> String {
    let out = ok(&Command::new(binary("convoy-control-plane").unwrap())
        .args(["init", "--fleet", "ops", "--server-name", "127.0.0.1"])
        .arg("--data-dir")
        .arg(data)
        .output()
        .unwrap());
    out.lines()
        .find_map(|l| l.strip_prefix("admin API token: "))
        .unwrap()
        .trim()
        .to_owned()
}

struct Cp {
    data: PathBuf,
    agent_port: u16,
    api_port: u16,
    admin: String,
}

impl Cp {
    fn command(&self, log: &Path) -> Command {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let mut c = Command::new(binary("convoy-control-plane").unwrap());
        c.args(["run", "--data-dir"])
            .arg(&self.data)
            .args(["--agent-listen", &format!("127.0.0.1:{}", self.agent_port)])
            .args(["--api-listen", &format!("127.0.0.1:{}", self.api_port)])
            .env_remove("NOTIFY_SOCKET")
            .stdout(Stdio::null())
            .stderr(log);
        c
    }

    fn cli(&self, args: &[&str]) -> Output {
        Command::new(binary("convoy").unwrap())
            .args(args)
            .env("CONVOY_API", format!("https://127.0.0.1:{}", self.api_port))
            .env("CONVOY_TOKEN", &self.admin)
            .env("CONVOY_CA", self.data.join("ca.pem"))
            .output()
            .unwrap()
    }

    fn wait_api(&self) {
        let t0 = Instant::now();
        while !self.cli(&["hosts"]).status.success() {
            assert!(
                t0.elapsed() < Duration::from_secs(15),
                "API did not come up"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn join_token(&self, host: &str) -> String {
        ok(&self.cli(&["tokens", "create", "--host", host, "--ttl", "10m"]))
            .trim()
            .to_owned()
    }

    fn connected(&self, host: &str) -> bool {
        let o = self.cli(&["hosts", "--json"]);
        if !o.status.success() {
            return false;
        }
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .any(|h| h["name"] == host && h["connected"] == true)
    }

    fn wait_connected(&self, host: &str, within: Duration) {
        let t0 = Instant::now();
        while !self.connected(host) {
            assert!(
                t0.elapsed() < within,
                "{host} not connected within {within:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn enroll(cp: &Cp, host: &str, dir: &Path) {
    let token = cp.join_token(host);
    ok(&Command::new(binary("convoy-agent").unwrap())
        .args([
            "enroll",
            "--server",
            &format!("127.0.0.1:{}", cp.agent_port),
        ])
        .args(["--token", &token, "--data-dir"])
        .arg(dir)
        .output()
        .unwrap());
}

fn agent_run(dir: &Path, log: &Path) -> Command {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    let mut c = Command::new(binary("convoy-agent").unwrap());
    c.args(["run", "--data-dir"])
        .arg(dir)
        .env("CONVOY_BACKOFF_CAP", "1s")
        .env_remove("NOTIFY_SOCKET")
        .stdout(Stdio::null())
        .stderr(log);
    c
}

fn sigterm(child: &Child) {
    assert!(
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
}

/// Waits for exit; returns (success, how long it took).
fn wait_exit(child: &mut Child, within: Duration) -> (bool, Duration) {
    let t0 = Instant::now();
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return (st.success(), t0.elapsed());
        }
        assert!(t0.elapsed() < within, "no exit within {within:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A fake systemd notify socket.
struct Notify {
    path: PathBuf,
    sock: UnixDatagram,
}

impl Notify {
    fn new(dir: &Path) -> Notify {
        let path = dir.join("notify.sock");
        let sock = UnixDatagram::bind(&path).unwrap();
        Notify { path, sock }
    }

    /// Next message within `within`, or None.
    fn recv(&self, within: Duration) -> Option<String> {
        self.sock.set_read_timeout(Some(within)).unwrap();
        let mut buf = [0u8; 4096];
        match self.sock.recv(&mut buf) {
            Ok(n) => Some(String::from_utf8_lossy(&buf[..n]).into_owned()),
            Err(_) => None,
        }
    }

    /// Waits for a message containing `what`; returns everything seen.
    fn wait_for(&self, what: &str, within: Duration) -> Vec<String> {
        let t0 = Instant::now();
        let mut seen = Vec::new();
        while t0.elapsed() < within {
            if let Some(m) = self.recv(Duration::from_millis(200)) {
                let hit = m.lines().any(|l| l == what);
                seen.push(m);
                if hit {
                    return seen;
                }
            }
        }
        panic!("no {what} within {within:?}; saw {seen:?}");
    }
}

#[test]
fn control_plane_notifies_ready_after_binding_pings_watchdog_and_stops() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("cp");
    let admin = init_cp(&data);
    let cp = Cp {
        data,
        agent_port: free_port(),
        api_port: free_port(),
        admin,
    };
    let notify = Notify::new(tmp.path());
    let log = tmp.path().join("cp.log");
    let mut child = Kill(
        cp.command(&log)
            .env("NOTIFY_SOCKET", &notify.path)
            .env("WATCHDOG_USEC", "400000")
            .spawn()
            .unwrap(),
    );
    let seen = notify.wait_for("READY=1", Duration::from_secs(20));
    // Both ports accept the moment READY arrives.
    TcpStream::connect(("127.0.0.1", cp.agent_port)).expect("agent port not bound at READY");
    TcpStream::connect(("127.0.0.1", cp.api_port)).expect("API port not bound at READY");
    assert!(
        seen.last().unwrap().contains("STATUS=serving agents"),
        "{seen:?}"
    );
    // WATCHDOG_USEC = 400 ms: pings every ~200 ms.
    let t0 = Instant::now();
    let mut pings = 0;
    while t0.elapsed() < Duration::from_millis(1500) {
        if notify.recv(Duration::from_millis(500)).as_deref() == Some("WATCHDOG=1") {
            pings += 1;
        }
    }
    assert!(pings >= 4, "{pings} watchdog pings in 1.5 s");
    eprintln!("control plane: {pings} WATCHDOG=1 pings in 1.5 s");
    sigterm(&child.0);
    notify.wait_for("STOPPING=1", Duration::from_secs(5));
    let (success, took) = wait_exit(&mut child.0, Duration::from_secs(15));
    assert!(success, "{}", std::fs::read_to_string(&log).unwrap());
    eprintln!("control plane stopped {took:?} after SIGTERM");
}

#[test]
fn print_config_shows_precedence_redacts_secrets_and_rejects_unknown_keys() {
    let tmp = tempfile::tempdir().unwrap();
    let print = |bin: &str, file: &str, env: &[(&str, &str)], flags: &[&str]| {
        let cfg = tmp.path().join(format!("{bin}.toml"));
        std::fs::write(&cfg, file).unwrap();
        let mut c = Command::new(binary(bin).unwrap());
        c.args(["run", "--print-config", "--config"])
            .arg(&cfg)
            .args(flags)
            .env_remove("CONVOY_DATA_DIR");
        for (k, v) in env {
            c.env(k, v);
        }
        c.output().unwrap()
    };
    // Agent: file < env < flag; defaults fill the rest.
    let o = ok(&print(
        "convoy-agent",
        "server = \"file:1\"\nbackoff_cap = \"5s\"\nstable_after = \"3s\"\n",
        &[("CONVOY_SERVER", "env:1"), ("CONVOY_BACKOFF_CAP", "7s")],
        &["--server", "flag:1", "--log-format", "json"],
    ));
    for want in [
        "server = \"flag:1\"",
        "backoff_cap = \"7s\"",
        "stable_after = \"3s\"",
        "backoff_base = \"500ms\"",
        "data_dir = \"/var/lib/convoy-agent\"",
        "log_format = \"json\"",
    ] {
        assert!(o.contains(want), "{want} missing from:\n{o}");
    }
    let o = print("convoy-agent", "sever = \"typo:1\"\n", &[], &[]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown field `sever`"));
    let o = print("convoy-agent", "", &[("CONVOY_BACKOFF_BASE", "fast")], &[]);
    assert!(!o.status.success(), "a bad env value must be an error");

    // Control plane: the same precedence, and secrets never printed.
    let o = ok(&print(
        "convoy-control-plane",
        "api_listen = \"127.0.0.1:1001\"\nagent_listen = \"127.0.0.1:2001\"\n\
         [git]\nurl = \"/srv/fleet\"\ntoken = \"git-sekrit\"\n\
         [alerts]\n[[alerts.sinks]]\nname = \"hook\"\nkind = \"webhook\"\n\
         url = \"https://hooks.example/sekrit-path\"\nsecret = \"hmac-sekrit\"\n",
        &[
            ("CONVOY_API_LISTEN", "127.0.0.1:1002"),
            ("CONVOY_AGENT_LISTEN", "127.0.0.1:2002"),
            ("CONVOY_GIT_WEBHOOK_SECRET", "hook-sekrit"),
        ],
        &["--agent-listen", "127.0.0.1:2003"],
    ));
    assert!(o.contains("api_listen = \"127.0.0.1:1002\""), "{o}");
    assert!(o.contains("agent_listen = \"127.0.0.1:2003\""), "{o}");
    assert!(o.contains("heartbeat_interval = \"15s\""), "{o}");
    assert!(o.contains("url = \"/srv/fleet\""), "{o}");
    assert!(!o.contains("sekrit"), "a secret was printed:\n{o}");
    assert!(o.matches("<redacted>").count() >= 4, "{o}");
    let o = print(
        "convoy-control-plane",
        "[git]\nurl = \"x\"\nbranchh = \"y\"\n",
        &[],
        &[],
    );
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("branchh"));
}

// ---- SIGTERM during an apply ------------------------------------------------

fn slow_stack(name: &str) -> RenderedStack {
    let image = convoy_tests::images::busybox_image("ops-it").expect("building the test image");
    // Healthy only after ~10 s: the gate is in progress when SIGTERM lands,
    // even on a loaded machine.
    let svc = Service {
        image,
        command: Some(vec![
            "sh".into(),
            "-c".into(),
            "sleep 10; touch /tmp/ok; exec sleep 3600".into(),
        ]),
        healthcheck: Some(Healthcheck {
            test: vec!["CMD".into(), "test".into(), "-f".into(), "/tmp/ok".into()],
            interval: Some(Duration::from_secs(1)),
            timeout: Some(Duration::from_secs(1)),
            retries: Some(30),
            start_period: None,
            start_interval: None,
            disable: false,
        }),
        stop_grace_period: Some(Duration::from_secs(1)),
        ..Default::default()
    };
    let compose = ComposeFile {
        services: BTreeMap::from([("slow".to_string(), svc)]),
        ..Default::default()
    };
    let health = HealthPolicy {
        deadline: Duration::from_secs(60),
        min_healthy: Duration::from_secs(1),
        probes: Vec::new(),
    };
    RenderedStack {
        name: name.to_string(),
        revision: content_hash(&(name, &compose, &health)),
        compose,
        health,
        after: Vec::new(),
        remove_volumes: false,
        files: BTreeMap::new(),
    }
}

fn stack_containers(stack: &str) -> Vec<String> {
    let out = Command::new("docker")
        .args(["ps", "-q", "--filter"])
        .arg(format!("label=com.docker.compose.project={stack}"))
        .output()
        .expect("docker must be reachable for this test");
    assert!(
        out.status.success(),
        "DOCKER UNREACHABLE: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

struct RemoveStack(String);
impl Drop for RemoveStack {
    fn drop(&mut self) {
        let ids = Command::new("docker")
            .args(["ps", "-aq", "--filter"])
            .arg(format!("label=com.docker.compose.project={}", self.0))
            .output();
        if let Ok(o) = ids {
            for id in String::from_utf8_lossy(&o.stdout).lines() {
                let _ = Command::new("docker").args(["rm", "-f", id]).output();
            }
        }
        let _ = Command::new("docker")
            .args(["network", "rm", &format!("{}_default", self.0)])
            .output();
    }
}

fn status(dir: &Path) -> serde_json::Value {
    let out = ok(&Command::new(binary("convoy-agent").unwrap())
        .args(["status", "--json", "--data-dir"])
        .arg(dir)
        .output()
        .unwrap());
    serde_json::from_str(&out).unwrap()
}

#[test]
fn sigterm_during_an_apply_parks_it_keeps_containers_and_a_restart_converges() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("cp");
    let admin = init_cp(&data);
    let cp = Cp {
        data,
        agent_port: free_port(),
        api_port: free_port(),
        admin,
    };
    let cp_log = tmp.path().join("cp.log");
    let _cp_child = Kill(cp.command(&cp_log).spawn().unwrap());
    cp.wait_api();
    let agent_dir = tmp.path().join("agent");
    enroll(&cp, "sigterm-host", &agent_dir);

    // Desired state goes into the journal through the local apply command,
    // which returns once the containers exist; the health gate is left for
    // the daemon to resume.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let name = format!("cvtops{}x{nanos}", std::process::id());
    let _cleanup = RemoveStack(name.clone());
    let stack = slow_stack(&name);
    let revision = stack.revision.clone();
    let state = HostState {
        format: HOST_STATE_FORMAT,
        fleet: "ops".into(),
        host: "sigterm-host".into(),
        revision: content_hash(&[(name.as_str(), revision.as_str())]),
        stacks: vec![stack],
    };
    let state_file = tmp.path().join("state.json");
    std::fs::write(&state_file, serde_json::to_vec(&state).unwrap()).unwrap();
    let t_apply = Instant::now();
    Command::new(binary("convoy-agent").unwrap())
        .args(["apply", "--data-dir"])
        .arg(&agent_dir)
        .arg("--state")
        .arg(&state_file)
        .output()
        .unwrap();
    let st = status(&agent_dir);
    assert_ne!(
        st["stacks"][0]["phase"], "healthy",
        "gate finished too early to test: {st}"
    );

    // The daemon resumes the gate; SIGTERM it mid-gate.
    let notify = Notify::new(tmp.path());
    let log = tmp.path().join("agent.log");
    let mut agent = Kill(
        agent_run(&agent_dir, &log)
            .env("NOTIFY_SOCKET", &notify.path)
            .env("WATCHDOG_USEC", "400000")
            .spawn()
            .unwrap(),
    );
    notify.wait_for("READY=1", Duration::from_secs(20));
    assert!(
        agent_dir.join("journal").exists(),
        "READY before the journal was opened"
    );
    notify.wait_for("WATCHDOG=1", Duration::from_secs(2));
    assert!(
        t_apply.elapsed() < Duration::from_secs(9),
        "too slow to catch the gate in progress ({:?})",
        t_apply.elapsed()
    );
    std::thread::sleep(Duration::from_millis(300));
    sigterm(&agent.0);
    notify.wait_for("STOPPING=1", Duration::from_secs(5));
    let (success, took) = wait_exit(&mut agent.0, Duration::from_secs(10));
    let agent_log = std::fs::read_to_string(&log).unwrap();
    assert!(success, "agent exit status: {agent_log}");
    assert!(took < Duration::from_secs(5), "exit took {took:?}");
    eprintln!("agent exited {took:?} after SIGTERM mid-gate");

    // Containers belong to dockerd: still running.
    assert_eq!(
        stack_containers(&name).len(),
        1,
        "container stopped with the agent"
    );
    // The journal opens and reads (the sled lock was released).
    let st = status(&agent_dir);
    assert_eq!(st["stacks"][0]["stack"], name.as_str());
    assert_eq!(st["stacks"][0]["desired_revision"], revision.as_str());
    // Parked mid-gate, not finished: the restart below has work to do.
    assert_ne!(st["stacks"][0]["phase"], "healthy", "{st}");
    assert!(st["stacks"][0]["lkg_revision"].is_null(), "{st}");

    // A restarted agent finishes the gate.
    let mut agent = Kill(agent_run(&agent_dir, &log).spawn().unwrap());
    cp.wait_connected("sigterm-host", Duration::from_secs(20));
    // Healthy at ~10 s after the container started, +1 s min_healthy.
    let settle = Duration::from_secs(16).saturating_sub(t_apply.elapsed());
    std::thread::sleep(settle.max(Duration::from_secs(3)));
    sigterm(&agent.0);
    let (success, _) = wait_exit(&mut agent.0, Duration::from_secs(10));
    assert!(success);
    let st = status(&agent_dir);
    let s = &st["stacks"][0];
    assert_eq!(
        s["phase"],
        "healthy",
        "{st}\n{}",
        std::fs::read_to_string(&log).unwrap()
    );
    assert_eq!(s["applied_revision"], revision.as_str());
    assert_eq!(s["lkg_revision"], revision.as_str());
    assert_eq!(
        stack_containers(&name).len(),
        1,
        "duplicated or lost containers"
    );
}

// ---- backup and restore -------------------------------------------------------

#[test]
fn backup_during_writes_restores_to_a_working_control_plane() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("cp");
    let admin = init_cp(&data);
    let cp = Cp {
        data: data.clone(),
        agent_port: free_port(),
        api_port: free_port(),
        admin: admin.clone(),
    };
    let cp_log = tmp.path().join("cp.log");
    let mut cp_child = Kill(cp.command(&cp_log).spawn().unwrap());
    cp.wait_api();

    // An enrolled, connected agent.
    let agent_dir = tmp.path().join("agent");
    enroll(&cp, "backup-host", &agent_dir);
    let agent_log = tmp.path().join("agent.log");
    let _agent = Kill(agent_run(&agent_dir, &agent_log).spawn().unwrap());
    cp.wait_connected("backup-host", Duration::from_secs(20));
    // A join token issued before the backup: usable after the restore.
    let early = cp.join_token("late-host");

    // Writes while the backup runs: join tokens created through the API.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        let (api_port, admin, ca) = (cp.api_port, admin.clone(), data.join("ca.pem"));
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let o = Command::new(binary("convoy").unwrap())
                    .args(["tokens", "create", "--host", &format!("w{n}")])
                    .env("CONVOY_API", format!("https://127.0.0.1:{api_port}"))
                    .env("CONVOY_TOKEN", &admin)
                    .env("CONVOY_CA", &ca)
                    .output()
                    .unwrap();
                assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
                n += 1;
            }
            n
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    let backup = tmp.path().join("cp.backup");
    // Without a token the running daemon's store cannot be read.
    let o = Command::new(binary("convoy-control-plane").unwrap())
        .args(["backup", "--data-dir"])
        .arg(&data)
        .arg("--out")
        .arg(&backup)
        .env_remove("CONVOY_TOKEN")
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("admin API token"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = Command::new(binary("convoy-control-plane").unwrap())
        .args(["backup", "--data-dir"])
        .arg(&data)
        .arg("--out")
        .arg(&backup)
        .env("CONVOY_API", format!("https://127.0.0.1:{}", cp.api_port))
        .env("CONVOY_TOKEN", &admin)
        .output()
        .unwrap();
    ok(&o);
    let said = String::from_utf8_lossy(&o.stderr);
    assert!(said.contains("online backup"), "{said}");
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let written = writer.join().unwrap();
    assert!(
        written >= 2,
        "only {written} tokens written during the backup"
    );
    eprintln!("{written} join tokens created around the backup; {said}");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&backup).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // Lose the control plane entirely; restore into a fresh dir.
    sigterm(&cp_child.0);
    assert!(wait_exit(&mut cp_child.0, Duration::from_secs(15)).0);
    drop(cp_child);
    std::fs::remove_dir_all(&data).unwrap();
    let restored = tmp.path().join("restored");
    std::fs::create_dir(&restored).unwrap();
    std::fs::write(restored.join("junk"), "x").unwrap();
    let restore = |force: bool| {
        let mut c = Command::new(binary("convoy-control-plane").unwrap());
        c.args(["restore", "--data-dir"])
            .arg(&restored)
            .arg("--from")
            .arg(&backup);
        if force {
            c.arg("--force");
        }
        c.output().unwrap()
    };
    let o = restore(false);
    assert!(!o.status.success(), "restored over a non-empty dir");
    assert!(String::from_utf8_lossy(&o.stderr).contains("--force"));
    ok(&restore(true));
    for key in ["ca-key.pem", "server-key.pem"] {
        let mode = std::fs::metadata(restored.join(key))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{key}");
    }

    // The restored control plane starts on the same ports; the agent
    // reconnects with its certificate, the admin token and a join token
    // from before the backup still work.
    let cp2 = Cp {
        data: restored.clone(),
        agent_port: cp.agent_port,
        api_port: cp.api_port,
        admin,
    };
    let _cp2 = Kill(cp2.command(&tmp.path().join("cp2.log")).spawn().unwrap());
    cp2.wait_api();
    cp2.wait_connected("backup-host", Duration::from_secs(30));
    let late_dir = tmp.path().join("late-agent");
    ok(&Command::new(binary("convoy-agent").unwrap())
        .args([
            "enroll",
            "--server",
            &format!("127.0.0.1:{}", cp2.agent_port),
        ])
        .args(["--token", &early, "--data-dir"])
        .arg(&late_dir)
        .output()
        .unwrap());
    // With the daemon stopped, the backup is taken offline (no token).
    drop(_cp2);
    let offline = tmp.path().join("offline.backup");
    let o = Command::new(binary("convoy-control-plane").unwrap())
        .args(["backup", "--data-dir"])
        .arg(&restored)
        .arg("--out")
        .arg(&offline)
        .env_remove("CONVOY_TOKEN")
        .output()
        .unwrap();
    ok(&o);
    assert!(String::from_utf8_lossy(&o.stderr).contains("offline backup"));
    assert!(std::fs::metadata(&offline).unwrap().len() > 1000);
}
