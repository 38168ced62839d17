#!/usr/bin/env python3
"""sluice's controller cost as the fleet grows: the reference rolling patch on N local hosts.

    python3 bench/scale.py                         # N = 500, 1000, 10000; one run each
    python3 bench/scale.py --sizes 1000 --runs 3
    python3 bench/scale.py --concurrency 256       # cap hosts in flight per wave (default: wave size)

Every host is a directory under bench/.work/scale-N/hosts/ reached with `transport: local` (each
command is `sh -c` on this machine, with `FLEET_ROOT` set to the host's directory), so the fleet
can be far larger than the number of sshd processes a 2-core machine can hold. The plan is
playbooks/bench-rolling-patch.yaml with wave1 sized max(1, floor(N * 10%)), exactly as
bench/compare.py runs it over SSH, and the audit store is on (the default), so every step intent
and result is a durable commit.

Per run: wall time, CPU time (user + system of sluice and every command it ran, `/usr/bin/time -v`;
and of sluice's own threads alone, from /proc), peak RSS of the sluice process, the most file descriptors
sluice had open (sampled from /proc every 50 ms), time per host, and the end state of every host
checked (a run with a wrong end state is reported as failed). The file-descriptor limit is raised to
the hard limit before sluice starts (or to `--fd-soft`) and reported; the log lines add sluice's
CPU by thread name and its minor page faults. Progress goes to stderr, the table to stdout;
`--doc` also writes it into docs/benchmarks.md, section "Scale".
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TARGET = Path(os.environ.get("SLUICE_BENCH_TARGET", REPO / "target" / "release"))
WORK = REPO / "bench" / ".work"


def log(msg: str) -> None:
    print(f"[{datetime.now():%H:%M:%S}] {msg}", file=sys.stderr, flush=True)


def wave1_size(n: int) -> int:
    return max(1, n * 10 // 100)


class LocalFleet:
    """N host directories and an inventory that reaches them with the local transport."""

    def __init__(self, n: int, concurrency: int | None) -> None:
        self.n = n
        self.dir = WORK / f"scale-{n}"
        if self.dir.exists():
            shutil.rmtree(self.dir)
        self.hosts = self.dir / "hosts"
        self.hosts.mkdir(parents=True)
        lines = ["# bench/scale.py: N local hosts", "defaults:", "  transport: local", "hosts:"]
        short = self.short_hosts()
        for i in range(1, n + 1):
            root = short / f"host{i}"
            lines.append(f"  host{i}: {{ workdir: {root}, env: {{ FLEET_ROOT: {root} }} }}")
        lines += ["groups:", "  fleet:", "    hosts: [" + ", ".join(f"host{i}" for i in range(1, n + 1)) + "]"]
        self.inventory = self.dir / "inventory.yaml"
        self.inventory.write_text("\n".join(lines) + "\n")
        plan = (REPO / "playbooks" / "bench-rolling-patch.yaml").read_text()
        plan, k = re.subn(r"\{ name: wave1, size: \d+ \}", f"{{ name: wave1, size: {wave1_size(n)} }}", plan)
        if k != 1:
            raise SystemExit("playbooks/bench-rolling-patch.yaml: wave1 line not found")
        if concurrency:
            plan = plan.replace("failure: {", f"concurrency: {concurrency}\nfailure: {{", 1)
        self.plan = self.dir / "bench-rolling-patch.yaml"
        self.plan.write_text(plan)

    def root(self, i: int) -> Path:
        return self.hosts / f"host{i}"

    def short_hosts(self) -> Path:
        """The host directories' parent as the inventory names it. From 50,000 hosts a short
        symlink in /tmp, so the inventory (two paths per host) stays under sluice's 16 MiB
        limit for one file; the hosts and every step are the same."""
        if self.n < 50_000:
            return self.hosts
        link = Path("/tmp") / f"sluice-{WORK.name}-{self.n}"
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(self.hosts)
        return link

    def reset(self) -> None:
        for i in range(1, self.n + 1):
            r = self.root(i)
            (r / "pkg").mkdir(parents=True, exist_ok=True)
            (r / "app").mkdir(parents=True, exist_ok=True)
            (r / "pkg" / "openssl").write_text("3.0.1\n")
            (r / "app" / "healthy").write_text("ok\n")
            state = r / "app" / "state"
            if state.exists():
                state.unlink()

    def wrong_end_state(self) -> list[str]:
        bad = []
        for i in range(1, self.n + 1):
            r = self.root(i)
            try:
                ok = (r / "pkg" / "openssl").read_text().strip() == "3.0.2" and (r / "app" / "state").read_text().strip() == "running"
            except OSError:
                ok = False
            if not ok:
                bad.append(f"host{i}")
        return bad


class FdSampler(threading.Thread):
    """The most descriptors the sluice process had open, read from /proc/PID/fd every 50 ms, and
    the CPU time of sluice's own threads (without its children, the commands it ran) as last
    read from /proc/PID/stat (within 50 ms of its end)."""

    def __init__(self, parent_pid: int) -> None:
        super().__init__(daemon=True)
        self.parent = parent_pid
        self.peak = 0
        self.own_cpu: float | None = None
        # CPU seconds by thread id: (name, as last read before the thread ended or sluice did).
        self.by_tid: dict[str, tuple[str, float]] = {}
        self.stop = threading.Event()

    def sluice_pid(self) -> int | None:
        # /usr/bin/time forks sluice: its only child.
        try:
            children = Path(f"/proc/{self.parent}/task/{self.parent}/children").read_text().split()
        except OSError:
            return None
        return int(children[0]) if children else None

    def threads(self) -> dict[str, float]:
        """CPU seconds by thread name (audit-writer, tokio-rt-worker, sluice: the main thread)."""
        out: dict[str, float] = {}
        for name, cpu in self.by_tid.values():
            out[name] = out.get(name, 0.0) + cpu
        return out

    def run(self) -> None:
        pid = None
        while not self.stop.is_set():
            pid = pid or self.sluice_pid()
            if pid:
                try:
                    self.peak = max(self.peak, len(os.listdir(f"/proc/{pid}/fd")))
                    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                    # utime and stime: fields 14 and 15 of stat(5), 12 and 13 after the name.
                    self.own_cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
                    self.by_tid.update(thread_cpu(pid))
                except (OSError, IndexError, ValueError):
                    pass
            time.sleep(0.05)


def thread_cpu(pid: int) -> dict[str, tuple[str, float]]:
    """Name and CPU seconds (user + system) of each of the process's threads, by thread id."""
    out: dict[str, tuple[str, float]] = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1: stat.rindex(")")]
        fields = stat.rsplit(")", 1)[1].split()
        out[tid] = (name, (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"))
    return out


def run_once(fleet: LocalFleet, label: str) -> dict:
    fleet.reset()
    run_dir = fleet.dir / "runs" / label
    run_dir.mkdir(parents=True, exist_ok=True)
    state = run_dir / "state"
    time_out = run_dir / "time.txt"
    argv = ["/usr/bin/time", "-v", "-o", str(time_out), str(TARGET / "sluice"), "apply", str(fleet.plan),
            "-i", str(fleet.inventory), "--yes"]
    env = dict(os.environ, SLUICE_STATE_DIR=str(state))
    with open(run_dir / "output.txt", "w") as out:
        start = time.perf_counter()
        p = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=fleet.dir)
        sampler = FdSampler(p.pid)
        sampler.start()
        p.wait()
        wall = time.perf_counter() - start
        sampler.stop.set()
        sampler.join()
    t = time_out.read_text() if time_out.exists() else ""
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", t)
    rss = int(m.group(1)) / 1024 if m else None
    m = re.search(r"Exit status: (\d+)", t)
    code = int(m.group(1)) if m else p.returncode
    m = re.search(r"User time \(seconds\): ([\d.]+)", t)
    user = float(m.group(1)) if m else None
    m = re.search(r"System time \(seconds\): ([\d.]+)", t)
    system = float(m.group(1)) if m else None
    m = re.search(r"Minor \(reclaiming a frame\) page faults: (\d+)", t)
    minor_faults = int(m.group(1)) if m else None
    bad = fleet.wrong_end_state()
    return {"wall": wall, "rss_mib": rss, "exit": code, "fds": sampler.peak, "user": user, "sys": system,
            "own_cpu": sampler.own_cpu, "minor_faults": minor_faults, "threads": sampler.threads(),
            "ok": code == 0 and not bad, "wrong": len(bad), "log": str(run_dir / "output.txt")}


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def table(rows: list[dict], meta: dict) -> str:
    out = [
        f"Measured {meta['date']} on {meta['machine']}; load average at start {meta['load']}; "
        f"file-descriptor soft limit at start {meta['nofile']}; {meta['sluice']}.",
        "",
        f"Command: `{meta['command']}`",
        "",
        "| N | waves | wall s | per host ms | CPU user+sys s | sluice's own CPU s | peak RSS MiB | RSS per host KiB | peak fds | end state |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        n = r["n"]
        cpu = f"{r['user'] + r['sys']:.2f}" if r["user"] is not None else "?"
        rss = f"{r['rss_mib']:.1f}" if r["rss_mib"] else "?"
        own = f"{r['own_cpu']:.2f}" if r.get("own_cpu") is not None else "?"
        per_kib = f"{r['rss_mib'] * 1024 / n:.1f}" if r["rss_mib"] else "?"
        state = "ok" if r["ok"] else f"FAILED (exit {r['exit']}, {r['wrong']} hosts wrong)"
        out.append(
            f"| {n} | 1 / {wave1_size(n)} / {n - 1 - wave1_size(n)} | {r['wall']:.2f} | {r['wall'] * 1000 / n:.2f} | "
            f"{cpu} | {own} | {rss} | {per_kib} | {r['fds']} | {state} |"
        )
    return "\n".join(out) + "\n"


def write_doc(text: str) -> None:
    doc = REPO / "docs" / "benchmarks.md"
    body = doc.read_text()
    start, end = "<!-- scale:start -->", "<!-- scale:end -->"
    block = f"{start}\n{text}{end}"
    if start in body and end in body:
        body = body[: body.index(start)] + block + body[body.index(end) + len(end):]
    else:
        body = body.rstrip("\n") + "\n\n## Scale: sluice on 500 to 10,000 local hosts\n\n" + block + "\n"
    doc.write_text(body)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="500,1000,10000")
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--concurrency", type=int, default=None, help="plan-wide cap of hosts in flight per wave")
    ap.add_argument("--fd-soft", type=int, default=None,
                    help="start sluice with this soft RLIMIT_NOFILE (default: the hard limit). With a soft limit "
                    "below the hard one (1024 is the common default) sluice raises its own and gives local "
                    "commands the original back, which is the path most operators' runs take")
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--doc", action="store_true", help="write the table into docs/benchmarks.md")
    args = ap.parse_args()
    if not Path("/usr/bin/time").exists():
        raise SystemExit("GNU time is missing: apt-get install -y time")
    if not args.no_build:
        log("building sluice (release)")
        subprocess.run(["cargo", "build", "--release", "-q", "-p", "sluice-cli"], cwd=REPO, check=True)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    start_soft = min(args.fd_soft, hard) if args.fd_soft else hard
    resource.setrlimit(resource.RLIMIT_NOFILE, (start_soft, hard))
    version = subprocess.run([str(TARGET / "sluice"), "--version"], capture_output=True, text=True).stdout.strip()
    meta = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{os.cpu_count()} CPUs, {platform.machine()}, Linux {platform.release()}",
        "load": loadavg(),
        "nofile": f"{start_soft} (was {soft}; hard {hard})",
        "sluice": version,
        "command": "python3 bench/scale.py " + " ".join(sys.argv[1:]),
    }
    rows = []
    for n in [int(s) for s in args.sizes.split(",")]:
        log(f"N={n}: writing {n} local hosts")
        fleet = LocalFleet(n, args.concurrency)
        for k in range(args.runs):
            r = run_once(fleet, f"run{k + 1}")
            r["n"] = n
            rows.append(r)
            status = "ok" if r["ok"] else f"FAILED (exit {r['exit']}, {r['wrong']} hosts wrong; {r['log']})"
            cpu = f"{r['user'] + r['sys']:.2f}" if r["user"] is not None else "?"
            own = f"{r['own_cpu']:.2f}" if r.get("own_cpu") is not None else "?"
            log(f"N={n} run {k + 1}: {r['wall']:.2f} s, CPU {cpu} s (sluice's own {own} s), "
                f"{r['rss_mib']:.1f} MiB, {r['fds']} fds, {r['minor_faults']} minor faults, "
                f"load {loadavg()}: {status}")
            log("  CPU s by thread: " + ", ".join(f"{k} {v:.2f}" for k, v in sorted(r["threads"].items())))
    text = table(rows, meta)
    print(text)
    if args.doc:
        write_doc(text)


if __name__ == "__main__":
    main()
