"""The GPU suite (benchmark/gpu_suite.py) runs at tiny sizes on the CPU, so it cannot rot between GPU runs."""

import re
import sys
from pathlib import Path

import pytest

import espnet2_ext  # noqa: F401  (first: keeps ESPnet's import offline)

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmark"))

import gpu_suite  # noqa: E402


@pytest.mark.parametrize("boundary,start,limit", [(37, 8, 512), (1, 8, 512), (0, 4, 64), (64, 4, 64), (500, 1, 512)])
def test_largest_fitting_finds_the_boundary(boundary, start, limit):
    probes = []

    def fits(n):
        probes.append(n)
        return n <= boundary

    got = gpu_suite.largest_fitting(fits, start, limit)
    assert got <= boundary and fits(got) if got else boundary == 0
    assert got >= boundary - max(1, boundary // 16)  # within the stated ~6 %
    assert len(probes) <= 2 * (limit.bit_length() + 1)  # each probe is a training step on a GPU


def test_tiny_suite_runs_every_section_on_cpu(capsys):
    rows = gpu_suite.main(["--tiny", "--steps", "1"])
    out = capsys.readouterr().out
    assert "card: CPU" in out and "| measure |" in out
    assert not [r for r in rows if r[1] == "FAILED"], rows
    names = [r[0] for r in rows]
    assert sum(n.startswith("fine-tune") for n in names) == 2  # CNN trained and frozen
    assert any("ours (pruned)" in n for n in names) and any("torchaudio" in n for n in names)
    beam = next(r for r in rows if r[0].startswith("modified beam search"))
    assert float(re.match(r"[\d.]+", beam[2]).group()) > 0
    steps = [float(r[2].split()[0]) for r in rows if r[0].startswith("fine-tune")]
    assert all(s > 0 for s in steps)
