//! `convoy-agent apply --fleet PATH --host NAME`: one host, no control
//! plane, the real Docker engine. What it creates is a compose project
//! (docker-compose lists it), unmanaged containers are never touched, and a
//! no-op re-apply changes nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;

fn docker(args: &[&str]) -> (bool, String) {
    let out = Command::new("docker")
        .args(args)
        .output()
        .expect("DOCKER CLI MISSING");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn cleanup(project: &str) {
    let (_, ids) = docker(&[
        "ps",
        "-aq",
        "--filter",
        &format!("label=com.docker.compose.project={project}"),
    ]);
    for id in ids.split_whitespace() {
        docker(&["rm", "-f", id]);
    }
    docker(&["network", "rm", &format!("{project}_default")]);
}

fn write_fleet(dir: &Path, image: &str, page: &str) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/quickstart");
    let fleet = std::fs::read_to_string(root.join("fleet.toml"))
        .unwrap()
        .replace("[stacks.hello]", "[stacks.applytest]")
        .replace("[stacks.hello.health]", "[stacks.applytest.health]")
        .replace("stacks/hello", "stacks/applytest")
        .replace("8088", "18089")
        .replace("min_healthy = \"5s\"", "min_healthy = \"2s\"");
    std::fs::create_dir_all(dir.join("stacks/applytest/www")).unwrap();
    std::fs::write(dir.join("fleet.toml"), fleet).unwrap();
    let compose = std::fs::read_to_string(root.join("stacks/hello/compose.yaml"))
        .unwrap()
        .replace("8088", "18089");
    std::fs::write(dir.join("stacks/applytest/compose.yaml"), compose).unwrap();
    std::fs::write(
        dir.join("stacks/applytest/.env"),
        format!("IMAGE={image}\n"),
    )
    .unwrap();
    std::fs::write(dir.join("stacks/applytest/www/index.html"), page).unwrap();
}

fn apply(agent: &Path, fleet: &Path, data: &Path) -> (bool, String) {
    let out = Command::new(agent)
        .args(["apply", "--host", "local", "--wait", "--fleet"])
        .arg(fleet)
        .arg("--data-dir")
        .arg(data)
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn container_id(name: &str) -> String {
    docker(&["inspect", "-f", "{{.Id}}", name])
        .1
        .trim()
        .to_owned()
}

#[test]
fn apply_from_a_local_fleet_repo() {
    let agent = convoy_tests::binary("convoy-agent").unwrap();
    let image = convoy_tests::images::busybox_image("agent-apply").unwrap();
    cleanup("applytest");
    let dir = tempfile::tempdir().unwrap();
    let fleet = dir.path().join("fleet");
    let data = dir.path().join("agent");
    write_fleet(&fleet, &image, "v1");

    // An unmanaged container in the same compose project: never touched.
    let (ok, out) = docker(&[
        "run",
        "-d",
        "--name",
        "applytest-foreign",
        "--label",
        "com.docker.compose.project=applytest",
        &image,
        "sleep",
        "3600",
    ]);
    assert!(ok, "{out}");
    let foreign = container_id("applytest-foreign");

    let (ok, out) = apply(&agent, &fleet, &data);
    assert!(ok, "first apply failed:\n{out}");
    assert!(out.contains("healthy"), "{out}");
    let first = container_id("applytest-web-1");
    assert!(!first.is_empty());

    // docker-compose (Debian's compose v1) sees a compose project.
    let ps = Command::new("docker-compose")
        .args(["-p", "applytest", "ps"])
        .current_dir(fleet.join("stacks/applytest"))
        .output();
    match ps {
        Ok(o) => {
            let text = String::from_utf8_lossy(&o.stdout);
            assert!(
                text.contains("applytest-web-1"),
                "docker-compose ps:\n{text}{}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
        Err(e) => {
            panic!("docker-compose is missing: ./test.sh installs it (.ci/install-deps): {e}")
        }
    }

    // No-op re-apply: nothing recreated.
    let (ok, out) = apply(&agent, &fleet, &data);
    assert!(ok, "{out}");
    assert_eq!(
        container_id("applytest-web-1"),
        first,
        "a no-op apply recreated the container"
    );

    // A changed bound file recreates the service; the foreign container stays.
    write_fleet(&fleet, &image, "v2");
    let (ok, out) = apply(&agent, &fleet, &data);
    assert!(ok, "{out}");
    assert_ne!(container_id("applytest-web-1"), first);
    assert_eq!(container_id("applytest-foreign"), foreign);

    // An unknown host and a broken repo are clear errors.
    let out = Command::new(&agent)
        .args(["apply", "--host", "nope", "--fleet"])
        .arg(&fleet)
        .arg("--data-dir")
        .arg(&data)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not in"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    cleanup("applytest");
}
