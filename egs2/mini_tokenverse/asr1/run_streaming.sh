#!/usr/bin/env bash
# Streaming latency / accuracy trade-off on mini_tokenverse (README "Streaming"). Decodes a multi-chunk model chunk
# by chunk at each chunk size on ONE CPU core (asr_inference --streaming true: RTF and algorithmic latency in
# <decode dir>/streaming_stats.json), scores it with the recipe's scorer and writes the table to ${out}.
# "full" is the full-context reference row (whole utterances, timed the same way).
#   ./run.sh --stop_stage 4                         # data, tokenizer, shapes (once)
#   ./run_streaming.sh                              # trains conf/tuning/train_multichunk.yaml if needed (stage 5)
#   ./run_streaming.sh --train false --asr_exp exp/asr_train_multichunk --sizes "320 640"
set -euo pipefail
cd "$(dirname "$0")"

asr_config=conf/tuning/train_multichunk.yaml
asr_exp=""                       # default: exp/asr_<config name>
inference_model=valid.loss.best.pth
train=true                       # run stage 5 first when ${asr_exp}/${inference_model} is missing
test_set=test
sizes="160 320 640 1280 full"
left_chunks=""                   # default: the model's frontend config
attention_sink_frames=""
activation=asr,scd,endp,ner,lid
search_type=modified_beam_search
beam_size=4
languages=en,de,es,fr
out=RESULTS_streaming.md

. ./parse_options.sh  # --name value -> $name (egs2/TEMPLATE/tokenverse1/parse_options.sh)
. ./path.sh
[ -n "${asr_exp}" ] || asr_exp="exp/asr_$(basename "${asr_config}" .yaml)"
[ -f "dump/raw/${test_set}/wav.scp" ] || { echo "$0: dump/raw/${test_set} missing: run ./run.sh --stop_stage 4 first" >&2; exit 1; }

if [ ! -f "${asr_exp}/${inference_model}" ]; then
  [ "${train}" = true ] || { echo "$0: ${asr_exp}/${inference_model} missing (or pass --train true)" >&2; exit 1; }
  ./run.sh --stage 5 --stop_stage 5 --asr_config "${asr_config}"
fi

one_core=(env OMP_NUM_THREADS=1 MKL_NUM_THREADS=1)
command -v taskset >/dev/null && one_core+=(taskset -c 0)
dirs=()
for size in ${sizes}; do
  d="${asr_exp}/decode_streaming_${size}/${test_set}"
  opts=(--chunk_size_ms "${size}")
  [ -n "${left_chunks}" ] && opts+=(--left_chunks "${left_chunks}")
  [ -n "${attention_sink_frames}" ] && opts+=(--attention_sink_frames "${attention_sink_frames}")
  echo "$(date '+%H:%M:%S') decoding ${test_set} with ${size} ms chunks -> ${d}"
  "${one_core[@]}" "${python}" -m espnet2_ext.bin.asr_inference --streaming true "${opts[@]}" \
    --asr_train_config "${asr_exp}/config.yaml" --asr_model_file "${asr_exp}/${inference_model}" \
    --data_path_and_name_and_type "dump/raw/${test_set}/wav.scp,speech,sound" --task_activation "${activation}" \
    --search_type "${search_type}" --beam_size "${beam_size}" --batch_size 1 --num_workers 0 --ngpu 0 \
    --output_dir "${d}" 2> "${d%/*}.log" || { tail -n 20 "${d%/*}.log"; exit 1; }
  "${python}" -m espnet2_ext.bin.tokenverse_score --ref "dump/raw/${test_set}/text" --hyp "${d}/1best_recog/text" \
    --task_activation "${activation}" --languages "${languages}" --utt2lang "dump/raw/${test_set}/utt2lang" \
    --model "$(basename "${asr_exp}")_${size}ms" --test_set "${test_set}" --out_json "${d}/score.json" > "${d}/score.txt"
  dirs+=("${d}")
done
"${python}" -m espnet2_ext.asr.streaming table "${dirs[@]}" --out "${out}"
cat "${out}"
