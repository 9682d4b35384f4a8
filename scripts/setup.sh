#!/usr/bin/env bash
# Create .venv (if missing) and install sarcodec with its test dependencies into it.
# SARCODEC_TORCH selects the PyTorch requirement installed first (default: the CPU build 2.13.0 that
# pip takes from this project's machines; on a CUDA machine e.g. SARCODEC_TORCH='torch>=2.2').
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [[ ! -x .venv/bin/python ]]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip >/dev/null 2>&1 || true
.venv/bin/python -m pip install --quiet "${SARCODEC_TORCH:-torch==2.13.0}" 2>&1 | grep -v "is ignored" || true
.venv/bin/python -m pip install --quiet -e ".[dev]" 2>&1 | grep -v "is ignored" || true
.venv/bin/python -c "import sarcodec, torch, rasterio; print(f'sarcodec {sarcodec.__version__}, torch {torch.__version__}, rasterio {rasterio.__version__}')"
