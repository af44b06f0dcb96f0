#!/usr/bin/env bash
# Sourced by scripts/test.sh and scripts/demo.sh: installs the Debian packages indexcache builds
# with, when any is missing. Uses sudo when not root. OpenBLAS is among them: without it
# libtorch runs on the reference BLAS, several times slower. libgloo-dev: the headers of libtorch's gloo
# backend, which the distributed search (lib/search/distributed.h) builds against.
INDEXCACHE_DEBIAN_PACKAGES=(cmake make g++ pkg-config ccache libtorch-dev libgloo-dev libopenblas0-pthread libcli11-dev libyaml-cpp-dev catch2
                            nlohmann-json3-dev libpcre2-dev)

indexcache_install_missing_packages() {
  local missing=()
  for package in "${INDEXCACHE_DEBIAN_PACKAGES[@]}" "$@"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "installing: ${missing[*]}" >&2
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -q >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
}

# Configures and builds into $1 (extra CMake arguments after it).
indexcache_build() {
  local build_dir=$1
  shift
  cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >&2
  cmake --build "$build_dir" -j"$(nproc)" >&2
}
