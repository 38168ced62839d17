#!/usr/bin/env bash
# The reference rolling patch (WORKLOAD.md) with plain OpenSSH: one connection per host per wave
# running the whole step sequence, all hosts of a wave at once (`xargs -P`, capped at 100).
#
# usage: rolling-patch-ssh.sh FLEET_DIR USER WAVE_FILE...
#   FLEET_DIR  the test fleet's directory (id_ed25519, known_hosts)
#   WAVE_FILE  one port per line, the hosts of a wave in order; waves run one after the other,
#              and the first wave with a failed host stops the run (exit 1).
set -u
fleet=$1 user=$2
shift 2
# Steps (a)-(d), then the health check: 3 attempts, 1 s apart. `set -e` stops at a failed step.
script='set -e
cat "$FLEET_ROOT/pkg/openssl"
echo draining > "$FLEET_ROOT/app/state"
sleep 0.2; echo 3.0.2 > "$FLEET_ROOT/pkg/openssl"
echo running > "$FLEET_ROOT/app/state"
for attempt in 1 2 3; do
  if grep -q ok "$FLEET_ROOT/app/healthy"; then exit 0; fi
  if [ $attempt -lt 3 ]; then sleep 1; fi
done
echo "health check failed on $FLEET_HOST" >&2
exit 1'
for wave in "$@"; do
  n=$(wc -l <"$wave")
  p=$((n < 100 ? n : 100))
  # `sh -c '... || exit 1'` keeps xargs going when ssh exits 255 (host unreachable): the other
  # hosts of the wave still finish, and xargs reports the failure with exit 123.
  if ! xargs -P "$p" -I{} sh -c 'ssh -i "$0/id_ed25519" -o UserKnownHostsFile="$0/known_hosts" \
        -o StrictHostKeyChecking=yes -o BatchMode=yes -p {} "$1@127.0.0.1" "$2" || exit 1' \
        "$fleet" "$user" "$script" <"$wave"; then
    echo "rolling-patch-ssh: wave $(basename "$wave") failed; later waves not started" >&2
    exit 1
  fi
done
