//! The README's run command, end to end: `convoy quickstart` brings up a
//! control plane, a local fleet repo, an enrolled agent and the demo stack
//! on the real Docker engine, and the first rollout completes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn docker(args: &[&str]) -> String {
    let out = Command::new("docker")
        .args(args)
        .output()
        .expect("DOCKER CLI MISSING");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn remove_demo() {
    for id in docker(&["ps", "-aq", "--filter", "label=dev.convoy.stack=hello"]).split_whitespace()
    {
        docker(&["rm", "-f", id]);
    }
    docker(&["network", "rm", "hello_default"]);
}

#[test]
fn quickstart_rolls_out_the_demo_stack() {
    let convoy = convoy_tests::binary("convoy").unwrap();
    remove_demo();
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(&convoy)
        // It saves a `quickstart` CLI context: into the test's dir, not
        // the user's ~/.config.
        .env("CONVOY_CLI_CONFIG", dir.path().join("cli-config.toml"))
        .arg("quickstart")
        .arg("--dir")
        .arg(dir.path().join("qs"))
        .args(["--agent-port", &free_port().to_string()])
        .args(["--api-port", &free_port().to_string()])
        .arg("--exit-after-rollout")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let agent_log = std::fs::read_to_string(dir.path().join("qs/agent.log")).unwrap_or_default();
    assert!(
        out.status.success(),
        "quickstart failed\nstdout:\n{stdout}\nstderr:\n{stderr}\nagent log:\n{agent_log}"
    );
    assert!(stdout.contains("completed"), "{stdout}");
    assert!(stdout.contains("export CONVOY_TOKEN=cvat_"), "{stdout}");
    let cli_config = std::fs::read_to_string(dir.path().join("cli-config.toml")).unwrap();
    assert!(
        cli_config.contains("current_context = \"quickstart\""),
        "{cli_config}"
    );
    // Stopping Convoy left the demo running, healthy, with our labels.
    let ps = docker(&[
        "ps",
        "--filter",
        "label=dev.convoy.stack=hello",
        "--format",
        "{{.Names}} {{.Status}} {{.Label \"com.docker.compose.project\"}}",
    ]);
    assert!(ps.contains("hello-web-1"), "{ps}");
    assert!(ps.contains("(healthy)"), "{ps}");
    assert!(ps.trim_end().ends_with("hello"), "{ps}");
    // The page from the repo is served (bound from the stack directory).
    let body = Command::new("busybox")
        .args(["wget", "-q", "-O", "-", "http://127.0.0.1:8088/"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&body.stdout).contains("Hello from Convoy"),
        "{}",
        String::from_utf8_lossy(&body.stderr)
    );
    remove_demo();
}
