//! Secret values over real sshd and the machine's real sudo: they reach the command exactly, on
//! its stdin, read by the prologue (crate::secret_stdin), with and without `become` (sudo asking
//! for its password first, or not at all), and the command's own stdin follows them untouched.

// Tests may unwrap: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use sluice_ssh::{Become, Connection, ExecRequest, ExitStatus, SecretVar, Transport};
use sluice_testfleet::sudo::{PASSWORD_USER, TARGET_USER};
use support::{fleet, sudo_users, target, target_as, transport};

/// Values a frame must carry whole: quotes, `$(…)`, line breaks, control characters, a lone
/// line break, a value that looks like an option.
const VALUES: [&str; 5] = [
    "it's \"q\" $(touch /tmp/sluice-ssh-secrets-pwned) `x` \\ $HOME *",
    "-----BEGIN K-----\nAAAA\r\n\x01\x07\x1b[1m é\n-----END K-----\n",
    "\n",
    "-n",
    "tab\there",
];

fn request(become_user: Option<Become>) -> ExecRequest {
    // Each value NUL-terminated, then the command's own stdin.
    let script: String = (1..=VALUES.len())
        .map(|i| format!("printf '%s\\0' \"${{__sluice_s{i}}}\"; "))
        .collect();
    let mut r = ExecRequest::new(format!("{script}cat"));
    r.secrets = VALUES
        .iter()
        .enumerate()
        .map(|(i, v)| SecretVar {
            name: format!("__sluice_s{}", i + 1),
            value: v.to_string(),
        })
        .collect();
    r.stdin = Some(b"own stdin".to_vec());
    r.become_user = become_user;
    r
}

fn expected() -> Vec<u8> {
    let mut out: Vec<u8> = VALUES
        .iter()
        .flat_map(|v| [v.as_bytes(), b"\0"].concat())
        .collect();
    out.extend_from_slice(b"own stdin");
    out
}

async fn check(conn: &dyn Connection, become_user: Option<Become>, what: &str) {
    let out = conn.exec(request(become_user)).await.unwrap();
    assert_eq!(
        out.status,
        ExitStatus::Code(0),
        "{what}: {}",
        out.stderr.text_lossy()
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout.kept_bytes()),
        String::from_utf8_lossy(&expected()),
        "{what}"
    );
    assert_eq!(out.stderr.text_lossy(), "", "{what}");
}

#[tokio::test]
async fn secret_values_arrive_exact_over_ssh_with_and_without_become() {
    let fleet = fleet(1);
    let users = sudo_users(&fleet);
    let t = transport();
    let root = t.connect(&target(&fleet, 1)).await.unwrap();
    check(&*root, None, "login shell").await;
    // Root's sudo asks nothing: the frame is the first thing on stdin after sudo started.
    let nopasswd = Become {
        user: Some(TARGET_USER.into()),
        password: None,
    };
    check(&*root, Some(nopasswd), "sudo -n").await;
    // This user's sudo asks for the password first; the frame follows it.
    let user = t
        .connect(&target_as(&fleet, 1, PASSWORD_USER))
        .await
        .unwrap();
    let with_password = Become {
        user: Some(TARGET_USER.into()),
        password: Some(users.password.clone()),
    };
    check(&*user, Some(with_password), "sudo -S").await;
    assert!(!std::path::Path::new("/tmp/sluice-ssh-secrets-pwned").exists());
}

#[tokio::test]
async fn a_value_with_a_nul_byte_is_refused_before_anything_is_sent() {
    let fleet = fleet(1);
    let conn = transport().connect(&target(&fleet, 1)).await.unwrap();
    let mut r = ExecRequest::new("touch /tmp/sluice-ssh-secrets-nul-ran");
    r.secrets.push(SecretVar {
        name: "__sluice_s1".into(),
        value: "a\0b".into(),
    });
    let err = conn.exec(r).await.unwrap_err().to_string();
    assert!(err.contains("NUL byte"), "{err}");
    assert!(!std::path::Path::new("/tmp/sluice-ssh-secrets-nul-ran").exists());
}
