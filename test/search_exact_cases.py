"""Fixed, seeded tiny transducer models and inputs whose search outputs are pinned in
``test/fixtures/search_exact.json`` (checked by ``test/asr/test_search_exact.py``).

The fixture records what the searches returned when it was made (before the searches were vectorised, issue #32):
n-best lists (yseq, score, frames) of ``modified_beam_search``, ``greedy_search_batch`` and the streaming
``BeamStream`` / ``GreedyStream``, over several vocabulary sizes, RNN types, a batch with varied lengths (one of
them 0), suppress masks, a blank penalty and a span grammar. Any rewrite of the searches must reproduce it.

Regenerate (only when a change of the outputs is intended, and say so in the commit):
    PYTHONPATH=. OMP_NUM_THREADS=1 tools/venv/bin/python test/search_exact_cases.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Dict, List, Optional

import torch

import espnet2_ext  # noqa: F401  (first: keeps ESPnet's import offline)

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "search_exact.json"
D_ENC = 10

# name -> model and input description. ``mask``: {utt: [token ids suppressed]}; ``grammar``: (open, close, closing).
CASES: Dict[str, dict] = {
    "v12_lstm": dict(
        vocab=12,
        rnn="lstm",
        layers=1,
        hidden=16,
        sharpen=3.0,
        blank_bias=0.0,
        seed=1,
        lens=[9, 4, 0, 7, 1],
        mask=None,
        penalty=0.0,
        grammar=None,
    ),
    "v5_gru2_masked": dict(
        vocab=5,
        rnn="gru",
        layers=2,
        hidden=8,
        sharpen=2.0,
        blank_bias=0.0,
        seed=2,
        lens=[6, 6, 3],
        mask={0: [2], 1: [1, 3, 4]},
        penalty=1.0,
        grammar=None,
    ),
    "v40_lstm2_grammar": dict(
        vocab=40,
        rnn="lstm",
        layers=2,
        hidden=16,
        sharpen=4.0,
        blank_bias=1.0,
        seed=3,
        lens=[12, 10, 5, 11],
        mask={1: [7, 8, 9]},
        penalty=0.5,
        grammar=(3, 4, (5, 6)),
    ),
    "v12_gru_grammar_mask": dict(
        vocab=12,
        rnn="gru",
        layers=1,
        hidden=16,
        sharpen=5.0,
        blank_bias=-1.0,
        seed=4,
        lens=[8, 8, 2],
        mask={2: [5]},
        penalty=0.0,
        grammar=(1, 2, (3,)),
    ),
    # long utterances: sequences leave and re-enter the beam, merges of every kind happen
    "v40_lstm_long": dict(
        vocab=40,
        rnn="lstm",
        layers=1,
        hidden=32,
        sharpen=2.5,
        blank_bias=2.0,
        seed=5,
        lens=[90, 70, 40, 85],
        mask=None,
        penalty=0.0,
        grammar=None,
    ),
    "v30_lstm2_long_grammar": dict(
        vocab=30,
        rnn="lstm",
        layers=2,
        hidden=16,
        sharpen=3.0,
        blank_bias=1.5,
        seed=6,
        lens=[60, 75],
        mask={0: [9]},
        penalty=0.3,
        grammar=(3, 4, (5,)),
    ),
}
BEAMS = [(1, 1, False), (4, 3, True), (4, 3, False), (8, 5, True)]  # (beam, nbest, length_norm)
MAX_SYMS = [1, 3]
CHUNKS = [3, 1, 5]  # streaming: frames per call, cycled


def build(case: dict):
    """decoder, joint, encoder output [B, T, D_ENC], lengths [B], suppress mask [B, V] or None, span grammar."""
    from espnet2.asr.decoder.transducer_decoder import TransducerDecoder
    from espnet2.asr_transducer.joint_network import JointNetwork

    from espnet2_ext.asr.transducer.search_common import SpanGrammar

    torch.manual_seed(case["seed"])
    dec = TransducerDecoder(
        case["vocab"], rnn_type=case["rnn"], num_layers=case["layers"], hidden_size=case["hidden"]
    ).eval()
    joint = JointNetwork(case["vocab"], D_ENC, case["hidden"], joint_space_size=20).eval()
    with torch.no_grad():  # sharper distributions make beams differ from greedy; the bias sets the blank share
        joint.lin_out.weight.mul_(case["sharpen"])
        joint.lin_out.bias[0] += case["blank_bias"]
    lens = case["lens"]
    g = torch.Generator().manual_seed(case["seed"] + 100)
    enc = torch.randn(len(lens), max(lens), D_ENC, generator=g)  # [B, T, D_ENC]
    mask = None
    if case["mask"]:
        mask = torch.zeros(len(lens), case["vocab"], dtype=torch.bool)  # [B, V]
        for u, toks in case["mask"].items():
            mask[u, toks] = True
    grammar = None if case["grammar"] is None else SpanGrammar(*case["grammar"][:2], tuple(case["grammar"][2]))
    return dec, joint, enc, torch.tensor(lens), mask, grammar


def _hyps(hyps) -> List[dict]:
    return [{"yseq": list(h.yseq), "score": float(h.score), "frames": list(h.frames)} for h in hyps]


def _stream(cls, dec, joint, enc_u: torch.Tensor, mask_u: Optional[torch.Tensor], grammar, nbest: int, **kw):
    """Feed one utterance's frames [T, D_ENC] in CHUNKS-sized pieces; the stream's n-best at the end."""
    s = cls(dec, joint, mask_u, torch.device("cpu"), span_grammar=grammar, **kw)
    t, i = 0, 0
    while t < enc_u.size(0):
        n = CHUNKS[i % len(CHUNKS)]
        s.advance(enc_u[None, t : t + n])  # [1, n, D_ENC]
        t, i = t + n, i + 1
    return s


@torch.no_grad()
def compute_case(case: dict) -> dict:
    """All pinned outputs of one case (JSON-ready)."""
    from espnet2_ext.asr.transducer.search import greedy_search_batch, modified_beam_search
    from espnet2_ext.asr.transducer.streaming_search import BeamStream, GreedyStream

    dec, joint, enc, lens, mask, grammar = build(case)
    penalty = case["penalty"]
    out: dict = {"beam": {}, "greedy": {}, "stream_beam": {}, "stream_greedy": {}}
    for beam, nbest, norm in BEAMS:
        res = modified_beam_search(
            enc,
            lens,
            dec,
            joint,
            beam=beam,
            suppress_mask=mask,
            nbest=nbest,
            length_norm=norm,
            blank_penalty=penalty,
            span_grammar=grammar,
        )
        out["beam"][f"b{beam}_n{nbest}_norm{int(norm)}"] = [_hyps(r) for r in res]
        per_utt = []
        for u, n in enumerate(lens.tolist()):
            mask_u = None if mask is None else mask[u : u + 1]
            s = _stream(BeamStream, dec, joint, enc[u, :n], mask_u, grammar, nbest, beam=beam, blank_penalty=penalty)
            per_utt.append(_hyps(s.nbest(nbest, length_norm=norm)))
        out["stream_beam"][f"b{beam}_n{nbest}_norm{int(norm)}"] = per_utt
    for max_sym in MAX_SYMS:
        seqs, frames = greedy_search_batch(
            enc,
            lens,
            dec,
            joint,
            max_sym_per_frame=max_sym,
            suppress_mask=mask,
            return_frames=True,
            blank_penalty=penalty,
            span_grammar=grammar,
        )
        out["greedy"][f"sym{max_sym}"] = [{"yseq": s, "frames": f} for s, f in zip(seqs, frames)]
        per_utt = []
        for u, n in enumerate(lens.tolist()):
            mask_u = None if mask is None else mask[u : u + 1]
            s = _stream(
                GreedyStream,
                dec,
                joint,
                enc[u, :n],
                mask_u,
                grammar,
                1,
                max_sym_per_frame=max_sym,
                blank_penalty=penalty,
            )
            per_utt.append({"yseq": list(s.tokens), "frames": list(s.token_frames)})
        out["stream_greedy"][f"sym{max_sym}"] = per_utt
    return out


def compute_all() -> dict:
    torch.set_num_threads(1)  # one thread: the float sums of a matmul do not depend on the thread split
    return {name: compute_case(case) for name, case in CASES.items()}


def main() -> None:
    from espnet2_ext.common import atomic_write_text

    data = {"torch": torch.__version__, "cases": compute_all()}
    # json writes floats with repr, which round-trips float64 exactly
    atomic_write_text(FIXTURE, json.dumps(data, indent=None, separators=(",", ":")) + "\n")
    print(f"wrote {FIXTURE} ({FIXTURE.stat().st_size} bytes)", file=sys.stderr)


if __name__ == "__main__":
    main()
