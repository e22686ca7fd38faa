#!/usr/bin/env bash
# Data preparation: turn the upstream files (PROVABGS emulator pickles, NMF
# bases, SDSS filter curves, NSA and SDSS-MGS tables) into sedflow's own data
# folder (default ./data, git-ignored):
#   data/sedflow_model.h5   emulators, NMF bases, filters (layout: docs/DATA.md)
#   data/nsa/*.fits         NSA rows (copied unchanged)
#   data/sdss_mgs/*         SDSS Main Galaxy Sample tables (copied unchanged)
# Upstream folder: $SEDFLOW_UPSTREAM, else ../shared/data next to the
# checkout; when neither exists, the exact files of scripts/upstream_files.txt
# are downloaded into data/upstream/.  Every file is checked by sha256.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
out="${1:-$root/data}"
list="$here/upstream_files.txt"

src="${SEDFLOW_UPSTREAM:-}"
if [ -z "$src" ]; then
  for cand in "$root/../shared/data" "$root/shared/data"; do
    [ -d "$cand/provabgs" ] && { src="$(cd "$cand" && pwd)"; break; }
  done
fi
if [ -f "$out/sedflow_model.h5" ] && [ -f "$out/.prepared" ] && \
   cmp -s "$out/.prepared" "$list"; then
  echo "prepare_data: $out is up to date"; exit 0
fi
mkdir -p "$out"
if [ -z "$src" ]; then
  src="$out/upstream"
  echo "prepare_data: no upstream folder found; downloading into $src" >&2
  grep -v '^#' "$list" | while read -r sum path url; do
    [ -z "$sum" ] && continue
    mkdir -p "$src/$(dirname "$path")"
    if [ ! -f "$src/$path" ] || ! echo "$sum  $src/$path" | sha256sum -c --quiet - 2>/dev/null; then
      curl -fsSL --retry 3 -o "$src/$path.part" "$url"
      mv "$src/$path.part" "$src/$path"
    fi
  done
fi
echo "prepare_data: upstream folder $src" >&2
bad=0
grep -v '^#' "$list" | while read -r sum path url; do
  [ -z "$sum" ] && continue
  echo "$sum  $src/$path"
done | sha256sum -c --quiet - || bad=1
if [ "$bad" -ne 0 ]; then
  echo "prepare_data: checksum mismatch in $src (see above)" >&2; exit 1
fi

PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
"$PY" "$here/prepare_data.py" --upstream "$src" --out "$out/sedflow_model.h5"
for d in nsa sdss_mgs; do
  mkdir -p "$out/$d"
  grep -v '^#' "$list" | awk -v d="$d/" 'index($2, d) == 1 {print $2}' | while read -r p; do
    cp -f "$src/$p" "$out/$p"
  done
done
cp "$list" "$out/.prepared"
echo "prepare_data: wrote $out" >&2
