//! `convoy validate` against broken fleet repos: each case asserts the exit
//! code, the file (with line where it is certain) and the message. The real
//! binary runs on real files in a temp dir.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Output};

const FLEET: &str = r#"[fleet]
name = "t"

[hosts.a]
labels = { role = "web", env = "prod" }

[stacks.web]
path = "stacks/web"
hosts = "role=web"
"#;

const COMPOSE: &str = "services:\n  app:\n    image: busybox\n";

struct Repo {
    dir: tempfile::TempDir,
}

impl Repo {
    fn base() -> Self {
        let r = Self {
            dir: tempfile::tempdir().unwrap(),
        };
        r.write("fleet.toml", FLEET);
        r.write("stacks/web/compose.yaml", COMPOSE);
        r
    }

    fn write(&self, rel: &str, content: &str) -> &Self {
        let p = self.dir.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
        self
    }

    fn fleet_append(&self, extra: &str) -> &Self {
        self.write("fleet.toml", &format!("{FLEET}{extra}"))
    }

    fn run(&self, args: &[&str]) -> Output {
        validate(self.dir.path(), args)
    }

    /// Asserts exit 1 and that every (location prefix, message part) pair
    /// appears on one line of stderr.
    fn rejects(&self, expected: &[(&str, &str)]) -> String {
        let out = self.run(&[]);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(
            out.status.code(),
            Some(1),
            "expected exit 1; stderr:\n{stderr}"
        );
        for (loc, msg) in expected {
            assert!(
                stderr
                    .lines()
                    .any(|l| l.starts_with(loc) && l.contains(msg)),
                "no line starting with {loc:?} containing {msg:?} in:\n{stderr}"
            );
        }
        stderr
    }
}

fn validate(path: &Path, args: &[&str]) -> Output {
    let bin = convoy_tests::binary("convoy").unwrap();
    Command::new(bin)
        .arg("validate")
        .arg(path)
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn the_base_repo_is_valid() {
    let out = Repo::base().run(&[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "valid");
}

#[test]
fn examples_fleet_is_valid_and_plans_per_host() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/fleet");
    let out = validate(&root, &["--plan"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let section = |host: &str| -> String {
        let start = stdout.find(&format!("host {host} ")).unwrap();
        let rest = &stdout[start + 1..];
        let end = rest
            .find("\nhost ")
            .or_else(|| rest.find("\nrollout"))
            .unwrap();
        rest[..end].to_owned()
    };
    let gpu = section("rtx3090");
    let (data, n8n, ollama) = (
        gpu.find("stack data").unwrap(),
        gpu.find("stack n8n").unwrap(),
        gpu.find("stack ollama").unwrap(),
    );
    assert!(data < n8n, "n8n is after data:\n{gpu}");
    assert!(ollama > 0);
    assert!(!gpu.contains("stack proxy"));
    assert!(section("vps").contains("stack proxy"));
    assert!(!section("vps").contains("stack monitoring"));
    assert!(section("thinkpad").contains("stack monitoring"));
    assert!(
        stdout.contains("wave 1 staging [env=staging] (all at once): thinkpad"),
        "{stdout}"
    );
    assert!(
        stdout.contains("wave 2 prod [env=prod] (max_parallel 1): rtx3090, vps"),
        "{stdout}"
    );

    // JSON: the rendered state of a host carries the GPU reservation.
    let out = validate(&root, &["--plan", "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["valid"], true);
    let stacks = v["plan"]["hosts"]["rtx3090"]["stacks"].as_array().unwrap();
    let ollama = stacks.iter().find(|s| s["name"] == "ollama").unwrap();
    let dev = &ollama["compose"]["services"]["ollama"]["resources"]["reservations"]["devices"][0];
    assert_eq!(dev["driver"], "nvidia");
    assert_eq!(dev["count"], "all");
    assert_eq!(dev["capabilities"][0], "gpu");
    // Interpolated from the stack's .env; env_file merged.
    let n8n = stacks.iter().find(|s| s["name"] == "n8n").unwrap();
    let env = &n8n["compose"]["services"]["n8n"]["environment"];
    assert_eq!(env["N8N_HOST"], "n8n.example.org");
    assert_eq!(env["N8N_ENCRYPTION_KEY"], "example-only-change-me");
    assert_eq!(
        n8n["compose"]["services"]["n8n"]["image"],
        "docker.n8n.io/n8nio/n8n:1.64.0"
    );
}

#[test]
fn usage_errors_exit_2() {
    let out = validate(Path::new("/nonexistent/fleet"), &[]);
    assert_eq!(out.status.code(), Some(2));
    let out = Repo::base().run(&["--bogus"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn json_lists_every_problem_with_its_location() {
    let r = Repo::base();
    r.write(
        "stacks/web/compose.yaml",
        "services:\n  app:\n    imagee: x\n",
    );
    let out = r.run(&["--json"]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["valid"], false);
    let problems = v["problems"].as_array().unwrap();
    let p = problems
        .iter()
        .find(|p| {
            p["message"]
                .as_str()
                .unwrap()
                .contains("unknown key `imagee`")
        })
        .unwrap();
    assert_eq!(p["file"], "stacks/web/compose.yaml");
    assert_eq!(p["line"], 3);
    assert_eq!(p["col"], 5);
    assert!(
        problems
            .iter()
            .any(|p| p["message"].as_str().unwrap().contains("has no `image`"))
    );
}

// ---- broken repos: one kind per test ----

#[test]
fn b01_toml_syntax_error() {
    Repo::base()
        .write("fleet.toml", "[fleet]\nname = \n")
        .rejects(&[("fleet.toml:2:", "TOML syntax error")]);
}

#[test]
fn b02_unknown_key_in_fleet_toml() {
    Repo::base()
        .fleet_append("[stacks.web.health]\ndeadlin = \"10s\"\n")
        .rejects(&[("fleet.toml:11:1:", "unknown key `deadlin`")]);
}

#[test]
fn b03_missing_fleet_toml() {
    let r = Repo::base();
    std::fs::remove_file(r.dir.path().join("fleet.toml")).unwrap();
    r.rejects(&[("fleet.toml:", "cannot read the fleet file")]);
}

#[test]
fn b04_stack_path_missing() {
    Repo::base()
        .write(
            "fleet.toml",
            &FLEET.replace("stacks/web\"", "stacks/nope\""),
        )
        .rejects(&[("fleet.toml:7:", "path \"stacks/nope\" is not a directory")]);
}

#[test]
fn b05_stack_path_escapes_repo() {
    Repo::base()
        .write(
            "fleet.toml",
            &FLEET.replace("\"stacks/web\"", "\"../../etc\""),
        )
        .rejects(&[("fleet.toml:8:8:", "leaves the repository")]);
}

#[test]
fn b06_bad_selector() {
    Repo::base()
        .write(
            "fleet.toml",
            &FLEET.replace("\"role=web\"", "\"role in (web\""),
        )
        .rejects(&[("fleet.toml:9:", "`hosts`")]);
}

#[test]
fn b07_after_cycle() {
    let r = Repo::base();
    r.write("stacks/db/compose.yaml", COMPOSE);
    r.write(
        "fleet.toml",
        &format!("{}after = [\"db\"]\n\n[stacks.db]\npath = \"stacks/db\"\nhosts = \"role=web\"\nafter = [\"web\"]\n", FLEET),
    );
    r.rejects(&[("fleet.toml:", "`after` forms a cycle: db -> web -> db")]);
}

#[test]
fn b08_after_unknown_stack() {
    Repo::base()
        .write("fleet.toml", &format!("{FLEET}after = [\"ghost\"]\n"))
        .rejects(&[("fleet.toml:7:", "is after `ghost`, which is not a stack")]);
}

#[test]
fn b09_bad_duration() {
    Repo::base()
        .fleet_append("[stacks.web.health]\ndeadline = \"10x\"\n")
        .rejects(&[("fleet.toml:11:12:", "invalid unit \"x\"")]);
}

#[test]
fn b10_min_healthy_longer_than_deadline() {
    Repo::base()
        .fleet_append("[stacks.web.health]\ndeadline = \"10s\"\nmin_healthy = \"30s\"\n")
        .rejects(&[(
            "fleet.toml:12:15:",
            "min_healthy (30s) is longer than deadline (10s)",
        )]);
}

#[test]
fn b11_yaml_syntax_error() {
    Repo::base()
        .write(
            "stacks/web/compose.yaml",
            "services:\n  app:\n    image: [busybox\n",
        )
        .rejects(&[("stacks/web/compose.yaml:", "YAML syntax error")]);
}

#[test]
fn b12_unsupported_compose_key() {
    Repo::base()
        .write(
            "stacks/web/compose.yaml",
            "services:\n  app:\n    image: busybox\n    build: .\n",
        )
        .rejects(&[(
            "stacks/web/compose.yaml:4:5:",
            "`build` in service `app` is not supported",
        )]);
}

#[test]
fn b13_unknown_compose_key() {
    Repo::base()
        .write(
            "stacks/web/compose.yaml",
            "services:\n  app:\n    image: busybox\n    restrat: always\n",
        )
        .rejects(&[(
            "stacks/web/compose.yaml:4:5:",
            "unknown key `restrat` in service `app`",
        )]);
}

#[test]
fn b14_depends_on_cycle() {
    Repo::base()
        .write(
            "stacks/web/compose.yaml",
            "services:\n  a:\n    image: x\n    depends_on: [b]\n  b:\n    image: x\n    depends_on: [a]\n",
        )
        .rejects(&[("stacks/web/compose.yaml:2:3:", "depends_on forms a cycle: a -> b -> a")]);
}

#[test]
fn b15_depends_on_unknown_service() {
    Repo::base()
        .write(
            "stacks/web/compose.yaml",
            "services:\n  a:\n    image: x\n    depends_on: [db]\n",
        )
        .rejects(&[(
            "stacks/web/compose.yaml:4:",
            "depends on `db`, which is not a service",
        )]);
}

#[test]
fn b16_bad_port() {
    Repo::base()
        .write(
            "stacks/web/compose.yaml",
            "services:\n  a:\n    image: x\n    ports:\n      - \"70000:80\"\n",
        )
        .rejects(&[("stacks/web/compose.yaml:5:9:", "invalid port \"70000\"")]);
}

#[test]
fn b17_undeclared_network() {
    Repo::base()
        .write(
            "stacks/web/compose.yaml",
            "services:\n  a:\n    image: x\n    networks: [front]\n",
        )
        .rejects(&[(
            "stacks/web/compose.yaml:4:",
            "network `front`, which is not declared",
        )]);
}

#[test]
fn b18_undeclared_volume() {
    Repo::base()
        .write(
            "stacks/web/compose.yaml",
            "services:\n  a:\n    image: x\n    volumes:\n      - data:/data\n",
        )
        .rejects(&[(
            "stacks/web/compose.yaml:5:7:",
            "volume `data`, which is not declared",
        )]);
}

#[test]
fn b19_same_host_port_in_two_stacks_on_one_host() {
    let r = Repo::base();
    r.write(
        "stacks/web/compose.yaml",
        "services:\n  a:\n    image: x\n    ports: [\"8080:80\"]\n",
    );
    r.write(
        "stacks/api/compose.yaml",
        "services:\n  b:\n    image: x\n    ports:\n      - 127.0.0.1:8080:81\n",
    );
    r.fleet_append("\n[stacks.api]\npath = \"stacks/api\"\nhosts = \"env=prod\"\n");
    r.rejects(&[("stacks/", "port 8080 is published by")]);
}

#[test]
fn b20_stack_without_services() {
    Repo::base()
        .write("stacks/web/compose.yaml", "services: {}\n")
        .rejects(&[("stacks/web/compose.yaml:1:", "no services")]);
    Repo::base()
        .write("stacks/web/compose.yaml", "# nothing\n")
        .rejects(&[("stacks/web/compose.yaml:", "empty")]);
}

#[test]
fn b21_bad_gpu_requests() {
    let gpu = "services:\n  a:\n    image: x\n    deploy:\n      resources:\n        reservations:\n          devices:\n            - driver: nvidia\n              count: 1\n              device_ids: [\"0\"]\n              capabilities: [gpu]\n            - driver: nvidia\n              count: 1\n";
    Repo::base()
        .write("stacks/web/compose.yaml", gpu)
        .rejects(&[
            (
                "stacks/web/compose.yaml:9:22:",
                "`count` and `device_ids` cannot both be set",
            ),
            (
                "stacks/web/compose.yaml:12:15:",
                "`capabilities` is required",
            ),
        ]);
}

#[test]
fn b22_required_variable_missing() {
    Repo::base()
        .write(
            "stacks/web/compose.yaml",
            "services:\n  a:\n    image: \"x:${TAG:?set TAG in .env}\"\n",
        )
        .rejects(&[(
            "stacks/web/compose.yaml:3:12:",
            "required variable TAG is missing a value: set TAG in .env",
        )]);
}

#[test]
fn b23_invalid_interpolation() {
    Repo::base()
        .write(
            "stacks/web/compose.yaml",
            "services:\n  a:\n    image: x\n    command: echo $1\n",
        )
        .rejects(&[(
            "stacks/web/compose.yaml:4:14:",
            "invalid interpolation format",
        )]);
}

#[test]
fn b24_service_without_image() {
    Repo::base()
        .write(
            "stacks/web/compose.yaml",
            "services:\n  a:\n    restart: always\n",
        )
        .rejects(&[("stacks/web/compose.yaml:3:", "service `a` has no `image`")]);
}

#[test]
fn b25_probe_for_unknown_service() {
    Repo::base()
        .fleet_append("[stacks.web.health]\nprobes = [{ service = \"nope\", http = \"http://127.0.0.1:80/\" }]\n")
        .rejects(&[("fleet.toml:7:", "probe for service `nope`")]);
}

#[test]
fn b26_host_in_no_wave() {
    Repo::base()
        .fleet_append("\n[rollout]\nwaves = [{ name = \"staging\", hosts = \"env=staging\" }]\n")
        .rejects(&[("fleet.toml:4:", "host `a` is in no rollout wave")]);
}

#[test]
fn b27_duplicate_yaml_key() {
    Repo::base()
        .write(
            "stacks/web/compose.yaml",
            "services:\n  app:\n    image: a\n    image: b\n",
        )
        .rejects(&[("stacks/web/compose.yaml:4:5:", "duplicate key `image`")]);
}

#[test]
fn b28_bad_restart_policy() {
    Repo::base()
        .write(
            "stacks/web/compose.yaml",
            "services:\n  app:\n    image: a\n    restart: sometimes\n",
        )
        .rejects(&[(
            "stacks/web/compose.yaml:4:14:",
            "\"sometimes\" is not one of",
        )]);
}

#[test]
fn b29_missing_env_file_and_bind_source() {
    Repo::base()
        .write(
            "stacks/web/compose.yaml",
            "services:\n  app:\n    image: a\n    env_file: [secrets.env]\n    volumes:\n      - ./conf/nginx.conf:/etc/nginx.conf:ro\n",
        )
        .rejects(&[
            ("stacks/web/compose.yaml:4:", "secrets.env does not exist"),
            ("stacks/web/compose.yaml:6:9:", "./conf/nginx.conf does not exist in the stack directory"),
        ]);
}

#[test]
fn b30_bad_on_failure_and_wave_parallelism() {
    Repo::base()
        .fleet_append("\n[rollout]\non_failure = \"retry\"\nwaves = [{ name = \"all\", hosts = \"\", max_parallel = 0 }]\n")
        .rejects(&[
            ("fleet.toml:", "\"retry\" is not \"halt\" or \"rollback\""),
            ("fleet.toml:", "max_parallel must be between 1"),
        ]);
}

#[test]
fn b31_invalid_names() {
    Repo::base()
        .write(
            "fleet.toml",
            &FLEET
                .replace("[stacks.web]", "[stacks.Web]")
                .replace("[hosts.a]", "[hosts.\"bad host\"]"),
        )
        .rejects(&[
            ("fleet.toml:7:", "invalid stack name \"Web\""),
            ("fleet.toml:4:", "invalid host name \"bad host\""),
        ]);
}

#[test]
fn b32_no_compose_file() {
    let r = Repo::base();
    std::fs::remove_file(r.dir.path().join("stacks/web/compose.yaml")).unwrap();
    r.write("stacks/web/README", "nothing");
    r.rejects(&[("fleet.toml:7:", "no compose.yaml")]);
}

#[test]
fn b33_bad_healthcheck() {
    Repo::base()
        .write(
            "stacks/web/compose.yaml",
            "services:\n  app:\n    image: a\n    healthcheck:\n      test: [\"curl\", \"x\"]\n      interval: soon\n",
        )
        .rejects(&[
            ("stacks/web/compose.yaml:5:13:", "must start with CMD, CMD-SHELL or NONE"),
            ("stacks/web/compose.yaml:6:17:", "interval"),
        ]);
}

#[test]
fn b34_bad_dotenv_line() {
    Repo::base()
        .write("stacks/web/.env", "TAG=1\nthis is not a variable\n")
        .rejects(&[("stacks/web/.env:2:1:", "invalid variable name")]);
}

#[test]
fn b35_every_problem_in_several_files_is_reported() {
    let r = Repo::base();
    r.write(
        "stacks/web/compose.yaml",
        "services:\n  a:\n    imagee: x\n    ports: [\"99999\"]\n",
    );
    r.fleet_append("[stacks.web.health]\ndeadline = \"soon\"\n");
    let stderr = r.rejects(&[
        ("stacks/web/compose.yaml:3:5:", "unknown key `imagee`"),
        ("stacks/web/compose.yaml:4:", "invalid port"),
        ("fleet.toml:11:", "deadline"),
    ]);
    assert!(stderr.contains("invalid: "), "{stderr}");
}

#[test]
fn b36_bind_source_escaping_the_stack_dir() {
    Repo::base()
        .write(
            "stacks/web/compose.yaml",
            "services:\n  a:\n    image: x\n    volumes: [\"../../../etc/passwd:/x\"]\n",
        )
        .rejects(&[("stacks/web/compose.yaml:4:", "leaves the stack directory")]);
}

#[test]
fn b37_symlink_out_of_the_repo() {
    let r = Repo::base();
    std::os::unix::fs::symlink("/etc", r.dir.path().join("stacks/web/etc")).unwrap();
    r.write(
        "stacks/web/compose.yaml",
        "services:\n  a:\n    image: x\n    volumes: [\"./etc/hostname:/h\"]\n",
    );
    r.rejects(&[("stacks/web/compose.yaml:4:", "outside the repository")]);
}

#[test]
fn warnings_do_not_fail_validation() {
    let r = Repo::base();
    r.write(
        "stacks/web/compose.yaml",
        "services:\n  a:\n    image: \"x:${TAG}\"\n",
    );
    let out = r.run(&[]);
    assert_eq!(out.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("stacks/web/compose.yaml:3:12: warning: variable TAG is not set"),
        "{stderr}"
    );
}
