#!/usr/bin/env python3
"""Where a sluice run's wall time goes, from its `--json` event stream.

    sluice apply PLAN -i INVENTORY --yes --json > events.jsonl
    python3 bench/timeline.py events.jsonl

The executor emits, per host: `host_started`, then (after connecting and committing the first step
intent) `step_started`, then (after the command ended and its result was committed)
`step_finished`, the next intent, ..., `health_checked`, `host_finished`; and per wave
`wave_started` / `wave_finished`. From their timestamps this prints, per wave, the wave's wall time
and the breakdown of its slowest host (the critical path), and over all hosts the mean and maximum
of each part:

- connect+intent: `host_started` -> first `step_started` (TCP, SSH handshake and auth, first intent
  commit);
- remote: the step's own `duration_ms` (the command on the host, as the transport timed it);
- step overhead: `step_started` -> `step_finished` minus remote (channel open, exec request, result
  commit);
- between steps: `step_finished` -> next `step_started` (the next intent commit);
- health: last `step_finished` -> last `health_checked`;
- tail: last `health_checked` -> `host_finished`.

Plus the gaps between waves (decision, next wave's start) and before the first wave.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from datetime import datetime


def ts(s: str) -> float:
    # RFC 3339 with nanoseconds and Z; Python's fromisoformat takes at most microseconds.
    head, frac = s.rstrip("Z").split(".") if "." in s else (s.rstrip("Z"), "0")
    return datetime.fromisoformat(head + "+00:00").timestamp() + float("0." + frac)


def main() -> None:
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    events = [json.loads(line) for line in open(sys.argv[1]) if line.startswith("{")]
    if not events:
        raise SystemExit(f"{sys.argv[1]}: no JSON events")
    hosts: dict[str, list[dict]] = defaultdict(list)
    waves: list[dict] = []
    for e in events:
        e["t"] = ts(e["at"])
        if "host" in e:
            hosts[e["host"]].append(e)
        if e["event"] in ("wave_started", "wave_finished"):
            waves.append(e)

    parts: dict[str, dict[str, float]] = {}
    for name, evs in hosts.items():
        p = defaultdict(float)
        started = next((e["t"] for e in evs if e["event"] == "host_started"), None)
        steps_started = [e for e in evs if e["event"] == "step_started"]
        steps_finished = [e for e in evs if e["event"] == "step_finished"]
        if started is None or not steps_started:
            continue
        p["connect+intent"] = steps_started[0]["t"] - started
        for s, f in zip(steps_started, steps_finished):
            remote = f.get("duration_ms", 0) / 1000
            p["remote"] += remote
            p["step overhead"] += (f["t"] - s["t"]) - remote
        for f, s in zip(steps_finished, steps_started[1:]):
            p["between steps"] += s["t"] - f["t"]
        health = [e for e in evs if e["event"] == "health_checked"]
        last_step = steps_finished[-1]["t"] if steps_finished else steps_started[-1]["t"]
        if health:
            p["health"] = health[-1]["t"] - last_step
        finished = next((e["t"] for e in evs if e["event"] == "host_finished"), None)
        if finished is not None:
            p["tail"] = finished - (health[-1]["t"] if health else last_step)
            p["host total"] = finished - started
        p["steps"] = len(steps_finished)
        parts[name] = p

    order = ["connect+intent", "remote", "step overhead", "between steps", "health", "tail", "host total"]
    run_start, run_end = events[0]["t"], events[-1]["t"]
    print(f"run: {run_end - run_start:.3f} s from first to last event, {len(hosts)} hosts, {len(events)} events")
    first_wave = next((w["t"] for w in waves if w["event"] == "wave_started"), run_start)
    print(f"  before the first wave: {1000 * (first_wave - run_start):.1f} ms")
    prev_end = None
    for w in waves:
        if w["event"] == "wave_started":
            if prev_end is not None:
                print(f"  between waves: {1000 * (w['t'] - prev_end):.1f} ms")
            start = w
            continue
        wall = w["t"] - start["t"]
        members = [h for h in start.get("hosts", []) if h in parts]
        print(f"wave {w.get('wave', '?')}: {1000 * wall:.1f} ms, {len(members)} hosts")
        if members:
            slow = max(members, key=lambda h: parts[h].get("host total", 0))
            p = parts[slow]
            first = next(e["t"] for e in hosts[slow] if e["event"] == "host_started")
            print(f"  slowest host {slow}: starts {1000 * (first - start['t']):.1f} ms into the wave; "
                  + ", ".join(f"{k} {1000 * p[k]:.1f}" for k in order if k in p) + " (ms)")
            print(f"  after its last host: {1000 * (w['t'] - max(e['t'] for h in members for e in hosts[h])):.1f} ms")
        prev_end = w["t"]
    print("all hosts (ms): mean / max")
    for k in order:
        vals = [p[k] for p in parts.values() if k in p]
        if vals:
            print(f"  {k:15} {1000 * sum(vals) / len(vals):8.1f} / {1000 * max(vals):8.1f}")
    n_steps = sum(p["steps"] for p in parts.values())
    if n_steps:
        over = sum(p["step overhead"] + p["between steps"] for p in parts.values())
        print(f"  per step, overhead + the gap before the next step: {1000 * over / n_steps:.2f} ms over {int(n_steps)} steps")


if __name__ == "__main__":
    main()
