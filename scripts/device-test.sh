#!/usr/bin/env bash
# On the GPU machine (through the device tool): Release build with CUDA against the Python
# package's libtorch, then the whole test suite (CPU and GPU tests). Logs go to $OUT.
#   scripts/device-test.sh [ctest regex]
# Needs .carry/pcre2 (scripts/carry-pcre2.sh on the Debian machine) passed with `carry`.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/indexcache-out}
mkdir -p "$OUT"
build_dir=${BUILD_DIR:-build-device}
torch_prefix=$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  nvcc --version | tail -1
} | tee "$OUT/device.txt"
start=$(date +%s)
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$torch_prefix" \
  -DPCRE2_ROOT="$PWD/.carry/pcre2" -DCMAKE_CUDA_ARCHITECTURES=90a -DINDEXCACHE_BUILD_TESTS=ON > "$OUT/configure.log" 2>&1 ||
  { tail -40 "$OUT/configure.log"; exit 1; }
cmake --build "$build_dir" -j"$(nproc)" > "$OUT/build.log" 2>&1 || { grep -E "error|Error" "$OUT/build.log" | head -40; exit 1; }
echo "build: $(( $(date +%s) - start )) s"
filter=()
[ $# -gt 0 ] && filter=(-R "$1")
OMP_NUM_THREADS=2 ctest --test-dir "$build_dir" -j8 --output-on-failure --timeout 900 "${filter[@]}" > "$OUT/ctest.log" 2>&1
status=$?
grep -E "tests passed|tests failed|Failed|\*\*\*" "$OUT/ctest.log" | tail -30
exit $status
