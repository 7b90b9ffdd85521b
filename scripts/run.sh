#!/usr/bin/env bash
# scripts/run.sh: install, build, then run the default experiment on the CPU and write its
# results under runs/default. Extra arguments go to the experiment.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
install_deps
configure_and_build build
./build/minima train --arch mlp --dataset fashion-mnist --epochs 5 --out runs/default "$@"
