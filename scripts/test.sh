#!/usr/bin/env bash
# scripts/test.sh: install what the build and tests need (Debian packages), configure, build
# (with CUDA whenever nvcc is present, so the kernels always compile) and run every test, after
# checking that the sources keep the .clang-format layout (scripts/format.sh --check) and pass
# clang-tidy's bugprone and performance checks (scripts/tidy.sh).
# Exits non-zero on any failure. Usage: scripts/test.sh [extra cmake args]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
install_deps clang-format clang-tidy-19 libomp-19-dev
bash scripts/format.sh --check
BUILD=${MINIMA_BUILD_DIR:-build}
configure_and_build "$BUILD" "$@"
bash scripts/tidy.sh "$BUILD"
cd "$BUILD"
# Two jobs: one per core on the CI machine; tests that train use OpenMP inside.
OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} ctest --output-on-failure -j "${MINIMA_TEST_JOBS:-2}" --timeout 900
