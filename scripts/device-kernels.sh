#!/usr/bin/env bash
# On the GPU machine (through the device tool), in one call: Release build for sm_90a of the GPU
# tests and the indexer benchmarks, then
#   1. SASS check: the score kernels must contain HGMMA (bf16) / QGMMA (fp8) instructions;
#   2. the GPU tests (kernels against their CPU references, golden fixtures on CUDA);
#   3. the indexer benchmark (bench/indexer_bench, docs/PERFORMANCE.md);
#   4. the precision-mode comparison on the golden fixtures (bench/indexer_modes);
#   5. compute-sanitizer memcheck and racecheck on the small [sanitize] test cases;
#   ncu (only when STEPS names it): Nsight Compute sections of the score kernel and the dense
#   select at 64 heads x 16K (logs ncu_*.log).
# Logs go to $OUT/kernels-logs.tar.gz; a short table is printed last.
#   scripts/device-kernels.sh                        (everything)
#   STEPS="tests bench" scripts/device-kernels.sh    (a subset; the build always runs, and is a
#                                                     no-op on a warm machine that built before)
# Environment: STEPS; DEADLINE (skip steps that would start after this many seconds);
# SANITIZE_FILTER (Catch2 filter, default [sanitize]); SANITIZER_TIMEOUT (s per tool, default
# 240: racecheck of the compaction cases needs more than 45 s); BENCH_ARGS (for indexer_bench);
# TEST_FILTER (Catch2 filter for the tests step).
# Needs .carry/pcre2 (scripts/carry-pcre2.sh), passed with the device tool's carry
# (carry [".carry/pcre2"]). A full run took 344 s on an H100 (build 50 s, tests 25 s, bench
# 40 s, the rest sanitizers and the precision modes).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/indexcache-out}
LOG=/tmp/indexcache-kernel-logs
rm -rf "$LOG"
mkdir -p "$OUT" "$LOG"
build_dir=${BUILD_DIR:-build-device}
started=$(date +%s)
elapsed() { echo $(($(date +%s) - started)); }
declare -A result
STEPS=${STEPS:-sass tests bench modes memcheck racecheck}
# DEADLINE (seconds since start): steps that would start later are skipped (device time).
want() {
  [[ " $STEPS " == *" $1 "* ]] || return 1
  if [ -n "${DEADLINE:-}" ] && [ "$(elapsed)" -ge "$DEADLINE" ]; then
    result[$1]="skipped (deadline)"
    return 1
  fi
}

finish() {
  tar czf "$OUT/kernels-logs.tar.gz" -C "$(dirname "$LOG")" "$(basename "$LOG")"
  [ -f "$LOG/bench.log" ] && cp "$LOG/bench.log" "$OUT/bench.log"
  echo
  echo "== device-kernels summary ($(elapsed) s)"
  cat "$LOG/device.txt"
  for step in build sass tests bench ncu modes memcheck racecheck; do
    printf '%-10s %s\n' "$step" "${result[$step]:-not run}"
  done
  if [ -f "$LOG/bench.log" ]; then
    echo
    sed -n '/^| heads/,$p' "$LOG/bench.log"
  fi
  if [ -f "$LOG/modes.log" ]; then
    echo
    cat "$LOG/modes.log"
  fi
}
trap finish EXIT

torch_prefix=$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')
{
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader
  nvcc --version | tail -1
} > "$LOG/device.txt" 2>&1

# --- build -----------------------------------------------------------------------------------
if [ ! -d .carry/pcre2 ]; then
  result[build]="FAILED: .carry/pcre2 missing (run scripts/carry-pcre2.sh and carry .carry)"
  exit 1
fi
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$torch_prefix" \
  -DPCRE2_ROOT="$PWD/.carry/pcre2" -DCMAKE_CUDA_ARCHITECTURES=90a -DINDEXCACHE_BUILD_TESTS=ON > "$LOG/configure.log" 2>&1 || {
  result[build]="FAILED (configure)"
  tail -30 "$LOG/configure.log"
  exit 1
}
if ! cmake --build "$build_dir" -j"$(nproc)" --target indexcache_gpu_tests indexer_bench indexer_modes \
  > "$LOG/build.log" 2>&1; then
  result[build]="FAILED"
  grep -E "error|Error" -A3 "$LOG/build.log" | head -60
  exit 1
fi
result[build]="ok ($(elapsed) s)"

# --- SASS --------------------------------------------------------------------------------------
sass_summary=""
want sass && for variant in bf16_d128 bf16_d64 fp8_d128; do
  object=$(find "$build_dir/kernels" -name "lightning_${variant}.cu.o" | head -1)
  if [ -n "$object" ]; then
    cuobjdump -sass "$object" > "$LOG/sass_${variant}.txt" 2>&1
    sass_summary+="$variant: HGMMA $(grep -c HGMMA "$LOG/sass_${variant}.txt") QGMMA $(grep -c QGMMA "$LOG/sass_${variant}.txt") LDL/STL $(grep -cE '\b(LDL|STL)\b' "$LOG/sass_${variant}.txt"); "
  fi
done
want sass && result[sass]="$sass_summary"

tests="$build_dir/tests/indexcache_gpu_tests"
export OMP_NUM_THREADS=8

# --- tests -------------------------------------------------------------------------------------
if want tests; then
  filter=${TEST_FILTER:-}
  timeout 240 "$tests" ${filter:+"$filter"} --durations yes > "$LOG/gpu_tests.log" 2>&1
  rc=$?
  result[tests]="rc=$rc: $(grep -E "test cases|All tests passed" "$LOG/gpu_tests.log" | tail -1)"
  grep -E "^(top-k|scores) " "$LOG/gpu_tests.log" > "$LOG/gpu_tests_cases.txt"
fi

# --- bench -------------------------------------------------------------------------------------
if want bench; then
  # shellcheck disable=SC2086
  timeout 300 "$build_dir/bench/indexer_bench" ${BENCH_ARGS:-} > "$LOG/bench.log" 2>&1
  result[bench]="rc=$? ($(elapsed) s elapsed)"
fi

# --- ncu: hardware counters of the bf16 score kernel (row max, 64 heads, 16K) and the dense
# select of the default top-k at the same shape (first launch of each) -----------------------
if want ncu; then
  # The first select launch only fills the rows t < k: profile the second (the scored rows).
  for kernel in lightning_kernel select_dense_rows; do
    skip=0
    [ "$kernel" = select_dense_rows ] && skip=1
    timeout 180 ncu --clock-control none --kernel-name "regex:$kernel" --launch-skip "$skip" --launch-count 1 \
      --section SpeedOfLight --section ComputeWorkloadAnalysis --section MemoryWorkloadAnalysis \
      --section WarpStateStats --section SchedulerStats --section Occupancy \
      "$build_dir/bench/indexer_bench" --tokens 16384 --heads 64 --no-eager --no-chunked \
      > "$LOG/ncu_$kernel.log" 2>&1
    result[ncu]+="$kernel rc=$?; "
  done
fi

# --- precision modes ---------------------------------------------------------------------------
if want modes; then
  timeout 120 "$build_dir/bench/indexer_modes" --device cuda --dtype fp32 > "$LOG/modes.log" 2>&1
  result[modes]="rc=$?"
fi

# --- sanitizers --------------------------------------------------------------------------------
for tool in memcheck racecheck; do
  if want $tool; then
    extra=()
    [ "$tool" = racecheck ] && extra=(--racecheck-report hazard)
    INDEXCACHE_SANITIZER=1 timeout "${SANITIZER_TIMEOUT:-240}" compute-sanitizer --tool "$tool" "${extra[@]}" --error-exitcode 9 \
      "$tests" "${SANITIZE_FILTER:-[sanitize]}" > "$LOG/$tool.log" 2>&1
    rc=$?
    result[$tool]="rc=$rc: $(grep -E "ERROR SUMMARY|RACECHECK SUMMARY" "$LOG/$tool.log" | tail -1) / $(grep -E "test cases|All tests passed" "$LOG/$tool.log" | tail -1)"
  fi
done
exit 0
