#!/usr/bin/env bash
# The one training loop (sarcodec train, objective rd) against the earlier step-based codec loop it replaced
# (sarcodec/train/rd.py at commit 503930e): 1200 steps of the shipped hyperprior recipe each (16 patches a step,
# 200 warmup steps, cosine), one thread, on outputs/codec_p64; both print the per-level validation bpp/PSNR.
# Needs the git history (503930e). Usage: bash scripts/compare_training_loops.sh [WORKDIR]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
work=${1:-/tmp/loopcmp}
mkdir -p "$work"
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
git show 503930e:sarcodec/train/rd.py | sed 's/sarcodec\.codec\.models/sarcodec.models.codecs/' > "$work/rd_old.py"
git show 503930e:configs/codec/hyperprior.yaml > "$work/old.yaml"
start=$(date +%s)
$PY "$work/rd_old.py" --config "$work/old.yaml" --set steps=1200 --set "out=$work/old" --set log_every=400
mid=$(date +%s); echo "old loop: $((mid - start)) s"
$PY -m sarcodec train configs/codec/hyperprior.yaml --data outputs/codec_p64 --output-dir "$work/new" \
  --epochs 6 --set train_batches_per_epoch=200 --set optim.warmup_epochs=1 --overwrite
end=$(date +%s); echo "new loop: $((end - mid)) s"
