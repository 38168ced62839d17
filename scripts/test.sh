#!/usr/bin/env bash
# Runs every test of the workspace on a fresh machine: installs what the tests need first.
#
# The SSH tests start real OpenSSH sshd processes on 127.0.0.1, so openssh-server must be
# installed; the become tests run the machine's real sudo, so sudo must be installed too (the
# tests fail with what to install otherwise, never skip). Run as root (CI does): the become tests
# then create their two test users and a sudoers drop-in themselves (crates/sluice-testfleet,
# sudo.rs); `script` (util-linux) gives the passphrase prompt and live display tests their
# terminal. The HTML review is tested in a real headless Chromium (Debian's `chromium`), its PDF
# read back with `pdftotext` (poppler-utils): tests/review_html.rs. The metrics file is checked by
# `promtool check metrics` (Debian's `prometheus` package; only its promtool is used):
# tests/metrics.rs. Man pages are rendered with groff (groff-base): tests/completions.rs. The
# PostgreSQL store's tests start throwaway clusters with Debian's `postgresql` server binaries
# (/usr/lib/postgresql/*/bin, run as the `postgres` user): crates/sluice-testpg.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
if ! command -v sshd >/dev/null 2>&1 && [ ! -x /usr/sbin/sshd ]; then
  missing+=(openssh-server)
fi
if [ ! -x /usr/bin/sudo ]; then
  missing+=(sudo)
fi
if ! command -v script >/dev/null 2>&1; then
  missing+=(util-linux)
fi
if ! command -v chromium >/dev/null 2>&1; then
  missing+=(chromium)
fi
if ! command -v pdftotext >/dev/null 2>&1; then
  missing+=(poppler-utils)
fi
if ! command -v groff >/dev/null 2>&1; then
  missing+=(groff-base)
fi
if ! command -v promtool >/dev/null 2>&1; then
  missing+=(prometheus)
fi
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  missing+=(postgresql)
fi
if [ "${#missing[@]}" -gt 0 ]; then
  echo "scripts/test.sh: installing ${missing[*]}" >&2
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  # Debian starts services on install; the tests start their own sshd, not the system's.
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# The differential inventory test (tests/inventory_ansible.rs) compares `sluice inventory list`
# with real Ansible: ansible-core from PyPI in a venv under target/, installed once (about 15 s).
venv=target/ansible-venv
if [ ! -x "$venv/bin/ansible-inventory" ]; then
  if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
    echo "scripts/test.sh: installing python3-venv" >&2
    SUDO=""
    [ "$(id -u)" = 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3 python3-venv >/dev/null
  fi
  echo "scripts/test.sh: installing ansible-core into $venv" >&2
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check 'ansible-core>=2.19,<2.20'
fi

cargo test --workspace --locked "$@"

# The SSH suites again with a channel and a login shell per command (`transport_mode: exec`)
# instead of each host's runner: both ways of running a host's commands must keep the same
# semantics. sluice-testfleet reads the variable (its inventories, the sluice-ssh test transport).
SLUICE_TEST_TRANSPORT_MODE=exec cargo test --locked "$@" \
  -p sluice-ssh --test ssh_become --test ssh_connect --test ssh_exec --test ssh_host_keys \
  --test ssh_hung --test ssh_liveness --test ssh_runner --test ssh_secrets \
  -p sluice-cli --test exec --test apply_fleet --test approvals --test audit_apply \
  --test host_text --test register_limit --test resume --test secrets --test check --test reboot_fleet --test backup --test host_lease --test confirm \
  --test workers --test workers_takeover --test workers_stages
