//! Tamper tests: every edit, deletion, insertion, reordering or truncation of an export, and an
//! edit inside the store, is detected at the right sequence number.

// Tests may unwrap: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use sluice_audit::fixture::{run_started, step_intent, step_result};
use sluice_audit::{AuditLog, Entry, VerifyReport, verify_export};

/// Two runs whose records interleave: seq 1 a, 2 b, then alternating.
fn seeded() -> (tempfile::TempDir, AuditLog, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(dir.path()).unwrap();
    let a = log
        .begin_run(run_started("kernel", &["web1", "web2"]))
        .unwrap();
    let b = log.begin_run(run_started("openssl", &["db1"])).unwrap();
    for (host, run) in [("web1", &a), ("db1", &b), ("web2", &a)] {
        log.append_batch(vec![Entry::new(run, step_intent(host, "patch"))])
            .unwrap();
        log.append(
            run,
            step_result(host, "patch", true, &format!("patched {host}\n")),
        )
        .unwrap();
    }
    (dir, log, a, b)
}

fn export(log: &AuditLog, run: Option<&str>) -> Vec<String> {
    let mut out = Vec::new();
    log.export(run, &mut out).unwrap();
    String::from_utf8(out)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

fn verify(lines: &[String]) -> VerifyReport {
    let mut text = lines.join("\n");
    text.push('\n');
    verify_export(text.as_bytes()).unwrap()
}

/// Applies `tamper` to an export and checks the first break is at `seq`.
fn check(lines: &[String], tamper: impl FnOnce(&mut Vec<String>), seq: u64) {
    let mut lines = lines.to_vec();
    tamper(&mut lines);
    let report = verify(&lines);
    let broken = report
        .broken
        .unwrap_or_else(|| panic!("tampering not detected"));
    assert_eq!(broken.seq, seq, "{broken}");
}

/// Index of the line holding record `seq`.
fn line_of(lines: &[String], seq: u64) -> usize {
    let needle = format!("\"seq\":{seq},");
    lines.iter().position(|l| l.contains(&needle)).unwrap()
}

#[test]
fn untouched_export_verifies() {
    let (_dir, log, a, _) = seeded();
    let full = verify(&export(&log, None));
    assert!(full.is_ok(), "{full:?}");
    assert_eq!(full.records, 8);
    assert_eq!(full.last_hash, log.verify().unwrap().last_hash);
    let run = verify(&export(&log, Some(&a)));
    assert!(run.is_ok(), "{run:?}");
    assert_eq!(run.records, 5);
}

#[test]
fn changed_byte_is_detected_at_its_record() {
    let (_dir, log, _, _) = seeded();
    let lines = export(&log, None);
    check(
        &lines,
        |l| {
            let i = line_of(l, 6);
            l[i] = l[i].replace("patched", "patchee");
        },
        6,
    );
    // A changed digit of the seq itself, or a byte that breaks the JSON.
    check(
        &lines,
        |l| l[2] = l[2].replacen("\"seq\":3", "\"seq\":4", 1),
        3,
    );
    check(&lines, |l| l[4] = l[4].replacen('{', "[", 1), 5);
    // A field added to a line is a change too.
    check(
        &lines,
        |l| l[1] = l[1].replacen('{', "{\"note\":\"ok\",", 1),
        2,
    );
}

#[test]
fn deleted_line_is_detected_at_the_missing_record() {
    let (_dir, log, _, _) = seeded();
    let lines = export(&log, None);
    check(&lines, |l| drop(l.remove(4)), 5);
    check(&lines, |l| drop(l.remove(0)), 1);
}

#[test]
fn swapped_lines_are_detected_at_the_first() {
    let (_dir, log, _, _) = seeded();
    let lines = export(&log, None);
    check(&lines, |l| l.swap(4, 5), 5);
    check(&lines, |l| l.swap(1, 6), 2);
}

#[test]
fn inserted_line_is_detected_where_it_was_inserted() {
    let (_dir, log, _, _) = seeded();
    let lines = export(&log, None);
    // A forged record 6 in front of the real one.
    check(
        &lines,
        |l| l.insert(5, l[5].replace("patched", "skipped")),
        6,
    );
    // A copy of an earlier record after record 5.
    check(&lines, |l| l.insert(5, l[2].clone()), 6);
    // A copy of the record just before.
    check(&lines, |l| l.insert(5, l[4].clone()), 5);
    // A line after the end line (blank lines there are harmless).
    check(&lines, |l| l.push(l[0].clone()), 9);
    let mut padded = lines.clone();
    padded.push(String::new());
    assert!(verify(&padded).is_ok());
}

#[test]
fn truncation_is_detected_at_the_first_missing_record() {
    let (_dir, log, _, _) = seeded();
    let lines = export(&log, None);
    check(&lines, |l| l.truncate(5), 6);
    // Only the end line lost: the records are complete but the file is cut.
    check(&lines, |l| drop(l.pop()), 9);
    // Cut in the middle of a line.
    check(
        &lines,
        |l| {
            l.truncate(4);
            let half = l[3].len() / 2;
            l[3].truncate(half);
        },
        4,
    );
}

#[test]
fn run_export_is_checked_along_the_run_chain() {
    let (_dir, log, a, _) = seeded();
    let lines = export(&log, Some(&a));
    // Run a holds seqs 1, 3, 4, 7, 8 (b's records 2, 5, 6 interleave).
    let seqs: Vec<u64> = lines[..lines.len() - 1]
        .iter()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["seq"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(seqs, [1, 3, 4, 7, 8]);
    check(&lines, |l| l[2] = l[2].replace("web1", "web9"), 4);
    // A deleted record is reported at the record that no longer follows its predecessor.
    check(&lines, |l| drop(l.remove(2)), 7);
    check(&lines, |l| drop(l.remove(0)), 3);
    check(&lines, |l| l.swap(2, 3), 7);
    check(&lines, |l| l.truncate(3), 5);
    // A record of another run slipped in.
    let other = export(&log, None);
    check(&lines, |l| l.insert(2, other[4].clone()), 5);
}

#[test]
fn edited_record_in_the_store_is_reported_by_verify() {
    const RECORDS: TableDefinition<u64, &[u8]> = TableDefinition::new("records");
    let (dir, log, _, _) = seeded();
    assert!(log.verify().unwrap().is_ok());
    drop(log);
    {
        let db = redb::Database::open(dir.path().join(sluice_audit::STORE_FILE)).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut records = txn.open_table(RECORDS).unwrap();
            let edited = {
                let bytes = records.get(4).unwrap().unwrap();
                String::from_utf8(bytes.value().to_vec())
                    .unwrap()
                    .replace("patch", "rm -rf")
            };
            records.insert(4, edited.as_bytes()).unwrap();
        }
        txn.commit().unwrap();
    }
    let log = AuditLog::open_existing(dir.path()).unwrap();
    let report = log.verify().unwrap();
    let broken = report.broken.unwrap();
    assert_eq!(broken.seq, 4, "{broken}");
    assert_eq!(report.records, 3);
}

#[test]
fn export_lines_are_the_stored_bytes() {
    // A record written by an older sluice (without fields added since, e.g. `attempt`) must
    // export and verify unchanged; so export copies stored bytes rather than re-serialising.
    const RECORDS: TableDefinition<u64, &[u8]> = TableDefinition::new("records");
    let (dir, log, _, _) = seeded();
    drop(log);
    let stored = {
        let db = redb::Database::open(dir.path().join(sluice_audit::STORE_FILE)).unwrap();
        let txn = db.begin_read().unwrap();
        let records = txn.open_table(RECORDS).unwrap();
        let bytes = records.get(3).unwrap().unwrap().value().to_vec();
        String::from_utf8(bytes).unwrap()
    };
    let log = AuditLog::open_existing(dir.path()).unwrap();
    let lines = export(&log, None);
    assert_eq!(lines[2], stored);
}

/// A full export (bytes) and the byte offset where each line starts.
fn export_bytes() -> &'static (Vec<u8>, Vec<usize>) {
    static EXPORT: std::sync::OnceLock<(Vec<u8>, Vec<usize>)> = std::sync::OnceLock::new();
    EXPORT.get_or_init(|| {
        let (_dir, log, _, _) = seeded();
        let mut out = Vec::new();
        log.export(None, &mut out).unwrap();
        let starts = std::iter::once(0)
            .chain(
                out.iter()
                    .enumerate()
                    .filter(|(_, b)| **b == b'\n')
                    .map(|(i, _)| i + 1),
            )
            .filter(|&i| i < out.len())
            .collect();
        (out, starts)
    })
}

proptest::proptest! {
    /// Any single changed byte (newlines aside, which split a line in two) is detected, at the
    /// record of the line it is in or the one before it (a seq changed to its predecessor's).
    #[test]
    fn any_changed_byte_is_detected(pos in 0usize..100_000, byte in proptest::num::u8::ANY) {
        let (export, starts) = export_bytes();
        let pos = pos % export.len();
        proptest::prop_assume!(export[pos] != byte && export[pos] != b'\n' && byte != b'\n');
        let mut tampered = export.clone();
        tampered[pos] = byte;
        let report = verify_export(tampered.as_slice()).unwrap();
        let broken = report.broken.expect("tampering not detected");
        // Line k (1-based) holds record k; the end line is "record" last + 1.
        let line = starts.iter().filter(|&&s| s <= pos).count() as u64;
        proptest::prop_assert!(
            broken.seq == line || broken.seq + 1 == line,
            "byte {} of line {}: reported {}", pos, line, broken
        );
    }
}
