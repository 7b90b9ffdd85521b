#!/usr/bin/env bash
# scripts/format.sh: the C++/CUDA layout of .clang-format. With no argument, reformats every
# tracked .cpp/.h/.cu/.cuh in place; with --check, lists the files whose layout differs and exits 1
# (scripts/test.sh runs the check). The tree is laid out by clang-format 14, and other major
# versions place some constructs differently, so --check only runs with 14 and otherwise says so.
set -euo pipefail
cd "$(dirname "$0")/.."
want_major=14
if ! command -v clang-format >/dev/null; then
  echo "format: clang-format not found (Debian package clang-format)" >&2
  [ "${1:-}" = --check ] && exit 0 || exit 1
fi
major=$(clang-format --version | sed -n 's/.*version \([0-9]*\).*/\1/p')
if ! git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  echo "format: not a git checkout; nothing to do" >&2
  exit 0
fi
mapfile -t files < <(git ls-files '*.cpp' '*.h' '*.cu' '*.cuh')
if [ "${1:-}" = --check ]; then
  if [ "$major" != "$want_major" ]; then
    echo "format: clang-format $major, not $want_major; layout check skipped"
    exit 0
  fi
  bad=()
  for f in "${files[@]}"; do
    clang-format --style=file "$f" | cmp -s - "$f" || bad+=("$f")
  done
  if [ ${#bad[@]} -gt 0 ]; then
    echo "error: ${#bad[@]} file(s) differ from the .clang-format layout (run scripts/format.sh):" >&2
    printf '  %s\n' "${bad[@]}" >&2
    exit 1
  fi
  echo "format: ${#files[@]} files match .clang-format"
  exit 0
fi
clang-format -i --style=file "${files[@]}"
