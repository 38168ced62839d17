//! `sluice-testfleet up N [--dir D]`: starts a fleet for benchmarks, prints the inventory path,
//! and keeps it running until stdin closes or the process is interrupted.

// Run by hand: a panic is a clear enough error here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: sluice-testfleet up N [--dir DIR]";
    let (Some("up"), Some(n)) = (args.first().map(String::as_str), args.get(1)) else {
        eprintln!("{usage}");
        return ExitCode::from(2);
    };
    let Ok(n) = n.parse::<usize>() else {
        eprintln!("{usage}");
        return ExitCode::from(2);
    };
    let dir = match args.get(2).map(String::as_str) {
        Some("--dir") => args.get(3).map(PathBuf::from),
        _ => None,
    };
    let started = match &dir {
        Some(d) => sluice_testfleet::Fleet::start_in(d, n),
        None => sluice_testfleet::Fleet::start(n),
    };
    let fleet = match started.and_then(|f| {
        f.reset_workload_state()?;
        Ok(f)
    }) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("sluice-testfleet: {e}");
            return ExitCode::FAILURE;
        }
    };
    match fleet.write_inventory() {
        Ok(path) => println!("{}", path.display()),
        Err(e) => {
            eprintln!("sluice-testfleet: {e}");
            return ExitCode::FAILURE;
        }
    }
    eprintln!("sluice-testfleet: {n} hosts up; close stdin (Ctrl-D) to stop them");
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
    drop(fleet);
    ExitCode::SUCCESS
}
