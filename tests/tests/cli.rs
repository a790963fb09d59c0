//! The three binaries answer --help and --version.

use std::process::Command;

use convoy_tests::binary;

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
}
