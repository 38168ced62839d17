#!/usr/bin/env bash
# Runs every test of the workspace on a fresh machine: installs what the tests need first.
#
# The SSH tests start real OpenSSH sshd processes on 127.0.0.1, so openssh-server must be
# installed (the test fleet fails with "install openssh-server" otherwise, never skips).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v sshd >/dev/null 2>&1 && [ ! -x /usr/sbin/sshd ]; then
  echo "scripts/test.sh: sshd not found, installing openssh-server" >&2
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  # Debian starts services on install; the tests start their own sshd, not the system's.
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq openssh-server >/dev/null
fi

cargo test --workspace --locked "$@"
