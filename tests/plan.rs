//! End-to-end tests of `sluice plan` and `sluice validate` on the example playbooks.

use std::process::Command;

fn sluice() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sluice"));
    c.current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."));
    c.env("NO_COLOR", "1");
    c
}

#[test]
fn validate_accepts_every_example_playbook() {
    for plan in ["openssl-patch", "kernel-update", "nginx-config"] {
        for inv in ["staging", "prod"] {
            let out = sluice()
                .args([
                    "validate",
                    &format!("playbooks/{plan}.yaml"),
                    "-i",
                    &format!("inventory/{inv}.yaml"),
                ])
                .output()
                .unwrap();
            assert_eq!(
                out.status.code(),
                Some(0),
                "{plan} on {inv}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}
