#!/usr/bin/env bash
# One device call: four character-CTC runs of the mini stand-in side by side on one GPU, on cached outputs of their
# frozen CNN (the 6.94 h, 20000-word ssl_corpus). Round 1 starts from the HuBERT-style weights (runs gpu_ctc_*),
# round 2 from the shipped CTC stage (gpu_ctc2_*). Run from the repository root (see README.md for the cache and
# the wheels); as run in session 10: `gpu_run.sh 1 cuda 12000 7 <out>` and `gpu_run.sh 2 cuda 7500 4.6 <out>`.
# usage: gpu_run.sh ROUND DEVICE MAX_STEPS MAX_MINUTES OUTDIR
set -uo pipefail
ROUND=$1; DEVICE=$2; STEPS=$3; MINUTES=$4; OUTD=$5
ROOT=$PWD
if [ "$DEVICE" != cpu ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$ROOT
  nvidia-smi -L
  PY=python3
else
  PY=$ROOT/tools/venv/bin/python
fi
export PYTHONUNBUFFERED=1
cd egs2/mini_tokenverse/ssl1
D=data/h6-seed0-w20000
declare -A ARGS
if [ "$ROUND" = 1 ]; then
  init=pretrained/xlsr_mini_ssl.pt; name=gpu_ctc
  ARGS=([a]="--lr 0.002 --warmup_steps 500 --ctc_mask_prob 0.3" [b]="--lr 0.002 --warmup_steps 500 --ctc_mask_prob 0.1"
        [c]="--lr 0.001 --warmup_steps 500 --ctc_mask_prob 0.3" [d]="--lr 0.003 --warmup_steps 500 --ctc_mask_prob 0.5")
else
  init=pretrained_ctc/xlsr_mini_ssl_ctc.pt; name=gpu_ctc2
  ARGS=([a]="--lr 0.001 --warmup_steps 300 --ctc_mask_prob 0.3" [b]="--lr 0.0005 --warmup_steps 300 --ctc_mask_prob 0.3"
        [c]="--lr 0.001 --warmup_steps 300 --ctc_mask_prob 0.5" [d]="--lr 0.002 --warmup_steps 300 --ctc_mask_prob 0.5")
fi
common="--data_dir $D/train --valid_dir $D/dev --objective ctc --preset mini --seed 0 --max_steps $STEPS
  --max_minutes $MINUTES --threads 2 --device $DEVICE --init_from $init --batch_seconds 240
  --feature_cache $ROOT/.devdata/fc --save_every 500 --log_every 100"
for k in a b c d; do
  # shellcheck disable=SC2086
  $PY -m espnet2_ext.bin.pretrain_standin $common --exp_dir exp/${name}_$k ${ARGS[$k]} > $OUTD/log_$k.txt 2>&1 &
done
wait
for k in a b c d; do tail -4 $OUTD/log_$k.txt; done
for k in a b c d; do
  tar -czf $OUTD/exp_$k.tgz -C exp --exclude checkpoint.pt ${name}_$k
done
ls -la $OUTD
