//! What a durable commit costs per record: one commit per record vs records batched into one
//! commit (as when many hosts finish a step together).
//!
//! `cargo run --release -p sluice-audit --example commit_cost [-- RECORDS [DIR]]`
//! DIR defaults to a temporary directory under $TMPDIR; pass a directory on the disk the state
//! directory lives on to measure that disk.

// Benchmarks and examples may unwrap: they are run by hand.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use sluice_audit::fixture::step_result;
use sluice_audit::{AuditLog, Entry};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let records: usize = args.next().map(|n| n.parse()).transpose()?.unwrap_or(400);
    let base = args.next().map(std::path::PathBuf::from);
    let dir = match &base {
        Some(base) => tempfile::tempdir_in(base)?,
        None => tempfile::tempdir()?,
    };
    let log = AuditLog::open(dir.path())?;
    let run = log.begin_run(sluice_audit::fixture::run_started("bench", &["h"]))?;
    // A result with 2 KiB of output, about what a patch step keeps of a short command.
    let output = "x".repeat(2048);
    let entry = |i: usize| {
        Entry::new(
            &run,
            step_result(&format!("host{i}"), "patch", true, &output),
        )
    };

    println!(
        "records per case: {records}, store: {}",
        dir.path().display()
    );
    println!("{:<28} {:>12} {:>16}", "case", "total ms", "ms per record");
    let start = Instant::now();
    for i in 0..records {
        let e = entry(i);
        log.append(&e.run, e.fact)?;
    }
    report("one commit per record", records, start);
    for batch in [10, 50, 200] {
        let start = Instant::now();
        let mut i = 0;
        while i < records {
            let n = batch.min(records - i);
            log.append_batch((i..i + n).map(entry).collect())?;
            i += n;
        }
        report(&format!("batches of {batch}"), records, start);
    }
    let verify = Instant::now();
    let report_ok = log.verify()?.is_ok();
    println!(
        "verify of {} records: {:.1} ms (ok: {report_ok})",
        records * 4 + 1,
        verify.elapsed().as_secs_f64() * 1e3
    );
    Ok(())
}

fn report(case: &str, records: usize, start: Instant) {
    let total = start.elapsed().as_secs_f64() * 1e3;
    println!("{case:<28} {total:>12.1} {:>16.3}", total / records as f64);
}
