//! The unit files pass `systemd-analyze verify` (with ExecStart pointing at
//! the real binaries just built) and keep a low exposure score under
//! `systemd-analyze security --offline=true`. The scores are printed so CI
//! output records them (README "Operations" quotes them).

use std::path::Path;
use std::process::Command;

use convoy_tests::binary;

/// Highest acceptable exposure (0 = fully locked down, 10 = unsafe). The
/// agent needs the Docker socket, NVIDIA devices and the host PID view, so
/// it cannot go as low as the control plane.
const MAX_EXPOSURE: [(&str, &str, f64); 2] = [
    ("convoy-agent.service", "convoy-agent", 2.0),
    ("convoy-control-plane.service", "convoy-control-plane", 1.5),
];

#[test]
fn units_verify_and_stay_hardened() {
    let units = Path::new(env!("CARGO_MANIFEST_DIR")).join("../systemd");
    let dir = tempfile::tempdir().unwrap();
    for (unit, bin, max) in MAX_EXPOSURE {
        let text = std::fs::read_to_string(units.join(unit)).unwrap();
        for needed in [
            "Type=notify",
            "WatchdogSec=",
            "Restart=on-failure",
            "NoNewPrivileges=yes",
            "ProtectSystem=strict",
            "StateDirectory=",
        ] {
            assert!(text.contains(needed), "{unit} lacks {needed}");
        }
        let real = binary(bin).unwrap();
        let text = text.replace(&format!("/usr/bin/{bin}"), real.to_str().unwrap());
        let path = dir.path().join(unit);
        std::fs::write(&path, text).unwrap();

        let out = Command::new("systemd-analyze")
            .arg("verify")
            .arg(&path)
            .output()
            .expect("systemd-analyze is missing: ./test.sh installs Debian's systemd (.ci/install-deps)");
        assert!(
            out.status.success(),
            "systemd-analyze verify {unit}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );

        let out = Command::new("systemd-analyze")
            .args(["security", "--offline=true", "--no-pager"])
            .arg(&path)
            .output()
            .unwrap();
        let report = String::from_utf8_lossy(&out.stdout);
        let line = report
            .lines()
            .find(|l| l.contains("Overall exposure level"))
            .unwrap_or_else(|| panic!("no exposure line in: {report}"));
        let score: f64 = line
            .split(':')
            .nth(1)
            .and_then(|s| s.split_whitespace().next())
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("cannot read a score from {line:?}"));
        println!("{unit}: exposure {score}");
        assert!(score <= max, "{unit} exposure {score} > {max}:\n{report}");
    }
}
