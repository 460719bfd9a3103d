"""The conditioning redesign (#13) changes how the task mask reaches the frontend, not what the model computes.

A few training steps of tiny models (every strategy x injection point, partial labels, the sampling policy) are
compared against ``data/conditioning_trace.json``, which was written by the code *before* the redesign (commit
d577fee: mask carried on the frontend between calls). Same seed, same data: same losses, same greedy decodes.
Regenerate only for an intended change of the computation: ``python test/asr/test_conditioning_trace.py --write``.
"""

import json
import sys
from pathlib import Path

import pytest
import torch

TRACE = Path(__file__).resolve().parents[1] / "fixtures" / "conditioning_trace.json"
CASES = [
    ("per_task", "feature_encoder"),
    ("per_task", "both"),
    ("per_combination", "encoder_output"),
    ("none", "feature_encoder"),
]
STEPS = 8
PARTIAL = [[1, 0, 1, 0, 1], [1, 1, 0, 0, 0], [1, 0, 0, 0, 1], [1, 1, 1, 1, 1]]  # one mask per utterance


def _key(strategy, injection):
    return f"{strategy}/{injection}"


def run_trace(root: Path, strategy: str, injection: str) -> dict:
    """Per step: loss and its parts; after the steps: the greedy decode of every utterance (all tasks active)."""
    from tiny_setup import build_tiny_model

    model, preprocess, collate, items = build_tiny_model(root, strategy, injection, seed=0, policy="sample")
    optim = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=0.01)
    steps = []
    model.train()
    for _ in range(STEPS):
        _, batch = collate([(u, preprocess(u, dict(d))) for u, d in items])
        loss, stats, _ = model(**batch)
        optim.zero_grad()
        loss.backward()
        optim.step()
        steps.append({k: round(float(v), 5) for k, v in stats.items() if v is not None and k != "batch_size"})
    model.eval()
    from espnet2_ext.asr.transducer.search import greedy_search_batch

    with torch.no_grad():
        speech = torch.nn.utils.rnn.pad_sequence([torch.as_tensor(d["speech"]) for _, d in items], batch_first=True)
        lengths = torch.tensor([len(d["speech"]) for _, d in items])
        enc, enc_lens = model.encode(speech, lengths)
        hyps = greedy_search_batch(enc, enc_lens, model.decoder, model.joint_network)
        # enc: [B, T, D]; per utterance the sum of its valid frames, every task active and with PARTIAL masks
        enc_p, _ = model.encode(speech, lengths, torch.tensor(PARTIAL))
        sums = [[round(float(e[i, : int(enc_lens[i])].sum()), 3) for i in range(len(items))] for e in (enc, enc_p)]
    return {"steps": steps, "greedy": [[int(t) for t in h] for h in hyps], "enc_sums": sums}


@pytest.mark.parametrize("strategy,injection", CASES)
def test_training_trace_unchanged(tmp_path, strategy, injection):
    stored = json.loads(TRACE.read_text())[_key(strategy, injection)]
    got = run_trace(tmp_path, strategy, injection)
    assert got["greedy"] == stored["greedy"]
    for got_sums, stored_sums in zip(got["enc_sums"], stored["enc_sums"]):
        assert got_sums == pytest.approx(stored_sums, rel=1e-4, abs=1e-2)
    if strategy != "none":  # the partial masks condition the encoder
        assert got["enc_sums"][0] != pytest.approx(got["enc_sums"][1], rel=1e-4)
    assert len(got["steps"]) == len(stored["steps"]) == STEPS
    for step, (a, b) in enumerate(zip(got["steps"], stored["steps"])):
        assert set(a) == set(b), step
        for k in a:
            assert a[k] == pytest.approx(b[k], rel=1e-4, abs=1e-4), (step, k)
    # the steps trained something: the trace is not copies of the same number
    assert got["steps"][-1]["loss"] < got["steps"][0]["loss"]


if __name__ == "__main__" and "--write" in sys.argv:
    import tempfile

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import espnet2_ext  # noqa: F401

    out = {}
    with tempfile.TemporaryDirectory() as d:
        for s, i in CASES:
            out[_key(s, i)] = run_trace(Path(d) / _key(s, i).replace("/", "_"), s, i)
    TRACE.parent.mkdir(exist_ok=True)
    TRACE.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {TRACE}")
