#!/usr/bin/env bash
# Run every benchmark program (bench/bench_*.c) of a Release build and print
# their figures.  Record results in BENCHMARKS.md with date, command, machine.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
bash scripts/prepare_data.sh >/dev/null
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "$(nproc 2>/dev/null || echo 2)" >/dev/null
echo "# $(date -u +%F) $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2) x $(nproc) cores"
for b in build/bench/bench_*; do
  [ -x "$b" ] || continue
  [ -f "bench/$(basename "$b").c" ] || continue # stale binaries of removed benchmarks
  echo "## $(basename "$b")"
  "$b"
done
echo "## bench_flow --flow nsf"
build/bench/bench_flow --flow nsf
echo "## bench_flow --model models/sedflow_default.h5 (the shipped models' own sampling)"
build/bench/bench_flow --model models/sedflow_default.h5
build/bench/bench_flow --model models/sedflow_fast.h5
