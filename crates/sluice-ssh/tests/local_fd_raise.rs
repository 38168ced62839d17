//! A soft descriptor limit of 256 under a higher hard limit is raised to the hard limit, so many
//! local commands run at once; the commands themselves still see 256 (issue 16, fault 9). A
//! test binary of its own: it changes its process's limit, which would disturb other tests.

// Tests may unwrap: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod local_support;

use local_support::{nofile, run_many, set_nofile};
use sluice_ssh::{ExecRequest, HostTarget, LocalTransport, Transport};

#[tokio::test]
async fn a_low_soft_limit_is_raised_to_the_hard_one_and_restored_for_commands() {
    let (_, hard) = nofile();
    assert!(
        hard >= 4096,
        "this test needs a hard RLIMIT_NOFILE of 4096 or more, not {hard}: raise it as root \
         (`ulimit -Hn 65536` in the shell that runs the tests, or a nofile line in \
         /etc/security/limits.conf)"
    );
    set_nofile(256, hard);

    let failures = run_many(300).await;
    assert!(
        failures.is_empty(),
        "{} failed: {failures:?}",
        failures.len()
    );
    assert_eq!(
        nofile(),
        (hard, hard),
        "the soft limit was raised to the hard one"
    );

    let conn = LocalTransport
        .connect(&HostTarget::new("local", "localhost"))
        .await
        .unwrap();
    // The shell lowers its soft limit before the command's text runs (the command is spawned
    // with posix_spawn, which cannot set limits): what the command starts inherits it, the hard
    // limit stays.
    let out = conn
        .exec(ExecRequest::new(
            "echo \"$(ulimit -n) $(ulimit -Hn)\"; sh -c 'ulimit -n'",
        ))
        .await
        .unwrap();
    assert_eq!(
        out.stdout.text_lossy(),
        format!("256 {hard}\n256\n"),
        "a command and what it starts run with the original soft limit"
    );
    assert_eq!(out.stderr.text_lossy(), "");
}
