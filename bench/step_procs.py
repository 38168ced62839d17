#!/usr/bin/env python3
"""Processes a step starts on a fleet host: `strace -f` on one sshd while `sluice apply` runs a
plan of 1 step and one of 1 + K steps (`true` each); (difference) / K forks and execs per step.

    python3 bench/step_procs.py                   # through the runner
    python3 bench/step_procs.py --exec-per-step   # a channel per step

Needs strace and the release build (`cargo build --release -p sluice-cli -p sluice-testfleet`).
Only `execve`s that succeeded are counted, not the failed ones of a PATH search.
"""

from __future__ import annotations

import collections
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TARGET = REPO / "target" / "release"
WORK = REPO / "bench" / ".work" / "step-procs"
K = 20
sys.path.insert(0, str(REPO / "bench"))

import step_rtt  # noqa: E402  (its plan of K trivial steps)


def measure(k: int, inventory: Path, sshd: int, extra: list[str]) -> tuple[int, collections.Counter]:
    trace = WORK / f"trace-{k}.txt"
    strace = subprocess.Popen(
        ["strace", "-f", "-qq", "-o", str(trace), "-e", "trace=execve,clone,clone3,fork,vfork", "-p", str(sshd)]
    )
    time.sleep(1.0)
    env = dict(os.environ, SLUICE_STATE_DIR=str(WORK / f"state-{k}"))
    run = subprocess.run(
        [str(TARGET / "sluice"), "apply", str(step_rtt.plan(k)), "-i", str(inventory), "--yes", *extra],
        env=env, capture_output=True, text=True,
    )
    if run.returncode != 0:
        sys.exit(f"sluice apply failed: {run.stderr}")
    time.sleep(0.5)
    strace.terminate()
    strace.wait()
    text = trace.read_text()
    forks = len(re.findall(r"\b(clone|clone3|fork|vfork)\(", text))
    execs: collections.Counter = collections.Counter()
    pending: dict[str, str] = {}
    for line in text.splitlines():
        pid = line.split(" ", 1)[0]
        started = re.search(r'execve\("([^"]+)"', line)
        if started and line.endswith("<unfinished ...>"):
            pending[pid] = started.group(1)
        elif started or "<... execve resumed>" in line:
            path = started.group(1) if started else pending.pop(pid, "?")
            if re.search(r"= 0$", line):
                execs[path] += 1
    return forks, execs


def main() -> int:
    extra = sys.argv[1:]
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    step_rtt.WORK.mkdir(parents=True, exist_ok=True)
    fleet = subprocess.Popen(
        [str(TARGET / "sluice-testfleet"), "up", "1", "--dir", str(WORK / "fleet")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        inventory = Path(fleet.stdout.readline().strip())
        sshd = int((inventory.parent / "hosts" / "host1" / "sshd.pid").read_text())
        one_forks, one_execs = measure(1, inventory, sshd, extra)
        forks, execs = measure(1 + K, inventory, sshd, extra)
        per_step = {p: (execs[p] - one_execs[p]) / K for p in execs if execs[p] != one_execs[p]}
        print(f"forks per step: {(forks - one_forks) / K:.2f}")
        print(f"execs per step: {sum(per_step.values()):.2f} {per_step}")
        print(f"a 1-step run (connection, runner start, step): {one_forks} forks, execs {dict(one_execs)}")
    finally:
        fleet.stdin.close()
        fleet.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
