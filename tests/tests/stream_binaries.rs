//! The real binaries: `convoy-control-plane init/run`, `convoy tokens
//! create / hosts / revoke`, `convoy-agent enroll/run`. The agent survives
//! a control-plane restart (kill -9 and start again) and is cut off by
//! `convoy revoke` within a second.

#![allow(clippy::unwrap_used, clippy::expect_used)]
// Plain threads drive child processes here; no tokio runtime to block.
#![allow(clippy::disallowed_methods)]

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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

fn start_cp(data: &Path, agent_port: u16, api_port: u16, log: &Path) -> Kill {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    Kill(
        Command::new(binary("convoy-control-plane").unwrap())
            .args(["run", "--data-dir"])
            .arg(data)
            .args(["--agent-listen", &format!("127.0.0.1:{agent_port}")])
            .args(["--api-listen", &format!("127.0.0.1:{api_port}")])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    )
}

struct Cli {
    api: String,
    token: String,
    ca: std::path::PathBuf,
}

impl Cli {
    fn run(&self, args: &[&str]) -> std::process::Output {
        Command::new(binary("convoy").unwrap())
            .args(args)
            .env("CONVOY_API", &self.api)
            .env("CONVOY_TOKEN", &self.token)
            .env("CONVOY_CA", &self.ca)
            .output()
            .unwrap()
    }

    fn host(&self, name: &str) -> Option<serde_json::Value> {
        let out = self.run(&["hosts", "--json"]);
        if !out.status.success() {
            return None;
        }
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        v.as_array()?.iter().find(|h| h["name"] == name).cloned()
    }

    fn wait_connected(&self, name: &str, want: bool, within: Duration) -> Duration {
        let t0 = Instant::now();
        loop {
            if self
                .host(name)
                .is_some_and(|h| h["connected"].as_bool() == Some(want))
            {
                return t0.elapsed();
            }
            assert!(
                t0.elapsed() < within,
                "{name} not connected={want} within {within:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[test]
fn agent_survives_restart_and_revoke_cuts_it_off() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("cp");
    let out = Command::new(binary("convoy-control-plane").unwrap())
        .args([
            "init",
            "--fleet",
            "test",
            "--server-name",
            "127.0.0.1",
            "--data-dir",
        ])
        .arg(&data)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let admin = text
        .lines()
        .find_map(|l| l.strip_prefix("admin API token: "))
        .unwrap()
        .trim()
        .to_owned();
    // init refuses to overwrite.
    let again = Command::new(binary("convoy-control-plane").unwrap())
        .args([
            "init",
            "--fleet",
            "test",
            "--server-name",
            "127.0.0.1",
            "--data-dir",
        ])
        .arg(&data)
        .output()
        .unwrap();
    assert!(!again.status.success());

    let (agent_port, api_port) = (free_port(), free_port());
    let cp_log = tmp.path().join("cp.log");
    let mut cp = start_cp(&data, agent_port, api_port, &cp_log);
    let cli = Cli {
        api: format!("https://127.0.0.1:{api_port}"),
        token: admin,
        ca: data.join("ca.pem"),
    };
    // Wait for the API.
    let t0 = Instant::now();
    while !cli.run(&["hosts"]).status.success() {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "API did not come up"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // A read-less caller is refused.
    let bad = Cli {
        token: "cvat_nope".into(),
        ..Cli {
            api: cli.api.clone(),
            token: String::new(),
            ca: cli.ca.clone(),
        }
    };
    let o = bad.run(&["hosts"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("401"));

    let o = cli.run(&[
        "tokens", "create", "--host", "node-1", "--labels", "gpu=a100", "--ttl", "5m",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let token = String::from_utf8(o.stdout).unwrap().trim().to_owned();
    let agent_dir = tmp.path().join("agent");
    let o = Command::new(binary("convoy-agent").unwrap())
        .args([
            "enroll",
            "--server",
            &format!("127.0.0.1:{agent_port}"),
            "--token",
            &token,
            "--data-dir",
        ])
        .arg(&agent_dir)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let agent_cfg = tmp.path().join("agent.toml");
    std::fs::write(&agent_cfg, "backoff_cap = \"2s\"\n").unwrap();
    let agent_log = std::fs::File::create(tmp.path().join("agent.log")).unwrap();
    let mut agent = Kill(
        Command::new(binary("convoy-agent").unwrap())
            .args(["run", "--data-dir"])
            .arg(&agent_dir)
            .arg("--config")
            .arg(&agent_cfg)
            .stderr(agent_log)
            .spawn()
            .unwrap(),
    );
    cli.wait_connected("node-1", true, Duration::from_secs(10));
    let h = cli.host("node-1").unwrap();
    assert_eq!(h["labels"]["gpu"], "a100");
    assert!(h["cert_not_after_unix"].as_u64().unwrap() > 0);

    // Kill the control plane hard and start it again: the agent comes back.
    cp.0.kill().unwrap();
    cp.0.wait().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    drop(cp);
    cp = start_cp(&data, agent_port, api_port, &cp_log);
    let back = cli.wait_connected("node-1", true, Duration::from_secs(20));
    eprintln!("agent reconnected {back:?} after the restart");

    // Revoke: stream gone within a second, and it stays gone.
    let t0 = Instant::now();
    let o = cli.run(&["revoke", "node-1"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("live stream closed"));
    cli.wait_connected("node-1", false, Duration::from_secs(1));
    eprintln!("revoked stream closed within {:?}", t0.elapsed());
    std::thread::sleep(Duration::from_secs(3));
    let h = cli.host("node-1").unwrap();
    assert_eq!(h["connected"], false);
    assert_eq!(h["revoked"], true);
    let log = std::fs::read_to_string(&cp_log).unwrap();
    assert!(log.contains("revoked certificate refused"), "{log}");

    // SIGTERM: both daemons exit cleanly.
    for child in [&mut agent.0, &mut cp.0] {
        let pid = child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
    }
    for child in [&mut agent.0, &mut cp.0] {
        let t0 = Instant::now();
        loop {
            if let Some(st) = child.try_wait().unwrap() {
                assert!(st.success(), "exit status {st}");
                break;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "no exit after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
