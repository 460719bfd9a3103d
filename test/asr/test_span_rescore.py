"""List rescoring of entity spans (``transducer/span_rescore.py``, biasing mode ``rescore``): span likelihoods
against torchaudio's RNN-T loss and ESPnet's own decoder, what may change in a hypothesis, then the decoder API and
the asr_inference CLI on the tiny trained model."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from search_reference import make_enc, make_model
from tiny_setup import padded_batch

import espnet2_ext  # noqa: F401  (first: keeps ESPnet's import offline)
from espnet2_ext.asr.transducer.phrase_candidates import list_candidates
from espnet2_ext.asr.transducer.search_common import Hypothesis
from espnet2_ext.asr.transducer.span_rescore import SpanRescorer, entity_spans

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: tiny matrices, one intra-op thread

BLANK, OPEN, CLOSE, SCD = 0, 1, 2, 3  # ids of the toy vocabulary; 4.. are word pieces


def _rescorer(seed=0, vocab=9, blank_penalty=0.0):
    dec, joint = make_model(seed, vocab=vocab, sharpen=1.5)
    return dec, joint, SpanRescorer(dec, joint, BLANK, OPEN, CLOSE, [SCD], blank_penalty=blank_penalty)


@torch.no_grad()
def _reference_loglik(dec, joint, enc, prefix, labels, blank_penalty=0.0):
    """log P(labels | enc) after ``prefix`` with ESPnet's batch decoder forward and torchaudio's RNN-T loss (both
    independent of the code under test): the prefix is run through the decoder together with the labels, and
    the lattice reads only the positions after it."""
    import torchaudio

    n = len(prefix)
    seqs = [list(prefix) + list(lab) for lab in labels]
    width = max(len(s) for s in seqs)
    dec_in = torch.tensor([[BLANK] + s + [BLANK] * (width - len(s)) for s in seqs])  # [N, 1 + n + U]
    dec_out = dec(dec_in)[:, n:]  # [N, U + 1, H]: outputs after the prefix, then after each label
    logits = joint(enc[None, :, None, :].expand(len(labels), -1, -1, -1), dec_out[:, None])  # [N, T, U+1, V]
    logits[..., BLANK] -= blank_penalty
    targets = torch.tensor([list(lab) + [BLANK] * (width - n - len(lab)) for lab in labels], dtype=torch.int32)
    loss = torchaudio.functional.rnnt_loss(
        logits,
        targets,
        torch.full((len(labels),), enc.size(0), dtype=torch.int32),
        torch.tensor([len(lab) for lab in labels], dtype=torch.int32),
        blank=BLANK,
        reduction="none",
    )
    return -loss


@pytest.mark.parametrize("prefix", [[], [5, OPEN], [4, 6, 7, OPEN]])
@pytest.mark.parametrize("blank_penalty", [0.0, 1.5])
def test_span_likelihood_matches_torchaudio_and_espnet_decoder(prefix, blank_penalty):
    dec, joint, resc = _rescorer(1, blank_penalty=blank_penalty)
    enc, _ = make_enc(2, [7])
    labels = [[4], [5, 6, CLOSE], [8, 7, 6, 5, CLOSE], [6, 6]]
    got = resc.score(enc[0], resc.prefix(prefix), labels)
    want = _reference_loglik(dec, joint, enc[0], prefix, labels, blank_penalty)
    assert got.shape == (4,)
    assert torch.allclose(got.float(), want.float(), atol=1e-4), (got, want)


def test_scoring_in_chunks_is_the_same(monkeypatch):
    import espnet2_ext.asr.transducer.span_rescore as sr

    _, _, resc = _rescorer(3)
    enc, _ = make_enc(4, [6])
    labels = [[4 + i % 5, 4 + (i * 3) % 5] for i in range(11)]
    whole = resc.score(enc[0], resc.prefix([OPEN]), labels)
    monkeypatch.setattr(sr, "CHUNK", 3)
    assert torch.allclose(resc.score(enc[0], resc.prefix([OPEN]), labels), whole)


def test_entity_spans_end_at_the_next_tag():
    tags = frozenset({OPEN, CLOSE, SCD})
    assert entity_spans([4, OPEN, 5, 6, CLOSE, 7, OPEN, 8, SCD, OPEN, CLOSE, OPEN, 4], OPEN, tags) == [
        (2, 4),
        (7, 8),
        (12, 13),
    ]
    assert entity_spans([4, 5, CLOSE], OPEN, tags) == []


def _hyp():
    # [w4] [NE] w5 w6 [/NE] w7 [SCD] [NE] w8 [/NE] (frames of a one-symbol-per-frame search)
    yseq = [4, OPEN, 5, 6, CLOSE, 7, SCD, OPEN, 8, CLOSE]
    return Hypothesis(yseq=yseq, score=-3.0, frames=list(range(len(yseq))))


def test_bonus_decides_and_words_outside_spans_never_change():
    _, _, resc = _rescorer(5)
    enc, _ = make_enc(6, [12])
    cands = [("a", [8, 8]), ("b", [6]), ("c", [5, 7, 4])]
    hyp = _hyp()
    same, choices = resc.rescore(enc[0], hyp, cands, bonus=-1e4)
    assert same.yseq == hyp.yseq and same.frames == hyp.frames and same.score == hyp.score
    assert [c.phrase for c in choices] == [None, None]
    forced, choices = resc.rescore(enc[0], hyp, cands, bonus=1e4)
    assert [c.phrase for c in choices] == [c.phrase for c in choices if c.phrase in ("a", "b", "c")]
    assert all(c.phrase is not None for c in choices)
    # outside the spans: the same tokens in the same order, and every span now holds its chosen phrase
    ids = dict((p, i) for p, i in cands)
    want = [4, OPEN, *ids[choices[0].phrase], CLOSE, 7, SCD, OPEN, *ids[choices[1].phrase], CLOSE]
    assert forced.yseq == want and len(forced.frames) == len(want)
    assert forced.score == pytest.approx(hyp.score + sum(c.gain for c in choices), abs=1e-6)
    # the first span's choice is the best-scoring candidate of its window (frames of [NE] .. the token after)
    labels = [[5, 6, CLOSE]] + [i + [CLOSE] for _, i in cands]
    ll = resc.score(enc[0, 1:5], resc.prefix([4, OPEN]), labels)
    assert choices[0].phrase == cands[int(ll[1:].argmax())][0]
    assert choices[0].gain == pytest.approx(float(ll[1:].max() - ll[0]), abs=1e-6)


def test_heard_words_that_spell_a_list_phrase_are_kept():
    _, _, resc = _rescorer(5)
    enc, _ = make_enc(6, [12])
    hyp = _hyp()
    cands = [("a", [8, 8]), ("heard", [5, 6]), ("c", [5, 7, 4])]
    got, choices = resc.rescore(enc[0], hyp, cands, bonus=1e4)
    assert choices[0].phrase is None and got.yseq[2:4] == [5, 6]  # the first span spells "heard"
    assert choices[1].phrase is not None  # the second ([8]) is no phrase: re-decided


def test_no_candidates_or_no_spans_leave_the_hypothesis_alone():
    _, _, resc = _rescorer(7)
    enc, _ = make_enc(8, [12])
    hyp = _hyp()
    assert resc.rescore(enc[0], hyp, [], bonus=1e4) == (hyp, [])
    plain = Hypothesis(yseq=[4, 5, SCD, 6], score=-1.0, frames=[0, 2, 3, 5])
    assert resc.rescore(enc[0], plain, [("a", [8])], bonus=1e4) == (plain, [])


def test_list_candidates_skip_unspellable_and_repeated():
    spell = {"anna": [4, 5], "ana": [4, 5], "bob": [6, 99], "": []}
    assert list_candidates(["anna", "ana", "bob", ""], spell.__getitem__, unk_id=99) == [("anna", [4, 5])]


# ---- the decoder API and the CLI on the tiny trained model ------------------------------------------------
def test_decoder_rescore_mode(tiny, monkeypatch):
    from espnet2_ext.text.biasing_list import phrases_list

    make, data, _ = tiny
    s2t = make(biasing_mode="rescore", biasing_rescore_bonus=1e4)
    assert s2t.biasing.conf["rescore_bonus"] == 1e4
    speech, lens = padded_batch(data)
    plain = s2t.decode_batch(speech, lens)
    assert repr(s2t.decode_batch(speech, lens, biasing=[])) == repr(plain)  # an empty list is no list
    texts = [r[0][0] for r in plain]
    assert "[NE] maria [/NE]" in texts[0] and "[NE] berlin [/NE]" in texts[1], texts  # the tiny model's spans
    lst = phrases_list(["berlin", "zzz unknown"])  # the second cannot be spelled: never a candidate
    got = [r[0][0] for r in s2t.decode_batch(speech, lens, biasing=lst)]
    # every span now holds the one spellable phrase; the words around it are untouched
    assert got[0] == texts[0].replace("[NE] maria [/NE]", "[NE] berlin [/NE]") and got[1] == texts[1]
    assert got[2:] == texts[2:]  # no spans: nothing to re-decide
    assert s2t.biasing.candidates(lst) is s2t.biasing.candidates(lst)  # once per list object
    # a phrase is tokenised once per decoder, whichever list holds it; the memo never changes the ids
    calls = []
    tokenize = s2t.biasing.tokenizer.text2tokens
    monkeypatch.setattr(s2t.biasing.tokenizer, "text2tokens", lambda t: calls.append(t) or tokenize(t))
    other = s2t.biasing.candidates(phrases_list(["berlin", "maria"]))
    assert calls == ["maria"] and other == [("berlin", list(s2t.biasing.encode("berlin"))), ("maria", other[1][1])]
    assert other[1][1] == s2t.converter.tokens2ids(tokenize("maria"))
    with pytest.raises(ValueError, match="streaming search never has") as e:  # the streaming decoder's call
        s2t.biasing.graphs(lst, 1, True, "modified_beam_search")
    assert "\n" not in str(e.value)
    with pytest.raises(ValueError, match="biasing_rescore_top_k must be a whole number >= 0"):
        make(biasing_mode="rescore", biasing_rescore_top_k=-1)
    cautious = make(biasing_mode="rescore", biasing_rescore_bonus=-1e4)
    assert [r[0][0] for r in cautious.decode_batch(speech, lens, biasing=lst)] == texts


def test_cli_rescore_mode(tiny, tmp_path):
    from test_biasing_search import _cli

    _, data, out = tiny
    names = tmp_path / "names.txt"
    names.write_text("berlin\n", encoding="utf-8")
    rc, plain = _cli(out, data, tmp_path, "plain")
    rc2, got = _cli(
        out, data, tmp_path, "rescored", "--biasing_list", str(names), "--biasing_mode", "rescore",
        "--biasing_rescore_bonus", "10000",
    )  # fmt: skip
    assert rc == rc2 == 0
    lines = lambda t: dict(line.split(" ", 1) for line in t.splitlines())  # noqa: E731
    p, g = lines(plain["text"]), lines(got["text"])
    assert "[NE] maria [/NE]" in p["spk1-u1"] and g["spk1-u1"] == p["spk1-u1"].replace("maria", "berlin")
    assert {k: v for k, v in g.items() if k != "spk1-u1"} == {k: v for k, v in p.items() if k != "spk1-u1"}


def _ctc(seed, vocab=9):
    from espnet2.asr.ctc import CTC
    from search_reference import D_ENC

    torch.manual_seed(seed)
    return CTC(odim=vocab, encoder_output_size=D_ENC).eval()


def test_ctc_prefilter_keeps_the_k_best_by_ctc():
    _, _, resc = _rescorer(9)
    ctc = _ctc(10)
    enc, _ = make_enc(11, [8])
    logp = ctc.log_softmax(enc)[0].detach()  # [T, V]
    labels = [[4, CLOSE], [5, 6, CLOSE], [7], [8, 8, 8, 8, 8, 8, 8, 8, 8, CLOSE], [6, 4, 5]]
    want = []
    for lab in labels:  # one utterance at a time, tags left out; a phrase longer than the window cannot fit
        core = [t for t in lab if t not in (OPEN, CLOSE, SCD)]
        nll = torch.nn.functional.ctc_loss(
            logp[:, None], torch.tensor([core]), torch.tensor([8]), torch.tensor([len(core)]), reduction="sum"
        )
        want.append(-float(nll))
    order = sorted(range(len(labels)), key=lambda i: -want[i])
    assert order[-1] == 3 and want[3] == float("-inf")
    assert resc.ctc_best(logp, labels, 2) == order[:2]
    assert resc.ctc_best(logp, labels, 0) == list(range(5)) == resc.ctc_best(logp, labels, 5)


def test_top_k_limits_the_transducer_to_the_prefilter():
    dec, joint = make_model(5, vocab=9, sharpen=1.5)
    ctc = _ctc(12)
    resc = SpanRescorer(dec, joint, BLANK, OPEN, CLOSE, [SCD], ctc=ctc)
    enc, _ = make_enc(6, [12])
    cands = [("a", [8, 8]), ("b", [6]), ("c", [5, 7, 4]), ("d", [4])]
    hyp = _hyp()
    every, _ = SpanRescorer(dec, joint, BLANK, OPEN, CLOSE, [SCD]).rescore(enc[0], hyp, cands, bonus=1e4)
    assert resc.rescore(enc[0], hyp, cands, bonus=1e4, top_k=0)[0] == every  # 0: every phrase
    assert resc.rescore(enc[0], hyp, cands, bonus=1e4, top_k=4)[0] == every  # k >= list: no prefilter
    one, choices = resc.rescore(enc[0], hyp, cands, bonus=1e4, top_k=1)
    logp = ctc.log_softmax(enc)[0]
    # the first span's window [1, 5) widened by CTC_MARGIN: its one candidate is CTC's best there
    first = resc.ctc_best(logp[0:7], [ids for _, ids in cands], 1)[0]
    assert choices[0].phrase == cands[first][0]


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.lists(st.integers(min_value=4, max_value=8), min_size=1, max_size=5), min_size=1, max_size=6),
    st.integers(min_value=1, max_value=9),
)
def test_ctc_scores_equal_ctc_loss_over_the_whole_vocabulary(labels, frames):
    """Both prefilter paths give torch's CTC loss over every token: the CPU's numpy forward over the list's prefix
    tree, and ctc_loss over per-phrase columns (repeated pieces sharing one) elsewhere."""
    from espnet2_ext.asr.transducer import search_common

    _, _, resc = _rescorer(9)
    enc, _ = make_enc(13, [frames])
    logp = _ctc(14).log_softmax(enc)[0].detach()  # [T, V]
    want = []
    for lab in labels:
        nll = torch.nn.functional.ctc_loss(
            logp[:, None], torch.tensor([lab]), torch.tensor([frames]), torch.tensor([len(lab)]), reduction="sum"
        )
        want.append(-float(nll))
    for host in (True, False):
        search_common.HOST_NUMPY = host
        try:
            got = resc.ctc_scores(logp, labels)
        finally:
            search_common.HOST_NUMPY = True
        for g, w in zip(got.tolist(), want):
            assert (g == w) if w == float("-inf") else abs(g - w) < 1e-4, (host, labels, got, want)


@settings(max_examples=40, deadline=None)
@given(
    st.integers(min_value=1, max_value=6),
    st.integers(min_value=1, max_value=9),
    st.integers(min_value=1, max_value=6),
    st.integers(min_value=0, max_value=2**16),
)
def test_host_lattice_equals_rnnt_lattice_loglik(n, frames, u1, seed):
    """The numpy forward the CPU scores candidates with equals the torch lattice (itself checked against
    torchaudio's RNN-T loss), for any label counts up to the padded width."""
    from espnet2_ext.asr.transducer.rnnt_lattice import lattice_loglik_host, rnnt_lattice_loglik

    g = torch.Generator().manual_seed(seed)
    lp = torch.randn(n, frames, u1, 3, generator=g).log_softmax(-1)  # [N, W, U+1, 3]
    px, py = lp[..., 1].contiguous(), lp[..., 0].contiguous()
    u_lens = torch.randint(0, u1, (n,), generator=g)
    want = rnnt_lattice_loglik(px, py, torch.full((n,), frames), u_lens)
    got = torch.from_numpy(lattice_loglik_host(px.numpy(), py.numpy(), u_lens.numpy()))
    assert torch.allclose(got.float(), want, atol=1e-4), (got, want)
