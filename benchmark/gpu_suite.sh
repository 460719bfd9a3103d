#!/usr/bin/env bash
# GPU suite (issue #32): run whenever a GPU machine is available; prints a Markdown table with the card's name.
#   benchmark/gpu_suite.sh            # full sizes on the first GPU (about 8 minutes on an H100)
#   benchmark/gpu_suite.sh --tiny     # tiny sizes on the CPU (what test/benchmark/test_gpu_suite.py runs)
#   benchmark/gpu_suite.sh --sections loss,beam
# Sections and options: see benchmark/gpu_suite.py. GPU_SUITE_TIMEOUT (seconds, default 540) bounds the run.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-tools/venv/bin/python}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
exec timeout "${GPU_SUITE_TIMEOUT:-540}" "$PY" benchmark/gpu_suite.py "$@"
