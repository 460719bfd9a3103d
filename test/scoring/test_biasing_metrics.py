"""U-WER / B-WER / false alarms (espnet2_ext.scoring.biasing_metrics) on hand-computed cases, and the
tokenverse_score --utt2biasing hook."""

import json

import pytest

from espnet2_ext.bin import tokenverse_score
from espnet2_ext.scoring.biasing_metrics import occurrences, score_biasing, score_biasing_utterance
from espnet2_ext.task_spec import TaskSpec
from espnet2_ext.text.biasing_list import phrases_list

SPEC = TaskSpec.default()


def P(*phrases):
    return [tuple(p.split()) for p in phrases]


def utt(ref, hyp, *phrases):
    return score_biasing_utterance(ref.split(), hyp.split(), P(*phrases))


def test_occurrences_overlapping_and_repeated():
    words = "anna berg met anna".split()
    assert occurrences(words, P("anna", "anna berg", "berg met")) == [
        (0, ("anna",)),
        (0, ("anna", "berg")),
        (1, ("berg", "met")),
        (3, ("anna",)),
    ]


def test_split_of_substitutions_and_deletions():
    # ref: call anna berg now (biased: anna berg); hyp: call ana berg  -> S on anna (B), D on now (U)
    c = utt("call anna berg now", "call ana berg", "anna berg", "oslo")
    assert (c["b_ref"], c["u_ref"]) == (2, 2)
    assert (c["b_S"], c["b_D"], c["u_S"], c["u_D"]) == (1, 0, 0, 1)
    # the phrase was said and not emitted; nothing false
    assert (c["ref_phrases"], c["hyp_phrases"], c["phrase_hits"], c["false_alarms"]) == (1, 0, 0, 0)


def test_insertions_follow_le_et_al():
    # "anna" is a biasing word (its phrase occurs in the reference): inserting it again is a B insertion;
    # the distractor "oslo" is not in the reference: a U insertion, and a false alarm
    c = utt("call anna", "call anna anna oslo", "anna", "oslo")
    assert (c["b_I"], c["u_I"]) == (1, 1)
    assert (c["ref_phrases"], c["hyp_phrases"], c["phrase_hits"], c["false_alarms"]) == (1, 3, 1, 2)


def test_words_of_a_phrase_outside_its_occurrence_are_unbiased():
    # "berg" alone is not inside an occurrence of "anna berg"
    c = utt("berg and anna berg", "berg and anna berg", "anna berg")
    assert (c["b_ref"], c["u_ref"]) == (2, 2)


def test_partial_phrase_in_reference_biases_nothing():
    c = utt("call anna", "call anna berg", "anna berg")
    assert c["b_ref"] == 0 and c["u_I"] == 1 and c["false_alarms"] == 1


def test_empty_sides():
    assert utt("", "anna", "anna")["u_I"] == 1  # nothing in the reference: no biasing words
    c = utt("anna x", "", "anna")
    assert (c["b_D"], c["u_D"]) == (1, 1)


def test_corpus_rates_add_up_to_the_wer():
    ref = {
        "u1": "[EN] call [NE] anna berg [/NE] now [ENDP]".split(),
        "u2": "[EN] hello there [ENDP]".split(),
        "u3": "[EN] go to [NE] oslo [/NE] [ENDP]".split(),
    }
    hyp = {
        "u1": "[EN] call [NE] ana berg [/NE] [ENDP]".split(),
        "u2": "[EN] hello oslo there [ENDP]".split(),
        "u3": "[EN] go to [NE] oslo [/NE] [ENDP]".split(),
    }
    lists = {"u1": phrases_list(["Anna Berg", "oslo"]), "u2": phrases_list(["oslo"]), "u3": phrases_list(["oslo"])}
    r = score_biasing(ref, hyp, lists, SPEC.is_task_token)
    # biased words: anna berg (u1), oslo (u3) = 3; errors S anna -> 1/3; unbiased: call now hello there go to = 6,
    # errors D now + I oslo (u2, a false alarm) -> 2/6
    assert r["b_wer"] == pytest.approx(100 / 3) and r["u_wer"] == pytest.approx(200 / 6)
    assert r["counts"]["false_alarms"] == 1 and r["fa_rate"] == pytest.approx(50.0)
    assert r["fa_per_100_utts"] == pytest.approx(100 / 3)
    assert r["phrase_recall"] == pytest.approx(50.0) and r["mean_list_size"] == pytest.approx(4 / 3)
    from espnet2_ext.scoring.metrics import score_corpus

    wer = score_corpus(ref, hyp, SPEC, ("asr", "ner"))["counts"]["wer"]
    c = r["counts"]
    assert c["u_ref"] + c["b_ref"] == 9
    assert sum(c[k] for k in ("u_S", "u_D", "u_I", "b_S", "b_D", "b_I")) == wer["S"] + wer["D"] + wer["I"]


def test_utterance_without_a_list_is_all_unbiased():
    r = score_biasing({"u1": ["anna"]}, {"u1": ["ana"]}, {}, SPEC.is_task_token)
    assert r["b_wer"] is None and r["u_wer"] == 100.0 and r["mean_list_size"] is None


def _files(tmp_path, ref, hyp, utt2biasing):
    (tmp_path / "text").write_text(ref, encoding="utf-8")
    (tmp_path / "hyp").write_text(hyp, encoding="utf-8")
    (tmp_path / "utt2biasing").write_text(utt2biasing, encoding="utf-8")
    return [
        "--ref",
        str(tmp_path / "text"),
        "--hyp",
        str(tmp_path / "hyp"),
        "--task_activation",
        "asr,ner,lid",
        "--utt2biasing",
        str(tmp_path / "utt2biasing"),
        "--out_json",
        str(tmp_path / "s.json"),
    ]


def test_cli_adds_the_biasing_section(tmp_path, capsys):
    argv = _files(
        tmp_path,
        "u1 [EN] call [NE] anna [/NE] now\nu2 [EN] hello\n",
        "u1 [EN] call [NE] anna [/NE]\nu2 [EN] hello oslo\n",
        "u1 | anna | oslo\nu2 | oslo\n",
    )
    assert tokenverse_score.main(argv) == 0
    b = json.loads((tmp_path / "s.json").read_text())["biasing"]
    assert b["b_wer"] == 0.0 and b["u_wer"] == pytest.approx(200 / 3) and b["counts"]["false_alarms"] == 1
    assert "U-WER 66.67, B-WER 0.00" in capsys.readouterr().out


def test_cli_unknown_utterance_is_one_line(tmp_path, capsys):
    argv = _files(tmp_path, "u1 [EN] hi\n", "u1 [EN] hi\n", "u9 | anna\n")
    assert tokenverse_score.main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "u9" in err and not (tmp_path / "s.json").exists()


def test_cli_recording_lists_through_orig_segments(tmp_path):
    # a dumped dir keeps where each utterance was cut from: a line for the recording covers both its utterances
    argv = _files(
        tmp_path,
        "r1-a [EN] hi [NE] anna [/NE]\nr1-b [EN] bye [NE] anna [/NE]\n",
        "r1-a [EN] hi [NE] ana [/NE]\nr1-b [EN] bye [NE] anna [/NE]\n",
        "r1 | anna\n",
    )
    (tmp_path / "orig_segments").write_text("r1-a r1 0.0 1.0\nr1-b r1 1.0 2.0\n")
    assert tokenverse_score.main(argv) == 0
    b = json.loads((tmp_path / "s.json").read_text())["biasing"]
    assert b["counts"]["utts_with_list"] == 2 and b["b_wer"] == 50.0 and b["u_wer"] == 0.0
