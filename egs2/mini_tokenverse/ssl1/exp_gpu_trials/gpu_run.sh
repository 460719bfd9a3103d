#!/usr/bin/env bash
# One device call: four character-CTC runs of the mini stand-in side by side on one GPU, from the committed
# HuBERT-style weights, on cached outputs of their frozen CNN (the 6.94 h, 20000-word ssl_corpus).
# usage: gpu_run.sh DEVICE MAX_STEPS MAX_MINUTES OUTDIR
set -uo pipefail
DEVICE=$1; STEPS=$2; MINUTES=$3; OUTD=$4
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
common="--data_dir $D/train --valid_dir $D/dev --objective ctc --preset mini --seed 0 --max_steps $STEPS
  --max_minutes $MINUTES --threads 2 --device $DEVICE --init_from pretrained/xlsr_mini_ssl.pt
  --feature_cache $ROOT/.devdata/fc --save_every 500 --log_every 100"
declare -A ARGS=(
  [a]="--lr 0.002 --warmup_steps 500 --batch_seconds 240 --ctc_mask_prob 0.3"
  [b]="--lr 0.002 --warmup_steps 500 --batch_seconds 240 --ctc_mask_prob 0.1"
  [c]="--lr 0.001 --warmup_steps 500 --batch_seconds 240 --ctc_mask_prob 0.3"
  [d]="--lr 0.003 --warmup_steps 500 --batch_seconds 240 --ctc_mask_prob 0.5"
)
for k in a b c d; do
  # shellcheck disable=SC2086
  $PY -m espnet2_ext.bin.pretrain_standin $common --exp_dir exp/gpu_ctc_$k ${ARGS[$k]} > $OUTD/log_$k.txt 2>&1 &
done
wait
for k in a b c d; do tail -4 $OUTD/log_$k.txt; done
for k in a b c d; do
  tar -czf $OUTD/exp_$k.tgz -C exp --exclude checkpoint.pt gpu_ctc_$k
done
ls -la $OUTD
