#!/usr/bin/env bash
# Stage 1 for mini_tokenverse: synthesise the corpus (seeded, deterministic) into data/{train,dev,test,...}.
#   local/data.sh [--size debug|small|default] [--seed 0] [--no_partial true] [--train_read N [--read_names P]]
#                 [--dev_read N] [--wordlist_read M]
#   (--train_read N: also data/train_read<N> = train's conversations + N read utterances per language;
#    --read_names P, with --train_read N: data/train_read<N>_names<100 P> instead, a share P of the read entity slots
#    filled from open per-language name lists (Faker's; no mini_tokenverse entity among them);
#    --dev_read N: also data/dev_partial, N read utterances per language drawn like test_partial (a dev set for it);
#    --wordlist_read M, with --train_read N: also data/wordlist_read<M> = M ASR+LID-only utterances per language of
#    word-list read speech (the head of ../ssl1's pretraining corpus: thousands of distinct words, no mini text,
#    entity or voice) and data/train_read<N>_wl<M> = data/train_read<N> + it)
set -euo pipefail
. ./path.sh
for tool in espeak-ng sox; do
  command -v "${tool}" >/dev/null || { echo "local/data.sh: ${tool} is missing: run 'bash tools/install.sh' (it installs espeak-ng and sox)" >&2; exit 1; }
done
size=""; seed=0; no_partial=false; train_read=""; read_names=""; dev_read=""; extension=""
wordlist_read=""  # ours; the rest go to prepare_mini_tokenverse
. ./parse_options.sh  # --name value -> $name (egs2/TEMPLATE/tokenverse1/parse_options.sh)
args=(--seed "${seed}")
for opt in size train_read read_names dev_read extension; do
  [ -z "${!opt}" ] || args+=("--${opt}" "${!opt}")
done
[ "${no_partial}" = false ] || args+=(--no_partial)
[ -z "${wordlist_read}" ] || [ -n "${train_read}" ] || \
  { echo "local/data.sh: --wordlist_read adds to data/train_read<N>: give --train_read N too" >&2; exit 1; }
[ -z "${wordlist_read}" ] || [ -z "${read_names}" ] || \
  { echo "local/data.sh: --wordlist_read adds to data/train_read<N>, which --read_names replaces: give one of them" >&2; exit 1; }
"${python}" -m espnet2_ext.bin.prepare_mini_tokenverse --out_dir data --wav_dir downloads/mini_tokenverse/wav --nj 2 "${args[@]}"
if [ -n "${wordlist_read}" ]; then
  # Spelled with data/train's letters only: that text trains the tokenizer (stage 3), any other letter is <unk>.
  "${python}" -m espnet2_ext.bin.prepare_ssl_corpus --out_dir "data/wordlist_read${wordlist_read}" \
    --asr_lid_per_lang "${wordlist_read}" --charset_from data/train/text --seed "${seed}" --nj 2 \
    --wav_dir downloads/ssl_wav
  "${python}" -m espnet2_ext.bin.combine_data_dirs "data/train_read${train_read}_wl${wordlist_read}" \
    "data/train_read${train_read}" "data/wordlist_read${wordlist_read}"
fi
# The XLSR encoder: no model hub here, so a randomly initialised XLSR-shaped stand-in trained from scratch
# (conf/train.yaml points at it). With a real checkpoint, set frontend_conf.frontend_conf to
# {upstream: xls_r_300m} or {upstream: wav2vec2_local, path_or_url: /path/to/converted.pt} instead.
[ -f downloads/xlsr_mini_standin.pt ] || \
  "${python}" -m espnet2_ext.bin.make_xlsr_standin --preset mini --out downloads/xlsr_mini_standin.pt
[ -f downloads/xlsr_tiny_standin.pt ] || \
  "${python}" -m espnet2_ext.bin.make_xlsr_standin --preset tiny --out downloads/xlsr_tiny_standin.pt
