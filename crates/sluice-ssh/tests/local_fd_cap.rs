//! Many local commands at once under a low descriptor limit that cannot be raised (soft = hard
//! = 256) all succeed: the local transport caps how many run at once (issue 16, fault 9). A
//! test binary of its own: it lowers its process's limit, which would disturb other tests.

// Tests may unwrap: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod local_support;

use local_support::{run_many, set_nofile};

#[tokio::test]
async fn two_hundred_local_commands_at_once_under_a_hard_limit_of_256_all_succeed() {
    set_nofile(256, 256);
    let failures = run_many(200).await;
    assert!(
        failures.is_empty(),
        "{} failed: {failures:?}",
        failures.len()
    );
    let limit = sluice_ssh::fd_limit::raised();
    assert_eq!((limit.soft, limit.hard), (256, 256));
}
