#!/usr/bin/env bash
# The main job on the bundled default: set up, compress a real Sentinel-1 sample (samples/) with the shipped
# model, decompress it to a GeoTIFF, and score it beside JPEG 2000 at the same bitrate.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
OUT=${1:-/tmp/sarcodec-demo}
mkdir -p "$OUT"
SAMPLE=samples/ssl4eo/S1A_IW_GRDH_1SDV_20200607T010800_20200607T010825_032904_03CFBA_D457/VV.tif
.venv/bin/sarcodec compress "$SAMPLE" -o "$OUT/VV.sarc" --overwrite
.venv/bin/sarcodec info "$OUT/VV.sarc"
.venv/bin/sarcodec decompress "$OUT/VV.sarc" -o "$OUT/VV_decoded.tif" --overwrite --compare "$SAMPLE"
