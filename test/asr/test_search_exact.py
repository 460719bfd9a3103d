"""The searches reproduce the outputs pinned in ``test/fixtures/search_exact.json`` (made by
``test/search_exact_cases.py`` before the searches were vectorised, issue #32): token sequences and emission
frames exactly, scores within SCORE_TOL.

Why scores cannot be bit-exact: the joint and the prediction network run in float32, and the float32 result of
one row depends on how many rows share the call (measured on this VM with torch 2.9.1: ``nn.Linear`` on 1-3 rows
differs from 4+ rows by up to 5e-7; ``nn.LSTM``'s oneDNN path differs from an ``lstm_cell`` by up to 7e-7).
The vectorised searches batch the hypotheses differently ([N, K] slots instead of a ragged list), step the LSTM
with cached input gates, and merge with ``torch.logaddexp`` instead of ``math.log1p``; so does today's search
when the batch composition changes. Measured difference against the fixture: 7.2e-7 at most. A score is a
float64 sum of a few dozen such log-probabilities, so 1e-5 stays far below any difference that could reorder
hypotheses (and the sequences and frames, which decide the output, are compared exactly).
"""

import json

import pytest
import torch
from search_exact_cases import CASES, FIXTURE, compute_case

import espnet2_ext  # noqa: F401  (first: keeps ESPnet's import offline)

SCORE_TOL = 1e-5


@pytest.fixture(scope="module")
def pinned():
    return json.loads(FIXTURE.read_text())["cases"]


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest; one thread, as when the fixture was made


def _same(got, want, where: str) -> None:
    assert len(got) == len(want), f"{where}: {len(got)} entries, pinned {len(want)}"
    for i, (g, w) in enumerate(zip(got, want)):
        if isinstance(w, list):
            _same(g, w, f"{where}[{i}]")
            continue
        assert g["yseq"] == w["yseq"], f"{where}[{i}] yseq"
        assert g["frames"] == w["frames"], f"{where}[{i}] frames"
        if "score" in w:
            assert g["score"] == pytest.approx(w["score"], abs=SCORE_TOL, rel=0), f"{where}[{i}] score"


@pytest.mark.parametrize("host", [True, False], ids=["numpy_on_cpu", "torch_only"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_searches_reproduce_pinned_outputs(name, host, pinned, monkeypatch):
    """Both arithmetic paths: numpy for the small CPU arrays (the CPU default) and torch throughout (a GPU's)."""
    from espnet2_ext.asr.transducer import search_common

    monkeypatch.setattr(search_common, "HOST_NUMPY", host)
    got = compute_case(CASES[name])
    want = pinned[name]
    assert set(got) == set(want)
    for search in want:
        assert set(got[search]) == set(want[search]), search
        for setting in want[search]:
            _same(got[search][setting], want[search][setting], f"{name}/{search}/{setting}")


def test_fixture_exercises_merges_and_suppression(pinned):
    """The pinned cases are not degenerate: beams differ from greedy somewhere, several n-best entries exist,
    and a suppressed token never appears where it was suppressed."""
    differs = any(
        case["beam"]["b4_n3_norm0"][u][0]["yseq"] != case["greedy"]["sym1"][u]["yseq"]
        for case in pinned.values()
        for u in range(len(case["greedy"]["sym1"]))
    )
    assert differs
    assert any(len(hyps) == 3 for case in pinned.values() for hyps in case["beam"]["b4_n3_norm1"])
    for name, case in CASES.items():
        for u, toks in (case["mask"] or {}).items():
            for hyps in pinned[name]["beam"].values():
                assert not set(toks) & {t for h in hyps[u] for t in h["yseq"]}


@pytest.mark.parametrize("host", [True, False])
def test_host_switch_selects_the_arithmetic(host, monkeypatch):
    """``HOST_NUMPY`` decides which path the fused decoder memory and the joint take, so the parametrised test above
    covers both: numpy tables exist only with it on (float32 CPU model), torch's path otherwise."""
    from search_exact_cases import build

    from espnet2_ext.asr.transducer import search_common
    from espnet2_ext.asr.transducer.decoder_memory import DecoderMemory

    monkeypatch.setattr(search_common, "HOST_NUMPY", host)
    dec, joint, *_ = build(CASES["v12_lstm"])
    pred = search_common.PredictionNet(dec, torch.device("cpu"))
    scorer = search_common.JointScorer(joint, pred.blank_id)
    memory = DecoderMemory(pred, scorer)
    assert memory.fused is not None  # one LSTM layer and ESPnet's JointNetwork: the fused layout
    assert (memory.host is not None) is host
    assert (scorer.out_host is not None) is host
