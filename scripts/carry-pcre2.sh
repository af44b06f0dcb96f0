#!/usr/bin/env bash
# The GPU machine (Ubuntu 24.04) has PCRE2's runtime library but not its headers. This copies
# Debian's pcre2.h and static libpcre2-8.a into .carry/pcre2 (git-ignored), which the device
# scripts pass to CMake as PCRE2_ROOT. Run on the Debian machine before a device run.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .carry/pcre2/include .carry/pcre2/lib
cp /usr/include/pcre2.h .carry/pcre2/include/
cp /usr/lib/x86_64-linux-gnu/libpcre2-8.a .carry/pcre2/lib/
echo ".carry/pcre2: $(du -sh .carry/pcre2 | cut -f1)"
