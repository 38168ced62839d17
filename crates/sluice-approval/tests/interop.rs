//! Signed approvals against the real OpenSSH tools: what sluice signs verifies with
//! `ssh-keygen -Y verify`, what `ssh-keygen -Y sign` signs verifies in sluice, a key held by a real
//! `ssh-agent` signs, and each way an approval can be wrong is refused with its reason.

// Tests may unwrap: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use jiff::{SignedDuration, Timestamp};
use russh::keys::ssh_key::{Signature, SshSig};
use sluice_approval::verdict::Expected;
use sluice_approval::{
    AllowedSigners, NAMESPACE, Rejection, Signer, Statement, StatementScope, verify,
};

const HASH: &str = "9c1f000000000000000000000000000000000000000000000000000000000001";

fn tool(name: &str) -> Command {
    assert!(
        Command::new(name).arg("-?").output().is_ok() || Path::new("/usr/bin").join(name).exists(),
        "these tests run the real `{name}`: apt-get install openssh-client (scripts/test.sh installs openssh-server, which brings it)"
    );
    Command::new(name)
}

/// A new key pair `NAME` (ed25519, or rsa) in `dir`, unencrypted.
fn keygen(dir: &Path, name: &str, kind: &str) -> PathBuf {
    let path = dir.join(name);
    let out = tool("ssh-keygen")
        .args(["-q", "-t", kind, "-N", "", "-C", name, "-f"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    path
}

fn public(key: &Path) -> String {
    std::fs::read_to_string(key.with_extension("pub")).unwrap()
}

fn statement(now: Timestamp) -> Statement {
    Statement {
        plan_hash: HASH.into(),
        scope: StatementScope::Plan,
        signed_at: now,
        expires: now + SignedDuration::from_hours(24),
        comment: Some("CAB-77".into()),
    }
}

fn expected() -> Expected {
    Expected {
        plan_hash: HASH.into(),
        scope: StatementScope::Plan,
    }
}

fn signers_file(dir: &Path, lines: &[String]) -> (PathBuf, AllowedSigners) {
    let path = dir.join("allowed_signers");
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    let signers = AllowedSigners::read(&path).unwrap();
    (path, signers)
}

fn ssh_keygen_verifies(signers: &Path, principal: &str, stmt: &Path, sig: &Path) -> bool {
    let out = tool("ssh-keygen")
        .args(["-Y", "verify", "-n", NAMESPACE, "-f"])
        .arg(signers)
        .args(["-I", principal, "-s"])
        .arg(sig)
        .stdin(std::fs::File::open(stmt).unwrap())
        .output()
        .unwrap();
    out.status.success()
}

#[tokio::test]
async fn what_sluice_signs_verifies_with_ssh_keygen_for_ed25519_and_rsa() {
    let dir = tempfile::tempdir().unwrap();
    for kind in ["ed25519", "rsa"] {
        let key = keygen(dir.path(), &format!("alice-{kind}"), kind);
        let (signers, _) =
            signers_file(dir.path(), &[format!("alice@example.com {}", public(&key))]);
        let text = statement(Timestamp::now()).to_text().unwrap();
        let signer = Signer::load(&key, || None).unwrap();
        let sig = signer.sign(text.as_bytes(), &key).await.unwrap();
        let stmt = dir.path().join(format!("stmt-{kind}"));
        let sig_path = dir.path().join(format!("stmt-{kind}.sig"));
        std::fs::write(&stmt, &text).unwrap();
        std::fs::write(&sig_path, sig.to_pem(Default::default()).unwrap()).unwrap();
        assert!(
            ssh_keygen_verifies(&signers, "alice@example.com", &stmt, &sig_path),
            "{kind}: ssh-keygen -Y verify refused sluice's signature"
        );
        assert!(
            !ssh_keygen_verifies(&signers, "mallory@example.com", &stmt, &sig_path),
            "{kind}: the wrong principal must not verify"
        );
    }
}

#[test]
fn what_ssh_keygen_signs_verifies_in_sluice_and_names_the_principal() {
    let dir = tempfile::tempdir().unwrap();
    let key = keygen(dir.path(), "bob", "ed25519");
    let (_, signers) = signers_file(
        dir.path(),
        &[format!(
            "bob@example.com namespaces=\"sluice-approval\" {}",
            public(&key)
        )],
    );
    let text = statement(Timestamp::now()).to_text().unwrap();
    let stmt = dir.path().join("stmt");
    std::fs::write(&stmt, &text).unwrap();
    let out = tool("ssh-keygen")
        .args(["-Y", "sign", "-n", NAMESPACE, "-f"])
        .arg(&key)
        .arg(&stmt)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sig = std::fs::read_to_string(stmt.with_extension("sig")).unwrap();
    let verified = verify(&text, &sig, &signers, &expected(), Timestamp::now(), None).unwrap();
    assert_eq!(verified.principal, "bob@example.com");
    assert!(verified.key.starts_with("SHA256:"));
}

#[tokio::test]
async fn a_key_held_by_ssh_agent_signs_given_its_public_half() {
    let dir = tempfile::tempdir().unwrap();
    let key = keygen(dir.path(), "carol", "ed25519");
    let socket = dir.path().join("agent.sock");
    let mut agent = tool("ssh-agent")
        .args(["-D", "-a"])
        .arg(&socket)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    for _ in 0..100 {
        if socket.exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let added = tool("ssh-add")
        .arg(&key)
        .env("SSH_AUTH_SOCK", &socket)
        .output()
        .unwrap();
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    // SAFETY of the test: set_var is process-wide; this is the only test reading the variable.
    let text = statement(Timestamp::now()).to_text().unwrap();
    let public_path = key.with_extension("pub");
    let signer = Signer::load(&public_path, || None).unwrap();
    assert!(matches!(signer, Signer::Agent(_)));
    let sig = {
        let _guard = AgentEnv::set(&socket);
        signer.sign(text.as_bytes(), &public_path).await
    };
    let _ = agent.kill();
    let _ = agent.wait();
    let sig = sig.unwrap();
    let (signers, _) = signers_file(dir.path(), &[format!("carol {}", public(&key))]);
    let stmt = dir.path().join("stmt");
    let sig_path = dir.path().join("stmt.sig");
    std::fs::write(&stmt, &text).unwrap();
    std::fs::write(&sig_path, sig.to_pem(Default::default()).unwrap()).unwrap();
    assert!(ssh_keygen_verifies(&signers, "carol", &stmt, &sig_path));
}

/// Points `SSH_AUTH_SOCK` at a test agent while it lives.
struct AgentEnv;

impl AgentEnv {
    #[allow(unsafe_code)]
    fn set(socket: &Path) -> AgentEnv {
        // SAFETY: no other thread of this test binary reads or writes SSH_AUTH_SOCK.
        unsafe { std::env::set_var("SSH_AUTH_SOCK", socket) };
        AgentEnv
    }
}

impl Drop for AgentEnv {
    #[allow(unsafe_code)]
    fn drop(&mut self) {
        // SAFETY: as in `set`.
        unsafe { std::env::remove_var("SSH_AUTH_SOCK") };
    }
}

#[tokio::test]
async fn every_way_an_approval_can_be_wrong_is_refused_with_its_reason() {
    let dir = tempfile::tempdir().unwrap();
    let alice = keygen(dir.path(), "alice", "ed25519");
    let stranger = keygen(dir.path(), "stranger", "ed25519");
    let (_, signers) = signers_file(dir.path(), &[format!("alice {}", public(&alice))]);
    let now = Timestamp::now();
    let sign = |key: &Path, namespace: &str, text: &str| {
        let stmt = dir.path().join("tosign");
        std::fs::write(&stmt, text).unwrap();
        // ssh-keygen does not overwrite an earlier signature file.
        let _ = std::fs::remove_file(stmt.with_extension("sig"));
        let out = tool("ssh-keygen")
            .args(["-Y", "sign", "-n", namespace, "-f"])
            .arg(key)
            .arg(&stmt)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::read_to_string(stmt.with_extension("sig")).unwrap()
    };
    let good = statement(now).to_text().unwrap();
    let check = |text: &str, sig: &str| {
        verify(
            text,
            sig,
            &signers,
            &expected(),
            now,
            Some(SignedDuration::from_hours(48)),
        )
    };
    assert!(check(&good, &sign(&alice, NAMESPACE, &good)).is_ok());

    // Wrong namespace.
    let r = check(&good, &sign(&alice, "git", &good)).unwrap_err();
    assert!(matches!(r, Rejection::WrongNamespace { .. }), "{r}");
    // Unknown signer.
    let r = check(&good, &sign(&stranger, NAMESPACE, &good)).unwrap_err();
    assert!(matches!(r, Rejection::UnknownSigner { .. }), "{r}");
    // Another plan's hash.
    let other = Statement {
        plan_hash: "ff".repeat(32),
        ..statement(now)
    }
    .to_text()
    .unwrap();
    let r = check(&other, &sign(&alice, NAMESPACE, &other)).unwrap_err();
    assert!(matches!(r, Rejection::OtherPlan { .. }), "{r}");
    // Expired.
    let old = Statement {
        signed_at: now - SignedDuration::from_hours(30),
        expires: now - SignedDuration::from_hours(1),
        ..statement(now)
    }
    .to_text()
    .unwrap();
    let r = check(&old, &sign(&alice, NAMESPACE, &old)).unwrap_err();
    assert!(matches!(r, Rejection::Expired { .. }), "{r}");
    // Older than max_age, though not expired.
    let stale = Statement {
        signed_at: now - SignedDuration::from_hours(72),
        expires: now + SignedDuration::from_hours(72),
        ..statement(now)
    }
    .to_text()
    .unwrap();
    let r = check(&stale, &sign(&alice, NAMESPACE, &stale)).unwrap_err();
    assert!(matches!(r, Rejection::TooOld { .. }), "{r}");
    // A corrupted signature, and a statement altered after signing.
    let sig = sign(&alice, NAMESPACE, &good);
    let parsed = SshSig::from_pem(&sig).unwrap();
    let mut bytes = parsed.signature_bytes().to_vec();
    bytes[10] ^= 0x01;
    let flipped = SshSig::new(
        parsed.public_key().clone(),
        NAMESPACE,
        parsed.hash_alg(),
        Signature::new(parsed.algorithm(), bytes).unwrap(),
    )
    .unwrap()
    .to_pem(Default::default())
    .unwrap();
    let r = check(&good, &flipped).unwrap_err();
    assert_eq!(r, Rejection::BadSignature);
    let mangled = sig.replacen(
        "-----BEGIN SSH SIGNATURE-----\n",
        "-----BEGIN SSH SIGNATURE-----\n!",
        1,
    );
    let r = check(&good, &mangled).unwrap_err();
    assert!(matches!(r, Rejection::Unreadable(_)), "{r}");
    let altered = good.replace("CAB-77", "CAB-78");
    let r = check(&altered, &sig).unwrap_err();
    assert_eq!(r, Rejection::BadSignature);
}
