#!/usr/bin/env bash
# Stage 1 for real corpora. Each importer writes a Kaldi dir with utt2tasks saying what its annotation supports;
# the combined train/dev/test dirs are then assembled with espnet2_ext.bin.combine_data_dirs.
# Audio (mp3/flac/ogg/opus/wav, any rate or channel count) is decoded into 16 kHz mono wavs under downloads/; an
# import with an undecodable clip writes nothing and names the clip (or see --skip_bad_audio).
#   --cv_root DIR --cv_langs en,de   CommonVoice release folders DIR/<lang>/{clips,train.tsv,dev.tsv,test.tsv}
#   --conv_jsonl FILE                conversations in the JSON-lines format of docs/data_formats.md:
#                                    FILE without .jsonl + _{train,dev,test}.jsonl
#   --conv_stm DIR                   STM conversations: DIR/{train,dev,test}.stm, audio under DIR/audio
#   --stm_rttm_dir DIR               RTTM speaker turns DIR/<split>.rttm (passed as --rttm when present; default: the
#                                    --conv_stm DIR)
#   --stm_entities FILE              entity names, one per line, tagged [NE] ... [/NE] in STM transcripts (--entities)
#   --stm_lang LANG                  language of the STM conversations (language token + lid task)
#   --max_turns N --max_duration S --max_gap S
#                                    utterance chunking of STM and JSON-lines conversations (default 4, 20, 3)
#   --languages en,de,es,fr          languages of the task spec (JSON-lines / STM importers)
#   --skip_bad_audio true            leave undecodable clips out (counted on stderr) instead of failing the import
set -euo pipefail
. ./path.sh
cv_root=""; cv_langs="en,de,es,fr"; conv_jsonl=""; conv_stm=""; stm_rttm_dir=""; stm_entities=""; stm_lang=""
max_turns=4; max_duration=20; max_gap=3; languages="en,de,es,fr"; skip_bad_audio=false
. ./parse_options.sh  # --name value -> $name (egs2/TEMPLATE/tokenverse1/parse_options.sh)
[ -n "${cv_root}${conv_jsonl}${conv_stm}" ] || { echo "local/data.sh: give --cv_root and/or --conv_jsonl/--conv_stm (see run.sh)" >&2; exit 1; }
audio_opts=(); [ "${skip_bad_audio}" = true ] && audio_opts=(--skip_bad_audio)
chunk_opts=(--max_turns "${max_turns}" --max_duration "${max_duration}" --max_gap "${max_gap}" --languages "${languages}")

parts_train=""; parts_dev=""; parts_test_conv=""; parts_test_cv=""
if [ -n "${cv_root}" ]; then
  for lang in ${cv_langs//,/ }; do
    "${python}" -m espnet2_ext.bin.import_commonvoice --src "${cv_root}/${lang}" --splits train,dev,test \
      --lang "${lang}" --languages "${languages}" --out_dir "data/local/cv_${lang}" \
      --dump_wav_dir "downloads/cv_wav/${lang}" "${audio_opts[@]}"
    parts_train+=" data/local/cv_${lang}/train"; parts_dev+=" data/local/cv_${lang}/dev"; parts_test_cv+=" data/local/cv_${lang}/test"
  done
fi
if [ -n "${conv_jsonl}" ]; then
  for split in train dev test; do
    "${python}" -m espnet2_ext.bin.import_jsonl --src "${conv_jsonl%.jsonl}_${split}.jsonl" "${chunk_opts[@]}" \
      --out_dir "data/local/conv_${split}" --dump_wav_dir "downloads/conv_wav/${split}" "${audio_opts[@]}"
  done
  parts_train+=" data/local/conv_train"; parts_dev+=" data/local/conv_dev"; parts_test_conv+=" data/local/conv_test"
fi
if [ -n "${conv_stm}" ]; then
  stm_rttm_dir="${stm_rttm_dir:-${conv_stm}}"
  for split in train dev test; do
    stm_opts=("${chunk_opts[@]}")
    [ ! -f "${stm_rttm_dir}/${split}.rttm" ] || stm_opts+=(--rttm "${stm_rttm_dir}/${split}.rttm")
    [ -z "${stm_entities}" ] || stm_opts+=(--entities "${stm_entities}")
    [ -z "${stm_lang}" ] || stm_opts+=(--lang "${stm_lang}")
    "${python}" -m espnet2_ext.bin.import_stm --src "${conv_stm}/${split}.stm" --audio_dir "${conv_stm}/audio" \
      "${stm_opts[@]}" --out_dir "data/local/stm_${split}" --dump_wav_dir "downloads/stm_wav/${split}" "${audio_opts[@]}"
  done
  parts_train+=" data/local/stm_train"; parts_dev+=" data/local/stm_dev"; parts_test_conv+=" data/local/stm_test"
fi
# shellcheck disable=SC2086
"${python}" -m espnet2_ext.bin.combine_data_dirs data/train ${parts_train}
# shellcheck disable=SC2086
"${python}" -m espnet2_ext.bin.combine_data_dirs data/dev ${parts_dev}
[ -z "${parts_test_conv}" ] || "${python}" -m espnet2_ext.bin.combine_data_dirs data/test_conv ${parts_test_conv}
[ -z "${parts_test_cv}" ] || "${python}" -m espnet2_ext.bin.combine_data_dirs data/test_cv ${parts_test_cv}
