#!/usr/bin/env bash
# TokenVerse++ on real corpora: conversational data (STM/RTTM or JSON-lines annotations; all five tasks) plus
# CommonVoice (ASR + LID only, joining through partial labels). The paper's setup: XLS-R 300M transducer,
# pruned RNN-T, 50 epochs, lr 1.25e-3, modified beam search (beam 4), best epoch by average dev WER.
#   ./run.sh --data_opts "--cv_root /data/cv-corpus-17.0 --cv_langs en,de,es,fr --conv_jsonl /data/conv.jsonl"
set -euo pipefail
cd "$(dirname "$0")"

./tokenverse.sh \
  --train_set train --valid_set dev --test_sets "test_conv test_cv" \
  --languages en,de,es,fr --tasks asr,scd,endp,ner,lid \
  --nbpe 500 --ngpu 1 --decode_batch_size 16 \
  --asr_config conf/train_xlsr300m_pruned.yaml --inference_config conf/decode.yaml \
  --activation_sets "asr,scd,endp,ner,lid asr asr,scd asr,endp asr,ner asr,lid" \
  "$@"
