#!/usr/bin/env bash
# On the GPU machine (device tool, carry [".carry"]): where one decoder layer's time goes on the
# DeepSeek-V3.2-dimension bench model (scripts/make_bench_model.py). bench/layer_bench times an
# MoE layer at each length with eager and sparse attention and writes a Kineto trace of one more
# forward; scripts/trace_summary.py attributes the kernels to the layer's stages. Then, if
# SEARCH_FLAGS is set, our search with those extra flags (e.g. "--attention sparse").
# Traces and summaries go to $OUT/profile.tar.gz; the summaries are printed.
#   scripts/device-profile-layer.sh [tokens,...]      (default 4096,32768)
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/indexcache-out}
LOG=/tmp/indexcache-profile
rm -rf "$LOG"
mkdir -p "$OUT" "$LOG"
lengths=${1:-4096,32768}
model=build-device/bench-v32-12-16-4-4096
trap 'tar czf "$OUT/profile.tar.gz" -C /tmp "$(basename "$LOG")"' EXIT
torch_prefix=$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')
cmake -S . -B build-device -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$torch_prefix" \
  -DPCRE2_ROOT="$PWD/.carry/pcre2" -DCMAKE_CUDA_ARCHITECTURES=90a > "$LOG/configure.log" 2>&1
cmake --build build-device -j"$(nproc)" --target indexcache-calibrate layer_bench > "$LOG/build.log" 2>&1 ||
  { grep -E "error" -A3 "$LOG/build.log" | head -30; exit 1; }
[ -f "$model/data.jsonl" ] || python3 scripts/make_bench_model.py --out "$model" > "$LOG/model.log" 2>&1 ||
  { tail -5 "$LOG/model.log"; exit 1; }
for attention in sparse eager; do
  timeout 200 build-device/bench/layer_bench "$model" --device cuda --dtype bf16 --layer 3 --attention "$attention" \
    --tokens "$lengths" --trace "$LOG/trace-$attention" 2>&1 | tee "$LOG/layer-$attention.txt"
  for trace in "$LOG"/trace-"$attention"-*.json; do
    python3 scripts/trace_summary.py "$trace" > "${trace%.json}.summary.txt" 2>&1
    cat "${trace%.json}.summary.txt"
  done
done
if [ -n "${SEARCH_FLAGS:-}" ]; then
  start=$(date +%s.%N)
  # shellcheck disable=SC2086
  build-device/indexcache-calibrate --model "$model" --data "$model/data.jsonl" --keep-layers 9 --device cuda \
    --dtype bf16 --no-report --out "$LOG/search.yaml" $SEARCH_FLAGS > "$LOG/search.log" 2>&1
  echo "search ($SEARCH_FLAGS): rc=$? in $(python3 -c "import time; print(round(time.time() - $start, 1))") s"
  grep -E "^(pattern|loss|work)" "$LOG/search.log"
fi
