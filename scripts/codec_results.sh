#!/usr/bin/env bash
# Regenerate results/codec/: the benchmark on ../shared/data/sar/dev (with the seed models' entropy-coded latents when
# their checkpoints exist locally), the end-to-end check on every dev and geotiff file, and throughput/memory.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=results/codec
mkdir -p "$OUT"
CKPTS=()
for c in runs/seed_study/baseline_c16/best.pth runs/seed_study/baseline_c64/best.pth \
         notebooks/checkpoints/residual_v1_c16/best.pth; do
  [ -f "$c" ] && CKPTS+=("$c")
done
# every shipped model, the earlier defaults too (benchmark leaves NAME_vN out unless named), for same-run comparisons
$PY -m sarcodec benchmark ../shared/data/sar/dev -o "$OUT/benchmark" --models hyperprior hyperprior_fast hyperprior_v2 hyperprior_v1 \
  factorized ${CKPTS[@]:+--checkpoint "${CKPTS[@]}"} > /dev/null
# the speckle synthesis beside the default (compress --speckle; results/codec/speckle/README.md)
$PY -m sarcodec benchmark ../shared/data/sar/dev -o "$OUT/speckle/benchmark" --models hyperprior --codecs jpeg2000 \
  --speckle > /dev/null
$PY scripts/roundtrip_check.py ../shared/data/sar/dev ../shared/data/sar/geotiff ../shared/data/sar/extra | tee "$OUT/roundtrip.md"
$PY benchmarks/codec_speed.py --size 10000 | tee "$OUT/codec_speed_10000.txt"
$PY benchmarks/codec_speed.py --size 10000 --max-error 0.5 | tee "$OUT/codec_speed_10000_near_lossless.txt"
$PY benchmarks/runtime_choice.py | tee "$OUT/runtime_choice.txt"
$PY -m sarcodec benchmark ../shared/data/sar/dev samples ../shared/data/sar/extra/rio_tiler_pds_s1_grd --near-lossless -o "$OUT/near_lossless" > /dev/null
