#!/usr/bin/env bash
# Regenerates docs/review-screenshot.png, the HTML review shown in docs/operations.md
# ("Reviewing a change"): the openssl playbook against the prod inventory, approved once, judged
# at a fixed moment so the picture does not change with the date. Needs Debian's `chromium`.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export TZ=Europe/Berlin SLUICE_STATE_DIR="$work/state"
cargo build --quiet
sluice=target/debug/sluice
"$sluice" plan playbooks/openssl-patch.yaml -i inventory/prod.yaml --out "$work/plan.json" \
  --review-out /dev/null 2>/dev/null
"$sluice" approve-plan "$work/plan.json" --by alice --comment "CAB 2026-11-02, item 4" >/dev/null
"$sluice" plan --from "$work/plan.json" --as-of 2026-11-01T00:00:00Z --format html \
  --review-out "$work/review.html" 2>/dev/null
chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync --hide-scrollbars \
  --user-data-dir="$work/profile" --window-size=1280,1900 \
  --screenshot="$PWD/docs/review-screenshot.png" "file://$work/review.html" 2>/dev/null
echo "wrote docs/review-screenshot.png"
