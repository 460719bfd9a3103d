#!/usr/bin/env bash
# The paper's comparisons with seeds (issue #12): every cell = one config x train set x seed, its own exp dir
# ${grid_expdir}/asr_<config>_<train set>_seed<k>, trained, decoded (dev, test, test_partial) and scored by run.sh;
# RESULTS_grid.md (Tables II-IV, mean ± std over seeds, one verdict line per claim) is regenerated after each seed
# from the cells' records (results/<cell>.json, written by results_tables --grid_dir).
#   TokenVerse baseline (no task vectors)        on train_full_only (conversations) and on train_read<N> (mixed)
#   TokenVerse++ conf/tuning/train_per_*.yaml    on train_read<N>
#   the --best TokenVerse++ config               on train_full_only (does the ASR+LID-only data lower WER?)
# Resumable: a scored cell is skipped, a killed one resumes from its checkpoint (tokenverse.sh --resume true).
# Two cores or GPUs: one instance per seed side by side, the second started with --stage 2 once the first has
# finished stage 1 (e.g. OMP_NUM_THREADS=1 ./run_grid.sh --seeds 0 & ... OMP_NUM_THREADS=1 ./run_grid.sh --stage 2 --seeds 1).
#   ./run_grid.sh [--seeds "0 1 2"] [--train_read 400] [--max_epoch N] [--best conf/tuning/<cfg>.yaml]
#   ./run_grid.sh --stage 3        only rewrite RESULTS_grid.md from the cells scored so far
# --best must be chosen on dev, never on test (RESULTS_grid.md names the dev-best config of the mixed runs).
# The committed RESULTS_grid.md = ./run_grid.sh, then ./run_grid.sh --best conf/tuning/train_per_task_encoder_output.yaml
# (the dev-best, trained on the conversations too; scored cells are skipped).
set -euo pipefail
cd "$(dirname "$0")"

log() { printf '%s (run_grid.sh) %s\n' "$(date '+%Y-%m-%dT%H:%M:%S')" "$*"; }
stage=1; stop_stage=3            # 1 data, dump, tokenizer, stats (once)  2 cells  3 report
seeds="0 1 2"
train_read=400                   # read (asr+lid only) utterances per language in the mixed train set
data_opts=""                     # extra local/data.sh options (e.g. --size debug for a smoke run)
max_epoch=""                     # default: the configs' own
baseline=conf/tuning/train_tokenverse_baseline.yaml
tv_configs="$(echo conf/tuning/train_per_*.yaml)"
best=conf/tuning/train_per_task_feature_encoder.yaml
full_set=train_full_only
grid_expdir=exp_grid             # not exp/: run.sh's RESULTS.md collects every score.json under exp/
nbpe=150
all_acts="asr,scd,endp,ner,lid"
tv_acts="asr,scd,endp,ner,lid asr asr,scd asr,endp asr,ner asr,lid asr,scd,endp"  # as run.sh
test_sets="dev test test_partial"  # dev: for choosing --best
. ./parse_options.sh  # --name value -> $name (egs2/TEMPLATE/tokenverse1/parse_options.sh)
. ./path.sh
mixed_set="train_read${train_read}"
# Every cell decoded as the grid always was (best epoch, no blank penalty), whatever run.sh's defaults become.
run=(./run.sh --expdir "${grid_expdir}" --nbpe "${nbpe}" --results_md "${grid_expdir}/RESULTS_cells.md"
     --inference_config conf/tuning/decode_no_blank_penalty.yaml --inference_model valid.loss.best.pth)
run_stage() { [ "${stage}" -le "$1" ] && [ "${stop_stage}" -ge "$1" ]; }

if run_stage 1; then
  log "=== data (${mixed_set}, ${full_set}), dump, tokenizer, shape files ==="
  "${run[@]}" --stage 1 --stop_stage 1 --data_opts "${data_opts} --train_read ${train_read}"
  "${run[@]}" --stage 2 --stop_stage 2 --train_set "${mixed_set}" --test_sets "test test_partial"
  "${run[@]}" --stage 2 --stop_stage 2 --train_set "${full_set}" --test_sets ""
  # One tokenizer for every model, the main recipe's (trained on data/train): reused when run.sh made it.
  if [ -f "data/token_list/bpe${nbpe}/bpe.model" ]; then
    log "reusing data/token_list/bpe${nbpe} (delete it to retrain from data/train/text)"
  else
    "${run[@]}" --stage 3 --stop_stage 3 --bpe_train_text data/train/text
  fi
  for ts in "${mixed_set}" "${full_set}"; do
    if [ -f "${grid_expdir}/asr_stats_${ts}_bpe${nbpe}/train/speech_shape" ]; then
      log "shape files of ${ts}: present"
    else
      "${run[@]}" --stage 4 --stop_stage 4 --train_set "${ts}" --asr_config "${baseline}"
    fi
  done
fi

act_tag() { "${python}" -m espnet2_ext.bin.activation_tag "$1"; }  # decode_<tag>, as decode_activation_sets names it
scored() {  # $1 exp dir, $2 activation sets: every score.json there
  local act tag t
  for act in $2; do
    tag="$(act_tag "${act}")"
    for t in ${test_sets}; do [ -f "$1/decode_${tag}/${t}/score.json" ] || return 1; done
  done
}
cell() {  # $1 config, $2 train set, $3 seed, $4 activation sets
  local tag exp epochs="" cmd; local -a common args
  tag="$(basename "$1" .yaml)_$2_seed$3"; exp="${grid_expdir}/asr_${tag}"
  if scored "${exp}" "$4"; then log "${tag}: scored, skipped"; return; fi
  [ -z "${max_epoch}" ] || epochs=" --max_epoch ${max_epoch}"
  common=(--train_set "$2" --test_sets "${test_sets}" --asr_config "$1" --asr_tag "${tag}")
  mkdir -p "${exp}"
  for cmd in train decode; do
    if [ "${cmd}" = train ]; then
      args=("${run[@]}" --stage 5 --stop_stage 5 "${common[@]}" --asr_args "--seed $3${epochs}")
    else
      args=("${run[@]}" --stage 6 --stop_stage 7 "${common[@]}" --activation_sets "$4")
    fi
    # exact command, date and commit per cell: the provenance lines of RESULTS_grid.md
    printf '%s\t%s\t%s\t%s\n' "$(date -u '+%Y-%m-%dT%H:%M:%SZ')" "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" \
      "${cmd}" "$(printf '%q ' "${args[@]}")" >> "${exp}/grid_cmd.txt"
    log "${tag}: ${cmd}"
    "${args[@]}"
  done
}
report() {  # a record per scored cell (results/<cell>.json, kind grid), then every RESULTS*.md from the records
  "${python}" -m espnet2_ext.bin.results_tables --recipe . --grid_dir "${grid_expdir}" \
    --model_file valid.loss.best.pth
}

if run_stage 2; then
  # Seeds outermost: a grid stopped early still has every cell at the same number of seeds.
  for seed in ${seeds}; do
    log "=== seed ${seed} ==="
    # The baseline has no task vectors, so it cannot be told which tasks to do: decoded once with every task
    # token allowed; trained on mixed data it has learned to leave tokens out (the paper's point).
    # The four cells of the main claims first (baseline on full / mixed data, --best on mixed / full), then the
    # remaining strategy x injection cells: a round cut short still answers the claims that need the fewest cells.
    cell "${baseline}" "${full_set}" "${seed}" "${all_acts}"
    cell "${baseline}" "${mixed_set}" "${seed}" "${all_acts}"
    cell "${best}" "${mixed_set}" "${seed}" "${tv_acts}"
    cell "${best}" "${full_set}" "${seed}" "${tv_acts}"
    for cfg in ${tv_configs}; do  # --best is trained above; compared as files (./conf/x.yaml = conf/x.yaml)
      [ "$(realpath -m "${cfg}")" = "$(realpath -m "${best}")" ] || cell "${cfg}" "${mixed_set}" "${seed}" "${tv_acts}"
    done
    report  # after every seed round (./run_grid.sh --stage 3 makes it from whatever is scored)
  done
fi

if run_stage 3; then
  report
  log "wrote RESULTS_grid.md"
fi
