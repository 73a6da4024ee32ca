#!/bin/sh
# Builds the subjects self-test with ${CC:-cc} ${CFLAGS:--O2} and runs it with the CPUID choice of write-back, then with each one forced.
set -eu; here=$(cd "$(dirname "$0")" && pwd); src="$here/../../Sources/CPowercutSubjects"; bin=$(mktemp "${TMPDIR:-/tmp}/subjects-selftest.XXXXXX"); trap 'rm -f "$bin"' EXIT; ${CC:-cc} ${CFLAGS:--O2} -Wall -Wextra -Werror -I"$src/include" "$here/selftest.c" "$src"/*.c -o "$bin"; env -u POWERCUT_WRITEBACK "$bin"; for wb in clwb clflushopt clflush; do POWERCUT_WRITEBACK=$wb "$bin"; done
