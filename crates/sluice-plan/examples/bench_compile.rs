//! Planner benchmark: compiles a plan of 10 steps against an inventory of N hosts (default
//! 100,000) and prints the time of each phase and the process's peak memory (VmHWM).
//!
//! `cargo run --release -p sluice-plan --example bench_compile [-- HOSTS]`
//! Figures are recorded in docs/benchmarks.md.

// Benchmarks and examples may unwrap: they are run by hand.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fmt::Write;
use std::time::Instant;

fn inventory(hosts: usize) -> String {
    let mut t = String::from("defaults: { user: deploy, host_key_checking: strict }\nhosts:\n");
    for i in 0..hosts {
        let _ = writeln!(
            t,
            "  h{i:06}: {{ address: 10.{}.{}.{} }}",
            i / 65536,
            i / 256 % 256,
            i % 256
        );
    }
    t.push_str("groups:\n");
    for g in 0..hosts.div_ceil(1000) {
        let members: Vec<String> = (g * 1000..((g + 1) * 1000).min(hosts))
            .map(|i| format!("h{i:06}"))
            .collect();
        let _ = writeln!(
            t,
            "  rack{g}: {{ hosts: [{}], vars: {{ rack: r{g} }} }}",
            members.join(", ")
        );
    }
    let racks: Vec<String> = (0..hosts.div_ceil(1000))
        .map(|g| format!("rack{g}"))
        .collect();
    let _ = writeln!(
        t,
        "  fleet: {{ children: [{}], vars: {{ tier: web }} }}",
        racks.join(", ")
    );
    t
}

const PLAN: &str = r#"
name: bench
ticket: BENCH-1
targets: [fleet]
vars: { version: "3.0.15", pool: web }
secrets: { tok: { env: TOK } }
waves:
  - { name: canary, size: 1 }
  - { name: one-percent, size: 1%, pause: 5m }
  - { name: ten-percent, size: 10%, approval: true }
  - { name: rest, size: 100% }
concurrency: 200
failure: { max_failed: 1%, action: rollback }
health:
  checks:
    - { name: app, http: "http://{{host.address}}:8080/healthz" }
steps:
  - { id: current, run: "dpkg-query -W openssl", register: old }
  - { id: drain, run: "lbctl --token {{secrets.tok}} --pool {{vars.pool}} drain {{host.name}}", undo: "lbctl --token {{secrets.tok}} undrain {{host.name}}" }
  - { id: stop, run: "systemctl stop app" }
  - { id: install, after: [current, stop], run: "apt-get install -y openssl={{vars.version}}", undo: "apt-get install -y openssl={{old}}", skip_if: "dpkg -s openssl | grep -q {{vars.version}}" }
  - { id: config, run: "echo rack={{vars.rack}} tier={{vars.tier}} > /etc/app/where" }
  - { id: start, run: "systemctl start app" }
  - { id: smoke, run: "curl -fsS http://{{host.address}}:8080/ready" }
  - { id: warm, run: "app-warm --host {{host.name}}" }
  - { id: undrain, run: "lbctl --token {{secrets.tok}} undrain {{host.name}}" }
  - { id: log, run: "logger done {{vars.version}}" }
"#;

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// User + system CPU seconds of this process so far: on a shared, loaded machine this is a
/// steadier figure than wall time.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which is in parentheses and may contain spaces).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    // utime and stime are fields 14 and 15 of stat(5), i.e. 11 and 12 after the name; 100 Hz.
    (ticks(11) + ticks(12)) / 100.0
}

/// The same allocator as the `sluice` binary, so the figures are the binary's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let hosts: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100_000);
    let inv = inventory(hosts);
    println!(
        "inventory: {hosts} hosts, {:.1} MiB of YAML; plan: 10 steps",
        inv.len() as f64 / 1048576.0
    );
    let start = Instant::now();
    let cpu_start = cpu_seconds();
    let compiled =
        match sluice_plan::compile_sources(("bench.yaml", PLAN), ("inventory.yaml", &inv), &[]) {
            Ok(c) => c,
            Err(e) => {
                if let sluice_plan::PlanError::Invalid(diags) = &e {
                    for d in diags {
                        eprintln!("{d}");
                    }
                }
                eprintln!("{e}");
                std::process::exit(1);
            }
        };
    let compile = start.elapsed();
    let compile_cpu = cpu_seconds() - cpu_start;
    let a = &compiled.artifact;
    println!(
        "compile (parse, check, render, split, hash): {:.3} s wall, {:.2} s CPU",
        compile.as_secs_f64(),
        compile_cpu
    );
    println!(
        "  {} hosts, {} waves, {} rendered host steps, hash {}",
        a.hosts.len(),
        a.waves.len(),
        a.hosts.iter().map(|h| h.steps.len()).sum::<usize>(),
        &a.plan_hash[..16]
    );
    println!(
        "peak memory after compile (VmHWM): {:.0} MiB",
        peak_rss_mib()
    );
    // What the executor does per wave: find every host of the wave by name.
    let start = Instant::now();
    let found = a
        .waves
        .iter()
        .flat_map(|w| &w.hosts)
        .filter(|name| a.host(name).is_some())
        .count();
    let indexed = start.elapsed();
    // A scan per lookup, as before the index, on a sample (all of them would take minutes).
    let sample: Vec<&String> = a
        .hosts
        .iter()
        .step_by(a.hosts.len().div_ceil(1000))
        .map(|h| &h.name)
        .collect();
    let start = Instant::now();
    let scanned = sample
        .iter()
        .filter(|name| a.hosts.iter().any(|h| h.name == ***name))
        .count();
    let per_scan = start.elapsed().as_secs_f64() / scanned.max(1) as f64;
    println!(
        "host lookup by name, every host of every wave: {found} in {:.3} s (a scan per lookup: {:.1} s)",
        indexed.as_secs_f64(),
        per_scan * found as f64
    );
    let start = Instant::now();
    let graph = sluice_plan::graph::execution_graph(a);
    println!(
        "execution graph: {} nodes, {} edges in {:.3} s",
        graph.node_count(),
        graph.edge_count(),
        start.elapsed().as_secs_f64()
    );
    drop(graph);
    let start = Instant::now();
    let text = sluice_plan::to_file_text(a).map(|t| t.len()).unwrap_or(0);
    println!(
        "artifact JSON: {:.1} MiB in {:.3} s",
        text as f64 / 1048576.0,
        start.elapsed().as_secs_f64()
    );
    println!(
        "peak memory after graph and JSON (VmHWM): {:.0} MiB",
        peak_rss_mib()
    );
}
