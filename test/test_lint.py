"""The tree is formatted and linted with ruff (pyproject.toml's [tool.ruff]; the checks of .pre-commit-config.yaml)."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RUFF = Path(sys.executable).parent / "ruff"


@pytest.mark.parametrize("args", [["format", "--check", "--quiet", "."], ["check", "--quiet", "."]])
def test_ruff_passes_on_the_whole_tree(args):
    out = subprocess.run([str(RUFF), *args], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, f"ruff {' '.join(args)}:\n{out.stdout}{out.stderr}"
