#!/usr/bin/env bash
# The GPU recipe for the codecs: one script that trains a codec config on one GPU inside a 10-minute device call
# and writes the weights and logs to a folder. Two steps:
#
#   bash scripts/gpu_codec.sh --pack [DATASET ...]
#       here, on the CPU machine, once: packs what the GPU machine lacks into .gpu/ (git-ignored): the train/val
#       patches of each DATASET (a folder under outputs/, default codec_p64, ~15 MB of xz; codec_p64x, the configs
#       of hyperprior_extra*.yaml, ~19 MB) as DATASET.tar.xz, and Python 3.12 wheels of constriction,
#       pytorch-msssim and psutil (that machine has no package registry). outputs/codec_p64
#       (../shared/data/sar/{train,opera}) is prepared if missing; another dataset must be prepared first (the
#       command is in its config's header).
#   bash scripts/gpu_codec.sh --run CONFIG [CONFIG ...] [sarcodec train options ...]
#       on the GPU machine, in the repository root, with .gpu carried and OUT set (the device tool's $OUT):
#       installs the wheels it lacks, unpacks each config's dataset (the last folder of its data.root) and trains
#       the CONFIGs (default
#       configs/codec/hyperprior.yaml) side by side on the one GPU with --device cuda, batch 64 (lr as configured)
#       and a training-time budget of MINUTES each (default 8; start-up and the export come on top): each run
#       measures its second epoch and fits its epoch count (at most EPOCHS, default 1000) to the budget, so its
#       cosine schedule ends inside it (fit_epochs_to_budget). Leaves $OUT/<config name>.tar.gz per run (the codec
#       <run_name>.safetensors for sarcodec compress --model, history.json, config.yaml, train.log) and
#       $OUT/<config name>.events.tar.gz (TensorBoard); at most 4 configs (8 files come back).
#       Later options win (--device cpu, --epochs, --set key=value), which is how tests run it on a CPU.
#
# The device call:  command "MINUTES=7 bash scripts/gpu_codec.sh --run configs/codec/A.yaml configs/codec/B.yaml",
# carry [".gpu"], timeout_s 600. Report steps, minutes and device from each history.json
# (sarcodec info <run_name>.safetensors).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python3}
PACK=${SARCODEC_GPU_PACK:-.gpu}  # where --pack writes and --run reads (tests point it elsewhere)

case "${1:-}" in
  --pack)
    shift
    PY=${PY_HERE:-.venv/bin/python}
    datasets=("$@"); [ ${#datasets[@]} -gt 0 ] || datasets=(codec_p64)
    if [[ " ${datasets[*]} " == *" codec_p64 "* ]] && [ ! -f outputs/codec_p64/manifest.json ]; then
      $PY -m sarcodec prepare ../shared/data/sar/train ../shared/data/sar/opera -o outputs/codec_p64 \
          --patch-size 64 --stride 32
    fi
    for d in "${datasets[@]}"; do
      [ -f "outputs/$d/manifest.json" ] || { echo "outputs/$d is not a prepared dataset: prepare it first" >&2; exit 2; }
    done
    rm -rf "$PACK" && mkdir -p "$PACK/whl"
    for d in "${datasets[@]}"; do
      tar -C outputs -cf - "$d/manifest.json" "$d/train_index.npy" "$d/train_patches.npy" "$d/train_valid.npy" \
          "$d/val_index.npy" "$d/val_patches.npy" "$d/val_valid.npy" | xz -T2 -6 > "$PACK/$d.tar.xz"
    done
    $PY -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        --platform manylinux_2_12_x86_64 --platform manylinux2010_x86_64 -d "$PACK/whl" \
        "constriction>=0.5,<0.6" "pytorch-msssim>=1.0" "psutil>=5.9"
    du -sh "$PACK"
    ;;
  --run)
    shift
    configs=()
    while [ $# -gt 0 ] && [[ "$1" != -* ]]; do configs+=("$1"); shift; done
    [ ${#configs[@]} -gt 0 ] || configs=(configs/codec/hyperprior.yaml)
    out=${OUT:?set OUT to the folder the results go to}
    work=${TMPDIR:-/tmp}/sarcodec_gpu
    mkdir -p "$work" "$out"
    out=$(cd "$out" && pwd)
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
    # each config's dataset: the last folder of its data.root (outputs/codec_p64 -> codec_p64) as the trainer reads
    # it (one process for all configs; a bad config stops here with the trainer's one-line error), unpacked once
    roots=$($PY -c 'import sys
from sarcodec.errors import SarcodecError
from sarcodec.train.config import load_config
try:
    print("\n".join(str(load_config(c, device="cuda").data.root) for c in sys.argv[1:]))
except SarcodecError as exc:
    sys.exit(f"error: {exc}")' "${configs[@]}") || exit 2
    mapfile -t roots <<< "$roots"
    declare -A data_of=()
    for i in "${!configs[@]}"; do
      config=${configs[$i]}
      d=$(basename "${roots[$i]}")
      [ -f "$PACK/$d.tar.xz" ] || [ -f "$work/$d/manifest.json" ] \
          || { echo "$config: its dataset $d is not in $PACK (bash scripts/gpu_codec.sh --pack $d)" >&2; exit 2; }
      [ -f "$work/$d/manifest.json" ] || xz -dc "$PACK/$d.tar.xz" | tar -C "$work" -xf -
      data_of[$config]=$d
    done
    # the configs train side by side (small codecs leave a GPU mostly idle), the CPU cores shared among them
    threads=$(( $(nproc) / ${#configs[@]} )); [ "$threads" -ge 1 ] || threads=1
    pids=()
    for config in "${configs[@]}"; do
      name=$(basename "$config" .yaml)
      OMP_NUM_THREADS=$threads $PY -m sarcodec train "$config" --data "$work/${data_of[$config]}" --output-dir "$work/runs/$name" \
          --device cuda --epochs "${EPOCHS:-1000}" --set "time_budget_minutes=${MINUTES:-8}" \
          --set fit_epochs_to_budget=true --set data.batch_size=64 --set data.num_workers=0 \
          --set num_sample_images=2 "$@" > "$work/$name.log" 2>&1 &
      pids+=($!)
    done
    rc=0
    for i in "${!pids[@]}"; do
      wait "${pids[$i]}" || { rc=1; echo "FAILED: ${configs[$i]}"; }
    done
    # two archives per run (the device returns at most 8 files of at most 16 MiB): the codec, history, config and
    # log; and the TensorBoard events, dropped when too large. The checkpoints stay behind (optimizer state).
    for config in "${configs[@]}"; do
      name=$(basename "$config" .yaml)
      mkdir -p "$work/runs/$name"
      cp "$work/$name.log" "$work/runs/$name/train.log"
      tar -C "$work/runs" --exclude='*.pth' --exclude='events.*' -czf "$out/$name.tar.gz" "$name"
      (cd "$work/runs" && tar -czf "$out/$name.events.tar.gz" "$name"/events.*) 2>/dev/null \
          || rm -f "$out/$name.events.tar.gz"
      if [ -f "$out/$name.events.tar.gz" ] && [ "$(stat -c %s "$out/$name.events.tar.gz")" -gt 15000000 ]; then
        rm -f "$out/$name.events.tar.gz"; echo "$name: TensorBoard events over 15 MB, not returned"
      fi
      echo "== $name"; grep -E "^(run|device|epochs fitted|time budget|best epoch|done)" "$work/$name.log" || true
      tail -n 3 "$work/$name.log"
    done
    exit $rc
    ;;
  *)
    echo "usage: bash scripts/gpu_codec.sh --pack [DATASET ...] | --run [CONFIG ...] [sarcodec train options]" >&2
    exit 2
    ;;
esac
