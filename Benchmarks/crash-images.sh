#!/usr/bin/env bash
# Crash-image checking speed, as ratios measured in one run:
#  1. a shared-library checker on a 4 KiB pool (a 4 KiB non-temporal copy before its
#     fence: 2^510 images, checked up to --max-images), images per second on 2 workers,
#     against the same images through a command checker;
#  2. a command checker against the same command in a plain shell loop over the same
#     images, ready-made as files;
#  3. peak memory with 10x more images (flat: ratio ~1);
#  4. with a second binary (a baseline), both checkers again on both binaries,
#     interleaved over ROUNDS rounds (default 3), best of each: the ratio of images per
#     second in wall-clock time and in CPU time (user + system of the whole run, workers
#     included; steadier on a shared machine).
# Usage: Benchmarks/crash-images.sh [path/to/powercut [path/to/baseline-powercut]]
#        (default: a release build, no baseline). LIB_IMAGES and CMD_IMAGES (default
#        1000000 and 2000) set the images per run.
set -euo pipefail
cd "$(dirname "$0")/.."
POWERCUT=${1:-}
BASELINE=${2:-}
if [ -z "$POWERCUT" ]; then
    PATH="/opt/swift/usr/bin:$PATH" swift build -c release --product powercut --build-path .build-release >/dev/null
    POWERCUT=.build-release/release/powercut
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
now() { date +%s.%N; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

# A 4 KiB pool: 512 non-temporal 8-byte stores, a fence, then a commit word.
{
    echo "powercut-trace 1"
    echo "pmem 0x10000 0x1000 name=pool"
    for i in $(seq 0 511); do
        printf 'ntstore 0x%x 8 data=%s\n' $((0x10000 + i * 8)) "$(printf '%02x' $(((i * 7 + 1) & 255)) | sed 's/.*/&&&&&&&&/')"
    done
    echo "sfence"
    echo "store 0x10000 8 data=0100000000000000"
    echo "clwb 0x10000"
    echo "sfence"
} > "$work/pool.pct"
# A checker that reads the whole pool, as recovery code would.
cat > "$work/check.c" <<'C'
#include <stddef.h>
#include <stdint.h>
int check(const void *const images[], const size_t lengths[], size_t count) {
    const uint64_t *p = images[0];
    uint64_t sum = 0;
    for (size_t i = 0; i < lengths[0] / 8; i++) sum += p[i];
    return sum == 12345;
}
C
cc -O2 -shared -fPIC -o "$work/libcheck.so" "$work/check.c"
cat > "$work/check.sh" <<'SH'
[ "$(wc -c < "$1")" -eq 4096 ]
SH

lib_images=${LIB_IMAGES:-1000000}
t0=$(now)
"$POWERCUT" crash "$work/pool.pct" --check-lib "$work/libcheck.so" --check-fn check --jobs 2 --max-images $lib_images > "$work/lib.out"
t1=$(now)
lib_rate=$(awk -v n=$lib_images -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", n / (b - a) }')

# The command checker on 2000 of the same images, and a shell loop over them as files.
cmd_images=${CMD_IMAGES:-2000}
"$POWERCUT" crash "$work/pool.pct" --check-cmd false --report-all --max-images $cmd_images --save-images "$work/images" > /dev/null || true
ls "$work/images" | head -n $cmd_images > "$work/list"
t0=$(now)
while read -r f; do sh "$work/check.sh" "$work/images/$f" || true; done < "$work/list"
t1=$(now)
loop_rate=$(awk -v n="$(wc -l < "$work/list")" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", n / (b - a) }')
t0=$(now)
"$POWERCUT" crash "$work/pool.pct" --check-cmd "sh $work/check.sh" --jobs 2 --max-images $cmd_images > /dev/null
t1=$(now)
cmd_rate=$(awk -v n=$cmd_images -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", n / (b - a) }')

# Peak memory at 100,000 and at 1,000,000 images.
small=$( { /usr/bin/time -f %M "$POWERCUT" crash "$work/pool.pct" --check-lib "$work/libcheck.so" --check-fn check --jobs 2 --max-images 100000 > /dev/null; } 2>&1 | tail -n 1)
large=$( { /usr/bin/time -f %M "$POWERCUT" crash "$work/pool.pct" --check-lib "$work/libcheck.so" --check-fn check --jobs 2 --max-images 1000000 > /dev/null; } 2>&1 | tail -n 1)

echo "library checker, 4 KiB pool, 2 workers: $lib_rate images/s ($(ratio "$lib_rate" "$cmd_rate")x the command checker; goal >= 100000/s)"
echo "command checker: $cmd_rate images/s; plain shell loop over image files: $loop_rate images/s; ratio $(ratio "$cmd_rate" "$loop_rate")x (goal >= 2x)"
echo "peak memory: $small KB at 100000 images, $large KB at 1000000: ratio $(ratio "$large" "$small")x (goal: flat)"

[ -n "$BASELINE" ] || exit 0
# Seconds of wall-clock and CPU time (user + system, children included) of one run.
timed() { /usr/bin/time -f "%e %U %S" "$@" 2>&1 >/dev/null | tail -n 1 | awk '{ printf "%s %.2f\n", $1, $2 + $3 }'; }
best() { sort -n | head -n 1; }
: > "$work/ab"
for round in $(seq "${ROUNDS:-3}"); do
    for which in new base; do
        bin=$POWERCUT; [ "$which" = base ] && bin=$BASELINE
        read -r w c < <(timed "$bin" crash "$work/pool.pct" --check-lib "$work/libcheck.so" --check-fn check --jobs 2 --max-images $lib_images)
        echo "lib $which $w $c" >> "$work/ab"
        read -r w c < <(timed "$bin" crash "$work/pool.pct" --check-cmd "sh $work/check.sh" --jobs 2 --max-images $cmd_images)
        echo "cmd $which $w $c" >> "$work/ab"
    done
done
for kind in lib cmd; do
    for col in 3 4; do
        new=$(awk -v k=$kind -v c=$col '$1 == k && $2 == "new" { print $c }' "$work/ab" | best)
        base=$(awk -v k=$kind -v c=$col '$1 == k && $2 == "base" { print $c }' "$work/ab" | best)
        eval "${kind}_${col}_new=$new ${kind}_${col}_base=$base"
    done
done
echo "against the baseline (best of ${ROUNDS:-3}, images/s new / baseline; >1 is faster):"
echo "  library checker: wall $(ratio "$lib_3_base" "$lib_3_new")x ($lib_3_new s vs $lib_3_base s), cpu $(ratio "$lib_4_base" "$lib_4_new")x ($lib_4_new s vs $lib_4_base s)"
echo "  command checker: wall $(ratio "$cmd_3_base" "$cmd_3_new")x ($cmd_3_new s vs $cmd_3_base s), cpu $(ratio "$cmd_4_base" "$cmd_4_new")x ($cmd_4_new s vs $cmd_4_base s)"
