"""A fleet seen through bench/latency_proxy.py: every host's port replaced by a proxy port that
adds RTT/2 of delay per direction (used by compare.py --rtt)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent


class Proxy:
    """Starts the proxy in front of every host of `fleet` and points the fleet's ports, its
    sluice inventory and its known_hosts at the proxy ports. `close()` stops it."""

    def __init__(self, fleet, rtt_ms: float):
        self.proc = subprocess.Popen(
            [sys.executable, str(BENCH / "latency_proxy.py"), "--delay-ms", str(rtt_ms / 2)]
            + [str(fleet.ports[i]) for i in range(1, fleet.n + 1)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        by_target: dict[int, int] = {}
        for line in self.proc.stdout:
            if line.strip() == "ready":
                break
            target, listen = line.split()
            by_target[int(target)] = int(listen)
        if len(by_target) != fleet.n:
            raise SystemExit("bench/latency_proxy.py did not start")
        # Host keys are pinned per [host]:port: pin each key under its proxy port too.
        known = fleet.dir / "known_hosts"
        lines = known.read_text().splitlines()
        extra = []
        for line in lines:
            m = re.match(r"\[127\.0\.0\.1\]:(\d+) (.*)", line)
            if m and int(m.group(1)) in by_target:
                extra.append(f"[127.0.0.1]:{by_target[int(m.group(1))]} {m.group(2)}")
        known.write_text("\n".join(lines + extra) + "\n")
        inventory = fleet.inventory.read_text()
        for target, listen in by_target.items():
            inventory = inventory.replace(f"port: {target} }}", f"port: {listen} }}")
        proxied = fleet.dir / f"inventory-rtt{rtt_ms:g}.yaml"
        proxied.write_text(inventory)
        fleet.inventory = proxied
        fleet.ports = {i: by_target[p] for i, p in fleet.ports.items()}

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
