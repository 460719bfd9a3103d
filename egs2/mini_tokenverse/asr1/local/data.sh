#!/usr/bin/env bash
# Stage 1 for mini_tokenverse: synthesise the corpus (seeded, deterministic) into data/{train,dev,test,...}.
#   local/data.sh [--size debug|small|default] [--seed 0] [--no_partial] [--train_read N]
#   (--train_read N: also data/train_read<N> = train's conversations + N read utterances per language)
set -euo pipefail
. ./path.sh
for tool in espeak-ng sox; do
  command -v "${tool}" >/dev/null || { echo "local/data.sh: ${tool} is missing: run 'bash tools/install.sh' (it installs espeak-ng and sox)" >&2; exit 1; }
done
"${python}" -m espnet2_ext.bin.prepare_mini_tokenverse --out_dir data --wav_dir downloads/mini_tokenverse/wav --nj 2 "$@"
# The XLSR encoder: no model hub here, so a randomly initialised XLSR-shaped stand-in trained from scratch
# (conf/train.yaml points at it). With a real checkpoint, set frontend_conf.frontend_conf to
# {upstream: xls_r_300m} or {upstream: wav2vec2_local, path_or_url: /path/to/converted.pt} instead.
[ -f downloads/xlsr_mini_standin.pt ] || \
  "${python}" -m espnet2_ext.bin.make_xlsr_standin --preset mini --out downloads/xlsr_mini_standin.pt
[ -f downloads/xlsr_tiny_standin.pt ] || \
  "${python}" -m espnet2_ext.bin.make_xlsr_standin --preset tiny --out downloads/xlsr_tiny_standin.pt
