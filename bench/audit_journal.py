#!/usr/bin/env python3
"""What the audit journal costs inside `sluice apply`, with and without group commit.

Runs a rolling patch on N local-transport hosts (waves of 1, 10% and the rest; four cheap steps
and one health check per host, so the journal's commits are most of the work) with the audit
store on disk and on tmpfs (where a commit's fsync costs next to nothing), each with group commit
(the default) and with every record committed alone (SLUICE_AUDIT_BATCH=1). Prints one markdown
row per run and the medians: wall time, records journalled, commits, largest batch, and the
journal's cost per step: what a host waited, on average, for a step's two records (intent and
result) to be durable, from `sluice apply -v`'s `Audit:` line.

    cargo build --release -p sluice-cli -p sluice-testfleet
    python3 bench/audit_journal.py --hosts 200 --runs 3           # local hosts
    python3 bench/audit_journal.py --hosts 50 --runs 3 --fleet    # sshd fleet, bench-rolling-patch

With --fleet the hosts are real sshd on 127.0.0.1 (`sluice-testfleet up N`) and the plan is
playbooks/bench-rolling-patch.yaml (the reference workload: 0.2 s patch, health check), with
wave1 sized max(1, N/10) as bench/compare.py does.

The disk store goes under --disk (default ~/.cache/sluice-bench, on the disk a controller would
use), the tmpfs one under --mem (default /dev/shm). Everything is removed afterwards.
"""

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SLUICE = os.path.join(ROOT, "target", "release", "sluice")
STEPS = 4

PLAN = """name: journal-bench
targets: [fleet]
waves:
  - {{ name: canary, size: 1 }}
  - {{ name: wave1, size: {wave1} }}
  - {{ name: rest, size: 100% }}
failure: {{ max_failed: 0, action: halt }}
health:
  checks:
    - {{ name: healthy, run: "grep -q ok app/healthy" }}
  retries: 0
  interval: 1s
  timeout: 5s
steps:
  - {{ id: precheck, run: "cat pkg/openssl" }}
  - {{ id: drain, after: [precheck], run: "echo draining > app/state" }}
  - {{ id: patch, after: [drain], run: "echo 3.0.2 > pkg/openssl" }}
  - {{ id: restart, after: [patch], run: "echo running > app/state" }}
"""


def write_fleet(work, n):
    hosts = [f"host{i}" for i in range(1, n + 1)]
    lines = ["defaults:", "  transport: local", "hosts:"]
    for h in hosts:
        root = os.path.join(work, "hosts", h)
        os.makedirs(os.path.join(root, "pkg"), exist_ok=True)
        os.makedirs(os.path.join(root, "app"), exist_ok=True)
        lines.append(f"  {h}: {{ workdir: {root} }}")
    lines += ["groups:", "  fleet:", f"    hosts: [{', '.join(hosts)}]"]
    inventory = os.path.join(work, "inventory.yaml")
    with open(inventory, "w") as f:
        f.write("\n".join(lines) + "\n")
    plan = os.path.join(work, "plan.yaml")
    with open(plan, "w") as f:
        f.write(PLAN.format(wave1=max(1, n // 10)))
    return [os.path.join(work, "hosts", h) for h in hosts], plan, inventory


def start_fleet(work, n):
    """`sluice-testfleet up N`: returns (process, hosts' roots, plan, inventory)."""
    proc = subprocess.Popen(
        [os.path.join(ROOT, "target", "release", "sluice-testfleet"), "up", str(n), "--dir",
         os.path.join(work, "fleet")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    inventory = proc.stdout.readline().strip()
    if not inventory:
        sys.exit("sluice-testfleet up failed (see its message above)")
    fleet = os.path.dirname(inventory)
    roots = [os.path.join(fleet, "hosts", f"host{i}", "root") for i in range(1, n + 1)]
    with open(os.path.join(ROOT, "playbooks", "bench-rolling-patch.yaml")) as f:
        plan_text = f.read()
    plan_text, k = re.subn(r"\{ name: wave1, size: \d+ \}",
                           f"{{ name: wave1, size: {max(1, n // 10)} }}", plan_text)
    assert k == 1, "wave1 line not found in bench-rolling-patch.yaml"
    plan = os.path.join(work, "plan.yaml")
    with open(plan, "w") as f:
        f.write(plan_text)
    return proc, roots, plan, inventory


def reset(roots):
    for root in roots:
        os.makedirs(os.path.join(root, "pkg"), exist_ok=True)
        os.makedirs(os.path.join(root, "app"), exist_ok=True)
        with open(os.path.join(root, "pkg", "openssl"), "w") as f:
            f.write("3.0.1\n")
        with open(os.path.join(root, "app", "healthy"), "w") as f:
            f.write("ok\n")
        state = os.path.join(root, "app", "state")
        if os.path.exists(state):
            os.remove(state)


def run_once(plan, inventory, store_parent, batch):
    store = tempfile.mkdtemp(prefix="sluice-journal-", dir=store_parent)
    env = dict(os.environ, SLUICE_STATE_DIR=store)
    env.pop("SLUICE_AUDIT_BATCH", None)
    if batch:
        env["SLUICE_AUDIT_BATCH"] = str(batch)
    cmd = [SLUICE, "--color", "never", "-v", "apply", plan, "-i", inventory, "--yes"]
    start = time.monotonic()
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.monotonic() - start
    shutil.rmtree(store, ignore_errors=True)
    if out.returncode != 0:
        sys.exit(f"sluice apply failed ({out.returncode}):\n{out.stderr[-2000:]}")
    m = re.search(r"Audit: (\d+) records journalled in (\d+) commits \(largest (\d+)\), "
                  r"([\d.]+) ms mean wait per record", out.stderr)
    if not m:
        sys.exit(f"no `Audit:` line in the output:\n{out.stderr[-2000:]}")
    records, commits, largest = map(int, m.groups()[:3])
    # A step waits for two records: its intent before the command, its result after.
    per_step = 2 * float(m.group(4))
    return wall, records, commits, largest, per_step


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hosts", type=int, default=200)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--disk", default=os.path.expanduser("~/.cache/sluice-bench"))
    ap.add_argument("--mem", default="/dev/shm")
    ap.add_argument("--fleet", action="store_true", help="sshd fleet and bench-rolling-patch")
    args = ap.parse_args()
    if not os.access(SLUICE, os.X_OK):
        sys.exit(f"{SLUICE} missing: cargo build --release -p sluice-cli")
    os.makedirs(args.disk, exist_ok=True)
    work = tempfile.mkdtemp(prefix="sluice-journal-fleet-", dir=args.disk)
    fleet = None
    try:
        if args.fleet:
            fleet, roots, plan, inventory = start_fleet(work, args.hosts)
        else:
            roots, plan, inventory = write_fleet(work, args.hosts)
        cases = [
            ("disk", "group commit", args.disk, None),
            ("disk", "one commit per record", args.disk, 1),
            ("tmpfs", "group commit", args.mem, None),
            ("tmpfs", "one commit per record", args.mem, 1),
        ]
        kind = "sshd fleet, bench-rolling-patch" if args.fleet else "local hosts"
        print(f"{args.hosts} hosts ({kind}) x {STEPS} steps + 1 health check, {args.runs} runs "
              f"per case, load average {os.getloadavg()[0]:.1f} at start\n")
        print("| store | commits | run | wall s | records | commits | largest batch | journal ms per step |")
        print("|---|---|---:|---:|---:|---:|---:|---:|")
        medians = []
        for r in range(args.runs):
            # Rotate the order so a change in the machine's load does not favour one case.
            for store, mode, parent, batch in cases[r % 4:] + cases[:r % 4]:
                reset(roots)
                wall, records, commits, largest, per_step = run_once(plan, inventory, parent, batch)
                medians.append((store, mode, wall, records, commits, largest, per_step))
                print(f"| {store} | {mode} | {r + 1} | {wall:.2f} | {records} | {commits} | "
                      f"{largest} | {per_step:.2f} |", flush=True)
        print("\nmedians\n")
        print("| store | commits | wall s | commits per run | journal ms per step |")
        print("|---|---|---:|---:|---:|")
        for store, mode, _, _ in cases:
            rows = [m for m in medians if m[0] == store and m[1] == mode]
            wall = statistics.median(m[2] for m in rows)
            commits = statistics.median(m[4] for m in rows)
            per_step = statistics.median(m[6] for m in rows)
            print(f"| {store} | {mode} | {wall:.2f} | {commits:.0f} | {per_step:.2f} |")
    finally:
        if fleet:
            fleet.stdin.close()
            fleet.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
