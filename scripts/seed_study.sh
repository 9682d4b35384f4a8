#!/usr/bin/env bash
# The seed study end to end: scene-split dataset -> 8 training runs -> evaluation on ../shared/data/sar/dev.
#
#   bash scripts/seed_study.sh                      # CPU budget: every run gets 8 minutes of training wall time
#   bash scripts/seed_study.sh --budget-minutes 20  # a bigger equal budget
#   bash scripts/seed_study.sh --full               # the configs as written (seed plan: 30 epochs, lr 1e-4; for a GPU)
#   bash scripts/seed_study.sh --budget seed --runs baseline_c16 residual_v1_c16 resnet_lite_c16 attention_c16
#                                                   # the seed plan's comparison: its 20 % patch subset, the configs
#                                                   # as written, equal epochs; results/seed_study/seed_budget (also
#                                                   # the validation scenes and the real-bitrate view); resumes
#   bash scripts/seed_study.sh --evaluate-only      # regenerate results/seed_study from the trained runs
#
# Runs go to runs/seed_study/<run>, Variant B to notebooks/checkpoints/residual_v1_c16 (the seed plan's path);
# finished runs are skipped (--retrain redoes them). Results (results.md, results.json, figures) go to
# results/seed_study. See sarcodec/study.py for the budget's details.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/python -m sarcodec.study "$@"
