#!/usr/bin/env bash
# Idempotent installer: system tools (espeak-ng, sox) + a virtualenv with espnet2_ext[all] (editable) at the pinned
# versions of tools/constraints.txt.
# Usage: bash tools/install.sh        (venv at tools/venv, or $ESPNET2_EXT_VENV)
# Re-running is cheap: the stack step is skipped when its stamp (a hash of tools/constraints.txt and pyproject.toml)
# says it is done.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${ESPNET2_EXT_VENV:-${root}/tools/venv}"
python="${PYTHON:-python3}"

# Versions: tools/constraints.txt holds every pin (the only place; README "The stack" says why each exists);
# pyproject.toml declares the package's dependencies as ranges and its extras. This script installs
# espnet2_ext[all], editable, under those pins.
constraints="${root}/tools/constraints.txt"
stamp_key="$(cat "${constraints}" "${root}/pyproject.toml" | sha1sum | cut -c1-12)"

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
pip=("${venv}/bin/python" -m pip install -q --disable-pip-version-check -c "${constraints}")

# 3. The stack: torch first (the large download, logged on its own), then espnet2_ext[all] editable, which brings
#    every declared dependency and extra at its pinned version (--no-build-isolation: the build uses the venv's
#    setuptools<74 instead of downloading another).
if [ "$(cat "${venv}/.espnet2_ext_stack" 2>/dev/null)" != "${stamp_key}" ]; then
  log "installing torch, torchaudio (large download on first run) under tools/constraints.txt"
  # setuptools at its pin: a new venv's 65.x cannot build editable wheels; numpy: pyworld (espnet[train]) has no
  # wheel here and builds from source against the venv's numpy (no build isolation), so it must be there first
  "${pip[@]}" torch torchaudio setuptools numpy
  log "installing espnet2_ext[all] (editable) and its dependencies under tools/constraints.txt"
  "${pip[@]}" --no-build-isolation -e "${root}[all]"
  echo "${stamp_key}" > "${venv}/.espnet2_ext_stack"
else
  log "stack already installed (${stamp_key})"
fi

# 4. The same venv used from another checkout: point the editable install here, without touching the stack.
# (checked from / so that the source tree in the current directory does not count as installed)
if ! (cd / && "${venv}/bin/python" -c "import espnet2_ext, os, sys; sys.exit(os.path.dirname(os.path.dirname(espnet2_ext.__file__)) != '${root}')" 2>/dev/null); then
  log "installing espnet2_ext (editable)"
  "${pip[@]}" --no-deps --no-build-isolation -e "${root}"
fi
log "ready: ${venv}"
