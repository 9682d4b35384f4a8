#!/usr/bin/env bash
# Train the shipped codecs (CPU: about an hour on 2 cores; a GPU is used when present) and copy the weights into
# sarcodec/weights/. Usage: bash scripts/train_codecs.sh [extra 'sarcodec train' options, e.g. --set key=value]
# Each run lives in outputs/codec/<name>/ (checkpoints, history, TensorBoard) and resumes after an interruption.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
if [ ! -f outputs/codec_p64/manifest.json ]; then
  $PY -m sarcodec prepare ../shared/data/sar/train ../shared/data/sar/opera -o outputs/codec_p64 \
      --patch-size 64 --stride 32
fi
for name in hyperprior factorized; do
  $PY -m sarcodec train "configs/codec/${name}.yaml" --data outputs/codec_p64 --output-dir "outputs/codec/${name}" \
      --resume auto "$@" 2>&1 | tee "outputs/codec_${name}.log"
  # the shipped hyperprior was trained on a GPU (scripts/gpu_codec.sh); a CPU run replaces it only on purpose:
  # compare first (scripts/compare_codecs_val.py), and keep the weights older .sarc files need (see sarcodec/weights)
  $PY -m sarcodec.codec.registry export "outputs/codec/${name}/${name}.safetensors" "sarcodec/weights/${name}.safetensors"
done
