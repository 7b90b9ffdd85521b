#!/usr/bin/env bash
# scripts/tidy.sh BUILD_DIR: clang-tidy (.clang-tidy: the bugprone and performance checks) over every
# tracked .cpp that BUILD_DIR's compile_commands.json compiles and, when BUILD_DIR builds the CUDA
# backend, every tracked .cu. Any warning fails. scripts/test.sh runs it.
#
# clang-tidy 19 (Debian package clang-tidy-19), because it is the Debian clang that parses CUDA 13
# sources. The .cu files are checked as host code (--cuda-host-only): nvcc's command lines in the
# compile database mean nothing to clang, so their -D and -I flags are taken from it and the rest is
# clang's own CUDA mode. clang 19's CUDA wrapper still includes the texture headers that CUDA 13
# removed, and lack __ldcg(const double*): stand-ins for them are made in a temporary folder.
# clang's own omp.h comes with libomp-19-dev.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:?usage: scripts/tidy.sh BUILD_DIR}
tidy=${CLANG_TIDY:-clang-tidy-19}
if ! command -v "$tidy" >/dev/null; then
  echo "error: $tidy not found (Debian package clang-tidy-19)" >&2
  exit 1
fi
db="$build/compile_commands.json"
[ -f "$db" ] || { echo "error: $db missing (configure first)" >&2; exit 1; }
if ! git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  echo "tidy: not a git checkout; nothing to do" >&2
  exit 0
fi
root=$(pwd)
in_db() { grep -q "\"file\": \"$root/$1\"" "$db"; }
mapfile -t cpp < <(git ls-files '*.cpp' | while read -r f; do in_db "$f" && echo "$f"; done)
mapfile -t cu < <(git ls-files '*.cu' | while read -r f; do in_db "$f" && echo "$f"; done)

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
status=0
printf '%s\n' "${cpp[@]}" |
  xargs -P "$(nproc)" -n 4 "$tidy" -p "$build" --quiet >"$tmp/log" 2>&1 ||
  status=$?

if [ ${#cu[@]} -gt 0 ]; then
  # nvcc's path, then the -D and -I flags of the first .cu file's command (all .cu files share them).
  mapfile -t nvcc < <(python3 -c '
import json, shlex, sys
entry = next(e for e in json.load(open(sys.argv[1])) if e["file"] == sys.argv[2])
words = shlex.split(entry["command"])
print("\n".join([words[0]] + [w for w in words[1:] if w.startswith(("-D", "-I"))]))
' "$db" "$root/${cu[0]}")
  cuda_root=$(dirname "$(dirname "${nvcc[0]}")")
  flags=("${nvcc[@]:1}")
  [ -d "$cuda_root/include" ] || { echo "error: no CUDA toolkit at $cuda_root (from $db)" >&2; exit 1; }
  mkdir -p "$tmp/stubs"
  touch "$tmp/stubs/texture_fetch_functions.h" "$tmp/stubs/texture_indirect_functions.h"
  # Intrinsics that nvcc's headers declare and clang's CUDA headers lack: declared so the code parses.
  echo '__device__ double __ldcg(const double*);' >"$tmp/stubs/missing_intrinsics.h"
  printf '%s\n' "${cu[@]}" |
    xargs -P "$(nproc)" -I{} "$tidy" --quiet {} -- -x cuda --cuda-host-only --cuda-path="$cuda_root" \
      -nocudalib -std=c++17 "${flags[@]}" -isystem "$cuda_root/include/cccl" -isystem "$tmp/stubs" \
      -include missing_intrinsics.h >>"$tmp/log" 2>&1 || status=$?
fi
if [ "$status" -ne 0 ] || grep -q 'warning:\|error:' "$tmp/log"; then
  grep -A3 'warning:\|error:' "$tmp/log" >&2 || cat "$tmp/log" >&2
  echo "error: clang-tidy found problems (above)" >&2
  exit 1
fi
echo "tidy: ${#cpp[@]} .cpp and ${#cu[@]} .cu files clean"
