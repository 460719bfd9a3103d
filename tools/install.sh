#!/usr/bin/env bash
# Idempotent installer: system tools (espeak-ng, sox) + a virtualenv with the verified stack + espnet2_ext (editable).
# Usage: bash tools/install.sh        (venv at tools/venv, or $ESPNET2_EXT_VENV)
# Re-running is cheap: each step is skipped when its stamp says it is done with the same pins.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${ESPNET2_EXT_VENV:-${root}/tools/venv}"
python="${PYTHON:-python3}"

# Pins and why (see README "The stack"):
#  torch/torchaudio 2.9.1: newest pair compatible with espnet's setuptools<74 pin; torchaudio has rnnt_loss on CPU.
#  espnet[train]==202511: newest served; the train extra brings tensorboard/matplotlib that asr_train needs.
#  espnet-s3prl: ESPnet's S3PRL fork; PyPI s3prl 0.4.18 calls torchaudio APIs removed in 2.9.
#  setuptools<74: espnet's metadata pins it; give it in every pip command or a later install upgrades it.
#  espnet_model_zoo: ESPnet's packed-model unpacking (Speech2Text.from_pretrained with a local zip).
#  soxr: resampling of user audio; scikit-learn: k-means targets of the encoder pretraining; wordfreq: word lists
#  of the pretraining corpus; pyannote.core/metrics: time-based SCD metrics; hypothesis: property tests;
#  faker: per-language name lists for the read subset's open entity slots (prepare_mini_tokenverse --read_names).
TORCH_PINS=(torch==2.9.1 torchaudio==2.9.1)
STACK_PINS=("espnet[train]==202511" espnet-s3prl==2026.5.14 jiwer==4.0.0 kaldiio==2.18.1 soundfile==0.14.0
            sentencepiece==0.2.0 espnet_model_zoo==0.1.7 matplotlib pytest "setuptools<74"
            soxr==1.1.0 scikit-learn==1.9.1 wordfreq==3.1.1 pyannote.core==6.1.0 pyannote.metrics==4.2.0
            hypothesis==6.170.15 faker==40.63.0)
stamp_key="$(printf '%s\n' "${TORCH_PINS[@]}" "${STACK_PINS[@]}" | sha1sum | cut -c1-12)"

log() { printf '[install] %s\n' "$*"; }

# 1. System tools for the embedded corpus (espeak-ng speaks, sox resamples/concatenates).
if ! command -v espeak-ng >/dev/null || ! command -v sox >/dev/null; then
  if command -v apt-get >/dev/null; then
    sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
    log "apt-get install espeak-ng sox"
    $sudo apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq espeak-ng sox >/dev/null
  else
    log "WARNING: espeak-ng/sox missing and no apt-get: the mini recipe's data prep (stage 1) needs them"
  fi
fi

# 2. Virtualenv.
if [ ! -x "${venv}/bin/python" ]; then
  log "creating venv ${venv}"
  "${python}" -m venv "${venv}"
fi
pip=("${venv}/bin/python" -m pip install -q --disable-pip-version-check)

# 3. The stack (torch first, so espnet does not pull another torch).
if [ "$(cat "${venv}/.espnet2_ext_stack" 2>/dev/null)" != "${stamp_key}" ]; then
  log "installing ${TORCH_PINS[*]} (large download on first run)"
  "${pip[@]}" "${TORCH_PINS[@]}" "setuptools<74"
  log "installing ${STACK_PINS[*]}"
  "${pip[@]}" "${TORCH_PINS[@]}" "${STACK_PINS[@]}"
  echo "${stamp_key}" > "${venv}/.espnet2_ext_stack"
else
  log "stack already installed (${stamp_key})"
fi

# 4. espnet2_ext itself, editable, without touching the pinned stack.
# (checked from / so that the source tree in the current directory does not count as installed)
if ! (cd / && "${venv}/bin/python" -c "import espnet2_ext, os, sys; sys.exit(os.path.dirname(os.path.dirname(espnet2_ext.__file__)) != '${root}')" 2>/dev/null); then
  log "installing espnet2_ext (editable)"
  "${pip[@]}" --no-deps --no-build-isolation -e "${root}"
fi
log "ready: ${venv}"
