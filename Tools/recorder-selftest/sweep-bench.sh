#!/usr/bin/env bash
# Per-case overhead of a sweep, block stepping off (every instruction trapped) against
# on, measured in one run: the same binary, the same grid, alternating.
# Usage: Tools/recorder-selftest/sweep-bench.sh [POWERCUT] [SUBJECT] [ROUNDS] [-- SWEEP ARGS]
#   default: .build/release/powercut, memcpy_flushcache, 1 round, the default grid.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
bin="${1:-$root/.build/release/powercut}"
subject="${2:-memcpy_flushcache}"
rounds="${3:-1}"
shift $(( $# < 3 ? $# : 3 )) || true
[ "${1:-}" = "--" ] && shift
extra=("$@")
[ -x "$bin" ] || { echo "sweep-bench: no $bin (swift build -c release)" >&2; exit 70; }
run() { # $1 = POWERCUT_BLOCK_STEP value; prints "wall-seconds instructions"
    local t0 t1 line
    t0=$(date +%s.%N)
    line=$(POWERCUT_BLOCK_STEP="$1" "$bin" sweep "$subject" --quiet "${extra[@]}" | tail -n 1)
    t1=$(date +%s.%N)
    echo "$(echo "$t1 - $t0" | bc -l) $(echo "$line" | sed -n 's/.*(\([0-9]*\) instructions.*/\1/p')"
}
echo "sweep-bench: $subject ${extra[*]:-(default grid)}, $rounds round(s), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
old_total=0; new_total=0
for r in $(seq "$rounds"); do
    read -r old oi < <(run 0)
    read -r new ni < <(run 1)
    printf "  round %d: every instruction trapped %.1f s, block stepping %.1f s (%s instructions both: %s)\n" \
        "$r" "$old" "$new" "$ni" "$([ "$oi" = "$ni" ] && echo same || echo "DIFFER: $oi")"
    old_total=$(echo "$old_total + $old" | bc -l); new_total=$(echo "$new_total + $new" | bc -l)
done
printf "sweep-bench: wall %.1f s -> %.1f s, ratio %.2f\n" "$old_total" "$new_total" "$(echo "$new_total / $old_total" | bc -l)"
