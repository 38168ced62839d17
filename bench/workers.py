#!/usr/bin/env python3
"""One run over several processes: N local hosts, K `sluice worker` processes and the coordinator
`sluice apply --workers`, on one throwaway PostgreSQL; and the same N hosts in one process.

    python3 bench/workers.py                                  # N = 2000; 1 and 4 workers; one process
    python3 bench/workers.py --sizes 2000 --workers 1,4 --runs 3 --doc
    python3 bench/workers.py --sizes 10000 --workers 10 --no-single
    python3 bench/workers.py --sizes 100000 --workers 10 --no-single --timeout 14400

The fleet and the plan are bench/scale.py's (host directories under bench/.work/workers/scale-N/
reached with `transport: local`, playbooks/bench-rolling-patch.yaml with waves of 1, 10 % and the
rest, concurrency = the wave's size). The PostgreSQL cluster is bench/store_journal.py's (initdb
in a temporary directory under --disk, a private unix socket, `fsync` and `synchronous_commit`
on); every run gets a database of its own, so its size at the end is that run's.

Per run, every process is started by this script and measured by it: wall time of the
coordinator (from its start to its exit; the workers are started and registered before), and of
each process (coordinator, every worker): peak RSS (`wait4`'s `ru_maxrss`), its own CPU (user +
system of its threads, read from /proc/PID/stat once it exited and before it is reaped, so the
commands it ran are not counted) and CPU with the commands it ran (`wait4`'s rusage). The
database's size (`pg_database_size`) and its record count at the end; every host's end state
checked (a run with a wrong end state or a non-zero exit is reported FAILED). Once the coordinator
exited, the workers are stopped with SIGTERM (they hold no host then) and must exit 0.

"one process" is `sluice apply` without `--workers` on the same store (a fresh database): the
coordinator's overhead is its own CPU and wall time per host against that run's.

Progress goes to stderr, the table to stdout; `--doc` writes it into docs/benchmarks.md, section
"Workers", with the date, machine, load average (at start and end of every run) and command: in
the block of the sizes run (`<!-- workers-2000:start -->`, `<!-- workers-100000:start -->`),
added at the end of the file when it is not there yet.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import scale  # noqa: E402
from scale import REPO, TARGET, LocalFleet, loadavg, log  # noqa: E402
from store_journal import Cluster  # noqa: E402

scale.WORK = REPO / "bench" / ".work" / "workers"
CLK_TCK = os.sysconf("SC_CLK_TCK")


class Store(Cluster):
    """The throwaway cluster, with a database per run."""

    def psql(self, db: str, sql: str) -> str:
        return self.run("psql", "-h", self.dir, "-p", str(self.port), "-U", "sluice", "-d", db,
                        "-At", "-c", sql).strip()

    def try_psql(self, db: str, sql: str) -> str | None:
        cmd = [os.path.join(self.bin, "psql"), "-h", self.dir, "-p", str(self.port), "-U", "sluice",
               "-d", db, "-At", "-c", sql]
        if self.root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        out = subprocess.run(cmd, cwd=self.dir, capture_output=True, text=True)
        return out.stdout.strip() if out.returncode == 0 else None

    def database(self, name: str) -> str:
        self.psql("postgres", f'DROP DATABASE IF EXISTS "{name}"')
        self.psql("postgres", f'CREATE DATABASE "{name}"')
        return f"postgres://sluice@localhost/{name}?host={self.dir}&port={self.port}"

    def drop(self, name: str) -> None:
        self.psql("postgres", f'DROP DATABASE IF EXISTS "{name}"')

    def track_statements(self) -> None:
        """Restarts the server with pg_stat_statements loaded (`--statements`)."""
        self.psql("postgres", "ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'")
        self.run("pg_ctl", "-D", self.data, "-l", os.path.join(self.dir, "server.log"), "-m", "fast", "-w",
                 "restart")
        self.psql("postgres", "CREATE EXTENSION IF NOT EXISTS pg_stat_statements")

    def reset_statements(self) -> None:
        self.psql("postgres", "SELECT pg_stat_statements_reset()")

    def top_statements(self, db: str, limit: int) -> str:
        """The statements of database `db` that took the server the most time, as a table."""
        rows = self.psql("postgres", f"""
            SELECT round(total_exec_time::numeric / 1000, 2), calls,
                   round((total_exec_time / greatest(calls, 1))::numeric, 3),
                   regexp_replace(left(query, 110), '\\s+', ' ', 'g')
            FROM pg_stat_statements
            WHERE dbid = (SELECT oid FROM pg_database WHERE datname = '{db}')
              AND query NOT ILIKE 'create %' AND query NOT ILIKE 'alter %'
            ORDER BY total_exec_time DESC LIMIT {limit}""")
        lines = ["| server s | calls | ms per call | statement |", "|---:|---:|---:|---|"]
        for row in rows.splitlines():
            total, calls, mean, query = row.split("|", 3)
            lines.append(f"| {total} | {calls} | {mean} | `{query.replace('|', '¦')}` |")
        return "\n".join(lines) + "\n"


class Measured:
    """A process started by this script, measured when it exits (see the module doc)."""

    def __init__(self, name: str, argv: list[str], env: dict, out: Path) -> None:
        self.name = name
        self.out = open(out, "w")
        self.log = out
        self.start = time.perf_counter()
        self.proc = subprocess.Popen(argv, stdout=self.out, stderr=subprocess.STDOUT, env=env,
                                     cwd=out.parent)
        self.pid = self.proc.pid
        self.wall: float | None = None
        self.exit: int | None = None
        self.own_cpu: float | None = None
        self.cpu_with_children: float | None = None
        self.rss_mib: float | None = None
        self.done = threading.Event()
        threading.Thread(target=self._reap, daemon=True).start()

    def _reap(self) -> None:
        # Wait for the exit without reaping: the zombie's stat still has its own CPU.
        os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOWAIT)
        self.wall = time.perf_counter() - self.start
        try:
            fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
            self.own_cpu = (int(fields[11]) + int(fields[12])) / CLK_TCK
        except (OSError, IndexError, ValueError):
            pass
        _, status, usage = os.wait4(self.pid, 0)
        self.proc.returncode = os.waitstatus_to_exitcode(status)
        self.exit = self.proc.returncode
        self.cpu_with_children = usage.ru_utime + usage.ru_stime
        self.rss_mib = usage.ru_maxrss / 1024
        self.out.close()
        self.done.set()

    def signal(self, sig: int) -> None:
        if not self.done.is_set():
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass

    def wait(self, timeout: float | None = None) -> bool:
        return self.done.wait(timeout)

    def row(self) -> dict:
        return {"name": self.name, "wall": self.wall, "exit": self.exit, "own_cpu": self.own_cpu,
                "cpu": self.cpu_with_children, "rss_mib": self.rss_mib, "log": str(self.log)}


def sluice() -> str:
    return str(TARGET / "sluice")


def apply_argv(fleet: LocalFleet, url: str, workers: bool) -> list[str]:
    argv = [sluice(), "--color", "never", "apply", str(fleet.plan), "-i", str(fleet.inventory),
            "--yes", "--store", url]
    return argv + (["--workers"] if workers else [])


def wait_registered(store: Store, db: str, k: int, workers: list[Measured], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for w in workers:
            if w.done.is_set():
                raise SystemExit(f"worker {w.name} exited ({w.exit}) before the run: {w.log}")
        live = store.try_psql(db, "SELECT count(*) FROM sluice.workers WHERE stopped_at IS NULL")
        if live is not None and live.isdigit() and int(live) >= k:
            return
        time.sleep(0.2)
    raise SystemExit(f"{k} workers did not register within {timeout} s")


def run_once(store: Store, fleet: LocalFleet, k: int, max_hosts: int, label: str,
             timeout: float, statements: int) -> dict:
    """One run: K workers and the coordinator (k > 0), or one process (k == 0)."""
    fleet.reset()
    run_dir = fleet.dir / "runs" / label
    if run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)
    db = re.sub(r"[^a-z0-9_]", "_", f"bench_{fleet.n}_{label}".lower())
    url = store.database(db)
    env = dict(os.environ, SLUICE_STATE_DIR=str(run_dir / "state"))
    env.pop("SLUICE_STORE", None)
    if statements:
        store.reset_statements()
    load_start = loadavg()
    workers = []
    if k:
        # The first worker creates the schema; the others start once it is there.
        for i in range(1, k + 1):
            argv = [sluice(), "--color", "never", "worker", "--store", url, "--name", f"w{i}",
                    "--max-hosts", str(max_hosts)]
            workers.append(Measured(f"w{i}", argv, env, run_dir / f"worker-{i}.txt"))
            if i == 1:
                wait_registered(store, db, 1, workers, 60)
        wait_registered(store, db, k, workers, 60)
    coordinator = Measured("coordinator" if k else "one process", apply_argv(fleet, url, k > 0), env,
                           run_dir / "coordinator.txt")
    if not coordinator.wait(timeout):
        coordinator.signal(signal.SIGKILL)
        coordinator.wait()
        log(f"  {label}: the coordinator did not finish within {timeout} s: killed")
    for w in workers:
        w.signal(signal.SIGTERM)
    for w in workers:
        if not w.wait(120):
            w.signal(signal.SIGKILL)
            w.wait()
    load_end = loadavg()
    size = store.psql(db, "SELECT pg_database_size(current_database())")
    records = store.psql(db, "SELECT count(*) FROM sluice.records")
    bad = fleet.wrong_end_state()
    ok = coordinator.exit == 0 and all(w.exit == 0 for w in workers) and not bad
    if statements:
        top = store.top_statements(db, statements)
        (run_dir / "statements.md").write_text(top)
        log(f"  {label}: the server's time by statement ({run_dir / 'statements.md'}):\n{top}")
    store.drop(db)
    return {"n": fleet.n, "k": k, "max_hosts": max_hosts if k else None, "ok": ok, "wrong": len(bad),
            "coordinator": coordinator.row(), "workers": [w.row() for w in workers],
            "db_mib": int(size) / 2**20, "records": int(records), "load": f"{load_start} → {load_end}"}


def fmt(x: float | None, spec: str = ".2f") -> str:
    return "?" if x is None else format(x, spec)


def describe(r: dict) -> str:
    c = r["coordinator"]
    what = f"{r['k']} worker(s) × {r['max_hosts']}" if r["k"] else "one process"
    status = "ok" if r["ok"] else (f"FAILED (exit {c['exit']}, workers "
                                   f"{[w['exit'] for w in r['workers']]}, {r['wrong']} hosts wrong; {c['log']})")
    line = (f"N={r['n']} {what}: {fmt(c['wall'])} s, coordinator own CPU {fmt(c['own_cpu'])} s, "
            f"{fmt(c['rss_mib'], '.1f')} MiB")
    if r["workers"]:
        line += ("; workers " + ", ".join(f"{fmt(w['rss_mib'], '.0f')} MiB/{fmt(w['own_cpu'], '.1f')} s"
                                          for w in r["workers"]))
    return line + f"; DB {r['db_mib']:.1f} MiB, {r['records']} records; load {r['load']}: {status}"


def table(rows: list[dict], meta: dict) -> str:
    out = [
        f"Measured {meta['date']} on {meta['machine']}; {meta['sluice']}; PostgreSQL {meta['pg']} "
        f"(fsync and synchronous_commit on, unix socket, same disk).",
        "",
        f"Command: `{meta['command']}`",
        "",
        "| N | processes | wall s | per host ms | coordinator own CPU s | coordinator CPU per host ms | "
        "coordinator peak RSS MiB | workers' peak RSS MiB (each) | workers' own CPU s (sum) | "
        "CPU with commands s (all) | DB MiB | records | load avg start → end | end state |",
        "|---:|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---|---|",
    ]
    for r in rows:
        c, n = r["coordinator"], r["n"]
        what = f"coordinator + {r['k']} worker{'s' if r['k'] > 1 else ''} (max-hosts {r['max_hosts']})" \
            if r["k"] else "one process"
        per_host = fmt(c["wall"] * 1000 / n if c["wall"] else None)
        cpu_host = fmt(c["own_cpu"] * 1000 / n if c["own_cpu"] is not None else None, ".3f")
        w_rss = ", ".join(fmt(w["rss_mib"], ".0f") for w in r["workers"]) or "–"
        w_cpu = fmt(sum(w["own_cpu"] or 0 for w in r["workers"]), ".1f") if r["workers"] else "–"
        total = (c["cpu"] or 0) + sum(w["cpu"] or 0 for w in r["workers"])
        state = "ok" if r["ok"] else f"FAILED ({r['wrong']} hosts wrong)"
        out.append(f"| {n} | {what} | {fmt(c['wall'])} | {per_host} | {fmt(c['own_cpu'])} | {cpu_host} | "
                   f"{fmt(c['rss_mib'], '.1f')} | {w_rss} | {w_cpu} | {total:.1f} | {r['db_mib']:.1f} | "
                   f"{r['records']} | {r['load']} | {state} |")
    return "\n".join(out) + "\n"


def write_doc(text: str, sizes: list[int]) -> None:
    """Writes the table into docs/benchmarks.md, section "Workers", in the block of these sizes
    (a run of other sizes keeps its own block; a new one is added at the end of the file)."""
    doc = REPO / "docs" / "benchmarks.md"
    body = doc.read_text()
    key = "-".join(str(n) for n in sizes)
    start, end = f"<!-- workers-{key}:start -->", f"<!-- workers-{key}:end -->"
    block = f"{start}\n{text}{end}"
    if start in body and end in body:
        body = body[: body.index(start)] + block + body[body.index(end) + len(end):]
    else:
        if "## Workers: one run over several processes" not in body:
            body = body.rstrip("\n") + "\n\n## Workers: one run over several processes (issue 18)\n"
        body = body.rstrip("\n") + f"\n\n#### {', '.join(f'{n:,}' for n in sizes)} hosts\n\n" + block + "\n"
    doc.write_text(body)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="2000", help="fleet sizes, comma-separated")
    ap.add_argument("--workers", default="1,4", help="worker counts to run each size over, comma-separated")
    ap.add_argument("--max-hosts", type=int, default=256, help="`sluice worker --max-hosts` of every worker")
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--no-single", action="store_true", help="skip the run in one process")
    ap.add_argument("--timeout", type=float, default=7200, help="seconds a coordinator may take")
    ap.add_argument("--disk", default="/var/tmp/sluice-bench",
                    help="where the cluster lives (the postgres user must reach it)")
    ap.add_argument("--statements", type=int, default=0, metavar="K",
                    help="load pg_stat_statements and log the K statements that took the server longest, per run")
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--doc", action="store_true", help="write the table into docs/benchmarks.md")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    counts = [int(k) for k in args.workers.split(",") if k.strip()]
    if not args.no_build:
        log("building sluice (release)")
        subprocess.run(["cargo", "build", "--release", "-q", "-p", "sluice-cli"], cwd=REPO, check=True)
    # Every process started inherits the hard limit as its soft one, as in bench/scale.py.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    os.makedirs(args.disk, exist_ok=True)
    store = Store(args.disk)
    try:
        if args.statements:
            store.track_statements()
        version = subprocess.run([sluice(), "--version"], capture_output=True, text=True).stdout.strip()
        meta = {
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": f"{os.cpu_count()} CPUs, {platform.machine()}, Linux {platform.release()}",
            "sluice": version,
            "pg": store.psql("postgres", "SHOW server_version"),
            "command": "python3 bench/workers.py " + " ".join(sys.argv[1:]),
        }
        rows = []
        for n in sizes:
            log(f"N={n}: writing {n} local hosts")
            fleet = LocalFleet(n, None)
            plan = counts + ([] if args.no_single else [0])
            for run in range(1, args.runs + 1):
                for k in plan:
                    label = f"k{k}-run{run}" if k else f"single-run{run}"
                    log(f"N={n} {label}: load {loadavg()}")
                    r = run_once(store, fleet, k, args.max_hosts, label, args.timeout, args.statements)
                    rows.append(r)
                    log(describe(r))
        text = table(rows, meta)
        print(text)
        if args.doc:
            write_doc(text, sizes)
    finally:
        store.stop()


if __name__ == "__main__":
    main()
