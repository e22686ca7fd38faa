#!/usr/bin/env bash
# The test command: install missing Debian packages, prepare the data folder,
# build (Release) and run the CTest suite.  With SEDFLOW_SANITIZE=1 it builds
# a separate ASan+UBSan tree (build-asan/) and runs the suite there.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
bash scripts/install_deps.sh
bash scripts/prepare_data.sh
jobs="$(nproc 2>/dev/null || echo 2)"
if [ "${SEDFLOW_SANITIZE:-0}" = "1" ]; then
  bdir=build-asan
  cmake -S . -B "$bdir" -DCMAKE_BUILD_TYPE=Debug -DSEDFLOW_SANITIZE=ON >/dev/null
  export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1"
  export LSAN_OPTIONS="suppressions=$root/scripts/lsan.supp:print_suppressions=0"
  export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
  export SEDFLOW_TEST_QUICK=1
else
  bdir=build
  cmake -S . -B "$bdir" -DCMAKE_BUILD_TYPE=Release >/dev/null
fi
cmake --build "$bdir" -j "$jobs"
cd "$bdir"
ctest --output-on-failure -j "$jobs" "$@"
