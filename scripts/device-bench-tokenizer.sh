#!/usr/bin/env bash
# On the GPU machine (through the device tool; carry [".carry"] from scripts/carry-pcre2.sh):
# single-thread tokenizer throughput, ours against the `tokenizers` library, on the same golden
# sets (tests/fixtures/tokenizer/*: the same documents) in the same run, both pinned to one core.
# Prints MB/s (first pass and best of 5) for each set; the figures go to docs/PERFORMANCE.md.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/indexcache-out}
mkdir -p "$OUT"
torch_prefix=$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')
cmake -S . -B build-device -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$torch_prefix" \
  -DPCRE2_ROOT="$PWD/.carry/pcre2" -DCMAKE_CUDA_ARCHITECTURES=90a -DINDEXCACHE_BUILD_TESTS=OFF > "$OUT/configure.log" 2>&1
cmake --build build-device -j"$(nproc)" --target tokenizer_bench > "$OUT/build.log" 2>&1 || { tail -30 "$OUT/build.log"; exit 1; }
lscpu | grep -m1 "Model name" | tee "$OUT/bench-tokenizer.txt"
export RAYON_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false OMP_NUM_THREADS=1
taskset -c 2 python3 scripts/make_tokenizer_golden.py --bench-only --out tests/fixtures/tokenizer 2>&1 | tee -a "$OUT/bench-tokenizer.txt"
for set in tests/fixtures/tokenizer/*/; do
  echo "indexcache $(basename "$set"): $(taskset -c 2 build-device/bench/tokenizer_bench "$set" 5 | tail -1)" | tee -a "$OUT/bench-tokenizer.txt"
done
