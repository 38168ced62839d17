//! Reading without writing (`AuditLog::open_read_only`) and salvage (`salvage`), on stores
//! seeded through the library: the bytes never change, writes through a reader are refused,
//! another writer's commits are seen, and salvage returns exactly the intact records.

// Tests may unwrap: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use sluice_audit::fixture::{run_started, seed_run};
use sluice_audit::{AuditError, AuditLog, STORE_FILE, salvage};

fn seeded() -> (tempfile::TempDir, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(dir.path()).unwrap();
    let runs = vec![
        seed_run(&log, "kernel", &["web1", "web2"], &[]).unwrap(),
        seed_run(&log, "openssl", &["db1", "db2"], &["db2"]).unwrap(),
    ];
    drop(log);
    let _ = std::fs::remove_file(dir.path().join("audit.redb.lock"));
    (dir, runs)
}

fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).unwrap())
        })
        .collect();
    files.sort();
    files
}

#[test]
fn a_reader_reads_everything_and_writes_nothing() {
    let (dir, runs) = seeded();
    let before = files(dir.path());
    let log = AuditLog::open_read_only(dir.path()).unwrap();
    assert_eq!(log.list_runs().unwrap().len(), 2);
    assert!(!log.run_records(&runs[1]).unwrap().is_empty());
    assert!(log.verify().unwrap().is_ok());
    let refused = log.append(
        &runs[0],
        sluice_model::Fact::RunStarted(run_started("x", &[])),
    );
    assert!(
        matches!(refused, Err(AuditError::ReadOnly { .. })),
        "{refused:?}"
    );
    drop(log);
    assert_eq!(files(dir.path()), before);
}

#[test]
fn a_reader_sees_what_a_writer_committed_before_it_opened() {
    let (dir, _) = seeded();
    let writer = AuditLog::open(dir.path()).unwrap();
    let reader = AuditLog::open_read_only(dir.path()).unwrap();
    let third = seed_run(&writer, "nginx", &["lb1"], &[]).unwrap();
    // A reader shows the store as it was when it opened; the next one sees the new run.
    assert!(reader.run_summary(&third).is_err());
    drop(reader);
    let reader = AuditLog::open_read_only(dir.path()).unwrap();
    assert_eq!(reader.list_runs().unwrap().len(), 3);
    assert!(reader.verify().unwrap().is_ok());
}

#[test]
fn no_store_is_missing_not_created() {
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(
        AuditLog::open_read_only(dir.path()),
        Err(AuditError::Missing { .. })
    ));
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

/// The export lines of an intact store, without the end line.
fn exported(dir: &Path) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    AuditLog::open_read_only(dir)
        .unwrap()
        .export(None, &mut out)
        .unwrap();
    out.split(|b| *b == b'\n')
        .filter(|l| !l.is_empty() && !l.starts_with(b"{\"end\""))
        .map(<[u8]>::to_vec)
        .collect()
}

#[test]
fn salvage_of_an_intact_store_is_its_export_without_the_end_line() {
    let (dir, _) = seeded();
    let records = exported(dir.path());
    let mut out = Vec::new();
    let report = salvage(dir.path(), &mut out).unwrap();
    let lines: Vec<Vec<u8>> = out
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(<[u8]>::to_vec)
        .collect();
    assert_eq!(lines, records);
    assert_eq!(report.records as usize, records.len());
    assert_eq!(report.ranges, vec![(1, records.len() as u64)]);
    assert!(report.missing.is_empty() && report.breaks.is_empty());
}

#[test]
fn salvage_skips_a_changed_record_and_reports_the_gap() {
    let (dir, _) = seeded();
    let records = exported(dir.path());
    let path = dir.path().join(STORE_FILE);
    let mut bytes = std::fs::read(&path).unwrap();
    // Change one byte of every copy of record 3 in the file.
    let start = b"{\"seq\":3,";
    let at: Vec<usize> = bytes
        .windows(start.len())
        .enumerate()
        .filter(|(_, w)| *w == start)
        .map(|(i, _)| i)
        .collect();
    assert!(!at.is_empty());
    for i in at {
        bytes[i + 20] ^= 0x01;
    }
    std::fs::write(&path, &bytes).unwrap();
    let mut out = Vec::new();
    let report = salvage(dir.path(), &mut out).unwrap();
    let last = records.len() as u64;
    assert_eq!(report.missing, vec![(3, 3)]);
    assert_eq!(report.ranges, vec![(1, 2), (4, last)]);
    assert!(report.damaged >= 1);
    assert_eq!(report.records, last - 1);
    assert!(report.to_string().contains("missing: 3"), "{report}");
}

#[test]
fn salvage_never_writes_the_file() {
    let (dir, _) = seeded();
    let path = dir.path().join(STORE_FILE);
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let before = files(dir.path());
    let mut out = Vec::new();
    salvage(dir.path(), &mut out).unwrap();
    assert_eq!(files(dir.path()), before);
}
