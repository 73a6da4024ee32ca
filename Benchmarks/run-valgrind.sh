#!/usr/bin/env bash
# Recording speed of `powercut run` (issue 10), every figure against baselines measured
# in this one run. The workload (Benchmarks/valgrind-copy.c): MIB MiB (default 128)
# through libpmem's pmem_memcpy_persist in 4 KiB calls into a 4 MiB pool file.
#
#   Benchmarks/run-valgrind.sh [POWERCUT]     (default: .build/release/powercut if built)
#   MIB=256 REPS=5 CALLS=400 SS_CALLS=100 Benchmarks/run-valgrind.sh
#
# 1. Instructions: counted by `valgrind --tool=lackey --basic-counts=yes` (an
#    independent count, not our tool's), for the MIB run and for a 0 MiB run (start-up:
#    ld.so, libc, libpmem, the pool); their difference is the copy loop's, per call too.
# 2. Times (best of REPS): native, `valgrind --tool=none`, and powercut's tool with
#    `powercut run`'s options (the trace written), each as the whole run's wall clock and
#    CPU time (user + system), and as the copy loop's own wall and CPU time, which the
#    program measures itself (getrusage: under Valgrind, the tool's work is in it). The
#    loop is what instructions per second are computed on: start-up and exit left out.
# 3. `powercut run -o TRACE` end to end (record, assemble, check), and `powercut check
#    TRACE` of the same trace on its own.
# 4. The in-process recorder (Benchmarks/valgrind-inprocess.c, built on the recorder's C
#    sources) records CALLS calls of the same routine with the bytes of every store
#    (block stepping, the default), then SS_CALLS calls with POWERCUT_BLOCK_STEP=0 (a trap
#    per instruction); its instruction count is its own (each instruction it decoded),
#    its times those of the recorded calls alone.
#
# The code path: native code and the in-process recorder see the CPU's own CPUID, Valgrind
# a synthetic one without clwb and clflushopt. PMEM_NO_CLWB=1 PMEM_NO_CLFLUSHOPT=1 make
# libpmem pick clflush everywhere, so all runs execute the same instructions: AVX2
# non-temporal stores (32 bytes each; 4 KiB is above libpmem's movnt threshold) and an
# sfence per call. The per-call counts of steps 1 and 4 are printed side by side.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
powercut="${1:-}"
if [ -z "$powercut" ]; then
    powercut="$root/.build/release/powercut"
    [ -x "$powercut" ] || powercut="$root/.build/debug/powercut"
fi
mib="${MIB:-128}" reps="${REPS:-3}" calls="${CALLS:-400}" ss_calls="${SS_CALLS:-100}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
export PMEM_IS_PMEM_FORCE=1 PMEM_NO_CLWB=1 PMEM_NO_CLFLUSHOPT=1

cc -O2 -g -o "$work/copy" "$root/Benchmarks/valgrind-copy.c" -lpmem
rec="$root/Sources/CPowercutRecorder" enc="$root/Sources/CPowercutEncoder"
cc -O2 -g -std=gnu11 -I"$rec/include" -I"$enc/include" -o "$work/inprocess" "$root/Benchmarks/valgrind-inprocess.c" \
    "$rec/pc_recorder.c" "$rec/pc_decode.c" "$rec/pc_trace.c" "$enc/pc_encoder.c" \
    -lpmem -lcapstone -lunwind -lunwind-x86_64 -ldl
make -s -C "$root/ValgrindTool"
tool=(env VALGRIND_LIB="$root/ValgrindTool/build/lib" valgrind --tool=powercut --events="$work/ev" --head="$work/hd"
      --notes="$work/notes" --check-at-release=yes --trace-children=yes)

calc() { awk "BEGIN { print $1 }"; }
min() { calc "$1 < $2 ? $1 : $2"; }
# best "WALL CPU LOOPWALL LOOPCPU LOOPUSER LOOPSYSTEM" of $reps runs (pool and trace files fresh each time)
best() {
    local w=1e9 c=1e9 lw=1e9 lc=1e9 lu=0 ls=0 i tw tu ts x l y u z v
    for ((i = 0; i < reps; i++)); do
        rm -f "$work/pool" "$work"/ev.* "$work"/hd.* "$work"/notes.*
        /usr/bin/time -f '%e %U %S' -o "$work/time" "$@" "$work/copy" "$work/pool" "$mib" times >/dev/null 2>"$work/err" ||
            { cat "$work/err" >&2; exit 70; }
        read -r tw tu ts <"$work/time"
        read -r x l y u z v < <(grep '^loop-seconds' "$work/err")
        w=$(min "$tw" "$w") c=$(min "$(calc "$tu + $ts")" "$c") lw=$(min "$l" "$lw")
        if [ "$(calc "$u + $v < $lc")" = 1 ]; then lc=$(calc "$u + $v") lu=$u ls=$v; fi
    done
    echo "$w $c $lw $lc $lu $ls"
}
lackey() { # MiB -> guest instructions
    rm -f "$work/pool"
    valgrind --tool=lackey --basic-counts=yes "$work/copy" "$work/pool" "$1" 2>&1 >/dev/null |
        awk '/guest instrs:/ { gsub(",", "", $NF); print $NF }'
}

ncalls=$((mib * 256))
echo "# $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)," \
    "load average $(cut -d' ' -f1-3 /proc/loadavg), $(valgrind --version)"
echo "# $mib MiB through pmem_memcpy_persist in 4 KiB calls ($ncalls calls); best of $reps; $powercut"

i_all=$(lackey "$mib")
i_zero=$(lackey 0)
i_copy=$((i_all - i_zero))
printf 'instructions (lackey): %d in the run, %d of them start-up and exit (0 MiB run), %.1f per call\n' \
    "$i_all" "$i_zero" "$(calc "$i_copy / $ncalls")"

best >"$work/native"
best valgrind --tool=none >"$work/none"
best "${tool[@]}" >"$work/tool"
read -r nat_w nat_c nat_lw nat_lc _ _ <"$work/native"
read -r none_w none_c none_lw none_lc _ _ <"$work/none"
read -r rec_w rec_c rec_lw rec_lc rec_lu rec_ls <"$work/tool"
size=$(( $(stat -c %s "$work"/ev.*) + $(stat -c %s "$work"/hd.*) ))

mips() { calc "$i_copy / $1 / 1e6"; }
printf '\n%-32s %8s %8s %10s %10s %11s %11s\n' "" "run wall" "run CPU" "loop wall" "loop CPU" "M insn/s" "(loop CPU)"
row() { printf '%-32s %7.2fs %7.2fs %9.3fs %9.3fs %11.1f %11.1f\n' "$1" "$2" "$3" "$4" "$5" "$(mips "$4")" "$(mips "$5")"; }
row native "$nat_w" "$nat_c" "$nat_lw" "$nat_lc"
row "valgrind --tool=none" "$none_w" "$none_c" "$none_lw" "$none_lc"
row "powercut's tool, trace written" "$rec_w" "$rec_c" "$rec_lw" "$rec_lc"
printf '(the tool'"'"'s loop CPU: %.3f s user, %.3f s system, the system part mostly writing the trace)\n' "$rec_lu" "$rec_ls"
printf 'recording / --tool=none: run %.2fx wall, %.2fx CPU; loop %.2fx wall, %.2fx CPU (goal: within 10x); trace %d MB\n' \
    "$(calc "$rec_w / $none_w")" "$(calc "$rec_c / $none_c")" "$(calc "$rec_lw / $none_lw")" "$(calc "$rec_lc / $none_lc")" \
    $((size / 1000000))
printf 'whole run, Valgrind start-up included: the tool %.1f M insn/s (all %d instructions over the run'"'"'s CPU time)\n' \
    "$(calc "$i_all / $rec_c / 1e6")" "$i_all"
# The floor of any recorder that writes the trace: writing that many bytes into this
# folder, 4 MiB at a time as the tool does (dd, best of $reps, CPU time).
dd_c=1e9
for ((i = 0; i < reps; i++)); do
    rm -f "$work/dd"
    /usr/bin/time -f '%U %S' -o "$work/time" dd if=/dev/zero of="$work/dd" bs=4M count=$((size / 4194304 + 1)) 2>/dev/null
    read -r du ds <"$work/time"
    dd_c=$(min "$(calc "$du + $ds")" "$dd_c")
done
rm -f "$work/dd"
printf 'writing %d MB with dd: %.3f s CPU; --tool=none loop + that write: %.1f M insn/s, the most a recorder that writes this trace can reach\n' \
    $((size / 1000000)) "$dd_c" "$(mips "$(calc "$none_lc + $dd_c")")"

rm -f "$work/pool"
status=0
/usr/bin/time -f '%e %U %S' -o "$work/time" "$powercut" run -o "$work/t.pctb" -- "$work/copy" "$work/pool" "$mib" \
    >"$work/report" 2>&1 || status=$?
read -r run_w run_u run_s <"$work/time"
printf '\npowercut run (record + assemble + check): %.2f s wall, %.2f s CPU, exit status %d: %s\n' \
    "$run_w" "$(calc "$run_u + $run_s")" "$status" "$(grep -m1 -E 'error|0 errors' "$work/report" || tail -n 1 "$work/report")"
/usr/bin/time -f '%e %U %S' -o "$work/time" "$powercut" check "$work/t.pctb" >/dev/null 2>&1 || true
read -r chk_w chk_u chk_s <"$work/time"
printf 'powercut check of that trace alone:       %.2f s wall, %.2f s CPU\n' "$chk_w" "$(calc "$chk_u + $chk_s")"

inproc() { # calls, env... -> "instructions wall cpu"
    local n="$1"; shift
    rm -f "$work/pool"
    env "$@" "$work/inprocess" "$work/pool" "$n" >"$work/inproc" || { echo "in-process recorder failed" >&2; exit 70; }
    awk '{ for (i = 1; i < NF; i += 2) v[$i] = $(i + 1); print v["instructions"], v["seconds"], v["cpu-seconds"] }' "$work/inproc"
}
inproc "$calls" POWERCUT_BLOCK_STEP=1 >"$work/block"
inproc "$ss_calls" POWERCUT_BLOCK_STEP=0 >"$work/single"
read -r bi bw bc <"$work/block"
read -r si sw sc <"$work/single"
printf '\nin-process recorder, %.1f instructions per call (lackey: %.1f):\n' "$(calc "$bi / $calls")" "$(calc "$i_copy / $ncalls")"
ip() { # label calls insns wall cpu
    printf '  %-26s %4d calls %8.3f M insn/s wall %8.3f CPU; powercut tool %7.0fx wall %7.0fx CPU;' \
        "$1" "$2" "$(calc "$3 / $4 / 1e6")" "$(calc "$3 / $5 / 1e6")" \
        "$(calc "($i_copy / $rec_lw) / ($3 / $4)")" "$(calc "($i_copy / $rec_lc) / ($3 / $5)")"
    printf ' ceilings (CPU): native %7.0fx, --tool=none %7.0fx, --tool=none + trace write %7.0fx\n' \
        "$(calc "($i_copy / $nat_lc) / ($3 / $5)")" "$(calc "($i_copy / $none_lc) / ($3 / $5)")" \
        "$(calc "($i_copy / ($none_lc + $dd_c)) / ($3 / $5)")"
}
ip "block stepping (default)" "$calls" "$bi" "$bw" "$bc"
ip "POWERCUT_BLOCK_STEP=0" "$ss_calls" "$si" "$sw" "$sc"
echo "(goal: the tool at 10000x the in-process recorder)"
