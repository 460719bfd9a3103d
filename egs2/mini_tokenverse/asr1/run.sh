#!/usr/bin/env bash
# mini_tokenverse: the embedded multilingual conversation corpus (espeak-ng voices), end to end on 2 CPU cores.
#   ./run.sh                                   all stages (data prep .. hub dry-run), ~15 min
#   ./run.sh --stage 6 --stop_stage 7          decode + score only
#   ./run.sh --asr_config conf/tuning/train_per_combination_both.yaml   one cell of the ablation grid
#   ./run.sh --data_opts "--size debug" --asr_config conf/train_debug.yaml   smoke test (~2 min)
set -euo pipefail
cd "$(dirname "$0")"

./tokenverse.sh \
  --train_set train --valid_set dev --test_sets "test test_partial" \
  --languages en,de,es,fr --tasks asr,scd,endp,ner,lid \
  --nbpe 150 \
  --asr_config conf/train.yaml --inference_config conf/decode.yaml \
  --activation_sets "asr,scd,endp,ner,lid asr asr,scd asr,endp asr,ner asr,lid asr,scd,endp" \
  "$@"
