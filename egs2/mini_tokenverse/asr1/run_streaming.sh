#!/usr/bin/env bash
# Streaming latency / accuracy trade-off on mini_tokenverse (README "Streaming"). Decodes a multi-chunk model chunk
# by chunk at each chunk size on ONE CPU core (asr_inference --streaming true: RTF and algorithmic latency in
# <decode dir>/streaming_stats.json), scores it with the recipe's scorer and keeps the table as a record,
# results/streaming/<tag>.json, from which results_tables generates RESULTS_streaming.md.
# "full" is the full-context reference row (whole utterances, timed the same way).
#   ./run.sh --stop_stage 4                         # data, tokenizer, shapes (once)
#   ./run_streaming.sh                              # trains conf/tuning/train_multichunk.yaml if needed (stage 5)
#   ./run_streaming.sh --train false --asr_tag train_multichunk --sizes "320 640"
# Decoding and scoring are tokenverse.sh's stages 6-7 (through ./run.sh) with --inference_args "--streaming true ...";
# a chunk size already decoded (newer than the model) is kept.
set -euo pipefail
cd "$(dirname "$0")"

asr_config=conf/tuning/train_multichunk.yaml
asr_tag=""                       # default: the config name (the model is ${expdir}/asr_<tag>)
expdir=exp
inference_model=valid.loss.best.pth
train=true                       # run stage 5 first when the model is missing
test_set=test
sizes="160 320 640 1280 full"
left_chunks=""                   # default: the model's frontend config
attention_sink_frames=""
activation=asr,scd,endp,ner,lid
search_type=modified_beam_search
beam_size=4
languages=en,de,es,fr

. ./parse_options.sh  # --name value -> $name (egs2/TEMPLATE/tokenverse1/parse_options.sh)
. ./path.sh
[ -n "${asr_tag}" ] || asr_tag="$(basename "${asr_config}" .yaml)"
asr_exp="${expdir}/asr_${asr_tag}"
[ -f "dump/raw/${test_set}/wav.scp" ] || { echo "$0: dump/raw/${test_set} missing: run ./run.sh --stop_stage 4 first" >&2; exit 1; }
run=(./run.sh --expdir "${expdir}" --asr_config "${asr_config}" --asr_tag "${asr_tag}" --inference_model "${inference_model}")

if [ ! -f "${asr_exp}/${inference_model}" ]; then
  [ "${train}" = true ] || { echo "$0: ${asr_exp}/${inference_model} missing (or pass --train true)" >&2; exit 1; }
  "${run[@]}" --stage 5 --stop_stage 5
fi

one_core=(env OMP_NUM_THREADS=1 MKL_NUM_THREADS=1)
command -v taskset >/dev/null && one_core+=(taskset -c 0)
act_tag="$("${python}" -m espnet2_ext.bin.activation_tag "${activation}")"
dirs=()
for size in ${sizes}; do
  root="${asr_exp}/decode_streaming_${size}"
  # no decoding config: the search is the options below, as the table's rows always were
  opts="--streaming true --chunk_size_ms ${size} --search_type ${search_type} --beam_size ${beam_size} --num_workers 0"
  [ -z "${left_chunks}" ] || opts+=" --left_chunks ${left_chunks}"
  [ -z "${attention_sink_frames}" ] || opts+=" --attention_sink_frames ${attention_sink_frames}"
  echo "$(date '+%H:%M:%S') decoding ${test_set} with ${size} ms chunks -> ${root}"
  "${one_core[@]}" "${run[@]}" --stage 6 --stop_stage 7 --inference_config "" --inference_args "${opts}" \
    --decode_batch_size 1 --ngpu 0 --test_sets "${test_set}" --activation_sets "${activation}" \
    --languages "${languages}" --decode_root "${root}" --model_name "${asr_exp##*/}_${size}ms" --results_md ""
  dirs+=("${root}/decode_${act_tag}/${test_set}")
done
# the table's record (results/streaming/<tag>.json), then every RESULTS*.md from the records
"${python}" -m espnet2_ext.bin.results_tables --recipe . --streaming_dirs "${dirs[*]}" --model "${asr_tag}" \
  --config "${asr_config}" --commit "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
cat RESULTS_streaming.md
