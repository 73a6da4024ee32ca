#!/usr/bin/env bash
# `check` over several traces, as ratios measured in one run:
#  1. wall time of `check --jobs 1` against `check --jobs N` (default: the online CPUs)
#     on 4 copies of a 10 M-event binary trace (powercut-bench gen), alternated, 3
#     rounds; the reports must be byte-identical;
#  2. peak RSS of `check --cuts` (text, JSON) and `--format junit` on 10^6 and 10^7
#     events, against plain `check` on the same trace (the streamed series and ops
#     keep it flat: ratio ~1).
# On a shared machine the scheduler groups a session's threads (autogroup): run it on
# idle cores, or under `chrt -f 1` for a few seconds, or the threads share one slice.
# Usage: Benchmarks/check-several.sh [path/to/powercut] [jobs]   (default: a release build)
set -euo pipefail
cd "$(dirname "$0")/.."
POWERCUT=${1:-}
JOBS=${2:-$(getconf _NPROCESSORS_ONLN)}
if [ -z "$POWERCUT" ]; then
    PATH="/opt/swift/usr/bin:$PATH" swift build -c release --product powercut --build-path .build-release >/dev/null
    POWERCUT=.build-release/release/powercut
fi
PATH="/opt/swift/usr/bin:$PATH" swift build -c release --package-path Benchmarks --product powercut-bench >/dev/null
BENCH=$(PATH="/opt/swift/usr/bin:$PATH" swift build -c release --package-path Benchmarks --show-bin-path)/powercut-bench
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
now() { date +%s.%N; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

"$BENCH" gen "$work/t1m.pctb" --events 1000000 >/dev/null
"$BENCH" gen "$work/t10m-1.pctb" --events 10000000 >/dev/null
for i in 2 3 4; do cp "$work/t10m-1.pctb" "$work/t10m-$i.pctb"; done
files=("$work"/t10m-[1-4].pctb)

echo "1. check on ${#files[@]} traces of 10 M events: --jobs 1 against --jobs $JOBS"
for round in 1 2 3; do
    s=$(now); "$POWERCUT" check --jobs 1 "${files[@]}" >"$work/seq.out" || true; seq=$(awk -v a="$s" -v b="$(now)" 'BEGIN { print b - a }')
    s=$(now); "$POWERCUT" check --jobs "$JOBS" "${files[@]}" >"$work/par.out" || true; par=$(awk -v a="$s" -v b="$(now)" 'BEGIN { print b - a }')
    cmp -s "$work/seq.out" "$work/par.out" || { echo "the reports differ"; exit 1; }
    printf '   round %d: %.2f s vs %.2f s: speed-up %s\n' "$round" "$seq" "$par" "$(ratio "$seq" "$par")"
done

echo "2. peak RSS, against plain check on the same trace"
rss() { /usr/bin/time -f %M "$POWERCUT" check "$@" 2>&1 >/dev/null | tail -1; }
for t in "$work/t1m.pctb" "${files[0]}"; do
    base=$(rss "$t")
    for opts in "--cuts" "--cuts --format json" "--format junit"; do
        # shellcheck disable=SC2086
        r=$(rss $opts "$t")
        printf '   %s %-22s %7d KiB vs %7d KiB: %s\n' "$(basename "$t")" "$opts" "$r" "$base" "$(ratio "$r" "$base")"
    done
done
