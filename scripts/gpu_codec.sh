#!/usr/bin/env bash
# The GPU recipe for the codecs: one script that trains a codec config on one GPU inside a 10-minute device call
# and writes the weights and logs to a folder. Two steps:
#
#   bash scripts/gpu_codec.sh --pack
#       here, on the CPU machine, once: prepares outputs/codec_p64 (../shared/data/sar/{train,opera}) if missing
#       and packs what the GPU machine lacks into .gpu/ (git-ignored, ~18 MB): the train/val patches as a tar.xz
#       and Python 3.12 wheels of constriction, pytorch-msssim and psutil (that machine has no package registry).
#   bash scripts/gpu_codec.sh --run CONFIG [sarcodec train options ...]
#       on the GPU machine, in the repository root, with .gpu carried and OUT set (the device tool's $OUT):
#       installs the wheels it lacks, unpacks the data, trains CONFIG (default configs/codec/hyperprior.yaml) with
#       --device cuda, a wall-clock budget (MINUTES, default 8), batch 64 (lr as configured) and EPOCHS epochs
#       (default 200, never measured: the cosine schedule spans EPOCHS, and the budget only stops after an epoch,
#       so if the log says the budget stopped the schedule early, rerun with EPOCHS that fit), and
#       leaves in $OUT: train.log, run/<name>.safetensors (the codec, for sarcodec compress --model),
#       run/history.json, run/config.yaml and the TensorBoard events. Later options win (--device cpu, --epochs,
#       --set key=value), which is how tests/scripts run it on a CPU.
#
# The device call:  command "bash scripts/gpu_codec.sh --run configs/codec/hyperprior.yaml", carry [".gpu"],
# timeout_s 600. Report steps, minutes and device from run/history.json (sarcodec info run/<name>.safetensors).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python3}
PACK=${SARCODEC_GPU_PACK:-.gpu}  # where --pack writes and --run reads (tests point it elsewhere)

case "${1:-}" in
  --pack)
    PY=${PY_HERE:-.venv/bin/python}
    if [ ! -f outputs/codec_p64/manifest.json ]; then
      $PY -m sarcodec prepare ../shared/data/sar/train ../shared/data/sar/opera -o outputs/codec_p64 \
          --patch-size 64 --stride 32
    fi
    rm -rf "$PACK" && mkdir -p "$PACK/whl"
    tar -C outputs -cf - codec_p64/manifest.json codec_p64/train_index.npy codec_p64/train_patches.npy \
        codec_p64/train_valid.npy codec_p64/val_index.npy codec_p64/val_patches.npy codec_p64/val_valid.npy \
        | xz -T2 -6 > "$PACK/codec_p64.tar.xz"
    $PY -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        --platform manylinux_2_12_x86_64 --platform manylinux2010_x86_64 -d "$PACK/whl" \
        "constriction>=0.5,<0.6" "pytorch-msssim>=1.0" "psutil>=5.9"
    du -sh "$PACK"
    ;;
  --run)
    shift
    config=${1:-configs/codec/hyperprior.yaml}
    [ $# -gt 0 ] && shift
    out=${OUT:?set OUT to the folder the results go to}
    work=${TMPDIR:-/tmp}/sarcodec_gpu
    mkdir -p "$work" "$out"
    missing=()
    for mod in constriction pytorch_msssim psutil; do
      $PY -c "import $mod" 2>/dev/null || missing+=("$mod")
    done
    if [ ${#missing[@]} -gt 0 ]; then
      $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$work/site" \
          "$PACK"/whl/*.whl
      export PYTHONPATH="$work/site${PYTHONPATH:+:$PYTHONPATH}"
    fi
    export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
    [ -f "$work/codec_p64/manifest.json" ] || xz -dc "$PACK/codec_p64.tar.xz" | tar -C "$work" -xf -
    $PY -m sarcodec train "$config" --data "$work/codec_p64" --output-dir "$out/run" --device cuda \
        --epochs "${EPOCHS:-200}" --set "time_budget_minutes=${MINUTES:-8}" --set data.batch_size=64 \
        --set data.num_workers=0 --set num_sample_images=2 "$@" 2>&1 | tee "$out/train.log"
    rm -f "$out/run/last.pth"  # the device returns at most 8 files; best.pth stays for a resume elsewhere
    ;;
  *)
    echo "usage: bash scripts/gpu_codec.sh --pack | --run [CONFIG] [sarcodec train options]" >&2
    exit 2
    ;;
esac
