#!/usr/bin/env bash
# Contextual-biasing evaluation (issue #29; README "Contextual biasing" > "Evaluating biasing"), after ./run.sh (and
# its seeds) trained the models. Thin: lists, scores, records, the choice and the report are espnet2_ext CLIs;
# decoding is tokenverse.sh's stage 6 through ./run.sh (so the main command's decoding options hold), each setting
# into ${out}/decodes/<model>/<setting>/decode_<tasks>/<set> (--decode_root). Scoring is tokenverse_score
# --utt2biasing per decode and list, not tokenverse.sh's stage 7 (which rewrites RESULTS.md).
#  1 lists: reference entities + N distractors per utterance / conversation / language (make_biasing_lists)
#  2 tune: ${tune_models} decode ${tune_sets} without a list and with every mode x weight (lists: ${tune_kind},
#    N ${tune_n}); mode rescore's "weight" is its phrase bonus (--biasing_rescore_bonus), tried over ${rescore_bonuses}
#  3 choose the weight per mode and the default mode on the tune sets only (biasing_report choose -> chosen.txt)
#  4 test: ${models} decode ${test_sets} once without a list and once per mode (its chosen weight) x kind x N
#  5 results/biasing/tables.json (targets with verdicts, no-list numbers per seed, the N x kind x mode table), the
#    record from which results_tables regenerates RESULTS_biasing.md
#   ./run_biasing.sh                                        # all of it (3 models: about 120 decodes of 32-60 utts)
#   ./run_biasing.sh --models train --distractors "0 100"   # one seed, small lists
# dev_partial (the read-speech dev set): ./run.sh --stage 1 --stop_stage 2 --data_opts "--train_read 400 --dev_read 8"
#   --test_sets dev_partial   (the other data dirs stay what they are)
set -euo pipefail
cd "$(dirname "$0")"

stage=1; stop_stage=5
models="train train_seed1 train_seed2"   # asr tags: ${expdir}/asr_<tag> (training seed read from its config.yaml)
tune_models="train"                      # their dev decodes choose weight and mode (mean over them)
expdir=exp
out=""                                   # lists, decodes, records, chosen.{json,txt}
                                         # (default exp_biasing/lists_seed<list_seed>)
list_seed=0                              # seed of the distractor draws
corpus_seed=0                            # local/data.sh --seed: entities of read speech (no [NE] in its text)
tune_sets="dev dev_partial"
test_sets="test test_partial"
kinds="utt conv lang"
distractors="0 100 500 1000"
tune_kind=utt; tune_n=100                # the lists the choice is made with (the targets' setting)
modes="ungated gated rescore"           # rescore: the search unbiased, then [NE] spans re-decided among the list
weights="1 2 3 4"                        # --biasing_weight values tried on the tune sets (ungated, gated)
rescore_bonuses="5 10 15"                # --biasing_rescore_bonus values tried on the tune sets (rescore)
close_bonus=""                           # --biasing_close_bonus of gated decodes (empty: the decoder's default)
activation=asr,scd,endp,ner,lid
train_text=data/train_read400/text       # the seen / unseen entity split
languages=en,de,es,fr
command="$(printf '%q ' ./run_biasing.sh "$@")"  # shown under the report's commands

. ./parse_options.sh  # --name value -> $name (egs2/TEMPLATE/tokenverse1/parse_options.sh)
. ./path.sh
out="${out:-exp_biasing/lists_seed${list_seed}}"  # another list seed never reuses these decodes
run_stage() { [ "${stage}" -le "$1" ] && [ "${stop_stage}" -ge "$1" ]; }
log() { echo "$(date '+%H:%M:%S') $*"; }
act_tag="$(${python} -m espnet2_ext.bin.activation_tag "${activation}")"
chosen_txt="${out}/chosen.txt"

decode() {  # <model> <set> <setting> [asr_inference options]: tokenverse.sh stage 6 (kept when already complete)
  local model=$1 dset=$2 setting=$3; shift 3
  local root="${out}/decodes/${model}/${setting}"
  log "decoding ${dset} with ${model}, ${setting}"
  mkdir -p "${root}"
  ./run.sh --stage 6 --stop_stage 6 --expdir "${expdir}" --asr_tag "${model}" --test_sets "${dset}" \
    --activation_sets "${activation}" --decode_root "${root}" --inference_args "$*" > "${root}/run_${dset}.log" 2>&1 \
    || { tail -n 20 "${root}/run_${dset}.log" >&2; exit 1; }
}

score() {  # <model> <set> <setting> <kind> <N> <mode> <weight> <tune|test>: score against a list, one record
  local model=$1 dset=$2 setting=$3 kind=$4 n=$5 mode=$6 weight=$7 st=$8
  local d="${out}/decodes/${model}/${setting}/decode_${act_tag}/${dset}"
  local lists="${out}/lists/${dset}/${kind}_n${n}/utt2biasing"
  [ -f "${lists}" ] || return 0  # a kind not made for this set (conv where each utterance is its own conversation)
  ${python} -m espnet2_ext.bin.tokenverse_score --ref "dump/raw/${dset}/text" --hyp "${d}/1best_recog/text" \
    --task_activation "${activation}" --languages "${languages}" --utt2lang "dump/raw/${dset}/utt2lang" \
    --train_text "${train_text}" --utt2biasing "${lists}" --model "${model}" --test_set "${dset}" \
    --out_json "${d}/score_${kind}_n${n}.json" > "${d}/score_${kind}_n${n}.txt"
  local opts=()
  [ "${mode}" = none ] || opts+=(--weight "${weight}")
  [ ! -f "${d}/decode_stats.json" ] || opts+=(--decode_stats "${d}/decode_stats.json")
  ${python} -m espnet2_ext.bin.biasing_report record --score "${d}/score_${kind}_n${n}.json" \
    --config "${expdir}/asr_${model}/config.yaml" --model "${model}" --set "${dset}" --kind "${kind}" --n "${n}" \
    --mode "${mode}" --list_seed "${list_seed}" --stage "${st}" "${opts[@]}" \
    --out "${out}/records/${st}/${model}/${dset}/${setting}_${kind}_n${n}.json"
}

bias_opts() {  # <set> <kind> <N> <mode> <weight>: asr_inference options of a biased decode
  local o="--utt2biasing ${out}/lists/$1/$2_n$3/utt2biasing --biasing_mode $4"
  if [ "$4" = rescore ]; then o+=" --biasing_rescore_bonus $5"; else o+=" --biasing_weight $5"; fi
  if [ "$4" = gated ] && [ -n "${close_bonus}" ]; then o+=" --biasing_close_bonus ${close_bonus}"; fi
  echo "${o}"
}

values_of() { if [ "$1" = rescore ]; then echo "${rescore_bonuses}"; else echo "${weights}"; fi; }

biased() {  # <model> <set> <kind> <N> <mode> <weight> <tune|test>: one biased decode and its record
  local setting="$5_w$6_$3_n$4"
  # shellcheck disable=SC2046
  decode "$1" "$2" "${setting}" $(bias_opts "$2" "$3" "$4" "$5" "$6")
  score "$1" "$2" "${setting}" "$3" "$4" "$5" "$6" "$7"
}

if run_stage 1; then
  log "stage 1: lists (seed ${list_seed}, N = ${distractors}, kinds ${kinds}) -> ${out}/lists"
  for dset in ${tune_sets} ${test_sets}; do
    [ -f "dump/raw/${dset}/text" ] || { echo "$0: dump/raw/${dset} missing: run ./run.sh first (dev_partial: see" \
      "the head of this script)" >&2; exit 1; }
    ${python} -m espnet2_ext.bin.make_biasing_lists --data_dir "dump/raw/${dset}" --out_dir "${out}/lists/${dset}" \
      --seed "${list_seed}" --distractors "${distractors}" --kinds "${kinds}" --corpus_seed "${corpus_seed}" >/dev/null
  done
fi

tune() {  # <model> <set>: the no-list decode and every mode x weight with the tune lists
  local mode w
  [ -f "${out}/lists/$2/${tune_kind}_n${tune_n}/utt2biasing" ] || { echo "$0: no ${tune_kind} lists with" \
    "${tune_n} distractors for $2: --tune_kind/--tune_n must be among --kinds/--distractors (stage 1)" >&2; exit 1; }
  decode "$1" "$2" none
  score "$1" "$2" none "${tune_kind}" "${tune_n}" none "" tune
  for mode in ${modes}; do
    for w in $(values_of "${mode}"); do biased "$1" "$2" "${tune_kind}" "${tune_n}" "${mode}" "${w}" tune; done
  done
}

weight_of() { awk -v m="$1" '$1 == m {print $2}' "${chosen_txt}"; }
test_decodes() {  # <model> <set>: the no-list decode, then each mode (its chosen weight) x kind x N
  local kind n mode w
  decode "$1" "$2" none
  for kind in ${kinds}; do
    for n in ${distractors}; do score "$1" "$2" none "${kind}" "${n}" none "" test; done
  done
  for mode in ${modes}; do
    w="$(weight_of "${mode}")"
    [ -n "${w}" ] || { echo "$0: no weight chosen for mode ${mode} in ${chosen_txt}: tune it (stage 2-3)" >&2; exit 1; }
    for kind in ${kinds}; do
      for n in ${distractors}; do
        [ ! -f "${out}/lists/$2/${kind}_n${n}/utt2biasing" ] || biased "$1" "$2" "${kind}" "${n}" "${mode}" "${w}" test
      done
    done
  done
}

each_model_and_set() {  # <models> <sets> <function>: the function for every (model, set)
  local model dset
  for model in $1; do for dset in $2; do "$3" "${model}" "${dset}"; done; done
}

if run_stage 2; then
  log "stage 2: tuning decodes of ${tune_models} on ${tune_sets} (modes ${modes}, weights ${weights}, rescore" \
    "bonuses ${rescore_bonuses})"
  each_model_and_set "${tune_models}" "${tune_sets}" tune
fi

if run_stage 3; then
  log "stage 3: weight and mode from ${tune_sets} -> ${chosen_txt}"
  ${python} -m espnet2_ext.bin.biasing_report choose --records "${out}/records/tune" --tune_sets "${tune_sets}" \
    --kind "${tune_kind}" --n "${tune_n}" --out "${out}/chosen.json" > "${chosen_txt}"
  cat "${chosen_txt}"
fi

if run_stage 4; then
  [ -f "${chosen_txt}" ] || { echo "$0: ${chosen_txt} missing: run stage 3 first" >&2; exit 1; }
  log "stage 4: test decodes of ${models} on ${test_sets}"
  each_model_and_set "${models}" "${test_sets}" test_decodes
fi

if run_stage 5; then
  log "stage 5: results/biasing/tables.json, RESULTS_biasing.md regenerated"
  ${python} -m espnet2_ext.bin.results_tables --recipe . --biasing_out "${out}" --biasing_command "${command% }" \
    --commit "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" --date "$(date -u +%F)"
fi
log "done (stages ${stage}-${stop_stage})"
