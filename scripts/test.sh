#!/usr/bin/env bash
# Installs what is missing, builds, and runs the CPU test suite through ctest.
#   scripts/test.sh              the suite (build/)
#   scripts/test.sh --sanitize   the suite built with AddressSanitizer + UBSan (build-sanitize/)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup-debian.sh

build_dir=build
cmake_arguments=()
if [ "${1:-}" = "--sanitize" ]; then
  build_dir=build-sanitize
  cmake_arguments+=(-DINDEXCACHE_SANITIZE=ON)
  # libtorch's own allocations are not ours to police; report only our leaks and errors.
  export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:detect_odr_violation=0}
  export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
fi

indexcache_install_missing_packages
indexcache_build "$build_dir" "${cmake_arguments[@]}"
ctest --test-dir "$build_dir" -j"$(nproc)" --output-on-failure --label-exclude gpu --timeout 1200
