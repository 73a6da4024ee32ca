#!/usr/bin/env bash
# Builds the recorder's C core with the self-test and runs it.
# Usage: Tools/recorder-selftest/run.sh [--no-bench | --bench-rounds N]   (CC=clang to use clang)
# The benchmark (default 2 rounds of ~1M single-steps x 3 runs) takes 1-3 minutes.
# Needs: libcapstone-dev, libunwind-dev; libpmem1 and binutils (objdump) for some checks.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
src="$root/Sources/CPowercutRecorder"
out="${TMPDIR:-/tmp}/powercut-recorder-selftest.$$"
mkdir -p "$out"
trap 'rm -rf "$out"' EXIT
"${CC:-cc}" -std=gnu11 -O2 -g -Wall -Wextra -Wno-unused-parameter -rdynamic -Wl,--build-id \
    -I"$src/include" -I"$root/Sources/CPowercutEncoder/include" -o "$out/recorder-selftest" \
    "$here/selftest.c" "$src"/*.c "$root/Sources/CPowercutEncoder"/*.c \
    -lcapstone -lunwind -lunwind-x86_64 -ldl
"$out/recorder-selftest" "$@"
