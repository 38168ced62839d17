#!/usr/bin/env python3
"""What the audit journal costs per step inside `sluice apply` on PostgreSQL against redb.

Runs the same plan as bench/audit_journal.py (N local-transport hosts, waves of 1, 10% and the
rest, four `echo`-sized steps and one health check per host, so the journal's commits are most
of the work) with the audit store in redb (the state directory's `audit.redb`) and in a
throwaway PostgreSQL cluster on the same disk (initdb in a temporary directory, `pg_ctl` on a
private unix socket, `fsync` and `synchronous_commit` on, as sluice requires). Group commit is on
for both (the default). Prints one markdown row per run and the medians: wall time, records,
commits, and the journal's cost per step — what a host waited, on average, for a step's two
records (intent and result) to be durable, from `sluice apply -v`'s `Audit:` line — and the
ratio PostgreSQL / redb (the goal of issue 18: at most 2x).

    cargo build --release -p sluice-cli
    python3 bench/store_journal.py --hosts 200 --runs 5

The PostgreSQL server binaries come from /usr/lib/postgresql/*/bin (or $SLUICE_PG_BIN), run as
the `postgres` user when this script runs as root (initdb refuses root). Everything goes under
--disk (default /var/tmp/sluice-bench: the postgres user must be able to reach it) and is removed
afterwards.
"""

import argparse
import glob
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from audit_journal import SLUICE, STEPS, reset, write_fleet  # noqa: E402


def pg_bin():
    if os.environ.get("SLUICE_PG_BIN"):
        return os.environ["SLUICE_PG_BIN"]
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(p.split("/")[4]))
    if not found:
        sys.exit("PostgreSQL server binaries not found: apt-get install -y postgresql")
    return os.path.dirname(found[-1])


class Cluster:
    """A throwaway cluster on a unix socket in its own directory."""

    def __init__(self, parent):
        self.bin = pg_bin()
        self.dir = tempfile.mkdtemp(prefix="sluice-pg-", dir=parent)
        self.root = os.geteuid() == 0
        if self.root:
            subprocess.run(["chown", "postgres:postgres", self.dir], check=True)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.data = os.path.join(self.dir, "data")
        self.run("initdb", "-D", self.data, "-U", "sluice", "-E", "UTF8", "--auth-local=trust")
        self.run("pg_ctl", "-D", self.data, "-l", os.path.join(self.dir, "server.log"), "-o",
                 f"-p {self.port} -k {self.dir} -c listen_addresses=''", "-w", "start")
        self.run("psql", "-h", self.dir, "-p", str(self.port), "-U", "sluice", "-d", "postgres",
                 "-c", "CREATE DATABASE sluice")

    def run(self, program, *args):
        cmd = [os.path.join(self.bin, program), *args]
        if self.root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        out = subprocess.run(cmd, cwd=self.dir, capture_output=True, text=True)
        if out.returncode != 0:
            sys.exit(f"{program} failed:\n{out.stdout}{out.stderr}")
        return out.stdout

    def url(self):
        return f"postgres://sluice@localhost/sluice?host={self.dir}&port={self.port}"

    def reset(self):
        """An empty store for the next run."""
        self.run("psql", "-h", self.dir, "-p", str(self.port), "-U", "sluice", "-d", "sluice",
                 "-c", "DROP SCHEMA IF EXISTS sluice CASCADE")

    def stop(self):
        self.run("pg_ctl", "-D", self.data, "-m", "fast", "-w", "stop")
        shutil.rmtree(self.dir, ignore_errors=True)


def run_once(sluice, plan, inventory, disk, store):
    state = tempfile.mkdtemp(prefix="sluice-journal-", dir=disk)
    env = dict(os.environ, SLUICE_STATE_DIR=state)
    env.pop("SLUICE_AUDIT_BATCH", None)
    env.pop("SLUICE_STORE", None)
    if store:
        env["SLUICE_STORE"] = store
    cmd = [sluice, "--color", "never", "-v", "apply", plan, "-i", inventory, "--yes"]
    start = time.monotonic()
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.monotonic() - start
    shutil.rmtree(state, ignore_errors=True)
    if out.returncode != 0:
        sys.exit(f"sluice apply failed ({out.returncode}):\n{out.stderr[-2000:]}")
    m = re.search(r"Audit: (\d+) records journalled in (\d+) commits \(largest (\d+)\), "
                  r"([\d.]+) ms mean wait per record", out.stderr)
    if not m:
        sys.exit(f"no `Audit:` line in the output:\n{out.stderr[-2000:]}")
    records, commits = int(m.group(1)), int(m.group(2))
    # A step waits for two records: its intent before the command, its result after.
    return wall, records, commits, 2 * float(m.group(4))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hosts", type=int, default=200)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--disk", default="/var/tmp/sluice-bench")
    ap.add_argument("--sluice", default=SLUICE, help="the binary (default: the release build)")
    args = ap.parse_args()
    if not os.access(args.sluice, os.X_OK):
        sys.exit(f"{args.sluice} missing: cargo build --release -p sluice-cli")
    os.makedirs(args.disk, exist_ok=True)
    os.chmod(args.disk, 0o755)
    work = tempfile.mkdtemp(prefix="sluice-store-bench-", dir=args.disk)
    cluster = Cluster(args.disk)
    try:
        roots, plan, inventory = write_fleet(work, args.hosts)
        cases = [("redb", None), ("postgresql", cluster.url())]
        print(f"{args.hosts} local hosts x {STEPS} steps + 1 health check, {args.runs} runs per "
              f"store, load average {os.getloadavg()[0]:.1f} at start\n")
        print("| store | run | wall s | records | commits | journal ms per step |")
        print("|---|---:|---:|---:|---:|---:|")
        rows = []
        for r in range(args.runs):
            # Alternate the order so a change in the machine's load does not favour one store.
            for name, url in cases[r % 2:] + cases[:r % 2]:
                reset(roots)
                if url:
                    cluster.reset()
                wall, records, commits, per_step = run_once(args.sluice, plan, inventory, work, url)
                rows.append((name, wall, records, commits, per_step))
                print(f"| {name} | {r + 1} | {wall:.2f} | {records} | {commits} | "
                      f"{per_step:.2f} |", flush=True)
        print("\nmedians\n")
        print("| store | wall s | commits per run | journal ms per step |")
        print("|---|---:|---:|---:|")
        per = {}
        for name, _ in cases:
            mine = [row for row in rows if row[0] == name]
            per[name] = statistics.median(row[4] for row in mine)
            print(f"| {name} | {statistics.median(row[1] for row in mine):.2f} | "
                  f"{statistics.median(row[3] for row in mine):.0f} | {per[name]:.2f} |")
        ratio = per["postgresql"] / per["redb"] if per["redb"] else float("inf")
        verdict = "met" if ratio <= 2.0 else "NOT met"
        print(f"\nPostgreSQL / redb journal cost per step: {ratio:.2f}x (goal <= 2x: {verdict})")
    finally:
        cluster.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
