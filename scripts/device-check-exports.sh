#!/usr/bin/env bash
# Issue 20 on the GPU machine (through the device tool): loads each exported model directory in
# transformers and checks its loss against the plan's. Make the cases first, on the Debian
# machine: scripts/prepare-export-check.sh, then run this with carry [".export-check"].
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/indexcache-out}
mkdir -p "$OUT"
[ -d .export-check ] || { echo "error: .export-check is missing: run scripts/prepare-export-check.sh and carry it" >&2; exit 2; }
PYTHONUNBUFFERED=1 python3 scripts/check_export_transformers.py .export-check --json "$OUT/export-check.json" 2>&1 |
  grep -v "Warning\|warn(" | tee "$OUT/export-check.log"
exit "${PIPESTATUS[0]}"
