"""The reference rolling patch (WORKLOAD.md) as a pyinfra deploy.

bench/compare.py runs it once per wave: `pyinfra INVENTORY rolling_patch.py --limit WAVE
--parallel SIZE --fail-percent 0 -y`, the inventory (written per fleet) holding the groups
`canary`, `wave1` and `rest`. pyinfra runs operations in lockstep across the hosts of a wave.
"""

from pyinfra.operations import server

server.shell(name="pre-check", commands=['cat "$FLEET_ROOT/pkg/openssl"'])
server.shell(name="drain", commands=['echo draining > "$FLEET_ROOT/app/state"'])
server.shell(name="patch", commands=['sleep 0.2; echo 3.0.2 > "$FLEET_ROOT/pkg/openssl"'])
server.shell(name="restart", commands=['echo running > "$FLEET_ROOT/app/state"'])
server.shell(
    name="health check",
    commands=['grep -q ok "$FLEET_ROOT/app/healthy"'],
    _retries=2,
    _retry_delay=1,
)
