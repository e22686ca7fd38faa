#!/usr/bin/env bash
# The main job in one command.  Installs missing Debian packages, prepares the
# data folder, builds sedflow (Release), then runs it.  Until `sedflow infer`
# and the shipped flow exist (issues 4-5) it evaluates the SED model for one
# galaxy and simulates a small training set.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
bash scripts/install_deps.sh
bash scripts/prepare_data.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "$(nproc 2>/dev/null || echo 2)" >/dev/null
echo "== sedflow sed: one galaxy at z = 0.05 =="
./build/sedflow sed --z 0.05 \
  --theta 10.5,0.25,0.25,0.25,0.25,0.1,2.0,1e-3,1e-3,0.5,0.5,-0.3
echo
echo "== sedflow simulate: 10,000 training rows =="
./build/sedflow simulate --n 10000 --seed 1 --out build/train_small.h5
