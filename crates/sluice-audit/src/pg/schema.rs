//! The schema of the PostgreSQL store, in versioned migrations.
//!
//! `sluice.schema_version` holds one row per migration applied. A store is migrated by
//! `sluice store init` and by the first command that opens it to write; migrations run in one
//! transaction under an advisory lock, so two controllers starting at once on a new database
//! apply them once. A schema newer than this sluice knows is refused by every command: an
//! older sluice must not write records a newer one's indexes do not expect.
//!
//! Tables (all in the `sluice` schema): `records` (the chain: seq, run, kind and the record's
//! exact JSON bytes as text), `chain_tip` (one row: the last seq and hash; the row every writer
//! locks), `runs` (run summaries), `artifacts`, `plan_approvals`, `wave_approvals`,
//! `pending_gates` (indexes derived from records in the same transaction), `leases` (with
//! `expires_at`, renewed by the holder's heartbeat); from version 2, `workers` (one row per
//! `sluice worker` process, its `expires_at` renewed by its heartbeat) and `assignments` (a host
//! of a run handed to the workers: `queued`, `claimed` by a worker with a fencing counter
//! `claims`, `done`, `withdrawn` or `blocked`; see `shard.rs`); from version 3, `records.host` (the
//! record's host, indexed by run and host) and `run_hosts` (a run's finished and failed hosts,
//! which the summary in `runs` no longer lists; see `tx.rs`).

use crate::audit_log::OpenMode;
use crate::chain::GENESIS;
use crate::error::AuditError;

use super::PgStore;
use super::conn::Connection;

/// The migrations, in order; migration N brings the schema to version N.
const MIGRATIONS: &[&str] = &[
    // 1: the first schema.
    "CREATE SCHEMA IF NOT EXISTS sluice;
     CREATE TABLE sluice.schema_version (
         version integer PRIMARY KEY,
         applied_at timestamptz NOT NULL DEFAULT now()
     );
     CREATE TABLE sluice.chain_tip (
         only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
         seq bigint NOT NULL,
         hash text NOT NULL
     );
     INSERT INTO sluice.chain_tip (seq, hash) VALUES (0, '$GENESIS');
     CREATE TABLE sluice.records (
         seq bigint PRIMARY KEY,
         run text NOT NULL,
         kind text NOT NULL,
         body text NOT NULL
     );
     CREATE INDEX records_by_run ON sluice.records (run, seq);
     CREATE TABLE sluice.runs (run text PRIMARY KEY, summary text NOT NULL);
     CREATE TABLE sluice.artifacts (plan_hash text PRIMARY KEY, seq bigint NOT NULL);
     CREATE TABLE sluice.plan_approvals (
         plan_hash text NOT NULL, seq bigint NOT NULL, PRIMARY KEY (plan_hash, seq)
     );
     CREATE TABLE sluice.wave_approvals (
         run text NOT NULL, wave text NOT NULL, seq bigint NOT NULL, PRIMARY KEY (run, wave)
     );
     CREATE TABLE sluice.pending_gates (
         run text NOT NULL, wave text NOT NULL, seq bigint NOT NULL, PRIMARY KEY (run, wave)
     );
     CREATE TABLE sluice.leases (
         host text PRIMARY KEY,
         run text NOT NULL,
         operator text NOT NULL,
         controller text NOT NULL,
         pid bigint NOT NULL,
         since text NOT NULL,
         expires_at timestamptz NOT NULL
     );
     CREATE INDEX leases_by_run ON sluice.leases (run);",
    // 2: workers and host assignments (`sluice worker`, `apply --workers`; `worker.rs`,
    // `shard.rs`).
    "CREATE TABLE sluice.workers (
         id bigserial PRIMARY KEY,
         name text NOT NULL,
         labels text[] NOT NULL,
         max_hosts integer NOT NULL,
         machine text NOT NULL,
         pid bigint NOT NULL,
         started_at timestamptz NOT NULL DEFAULT now(),
         expires_at timestamptz NOT NULL,
         stopped_at timestamptz
     );
     CREATE INDEX workers_by_name ON sluice.workers (name, expires_at);
     CREATE TABLE sluice.assignments (
         id bigserial PRIMARY KEY,
         run text NOT NULL,
         task text NOT NULL,
         wave text NOT NULL,
         host text NOT NULL,
         label text,
         state text NOT NULL,
         worker bigint REFERENCES sluice.workers (id),
         claims integer NOT NULL DEFAULT 0,
         stop integer NOT NULL DEFAULT 0,
         queued_at timestamptz NOT NULL DEFAULT now(),
         claimed_at timestamptz,
         UNIQUE (run, task, wave, host)
     );
     CREATE INDEX assignments_open ON sluice.assignments (id)
         WHERE state IN ('queued', 'claimed');",
    // 3: what makes a run of thousands of hosts linear (`tx.rs`, `shard.rs`). A record's host
    // (its fact's top-level `host`) in a column, so a worker that claims a host reads that
    // host's records and the operator's resolutions, not the whole run; a run's finished and
    // failed hosts in `run_hosts`, so a commit no longer rewrites a summary that lists every
    // host. Records and summaries written before are converted here.
    "ALTER TABLE sluice.records ADD COLUMN host text;
     UPDATE sluice.records SET host = body::jsonb->>'host'
         WHERE kind <> 'plan_artifact_stored';
     CREATE INDEX records_by_run_host ON sluice.records (run, host, seq)
         WHERE host IS NOT NULL;
     CREATE INDEX records_resolutions ON sluice.records (run, seq)
         WHERE kind = 'unknown_steps_resolved';
     CREATE TABLE sluice.run_hosts (
         run text NOT NULL,
         host text NOT NULL,
         finished boolean NOT NULL,
         failed boolean NOT NULL,
         PRIMARY KEY (run, host)
     );
     INSERT INTO sluice.run_hosts (run, host, finished, failed)
         SELECT run, host, bool_or(finished), bool_or(failed) FROM (
             SELECT run, jsonb_array_elements_text(summary::jsonb->'hosts_finished') AS host,
                    true AS finished, false AS failed
             FROM sluice.runs
             UNION ALL
             SELECT run, jsonb_array_elements_text(summary::jsonb->'hosts_failed'), false, true
             FROM sluice.runs
         ) listed GROUP BY run, host;
     UPDATE sluice.runs SET summary =
         (summary::jsonb || '{\"hosts_finished\": [], \"hosts_failed\": []}'::jsonb)::text;",
];

/// The schema version this sluice writes.
pub const SCHEMA_VERSION: i32 = MIGRATIONS.len() as i32;

/// An arbitrary constant naming the advisory lock migrations are applied under.
const MIGRATION_LOCK: i64 = 0x736c_7569_6365_0001;

/// The schema version of the database, `None` when it has no sluice schema.
fn current_version(conn: &Connection) -> Result<Option<i32>, AuditError> {
    let rows = conn.query(
        "SELECT to_regclass('sluice.schema_version') IS NOT NULL",
        &[],
    )?;
    let exists: bool = rows.first().map(|r| r.get(0)).unwrap_or(false);
    if !exists {
        return Ok(None);
    }
    let rows = conn.query("SELECT max(version) FROM sluice.schema_version", &[])?;
    Ok(rows.first().and_then(|r| r.get::<_, Option<i32>>(0)))
}

/// Checks the schema on open, migrating it when `mode` writes; see the module documentation.
pub(crate) fn prepare(
    conn: &mut Connection,
    store: &PgStore,
    mode: OpenMode,
) -> Result<(), AuditError> {
    let found = current_version(conn)?;
    let newer = |found: i32| AuditError::SchemaNewer {
        store: store.store_name().to_string(),
        found,
        known: SCHEMA_VERSION,
    };
    match (found, mode) {
        (Some(found), _) if found > SCHEMA_VERSION => Err(newer(found)),
        (Some(found), _) if found == SCHEMA_VERSION => Ok(()),
        (None, OpenMode::Existing | OpenMode::ReadOnly) | (Some(_), OpenMode::ReadOnly) => {
            Err(AuditError::NotInitialised {
                store: store.store_name().to_string(),
            })
        }
        _ => migrate(conn, store).map(|_| ()),
    }
}

/// Applies the migrations the database lacks, in one transaction. Returns the versions applied.
pub(crate) fn migrate(conn: &mut Connection, store: &PgStore) -> Result<Vec<i32>, AuditError> {
    let (txn, name) = conn.transaction()?;
    let err = |e: tokio_postgres::Error| super::conn::db_error(name, &e);
    super::conn::block(txn.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK]))
        .map_err(err)?;
    // A query of pg_tables reads the catalog with this statement's snapshot, which sees a
    // migration committed while this transaction waited for the lock (`to_regclass` may
    // answer from the backend's catalog cache, taken before the lock).
    let exists: bool = super::conn::block(txn.query_one(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_tables
                        WHERE schemaname = 'sluice' AND tablename = 'schema_version')",
        &[],
    ))
    .map_err(err)?
    .get(0);
    let found: i32 = if exists {
        super::conn::block(txn.query_one(
            "SELECT coalesce(max(version), 0) FROM sluice.schema_version",
            &[],
        ))
        .map_err(err)?
        .get(0)
    } else {
        0
    };
    if found > SCHEMA_VERSION {
        return Err(AuditError::SchemaNewer {
            store: store.store_name().to_string(),
            found,
            known: SCHEMA_VERSION,
        });
    }
    let mut applied = Vec::new();
    for (index, sql) in MIGRATIONS.iter().enumerate() {
        let version = i32::try_from(index + 1).unwrap_or(i32::MAX);
        if version <= found {
            continue;
        }
        super::conn::block(txn.batch_execute(&sql.replace("$GENESIS", GENESIS))).map_err(err)?;
        super::conn::block(txn.execute(
            "INSERT INTO sluice.schema_version (version) VALUES ($1)",
            &[&version],
        ))
        .map_err(err)?;
        applied.push(version);
    }
    super::conn::block(txn.commit()).map_err(err)?;
    Ok(applied)
}
