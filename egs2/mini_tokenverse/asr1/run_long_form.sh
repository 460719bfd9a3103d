#!/usr/bin/env bash
# Long-form decoding on mini_tokenverse (issue #30, README "Long-form decoding"): whole recordings made from the
# test conversations (data/lf_conv: one recording per language; data/lf_<N>min: every conversation in turn,
# repeated to N minutes), decoded with asr_inference --long_form segment, and the same audio decoded per utterance
# and placed in the recordings' clock; both scored with tokenverse_score (WER, SCD/ENDP F1, time metrics from the
# generator's turn times); peak RSS and wall time of each long-form decode measured; stage 4 keeps the scores and
# measurements as records (results/${records}/) and regenerates RESULTS_long_form.md from them.
# Stage 5 measures the cut rules (tags across cuts) on dev recordings (data/dev_lf_conv): records in
# results/${records}/dev_rule_<rule>/, RESULTS_long_form_dev.md regenerated.
#   ./run.sh                                   # the main command: data, model, exp/asr_train/model.zip
#   ./run_long_form.sh                         # stages 1-5
#   ./run_long_form.sh --minutes 10 --stage 3  # a slice
set -euo pipefail
cd "$(dirname "$0")"

model_file=exp/asr_train/model.zip
asr_train_config=""              # instead of --model_file: an experiment's config.yaml ...
asr_model_file=""                # ... and its checkpoint
decode_config=conf/decode.yaml
test_set=test
dev_set=dev
minutes=10,60
activation=asr,scd,endp,ner,lid
languages=en,de,es,fr
batch_size=4
cut_rule=context
context_s=2
target_segment_s=10
max_segment_s=20
vad=silero
dev_rules="none scd context"
exp=exp/long_form
records=long_form                # results/<records>/: long_form (the main model), long_form_seed<k> (the others)
stage=1
stop_stage=5

. ./parse_options.sh  # --name value -> $name (egs2/TEMPLATE/tokenverse1/parse_options.sh)
. ./path.sh
if [ -n "${asr_train_config}" ]; then
  model_opts=(--asr_train_config "${asr_train_config}" --asr_model_file "${asr_model_file}")
else
  [ -f "${model_file}" ] || { echo "$0: ${model_file} missing: run ./run.sh first (its stage 8 packs it)" >&2; exit 1; }
  model_opts=(--model_file "${model_file}")
fi
for dset in ${test_set} ${dev_set}; do  # --test_set "": only the dev measurement (stage 5)
  [ -f "data/${dset}/utt2turns" ] || { echo "$0: data/${dset}/utt2turns missing: run ./run.sh --stop_stage 1" >&2; exit 1; }
done
log() { echo "$(date '+%H:%M:%S') $*"; }
sets=""; [ -z "${test_set}" ] || { sets="lf_conv"; for m in ${minutes//,/ }; do sets+=" lf_${m}min"; done; }
mkdir -p "${exp}"
decode=("${python}" -m espnet2_ext.bin.asr_inference --config "${decode_config}" "${model_opts[@]}"
        --task_activation "${activation}" --batch_size "${batch_size}" --num_workers 0 --ngpu 0)
score() {  # <data dir> <decode dir> <json>
  "${python}" -m espnet2_ext.bin.tokenverse_score --ref "$1/text" --hyp "$2/1best_recog/text" \
    --task_activation "${activation}" --languages "${languages}" --out_json "$3" > "${3%.json}.txt"
}
long_opts() {  # <cut rule>
  echo --long_form segment --cut_rule "$1" --context_s "${context_s}" --target_segment_s "${target_segment_s}" \
    --max_segment_s "${max_segment_s}" --vad "${vad}"
}

if [ "${stage}" -le 1 ] && [ "${stop_stage}" -ge 1 ]; then
  log "stage 1: long-form sets from data/${test_set} (${sets}) and data/${dev_set} (dev_lf_conv)"
  [ -z "${test_set}" ] || "${python}" -m espnet2_ext.bin.long_form_eval make --src "data/${test_set}" \
    --out_root data --wav_dir "downloads/long_form/${test_set}" --minutes "${minutes}"
  [ -z "${dev_set}" ] || "${python}" -m espnet2_ext.bin.long_form_eval make --src "data/${dev_set}" \
    --out_root data --wav_dir "downloads/long_form/${dev_set}" --minutes "" --prefix dev_
fi

if [ "${stage}" -le 2 ] && [ "${stop_stage}" -ge 2 ]; then
  for dset in ${test_set} ${dev_set}; do  # --dev_set "": test only
    log "stage 2: per-utterance decoding of data/${dset} -> ${exp}/utt_${dset}"
    "${decode[@]}" --long_form none --data_path_and_name_and_type "data/${dset}/wav.scp,speech,sound" \
      --output_dir "${exp}/utt_${dset}" 2> "${exp}/utt_${dset}.log" || { tail -n 20 "${exp}/utt_${dset}.log"; exit 1; }
  done
  for s in ${sets} ${dev_set:+dev_lf_conv}; do
    src="${test_set}"; [ "${s}" = dev_lf_conv ] && src="${dev_set}"
    "${python}" -m espnet2_ext.bin.long_form_eval place --ref_segments "data/${s}/ref_segments" \
      --utt_decode "${exp}/utt_${src}" --out_dir "${exp}/${s}/per_utt"
    score "data/${s}" "${exp}/${s}/per_utt" "${exp}/${s}/score_utt.json"
  done
fi

if [ "${stage}" -le 3 ] && [ "${stop_stage}" -ge 3 ]; then
  for s in ${sets}; do
    audio=$(awk '{s += $2} END {print s}' "data/${s}/utt2dur")
    log "stage 3: long-form decoding of data/${s} (${audio} s) -> ${exp}/${s}/long"
    # shellcheck disable=SC2046
    "${python}" -m espnet2_ext.bin.long_form_eval measure --out_json "${exp}/${s}/run_long.json" --audio_s "${audio}" \
      -- "${decode[@]}" $(long_opts "${cut_rule}") --data_path_and_name_and_type "data/${s}/wav.scp,speech,sound" \
      --output_dir "${exp}/${s}/long" 2> "${exp}/${s}/long.log" || { tail -n 20 "${exp}/${s}/long.log"; exit 1; }
    score "data/${s}" "${exp}/${s}/long" "${exp}/${s}/score_long.json"
  done
fi

if [ "${stage}" -le 4 ] && [ "${stop_stage}" -ge 4 ] && [ -n "${sets}" ]; then
  log "stage 4: records -> results/${records}/, RESULTS_long_form.md regenerated"
  "${python}" -m espnet2_ext.bin.results_tables --recipe . --long_form "${exp}" --long_form_name "${records}" \
    --long_form_sets "${sets}"
fi

if [ "${stage}" -le 5 ] && [ "${stop_stage}" -ge 5 ]; then
  for rule in ${dev_rules}; do
    d="${exp}/dev_rule_${rule}"
    log "stage 5: dev_lf_conv with --cut_rule ${rule} -> ${d}"
    mkdir -p "${d}/dev_lf_conv"
    cp "${exp}/dev_lf_conv/score_utt.json" "${d}/dev_lf_conv/score_utt.json"
    # shellcheck disable=SC2046
    audio=$(awk '{s += $2} END {print s}' data/dev_lf_conv/utt2dur)
    "${python}" -m espnet2_ext.bin.long_form_eval measure --out_json "${d}/dev_lf_conv/run_long.json" \
      --audio_s "${audio}" -- "${decode[@]}" $(long_opts "${rule}") --data_path_and_name_and_type "data/dev_lf_conv/wav.scp,speech,sound" \
      --output_dir "${d}/dev_lf_conv/long" 2> "${d}.log" || { tail -n 20 "${d}.log"; exit 1; }
    score data/dev_lf_conv "${d}/dev_lf_conv/long" "${d}/dev_lf_conv/score_long.json"
  done
  log "stage 5: records -> results/${records}/dev_rule_*/, RESULTS_long_form_dev.md regenerated"
  "${python}" -m espnet2_ext.bin.results_tables --recipe . --long_form "${exp}" --long_form_name "${records}" \
    --long_form_dev_rules "${dev_rules}"
fi
