//! The local test images build and run on the real engine (no registry).

use std::process::Command;

use convoy_tests::images::{busybox_image, image_id};

#[test]
fn busybox_images_build_and_differ_by_tag() {
    let v1 = busybox_image("images-test-v1").unwrap();
    let v2 = busybox_image("images-test-v2").unwrap();
    assert_ne!(image_id(&v1).unwrap(), image_id(&v2).unwrap());
    let out = Command::new("docker")
        .args(["run", "--rm", &v2, "cat", "/etc/convoy-test-version"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "images-test-v2"
    );
}
