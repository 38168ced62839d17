//! Prints a hand-built plan artifact like the demo rolling patch, for trying `sluice apply --plan`
//! without the planner: `cargo run -p sluice-exec --features testkit --example demo_artifact
//! STATE_DIR [FAILING_HOST] > plan.json`.

// Benchmarks and examples may unwrap: they are run by hand.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use sluice_exec::testkit::{PlanBuilder, StepDef};

fn main() {
    let mut args = std::env::args().skip(1);
    let state = args.next().unwrap_or_else(|| "./demo-state".into());
    let failing = args.next();
    let hosts = ["demo-1", "demo-2", "demo-3", "demo-4", "demo-5", "demo-6"];
    let mut plan = PlanBuilder::new("demo-rolling-patch")
        .local_hosts(&hosts, std::path::Path::new(&state))
        .step(StepDef::new("drain", "touch drained").undo("rm -f drained"))
        .step(
            StepDef::new("install", "sleep 1 && echo 2.0.1 > version").undo("echo 1.0.0 > version"),
        )
        .step(StepDef::new(
            "restart",
            "sleep 0.5 && echo running > status",
        ))
        .step(StepDef::new("undrain", "rm -f drained").undo("touch drained"))
        .health_run("version", "grep -qx 2.0.1 version")
        .health_policy(2, 1000, 5000)
        .wave("canary", &hosts[..1], 1, 0)
        .wave("early", &hosts[1..3], 2, 0)
        .pause_ms(3000)
        .wave("rest", &hosts[3..], 3, 0);
    if let Some(host) = failing {
        plan = plan.override_health(&host, "version", "echo 'version mismatch' >&2; false");
    }
    match serde_json::to_string_pretty(&plan.build()) {
        Ok(json) => println!("{json}"),
        Err(e) => eprintln!("cannot encode the artifact: {e}"),
    }
}
