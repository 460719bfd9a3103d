#!/usr/bin/env bash
# mini_tokenverse: the embedded multilingual conversation corpus (espeak-ng voices), end to end on 2 CPU cores.
#   ./run.sh                                   all stages (data prep .. hub dry-run), ~15 min
#   ./run.sh --stage 6 --stop_stage 7          decode + score only
#   ./run.sh --asr_config conf/tuning/train_per_combination_both.yaml   one cell of the ablation grid
#   ./run.sh --data_opts "--size debug" --train_set train --asr_config conf/train_debug.yaml   smoke test (~2 min)
# Train set: the fully annotated conversations + 400 read (ASR+LID-only) utterances per language
# (data/train_read400, written by local/data.sh --train_read 400): the partially labelled read speech is what the
# task vectors let the model learn from, and it lowers test WER (RESULTS.md). data/train (the same
# conversations + 40 read utterances per language) trains the tokenizer, the one every model here shares;
# --train_set train trains on it (the main command before 2026-12-01, and the only train set of --size debug).
# Encoder: ../ssl1/pretrained_ctc/xlsr_mini_ssl_ctc.pt (HuBERT-style SSL, then character CTC on a disjoint corpus);
# decoded: the average of the 5 best epochs (valid.loss.ave.pth) with conf/decode.yaml's blank penalty.
# Stage 7 writes results/<asr_tag>.json (this model's record) and regenerates every RESULTS*.md from results/;
# RESULTS.md links RESULTS_grid.md (./run_grid.sh), RESULTS_biasing.md (./run_biasing.sh) and the others.
set -euo pipefail
cd "$(dirname "$0")"

./tokenverse.sh \
  --data_opts "--train_read 400" --train_set train_read400 --bpe_train_text data/train/text \
  --valid_set dev --test_sets "test test_partial" \
  --languages en,de,es,fr --tasks asr,scd,endp,ner,lid \
  --nbpe 150 \
  --asr_config conf/train.yaml --inference_config conf/decode.yaml --inference_model valid.loss.ave.pth \
  --activation_sets "asr,scd,endp,ner,lid asr asr,scd asr,endp asr,ner asr,lid asr,scd,endp" \
  "$@"
