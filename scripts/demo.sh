#!/usr/bin/env bash
# The main job on the bundled real sample: set up, cut samples/ into a patch dataset split by scene,
# then describe it and save a preview of the patches.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
OUT=${1:-/tmp/sarcodec-demo}
.venv/bin/sarcodec prepare samples -o "$OUT/dataset" --patch-size 64 --overwrite
.venv/bin/sarcodec info "$OUT/dataset" --preview "$OUT/patches.png" | tail -n 1   # the summary was printed above
