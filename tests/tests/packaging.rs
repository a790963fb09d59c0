//! The Debian packages and install.sh install one layout, and it is the one
//! `systemd/layout.sh` describes: packaging/build-deb over the test
//! binaries, checked with dpkg-deb (control fields from cargo metadata,
//! conffiles, maintainer scripts that parse and pass shellcheck) and
//! compared file by file with an `install.sh --root` tree; the unit files'
//! paths agree with layout.sh. (Installing and running the packages under a
//! real systemd is `systemd_real.rs`.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use convoy_tests::binary;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn ok(cmd: &mut Command) -> String {
    let o = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        o.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

/// layout.sh's variables for one component.
fn layout(component: &str, vars: &[&str]) -> Vec<String> {
    let script = format!(
        ". {}/systemd/layout.sh && convoy_component {component} && printf '%s\\n' {}",
        repo_root().display(),
        vars.iter()
            .map(|v| format!("\"${v}\""))
            .collect::<Vec<_>>()
            .join(" ")
    );
    ok(Command::new("sh").args(["-c", &script]))
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Regular files (and their modes) under `root`, relative, without `skip`.
fn files(root: &Path, skip: &[&str]) -> BTreeSet<(String, u32)> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = BTreeSet::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            if skip.iter().any(|s| rel.starts_with(s)) {
                continue;
            }
            let md = std::fs::symlink_metadata(&p).unwrap();
            if md.is_dir() {
                stack.push(p);
            } else {
                out.insert((rel, md.permissions().mode() & 0o777));
            }
        }
    }
    out
}

#[test]
fn packages_and_install_sh_install_the_layout_of_layout_sh() {
    let tmp = tempfile::tempdir().unwrap();
    let bins = binary("convoy-agent")
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    let out = ok(Command::new(repo_root().join("packaging/build-deb"))
        .arg("--bin-dir")
        .arg(&bins)
        .arg("--out")
        .arg(tmp.path().join("debs"))
        .args(["--revision", "7", "--compress", "gzip"]));
    let debs: Vec<PathBuf> = out.lines().map(PathBuf::from).collect();
    assert_eq!(debs.len(), 2, "{out}");
    let version =
        ok(Command::new("cargo").args(["metadata", "--format-version", "1", "--no-deps"]));
    let meta: serde_json::Value = serde_json::from_str(&version).unwrap();
    let cargo_version = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "convoy-host-agent")
        .unwrap()["version"]
        .as_str()
        .unwrap()
        .to_owned();

    // The same tree from install.sh.
    let root = tmp.path().join("root");
    ok(Command::new("bash")
        .arg(repo_root().join("systemd/install.sh"))
        .arg("--root")
        .arg(&root)
        .arg("--bin-dir")
        .arg(&bins)
        .args(["--agent", "--control-plane", "--no-start"]));

    let mut from_debs = BTreeSet::new();
    for (component, pkg_libs) in [
        ("agent", &["libc6"][..]),
        ("control-plane", &["libc6", "libssl3", "zlib1g"][..]),
    ] {
        let l = layout(
            component,
            &[
                "CONVOY_NAME",
                "CONVOY_CONF_DIR",
                "CONVOY_CONFIG",
                "CONVOY_DOC_DIR",
            ],
        );
        let (name, conf_dir, config, doc_dir) = (&l[0], &l[1], &l[2], &l[3]);
        let deb = debs
            .iter()
            .find(|d| {
                d.file_name()
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .starts_with(&format!("{name}_"))
            })
            .unwrap_or_else(|| panic!("no {name} package in {debs:?}"));
        let field = |f: &str| ok(Command::new("dpkg-deb").args(["-f"]).arg(deb).arg(f));
        assert_eq!(field("Package").trim(), name);
        assert_eq!(field("Version").trim(), format!("{cargo_version}-7"));
        let depends = field("Depends");
        for dep in pkg_libs.iter().chain(&["passwd", "init-system-helpers"]) {
            assert!(
                depends.contains(dep),
                "{name} Depends lacks {dep}: {depends}"
            );
        }
        assert!(field("Description").contains("Convoy"));

        let x = tmp.path().join(format!("x-{name}"));
        ok(Command::new("dpkg-deb").arg("-R").arg(deb).arg(&x));
        assert_eq!(
            std::fs::read_to_string(x.join("DEBIAN/conffiles")).unwrap(),
            format!("{conf_dir}/{config}\n")
        );
        for s in ["postinst", "prerm", "postrm"] {
            let path = x.join("DEBIAN").join(s);
            let text = std::fs::read_to_string(&path).unwrap();
            assert!(
                !text.contains("#CONVOY_LAYOUT#") && !text.contains("@COMPONENT@"),
                "{name} {s} has a placeholder left"
            );
            assert!(text.contains(&format!("convoy_component {component}")));
            ok(Command::new("sh").arg("-n").arg(&path));
            // SC2034/SC2317: the pasted layout defines variables and functions a
            // script may not use.
            let o = Command::new("shellcheck")
                .args(["-s", "sh", "-e", "SC2034,SC2317"])
                .arg(&path)
                .output()
                .expect("shellcheck is not installed: ./test.sh installs it (.ci/install-deps)");
            assert!(
                o.status.success(),
                "{name} {s}: {}",
                String::from_utf8_lossy(&o.stdout)
            );
        }
        // Debian's own files aside, the package holds what install.sh installs.
        for (f, mode) in files(&x, &["DEBIAN"]) {
            if f.starts_with(doc_dir.trim_start_matches('/'))
                && (f.ends_with("/copyright") || f.ends_with("/changelog.Debian.gz"))
            {
                continue;
            }
            from_debs.insert((f, mode));
        }
    }
    let mut from_install = files(&root, &["var/lib"]);
    // install.sh makes the control plane's config 0640 at once; the
    // package ships it 0644 and its postinst makes it 0640 root:convoy.
    let cp_conf = ("etc/convoy/control-plane.toml".to_owned(), 0o640);
    assert!(from_install.remove(&cp_conf), "{from_install:?}");
    from_install.insert(("etc/convoy/control-plane.toml".to_owned(), 0o644));
    assert_eq!(
        from_debs, from_install,
        "the packages and install.sh install different files"
    );
}

#[test]
fn units_agree_with_layout_sh() {
    for component in ["agent", "control-plane"] {
        let l = layout(
            component,
            &[
                "CONVOY_UNIT",
                "CONVOY_NAME",
                "CONVOY_BIN_DIR",
                "CONVOY_DATA",
                "CONVOY_READY",
                "CONVOY_CONF_DIR",
                "CONVOY_CONFIG",
                "CONVOY_DOC_DIR",
                "CONVOY_USER",
            ],
        );
        let unit = std::fs::read_to_string(repo_root().join("systemd").join(&l[0])).unwrap();
        let data_base = l[3].trim_start_matches("/var/lib/");
        for want in [
            format!("ExecStart={}/{} run --config {}/{}", l[2], l[1], l[5], l[6]),
            format!("StateDirectory={data_base}\n"),
            format!("Environment=CONVOY_DATA_DIR={}\n", l[3]),
            format!("ConditionPathExists={}/{}\n", l[3], l[4]),
            format!("Documentation=file:{}/README.md\n", l[7]),
            format!("User={}\n", l[8]),
        ] {
            assert!(unit.contains(&want), "{} lacks {want:?}", l[0]);
        }
    }
}

#[test]
fn build_deb_passes_shellcheck() {
    for script in ["packaging/build-deb", "systemd/layout.sh"] {
        let o = Command::new("shellcheck")
            .arg("-x")
            .arg(repo_root().join(script))
            .output()
            .expect("shellcheck is not installed: ./test.sh installs it (.ci/install-deps)");
        assert!(
            o.status.success(),
            "{script}: {}",
            String::from_utf8_lossy(&o.stdout)
        );
    }
}
