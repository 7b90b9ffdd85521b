#!/usr/bin/env bash
# scripts/tidy.sh BUILD_DIR: clang-tidy (.clang-tidy: the bugprone and performance checks) over every
# tracked .cpp that BUILD_DIR's compile_commands.json compiles (the .cu files are left out: clang-tidy
# would have to parse them as CUDA). Any warning fails. scripts/test.sh runs it.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:?usage: scripts/tidy.sh BUILD_DIR}
if ! command -v clang-tidy >/dev/null; then
  echo "error: clang-tidy not found (Debian package clang-tidy)" >&2
  exit 1
fi
[ -f "$build/compile_commands.json" ] || { echo "error: $build/compile_commands.json missing (configure first)" >&2; exit 1; }
if ! git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  echo "tidy: not a git checkout; nothing to do" >&2
  exit 0
fi
root=$(pwd)
mapfile -t files < <(git ls-files '*.cpp' | while read -r f; do
  grep -q "\"file\": \"$root/$f\"" "$build/compile_commands.json" && echo "$f"
done)
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
printf '%s\n' "${files[@]}" | xargs -P "$(nproc)" -n 4 clang-tidy -p "$build" --quiet >"$log" 2>&1 || status=$?
if [ "$status" -ne 0 ] || grep -q 'warning:\|error:' "$log"; then
  grep -A3 'warning:\|error:' "$log" >&2 || cat "$log" >&2
  echo "error: clang-tidy found problems (above)" >&2
  exit 1
fi
echo "tidy: ${#files[@]} files clean"
