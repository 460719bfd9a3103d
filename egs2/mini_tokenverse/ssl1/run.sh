#!/usr/bin/env bash
# Pretraining of the mini recipe's XLSR-shaped encoder (the stand-in for a pretrained XLS-R), 2 CPU cores.
#  1 corpus: espeak-ng read speech from wordfreq word lists, disjoint from mini_tokenverse (texts, entities, voices)
#  2 pretraining (resumable: run the same command again to continue; progress on the console)
#  3 export the wav2vec2 weights in S3PRL's wav2vec2_local format (fp16) to pretrained/, with its sha256
#
#   ./run.sh                                   everything, the shipped configuration
#   ./run.sh --stage 2 --stop_stage 2 --max_minutes 30     train for 30 more minutes, then stop (resumable)
#   ./run.sh --hours 0.05 --max_steps 4 --tag smoke --out pretrained_smoke/x.pt   smoke test (tests use it)
#   the shipped second stage (character CTC from the HuBERT-style weights; what asr1/conf/train.yaml loads):
#   ./run.sh --objective ctc --max_steps 1500 --tag ctc_mini_init_hubert --out pretrained_ctc/xlsr_mini_ssl_ctc.pt \
#     --pretrain_args "--init_from pretrained/xlsr_mini_ssl.pt --lr 0.001 --warmup_steps 200"
#   on a GPU, on cached outputs of the first stage's frozen CNN (no audio read after the first run; the cache is a
#   few tens of MB, so it can be moved to the GPU machine instead of the corpus), a wider word list:
#   ./run.sh --objective ctc --hours 6 --n_words 20000 --device cuda --max_steps 12000 --batch_seconds 240 \
#     --pretrain_args "--init_from pretrained/xlsr_mini_ssl.pt --feature_cache exp/fc_h6_w20000 --lr 0.003 ..."
set -euo pipefail
cd "$(dirname "$0")"

stage=1; stop_stage=3
hours=4; seed=0; nj=2
n_words=4000                     # each language's word list: its N most frequent words (wordfreq)
objective=hubert                 # hubert (masked prediction of MFCC k-means units) | ctc (character CTC)
preset=mini
max_steps=2800; max_minutes=0; threads=2; batch_seconds=60   # 2800 steps: ~45 min alone on 2 cores
device=cpu                       # cpu | cuda[:N]: where stage 2's steps run (a run resumes on either)
pretrain_args=""                 # any other pretrain_standin option, e.g. "--lr 1e-3 --n_clusters 50"
tag=""                           # experiment name, default <objective>_<preset>
out=pretrained/xlsr_mini_ssl.pt

. ./parse_options.sh  # --name value -> $name (egs2/TEMPLATE/tokenverse1/parse_options.sh)
. ./path.sh
tag="${tag:-${objective}_${preset}}"
data="data/h${hours}-seed${seed}"; [ "${n_words}" = 4000 ] || data="${data}-w${n_words}"
log() { printf '%s (%s) %s\n' "$(date '+%Y-%m-%dT%H:%M:%S')" "run.sh" "$*"; }
run_stage() { [ "${stage}" -le "$1" ] && [ "${stop_stage}" -ge "$1" ]; }

if run_stage 1; then
  log "=== Stage 1: pretraining corpus (${hours} h, seed ${seed}) ==="
  "${python}" -m espnet2_ext.bin.prepare_ssl_corpus --out_dir "${data}" --hours "${hours}" --seed "${seed}" \
    --n_words "${n_words}" --nj "${nj}" --wav_dir downloads/ssl_wav
fi
if run_stage 2; then
  log "=== Stage 2: pretraining (${objective}, ${preset}) -> exp/pretrain_${tag} ==="
  # shellcheck disable=SC2086
  "${python}" -m espnet2_ext.bin.pretrain_standin --data_dir "${data}/train" --valid_dir "${data}/dev" --exp_dir "exp/pretrain_${tag}" \
    --objective "${objective}" --preset "${preset}" --seed "${seed}" --max_steps "${max_steps}" \
    --max_minutes "${max_minutes}" --threads "${threads}" --batch_seconds "${batch_seconds}" --device "${device}" ${pretrain_args}
fi
if run_stage 3; then
  log "=== Stage 3: export -> ${out} ==="
  commit="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  notes=(); [ -f "local/notes_${tag}.md" ] && notes=(--notes "local/notes_${tag}.md")  # history, choices
  "${python}" -m espnet2_ext.bin.pretrain_standin --exp_dir "exp/pretrain_${tag}" --export "${out}" \
    --readme "$(dirname "${out}")/README.md" --corpus_stats "${data}/corpus_stats.md" --commit "${commit}" "${notes[@]}" \
    --command "./run.sh --objective ${objective} --preset ${preset} --hours ${hours} --seed ${seed} $([ "${n_words}" = 4000 ] || echo "--n_words ${n_words} ")$([ "${device}" = cpu ] || echo "--device ${device} ")--max_steps ${max_steps} --batch_seconds ${batch_seconds} ${pretrain_args:+--pretrain_args \"${pretrain_args}\" }--tag ${tag} --out ${out}"
fi
