"""Tests for the batched transducer searches (greedy, modified beam search) and constrained decoding.

Small random ESPnet models (``TransducerDecoder`` + ``JointNetwork``); references are computed with ESPnet's
own unbatched ``decoder.score`` and the full ``joint_network`` forward, independent of the search code.
"""

import math
import random
from typing import Dict, Tuple

import pytest
import torch
from espnet2.asr.transducer.beam_search_transducer import BeamSearchTransducer
from espnet2.asr.transducer.beam_search_transducer import Hypothesis as EspnetHypothesis
from search_reference import (
    exact_sequence_scores,
    log_add,
    make_enc,
    make_model,
    ref_greedy,
    ref_logp,
)

import espnet2_ext  # noqa: F401  (first: keeps ESPnet's import offline)
from espnet2_ext.asr.transducer.search import (
    greedy_search_batch,
    modified_beam_search,
    suppress_mask_for,
    to_espnet_hypotheses,
)
from espnet2_ext.task_spec import TaskSpec

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: tiny matrices, one intra-op thread


LENS = [9, 17, 4, 13, 0, 17]


@pytest.mark.parametrize("rnn,layers", [("lstm", 1), ("gru", 2)])
def test_batched_equals_unbatched(rnn, layers):
    dec, joint = make_model(1, rnn=rnn, layers=layers, sharpen=2.0)
    x, lens = make_enc(2, LENS)
    for max_sym in (1, 3):
        batched = greedy_search_batch(x, lens, dec, joint, max_sym_per_frame=max_sym)
        for i, n in enumerate(LENS):
            single = greedy_search_batch(x[i : i + 1, :n], lens[i : i + 1], dec, joint, max_sym_per_frame=max_sym)
            assert batched[i] == single[0]
            assert batched[i] == ref_greedy(dec, joint, x[i, :n], max_sym)
    batched = modified_beam_search(x, lens, dec, joint, beam=4, nbest=3)
    for i, n in enumerate(LENS):
        single = modified_beam_search(x[i : i + 1, :n], lens[i : i + 1], dec, joint, beam=4, nbest=3)[0]
        assert [h.yseq for h in batched[i]] == [h.yseq for h in single]
        assert [h.score for h in batched[i]] == pytest.approx([h.score for h in single], abs=1e-4)
        scores = [h.score for h in batched[i]]
        assert scores == sorted(scores, reverse=True)
    assert LENS[4] == 0 and [h.yseq for h in batched[4]] == [[]]  # a zero-length utterance emits nothing


def test_greedy_matches_espnet_greedy_and_beam1():
    for seed in range(4):
        dec, joint = make_model(10 + seed, sharpen=2.0)
        x, lens = make_enc(20 + seed, [15, 11, 6])
        ours = greedy_search_batch(x, lens, dec, joint, max_sym_per_frame=1)
        beam1 = modified_beam_search(x, lens, dec, joint, beam=1)
        espnet = BeamSearchTransducer(decoder=dec, joint_network=joint, beam_size=1)
        for i, n in enumerate(lens.tolist()):
            assert ours[i] == espnet(x[i, :n])[0].yseq[1:]
            assert beam1[i][0].yseq == ours[i]


@pytest.mark.parametrize("masked", [False, True])
def test_wide_beam_equals_exhaustive_search(masked):
    """With a beam wider than the number of sequences nothing is pruned: the search must return every
    sequence with its exact probability (sum over its alignments)."""
    vocab = 5
    dec, joint = make_model(3, vocab=vocab, sharpen=1.5)
    lens_l = [4, 2, 3]
    x, lens = make_enc(4, lens_l)
    mask = None
    if masked:
        mask = torch.zeros(len(lens_l), vocab, dtype=torch.bool)
        mask[0, [2, 4]] = True
        mask[2, 1] = True
    out = modified_beam_search(x, lens, dec, joint, beam=10_000, nbest=10_000, suppress_mask=mask)
    for i, n in enumerate(lens_l):
        exact = exact_sequence_scores(dec, joint, x[i, :n], None if mask is None else mask[i])
        got = {tuple(h.yseq): h.score for h in out[i]}
        assert set(got) == set(exact)
        for seq, score in exact.items():
            assert got[seq] == pytest.approx(score, abs=1e-5)
        # the merged sequence probabilities sum to one: with suppression too, which renormalises over the rest
        total = sum(math.exp(v) for v in got.values())
        assert total == pytest.approx(1.0, abs=1e-6)


def test_pruned_beam_scores_are_lower_bounds():
    """With pruning a hypothesis keeps only part of its alignments: its score is at most the exact log P of its
    sequence, and every returned sequence is reachable."""
    vocab = 5
    pruned_somewhere = False
    for seed in range(3):
        dec, joint = make_model(30 + seed, vocab=vocab, sharpen=2.0)
        x, lens = make_enc(40 + seed, [5, 4])
        out = modified_beam_search(x, lens, dec, joint, beam=4, nbest=4)
        for i, n in enumerate(lens.tolist()):
            exact = exact_sequence_scores(dec, joint, x[i, :n])
            for h in out[i]:
                assert h.score <= exact[tuple(h.yseq)] + 1e-6
                pruned_somewhere |= h.score < exact[tuple(h.yseq)] - 1e-4
    assert pruned_somewhere  # the beam really pruned alignments in these cases


def test_suppressed_tokens_never_emitted():
    rng = random.Random(0)
    leaks_without_mask = 0
    for trial in range(20):
        vocab = rng.randint(6, 14)
        dec, joint = make_model(100 + trial, vocab=vocab, sharpen=1.5)
        favoured = rng.sample(range(1, vocab), 3)
        with torch.no_grad():  # make the tokens we suppress the likely ones, so the mask has to work
            joint.lin_out.bias[favoured] += 3.0
        lens_l = [rng.randint(1, 12) for _ in range(4)]
        x, lens = make_enc(200 + trial, lens_l)
        mask = torch.zeros(len(lens_l), vocab, dtype=torch.bool)
        for i in range(len(lens_l)):
            mask[i, rng.sample(favoured, rng.randint(1, 3))] = True
        plain = greedy_search_batch(x, lens, dec, joint, max_sym_per_frame=2)
        leaks_without_mask += sum(any(mask[i, k] for k in seq) for i, seq in enumerate(plain))
        greedy = greedy_search_batch(x, lens, dec, joint, max_sym_per_frame=2, suppress_mask=mask)
        beam = modified_beam_search(x, lens, dec, joint, beam=3, nbest=3, suppress_mask=mask)
        for i in range(len(lens_l)):
            assert not any(mask[i, k] for k in greedy[i])
            for h in beam[i]:
                assert not any(mask[i, k] for k in h.yseq)
    assert leaks_without_mask > 0  # the property is not trivially true


def test_all_suppressed_leaves_blank_only():
    dec, joint = make_model(5)
    x, lens = make_enc(6, [7, 3])
    mask = torch.ones(2, 12, dtype=torch.bool)  # blank column included: blank must stay allowed
    assert greedy_search_batch(x, lens, dec, joint, suppress_mask=mask) == [[], []]
    out = modified_beam_search(x, lens, dec, joint, beam=4, nbest=4, suppress_mask=mask)
    assert [[h.yseq for h in hs] for hs in out] == [[[]], [[]]]
    exact = exact_sequence_scores(dec, joint, x[0, :7], mask[0])
    assert out[0][0].score == pytest.approx(exact[()], abs=1e-5)


class _ShiftedBlank(torch.nn.Module):
    """Reference for the blank penalty: the full joint forward with ``penalty`` subtracted from the blank logit
    (no lin_enc/lin_dec split, so the searches take their unsplit path through it)."""

    def __init__(self, joint, blank: int, penalty: float):
        super().__init__()
        self.inner, self.blank, self.penalty = joint, blank, penalty

    def forward(self, enc, dec):
        out = self.inner(enc, dec).clone()
        out[..., self.blank] -= self.penalty
        return out


@pytest.mark.parametrize("penalty", [0.7, 2.5])
def test_blank_penalty_is_a_shifted_blank_logit(penalty):
    dec, joint = make_model(11, sharpen=2.0)
    x, lens = make_enc(12, [9, 14, 5])
    shifted = _ShiftedBlank(joint, dec.blank_id, penalty)
    for max_sym in (1, 2):
        ours = greedy_search_batch(x, lens, dec, joint, max_sym_per_frame=max_sym, blank_penalty=penalty)
        for i, n in enumerate(lens.tolist()):
            assert ours[i] == ref_greedy(dec, shifted, x[i, :n], max_sym)
    ours = modified_beam_search(x, lens, dec, joint, beam=4, nbest=3, blank_penalty=penalty)
    ref = modified_beam_search(x, lens, dec, shifted, beam=4, nbest=3)
    assert [[h.yseq for h in hs] for hs in ours] == [[h.yseq for h in hs] for hs in ref]
    for hs, rs in zip(ours, ref):
        assert [h.score for h in hs] == pytest.approx([h.score for h in rs], abs=1e-6)
    plain = modified_beam_search(x, lens, dec, joint, beam=4, nbest=3)
    assert [[h.yseq for h in hs] for hs in ours] != [[h.yseq for h in hs] for hs in plain]  # it changed something


def test_large_blank_penalty_emits_every_frame_and_zero_is_off():
    dec, joint = make_model(13)
    x, lens = make_enc(14, [8, 5])
    assert [len(s) for s in greedy_search_batch(x, lens, dec, joint, blank_penalty=1e4)] == [8, 5]
    assert greedy_search_batch(x, lens, dec, joint, blank_penalty=0.0) == greedy_search_batch(x, lens, dec, joint)
    out = modified_beam_search(x, lens, dec, joint, beam=3, blank_penalty=1e4)
    assert [len(hs[0].yseq) for hs in out] == [8, 5]


@pytest.mark.parametrize("bad", [-0.5, float("nan"), float("inf"), "much"])
def test_bad_blank_penalty_is_refused(bad):
    dec, joint = make_model(7)
    x, lens = make_enc(8, [5, 3])
    with pytest.raises(ValueError, match="blank_penalty"):
        modified_beam_search(x, lens, dec, joint, blank_penalty=bad)
    with pytest.raises(ValueError, match="blank_penalty"):
        greedy_search_batch(x, lens, dec, joint, blank_penalty=bad)


def test_bad_inputs_raise_clear_errors():
    dec, joint = make_model(7)
    x, lens = make_enc(8, [5, 3])
    with pytest.raises(ValueError, match="shape"):
        greedy_search_batch(x, lens, dec, joint, suppress_mask=torch.zeros(2, 11, dtype=torch.bool))
    with pytest.raises(ValueError, match="bool"):
        modified_beam_search(x, lens, dec, joint, suppress_mask=torch.zeros(2, 12))
    with pytest.raises(ValueError, match="encoder_lens"):
        modified_beam_search(x, torch.tensor([6, 3]), dec, joint)
    with pytest.raises(ValueError, match="batch size"):
        greedy_search_batch(x, torch.tensor([5]), dec, joint)


def test_suppress_mask_for():
    spec = TaskSpec.default()
    tokens = [
        "<blank>",
        "<unk>",
        "\u2581hello",
        "\u2581[NE]",
        "[/NE]",
        "\u2581[EN]",
        "[DE]",
        "[SCD]",
        "\u2581[ENDP]",
        "lo",
        "NE]",
        "<sos/eos>",
    ]
    active = [("asr",), ("asr", "ner"), ("scd", "endp", "lid", "ner")]
    mask = suppress_mask_for(tokens, spec, active)
    assert mask.dtype == torch.bool and mask.shape == (3, len(tokens))
    expected = [
        {"\u2581[NE]", "[/NE]", "\u2581[EN]", "[DE]", "[SCD]", "\u2581[ENDP]"},
        {"\u2581[EN]", "[DE]", "[SCD]", "\u2581[ENDP]"},
        set(),
    ]
    for i, exp in enumerate(expected):
        assert {tokens[k] for k in range(len(tokens)) if mask[i, k]} == exp
    with pytest.raises(ValueError, match="utterance 1"):
        suppress_mask_for(tokens, spec, [("asr",), ("asr", "pos")])


def test_to_espnet_hypotheses():
    dec, joint = make_model(9)
    x, lens = make_enc(10, [8])
    hyps = modified_beam_search(x, lens, dec, joint, beam=4, nbest=2)[0]
    esp = to_espnet_hypotheses(hyps, blank_id=dec.blank_id)
    assert all(isinstance(h, EspnetHypothesis) for h in esp)
    assert [h.yseq for h in esp] == [[dec.blank_id] + h.yseq for h in hyps]
    assert [h.score for h in esp] == [h.score for h in hyps]


def _balanced(seq, g) -> bool:
    inside = False
    for k in seq:
        if k == g.open_id:
            if inside:
                return False
            inside = True
        elif k == g.close_id:
            if not inside:
                return False
            inside = False
        elif k in g.closing and inside:
            return False
    return True


def test_span_grammar_keeps_every_span_well_formed():
    """[NE] only outside a span, [/NE] only inside, closing tokens only outside; the favoured tag tokens make
    the unconstrained search break the rule, so the grammar has something to do."""
    from espnet2_ext.asr.transducer.search_common import SpanGrammar

    g = SpanGrammar(open_id=1, close_id=2, closing=(3,))
    assert g.inside([5, 1, 4]) and not g.inside([1, 4, 2, 5]) and not g.inside([])
    rule = g.forbid([(5,), (1, 4)], vocab=6, device=torch.device("cpu"))
    assert rule.tolist() == [[False, False, True, False, False, False], [False, True, False, True, False, False]]
    broken_without = 0
    for trial in range(12):
        dec, joint = make_model(300 + trial, vocab=6, sharpen=1.5)
        with torch.no_grad():
            joint.lin_out.bias[[1, 2, 3]] += 1.5
        x, lens = make_enc(400 + trial, [9, 6, 12])
        plain = modified_beam_search(x, lens, dec, joint, beam=4, nbest=4)
        broken_without += sum(not _balanced(h.yseq, g) for hs in plain for h in hs)
        out = modified_beam_search(x, lens, dec, joint, beam=4, nbest=4, span_grammar=g)
        for hs in out:
            for h in hs[:1]:  # the best hypothesis: closed whenever the beam held a closed one
                assert _balanced(h.yseq, g)
                assert not g.inside(h.yseq) or all(g.inside(o.yseq) for o in hs)
            for h in hs:  # prefix rules hold for every hypothesis
                assert _balanced(h.yseq + ([g.close_id] if g.inside(h.yseq) else []), g)
        greedy_plain = greedy_search_batch(x, lens, dec, joint, max_sym_per_frame=2)
        broken_without += sum(not _balanced(y, g) for y in greedy_plain)
        for y in greedy_search_batch(x, lens, dec, joint, max_sym_per_frame=2, span_grammar=g):
            assert _balanced(y + ([g.close_id] if g.inside(y) else []), g)  # greedy cannot look back
    assert broken_without > 0


def test_span_grammar_with_a_wide_beam_scores_like_exhaustive_search_over_allowed_sequences():
    from espnet2_ext.asr.transducer.search_common import SpanGrammar

    vocab = 5
    dec, joint = make_model(3, vocab=vocab, sharpen=1.5)
    g = SpanGrammar(open_id=1, close_id=2, closing=(3,))
    x, lens = make_enc(4, [4])
    got = {
        tuple(h.yseq): h.score
        for h in modified_beam_search(x, lens, dec, joint, beam=10_000, nbest=10_000, span_grammar=g)[0]
    }
    # exhaustive search with the per-prefix rule: the allowed tokens renormalised at every step
    cache: Dict = {}
    hyps = {(): 0.0}
    for t in range(4):
        new: Dict[Tuple[int, ...], float] = {}
        for seq, score in hyps.items():
            logp = ref_logp(dec, joint, x[0, t], seq, cache)
            logp = logp.masked_fill(g.forbid([seq], vocab, torch.device("cpu"))[0], float("-inf"))
            logp = (logp - torch.logsumexp(logp, dim=-1)).tolist()
            for k, v in enumerate(logp):
                if v == -math.inf:
                    continue
                key = seq if k == dec.blank_id else seq + (k,)
                new[key] = score + v if key not in new else log_add(new[key], score + v)
        hyps = new
    # sequences that end inside a span are left out of the results while a closed one exists (here: always)
    closed = {seq: v for seq, v in hyps.items() if not g.inside(seq)}
    assert len(closed) < len(hyps) and set(got) == set(closed)
    for seq, score in closed.items():
        assert got[seq] == pytest.approx(score, abs=1e-5)
