#!/usr/bin/env bash
# The paper's ablation grid on mini_tokenverse: task-vector strategy x injection point, plus the TokenVerse
# baseline (no task vectors, fully annotated conversations only), each trained, decoded and scored; one
# RESULTS.md collects them all (Tables II-IV). Data prep/tokenizer/stats run once.
#   ./run_grid.sh [--max_epoch N]
set -euo pipefail
cd "$(dirname "$0")"
epochs_opt=""; [ "${1:-}" = "--max_epoch" ] && epochs_opt="--max_epoch $2"
./run.sh --stage 1 --stop_stage 4
for cfg in conf/tuning/train_per_*.yaml; do
  ./run.sh --stage 5 --stop_stage 7 --asr_config "${cfg}" --asr_args "${epochs_opt}"
done
# baseline: same tokenizer (trained on data/train), its own formatted dir and shape files
./run.sh --stage 2 --stop_stage 2 --train_set train_full_only
./run.sh --stage 4 --stop_stage 7 --asr_config conf/tuning/train_tokenverse_baseline.yaml \
  --train_set train_full_only --asr_args "${epochs_opt}"
