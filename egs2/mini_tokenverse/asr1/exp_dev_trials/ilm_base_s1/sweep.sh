#!/bin/bash
# Scratch record (session 11), run from egs2/mini_tokenverse/asr1: decodes dev with proto.py at blank penalty BP and
# each ILM weight LAM, scores it; outputs under /tmp/ilm. usage: exp_dev_trials/ilm_base_s1/sweep.sh EXP BP LAM...
exp=$1; bp=$2; shift 2
for lam in "$@"; do
  out=/tmp/ilm/$(basename $exp)_bp${bp}_ilm${lam}
  [ -f $out/score.txt ] && continue
  mkdir -p $out
  OMP_NUM_THREADS=1 ILM=$lam ../../../tools/venv/bin/python "$(dirname "$0")/proto.py" --config conf/decode.yaml --ngpu 0 \
    --asr_train_config $exp/config.yaml --asr_model_file $exp/valid.loss.ave.pth --test_dirs dump/raw/dev \
    --activation_sets asr,scd,endp,ner,lid --output_root $out --batch_size 8 --blank_penalty $bp 2> $out/decode.log || { tail -5 $out/decode.log; exit 1; }
  d=$out/decode_asr+scd+endp+ner+lid/dev
  ../../../tools/venv/bin/python -m espnet2_ext.bin.tokenverse_score --ref dump/raw/dev/text --hyp $d/1best_recog/text \
    --task_activation asr,scd,endp,ner,lid --languages "en de es fr" --utt2lang dump/raw/dev/utt2lang --model x --test_set dev --out_json $d/score.json > $out/score.txt
  echo "$exp bp=$bp ilm=$lam: $(sed -n 4p $out/score.txt)"
done
