# Sourced by tokenverse.sh: the project virtualenv (tools/install.sh), offline-friendly environment.
MAIN_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
venv="${ESPNET2_EXT_VENV:-${MAIN_ROOT}/tools/venv}"
if [ ! -x "${venv}/bin/python" ]; then
  echo "path.sh: no virtualenv at ${venv}: run 'bash tools/install.sh' in ${MAIN_ROOT} first" >&2
  exit 1
fi
python="${venv}/bin/python"
export PATH="${venv}/bin:${PATH}"
export PYTHONUNBUFFERED=1
export MPLBACKEND=Agg
