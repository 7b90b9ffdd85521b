#!/usr/bin/env bash
# scripts/run.sh: install, build, then run the default experiment on the CPU and write its
# results under runs/default (rerunning continues/reuses it). Extra arguments go to the experiment.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
install_deps
configure_and_build build
# The scaled-down default of Liu et al.'s experiment (README, "Measured results"): an MLP on the
# first 1000 Fashion-MNIST training images, C = 4 noisy randomly labelled copies, two seeds.
./build/minima adversarial-init --out runs/default --resume "$@"
