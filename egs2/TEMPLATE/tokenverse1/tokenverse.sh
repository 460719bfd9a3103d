#!/usr/bin/env bash
# TokenVerse++ recipe stages, shared by every egs2/*/asr1 recipe (ESPnet's TEMPLATE idea).
# Each stage is a thin call into espnet2_ext's Python CLIs; no ESPnet git checkout or Kaldi needed.
#
#  1 data prep (local/data.sh)       2 validate + format into dump/raw    3 tag-aware BPE tokenizer
#  4 statistics (shape files)        5 training                           6 decoding per task-activation set
#  7 scoring + RESULTS.md            8 pack the model                     9 model-hub upload (dry-run unless --hub_push true)
set -euo pipefail

log() { printf '%s (%s) %s\n' "$(date '+%Y-%m-%dT%H:%M:%S')" "${BASH_SOURCE[1]##*/}:${BASH_LINENO[0]}" "$*"; }
stage_banner() { log "=== Stage $1: $2 ==="; }

# ---- options (override on the command line: --name value) -------------------------------------------------
stage=1; stop_stage=9
python=python                    # set by path.sh to the project venv
nj=2                             # parallel jobs (data prep, decoding)
ngpu=0                           # GPUs per node; > 1 or num_nodes > 1: ESPnet's launcher (needs cuda_cmd)
num_nodes=1
cuda_cmd=""                      # Kaldi-style job script for ESPnet's launcher: utils/run.pl, utils/slurm.pl, ...
cpu_procs=1                      # > 1 (with ngpu 0): CPU DDP, this many gloo processes started by torchrun
data_opts=""                     # extra options for local/data.sh
train_set=train; valid_set=dev; test_sets="test"
languages="en,de,es,fr"          # language tokens of the task spec
tasks="asr,scd,endp,ner,lid"
nbpe=150
bpe_train_text=""                # default: data/${train_set}/text
asr_config=conf/train.yaml
asr_tag=""                       # default: from the config name
asr_args=""                      # extra options for asr_train
tokens_from_config=false         # true: the config names tokenizer, token list and tasks (an extended experiment's,
                                 # run_extend.sh); stages 4-5 then pass none of their own
stats_dir=""                     # stage 4's shape files (default: ${expdir}/asr_stats_<train_set>_bpe<nbpe>)
inference_config=conf/decode.yaml  # "": none (the decoder's defaults and --inference_args only)
inference_args=""
inference_model=valid.loss.best.pth
activation_sets="asr,scd,endp,ner,lid asr asr,scd asr,endp asr,ner asr,lid"  # space-separated sets
decode_batch_size=8
decode_root=""                   # where stage 6 writes decode_<tasks>/<set> (default: the model's exp dir)
model_name=""                    # the model column of stage 7's scores (default: the asr tag)
score_args=""                    # extra tokenverse_score options, e.g. "--extra_tasks qst=[Q]"
expdir=exp
dumpdir=dump
results_md=RESULTS.md            # "": stage 7 only scores (for a caller that writes its own report)
hub_repo=""                      # e.g. yourname/tokenverse_mini
hub_push=false

. ./parse_options.sh  # --name value -> $name (egs2/TEMPLATE/tokenverse1/parse_options.sh)

[ -f path.sh ] && . ./path.sh
[ -n "${asr_tag}" ] || asr_tag="$(basename "${asr_config}" .yaml)"
asr_exp="${expdir}/asr_${asr_tag}"
decode_root="${decode_root:-${asr_exp}}"
stats_dir="${stats_dir:-${expdir}/asr_stats_${train_set}_bpe${nbpe}}"
model_name="${model_name:-${asr_tag}}"
token_dir="data/token_list/bpe${nbpe}"
bpe_train_text="${bpe_train_text:-data/${train_set}/text}"
all_sets="${train_set} ${valid_set} ${test_sets}"

run_stage() { [ "${stage}" -le "$1" ] && [ "${stop_stage}" -ge "$1" ]; }

if run_stage 1; then
  stage_banner 1 "data preparation (local/data.sh ${data_opts})"
  # shellcheck disable=SC2086
  local/data.sh ${data_opts}
fi

if run_stage 2; then
  stage_banner 2 "validate and format data dirs into ${dumpdir}/raw"
  for x in ${all_sets}; do
    log "validating data/${x}"
    ${python} -m espnet2_ext.bin.validate_data_dir "data/${x}" --check_audio --languages "${languages}" --tasks "${tasks}"
    ${python} -m espnet2_ext.bin.format_data_dir "data/${x}" "${dumpdir}/raw/${x}"
  done
fi

if run_stage 3; then
  stage_banner 3 "tokenizer: sentencepiece BPE (${nbpe}) with task tokens as atomic symbols"
  ${python} -m espnet2_ext.bin.train_tokenizer --text "${bpe_train_text}" --out_dir "${token_dir}" \
    --vocab_size "${nbpe}" --languages "${languages}" --compare_plain
fi

train_data_opts() {  # $1 = train|valid, $2 = dump dir
  echo "--${1}_data_path_and_name_and_type $2/wav.scp,speech,sound" \
       "--${1}_data_path_and_name_and_type $2/text,text,text" \
       "--${1}_data_path_and_name_and_type $2/utt2tasks,tasks,text"
}
common_train_opts="--token_type bpe --bpemodel ${token_dir}/bpe.model --token_list ${token_dir}/tokens.txt
  --tokenverse_conf tasks=[${tasks}] --tokenverse_conf languages=[${languages}] --ngpu ${ngpu}"
[ "${tokens_from_config}" = false ] || common_train_opts="--ngpu ${ngpu}"

if run_stage 4; then
  stage_banner 4 "statistics: shape files for length-sorted batching (${stats_dir})"
  # Shapes only (extract_feats_in_collect_stats: false): one CPU process is enough, whatever --ngpu says.
  mkdir -p "$(dirname "${stats_dir}")"
  # shellcheck disable=SC2046,SC2086
  ${python} -m espnet2_ext.bin.asr_train --collect_stats true --config "${asr_config}" ${common_train_opts} \
    --use_preprocessor true --num_workers 0 --batch_type unsorted --batch_size 4 --ngpu 0 \
    $(train_data_opts train "${dumpdir}/raw/${train_set}") $(train_data_opts valid "${dumpdir}/raw/${valid_set}") \
    --train_shape_file "${dumpdir}/raw/${train_set}/wav.scp" --valid_shape_file "${dumpdir}/raw/${valid_set}/wav.scp" \
    --output_dir "${stats_dir}" > "${stats_dir}.log" 2>&1 || { tail -n 20 "${stats_dir}.log"; exit 1; }
  log "shape files in ${stats_dir}/{train,valid}"
fi

if run_stage 5; then
  stage_banner 5 "training ${asr_exp} (config ${asr_config}); log: ${asr_exp}/train.log"
  mkdir -p "${asr_exp}"
  # The trainer is ESPnet's; these only choose how its processes start (README: "Distributed training").
  train_exec=("${python}" -m espnet2_ext.bin.asr_train); dist_opts=""; train_log="${asr_exp}/train.log"
  if [ "${ngpu}" -gt 1 ] || [ "${num_nodes}" -gt 1 ]; then
    [ -n "${cuda_cmd}" ] || { log "--ngpu ${ngpu} --num_nodes ${num_nodes} trains through ESPnet's launcher: set" \
      "--cuda_cmd to a Kaldi-style job script (utils/run.pl or utils/slurm.pl from ESPnet's egs2/TEMPLATE/asr1)"; exit 1; }
    # The launcher writes ${asr_exp}/train.log itself (one process per GPU, per node through cuda_cmd).
    train_exec=("${python}" -m espnet2.bin.launch --cmd "${cuda_cmd} --name ${asr_exp}/train" --log "${train_log}"
      --ngpu "${ngpu}" --num_nodes "${num_nodes}" --init_file_prefix "${asr_exp}/.dist_init_"
      --multiprocessing_distributed true -- "${train_exec[@]}")
    train_log="${asr_exp}/launch.log"
  elif [ "${cpu_procs}" -gt 1 ]; then
    train_exec=("${python}" -m torch.distributed.run --standalone --nproc_per_node "${cpu_procs}"
      -m espnet2_ext.bin.asr_train)
    dist_opts="--multiprocessing_distributed false --dist_backend gloo"
  fi
  # --resume true: re-running this stage after a kill continues from ${asr_exp}/checkpoint.pth.
  # shellcheck disable=SC2046,SC2086
  "${train_exec[@]}" --config "${asr_config}" ${common_train_opts} --use_preprocessor true \
    $(train_data_opts train "${dumpdir}/raw/${train_set}") $(train_data_opts valid "${dumpdir}/raw/${valid_set}") \
    --train_shape_file "${stats_dir}/train/speech_shape" --valid_shape_file "${stats_dir}/valid/speech_shape" \
    --resume true --output_dir "${asr_exp}" ${dist_opts} ${asr_args} 2>&1 | tee -a "${train_log}" \
    | grep --line-buffered -E "epoch results|started|finished|Error|error" || true
  [ -f "${asr_exp}/${inference_model}" ] || { log "training did not produce ${asr_exp}/${inference_model}; see ${asr_exp}/train.log"; exit 1; }
fi

# decode_<tag> as decode_activation_sets names it (canonical task order): one definition, in Python
act_tag() { ${python} -m espnet2_ext.bin.activation_tag "$1"; }
if run_stage 6; then
  stage_banner 6 "decoding ${test_sets} with activation sets: ${activation_sets}"
  test_dirs=""; for dset in ${test_sets}; do test_dirs+=" ${dumpdir}/raw/${dset}"; done
  # One model load for every (activation set, test set); each decode dir appears only when complete.
  mkdir -p "${decode_root}"
  # shellcheck disable=SC2086
  ${python} -m espnet2_ext.bin.decode_activation_sets ${inference_config:+--config "${inference_config}"} --ngpu "${ngpu}" \
    --asr_train_config "${asr_exp}/config.yaml" --asr_model_file "${asr_exp}/${inference_model}" \
    --test_dirs ${test_dirs} --activation_sets ${activation_sets} --output_root "${decode_root}" \
    --batch_size "${decode_batch_size}" ${inference_args} 2> "${decode_root}/decode.log" \
    || { tail -n 20 "${decode_root}/decode.log"; exit 1; }
fi

if run_stage 7; then
  stage_banner 7 "scoring (WER, SCD/ENDP/NER F1, LID accuracy, ITT; time-based where utt2turns exists) -> ${results_md}"
  for act in ${activation_sets}; do
    for dset in ${test_sets}; do
      d="${decode_root}/decode_$(act_tag "${act}")/${dset}"
      [ -f "${d}/1best_recog/text" ] || { log "  ${d}: not decoded, skipped"; continue; }
      # shellcheck disable=SC2086
      ${python} -m espnet2_ext.bin.tokenverse_score --ref "${dumpdir}/raw/${dset}/text" --hyp "${d}/1best_recog/text" \
        --task_activation "${act}" --languages "${languages}" --utt2lang "${dumpdir}/raw/${dset}/utt2lang" \
        --model "${model_name}" --test_set "${dset}" --out_json "${d}/score.json" ${score_args} > "${d}/score.txt"
    done
  done
fi

# the report part of stage 7; --results_md "": scores only (a caller that writes its own report)
if run_stage 7 && [ -n "${results_md}" ]; then
  ${python} -m espnet2_ext.bin.task_vector_analysis --model_file "${asr_exp}/${inference_model}" \
    --config "${asr_exp}/config.yaml" --out_dir "${asr_exp}/task_vectors" \
    || log "  (no task-vector analysis for ${asr_tag})"
  # One test conversation drawn (first activation set, first test set), when that set has reference turn times.
  first_act="${activation_sets%% *}"; first_set="${test_sets%% *}"
  d="${decode_root}/decode_$(act_tag "${first_act}")/${first_set}"
  if [ -f "${dumpdir}/raw/${first_set}/utt2turns" ] && [ -f "${d}/1best_recog/events.jsonl" ]; then
    ${python} -m espnet2_ext.bin.plot_conversation --data_dir "${dumpdir}/raw/${first_set}" --decode_dir "${d}" \
      --out "$(dirname "${results_md}")/images/conversation_${asr_tag}.png" || log "  (no conversation figure)"
  fi
  # results/<asr_tag>.json = this model's record (the recipe's test sets only: a dev decode made to choose a setting
  # stays out); then every RESULTS*.md beside ${results_md} is regenerated from all records (results_tables)
  ${python} -m espnet2_ext.bin.results_tables --recipe "$(dirname "${results_md}")" --results_md "${results_md}" \
    --record "${asr_exp}" --decode_root "${decode_root}" --model "${asr_tag}" --kind run \
    --model_file "${inference_model}" --test_sets "${test_sets}" --corpus_stats data/corpus_stats.md \
    --commit "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" --date "$(date '+%Y-%m-%d')" \
    --train_command "tokenverse.sh --stage 5 --stop_stage 5 --train_set ${train_set} --asr_config ${asr_config} --asr_tag ${asr_tag}${asr_args:+ --asr_args '${asr_args}'}" \
    --decode_command "tokenverse.sh --stage 6 --stop_stage 7 --asr_tag ${asr_tag} --inference_config ${inference_config} --inference_model ${inference_model}${inference_args:+ --inference_args '${inference_args}'}"
  log "wrote ${results_md}"
fi

if run_stage 8; then
  stage_banner 8 "packing ${asr_exp}/model.zip (ESPnet's packer)"
  # ESPnet's packer writes its zip in place: pack beside it and rename, so a kill never leaves half a model.zip.
  ${python} -m espnet2.bin.pack asr --asr_train_config "${asr_exp}/config.yaml" \
    --asr_model_file "${asr_exp}/${inference_model}" --option "${token_dir}/bpe.model" --option "${results_md}" \
    --option "${asr_exp}/task_vectors" --outpath "${asr_exp}/.model.partial.zip"
  mv -f "${asr_exp}/.model.partial.zip" "${asr_exp}/model.zip"
  log "packed: ${asr_exp}/model.zip"
fi

if run_stage 9; then
  repo="${hub_repo:-espnet2_ext/$(basename "$(cd .. && pwd)")_${asr_tag}}"
  push_opt=""; [ "${hub_push}" = true ] && push_opt="--push"
  stage_banner 9 "model-hub upload of ${asr_exp}/model.zip to ${repo} (${push_opt:-dry-run})"
  # shellcheck disable=SC2086
  ${python} -m espnet2_ext.bin.upload_model --packed_model "${asr_exp}/model.zip" --repo_id "${repo}" \
    --out_dir "${asr_exp}/hub_upload" --results_md "${results_md}" ${push_opt}
fi
log "done (stages ${stage}-${stop_stage})"
