//! The PostgreSQL store against a real throwaway cluster (sluice-testpg): the same behaviours as
//! the redb store (tests/behaviour), then what only a shared store does — writers from many
//! connections keeping one chain, migrations (version 3's conversion of older rows), leases that expire without a heartbeat, and
//! `verify` finding rows changed, deleted or inserted with SQL.

// Tests may unwrap: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod behaviour;

use sluice_audit::fixture::{run_started, seed_run, step_intent, step_result};
use sluice_audit::{AuditError, AuditLog, Entry, LeaseHolder, OpenMode, StoreLocation, StoreName};
use sluice_model::RunState;
use sluice_testpg::PgCluster;

fn cluster() -> PgCluster {
    PgCluster::start().unwrap_or_else(|e| panic!("{e}"))
}

fn location(url: &str) -> StoreLocation {
    StoreLocation::parse(url).unwrap()
}

fn open(url: &str) -> AuditLog {
    AuditLog::open_at(&location(url), OpenMode::Create).unwrap()
}

#[test]
fn the_postgres_store_behaves_like_the_redb_store() {
    let pg = cluster();
    let mut failed = Vec::new();
    for (i, (name, behaviour)) in behaviour::ALL.iter().enumerate() {
        let url = pg.create_database(&format!("b{i}")).unwrap();
        let log = open(&url);
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| behaviour(&log)));
        if outcome.is_err() {
            failed.push(*name);
        }
    }
    assert!(failed.is_empty(), "failed on PostgreSQL: {failed:?}");
}

#[test]
fn a_commit_by_another_handle_between_two_commits_is_in_the_summary() {
    let pg = cluster();
    let url = pg.url();
    let (first, second) = (open(&url), open(&url));
    behaviour::a_commit_by_another_handle_between_two_commits_is_in_the_summary(&first, &second);
}

#[test]
fn writers_on_many_connections_keep_one_chain_and_commits_are_synchronous() {
    let pg = cluster();
    let url = pg.url();
    let run = open(&url).begin_run(run_started("p", &["a"])).unwrap();
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let (url, run) = (url.clone(), run.clone());
            std::thread::spawn(move || {
                let log = open(&url);
                for i in 0..25 {
                    let host = format!("h{t}-{i}");
                    if i % 5 == 0 {
                        log.append_batch(vec![
                            Entry::new(&run, step_intent(&host, "s")),
                            Entry::new(&run, step_result(&host, "s", true, "ok")),
                        ])
                        .unwrap();
                    } else {
                        log.append(&run, step_intent(&host, "s")).unwrap();
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let log = AuditLog::open_at(&location(&url), OpenMode::ReadOnly).unwrap();
    let report = log.verify().unwrap();
    assert!(report.is_ok(), "{report:?}");
    assert_eq!(report.records, 1 + 4 * (20 + 5 * 2));
    // Whatever the server's default, the store's sessions commit synchronously.
    pg.psql(
        "sluice",
        "ALTER DATABASE sluice SET synchronous_commit = off",
    )
    .unwrap();
    let log = open(&url);
    assert!(log.append(&run, step_intent("x", "s")).is_ok());
    // The setting is per session: check it the way the store's connection sets it.
    let probe = sluice_audit::PgStore::open(
        &sluice_audit::StoreUrl::parse(&url).unwrap(),
        OpenMode::Existing,
    )
    .unwrap();
    assert_eq!(probe.setting("synchronous_commit").unwrap(), "on");
}

#[test]
fn a_reader_writes_nothing_and_an_empty_database_is_not_initialised_by_reading() {
    let pg = cluster();
    let url = pg.url();
    let err = AuditLog::open_at(&location(&url), OpenMode::ReadOnly).unwrap_err();
    assert!(matches!(err, AuditError::NotInitialised { .. }), "{err}");
    let err = AuditLog::open_at(&location(&url), OpenMode::Existing).unwrap_err();
    assert!(matches!(err, AuditError::NotInitialised { .. }), "{err}");
    assert_eq!(
        pg.psql("sluice", "SELECT to_regclass('sluice.records') IS NULL")
            .unwrap(),
        "t"
    );
    seed_run(&open(&url), "kernel", &["web1"], &[]).unwrap();
    let reader = AuditLog::open_at(&location(&url), OpenMode::ReadOnly).unwrap();
    assert_eq!(reader.list_runs().unwrap().len(), 1);
    let err = reader.begin_run(run_started("p", &["a"])).unwrap_err();
    assert!(matches!(err, AuditError::ReadOnly { .. }), "{err}");
}

#[test]
fn errors_name_a_postgresql_store_by_its_url_and_a_redb_store_by_its_file() {
    // Nothing listens on port 1: the connection is refused at once.
    let url = "postgres://sluice@127.0.0.1:1/sluice";
    let err = AuditLog::open_at(&location(url), OpenMode::Existing).unwrap_err();
    assert!(err.is_unreachable(), "{err}");
    assert!(
        matches!(&err, AuditError::Database { store: StoreName::Database(u), .. } if u.text() == url),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .starts_with(&format!("PostgreSQL audit store {url}: ")),
        "{err}"
    );
    let dir = tempfile::tempdir().unwrap();
    drop(AuditLog::open(dir.path()).unwrap());
    let reader = AuditLog::open_read_only(dir.path()).unwrap();
    let err = reader.begin_run(run_started("p", &["a"])).unwrap_err();
    let file = dir.path().join("audit.redb");
    assert_eq!(reader.name(), &StoreName::File(file.clone()));
    assert_eq!(
        err.to_string(),
        format!(
            "the audit store {} was opened for reading: nothing can be recorded through it",
            file.display()
        )
    );
}

#[test]
fn a_schema_newer_than_this_sluice_is_refused() {
    let pg = cluster();
    let url = pg.url();
    drop(open(&url));
    pg.psql(
        "sluice",
        "INSERT INTO sluice.schema_version (version) VALUES (99)",
    )
    .unwrap();
    for mode in [OpenMode::Create, OpenMode::Existing, OpenMode::ReadOnly] {
        let err = AuditLog::open_at(&location(&url), mode).unwrap_err();
        assert!(
            matches!(err, AuditError::SchemaNewer { found: 99, .. }),
            "{mode:?}: {err}"
        );
    }
}

#[test]
fn first_opens_racing_apply_the_migrations_once() {
    let pg = cluster();
    let url = pg.url();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || {
                open(&url).begin_run(run_started("p", &["a"])).unwrap();
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let log = open(&url);
    assert_eq!(log.list_runs().unwrap().len(), 4);
    assert_eq!(
        pg.psql("sluice", "SELECT count(*) FROM sluice.schema_version")
            .unwrap(),
        sluice_audit::pg::SCHEMA_VERSION.to_string()
    );
}

#[test]
fn version_3_gives_older_records_their_host_and_moves_host_lists_out_of_summaries() {
    let pg = cluster();
    let url = pg.url();
    let run = seed_run(&open(&url), "kernel", &["web1", "web2"], &["web2"]).unwrap();
    // Back to what version 2 wrote: no host column, no run_hosts, the lists in the summary.
    pg.psql(
        "sluice",
        "UPDATE sluice.runs r SET summary = (summary::jsonb || jsonb_build_object(
             'hosts_finished', coalesce((SELECT jsonb_agg(host ORDER BY host)
                 FROM sluice.run_hosts h WHERE h.run = r.run AND finished), '[]'::jsonb),
             'hosts_failed', coalesce((SELECT jsonb_agg(host ORDER BY host)
                 FROM sluice.run_hosts h WHERE h.run = r.run AND failed), '[]'::jsonb)))::text;
         DROP TABLE sluice.run_hosts;
         DROP INDEX sluice.records_resolutions;
         ALTER TABLE sluice.records DROP COLUMN host;
         DELETE FROM sluice.schema_version WHERE version = 3;",
    )
    .unwrap();
    let listed = format!(
        "SELECT (summary::jsonb->>'hosts_finished') || (summary::jsonb->>'hosts_failed')
         FROM sluice.runs WHERE run = '{run}'"
    );
    assert_eq!(
        pg.psql("sluice", &listed).unwrap(),
        r#"["web1", "web2"]["web2"]"#
    );

    let log = open(&url);
    let summary = log.run_summary(&run).unwrap();
    assert_eq!((summary.hosts_ok(), summary.hosts_failed.len()), (1, 1));
    assert_eq!(pg.psql("sluice", &listed).unwrap(), "[][]");
    let kinds: Vec<&str> = log
        .postgres("test")
        .unwrap()
        .host_records(&run, "web2")
        .unwrap()
        .iter()
        .map(|r| r.kind())
        .collect();
    assert_eq!(kinds, ["step_intent", "step_result", "host_finished"]);
    // Records appended from now on carry their host too.
    let next = seed_run(&log, "kernel", &["web1"], &[]).unwrap();
    let later = log.postgres("test").unwrap().host_records(&next, "web1");
    assert_eq!(later.unwrap().len(), 3);
    assert_eq!(log.list_runs().unwrap().len(), 2);
}

#[test]
fn leases_expire_without_a_heartbeat_and_are_renewed_while_the_holder_lives() {
    // SAFETY of the test: this test binary reads SLUICE_LEASE_EXPIRY only in PgStore::open,
    // so the value is passed through a store-specific constructor instead of the environment.
    let pg = cluster();
    let url = pg.url();
    let log = AuditLog::from(
        sluice_audit::PgStore::open_with_lease_expiry(
            &sluice_audit::StoreUrl::parse(&url).unwrap(),
            OpenMode::Create,
            std::time::Duration::from_millis(1200),
        )
        .unwrap(),
    );
    let holder = LeaseHolder::this_process();
    let run = log.start_run(run_started("p", &["a"]), &holder).unwrap();
    // The heartbeat keeps the lease alive well past its expiry.
    std::thread::sleep(std::time::Duration::from_millis(3000));
    assert_eq!(log.run_summary(&run).unwrap().status, RunState::RUNNING);
    let other = open(&url);
    assert!(matches!(
        other.break_leases(&run, "ops", None),
        Err(AuditError::LeaseHolderAlive { .. })
    ));
    // The holder goes away without releasing: its lease expires, the run is interrupted, and
    // another controller may break the lease or resume the run.
    drop(log);
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert_eq!(
        other.run_summary(&run).unwrap().status,
        RunState::INTERRUPTED
    );
    assert_eq!(other.break_leases(&run, "ops", None).unwrap(), ["a"]);
}

/// Runs SQL as an attacker with the database's owner rights would.
fn tamper(pg: &PgCluster, sql: &str) {
    pg.psql("sluice", sql).unwrap();
}

fn broken_at(url: &str) -> Option<(u64, String)> {
    let report = AuditLog::open_at(&location(url), OpenMode::ReadOnly)
        .unwrap()
        .verify()
        .unwrap();
    report.broken.map(|b| (b.seq, b.reason))
}

#[test]
fn verify_names_the_record_changed_deleted_or_inserted_with_sql() {
    let pg = cluster();
    let url = pg.url();
    let log = open(&url);
    seed_run(&log, "kernel", &["web1", "web2"], &[]).unwrap();
    let records = log.verify().unwrap().records;
    assert!(records >= 10, "{records}");
    assert_eq!(broken_at(&url), None);

    // Changed: an output rewritten in place.
    tamper(
        &pg,
        "UPDATE sluice.records SET body = replace(body, 'patched web1', 'patched webX') WHERE seq = 6",
    );
    let (seq, reason) = broken_at(&url).unwrap();
    assert_eq!(seq, 6, "{reason}");
    assert!(reason.contains("changed"), "{reason}");
    tamper(
        &pg,
        "UPDATE sluice.records SET body = replace(body, 'patched webX', 'patched web1') WHERE seq = 6",
    );
    assert_eq!(broken_at(&url), None);

    // Deleted in the middle, then at the end.
    tamper(&pg, "CREATE TABLE saved AS SELECT * FROM sluice.records");
    tamper(&pg, "DELETE FROM sluice.records WHERE seq = 4");
    let (seq, reason) = broken_at(&url).unwrap();
    assert_eq!(seq, 4, "{reason}");
    tamper(
        &pg,
        "INSERT INTO sluice.records SELECT * FROM saved WHERE seq = 4",
    );
    assert_eq!(broken_at(&url), None);
    let last = records;
    tamper(
        &pg,
        &format!("DELETE FROM sluice.records WHERE seq = {last}"),
    );
    let (seq, reason) = broken_at(&url).unwrap();
    assert_eq!(seq, last, "{reason}");
    assert!(reason.contains("missing"), "{reason}");
    tamper(
        &pg,
        &format!("INSERT INTO sluice.records SELECT * FROM saved WHERE seq = {last}"),
    );
    assert_eq!(broken_at(&url), None);

    // Inserted: a copy of a record at the end, and a forged one in the middle (seq moved).
    tamper(
        &pg,
        &format!(
            "INSERT INTO sluice.records SELECT {}, run, kind, body FROM saved WHERE seq = 3",
            last + 1
        ),
    );
    let (seq, reason) = broken_at(&url).unwrap();
    assert_eq!(seq, last + 1, "{reason}");
    tamper(
        &pg,
        &format!("DELETE FROM sluice.records WHERE seq = {}", last + 1),
    );
    tamper(
        &pg,
        "UPDATE sluice.records SET seq = seq + 1000 WHERE seq >= 6",
    );
    tamper(
        &pg,
        "INSERT INTO sluice.records SELECT 6, run, kind, body FROM saved WHERE seq = 2",
    );
    let (seq, reason) = broken_at(&url).unwrap();
    assert_eq!(seq, 6, "{reason}");
}
