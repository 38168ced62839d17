#!/usr/bin/env python3
"""sluice's peak RSS and wall time for the reference rolling patch on N real sshd hosts.

    python3 bench/ssh_memory.py --sizes 500,1000 --runs 2
    python3 bench/ssh_memory.py --sizes 500 --runs 3 --binary before=/tmp/sluice-old --binary after=target/release/sluice

The fleet is `sluice-testfleet up N` (one sshd per host on 127.0.0.1, as bench/compare.py
starts it); the plan is playbooks/bench-rolling-patch.yaml with wave1 sized max(1, floor(N * 10%)),
all of a wave's hosts at once, the audit store on. Each `--binary LABEL=PATH` is run `--runs`
times, alternating between binaries, so a before/after comparison sees the same load. Per run:
wall seconds, the sluice process's peak RSS (`/usr/bin/time -v`) and the end state of every host
(a run with a wrong end state is reported as failed). Prints one table row per run and the median
per binary and N. The default allocator settings are used (no MIMALLOC_* variable is set; any
set in the environment is removed).
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare import REPO, TARGET, WORK, Fleet, wave_sizes  # noqa: E402


def plan_for(n: int, dest: Path) -> Path:
    text = (REPO / "playbooks" / "bench-rolling-patch.yaml").read_text()
    text, k = re.subn(r"\{ name: wave1, size: \d+ \}", f"{{ name: wave1, size: {wave_sizes(n)[1]} }}", text)
    if k != 1:
        raise SystemExit("playbooks/bench-rolling-patch.yaml: wave1 line not found")
    plan = dest / "bench-rolling-patch.yaml"
    plan.write_text(text)
    return plan


def run_once(fleet: Fleet, plan: Path, binary: str, run_dir: Path) -> dict:
    fleet.reset()
    if run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MIMALLOC_")}
    env["SLUICE_STATE_DIR"] = str(run_dir / "state")
    time_out = run_dir / "time.txt"
    argv = ["/usr/bin/time", "-v", "-o", str(time_out), binary, "apply", str(plan), "-i", str(fleet.inventory), "--yes"]
    with open(run_dir / "output.txt", "w") as out:
        start = time.perf_counter()
        p = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=run_dir)
        wall = time.perf_counter() - start
    t = time_out.read_text() if time_out.exists() else ""
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", t)
    rss = int(m.group(1)) / 1024 if m else float("nan")
    bad = fleet.wrong_end_state()
    return {"wall": wall, "rss": rss, "ok": p.returncode == 0 and not bad, "exit": p.returncode, "wrong": len(bad)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="500")
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--binary", action="append", default=[], help="LABEL=PATH (default: sluice=target/release/sluice)")
    args = ap.parse_args()
    binaries = [b.split("=", 1) for b in args.binary] or [["sluice", str(TARGET / "sluice")]]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    print(f"load average at start: {' '.join(Path('/proc/loadavg').read_text().split()[:3])}; "
          f"file-descriptor limit {hard} (was {soft})", flush=True)
    print("| N | binary | run | wall s | peak RSS MiB | end state | load (1 min) |")
    print("|---:|---|---:|---:|---:|---|---:|", flush=True)
    results: dict[tuple[int, str], list[dict]] = {}
    for n in [int(s) for s in args.sizes.split(",")]:
        fleet = Fleet(n)
        try:
            work = WORK / f"ssh-memory-{n}"
            work.mkdir(parents=True, exist_ok=True)
            plan = plan_for(n, work)
            for k in range(args.runs):
                for label, binary in binaries:
                    r = run_once(fleet, plan, binary, work / f"{label}-run{k + 1}")
                    results.setdefault((n, label), []).append(r)
                    state = "ok" if r["ok"] else f"FAILED (exit {r['exit']}, {r['wrong']} hosts wrong)"
                    load = Path("/proc/loadavg").read_text().split()[0]
                    print(f"| {n} | {label} | {k + 1} | {r['wall']:.2f} | {r['rss']:.1f} | {state} | {load} |", flush=True)
        finally:
            fleet.close()
    print()
    print("| N | binary | median wall s | median peak RSS MiB | max peak RSS MiB |")
    print("|---:|---|---:|---:|---:|")
    for (n, label), rs in results.items():
        ok = [r for r in rs if r["ok"]] or rs
        print(f"| {n} | {label} | {statistics.median(r['wall'] for r in ok):.2f} | "
              f"{statistics.median(r['rss'] for r in ok):.1f} | {max(r['rss'] for r in ok):.1f} |")


if __name__ == "__main__":
    main()
