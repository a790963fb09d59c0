//! The operator CLI as a user runs it: the real `convoy` binary against a
//! real control plane (real TLS, a real git fleet repo), with its own config
//! file in a temp dir and none of the `CONVOY_*` variables of the shell that
//! runs the tests.
//!
//! - the binaries answer --help and --version; `--help` lists the exit codes;
//! - completions (bash parses with `bash -n` and completes subcommands when
//!   sourced) and man pages (every page renders with `man -l`, groff warnings
//!   on);
//! - contexts: `context add` refuses a token file others can read, a plain
//!   `convoy status` then uses the current context, flag > env > context,
//!   `context show|use|remove`;
//! - `-o json|yaml` print the same data, `--json` is `-o json`; colour only on
//!   a terminal (a real pty from `script`), never with `NO_COLOR`;
//! - exit codes 2 (usage), 3 (unreachable), 4 (auth refused), 5 (not found);
//! - `rollout --watch` run in the fleet repo right after a commit follows that
//!   commit: a rejected one prints its problems (exit 1), a valid one is
//!   followed (no agents here, so it ends at --timeout: exit 6).
//!
//! The whole new-user path, with an agent and a rollout that completes, is
//! tests/cli_quickstart.rs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use convoy_tests::binary;
use convoy_tests::fleet::{Fleet, StackSpec, slot};

#[test]
fn binaries_have_help_and_version() {
    for name in ["convoy", "convoy-agent", "convoy-control-plane"] {
        let bin = binary(name).unwrap();
        let out = Command::new(&bin).arg("--version").output().unwrap();
        assert!(out.status.success(), "{name} --version failed");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.starts_with(name), "{name} --version printed {text:?}");
        assert!(text.contains(env!("CARGO_PKG_VERSION")), "{text}");
        let out = Command::new(&bin).arg("--help").output().unwrap();
        assert!(out.status.success(), "{name} --help failed");
        assert!(String::from_utf8_lossy(&out.stdout).contains("Usage:"));
    }
    let help = Command::new(binary("convoy").unwrap())
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for code in [
        "0  ok",
        "2  usage",
        "3  control plane unreachable",
        "4  auth refused",
        "5  not found",
        "6  rollout --watch timed out",
    ] {
        assert!(help.contains(code), "--help lacks {code:?}:\n{help}");
    }
    // A usage error is exit 2 (clap's own).
    let bad = Command::new(binary("convoy").unwrap())
        .args(["rollout", "--commit", "abc"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
}

/// One `convoy` run's result.
#[derive(Debug)]
struct Out {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Out {
    fn json(&self) -> serde_json::Value {
        assert_eq!(self.code, Some(0), "{self:?}");
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("{e}: {self:?}"))
    }
}

/// `convoy` with a config file of its own and a clean environment.
struct Convoy {
    bin: PathBuf,
    config: PathBuf,
}

impl Convoy {
    fn new(config: PathBuf) -> Convoy {
        Convoy {
            bin: binary("convoy").unwrap(),
            config,
        }
    }

    fn command(&self, args: &[&str], env: &[(&str, &str)]) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.args(args).env("CONVOY_CLI_CONFIG", &self.config);
        for v in [
            "CONVOY_API",
            "CONVOY_TOKEN",
            "CONVOY_TOKEN_FILE",
            "CONVOY_CA",
            "CONVOY_CONTEXT",
            "NO_COLOR",
        ] {
            cmd.env_remove(v);
        }
        cmd.envs(env.iter().copied());
        cmd
    }

    fn run_in(&self, dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Out {
        let o = self.command(args, env).current_dir(dir).output().unwrap();
        Out {
            code: o.status.code(),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }

    fn run(&self, args: &[&str], env: &[(&str, &str)]) -> Out {
        self.run_in(&std::env::temp_dir(), args, env)
    }

    /// Runs it on a real terminal (a pty from util-linux `script`).
    fn on_tty(&self, args: &str, env: &[(&str, &str)]) -> String {
        let line = format!("'{}' {args}", self.bin.display());
        let mut cmd = Command::new("script");
        cmd.args(["-q", "-e", "-c", &line, "/dev/null"])
            .env("CONVOY_CLI_CONFIG", &self.config)
            .env("TERM", "xterm")
            .env_remove("NO_COLOR")
            .envs(env.iter().copied());
        let o = cmd
            .output()
            .expect("util-linux `script` is missing (Debian's bsdutils)");
        assert!(o.status.success(), "{o:?}");
        String::from_utf8_lossy(&o.stdout).into_owned()
    }
}

#[test]
fn completions_and_man_pages_are_generated_from_the_cli_and_parse() {
    let convoy = Convoy::new(PathBuf::from("/nonexistent/convoy-cli.toml"));
    let dir = tempfile::tempdir().unwrap();
    let bash = convoy.run(&["completions", "bash"], &[]);
    assert_eq!(bash.code, Some(0), "{bash:?}");
    let script = dir.path().join("convoy.bash");
    std::fs::write(&script, &bash.stdout).unwrap();
    let n = Command::new("bash")
        .arg("-n")
        .arg(&script)
        .output()
        .unwrap();
    assert!(n.status.success(), "bash -n: {n:?}");
    // Sourced, it completes subcommands and their flags.
    let complete = |words: &str| {
        let probe = format!(
            "source '{}'; COMP_WORDS=({words}); COMP_CWORD=$((${{#COMP_WORDS[@]}}-1)); \
             _convoy convoy \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\"; \
             printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            script.display()
        );
        let o = Command::new("bash").args(["-c", &probe]).output().unwrap();
        assert!(o.status.success(), "{o:?}");
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let subs = complete("convoy con");
    assert!(subs.lines().any(|l| l == "context"), "{subs}");
    let flags = complete("convoy rollout --");
    for f in ["--watch", "--commit", "--timeout", "--output"] {
        assert!(flags.lines().any(|l| l == f), "{f} not in {flags}");
    }
    for shell in ["zsh", "fish"] {
        let o = convoy.run(&["completions", shell], &[]);
        assert_eq!(o.code, Some(0), "{o:?}");
        assert!(o.stdout.contains("context"), "{shell}: {o:?}");
    }

    let mandir = dir.path().join("man");
    let o = convoy.run(&["man", "--out", mandir.to_str().unwrap()], &[]);
    assert_eq!(o.code, Some(0), "{o:?}");
    let mut pages: Vec<PathBuf> = std::fs::read_dir(&mandir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    pages.sort();
    let names: Vec<String> = pages
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for want in [
        "convoy.1",
        "convoy-rollout.1",
        "convoy-context-add.1",
        "convoy-completions.1",
        "convoy-man.1",
    ] {
        assert!(names.iter().any(|n| n == want), "{want} not in {names:?}");
    }
    for page in &pages {
        // man-db's `man -l` formats it with groff; --warnings turns on
        // groff's warnings, which must be none.
        let o = Command::new("man")
            .arg("--warnings=all")
            .arg("-l")
            .arg(page)
            .env("MANWIDTH", "80")
            .env("MANPAGER", "cat")
            .output()
            .expect("man is missing: ./test.sh installs man-db and groff-base (.ci/install-deps)");
        let text = without_overstrike(&String::from_utf8_lossy(&o.stdout));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "man -l {}: {err}", page.display());
        assert!(err.trim().is_empty(), "man -l {}: {err}", page.display());
        assert!(text.contains("NAME"), "{}: {text}", page.display());
    }
    let top = Command::new("man")
        .arg("-l")
        .arg(mandir.join("convoy.1"))
        .env("MANWIDTH", "100")
        .env("MANPAGER", "cat")
        .output()
        .unwrap();
    let top = without_overstrike(&String::from_utf8_lossy(&top.stdout));
    assert!(top.contains("Exit codes"), "{top}");
    assert!(top.contains("convoy-rollout(1)"), "{top}");
    // Without --out: the top page on stdout.
    let o = convoy.run(&["man"], &[]);
    assert!(o.stdout.contains(".TH convoy 1"), "{o:?}");
}

/// man's output to a pipe marks bold and underline by overstriking
/// (`N\x08N`); the text a reader sees is what stays.
fn without_overstrike(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c == '\x08' {
            out.pop();
        } else {
            out.push(c);
        }
    }
    out
}

fn stacks(msg: &str) -> BTreeMap<String, StackSpec> {
    BTreeMap::from([("laptop".to_owned(), StackSpec::new(msg))])
}

fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn contexts_output_formats_colour_and_exit_codes_against_a_control_plane() {
    let _slot = slot();
    let f = Fleet::new("cli", &stacks("one")).unwrap();
    let config = f.tmp.path().join("home/.config/convoy/config.toml");
    let convoy = Convoy::new(config.clone());
    let api = format!("https://127.0.0.1:{}", f.api_port);
    let ca = f.cp_data.join("ca.pem");
    let ca_s = ca.to_str().unwrap();

    // Nothing configured: a usage error that says what to give.
    let o = convoy.run(&["status"], &[]);
    assert_eq!(o.code, Some(2), "{o:?}");
    assert!(
        o.stderr.contains("--ca") && o.stderr.contains("context add"),
        "{o:?}"
    );

    // A token file others can read is refused; at 0600 it is taken.
    let token = f.tmp.path().join("admin.token");
    std::fs::write(&token, format!("{}\n", f.admin)).unwrap();
    chmod(&token, 0o644);
    let token_s = token.to_str().unwrap();
    let add = [
        "context",
        "add",
        "test",
        "--api",
        &api,
        "--ca",
        ca_s,
        "--token-file",
        token_s,
    ];
    let o = convoy.run(&add, &[]);
    assert_eq!(o.code, Some(2), "{o:?}");
    assert!(o.stderr.contains("chmod 600"), "{o:?}");
    chmod(&token, 0o600);
    let o = convoy.run(&add, &[]);
    assert_eq!(o.code, Some(0), "{o:?}");
    assert!(o.stdout.contains("added context test"), "{o:?}");
    assert_eq!(
        std::fs::metadata(&config).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // Adding it again needs --force.
    assert_eq!(convoy.run(&add, &[]).code, Some(2));
    let list = convoy.run(&["context", "list", "-o", "json"], &[]).json();
    assert_eq!(list["current_context"], "test");
    assert_eq!(list["contexts"][0]["api"], api);
    assert_eq!(list["contexts"][0]["token_file"], token_s);

    // A plain `convoy status` now just works, through the context.
    let status = convoy.run(&["status", "-o", "json"], &[]).json();
    assert_eq!(status["fleet"], f.prefix.as_str());
    let table = convoy.run(&["status"], &[]);
    assert!(
        table
            .stdout
            .contains(&format!("fleet            {}", f.prefix)),
        "{table:?}"
    );
    // A token file readable by others later on is refused at use, too.
    chmod(&token, 0o640);
    let o = convoy.run(&["status"], &[]);
    assert_eq!(o.code, Some(2), "{o:?}");
    chmod(&token, 0o600);

    // -o yaml is the same data as -o json; --json is -o json.
    for cmd in [
        &["status"][..],
        &["hosts"],
        &["rollouts"],
        &["rollout"],
        &["events"],
    ] {
        let json = convoy.run(&[cmd, &["-o", "json"]].concat(), &[]).json();
        let yaml = convoy.run(&[cmd, &["-o", "yaml"]].concat(), &[]);
        assert_eq!(yaml.code, Some(0), "{yaml:?}");
        let back: serde_json::Value = serde_saphyr::from_str(&yaml.stdout)
            .unwrap_or_else(|e| panic!("{cmd:?} -o yaml: {e}\n{}", yaml.stdout));
        // (`events` and `status` carry times that move; compare the shape.)
        if cmd[0] == "rollouts" || cmd[0] == "hosts" {
            assert_eq!(back, json, "{cmd:?}");
        } else {
            assert_eq!(
                back.as_object()
                    .map(|o| o.keys().cloned().collect::<Vec<_>>()),
                json.as_object()
                    .map(|o| o.keys().cloned().collect::<Vec<_>>()),
                "{cmd:?}"
            );
        }
        let alias = convoy.run(&[cmd, &["--json"]].concat(), &[]).json();
        assert_eq!(alias.is_array(), json.is_array(), "{cmd:?}");
    }
    let v = convoy.run(&["validate", "-o", "yaml", f.repo.to_str().unwrap()], &[]);
    assert_eq!(v.code, Some(0), "{v:?}");
    assert!(v.stdout.contains("valid: true"), "{v:?}");
    let pv = convoy.run(&["protocol-version", "-o", "json"], &[]).json();
    assert!(pv["protocol_version"].as_u64().is_some(), "{pv}");

    // Precedence: env beats the context, a flag beats env.
    let wrong = [("CONVOY_TOKEN", "cvat_wrong")];
    let o = convoy.run(&["hosts"], &wrong);
    assert_eq!(o.code, Some(4), "auth refused: {o:?}");
    assert_eq!(
        convoy.run(&["hosts", "--token-file", token_s], &wrong).code,
        Some(0)
    );
    let show = convoy
        .run(
            &["context", "show", "-o", "json"],
            &[("CONVOY_API", "https://127.0.0.1:1")],
        )
        .json();
    assert_eq!(show["api"]["from"], "env CONVOY_API");
    assert_eq!(show["ca"]["from"], "context test");
    assert_eq!(show["token"]["file"], token_s);
    assert!(
        !show.to_string().contains(&f.admin),
        "the token is never shown"
    );
    let o = convoy.run(&["hosts"], &[("CONVOY_API", "https://127.0.0.1:1")]);
    assert_eq!(o.code, Some(3), "unreachable: {o:?}");
    assert!(o.stderr.contains("127.0.0.1:1"), "{o:?}");
    assert_eq!(
        convoy
            .run(
                &["hosts", "--api", &api],
                &[("CONVOY_API", "https://127.0.0.1:1")]
            )
            .code,
        Some(0)
    );

    // Not found, unknown context.
    let o = convoy.run(&["rollout", "r99999999"], &[]);
    assert_eq!(o.code, Some(5), "{o:?}");
    let o = convoy.run(&["status", "--context", "nope"], &[]);
    assert_eq!(o.code, Some(2), "{o:?}");
    assert!(o.stderr.contains("\"nope\""), "{o:?}");

    // Colour: on a terminal yes, piped or with NO_COLOR or --color never no.
    let tty = convoy.on_tty("hosts", &[]);
    assert!(tty.contains("\x1b["), "no colour on a terminal: {tty:?}");
    assert!(
        !convoy
            .on_tty("hosts", &[("NO_COLOR", "1")])
            .contains("\x1b[")
    );
    assert!(!convoy.on_tty("hosts --color never", &[]).contains("\x1b["));
    assert!(!convoy.run(&["hosts"], &[]).stdout.contains("\x1b["));
    assert!(
        convoy
            .run(&["hosts", "--color", "always"], &[])
            .stdout
            .contains("\x1b[")
    );

    // A second context; `use` switches, `remove` of the current one leaves none.
    let add2 = [
        "context",
        "add",
        "other",
        "--api",
        "https://127.0.0.1:1",
        "--ca",
        ca_s,
        "--token-file",
        token_s,
    ];
    assert_eq!(convoy.run(&add2, &[]).code, Some(0));
    assert_eq!(convoy.run(&["hosts"], &[]).code, Some(0), "still on test");
    assert_eq!(convoy.run(&["context", "use", "other"], &[]).code, Some(0));
    assert_eq!(convoy.run(&["hosts"], &[]).code, Some(3));
    assert_eq!(
        convoy.run(&["hosts", "--context", "test"], &[]).code,
        Some(0)
    );
    assert_eq!(
        convoy.run(&["hosts"], &[("CONVOY_CONTEXT", "test")]).code,
        Some(0)
    );
    let list = convoy.run(&["context", "list"], &[]);
    assert!(
        list.stdout.lines().any(|l| l.starts_with("* other")),
        "{list:?}"
    );
    assert_eq!(
        convoy.run(&["context", "remove", "other"], &[]).code,
        Some(0)
    );
    assert_eq!(
        convoy.run(&["status"], &[]).code,
        Some(2),
        "no context current"
    );
    assert_eq!(convoy.run(&["context", "use", "nope"], &[]).code, Some(2));
}

#[test]
fn rollout_watch_right_after_a_commit_follows_that_commit() {
    let _slot = slot();
    let mut f = Fleet::new("watch", &stacks("one")).unwrap();
    let convoy = Convoy::new(f.tmp.path().join("cli.toml"));
    let api = format!("https://127.0.0.1:{}", f.api_port);
    let ca = f.cp_data.join("ca.pem");
    let admin = f.admin.clone();
    let env = [
        ("CONVOY_API", api.as_str()),
        ("CONVOY_TOKEN", admin.as_str()),
        ("CONVOY_CA", ca.to_str().unwrap()),
    ];
    // The first commit's rollout exists (it waits for its hosts: this test
    // runs no agents).
    let first = convoy_tests::fleet::wait_until(
        "the first rollout",
        std::time::Duration::from_secs(30),
        |last| {
            let o = convoy.run(&["rollout", "-o", "json"], &env);
            *last = format!("{o:?}");
            (o.code == Some(0)).then(|| o.json())
        },
    );
    let first_id = first["id"].as_str().unwrap().to_owned();

    // A broken commit: the watch run in the repo waits for it and prints
    // its problems, exit 1.
    let fleet_toml = f.repo.join("fleet.toml");
    let good = std::fs::read_to_string(&fleet_toml).unwrap();
    std::fs::write(
        &fleet_toml,
        good.replace("[fleet]\n", "[fleet]\nnmae = \"x\"\n"),
    )
    .unwrap();
    let bad = f.commit("typo").unwrap();
    let o = convoy.run_in(&f.repo, &["rollout", "--watch", "--timeout", "60s"], &env);
    assert_eq!(o.code, Some(1), "{o:?}");
    assert!(o.stderr.contains("fleet.toml:"), "{o:?}");
    assert!(o.stderr.contains("nmae"), "{o:?}");
    assert!(
        o.stderr
            .contains(&format!("commit {} was rejected", &bad[..12])),
        "{o:?}"
    );

    // A good commit: the watch follows the new commit's rollout, not the
    // first one. No agent applies it, so it ends at --timeout: exit 6.
    f.write_repo(&stacks("two")).unwrap();
    let new = f.commit("two").unwrap();
    let o = convoy.run_in(
        &f.repo,
        &["rollout", "--watch", "--timeout", "4s", "-o", "json"],
        &env,
    );
    assert_eq!(o.code, Some(6), "{o:?}");
    let shown: Vec<serde_json::Value> = o
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(!shown.is_empty(), "{o:?}");
    for r in &shown {
        assert_eq!(r["commit"], new.as_str(), "{o:?}");
        assert_ne!(r["id"], first_id.as_str(), "{o:?}");
    }
    assert!(o.stderr.contains("gave up after --timeout 4s"), "{o:?}");

    // --commit from elsewhere (no checkout): the same rollout, as a table.
    let o = convoy.run(
        &["rollout", "--watch", "--commit", &new, "--timeout", "2s"],
        &env,
    );
    assert_eq!(o.code, Some(6), "{o:?}");
    assert!(
        o.stdout.contains(&format!("commit {}", &new[..12])),
        "{o:?}"
    );
    assert!(o.stdout.starts_with("--- "), "{o:?}");
    // An id to follow is an id: an unknown one is not found.
    let o = convoy.run(&["rollout", "--watch", "r99999999"], &env);
    assert_eq!(o.code, Some(5), "{o:?}");
    f.kill_cp();
    // The control plane gone: unreachable.
    let o = convoy.run(&["rollout", "--watch"], &env);
    assert_eq!(o.code, Some(3), "{o:?}");
}
