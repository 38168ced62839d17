//! `become` through sudo against real sshd and the machine's real sudo: as root, as another
//! user, refusals with clear reasons, a password that never shows, and timeouts that leave no
//! process behind.

// Tests may unwrap: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use sluice_ssh::{
    Become, ConnectErrorKind, Connection, ExecRequest, ExitStatus, Transport, TransportError,
};
use sluice_testfleet::sudo::{PASSWORD_USER, TARGET_USER, TTY_USER};
use support::{fleet, sudo_users, target, target_as, transport};

fn become_as(user: Option<&str>, password: Option<&str>) -> Become {
    Become {
        user: user.map(str::to_string),
        password: password.map(str::to_string),
    }
}

fn request(command: &str, b: Become) -> ExecRequest {
    let mut r = ExecRequest::new(command);
    r.become_user = Some(b);
    r
}

async fn become_error(conn: &dyn Connection, b: Become) -> TransportError {
    match conn.exec(request("id -un", b)).await {
        Ok(out) => panic!("become should fail, ran with {}", out.status),
        Err(e) => e,
    }
}

#[tokio::test]
async fn sudo_n_runs_as_root_and_become_user_runs_as_that_user() {
    let fleet = fleet(1);
    // Also checks the prerequisites (sudo, root), so a missing one fails with how to fix it.
    sudo_users(&fleet);
    let conn = transport().connect(&target(&fleet, 1)).await.unwrap();
    let out = conn
        .exec(request("id -un", become_as(None, None)))
        .await
        .unwrap();
    assert_eq!(out.stdout.text_lossy(), "root\n");

    let mut r = request(
        "id -un; echo \"$GREETING\"; cat; echo to-stderr >&2",
        become_as(Some(TARGET_USER), None),
    );
    r.env.push(("GREETING".into(), "hi there".into()));
    r.stdin = Some(b"from stdin".to_vec());
    let out = conn.exec(r).await.unwrap();
    assert_eq!(out.status, ExitStatus::Code(0));
    assert_eq!(
        out.stdout.text_lossy(),
        format!("{TARGET_USER}\nhi there\nfrom stdin")
    );
    assert_eq!(
        out.stderr.text_lossy(),
        "to-stderr\n",
        "sudo's markers are stripped"
    );

    // The command's own exit code is the outcome, not a become failure.
    let out = conn
        .exec(request("exit 1", become_as(Some(TARGET_USER), None)))
        .await
        .unwrap();
    assert_eq!(out.status, ExitStatus::Code(1));
}

#[tokio::test]
async fn sudo_that_needs_a_password_or_a_tty_is_a_clear_become_error() {
    let fleet = fleet(1);
    sudo_users(&fleet);
    let t = transport();

    let conn = t
        .connect(&target_as(&fleet, 1, PASSWORD_USER))
        .await
        .unwrap();
    let err = become_error(&*conn, become_as(Some(TARGET_USER), None)).await;
    assert!(matches!(err, TransportError::BecomeFailed { .. }), "{err}");
    assert_eq!(err.kind(), ConnectErrorKind::BecomeFailed);
    assert!(
        err.to_string().contains("sudo requires a password"),
        "{err}"
    );

    let conn = t.connect(&target_as(&fleet, 1, TTY_USER)).await.unwrap();
    let err = become_error(&*conn, become_as(Some(TARGET_USER), None)).await;
    assert!(err.to_string().contains("sudo requires a TTY"), "{err}");

    // Not allowed to become root: sudo says so, sluice passes it on.
    let conn = t.connect(&target_as(&fleet, 1, TTY_USER)).await.unwrap();
    let err = become_error(&*conn, become_as(None, None)).await;
    assert!(matches!(err, TransportError::BecomeFailed { .. }), "{err}");
}

#[tokio::test]
async fn sudo_s_password_works_and_never_shows_in_argv_output_or_errors() {
    let fleet = fleet(1);
    let users = sudo_users(&fleet);
    let t = transport();
    let conn = t
        .connect(&target_as(&fleet, 1, PASSWORD_USER))
        .await
        .unwrap();
    let with_password = become_as(Some(TARGET_USER), Some(&users.password));

    let mut r = request("id -un; cat", with_password.clone());
    r.stdin = Some(b"stdin bytes".to_vec());
    let out = conn.exec(r).await.unwrap();
    assert_eq!(
        out.status,
        ExitStatus::Code(0),
        "{}",
        out.stderr.text_lossy()
    );
    assert_eq!(
        out.stdout.text_lossy(),
        format!("{TARGET_USER}\nstdin bytes")
    );
    assert!(!out.stderr.text_lossy().contains(&users.password));

    // While a become command runs, no process on the machine has the password in its argv.
    let running = {
        let conn = conn.clone();
        let b = with_password.clone();
        tokio::spawn(async move { conn.exec(request("sleep 2; echo done", b)).await })
    };
    // The fleet's hosts are processes on this machine: the listing is read here, whole (a
    // command's captured output keeps only its head and tail, and the runners' own argv is long).
    let mut saw_sudo = false;
    let deadline = Instant::now() + Duration::from_millis(1500);
    while Instant::now() < deadline {
        let ps = std::process::Command::new("ps")
            .args(["-eo", "args"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&ps.stdout);
        assert!(!text.contains(&users.password), "password in argv:\n{text}");
        saw_sudo |= text.contains("sleep 2; echo done");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(saw_sudo, "the become command was never seen running");
    let out = running.await.unwrap().unwrap();
    assert_eq!(out.stdout.text_lossy(), "done\n");
    let log = std::fs::read_to_string(fleet.host_dir(1).join("sshd.log")).unwrap_or_default();
    assert!(!log.contains(&users.password));

    // A wrong password: refused by name, and the wrong password is not in the message either.
    let wrong = "not-the-password-42";
    let err = become_error(&*conn, become_as(Some(TARGET_USER), Some(wrong))).await;
    let text = err.to_string();
    assert!(text.contains("sudo refused the password"), "{text}");
    assert!(
        !text.contains(wrong) && !text.contains(&users.password),
        "{text}"
    );
}

#[tokio::test]
async fn a_password_sudo_does_not_ask_for_never_reaches_the_command_stdin() {
    let fleet = fleet(1);
    sudo_users(&fleet);
    // Root's sudo asks for no password: the password must not be sent at all.
    let conn = transport().connect(&target(&fleet, 1)).await.unwrap();
    let mut r = request("cat", become_as(None, Some("unused-secret")));
    r.stdin = Some(b"only this".to_vec());
    let out = conn.exec(r).await.unwrap();
    assert_eq!(out.stdout.text_lossy(), "only this");
}

async fn no_process_left(conn: &dyn Connection, pattern: &str) {
    // The kill is synchronous with the timeout outcome; allow a moment for the kernel to reap.
    let deadline = Instant::now() + Duration::from_millis(500);
    loop {
        let check = conn
            .exec(ExecRequest::new(format!("pgrep -f '{pattern}'")))
            .await
            .unwrap();
        if check.status == ExitStatus::Code(1) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "left behind: {}",
            check.stdout.text_lossy()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn timeout_of_a_become_command_kills_its_whole_process_group() {
    let fleet = fleet(1);
    let users = sudo_users(&fleet);
    let t = transport();
    let root = t.connect(&target(&fleet, 1)).await.unwrap();
    let cases = [
        (root.clone(), become_as(Some(TARGET_USER), None), "2"),
        (
            t.connect(&target_as(&fleet, 1, PASSWORD_USER))
                .await
                .unwrap(),
            become_as(Some(TARGET_USER), Some(&users.password)),
            "3",
        ),
    ];
    for (conn, b, tag) in cases {
        let pattern = format!("sleep 100[01]{tag}.5");
        let command = format!("sleep 1000{tag}.5 & sleep 1001{tag}.5; wait");
        let started = Instant::now();
        let out = conn
            .exec(request(&command, b).timeout(Duration::from_secs(1)))
            .await
            .unwrap();
        assert_eq!(out.status, ExitStatus::TimedOut);
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
        no_process_left(&*root, &pattern).await;
    }
}

#[tokio::test]
async fn the_local_transport_does_not_feed_an_unasked_password_to_the_command() {
    if let Err(e) = sluice_testfleet::sudo::ensure() {
        panic!("cannot prepare the become test users: {e}");
    }
    // Running as root, sudo asks for no password: the command's stdin is its own.
    let conn = sluice_ssh::LocalTransport
        .connect(&sluice_ssh::HostTarget::new("local", "localhost"))
        .await
        .unwrap();
    let mut r = request(
        "id -un; cat",
        become_as(Some(TARGET_USER), Some("unused-secret")),
    );
    r.stdin = Some(b"only this".to_vec());
    let out = conn.exec(r).await.unwrap();
    assert_eq!(out.stdout.text_lossy(), format!("{TARGET_USER}\nonly this"));
}
