#!/usr/bin/env bash
# Install the Debian 12 packages sedflow needs to build, test and prepare its
# data.  Installs only what is missing; needs root (or sudo) for that.
set -euo pipefail
PKGS="build-essential cmake pkg-config libopenblas-dev libhdf5-dev hdf5-tools
libcfitsio-dev libgsl-dev zlib1g-dev libomp-dev python3 python3-numpy python3-h5py curl
ca-certificates valgrind gnuplot-nox"
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "install_deps: installing:$missing" >&2
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
