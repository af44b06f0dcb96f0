#!/usr/bin/env bash
# Greedy search wall time with prefix reuse against without (every candidate from layer 0), on
# a golden fixture model with its data repeated, in the same run; prints a Markdown table row.
#   scripts/bench-search.sh [build dir] [fixture] [data copies] [keep layers]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
fixture=${2:-dsv32_default}
copies=${3:-10}
keep=${4:-1}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for _ in $(seq "$copies"); do cat "tests/fixtures/golden/$fixture/data.jsonl"; done > "$work/data.jsonl"
run() {
  local start end
  start=$(date +%s.%N)
  "$build/indexcache-calibrate" --model "tests/fixtures/golden/$fixture" --data "$work/data.jsonl" \
    --keep-layers "$keep" --out "$work/$1.yaml" --quiet "${@:2}" > /dev/null
  end=$(date +%s.%N)
  echo "$end - $start" | bc
}
with=$(run reuse)
without=$(run naive --no-prefix-reuse)
forwards=$(grep -E "^  (layer_forwards|naive_layer_forwards):" "$work/reuse.yaml" | awk '{print $2}' | paste -sd' ')
cmp <(sed '/^volatile:/,$d;/layer_forwards/d' "$work/reuse.yaml") <(sed '/^volatile:/,$d;/layer_forwards/d' "$work/naive.yaml") \
  > /dev/null && same="identical plans" || same="PLANS DIFFER"
sequences=$(wc -l < "$work/data.jsonl")
printf '| %s, %s sequences, keep %s | %.2f s | %.2f s | %.2fx | %s (done / naive) | %s |\n' \
  "$fixture" "$sequences" "$keep" "$with" "$without" "$(echo "$without / $with" | bc -l)" "$forwards" "$same"
