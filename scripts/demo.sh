#!/usr/bin/env bash
# The indexcache demo on a plain CPU: installs the Debian packages that are missing, builds, then
# runs the embedded default — the bundled tiny DSA model (models/tiny-dsa) calibrated on the
# bundled mixed calibration set (configs/mix-default.yaml: code, docs, legal, math):
#   1. indexcache-calibrate --keep 0.25   greedy search for the layers that keep their indexer,
#                                         writes the layer plan (YAML), a JSON summary and the
#                                         search report (plan-report/report.html);
#   2. indexcache-overlap                 the cross-layer top-k overlap report: JSON, CSV, SVG
#                                         heatmaps and overlap/report.html.
# Outputs go to demo-output/ (git-ignored). Usage:  scripts/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup-debian.sh

indexcache_install_missing_packages
indexcache_build build

out=demo-output
mkdir -p "$out"
echo
echo "== indexcache-calibrate: bundled tiny DSA model, bundled calibration mix, keep 1/4 of the indexers"
start=$(date +%s)
build/indexcache-calibrate --keep 0.25 --out "$out/plan.yaml" --json "$out/calibration.json"
echo "(calibration took $(( $(date +%s) - start )) s)"
echo
echo "== indexcache-overlap: cross-layer top-k overlap on the same data"
build/indexcache-overlap --out-dir "$out/overlap"
echo
echo "== the layer plan ($out/plan.yaml): the pattern and what serving stacks read"
grep -E '^(format|pattern|full_layers|kept|total):' "$out/plan.yaml"
sed -n '/^serving:/,/^[a-z#]/p' "$out/plan.yaml" | grep -v '^#' | grep -v '^volatile:'
echo
echo "Outputs:"
row() { printf '  %-30s %s\n' "$1" "$2"; }
row "$out/plan.yaml" "layer plan: pattern, search trajectory, uniform baselines, vLLM/SGLang flags"
row "$out/calibration.json" "search summary (JSON)"
row "$out/plan-report/report.html" "search report: loss vs indexers kept, pattern, per-domain loss, cost model"
row "$out/overlap/report.html" "overlap report: heatmaps per domain, adjacent overlap, per-layer table"
row "$out/overlap/overlap.json" "L x L top-k overlap matrices (JSON; CSV and SVG heatmaps next to it)"
echo "Open the reports in a browser (self-contained, no network), or render one to a PNG:"
echo "  scripts/render_report.sh $out/overlap/report.html overlap.png   (needs: apt-get install chromium)"
echo "Serve the pattern: build/indexcache-calibrate --plan $out/plan.yaml --export vllm   (or sglang, hf-config)"
