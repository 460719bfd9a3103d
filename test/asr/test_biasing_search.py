"""Contextual biasing inside the searches: exact scores under merging, empty-list identity, gated mode, per-utterance
graphs, streaming == offline; then the decoder API and the asr_inference CLI on the tiny trained model."""

import pytest
import torch
from search_reference import exact_sequence_scores, make_enc, make_model
from tiny_setup import padded_batch

import espnet2_ext  # noqa: F401  (first: keeps ESPnet's import offline)
from espnet2_ext.asr.transducer.context_graph import ContextGraph
from espnet2_ext.asr.transducer.search import greedy_search_batch, modified_beam_search
from espnet2_ext.asr.transducer.search_common import SpanGrammar
from espnet2_ext.asr.transducer.streaming_search import BeamStream, GreedyStream

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: tiny matrices, one intra-op thread


def test_wide_beam_scores_are_exact_probability_plus_kept_bonus():
    """Nothing pruned: every sequence comes back with log P(sequence) (all alignments merged) + the bonus its
    phrases keep. Merges of alignments (blank- and symbol-extended hypotheses of one sequence) must keep graph
    states and bonuses consistent for this to hold."""
    vocab = 5
    dec, joint = make_model(3, vocab=vocab, sharpen=1.5)
    lens_l = [4, 3]
    x, lens = make_enc(4, lens_l)
    g = ContextGraph([((1, 2), 1.3), ((2, 3, 1), 0.8), ((4,), 0.5)], vocab=vocab)
    out = modified_beam_search(x, lens, dec, joint, beam=10_000, nbest=10_000, biasing=g)
    n_biased = 0
    for i, n in enumerate(lens_l):
        exact = exact_sequence_scores(dec, joint, x[i, :n])
        got = {tuple(h.yseq): h.score for h in out[i]}
        assert set(got) == set(exact)
        for seq, score in exact.items():
            bonus = g.replay(seq)[1]
            n_biased += bonus != 0
            assert got[seq] == pytest.approx(score + bonus, abs=1e-5), seq
    assert n_biased > 5


def test_bonus_pulls_a_phrase_into_the_output():
    vocab = 8
    found = 0
    for seed in range(4):
        dec, joint = make_model(50 + seed, vocab=vocab, sharpen=1.5)
        x, lens = make_enc(60 + seed, [12, 9])
        plain = modified_beam_search(x, lens, dec, joint, beam=4)
        phrase = (6, 7, 5)
        assert not any(_contains(h[0].yseq, phrase) for h in plain)
        g = ContextGraph([(phrase, 6.0)], vocab=vocab)
        biased = modified_beam_search(x, lens, dec, joint, beam=4, biasing=g)
        greedy = greedy_search_batch(x, lens, dec, joint, biasing=g)
        found += sum(_contains(h[0].yseq, phrase) for h in biased) + sum(_contains(y, phrase) for y in greedy)
    assert found >= 8  # (of 16) the plain searches never emit it


def _contains(seq, phrase) -> bool:
    seq = list(seq)
    return any(tuple(seq[i : i + len(phrase)]) == tuple(phrase) for i in range(len(seq)))


def test_no_graph_is_identical_and_per_utterance_graphs_are_independent():
    vocab = 8
    dec, joint = make_model(7, vocab=vocab, sharpen=1.5)
    x, lens = make_enc(8, [10, 7, 12])
    g = ContextGraph([((6, 7), 5.0)], vocab=vocab)
    for search in (
        lambda **kw: modified_beam_search(x, lens, dec, joint, beam=4, nbest=3, **kw),
        lambda **kw: greedy_search_batch(x, lens, dec, joint, max_sym_per_frame=2, return_frames=True, **kw),
    ):
        plain = search()
        assert repr(search(biasing=[None, None, None])) == repr(plain)  # no graph: the same code path
        mixed = search(biasing=[None, g, None])
        alone = search(biasing=g)
        if isinstance(plain, tuple):  # greedy: (tokens, frames) per utterance
            plain, mixed, alone = [list(zip(*r)) for r in (plain, mixed, alone)]
        assert repr(mixed[0]) == repr(plain[0]) and repr(mixed[2]) == repr(plain[2])
        assert repr(mixed[1]) == repr(alone[1]) != repr(plain[1])


def test_gated_mode_never_boosts_outside_a_span():
    """[NE] (token 1) suppressed: no hypothesis ever opens a span, so gated biasing changes nothing at all, while
    the same list ungated does; with spans allowed the gated bonus appears only inside them."""
    vocab = 8
    dec, joint = make_model(11, vocab=vocab, sharpen=1.5)
    x, lens = make_enc(12, [12, 10])
    grammar = SpanGrammar(open_id=1, close_id=2)
    no_open = torch.zeros(2, vocab, dtype=torch.bool)
    no_open[:, 1] = True
    gated = ContextGraph([((6, 7), 5.0)], vocab=vocab, mode="gated", open_id=1, close_id=2, close_bonus=2.0)
    ungated = ContextGraph([((6, 7), 5.0)], vocab=vocab)
    kw = dict(beam=4, nbest=4, span_grammar=grammar, suppress_mask=no_open)
    plain = modified_beam_search(x, lens, dec, joint, **kw)
    assert repr(modified_beam_search(x, lens, dec, joint, biasing=gated, **kw)) == repr(plain)
    assert repr(modified_beam_search(x, lens, dec, joint, biasing=ungated, **kw)) != repr(plain)
    with torch.no_grad():
        joint.lin_out.bias[1] += 2.0  # spans are likely: the gate opens
    out = modified_beam_search(x, lens, dec, joint, beam=4, nbest=4, span_grammar=grammar, biasing=gated)
    inside = 0
    for hyps in out:
        for h in hyps:
            state, steps = gated.start, []
            for tok in h.yseq:
                state_before = state
                state, b = gated.step(state, tok)
                steps.append(b)
                assert b == 0.0 or grammar.inside(h.yseq[: len(steps) - 1]) or tok == 1, (h.yseq, state_before)
            inside += any(steps)
    assert inside > 0


@pytest.mark.parametrize("search", ["beam", "greedy"])
def test_streamed_equals_offline_with_a_list(search):
    vocab = 8
    dec, joint = make_model(21, vocab=vocab, sharpen=1.5)
    x, lens = make_enc(22, [15])
    g = ContextGraph([((6, 7), 4.0), ((3, 6), 2.0)], vocab=vocab, close_id=2, close_bonus=1.0)
    if search == "beam":
        offline = modified_beam_search(x, lens, dec, joint, beam=4, nbest=3, length_norm=True, biasing=g)[0]
        stream = BeamStream(dec, joint, None, torch.device("cpu"), beam=4, biasing=g)
    else:
        offline = greedy_search_batch(x, lens, dec, joint, biasing=g)[0]
        stream = GreedyStream(dec, joint, None, torch.device("cpu"), biasing=g)
    for a, b in ((0, 4), (4, 5), (5, 11), (11, 15)):
        stream.advance(x[:, a:b])
    got = stream.nbest(3)
    if search == "beam":
        assert [h.yseq for h in got] == [h.yseq for h in offline]
        assert [h.score for h in got] == pytest.approx([h.score for h in offline], abs=1e-5)  # float32 joint in pieces
    else:
        assert got[0].yseq == offline
    plain = (
        modified_beam_search(x, lens, dec, joint, beam=4)[0][0].yseq
        if search == "beam"
        else greedy_search_batch(x, lens, dec, joint)[0]
    )
    assert plain != (got[0].yseq)  # the list changed the result


# ---- the decoder API and the CLI on the tiny trained model ------------------------------------------------
@pytest.mark.parametrize("search", ["modified_beam_search", "greedy"])
def test_decoder_empty_list_is_identical_and_a_list_is_used(tiny, search):
    from espnet2_ext.text.biasing_list import phrases_list

    make, data, _ = tiny
    s2t = make(transducer_conf={"search_type": search, "biasing_weight": 8.0})
    assert s2t.biasing.conf["weight"] == 8.0
    speech, lens = padded_batch(data)
    plain = s2t.decode_batch(speech, lens)
    for empty in ([], phrases_list([]), [[], None, phrases_list(["", "  "]), None]):
        assert repr(s2t.decode_batch(speech, lens, biasing=empty)) == repr(plain)
    lst = phrases_list(["Berlin", "guten tag", "zzz unknown"])  # the last one cannot be spelled: skipped
    biased = s2t.decode_batch(speech, lens, biasing=lst)
    assert s2t.biasing.last_stats == {"phrases": 2, "unspellable": 1, "seconds": s2t.biasing.last_stats["seconds"]}
    assert s2t.biasing.graph(lst) is s2t.biasing.graph(lst)  # built once per list object
    assert [r[0][0] for r in biased] != [r[0][0] for r in plain]
    assert sum(r[0][0].split().count("berlin") for r in biased) > sum(r[0][0].split().count("berlin") for r in plain)
    one = s2t(speech[1, : int(lens[1])], biasing=lst)[0]
    assert one[2] == biased[1][0][2]


def test_espnet_searches_refuse_a_list(tiny):
    make, data, _ = tiny
    s2t = make(transducer_conf={"search_type": "default"})
    speech, lens = padded_batch(data)
    with pytest.raises(ValueError, match="not ESPnet's 'default'") as e:
        s2t(speech[0, : int(lens[0])], biasing=["berlin"])
    assert "\n" not in str(e.value)
    s2t(speech[0, : int(lens[0])], biasing=[])  # an empty list is no list
    with pytest.raises(ValueError, match="biasing_mode 'always' is unknown"):
        make(biasing_mode="always")


def _cli(out, data, tmp_path, name, *extra):
    from espnet2_ext.bin.asr_inference import main

    rc = main(
        [
            "--asr_train_config",
            str(out / "config.yaml"),
            "--asr_model_file",
            str(out / "valid.loss.best.pth"),
            "--data_path_and_name_and_type",
            f"{data / 'wav.scp'},speech,sound",
            "--batch_size",
            "2",
            "--output_dir",
            str(tmp_path / name),
            *extra,
        ]
    )
    return rc, {
        f: (tmp_path / name / "1best_recog" / f).read_text() if rc == 0 else None
        for f in ("text", "token_int", "score", "ctm")
    }


def test_cli_per_utterance_lists_and_empty_list(tiny, tmp_path, capsys):
    _, data, out = tiny
    rc, plain = _cli(out, data, tmp_path, "plain")
    assert rc == 0
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing yet\n\n", encoding="utf-8")
    rc, got = _cli(out, data, tmp_path, "empty", "--biasing_list", str(empty))
    assert rc == 0 and got == plain  # byte-identical files
    (tmp_path / "lists").mkdir()
    (tmp_path / "lists" / "names.txt").write_text("berlin :9\n", encoding="utf-8")
    u2b = tmp_path / "utt2biasing"
    u2b.write_text("spk1-u1 lists/names.txt\nspk2-u4 lists/names.txt\n", encoding="utf-8")
    rc, biased = _cli(out, data, tmp_path, "biased", "--utt2biasing", str(u2b))
    assert rc == 0
    lines = lambda t: dict(line.split(" ", 1) for line in t.splitlines())  # noqa: E731
    p, b = lines(plain["text"]), lines(biased["text"])
    assert b["spk1-u2"] == p["spk1-u2"] and b["spk2-u3"] == p["spk2-u3"]  # no list: unchanged
    for utt in ("spk1-u1", "spk2-u4"):  # the list pulls its phrase in
        assert b[utt].split().count("berlin") > p[utt].split().count("berlin"), (utt, p[utt], b[utt])
    u2b.write_text("nobody lists/names.txt\n", encoding="utf-8")
    rc, _ = _cli(out, data, tmp_path, "bad", "--utt2biasing", str(u2b))
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and "'nobody' is neither an utterance nor a recording" in err[-1]
    rc, _ = _cli(
        out, data, tmp_path, "esp", "--biasing_list", str(tmp_path / "lists" / "names.txt"), "--search_type", "default"
    )
    assert rc == 1 and "not ESPnet's 'default'" in capsys.readouterr().err


def test_utt2biasing_by_recording_through_segments(tmp_path):
    from espnet2_ext.text.biasing_list import read_lists_for

    (tmp_path / "segments").write_text("u1 rec1 0.0 1.0\nu2 rec1 1.0 2.0\nu3 rec2 0.0 1.0\n", encoding="utf-8")
    (tmp_path / "utt2biasing").write_text("rec1 | anna berg\nu3 | olaf\n", encoding="utf-8")
    lists = read_lists_for(tmp_path / "utt2biasing", ["u1", "u2", "u3"])
    assert lists["u1"] is lists["u2"] and lists["u1"].texts == ["anna berg"] and lists["u3"].texts == ["olaf"]


def test_gated_cli_option_reaches_the_graph(tiny):
    make, _, _ = tiny
    s2t = make(biasing_mode="gated", biasing_close_bonus=1.5, transducer_conf={"biasing_weight": 3.0})
    g = s2t.biasing.graph(s2t.biasing.as_list(["berlin"]))
    assert (g.mode, g.close_bonus, s2t.biasing.conf["weight"]) == ("gated", 1.5, 3.0)
    assert g.open_id == s2t.token_list.index("[NE]") and g.close_id == s2t.token_list.index("[/NE]")
    assert g.replay([g.open_id, s2t.token_list.index("berlin"), g.close_id])[1] == pytest.approx(3.0 + 1.5)


def test_gated_mode_composes_with_the_span_grammar(tiny):
    make, data, _ = tiny
    s2t = make(biasing_mode="gated", biasing_weight=8.0, transducer_conf={"span_grammar": True})
    speech, lens = padded_batch(data)
    out = s2t.decode_batch(speech, lens, biasing=["berlin", "maria"])
    for r in out:  # the grammar's rules hold on every prefix (a span still open at the end is closed here)
        tags = [t for t in r[0][0].split() if t in ("[NE]", "[/NE]")]
        tags += ["[/NE]"] if tags[-1:] == ["[NE]"] else []
        assert tags == ["[NE]", "[/NE]"] * (len(tags) // 2)
    g = s2t.biasing.graph(s2t.biasing.as_list(["berlin", "maria"]))
    for text, tokens, ids, hyp in (r[0] for r in out):  # bonus only inside the spans the output opened
        state, inside = g.start, False
        for tok, name in zip(ids, tokens):
            state, bonus = g.step(state, tok)
            assert bonus == 0.0 or inside, (text, name)
            inside = (inside or name == "[NE]") and name != "[/NE]"
    assert g.gated and any("[NE]" in r[0][0] for r in out)


@pytest.mark.parametrize("max_sym", [1, 3])
def test_greedy_look_ahead_window_does_not_change_biased_results(max_sym):
    """The bonus depends on the graph state after each emission; the greedy window ends at the first emission,
    so every window gives the frame-by-frame (window 1) result, with a list as without one."""
    from espnet2_ext.asr.transducer.context_graph import BiasingSlots
    from espnet2_ext.asr.transducer.greedy_search import GreedySearch
    from espnet2_ext.asr.transducer.search_common import JointScorer, PredictionNet

    vocab = 8
    dec, joint = make_model(31, vocab=vocab, sharpen=1.5)
    x, lens = make_enc(32, [17, 9, 13])
    g = ContextGraph([((6, 7), 4.0), ((3, 6, 5), 2.0), ((4,), 1.0)], vocab=vocab, close_id=2, close_bonus=1.0)
    cpu = torch.device("cpu")
    outs = {}
    for window in (1, 2, 8, 32):
        for name, biasing in (("plain", None), ("list", g)):
            with torch.inference_mode():
                pred = PredictionNet(dec, cpu)
                scorer = JointScorer(joint, pred.blank_id)
                search = GreedySearch(
                    pred, scorer, 3, max_sym, None, None, cpu, window=window, bias=BiasingSlots.open(biasing, 3)
                )
                emitted = map(tuple, search.run(scorer.enc(x), lens).tolist())  # (utt, token, frame)
                outs[window, name] = sorted(emitted, key=lambda e: (e[0], e[2]))  # stable: order within a frame
    for window in (2, 8, 32):
        assert outs[window, "list"] == outs[1, "list"]
        assert outs[window, "plain"] == outs[1, "plain"]
    assert outs[1, "list"] != outs[1, "plain"]  # the list changes the result
    hyps, frames = greedy_search_batch(x, lens, dec, joint, max_sym_per_frame=max_sym, return_frames=True, biasing=g)
    assert [(u, tok, t) for u in range(3) for tok, t in zip(hyps[u], frames[u])] == outs[1, "list"]
