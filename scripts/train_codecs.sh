#!/usr/bin/env bash
# Train the shipped codecs (CPU: about 55 minutes on 2 cores; a GPU is used when present) and copy the
# weights into sarcodec/weights/. Usage: bash scripts/train_codecs.sh [extra --set key=value ...]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
if [ ! -f outputs/codec_p64/manifest.json ]; then
  $PY -m sarcodec prepare ../shared/data/sar/train ../shared/data/sar/opera -o outputs/codec_p64 \
      --patch-size 64 --stride 32
fi
for name in hyperprior factorized; do
  $PY -m sarcodec.train.rd --config "configs/codec/${name}.yaml" "$@" 2>&1 | tee "outputs/codec_${name}.log"
  $PY -m sarcodec.codec.registry export "outputs/codec/${name}.safetensors" "sarcodec/weights/${name}.safetensors"
done
