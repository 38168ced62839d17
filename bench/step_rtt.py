#!/usr/bin/env python3
"""Per-step overhead in round trips: one host behind bench/latency_proxy.py, K trivial steps.

    python3 bench/step_rtt.py --rtt 25 --steps 20 --runs 3

Starts one sshd (target/release/sluice-testfleet up 1) behind the latency proxy (RTT/2 of delay
per direction), then times a plan of 1 step and a plan of 1 + K steps (`true` each) with
`sluice apply` (runner, and `--exec-per-step`), the same two deploys with pyinfra (one
`server.shell` per step) and two playbooks with Ansible (one `command` task per step, pipelining and
OpenSSH's ControlPersist on, as bench/ansible/ansible.cfg sets them) when bench/.venv has them
(`python3 bench/compare.py` creates it). The difference divided by K is the cost of one
step; divided by the RTT, the step's overhead in round trips (audit commits included for sluice:
two per step, on the state directory's disk). Needs the release build (`python3 bench/compare.py
--no-doc` or `cargo build --release -p sluice-cli -p sluice-testfleet`).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"
WORK = BENCH / ".work" / "step-rtt"
TARGET = REPO / "target" / "release"
sys.path.insert(0, str(BENCH))

import wan  # noqa: E402


class OneHost:
    """One fleet host, as compare.Fleet describes a fleet (for wan.Proxy)."""

    def __init__(self) -> None:
        self.n = 1
        self.dir = WORK / "fleet"
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir.mkdir(parents=True)
        self.proc = subprocess.Popen(
            [str(TARGET / "sluice-testfleet"), "up", "1", "--dir", str(self.dir)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        self.inventory = Path(self.proc.stdout.readline().strip())
        self.dir = self.inventory.parent
        text = self.inventory.read_text()
        port = int(text.split("port: ")[1].split(" ")[0])
        self.ports = {1: port}
        self.user = text.split('user: "')[1].split('"')[0]

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


def plan(k: int) -> Path:
    steps = "\n".join(f"  - {{ id: s{i}, run: \"true\" }}" for i in range(k))
    path = WORK / f"plan-{k}.yaml"
    path.write_text(
        f"name: step-rtt\ndescription: {k} trivial steps\nticket: BENCH-2\ntargets: [fleet]\n"
        f"waves:\n  - {{ name: all, size: 100% }}\nfailure: {{ max_failed: 0, action: halt }}\n"
        f"steps:\n{steps}\n"
    )
    return path


def deploy(k: int) -> Path:
    path = WORK / f"deploy_{k}.py"
    path.write_text(
        "from pyinfra.operations import server\n"
        + "".join(f"server.shell(name='s{i}', commands=['true'])\n" for i in range(k))
    )
    return path


def pyinfra_inventory(host: OneHost) -> Path:
    path = WORK / "pyinfra_inventory.py"
    data = {
        "ssh_hostname": "127.0.0.1", "ssh_port": host.ports[1], "ssh_user": host.user,
        "ssh_key": str(host.dir / "id_ed25519"), "ssh_known_hosts_file": str(host.dir / "known_hosts"),
        "ssh_strict_host_key_checking": "yes",
    }
    path.write_text(f"fleet = [('host1', {data!r})]\n")
    return path


def playbook(k: int) -> Path:
    tasks = "".join(f"    - {{ name: s{i}, command: \"true\" }}\n" for i in range(k))
    path = WORK / f"playbook_{k}.yml"
    path.write_text(f"- hosts: fleet\n  gather_facts: false\n  tasks:\n{tasks}")
    return path


def ansible_inventory(host: OneHost) -> Path:
    path = WORK / "ansible-inventory.ini"
    common = f"-o UserKnownHostsFile={host.dir}/known_hosts -o StrictHostKeyChecking=yes -o BatchMode=yes"
    path.write_text(
        "[fleet]\n"
        f"host1 ansible_host=127.0.0.1 ansible_port={host.ports[1]} ansible_remote_tmp={WORK}/.ansible-tmp\n\n"
        "[fleet:vars]\n"
        f"ansible_user={host.user}\n"
        f"ansible_ssh_private_key_file={host.dir}/id_ed25519\n"
        f"ansible_ssh_common_args='{common}'\n"
    )
    return path


def timed(cmd: list[str], env: dict[str, str] | None = None) -> float:
    start = time.monotonic()
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    took = time.monotonic() - start
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({out.returncode}): {out.stderr[-2000:]}")
    return took


# Issue 14's goal: the runner's per-step overhead at 25 ms RTT at most 1.5 round trips.
GOAL_RUNNER_RTTS = 1.5


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rtt", type=float, default=25, help="round-trip time in ms (default 25)")
    ap.add_argument("--steps", type=int, default=20, help="extra steps K (default 20)")
    ap.add_argument("--runs", type=int, default=3, help="runs per case, median taken (default 3)")
    ap.add_argument(
        "--login-rc", action="store_true",
        help="drop the fleet's `SetEnv SHLVL=1`, so every login shell runs the user's ~/.bashrc (a slow "
        "login shell: on the development VM root's runs `pyenv init`, ~0.3 s)",
    )
    args = ap.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    host = OneHost()
    if args.login_rc:
        # sshd re-reads its config when it gets SIGHUP (it re-executes itself).
        config = host.dir / "hosts" / "host1" / "sshd_config"
        config.write_text(config.read_text().replace("SetEnv SHLVL=1 ", "SetEnv "))
        pid = int((host.dir / "hosts" / "host1" / "sshd.pid").read_text())
        os.kill(pid, signal.SIGHUP)
        time.sleep(1)
    proxy = wan.Proxy(host, args.rtt) if args.rtt > 0 else None
    env = dict(os.environ, SLUICE_STATE_DIR=str(WORK / "state"))
    env["PATH"] = f"{BENCH / '.venv' / 'bin'}:{env['PATH']}"
    tools = {
        "sluice (runner)": lambda k: [str(TARGET / "sluice"), "apply", str(plan(k)), "-i", str(host.inventory), "--yes"],
        "sluice (exec mode)": lambda k: [str(TARGET / "sluice"), "apply", str(plan(k)), "-i", str(host.inventory), "--yes", "--exec-per-step"],
    }
    if (BENCH / ".venv" / "bin" / "pyinfra").exists():
        inv = pyinfra_inventory(host)
        tools["pyinfra"] = lambda k: ["pyinfra", str(inv), str(deploy(k)), "-y"]
    if (BENCH / ".venv" / "bin" / "ansible-playbook").exists():
        ainv = ansible_inventory(host)
        env["ANSIBLE_CONFIG"] = str(BENCH / "ansible" / "ansible.cfg")
        tools["ansible"] = lambda k: ["ansible-playbook", "-i", str(ainv), str(playbook(k))]
    try:
        rc = ", login shells run ~/.bashrc" if args.login_rc else ""
        print(f"RTT {args.rtt:g} ms, K = {args.steps} extra steps, median of {args.runs}{rc}")
        print("| tool | 1 step, s | 1 + K steps, s | per step, ms | per step, RTT |")
        print("|---|---:|---:|---:|---:|")
        runner_rtts = None
        for name, cmd in tools.items():
            one, many = [], []
            for _ in range(args.runs):
                one.append(timed(cmd(1), env))
                many.append(timed(cmd(1 + args.steps), env))
            a, b = statistics.median(one), statistics.median(many)
            per = (b - a) / args.steps * 1000
            rtts = per / args.rtt if args.rtt > 0 else float("nan")
            print(f"| {name} | {a:.2f} | {b:.2f} | {per:.1f} | {rtts:.2f} |", flush=True)
            if name == "sluice (runner)":
                runner_rtts = rtts
        if args.rtt > 0 and runner_rtts is not None:
            verdict = "met" if runner_rtts <= GOAL_RUNNER_RTTS else "NOT met"
            print(f"\nGoal (issue 14): the runner's per-step overhead <= {GOAL_RUNNER_RTTS} RTT: "
                  f"{runner_rtts:.2f} RTT, {verdict}")
    finally:
        if proxy:
            proxy.close()
        host.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
