//! `convoy quickstart`: a whole Convoy on this machine, on embedded
//! defaults — a control plane (generated CA, sled store), a local git fleet
//! repo made from `examples/quickstart`, one enrolled agent, and a first
//! rollout of a small demo stack. Ctrl-C stops Convoy; the demo stack stays
//! (stopping Convoy never stops your stacks) unless `--cleanup` was given.
//!
//! It also saves a `quickstart` context in the CLI's config file and makes
//! it current, so a plain `convoy status` in any shell talks to it
//! (`--cleanup` removes the context again).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use reqwest::Method;
use tokio::process::{Child, Command};

use crate::client::ApiClient;
use crate::commands::contexts;
use crate::config::Context as CliContext;
use crate::output::Ui;

/// The context `convoy quickstart` writes.
pub const CONTEXT: &str = "quickstart";

/// The quickstart fleet, embedded so the command works from any directory.
const FLEET_TOML: &str = include_str!("../../examples/quickstart/fleet.toml");
const COMPOSE: &str = include_str!("../../examples/quickstart/stacks/hello/compose.yaml");
const INDEX: &str = include_str!("../../examples/quickstart/stacks/hello/www/index.html");
/// The demo image the compose file names through `.env`.
pub const DEMO_IMAGE: &str = "convoy-demo/busybox:1";

#[derive(Debug, Clone)]
pub struct Options {
    pub dir: PathBuf,
    pub agent_port: u16,
    pub api_port: u16,
    /// Remove the demo containers and the quickstart dir on exit.
    pub cleanup: bool,
    /// Exit once the first rollout completed (CI, scripts).
    pub exit_after_rollout: bool,
}

fn sibling(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("locating this executable")?;
    let dir = exe.parent().context("executable has no directory")?;
    let p = dir.join(name);
    if !p.exists() {
        bail!(
            "{} not found next to {} — build every binary first: cargo build --workspace --bins",
            name,
            exe.display()
        );
    }
    Ok(p)
}

async fn run_ok(cmd: &mut Command, what: &str) -> anyhow::Result<String> {
    let out = cmd
        .output()
        .await
        .with_context(|| format!("running {what}"))?;
    if !out.status.success() {
        bail!(
            "{what} failed: {}{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

async fn docker_ok() -> bool {
    Command::new("docker")
        .args(["version", "--format", "{{.Server.Version}}"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await
        .is_ok_and(|s| s.success())
}

async fn image_exists(reference: &str) -> bool {
    Command::new("docker")
        .args(["image", "inspect", reference])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await
        .is_ok_and(|s| s.success())
}

/// The demo image: already here, pulled from a registry, or — with no
/// registry reachable — built from the host's busybox with `docker import`.
async fn ensure_demo_image(work: &Path) -> anyhow::Result<()> {
    if image_exists(DEMO_IMAGE).await {
        return Ok(());
    }
    println!("• building the demo image {DEMO_IMAGE}");
    let pulled = Command::new("docker")
        .args(["pull", "-q", "busybox:1.36"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await
        .is_ok_and(|s| s.success());
    if pulled {
        run_ok(
            Command::new("docker").args(["tag", "busybox:1.36", DEMO_IMAGE]),
            "docker tag",
        )
        .await?;
        return Ok(());
    }
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .map(Path::new)
        .find(|p| p.exists())
        .context(
            "no registry reachable and no busybox binary here to build the demo image from \
             (apt install busybox-static)",
        )?;
    let root = work.join("image-root");
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(root.join("bin"))?;
    std::fs::create_dir_all(root.join("etc"))?;
    std::fs::create_dir_all(root.join("tmp"))?;
    std::fs::copy(busybox, root.join("bin/busybox")).context("copying busybox")?;
    let list = run_ok(Command::new(busybox).arg("--list"), "busybox --list").await?;
    for applet in list
        .lines()
        .map(str::trim)
        .filter(|a| !a.is_empty() && *a != "busybox")
    {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet))?;
    }
    std::fs::write(root.join("etc/passwd"), "root:x:0:0:root:/:/bin/sh\n")?;
    let tar = work.join("image.tar");
    run_ok(
        Command::new("tar")
            .arg("-C")
            .arg(&root)
            .arg("-cf")
            .arg(&tar)
            .arg("."),
        "tar",
    )
    .await?;
    run_ok(
        Command::new("docker")
            .args([
                "import",
                "--change",
                "CMD [\"sh\"]",
                "--change",
                "ENV PATH=/bin",
            ])
            .arg(&tar)
            .arg(DEMO_IMAGE),
        "docker import",
    )
    .await?;
    let _ = std::fs::remove_dir_all(&root);
    let _ = std::fs::remove_file(&tar);
    Ok(())
}

/// Writes the quickstart fleet repo and commits it (once).
fn ensure_repo(repo: &Path) -> anyhow::Result<()> {
    if repo.join(".git").exists() {
        return Ok(());
    }
    std::fs::create_dir_all(repo.join("stacks/hello/www"))?;
    std::fs::write(repo.join("fleet.toml"), FLEET_TOML)?;
    std::fs::write(repo.join("stacks/hello/compose.yaml"), COMPOSE)?;
    std::fs::write(
        repo.join("stacks/hello/.env"),
        format!("IMAGE={DEMO_IMAGE}\n"),
    )?;
    std::fs::write(repo.join("stacks/hello/www/index.html"), INDEX)?;
    let r = git2::Repository::init_opts(
        repo,
        git2::RepositoryInitOptions::new().initial_head("main"),
    )
    .context("git init")?;
    let mut index = r.index()?;
    index.add_all(["*"], git2::IndexAddOption::DEFAULT, None)?;
    index.write()?;
    let tree = r.find_tree(index.write_tree()?)?;
    let sig = git2::Signature::now("Convoy quickstart", "quickstart@convoy.invalid")?;
    r.commit(Some("HEAD"), &sig, &sig, "quickstart fleet", &tree, &[])?;
    Ok(())
}

struct Daemon {
    name: &'static str,
    child: Child,
}

impl Daemon {
    async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            let _ = Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()
                .await;
        }
        match tokio::time::timeout(Duration::from_secs(15), self.child.wait()).await {
            Ok(_) => {}
            Err(_) => {
                eprintln!("{} did not stop in 15 s; killing it", self.name);
                let _ = self.child.kill().await;
            }
        }
    }
}

fn spawn(name: &'static str, bin: &Path, args: &[&str], log: &Path) -> anyhow::Result<Daemon> {
    let file = std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
    let err = file.try_clone()?;
    let child = Command::new(bin)
        .args(args)
        .stdout(file)
        .stderr(err)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {name}"))?;
    Ok(Daemon { name, child })
}

async fn wait_api(client: &ApiClient, deadline: Duration) -> anyhow::Result<()> {
    let start = Instant::now();
    loop {
        match client.request(Method::GET, "/api/v1/status", None).await {
            Ok(_) => return Ok(()),
            Err(e) if start.elapsed() > deadline => {
                return Err(e).context("the control plane's API did not come up");
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// This binary's path when `convoy` on PATH is not this binary (the
/// README's run command uses ./target/debug/convoy, and the next steps `cd`
/// elsewhere).
fn cli_path_if_not_on_path() -> Option<String> {
    let me = std::env::current_exe()
        .and_then(std::fs::canonicalize)
        .ok()?;
    let on_path = std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths)
            .any(|d| std::fs::canonicalize(d.join("convoy")).is_ok_and(|p| p == me))
    });
    (!on_path).then(|| me.display().to_string())
}

/// Saves the `quickstart` context (current from now on); a failure only
/// warns (the exports printed at the end work without it).
fn save_context(ui: &Ui, api: &str, ca: &Path, token_file: &Path) -> Option<PathBuf> {
    let ctx = CliContext {
        api: Some(api.to_owned()),
        ca: Some(ca.to_path_buf()),
        token: None,
        token_file: Some(token_file.to_path_buf()),
    };
    match contexts::save_current(CONTEXT, ctx) {
        Ok((path, before)) => {
            println!(
                "• saved the CLI context `{CONTEXT}` in {} (now current)",
                path.display()
            );
            if let Some(b) = before {
                println!("  (it was `{b}`: convoy context use {b} goes back)");
            }
            Some(path)
        }
        Err(e) => {
            ui.warn(&format!("could not save the CLI context: {e:#}"));
            None
        }
    }
}

pub async fn run(opts: Options, ui: &Ui) -> anyhow::Result<()> {
    let cp_bin = sibling("convoy-control-plane")?;
    let agent_bin = sibling("convoy-agent")?;
    if !docker_ok().await {
        bail!("the Docker engine is not reachable (is dockerd running, and may this user use it?)");
    }
    let work = if opts.dir.is_absolute() {
        opts.dir.clone()
    } else {
        std::env::current_dir()?.join(&opts.dir)
    };
    std::fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
    println!("• quickstart dir {}", work.display());
    ensure_demo_image(&work).await?;
    let repo = work.join("fleet-repo");
    ensure_repo(&repo)?;
    let cp_dir = work.join("control-plane");
    let token_file = work.join("admin-token");
    if !cp_dir.exists() {
        println!("• creating the control plane (CA, certificates, store)");
        let out = run_ok(
            Command::new(&cp_bin)
                .args([
                    "init",
                    "--fleet",
                    "quickstart",
                    "--server-name",
                    "127.0.0.1",
                    "--server-name",
                    "localhost",
                    "--data-dir",
                ])
                .arg(&cp_dir),
            "convoy-control-plane init",
        )
        .await?;
        let token = out
            .lines()
            .find_map(|l| l.strip_prefix("admin API token:"))
            .map(str::trim)
            .context("init printed no admin token")?
            .to_owned();
        convoy_kit::fsx::write_new(&token_file, token.as_bytes(), 0o600)
            .with_context(|| format!("writing {}", token_file.display()))?;
    }
    let token = std::fs::read_to_string(&token_file)
        .with_context(|| format!("reading {}", token_file.display()))?
        .trim()
        .to_owned();
    let config = work.join("control-plane.toml");
    std::fs::write(
        &config,
        format!(
            "# Written by `convoy quickstart`.\nagent_listen = \"127.0.0.1:{}\"\napi_listen = \"127.0.0.1:{}\"\n\n[git]\nurl = \"{}\"\nbranch = \"main\"\npoll_interval = \"3s\"\n",
            opts.agent_port,
            opts.api_port,
            repo.display()
        ),
    )?;
    let cp_dir_s = cp_dir.display().to_string();
    let config_s = config.display().to_string();
    let cp = spawn(
        "convoy-control-plane",
        &cp_bin,
        &["run", "--data-dir", &cp_dir_s, "--config", &config_s],
        &work.join("control-plane.log"),
    )?;
    let api = format!("https://127.0.0.1:{}", opts.api_port);
    let ca_path = cp_dir.join("ca.pem");
    let ca = std::fs::read_to_string(&ca_path)?;
    let client = ApiClient::new(
        &api,
        Some(token.clone()),
        &ca,
        &ca_path.display().to_string(),
    )?;
    println!(
        "• control plane starting (log: {})",
        work.join("control-plane.log").display()
    );
    wait_api(&client, Duration::from_secs(20)).await?;
    let saved = save_context(ui, &api, &ca_path, &token_file);

    let agent_dir = work.join("agent");
    if !agent_dir.join("cert.pem").exists() {
        println!("• enrolling this machine as host `local`");
        let v = client
            .request(
                Method::POST,
                "/api/v1/tokens",
                Some(serde_json::json!({"host": "local", "labels": {"env": "dev"}, "ttl": "10m"})),
            )
            .await?;
        let join = v
            .get("token")
            .and_then(|t| t.as_str())
            .context("no join token in the answer")?;
        run_ok(
            Command::new(&agent_bin)
                .args([
                    "enroll",
                    "--server",
                    &format!("127.0.0.1:{}", opts.agent_port),
                    "--token",
                    join,
                    "--data-dir",
                ])
                .arg(&agent_dir),
            "convoy-agent enroll",
        )
        .await?;
    }
    let agent_dir_s = agent_dir.display().to_string();
    let agent = spawn(
        "convoy-agent",
        &agent_bin,
        &["run", "--data-dir", &agent_dir_s],
        &work.join("agent.log"),
    )?;
    println!(
        "• agent running (log: {})",
        work.join("agent.log").display()
    );

    // Follow the first rollout.
    let start = Instant::now();
    let mut last = String::new();
    let outcome = loop {
        if start.elapsed() > Duration::from_secs(180) {
            break Err(anyhow::anyhow!(
                "the first rollout did not finish within 3 minutes; see the logs"
            ));
        }
        tokio::time::sleep(Duration::from_millis(700)).await;
        let Ok(v) = client
            .request(Method::GET, "/api/v1/rollouts/current", None)
            .await
        else {
            continue;
        };
        let summary = v
            .get("summary")
            .and_then(|s| s.as_str())
            .unwrap_or("")
            .to_owned();
        if summary != last {
            println!(
                "• rollout {}: {summary}",
                v.get("id").and_then(|s| s.as_str()).unwrap_or("?")
            );
            last = summary.clone();
        }
        if summary == "completed" {
            break Ok(());
        }
        if summary.starts_with("halted") || summary.starts_with("rolled back") {
            break Err(anyhow::anyhow!("the first rollout failed: {summary}"));
        }
    };
    match &outcome {
        Ok(()) => {
            println!();
            println!("Convoy is running. The demo stack answers on http://127.0.0.1:8088/");
            println!();
            if let Some(path) = &saved {
                println!(
                    "The CLI talks to it through the `{CONTEXT}` context ({}), from any shell.",
                    path.display()
                );
                println!("For scripts or other tools, the same as environment variables:");
            } else {
                println!("Point the CLI at it:");
            }
            println!("  export CONVOY_API={api}");
            println!("  export CONVOY_TOKEN={token}");
            println!("  export CONVOY_CA={}", ca_path.display());
            println!();
            println!("Try next:");
            if let Some(path) = cli_path_if_not_on_path() {
                println!("  alias convoy={path}");
            }
            println!("  convoy status                      # the fleet at a glance");
            println!("  convoy hosts                       # this machine, enrolled as `local`");
            println!("  cd {}", repo.display());
            println!("  $EDITOR stacks/hello/www/index.html && git commit -am 'new page'");
            println!(
                "  convoy rollout --watch             # waits for that commit's rollout, follows it"
            );
            println!(
                "  (a commit that breaks the healthcheck is rolled back by the agent on its own)"
            );
            println!();
            println!(
                "Ctrl-C stops Convoy{}.",
                if opts.cleanup {
                    " and removes the demo"
                } else {
                    "; the demo stack keeps running (docker rm -f hello-web-1 to remove it)"
                }
            );
        }
        Err(e) => eprintln!("error: {e:#}"),
    }
    if outcome.is_ok() && !opts.exit_after_rollout {
        tokio::signal::ctrl_c()
            .await
            .context("waiting for Ctrl-C")?;
        println!();
    }
    println!("• stopping Convoy");
    agent.stop().await;
    cp.stop().await;
    if opts.cleanup {
        println!("• removing the demo stack and {}", work.display());
        let ids = run_ok(
            Command::new("docker").args(["ps", "-aq", "--filter", "label=dev.convoy.stack=hello"]),
            "docker ps",
        )
        .await
        .unwrap_or_default();
        for id in ids.split_whitespace() {
            let _ = Command::new("docker").args(["rm", "-f", id]).output().await;
        }
        let _ = Command::new("docker")
            .args(["network", "rm", "hello_default"])
            .output()
            .await;
        let _ = std::fs::remove_dir_all(&work);
        if saved.is_some()
            && let Err(e) = contexts::remove_if_present(CONTEXT)
        {
            ui.warn(&format!("could not remove the CLI context: {e:#}"));
        }
    }
    outcome
}
