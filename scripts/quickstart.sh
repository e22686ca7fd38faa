#!/usr/bin/env bash
# The main job in one command.  Installs missing Debian packages, prepares the
# data folder, builds sedflow (Release), then runs `sedflow infer` with the
# shipped flow (models/sedflow_default.h5) on the NSA sample (data/nsa/*.fits):
# posterior samples and summaries of every galaxy in build/nsa_posteriors.h5
# (layout: docs/INFER.md) and a short summary on stdout.  An interrupted run
# continues where it stopped when the script is run again (--resume).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
bash scripts/install_deps.sh
bash scripts/prepare_data.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "$(nproc 2>/dev/null || echo 2)" >/dev/null
threads="$(nproc 2>/dev/null || echo 2)"
model="${SEDFLOW_MODEL:-models/sedflow_default.h5}"
echo "== sedflow sed: one galaxy at z = 0.05 =="
./build/sedflow sed --z 0.05 \
  --theta 10.5,0.25,0.25,0.25,0.25,0.1,2.0,1e-3,1e-3,0.5,0.5,-0.3
echo
if [ ! -f "$model" ]; then
  echo "quickstart: model file '$model' not found (from SEDFLOW_MODEL or the default;" >&2
  echo "  shipped: models/sedflow_default.h5, models/sedflow_fast.h5; paths are relative to $root)" >&2
  exit 1
fi
echo "== sedflow infer: posteriors of the NSA sample (data/nsa/*.fits) with $model =="
./build/sedflow infer --model "$model" --out build/nsa_posteriors.h5 \
  --fits build/nsa_posteriors_summary.fits --threads "$threads" --resume
