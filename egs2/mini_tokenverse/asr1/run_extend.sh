#!/usr/bin/env bash
# Grow the trained mini model (./run.sh) by (a) a new auxiliary task, questions ("qst", [Q] after a question
# turn, data annotated asr + qst only) and (b) a new language, Italian (asr + lid only); train only what is new
# (--freeze_old true, the default) or everything (--freeze_old false), then decode and score old and new test sets.
#   ./run_extend.sh                                            after ./run.sh (base: exp/asr_train)
#   ./run_extend.sh --data_opts "--size debug" --train_set train --asr_config conf/train_debug.yaml   smoke test
#   ./run_extend.sh --stage 3 --ext_tag train_ext_s1 --asr_args "--seed 1" --decode_base false   another seed
#   ./run_extend.sh --stage 2 --replay_per_lang 110 --ext_sets_suffix _r110 --ext_tag train_ext_r110 ...  other replay
#
# Replay (against forgetting): --replay_per_lang N old training utterances per language (and --replay_dev_per_lang
# of the old dev set), annotated for --replay_tasks (default: every old task; espnet2_ext.bin.make_replay_subset),
# are mixed into ext_train/ext_dev, so the new rows also see the old languages and tasks; 0 = none.
#
#  1 extension data (local/data.sh --extension qst|it)   2 format + replay + combine (ext_train, ext_dev)
#  3 extend the base model (espnet2_ext.bin.extend_model)  4 statistics   5 training   6 decoding   7 scoring + records
# Stage 7 writes a record (kind extend) per decoded model, results/<model>.json, and regenerates RESULTS_extend.md
# from every extend record (other seeds and settings: their own runs' records).
# Stages 1 and 4-7 are tokenverse.sh's (through ./run.sh, with the extended experiment's config, data and decodes).
set -euo pipefail
cd "$(dirname "$0")"
log() { printf '%s (%s) %s\n' "$(date '+%Y-%m-%dT%H:%M:%S')" "run_extend.sh" "$*"; }
stage_banner() { log "=== Stage $1: $2 ==="; }

stage=1; stop_stage=7
data_opts=""                 # as given to ./run.sh (the extension data uses the same size and seed)
asr_config=conf/train.yaml   # the base model's config (names the base exp dir)
base_model=valid.loss.best.pth
freeze_old=true              # train only the new token rows and task-vector rows
also_train=""                # with freeze_old: modules trained in full, e.g. joint_network,decoder
ext_tag=""                   # default: <base tag>_ext (or _ext_all with --freeze_old false)
asr_args=""                  # extra options for asr_train (e.g. --max_epoch 10 --seed 1)
replay_per_lang=70           # old training utterances per language replayed (0: none); 70 = every conversation of
                             # the base train set (chosen on dev, RESULTS_extend.md)
replay_dev_per_lang=8        # the same from the old dev set into ext_dev (8 = all of it)
replay_seed=0                # which utterances are drawn
replay_tasks=""              # tasks the replayed utterances keep (only utterances annotated for all of them are
                             # drawn); "" = every task of the base model, so the new rows also see the old tasks'
                             # conditioning; asr,lid also draws read speech (the runs before; worse for old LID on dev)
train_set=train_read400; valid_set=dev  # the base model's data in ${dumpdir}/raw (replay sources): ./run.sh's;
                             # --train_set train for a base trained on data/train (RESULTS_extend.md's, the
                             # main command before 2026-12-01; the conversations, hence the default replay, are the same)
ext_sets_suffix=""           # ext_train<suffix>, ext_dev<suffix>, replay_*<suffix>: runs with different replay
                             # settings side by side (e.g. _r110), instead of overwriting each other's data
decode_base=true             # stage 6 also decodes the base and the untrained extended model (false: only the
                             # trained one, e.g. for further seeds of the same base)
decode_dev=false             # stage 6 also decodes the dev sets with the trained model (it_dev, qst_dev and the old
                             # ${valid_set} with every old task: for choosing settings without looking at test)
setting=rconv_tv             # stage 7: the row of results/recipe/extend.json this run's options make (the
                             # defaults: replay 70 conversations / language, every old task, freeze_old)
inference_config=conf/decode.yaml
decode_batch_size=8
ngpu=0
expdir=exp; dumpdir=dump
. ./parse_options.sh  # --name value -> $name (egs2/TEMPLATE/tokenverse1/parse_options.sh)
. ./path.sh

base_tag="$(basename "${asr_config}" .yaml)"
base_exp="${expdir}/asr_${base_tag}"
[ -n "${ext_tag}" ] || { ext_tag="${base_tag}_ext"; [ "${freeze_old}" = true ] || ext_tag="${base_tag}_ext_all"; }
ext_exp="${expdir}/asr_${ext_tag}"
languages="en,de,es,fr,it"; tasks="asr,scd,endp,ner,lid,qst"
run_stage() { [ "${stage}" -le "$1" ] && [ "${stop_stage}" -ge "$1" ]; }
# tokenverse.sh's stages for the extended experiment; --results_md "": its stage 7 scores, the report is ours
run=(./run.sh --expdir "${expdir}" --dumpdir "${dumpdir}" --ngpu "${ngpu}" --languages "${languages}" --results_md "")

if run_stage 1; then
  stage_banner 1 "extension data (qst, it)"
  "${run[@]}" --stage 1 --stop_stage 1 --data_opts "${data_opts} --extension qst"
  "${run[@]}" --stage 1 --stop_stage 1 --data_opts "${data_opts} --extension it"
fi

if run_stage 2; then
  stage_banner 2 "format into ${dumpdir}/raw; ext_train = qst_train + it_train [+ replay_train], ext_dev = qst_dev + it_dev [+ replay_dev]"
  for x in qst_train qst_dev qst_test it_train it_dev it_test; do
    ${python} -m espnet2_ext.bin.format_data_dir "data/${x}" "${dumpdir}/raw/${x}"
  done
  replay_train=""; replay_dev=""
  if [ -n "${replay_tasks}" ]; then
    replay_opts=(--tasks "${replay_tasks}")
  else  # every task of the base model (its config's tokenverse_conf)
    [ -f "${base_exp}/config.yaml" ] || { log "no ${base_exp}/config.yaml: run ./run.sh first, or pass --replay_tasks"; exit 1; }
    replay_opts=(--tasks_of_config "${base_exp}/config.yaml")
  fi
  if [ "${replay_per_lang}" -gt 0 ]; then
    ${python} -m espnet2_ext.bin.make_replay_subset "${dumpdir}/raw/${train_set}" "${dumpdir}/raw/replay_train${ext_sets_suffix}" \
      --per_lang "${replay_per_lang}" "${replay_opts[@]}" --seed "${replay_seed}"
    replay_train="${dumpdir}/raw/replay_train${ext_sets_suffix}"
  fi
  if [ "${replay_dev_per_lang}" -gt 0 ]; then
    ${python} -m espnet2_ext.bin.make_replay_subset "${dumpdir}/raw/${valid_set}" "${dumpdir}/raw/replay_dev${ext_sets_suffix}" \
      --per_lang "${replay_dev_per_lang}" "${replay_opts[@]}" --seed "${replay_seed}"
    replay_dev="${dumpdir}/raw/replay_dev${ext_sets_suffix}"
  fi
  # shellcheck disable=SC2086
  ${python} -m espnet2_ext.bin.combine_data_dirs "${dumpdir}/raw/ext_train${ext_sets_suffix}" "${dumpdir}/raw/qst_train" "${dumpdir}/raw/it_train" ${replay_train}
  # shellcheck disable=SC2086
  ${python} -m espnet2_ext.bin.combine_data_dirs "${dumpdir}/raw/ext_dev${ext_sets_suffix}" "${dumpdir}/raw/qst_dev" "${dumpdir}/raw/it_dev" ${replay_dev}
fi

if run_stage 3; then
  stage_banner 3 "extend ${base_exp}/${base_model} -> ${ext_exp} (+qst [Q], +it; freeze_old ${freeze_old})"
  [ -f "${base_exp}/${base_model}" ] || { log "no base model ${base_exp}/${base_model}: run ./run.sh first"; exit 1; }
  ${python} -m espnet2_ext.bin.extend_model --base "${base_exp}" --model_file "${base_exp}/${base_model}" \
    --out_dir "${ext_exp}" --overwrite true --add_task 'qst=[Q]' --add_language it \
    --freeze_old "${freeze_old}" --also_train "${also_train}"
  # ESPnet's trainer rewrites <exp>/config.yaml with its full dump (which --config does not take back): train from
  # a copy, so stage 5 can be re-run after a kill.
  cp "${ext_exp}/config.yaml" "${ext_exp}/extend_config.yaml"
fi
ext_config="${ext_exp}/extend_config.yaml"
ext_opts=(--asr_config "${ext_config}" --asr_tag "${ext_tag}" --tokens_from_config true
          --train_set "ext_train${ext_sets_suffix}" --valid_set "ext_dev${ext_sets_suffix}" --stats_dir "${ext_exp}/stats")

if run_stage 4; then
  stage_banner 4 "statistics (${ext_exp}/stats)"
  "${run[@]}" --stage 4 --stop_stage 4 "${ext_opts[@]}"
fi

if run_stage 5; then
  stage_banner 5 "training ${ext_exp} from ${ext_exp}/extended.pth; log: ${ext_exp}/train.log"
  # The ordinary trainer; --init_param is ESPnet's way to start from weights (also set in the written config).
  "${run[@]}" --stage 5 --stop_stage 5 "${ext_opts[@]}" --inference_model valid.loss.best.pth \
    --asr_args "--init_param ${ext_exp}/extended.pth ${asr_args}"
fi

decodes() {  # "<asr tag> <model file> <test set> <activation set>", one line per decode of stages 6-7
  local models="${ext_tag}:valid.loss.best.pth" tag_model tag model pairs pair
  [ "${decode_base}" = true ] && models="${base_tag}:${base_model} ${ext_tag}:extended.pth ${models}"
  for tag_model in ${models}; do
    tag="${tag_model%%:*}"; model="${tag_model##*:}"
    pairs="test:asr,scd,endp,ner,lid"  # (test set, activation set): the base model only knows the old ones
    [ "${tag}" = "${base_tag}" ] || pairs+=" it_test:asr,lid qst_test:asr,qst"
    if [ "${decode_dev}" = true ] && [ "${tag}" = "${ext_tag}" ] && [ "${model}" = valid.loss.best.pth ]; then
      pairs+=" it_dev:asr,lid qst_dev:asr,qst ${valid_set}:asr,scd,endp,ner,lid"
    fi
    for pair in ${pairs}; do echo "${tag} ${model} ${pair%%:*} ${pair##*:}"; done
  done
}

if run_stage 6 || run_stage 7; then
  from=$((stage > 6 ? stage : 6)); to=$((stop_stage < 7 ? stop_stage : 7))
  stage_banner "${from}-${to}" "decoding and scoring (old tasks on test; asr,lid on it_test; asr,qst on qst_test)"
  while read -r tag model dset act; do
    name="asr_${tag}_${model%.pth}"  # the report's model: before, untrained, after
    "${run[@]}" --stage "${from}" --stop_stage "${to}" --asr_tag "${tag}" --inference_model "${model}" \
      --inference_config "${inference_config}" --decode_batch_size "${decode_batch_size}" \
      --test_sets "${dset}" --activation_sets "${act}" --decode_root "${ext_exp}/decode_of_${name}" \
      --model_name "${name}" --score_args "--extra_tasks qst=[Q]" < /dev/null
  done < <(decodes)
fi

if run_stage 7; then
  stage_banner 7 "records results/asr_<tag>_<checkpoint>.json (before, untrained, after); RESULTS_extend.md"
  while read -r tag model; do
    name="asr_${tag}_${model%.pth}"
    case "${tag}:${model}" in  # the comparison each decoded model is in (results/recipe/extend.json)
      "${base_tag}:${base_model}") group=before; label="base seed {seed} rerun (extended here)" ;;
      "${ext_tag}:extended.pth") group=untrained; label="untrained extended" ;;
      *) group="${setting}"; label="ext seed {seed}" ;;
    esac
    ${python} -m espnet2_ext.bin.results_tables --recipe . --record "${expdir}/asr_${tag}" --kind extend \
      --model "${name}" --model_file "${model}" --decode_root "${ext_exp}/decode_of_${name}" --group "${group}" \
      --label "${label}" --commit "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" --date "$(date '+%Y-%m-%d')"
  done < <(decodes | cut -d' ' -f1,2 | uniq)
fi
log "done (stages ${stage}-${stop_stage}); tasks ${tasks}, languages ${languages}"
