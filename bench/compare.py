#!/usr/bin/env python3
"""Rolling patch (WORKLOAD.md) with sluice, pyinfra, Ansible and plain ssh on one OpenSSH fleet.

    python3 bench/compare.py                   # N = 10, 50, 100; 3 runs; every tool
    python3 bench/compare.py --sizes 10,50 --runs 3 --tools sluice,pyinfra,ansible,ssh
    python3 bench/compare.py --with-250        # adds N = 250

For each fleet size N the driver starts N real sshd (target/release/sluice-testfleet), writes each
tool's inventory from the fleet's ports and keys, and runs every tool `--runs` times, alternating
tools, resetting every host's state before each run. Wall time is measured around the tool's
command, the controller's peak RSS with `/usr/bin/time -v` (the largest single process of the
tool's process tree), and after each run every host's end state is read back: a run with a wrong end
state counts as failed. Then the fault variant once per tool (a stopped host in the `rest` wave; an
unhealthy host in `wave1`) and the ad-hoc `true` on all N hosts.

Prints one table and writes it into docs/benchmarks.md, section "Rolling patch: sluice beside
pyinfra, Ansible and plain ssh". Python 3 standard library only; scratch goes to bench/.work/.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"
WORK = BENCH / ".work"
VENV = BENCH / ".venv"
TARGET = REPO / "target" / "release"
SSHD = "/usr/sbin/sshd"
TOOLS = ["sluice", "pyinfra", "ansible", "ssh"]
# Also known: sluice with a channel and a login shell per step instead of each host's runner.
EXTRA_TOOLS = ["sluice-exec"]
SECTION = "## Rolling patch: sluice beside pyinfra, Ansible and plain ssh"
RUN_TIMEOUT = 900


def log(msg: str) -> None:
    print(f"[{dt.datetime.now():%H:%M:%S}] {msg}", file=sys.stderr, flush=True)


def sh(cmd: list[str] | str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=True, **kw)


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


# ---------------------------------------------------------------------------------------------
# Set-up: sluice release build, the venv with ansible-core and pyinfra, GNU time.


def build_sluice() -> None:
    log("building sluice and sluice-testfleet (release)")
    sh(["cargo", "build", "--release", "-q", "-p", "sluice-cli", "-p", "sluice-testfleet"], cwd=REPO)


def ensure_venv() -> None:
    if (VENV / "bin" / "ansible-playbook").exists() and (VENV / "bin" / "pyinfra").exists():
        return
    log(f"creating {VENV} and installing ansible-core and pyinfra from PyPI")
    if not (VENV / "bin" / "python").exists():
        sh([sys.executable, "-m", "venv", str(VENV)])
    sh([str(VENV / "bin" / "pip"), "install", "-q", "ansible-core", "pyinfra"])


def ensure_gnu_time() -> None:
    if Path("/usr/bin/time").exists():
        return
    log("installing GNU time (apt-get install -y time)")
    sh(["apt-get", "install", "-y", "-q", "time"])


def versions() -> dict[str, str]:
    def first_line(cmd: list[str]) -> str:
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
            return (out.stdout or out.stderr).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return "unknown"

    return {
        "sluice": first_line([str(TARGET / "sluice"), "--version"]),
        "pyinfra": first_line([str(VENV / "bin" / "pyinfra"), "--version"]),
        "ansible": first_line([str(VENV / "bin" / "ansible-playbook"), "--version"]),
        "openssh": first_line(["ssh", "-V"]),
        "python": sys.version.split()[0],
    }


def sluice_has_exec() -> bool:
    out = subprocess.run([str(TARGET / "sluice"), "--help"], capture_output=True, text=True)
    return re.search(r"^\s+exec\b", out.stdout, re.M) is not None


# ---------------------------------------------------------------------------------------------
# The fleet.


class Fleet:
    """N sshd hosts started by `sluice-testfleet up N --dir DIR`, stopped when stdin closes."""

    def __init__(self, n: int):
        self.n = n
        self.dir = WORK / f"fleet-{n}"
        if self.dir.exists():
            shutil.rmtree(self.dir)
        self.dir.mkdir(parents=True)
        self.proc = subprocess.Popen(
            [str(TARGET / "sluice-testfleet"), "up", str(n), "--dir", str(self.dir)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        line = self.proc.stdout.readline().strip()
        if not line:
            raise SystemExit(f"sluice-testfleet up {n} failed (see its message above)")
        self.dir = Path(line).parent
        self.inventory = Path(line)
        text = self.inventory.read_text()
        self.ports = {int(i): int(p) for i, p in re.findall(r"host(\d+): \{ address: 127\.0\.0\.1, port: (\d+) \}", text)}
        assert len(self.ports) == n, f"inventory lists {len(self.ports)} hosts, expected {n}"
        self.user = re.search(r'user: "([^"]*)"', text).group(1)
        self.restarted: list[subprocess.Popen] = []

    def root(self, i: int) -> Path:
        return self.dir / "hosts" / f"host{i}" / "root"

    def reset(self) -> None:
        for i in range(1, self.n + 1):
            r = self.root(i)
            (r / "pkg").mkdir(parents=True, exist_ok=True)
            (r / "app").mkdir(parents=True, exist_ok=True)
            (r / "pkg" / "openssl").write_text("3.0.1\n")
            (r / "app" / "healthy").write_text("ok\n")
            (r / "app" / "state").unlink(missing_ok=True)

    def wrong_end_state(self) -> list[str]:
        bad = []
        for i in range(1, self.n + 1):
            r = self.root(i)
            pkg = read(r / "pkg" / "openssl")
            state = read(r / "app" / "state")
            if pkg != "3.0.2" or state != "running":
                bad.append(f"host{i} (openssl={pkg}, state={state})")
        return bad

    def touched(self) -> list[int]:
        return [
            i
            for i in range(1, self.n + 1)
            if read(self.root(i) / "pkg" / "openssl") != "3.0.1" or (self.root(i) / "app" / "state").exists()
        ]

    def _config(self, i: int) -> Path:
        return self.dir / "hosts" / f"host{i}" / "sshd_config"

    def stop_host(self, i: int) -> None:
        """Kills host i's sshd, found by its exact command line (the fleet started it)."""
        pidfile = self.dir / "hosts" / f"host{i}" / "sshd.pid"
        pid = read(pidfile)
        # The listener's command line names its config: only that sshd is killed.
        cmdline = read(Path(f"/proc/{pid}/cmdline")) if pid else None
        if pid and cmdline and str(self._config(i)) in cmdline:
            os.kill(int(pid), signal.SIGTERM)
        for p in self.restarted:
            if p.args[-1] == str(self._config(i)) and p.poll() is None:
                p.terminate()
                p.wait()
        deadline = time.time() + 5
        while time.time() < deadline and port_open(self.ports[i]):
            time.sleep(0.05)

    def start_host(self, i: int) -> None:
        logf = open(self.dir / "hosts" / f"host{i}" / "sshd.log", "a")
        p = subprocess.Popen([SSHD, "-D", "-e", "-f", str(self._config(i))], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=logf)
        self.restarted.append(p)
        deadline = time.time() + 10
        while time.time() < deadline and not port_open(self.ports[i]):
            time.sleep(0.05)

    def close(self) -> None:
        for p in self.restarted:
            if p.poll() is None:
                p.terminate()
                p.wait()
        if self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.wait(timeout=60)


def read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        return None


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def wave_sizes(n: int) -> list[int]:
    """canary 1, wave1 max(1, floor(N * 10%)), rest: WORKLOAD.md (Ansible's `serial` rounding)."""
    w1 = min(max(1, n * 10 // 100), n - 1)
    return [1, w1, n - 1 - w1]


# ---------------------------------------------------------------------------------------------
# Each tool's inputs for one fleet, and its command.


class Setup:
    def __init__(self, fleet: Fleet, has_exec: bool):
        self.fleet = fleet
        self.has_exec = has_exec
        self.dir = WORK / f"n{fleet.n}"
        if self.dir.exists():
            shutil.rmtree(self.dir)
        self.dir.mkdir(parents=True)
        n = fleet.n
        sizes = wave_sizes(n)
        self.waves = [
            ("canary", list(range(1, 2))),
            ("wave1", list(range(2, 2 + sizes[1]))),
            ("rest", list(range(2 + sizes[1], n + 1))),
        ]
        self._sluice()
        self._ansible()
        self._pyinfra()
        self._ssh()

    def _sluice(self) -> None:
        plan = (REPO / "playbooks" / "bench-rolling-patch.yaml").read_text()
        plan, k = re.subn(r"\{ name: wave1, size: \d+ \}", f"{{ name: wave1, size: {len(self.waves[1][1])} }}", plan)
        assert k == 1, "playbooks/bench-rolling-patch.yaml: wave1 line not found"
        self.sluice_plan = self.dir / "bench-rolling-patch.yaml"
        self.sluice_plan.write_text(plan)
        self.sluice_state = self.dir / "sluice-state"

    def _ansible(self) -> None:
        f = self.fleet
        lines = ["[fleet]"]
        for i in range(1, f.n + 1):
            lines.append(f"host{i} ansible_host=127.0.0.1 ansible_port={f.ports[i]} ansible_remote_tmp={f.root(i)}/.ansible-tmp")
        common = f"-o UserKnownHostsFile={f.dir}/known_hosts -o StrictHostKeyChecking=yes -o BatchMode=yes"
        lines += [
            "",
            "[fleet:vars]",
            f"ansible_user={f.user}",
            f"ansible_ssh_private_key_file={f.dir}/id_ed25519",
            f"ansible_ssh_common_args='{common}'",
        ]
        self.ansible_inv = self.dir / "ansible-inventory.ini"
        self.ansible_inv.write_text("\n".join(lines) + "\n")

    def _pyinfra(self) -> None:
        f = self.fleet
        out = ['"""pyinfra inventory of the benchmark fleet, one group per wave (bench/compare.py)."""', ""]
        for name, hosts in self.waves:
            out.append(f"{name} = [")
            for i in hosts:
                data = {
                    "ssh_hostname": "127.0.0.1",
                    "ssh_port": f.ports[i],
                    "ssh_user": f.user,
                    "ssh_key": str(f.dir / "id_ed25519"),
                    "ssh_known_hosts_file": str(f.dir / "known_hosts"),
                    "ssh_strict_host_key_checking": "yes",
                }
                out.append(f"    ({f'host{i}'!r}, {data!r}),")
            out.append("]")
        self.pyinfra_inv = self.dir / "pyinfra_inventory.py"
        self.pyinfra_inv.write_text("\n".join(out) + "\n")

    def _ssh(self) -> None:
        self.ssh_waves = []
        for name, hosts in self.waves:
            p = self.dir / f"ssh-{name}.ports"
            p.write_text("".join(f"{self.fleet.ports[i]}\n" for i in hosts))
            self.ssh_waves.append(p)
        self.ssh_all = self.dir / "ssh-all.ports"
        self.ssh_all.write_text("".join(f"{self.fleet.ports[i]}\n" for i in range(1, self.fleet.n + 1)))

    def env(self, tool: str, run_dir: Path) -> dict[str, str]:
        env = dict(os.environ)
        env["PATH"] = f"{VENV / 'bin'}:{env['PATH']}"
        if tool.startswith("sluice"):
            env["SLUICE_STATE_DIR"] = str(self.sluice_state)
        if tool == "ansible":
            env["ANSIBLE_CONFIG"] = str(BENCH / "ansible" / "ansible.cfg")
            env["ANSIBLE_HOME"] = str(WORK / "ansible-home")
            env["ANSIBLE_LOCAL_TEMP"] = str(WORK / "ansible-home" / "tmp")
            # A control-socket directory of its own per run: Ansible's ControlPersist masters of
            # one run must not speed up the next.
            env["ANSIBLE_SSH_CONTROL_PATH_DIR"] = str(run_dir / "cp")
        return env

    def rolling_patch(self, tool: str) -> str:
        """The tool's command for the whole rolling patch, as one shell command line."""
        q = shlex.quote
        if tool.startswith("sluice"):
            flag = " --exec-per-step" if tool == "sluice-exec" else ""
            return f"{q(str(TARGET / 'sluice'))} apply {q(str(self.sluice_plan))} -i {q(str(self.fleet.inventory))} --yes{flag}"
        if tool == "ansible":
            return f"ansible-playbook -i {q(str(self.ansible_inv))} {q(str(BENCH / 'ansible' / 'rolling-patch.yml'))}"
        if tool == "pyinfra":
            runs = [
                f"pyinfra {q(str(self.pyinfra_inv))} {q(str(BENCH / 'pyinfra' / 'rolling_patch.py'))} "
                f"--limit {name} --parallel {min(len(hosts), 100)} --fail-percent 0 -y"
                for name, hosts in self.waves
            ]
            return " && ".join(runs)
        if tool == "ssh":
            waves = " ".join(q(str(p)) for p in self.ssh_waves)
            return f"{q(str(BENCH / 'rolling-patch-ssh.sh'))} {q(str(self.fleet.dir))} {q(self.fleet.user)} {waves}"
        raise ValueError(tool)

    def adhoc(self, tool: str) -> str | None:
        """`true` on all N hosts at once (parallelism 100), or None where the tool has no ad-hoc."""
        q = shlex.quote
        f = self.fleet
        if tool.startswith("sluice"):
            if not self.has_exec:
                return None
            flag = " --exec-per-step" if tool == "sluice-exec" else ""
            return f"{q(str(TARGET / 'sluice'))} exec fleet -i {q(str(f.inventory))} --concurrency 100{flag} -- true"
        if tool == "ansible":
            return f"ansible fleet -i {q(str(self.ansible_inv))} -m ansible.builtin.command -a true -f 100"
        if tool == "pyinfra":
            return f"pyinfra {q(str(self.pyinfra_inv))} exec --parallel 100 -y -- true"
        if tool == "ssh":
            return (
                f"xargs -P 100 -I{{}} ssh -i {q(str(f.dir / 'id_ed25519'))} -o UserKnownHostsFile={q(str(f.dir / 'known_hosts'))} "
                f"-o StrictHostKeyChecking=yes -o BatchMode=yes -p {{}} {q(f.user)}@127.0.0.1 true < {q(str(self.ssh_all))}"
            )
        raise ValueError(tool)


# ---------------------------------------------------------------------------------------------
# One timed run.


def timed(setup: Setup, tool: str, command: str, label: str) -> dict:
    run_dir = setup.dir / "runs" / label
    run_dir.mkdir(parents=True, exist_ok=True)
    time_out = run_dir / "time.txt"
    out = open(run_dir / "output.txt", "w")
    argv = ["/usr/bin/time", "-v", "-o", str(time_out), "bash", "-c", command]
    start = time.perf_counter()
    p = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=setup.env(tool, run_dir), cwd=setup.dir, start_new_session=True)
    try:
        p.wait(timeout=RUN_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
    wall = time.perf_counter() - start
    out.close()
    rss_kb = None
    code = p.returncode
    if time_out.exists():
        t = time_out.read_text()
        m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", t)
        rss_kb = int(m.group(1)) if m else None
        m = re.search(r"Exit status: (\d+)", t)
        if m:
            code = int(m.group(1))
    close_control_masters(run_dir / "cp")
    return {"wall": wall, "rss_mib": rss_kb / 1024 if rss_kb else None, "exit": code, "log": str(run_dir / "output.txt")}


def close_control_masters(cp: Path) -> None:
    """Asks Ansible's lingering ControlPersist ssh masters of a finished run to exit."""
    if not cp.is_dir():
        return
    for sock in cp.iterdir():
        subprocess.run(["ssh", "-o", f"ControlPath={sock}", "-O", "exit", "x"], capture_output=True, timeout=10)


# ---------------------------------------------------------------------------------------------
# The comparison for one fleet size.


def bench_size(n: int, tools: list[str], runs: int, fault: bool, adhoc: bool, has_exec: bool, rtt_ms: float = 0) -> dict:
    log(f"N={n}: starting {n} sshd hosts")
    fleet = Fleet(n)
    result = {"n": n, "rtt_ms": rtt_ms, "waves": wave_sizes(n), "load_start": loadavg(), "runs": {t: [] for t in tools}, "fault": {}, "adhoc": {}}
    proxy = None
    try:
        if rtt_ms > 0:
            import wan

            log(f"N={n}: every host behind bench/latency_proxy.py, RTT {rtt_ms:g} ms")
            proxy = wan.Proxy(fleet, rtt_ms)
        setup = Setup(fleet, has_exec)
        for r in range(runs):
            order = tools[r % len(tools):] + tools[: r % len(tools)]
            for tool in order:
                fleet.reset()
                res = timed(setup, tool, setup.rolling_patch(tool), f"{tool}-run{r + 1}")
                bad = fleet.wrong_end_state()
                res["ok"] = res["exit"] == 0 and not bad
                res["wrong_end_state"] = bad[:5]
                res["load"] = loadavg()
                result["runs"][tool].append(res)
                status = "ok" if res["ok"] else f"FAILED (exit {res['exit']}, {len(bad)} hosts wrong; {res['log']})"
                rss = f"{res['rss_mib']:.1f} MiB" if res["rss_mib"] else "?"
                log(f"N={n} run {r + 1}/{runs} {tool:8} {res['wall']:7.2f} s  peak RSS {rss:>10}  load {res['load']}  {status}")
        if fault:
            sizes = wave_sizes(n)
            for tool in tools:
                # A host of the `rest` wave (the last one) is down: the run must fail in `rest`.
                fleet.reset()
                fleet.stop_host(n)
                res = timed(setup, tool, setup.rolling_patch(tool), f"{tool}-fault-stopped")
                fleet.start_host(n)
                res["touched"] = len(fleet.touched())
                res["expect"] = f"exit != 0, {n - 1} touched"
                result["fault"].setdefault(tool, {})["stopped"] = res
                log(f"N={n} fault {tool:8} host{n} stopped: exit {res['exit']}, {res['touched']} hosts touched, {res['wall']:.2f} s")
                # The canary (host1) is down: the run must stop after the canary wave, no host touched.
                fleet.reset()
                fleet.stop_host(1)
                res = timed(setup, tool, setup.rolling_patch(tool), f"{tool}-fault-canary-stopped")
                fleet.start_host(1)
                res["touched"] = len(fleet.touched())
                res["expect"] = "exit != 0, 0 touched"
                result["fault"][tool]["canary_stopped"] = res
                log(f"N={n} fault {tool:8} host1 stopped: exit {res['exit']}, {res['touched']} hosts touched, {res['wall']:.2f} s")
                # host2 (first of `wave1`) is unhealthy: 3 attempts (~2 s), then no `rest` host is touched.
                fleet.reset()
                (fleet.root(2) / "app" / "healthy").write_text("failing\n")
                res = timed(setup, tool, setup.rolling_patch(tool), f"{tool}-fault-unhealthy")
                res["touched"] = len(fleet.touched())
                res["expect"] = f"exit != 0, {1 + sizes[1]} touched"
                result["fault"][tool]["unhealthy"] = res
                log(f"N={n} fault {tool:8} host2 unhealthy: exit {res['exit']}, {res['touched']} hosts touched, {res['wall']:.2f} s")
        if adhoc:
            for tool in tools:
                cmd = setup.adhoc(tool)
                if cmd is None:
                    log(f"N={n} ad-hoc {tool}: no ad-hoc command in this build, skipped")
                    continue
                res = timed(setup, tool, cmd, f"{tool}-adhoc")
                result["adhoc"][tool] = res
                log(f"N={n} ad-hoc {tool:8} true on {n} hosts: exit {res['exit']}, {res['wall']:.2f} s")
    finally:
        result["load_end"] = loadavg()
        if proxy is not None:
            proxy.close()
        fleet.close()
    return result


# ---------------------------------------------------------------------------------------------
# The table.


def fmt(x: float | None, digits: int = 2) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def summarize(runs: list[dict]) -> dict:
    ok = [r for r in runs if r["ok"]]
    walls = [r["wall"] for r in ok]
    rss = [r["rss_mib"] for r in runs if r["rss_mib"]]
    return {
        "median": statistics.median(walls) if walls else None,
        "min": min(walls) if walls else None,
        "max": max(walls) if walls else None,
        "rss": max(rss) if rss else None,
        "ok": len(ok),
        "total": len(runs),
    }


# Issue 14's goal for the rolling patch: sluice's median wall time at most a quarter of pyinfra's,
# at N = 50 and 100 on loopback and at 25 ms RTT.
GOAL_RATIO_PYINFRA = 0.25


def goals(results: list[dict], meta: dict) -> str:
    """One line per fleet size: sluice/pyinfra against the goal, met or not."""
    rtt = meta.get("rtt") or 0
    where = f"at {rtt:g} ms RTT" if rtt else "on loopback"
    lines = [f"Goal (issue 14): sluice/pyinfra <= {GOAL_RATIO_PYINFRA} {where}:", ""]
    for res in results:
        sl = summarize(res["runs"]["sluice"])["median"]
        py = summarize(res["runs"]["pyinfra"])["median"]
        if not sl or not py:
            lines.append(f"- N = {res['n']}: no verified run of both tools")
            continue
        ratio = sl / py
        verdict = "met" if ratio <= GOAL_RATIO_PYINFRA else "NOT met"
        lines.append(f"- N = {res['n']}: {fmt(ratio)} ({fmt(sl)} s / {fmt(py)} s): {verdict}")
    lines.append("")
    return "\n".join(lines)


def render(results: list[dict], tools: list[str], meta: dict) -> str:
    out = []
    out.append("Rolling patch, wall seconds of the whole run (median, min – max of the runs whose end state")
    out.append("was verified), controller peak RSS (largest process of the tool's process tree, max over runs).")
    out.append("")
    out.append("| N | waves | tool | ok runs | median s | min – max s | peak RSS MiB | load (1/5/15 min) |")
    out.append("|---:|---|---|---:|---:|---|---:|---|")
    for res in results:
        for tool in tools:
            s = summarize(res["runs"][tool])
            loads = "; ".join(r["load"] for r in res["runs"][tool][:1])
            out.append(
                f"| {res['n']} | {'/'.join(map(str, res['waves']))} | {tool} | {s['ok']}/{s['total']} | {fmt(s['median'])} | "
                f"{fmt(s['min'])} – {fmt(s['max'])} | {fmt(s['rss'], 1)} | {loads} |"
            )
    out.append("")
    others = [t for t in tools if t != "sluice"]
    if "sluice" in tools and others:
        out.append("Ratios of median wall times (below 1: sluice is faster):")
        out.append("")
        out.append("| N | " + " | ".join(f"sluice/{t}" for t in others) + " |")
        out.append("|---:|" + "---:|" * len(others))
        for res in results:
            sl = summarize(res["runs"]["sluice"])["median"]
            cells = []
            for t in others:
                m = summarize(res["runs"][t])["median"]
                cells.append(fmt(sl / m) if sl and m else "–")
            out.append(f"| {res['n']} | " + " | ".join(cells) + " |")
        out.append("")
    if "sluice" in tools and "pyinfra" in tools:
        out.append(goals(results, meta))
    if any(res["fault"] for res in results):
        out.append("Fault variant, once per tool: host N stopped (in `rest`: later waves done, non-zero exit);")
        out.append("host1 stopped (the canary: the run stops, no host touched); host2 unhealthy (first of `wave1`,")
        out.append("3 health attempts 1 s apart, then no `rest` host may be touched). Cells: exit code, hosts")
        out.append("touched (expected), wall seconds.")
        out.append("")
        out.append("| N | tool | host N stopped | host1 stopped | host2 unhealthy |")
        out.append("|---:|---|---|---|---|")

        def cell(r: dict) -> str:
            expected = r["expect"].split(", ")[1].split()[0]
            return f"exit {r['exit']}, {r['touched']} ({expected}), {fmt(r['wall'])} s"

        for res in results:
            for tool, f in res["fault"].items():
                out.append(
                    f"| {res['n']} | {tool} | {cell(f['stopped'])} | {cell(f['canary_stopped'])} | {cell(f['unhealthy'])} |"
                )
        out.append("")
    if any(res["adhoc"] for res in results):
        out.append("Ad-hoc `true` on all N hosts (parallelism 100), one run, wall seconds (exit code):")
        out.append("")
        out.append("| N | " + " | ".join(tools) + " |")
        out.append("|---:|" + "---:|" * len(tools))
        for res in results:
            cells = []
            for t in tools:
                a = res["adhoc"].get(t)
                cells.append(f"{fmt(a['wall'])} ({a['exit']})" if a else "skipped")
            out.append(f"| {res['n']} | " + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out)


def write_doc(table: str, meta: dict, label: str) -> None:
    doc = REPO / "docs" / "benchmarks.md"
    text = doc.read_text() if doc.exists() else "# Benchmarks\n"
    v = meta["versions"]
    body = [
        SECTION,
        "",
        "The reference rolling patch of WORKLOAD.md (3 waves: 1 host, `max(1, floor(N*10%))`, the rest;",
        "4 steps and a health check per host; no failure allowed) run by sluice, pyinfra, Ansible and plain",
        "ssh against the same fleet of real OpenSSH servers on 127.0.0.1. How the harness works and what",
        "each tool runs: [bench/README.md](../bench/README.md).",
        "",
        "Reproduce (from a clean clone; builds sluice, installs ansible-core and pyinfra into",
        "`bench/.venv`, takes a while):",
        "",
        "```",
        meta["command"],
        "```",
        "",
        f"{label}Measured {meta['date']} on {meta['machine']}. Load average (1/5/15 min) at the start "
        f"{meta['load_start']}, at the end {meta['load_end']}; each row's load is the one after its first run.",
        f"Versions: sluice `{v['sluice']}`, pyinfra `{v['pyinfra']}`, `{v['ansible']}`, `{v['openssh']}`,",
        f"Python {v['python']}. sluice runs each host's steps independently inside a wave; Ansible",
        "(linear strategy) and pyinfra run each step in lockstep across the wave's hosts; plain ssh",
        "sends a host's whole sequence over one connection.",
        "",
        table,
    ]
    if meta.get("notes"):
        body += [meta["notes"], ""]
    new = "\n".join(body).rstrip() + "\n"
    start = text.find(SECTION)
    if start < 0:
        text = text.rstrip() + "\n\n" + new
    else:
        nxt = text.find("\n## ", start + len(SECTION))
        text = text[:start] + new + ("\n" + text[nxt + 1:] if nxt >= 0 else "")
    doc.write_text(text)
    log(f"wrote {doc.relative_to(REPO)} ({SECTION[3:]})")


def machine() -> str:
    mem = re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1)
    cpu = re.search(r"model name\s*:\s*(.*)", Path("/proc/cpuinfo").read_text())
    return f"{os.cpu_count()} CPUs (`nproc` {os.cpu_count()}, {cpu.group(1).strip() if cpu else 'unknown CPU'}), {int(mem) // 1024} MiB memory"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="10,50,100", help="fleet sizes, comma separated (default 10,50,100)")
    ap.add_argument("--with-250", action="store_true", help="also N = 250")
    ap.add_argument("--runs", type=int, default=3, help="timed runs per tool and size (default 3)")
    ap.add_argument("--tools", default=",".join(TOOLS), help=f"tools, comma separated (default {','.join(TOOLS)})")
    ap.add_argument("--no-fault", action="store_true", help="skip the fault variant")
    ap.add_argument("--no-adhoc", action="store_true", help="skip the ad-hoc `true`")
    ap.add_argument("--no-build", action="store_true", help="use target/release as it is")
    ap.add_argument("--no-doc", action="store_true", help="do not write docs/benchmarks.md")
    ap.add_argument("--rtt", type=float, default=0, help="round-trip time in ms added by bench/latency_proxy.py in front of every host (default 0: no proxy); the fault variant is skipped")
    ap.add_argument("--label", default="", help="text put before the measurement line in the doc, e.g. 'Preliminary: '")
    args = ap.parse_args()

    sizes = [int(s) for s in args.sizes.split(",") if s]
    if args.with_250 and 250 not in sizes:
        sizes.append(250)
    tools = [t for t in args.tools.split(",") if t]
    unknown = set(tools) - set(TOOLS) - set(EXTRA_TOOLS)
    if unknown:
        ap.error(f"unknown tools: {', '.join(sorted(unknown))} (known: {', '.join(TOOLS)})")
    WORK.mkdir(parents=True, exist_ok=True)

    if not args.no_build:
        build_sluice()
    if {"ansible", "pyinfra"} & set(tools):
        ensure_venv()
    ensure_gnu_time()
    has_exec = sluice_has_exec()
    if not has_exec:
        log("this sluice has no `exec` command: the ad-hoc column of sluice is skipped")

    meta = {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "versions": versions(),
        "load_start": loadavg(),
        "command": "python3 bench/compare.py " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
        "rtt": args.rtt,
    }
    results = []
    for n in sizes:
        fault = not args.no_fault and args.rtt == 0
        results.append(bench_size(n, tools, args.runs, fault, not args.no_adhoc, has_exec, args.rtt))
        (WORK / "results.json").write_text(json.dumps({"meta": meta, "results": results}, indent=2))
    meta["load_end"] = loadavg()
    table = render(results, tools, meta)
    print(table)
    if not has_exec:
        meta["notes"] = "sluice has no ad-hoc `exec` command yet: its ad-hoc column is skipped."
    if not args.no_doc:
        write_doc(table, meta, args.label)
    return 0


if __name__ == "__main__":
    sys.exit(main())
