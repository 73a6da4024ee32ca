#!/usr/bin/env bash
# Runs every ```sh block of Examples/README.md, line by line in one shell from the
# repository's root, as a user would type them: HOME is a scratch folder (so `make
# install` goes to a fresh ~/.local) and `powercut` is the one built here. A line
# ending in `# exit N` must end with status N; any other line with 0.
# Usage: Examples/run.sh [POWERCUT_BINARY]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="${1:-}"
if [ -z "$bin" ]; then
    for b in "$root/.build/release/powercut" "$root/.build/debug/powercut"; do
        [ -x "$b" ] && { bin="$b"; break; }
    done
fi
[ -x "$bin" ] || { echo "Examples/run.sh: build powercut first (swift build), or pass its path" >&2; exit 70; }
bin="$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")"
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
mkdir -p "$scratch/home" "$scratch/bin"
ln -s "$bin" "$scratch/bin/powercut"
script="$scratch/examples.sh"
{
    echo "cd '$root'"
    echo "export HOME='$scratch/home' PATH='$scratch/bin':\"\$PATH\""
    awk '
        /^```sh$/ { inblock = 1; next }
        /^```$/ { inblock = 0; next }
        inblock && NF {
            want = 0
            if (match($0, /# exit [0-9]+$/)) want = substr($0, RSTART + 7) + 0
            line = $0
            gsub(/\047/, "\047\\\047\047", line)
            printf "echo \047$ %s\047\n", line
            printf "set +e; %s\ns=$?; set -e\n", $0
            printf "if [ $s -ne %d ]; then echo \"Examples/run.sh: status $s, expected %d\" >&2; exit 1; fi\n", want, want
        }
    ' "$root/Examples/README.md"
    echo "echo 'Examples/run.sh: every command ran as Examples/README.md shows'"
} > "$script"
bash "$script"
