#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz/, clang with AddressSanitizer + UBSan) and runs each.
#   scripts/fuzz.sh                 every target for 60 s
#   scripts/fuzz.sh 600             every target for 600 s
#   scripts/fuzz.sh 60 tokenizer    only the named target(s)
#   FUZZ_RUNS=1000000 scripts/fuzz.sh   a fixed number of executions per target instead of a time
#   FUZZ_JOBS=2 scripts/fuzz.sh 600     that many fuzzing processes per target (libFuzzer -fork)
#   FUZZ_BUILD_DIR=build-x scripts/fuzz.sh   build and work in another folder (default build-fuzz)
# Each target's summary line gives its executions and peak resident memory (libFuzzer's
# stat::peak_rss_mb; in -fork mode the largest "rss:" any status line reported).
# Inputs: the committed seeds (tests/fuzz/corpus/<target>/) and the crashes already fixed
# (tests/fuzz/regressions/<target>/, replayed first); what a run discovers goes to
# build-fuzz/corpus/<target>/, crashes to build-fuzz/artifacts/<target>/. A crash, leak, hang
# (over 10 s for one input) or an input over 2 GB of memory fails the script.
# Found a crash? Fix it, copy the input to tests/fuzz/regressions/<target>/ (the Catch2 suite
# replays that folder too: tests/test_fuzz_replay.cpp).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(safetensors model_config tokenizer layer_plan journal calibration_data)

compiler=${FUZZ_CXX:-$(command -v clang++ || command -v clang++-14 || true)}
if [ -z "$compiler" ]; then
  echo "fuzz.sh: clang++ not found (Debian: apt-get install clang libclang-rt-14-dev)" >&2
  exit 2
fi
probe=$(mktemp -d)
trap 'rm -rf "$probe"' EXIT
echo 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long) { return 0; }' >"$probe/probe.cpp"
if ! "$compiler" -fsanitize=fuzzer,address,undefined "$probe/probe.cpp" -o "$probe/probe" 2>"$probe/log"; then
  echo "fuzz.sh: $compiler cannot build libFuzzer targets (install libclang-rt-<version>-dev):" >&2
  cat "$probe/log" >&2
  exit 2
fi

build=${FUZZ_BUILD_DIR:-build-fuzz}
cmake -S tests/fuzz -B "$build" -DCMAKE_CXX_COMPILER="$compiler" >/dev/null
cmake --build "$build" -j"${FUZZ_BUILD_JOBS:-$(nproc)}" >/dev/null

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
summary=()
failed=0
for target in "${targets[@]}"; do
  binary=$build/fuzz_$target
  seeds=tests/fuzz/corpus/$target
  regressions=tests/fuzz/regressions/$target
  work=$build/corpus/$target
  artifacts=$build/artifacts/$target/
  mkdir -p "$work" "$artifacts"
  log=$build/fuzz_$target.log
  if [ -d "$regressions" ] && [ -n "$(ls -A "$regressions")" ]; then
    if ! "$binary" -runs=0 "$regressions" >"$log.regressions" 2>&1; then
      echo "fuzz.sh: $target: a fixed crash is back (see $log.regressions)" >&2
      failed=1
      summary+=("$target: REGRESSION")
      continue
    fi
  fi
  limit=(-max_total_time="$seconds")
  [ -n "${FUZZ_RUNS:-}" ] && limit=(-runs="$FUZZ_RUNS")
  parallel=()
  [ -n "${FUZZ_JOBS:-}" ] && parallel=(-fork="$FUZZ_JOBS")
  echo "fuzz.sh: $target (${limit[*]} ${parallel[*]})" >&2
  status=0
  "$binary" "${limit[@]}" "${parallel[@]}" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$artifacts" "$work" "$seeds" >"$log" 2>&1 || status=$?
  # Executions: the final stats of a single process, or the fork supervisor's last line.
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1 || true)
  [ -z "$runs" ] && runs=$(grep -o '^#[0-9]*' "$log" | tail -1 | tr -d '#' || true)
  rss=$(grep -o 'stat::peak_rss_mb: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1 || true)
  [ -z "$rss" ] && rss=$(grep -o 'rss: [0-9]*Mb' "$log" | grep -o '[0-9]*' | sort -n | tail -1 || true)
  if [ "$status" -ne 0 ]; then
    failed=1
    summary+=("$target: FAILED after ${runs:-?} executions, peak RSS ${rss:-?} MB (log $log, inputs in $artifacts)")
    grep -E "ERROR|violated|SUMMARY|Test unit written" "$log" | head -5 >&2 || true
  else
    summary+=("$target: ok, ${runs:-?} executions, peak RSS ${rss:-?} MB")
  fi
done
printf '%s\n' "${summary[@]}"
exit "$failed"
