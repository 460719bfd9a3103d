"""The biasing graph (espnet2_ext.asr.transducer.context_graph): hand-built cases, a brute-force reference of the
bonus rules, dense rows == single steps, gated mode, building from a tokenizer (sentencepiece and word lists)."""

import logging
from typing import Dict, List, Sequence, Tuple

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from espnet2_ext.asr.transducer.context_graph import OUTSIDE, ContextGraph, build_context_graph
from espnet2_ext.text.biasing_list import phrases_list, read_biasing_list

CPU = torch.device("cpu")
# token ids of the hand-built cases (0 is blank)
A, B, C, D, X = 1, 2, 3, 4, 5
NEW, YORK, CITY = 6, 7, 8
OPEN, CLOSE = 9, 10
V = 11


def graph(phrases, **kw) -> ContextGraph:
    return ContextGraph([(p, w) for p, w in phrases], vocab=V, **kw)


def total(g: ContextGraph, seq: Sequence[int]) -> float:
    return g.replay(seq)[1]


def test_complete_phrase_keeps_its_bonus_partial_gives_it_back():
    g = graph([((A, B, C), 1.5)])
    assert total(g, [A, B, C]) == pytest.approx(4.5)
    assert total(g, [X, A, B, C, X]) == pytest.approx(4.5)
    assert total(g, [A, B]) == 0.0  # the utterance ends in a partial match: given back
    assert total(g, [A, B, X]) == 0.0  # the match fails: given back
    steps = [g.step(s, t)[1] for s, t in zip([0, g.step(0, A)[0], g.replay([A, B])[0]], [A, B, X])]
    assert steps == pytest.approx([1.5, 1.5, -3.0])  # paid per token while it matches, taken back at once
    assert total(g, [A, B, C, A, B, C]) == pytest.approx(9.0)  # twice: kept twice


def test_failure_arc_continues_in_an_overlapping_phrase():
    # "a b" is a prefix of "a b c"; after "a b" comes d: the failure arc leads to "b" of "b d", which completes.
    g = graph([((A, B, C), 1.0), ((B, D), 3.0)])
    assert total(g, [A, B, D]) == pytest.approx(6.0)  # "b d" at its weight 3; "a" given back
    s_ab = g.replay([A, B])[0]
    nxt, bonus = g.step(s_ab, D)
    assert bonus == pytest.approx(6.0 - 2.0)  # pending 2 (a, b at 1) replaced by b, d at 3
    assert g.pending(nxt) == 0.0  # complete: committed
    assert total(g, [A, B, X]) == 0.0


def test_overlapping_phrases_share_tokens():
    g = graph([((NEW, YORK), 1.0), ((YORK, CITY), 1.0)])
    assert total(g, [NEW, YORK, CITY]) == pytest.approx(3.0)  # every token of both phrases, each once
    assert total(g, [NEW, YORK, X]) == pytest.approx(2.0)
    assert total(g, [YORK, CITY]) == pytest.approx(2.0)


def test_shared_prefix_longer_phrase_fails_shorter_one_stays():
    g = graph([((A, B), 1.0), ((A, B, C, D), 1.0)])
    assert total(g, [A, B]) == pytest.approx(2.0)
    assert total(g, [A, B, C]) == pytest.approx(2.0)  # "c" of the longer phrase given back, "a b" kept
    assert total(g, [A, B, C, X]) == pytest.approx(2.0)
    assert total(g, [A, B, C, D]) == pytest.approx(4.0)


def test_shared_prefix_gets_the_larger_weight():
    g = graph([((A, B), 1.0), ((A, C), 4.0)])
    assert total(g, [A, B]) == pytest.approx(5.0)  # "a" at 4 (shared with "a c"), "b" at 1
    assert total(g, [A, C]) == pytest.approx(8.0)


def test_empty_graph_and_blank():
    g = graph([((A,), 2.0)])
    assert g.step(g.replay([A])[0], 0) == (g.replay([A])[0], 0.0)  # blank: nothing moves
    assert build_context_graph(phrases_list([]).phrases, lambda t: [A], None, V, 1.0)[0] is None


# ---- brute force: the rules written over strings, without the automaton ----------------------------------
def reference_total(phrases: List[Tuple[Tuple[int, ...], float]], seq: Sequence[int]) -> float:
    """Window = longest suffix of the sequence that is a prefix of a phrase; a token's price is the largest weight
    of the phrases having its prefix; a phrase ending at a suffix of the window commits the window's unpaid part."""
    prefix_w: Dict[Tuple[int, ...], float] = {}
    for p, w in phrases:
        for i in range(1, len(p) + 1):
            prefix_w[p[:i]] = max(prefix_w.get(p[:i], w), w)
    full = {p for p, _ in phrases}
    kept, committed_upto = 0.0, -1  # positions <= committed_upto are paid for good
    for i in range(len(seq)):
        start = next((j for j in range(i + 1) if tuple(seq[j : i + 1]) in prefix_w), i + 1)
        window = tuple(seq[start : i + 1])
        if any(window[j:] in full for j in range(len(window))):
            kept += sum(prefix_w[window[: k + 1]] for k in range(len(window)) if start + k > committed_upto)
            committed_upto = i
    return kept


phrase_st = st.lists(
    st.tuples(st.lists(st.integers(1, 4), min_size=1, max_size=4).map(tuple), st.sampled_from([0.5, 1.0, 2.0])),
    min_size=1,
    max_size=5,
)


@settings(max_examples=300, deadline=None)
@given(phrase_st, st.lists(st.integers(0, 5), max_size=14))
def test_automaton_equals_the_brute_force_rules(phrases, seq):
    g = graph(phrases)
    assert total(g, seq) == pytest.approx(reference_total(phrases, [t for t in seq if t != 0]))


@settings(max_examples=150, deadline=None)
@given(phrase_st, st.lists(st.integers(0, V - 1), max_size=10), st.sampled_from(["ungated", "gated"]))
def test_dense_row_equals_single_steps(phrases, seq, mode):
    """What the searches add before pruning (the row) is what the state's step gives for each token."""
    g = graph(phrases, mode=mode, open_id=OPEN, close_id=CLOSE, close_bonus=0.7)
    state = g.start
    for tok in seq + [0]:
        row = g.bonus_row(state, CPU).tolist()
        assert row == pytest.approx([g.step(state, t)[1] for t in range(V)])
        state = g.step(state, tok)[0]


def test_state_is_a_function_of_the_sequence():
    """The merge rule of the beam search (equal token sequences merge) needs equal states for equal sequences,
    whatever blanks (alignments) lie between the tokens."""
    g = graph([((A, B, C), 1.0), ((B, D), 2.0)], mode="gated", open_id=OPEN, close_id=CLOSE)
    seq = [OPEN, A, B, D, CLOSE, OPEN, A, B]
    with_blanks = [0, OPEN, 0, 0, A, B, 0, D, CLOSE, 0, OPEN, A, 0, B, 0]
    assert g.replay(seq) == g.replay(with_blanks)


def test_gated_mode_never_boosts_outside_a_span():
    g = graph([((A, B), 2.0)], mode="gated", open_id=OPEN, close_id=CLOSE, close_bonus=1.0)
    assert g.start == OUTSIDE
    assert total(g, [A, B]) == 0.0  # outside a span: nothing
    assert g.bonus_row(g.start, CPU).abs().max() == 0.0
    assert total(g, [OPEN, A, B, CLOSE]) == pytest.approx(4.0 + 1.0)  # phrase + close bonus
    assert total(g, [OPEN, A, CLOSE]) == 0.0  # closed in a partial match: given back, no close bonus
    assert total(g, [OPEN, A, B, X, CLOSE]) == pytest.approx(4.0)  # [/NE] not right after the phrase
    s = g.replay([OPEN, A, B, CLOSE])[0]
    assert s == OUTSIDE and g.step(s, A) == (OUTSIDE, 0.0)  # reset outside
    ungated = graph([((A, B), 2.0)], close_id=CLOSE, close_bonus=1.0)
    assert total(ungated, [A, B]) == pytest.approx(4.0) and total(ungated, [A, B, CLOSE]) == pytest.approx(5.0)


def test_gated_mode_needs_the_span_tokens():
    with pytest.raises(ValueError, match="use --biasing_mode ungated"):
        graph([((A,), 1.0)], mode="gated")
    with pytest.raises(ValueError, match="unknown"):
        graph([((A,), 1.0)], mode="sometimes")


# ---- building from the model's tokenizer ----------------------------------------------------------------
@pytest.fixture(scope="module")
def bpe(tmp_path_factory):
    import sentencepiece as spm

    from espnet2_ext.task_spec import TaskSpec
    from espnet2_ext.text.tag_aware_bpe import espnet_token_list, train_tag_aware_bpe

    corpus = [
        f"u{i} [EN] hello [NE] {n} [/NE] [ENDP] and the {w} of {n}"
        for i, (n, w) in enumerate(
            [("john smith", "house"), ("anna berg", "road"), ("maria lopez", "garden"), ("peter pan", "story")] * 5
        )
    ]
    model = train_tag_aware_bpe(corpus, TaskSpec.default(), 70, tmp_path_factory.mktemp("bpe"))
    return spm.SentencePieceProcessor(model_file=str(model)), espnet_token_list(str(model))


def test_phrases_are_spelled_as_mid_sentence_and_unk_skipped(bpe, tmp_path, caplog):
    sp, tokens = bpe
    ids = {t: i for i, t in enumerate(tokens)}
    encode = lambda text: [ids.get(p, 1) for p in sp.encode(text, out_type=str)]  # noqa: E731 (1 = <unk>)
    f = tmp_path / "list.txt"
    f.write_text("# names\nJohn Smith\nanna BERG :3\nжжж\nzoë qx\n", encoding="utf-8")
    with caplog.at_level(logging.WARNING):
        g, stats = build_context_graph(read_biasing_list(f).phrases, encode, 1, len(tokens), 2.0)
    assert stats["phrases"] == 2 and stats["unspellable"] == 2
    assert f"{f}:4: biasing phrase cannot be spelled" in caplog.text and "skipped 2" in caplog.text
    # the pieces of "john smith" are those inside a sentence, after a tag, where the model emits them
    sent = sp.encode("hello [NE] john smith [/NE] and", out_type=str)
    phrase = sp.encode("john smith", out_type=str)
    assert any(sent[i : i + len(phrase)] == phrase for i in range(len(sent)))
    seq = [ids[p] for p in sent]
    assert total(g, seq) == pytest.approx(2.0 * len(phrase))
    anna = [ids[p] for p in sp.encode("anna berg", out_type=str)]
    assert total(g, anna) == pytest.approx(3.0 * len(anna))  # the line's own weight
