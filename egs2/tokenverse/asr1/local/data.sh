#!/usr/bin/env bash
# Stage 1 for real corpora. Each importer writes a Kaldi dir with utt2tasks saying what its annotation supports;
# the combined train/dev/test dirs are then assembled with espnet2_ext.bin.combine_data_dirs.
#   --cv_root DIR --cv_langs en,de   CommonVoice release folders DIR/<lang>/{clips,train.tsv,dev.tsv,test.tsv}
#   --conv_jsonl FILE                conversations in the JSON-lines format of docs/data_formats.md
#   --conv_stm DIR                   STM (+ RTTM) conversations: DIR/{train,dev,test}.stm, audio under DIR/audio
set -euo pipefail
. ./path.sh
cv_root=""; cv_langs="en,de,es,fr"; conv_jsonl=""; conv_stm=""
while [ $# -gt 0 ]; do case "$1" in
  --cv_root) cv_root="$2"; shift 2;; --cv_langs) cv_langs="$2"; shift 2;;
  --conv_jsonl) conv_jsonl="$2"; shift 2;; --conv_stm) conv_stm="$2"; shift 2;;
  *) echo "local/data.sh: unknown option $1" >&2; exit 1;; esac; done
[ -n "${cv_root}${conv_jsonl}${conv_stm}" ] || { echo "local/data.sh: give --cv_root and/or --conv_jsonl/--conv_stm (see run.sh)" >&2; exit 1; }

parts_train=""; parts_dev=""; parts_test_conv=""; parts_test_cv=""
if [ -n "${cv_root}" ]; then
  for lang in ${cv_langs//,/ }; do
    "${python}" -m espnet2_ext.bin.import_commonvoice --src "${cv_root}/${lang}" --splits train,dev,test \
      --lang "${lang}" --out_dir "data/local/cv_${lang}" --dump_wav_dir "downloads/cv_wav/${lang}"
    parts_train+=" data/local/cv_${lang}/train"; parts_dev+=" data/local/cv_${lang}/dev"; parts_test_cv+=" data/local/cv_${lang}/test"
  done
fi
if [ -n "${conv_jsonl}" ]; then
  for split in train dev test; do
    "${python}" -m espnet2_ext.bin.import_jsonl --src "${conv_jsonl%.jsonl}_${split}.jsonl" \
      --out_dir "data/local/conv_${split}" --dump_wav_dir "downloads/conv_wav/${split}"
  done
  parts_train+=" data/local/conv_train"; parts_dev+=" data/local/conv_dev"; parts_test_conv+=" data/local/conv_test"
fi
if [ -n "${conv_stm}" ]; then
  for split in train dev test; do
    "${python}" -m espnet2_ext.bin.import_stm --src "${conv_stm}/${split}.stm" --audio_dir "${conv_stm}/audio" \
      --out_dir "data/local/stm_${split}" --dump_wav_dir "downloads/stm_wav/${split}"
  done
  parts_train+=" data/local/stm_train"; parts_dev+=" data/local/stm_dev"; parts_test_conv+=" data/local/stm_test"
fi
# shellcheck disable=SC2086
"${python}" -m espnet2_ext.bin.combine_data_dirs data/train ${parts_train}
# shellcheck disable=SC2086
"${python}" -m espnet2_ext.bin.combine_data_dirs data/dev ${parts_dev}
[ -z "${parts_test_conv}" ] || "${python}" -m espnet2_ext.bin.combine_data_dirs data/test_conv ${parts_test_conv}
[ -z "${parts_test_cv}" ] || "${python}" -m espnet2_ext.bin.combine_data_dirs data/test_cv ${parts_test_cv}
