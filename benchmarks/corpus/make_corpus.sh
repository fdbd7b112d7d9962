#!/usr/bin/env bash
# Rebuild the benchmark corpus of real recordings (not shipped in git: ~40 MB) from Debian packages.
# Usage: bash benchmarks/corpus/make_corpus.sh [OUT]   (default OUT: outputs/corpus)
# The packages are downloaded with apt-get and unpacked into a temporary folder, not installed.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${1:-$HERE/../../outputs/corpus}
PY=${PYTHON:-python3}
WORK=$(mktemp -d); trap 'rm -rf "$WORK"' EXIT
# bookworm versions used: fluid-soundfont-gm 3.1-5.3, sonic-pi-samples 3.2.2~repack-8,
# sound-theme-freedesktop 0.8-2, wesnoth-1.16-music 1:1.16.9-1, singularity-music 007-2,
# asterisk-core-sounds-{en,es,fr,it,ru}-wav 1.6.1-1
PKGS="fluid-soundfont-gm sonic-pi-samples sound-theme-freedesktop wesnoth-1.16-music singularity-music
asterisk-core-sounds-en-wav asterisk-core-sounds-es-wav asterisk-core-sounds-fr-wav
asterisk-core-sounds-it-wav asterisk-core-sounds-ru-wav"
( cd "$WORK" && { apt-get download $PKGS 2>/dev/null || { apt-get update && apt-get download $PKGS; }; } )
for deb in "$WORK"/*.deb; do dpkg-deb -x "$deb" "$WORK/root"; done
"$PY" "$HERE/make_corpus.py" "$WORK/root" "$OUT"
