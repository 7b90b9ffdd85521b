#!/usr/bin/env bash
# scripts/run.sh: install, build, then run the default experiment on the CPU and write its
# results under runs/default (rerunning continues/reuses it). Extra arguments go to the experiment.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
install_deps
configure_and_build build
# The scaled-down default of Liu et al.'s experiment (README, "Measured results"): an MLP with
# batch norm on the first 500 Fashion-MNIST training images, C = R noisy randomly labelled copies
# for R = 2, 8, 32, the setups vanilla, sota and M+L2 from each init, three seeds.
./build/minima adversarial-init --out runs/default --resume "$@"
