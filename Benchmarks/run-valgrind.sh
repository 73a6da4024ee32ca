#!/usr/bin/env bash
# Recording speed of `powercut run` (issue 10): 64 MiB through pmem_memcpy_persist in
# 4 KiB calls (Benchmarks/valgrind-copy.c), timed natively, under `valgrind --tool=none`
# and recorded by powercut's tool, all in this one run; prints the ratios. Then the
# whole `powercut run` (record + check). Usage: Benchmarks/run-valgrind.sh [POWERCUT]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
powercut="${1:-$root/.build/debug/powercut}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cc -O2 -g -o "$work/copy" "$root/Benchmarks/valgrind-copy.c" -lpmem
make -s -C "$root/ValgrindTool"
export PMEM_IS_PMEM_FORCE=1

now() { date +%s.%N; }
calc() { awk "BEGIN { print $1 }"; }
time_it() { # label, command...
    local label="$1"; shift
    rm -f "$work/pool"
    local t0 t1
    t0=$(now); "$@" >/dev/null 2>"$work/err" || { cat "$work/err" >&2; exit 70; }; t1=$(now)
    calc "$t1 - $t0"
}
native=$(time_it native "$work/copy" "$work/pool")
none=$(time_it none valgrind --tool=none "$work/copy" "$work/pool")
record=$(time_it record env VALGRIND_LIB="$root/ValgrindTool/build/lib" valgrind --tool=powercut \
    --events="$work/ev" --head="$work/hd" --notes="$work/notes" "$work/copy" "$work/pool")
size=$(( $(stat -c %s "$work/ev") + $(stat -c %s "$work/hd") ))
printf 'native               %7.2f s\n' "$native"
printf 'valgrind --tool=none %7.2f s  %6.1fx native\n' "$none" "$(calc "$none / $native")"
printf 'powercut recording   %7.2f s  %6.1fx native  %5.2fx --tool=none  (goal: within 10x)  trace %d MB\n' \
    "$record" "$(calc "$record / $native")" "$(calc "$record / $none")" $((size >> 20))
t0=$(now)
status=0
"$powercut" run -o "$work/t.pctb" -- "$work/copy" "$work/pool" >"$work/report" 2>&1 || status=$?
t1=$(now)
printf 'powercut run (record + check) %7.2f s, exit status %d: %s\n' "$(calc "$t1 - $t0")" "$status" \
    "$(tail -n 1 "$work/report")"

# Instructions per second against the in-process recorder on the same routine. The
# tool counts the instructions the program executes (--count-instructions=yes); the
# difference between a 64 MiB and a 0 MiB run is what the 16384 calls executed.
count() { # MiB
    rm -f "$work/pool"
    VALGRIND_LIB="$root/ValgrindTool/build/lib" valgrind --tool=powercut --count-instructions=yes \
        --events="$work/ev" --head="$work/hd" --notes="$work/notes" "$work/copy" "$work/pool" "$1" >/dev/null 2>&1
    awk '$1 == "info" && $2 == "instructions" { print $3 }' "$work/notes"
}
all=$(count 64)
setup=$(count 0)
per_call=$(calc "($all - $setup) / 16384")
cases=8
t0=$(now)
"$powercut" sweep --lib libpmem.so.1 --symbol pmem_memcpy_persist --contract persist --dst-offsets 0-$((cases - 1)) \
    --sizes 4096 --jobs 1 >/dev/null 2>&1 || true
t1=$(now)
inproc=$(calc "$per_call * $cases / ($t1 - $t0) / 1e6")
vgrate=$(calc "$all / $record / 1e6")
printf 'instructions: %.0f per 4 KiB call (%.1f M in the run)\n' "$per_call" "$(calc "$all / 1e6")"
printf 'in-process recorder (powercut sweep, %d calls) %8.3f M instructions/s\n' "$cases" "$inproc"
printf 'powercut recording under Valgrind           %8.1f M instructions/s  %8.0fx the in-process recorder (goal: 10000x)\n' \
    "$vgrate" "$(calc "$vgrate / $inproc")"
