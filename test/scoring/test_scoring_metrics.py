"""Hand-computed cases for the TokenVerse++ metrics and the tokenverse_score CLI."""

import json

import pytest

import espnet2_ext  # noqa: F401  (offline guard before anything else)
from espnet2_ext.bin import tokenverse_score
from espnet2_ext.common import DataError
from espnet2_ext.scoring.metrics import align_matches, entities_by_seen, score_corpus, score_utterance, summarize
from espnet2_ext.task_spec import TaskSpec

SPEC = TaskSpec.default()
ALL = ("asr", "scd", "endp", "ner", "lid")


def corpus(ref, hyp, active=ALL, spec=SPEC, utt2lang=None):
    """ref/hyp: {utt: "text"}."""
    return score_corpus(
        {u: t.split() for u, t in ref.items()}, {u: t.split() for u, t in hyp.items()}, spec, active, utt2lang
    )


def one(ref, hyp, active=ALL):
    return corpus({"u1": ref}, {"u1": hyp}, active)


# ---- alignment -----------------------------------------------------------------------------------------
def test_align_prefers_matched_word_over_matched_tag():
    ref, hyp = "[SCD] nice".split(), "nice [SCD]".split()
    # Three cost-2 alignments exist; the chosen one matches the word, not the tag.
    assert align_matches(ref, hyp, SPEC.is_task_token) == [(1, 0)]


def test_align_tie_breaks_words_then_tags():
    # "a [SCD] b" vs "a b [SCD]": matching both words (tag FP+FN) beats matching a and the tag.
    ref, hyp = "a [SCD] b".split(), "a b [SCD]".split()
    assert align_matches(ref, hyp, SPEC.is_task_token) == [(0, 0), (2, 1)]
    # Two cost-2 alignments keep the word y: substituting [ENDP]/[SCD] and [SCD]/z matches no tag, while
    # deleting [ENDP] and inserting z matches [SCD]; the latter wins.
    ref, hyp = "[ENDP] [SCD] y".split(), "[SCD] z y".split()
    assert align_matches(ref, hyp, SPEC.is_task_token) == [(1, 0), (2, 2)]


# ---- SCD / ENDP ----------------------------------------------------------------------------------------
def test_scd_shifted_by_one_word_is_fp_and_fn():
    r = one("[SCD] nice", "nice [SCD]")
    assert r["counts"]["scd"] == {"tp": 0, "fp": 1, "fn": 1}
    assert r["scd_f1"] == 0.0
    assert r["wer"] == 0.0  # tags never count for WER


def test_inserted_and_deleted_task_tokens():
    r = corpus({"u1": "a b [ENDP]", "u2": "a [SCD] b [ENDP]"}, {"u1": "a [ENDP] b [ENDP]", "u2": "a b [ENDP]"})
    # u1: one ENDP matched, one inserted; u2: SCD deleted, ENDP matched.
    assert r["counts"]["endp"] == {"tp": 2, "fp": 1, "fn": 0}
    assert r["counts"]["scd"] == {"tp": 0, "fp": 0, "fn": 1}
    assert r["endp_f1"] == pytest.approx(100 * 4 / 5)
    assert r["scd_f1"] == 0.0


def test_perfect_hypothesis():
    text = "[EN] hello [NE] maria [/NE] how are you [ENDP] [SCD] fine thanks [ENDP]"
    r = one(text, text)
    assert r["wer"] == 0.0
    assert r["scd_f1"] == r["endp_f1"] == r["ner_f1"] == r["lid_acc"] == 100.0
    assert r["itt"] == 0
    assert r["counts"]["n_ref_words"] == 7


# ---- WER -----------------------------------------------------------------------------------------------
def test_wer_ignores_task_tokens_and_is_corpus_level():
    r = corpus({"u1": "[EN] a b c [ENDP]", "u2": "d e"}, {"u1": "a x c d [SCD]", "u2": "[EN] d e"})
    # u1: 1 substitution + 1 insertion over 3 words; u2: correct. Corpus: 2 / 5.
    assert r["counts"]["wer"] == {"S": 1, "D": 0, "I": 1}
    assert r["counts"]["n_ref_words"] == 5
    assert r["wer"] == pytest.approx(40.0)


def test_empty_hypothesis():
    r = one("[EN] hello [NE] maria [/NE] [ENDP] [SCD] yes [ENDP]", "")
    assert r["counts"]["wer"] == {"S": 0, "D": 3, "I": 0}
    assert r["wer"] == 100.0
    assert r["counts"]["scd"] == {"tp": 0, "fp": 0, "fn": 1}
    assert r["counts"]["endp"] == {"tp": 0, "fp": 0, "fn": 2}
    assert r["scd_f1"] == r["endp_f1"] == r["ner_f1"] == r["lid_acc"] == 0.0


def test_empty_reference_words_count_insertions():
    r = corpus({"u1": "[EN] a b", "u2": "[ENDP]"}, {"u1": "[EN] a b", "u2": "oh [ENDP]"})
    assert r["counts"]["wer"] == {"S": 0, "D": 0, "I": 1}
    assert r["wer"] == pytest.approx(50.0)


# ---- NER -----------------------------------------------------------------------------------------------
def test_entity_with_one_wrong_word_does_not_match():
    r = one("in [NE] new york [/NE] now", "in [NE] new yorkk [/NE] now")
    assert r["counts"]["ner"] == {"tp": 0, "hyp": 1, "ref": 1}
    assert r["ner_f1"] == 0.0


def test_duplicate_entities_are_a_multiset():
    r = corpus(
        {"u1": "[NE] paris [/NE] and [NE] paris [/NE]", "u2": "[NE] rome [/NE]"},
        {"u1": "[NE] paris [/NE] and paris", "u2": "[NE] rome [/NE] [NE] rome [/NE]"},
    )
    # u1: one of two matched; u2: one matched, one extra. TP 2, hyp 3, ref 3.
    assert r["counts"]["ner"] == {"tp": 2, "hyp": 3, "ref": 3}
    assert r["ner_f1"] == pytest.approx(100 * 4 / 6)


def test_unclosed_entity_runs_to_end():
    r = one("call [NE] maria lopez [/NE]", "call [NE] maria lopez")
    assert r["counts"]["ner"]["tp"] == 1
    assert r["ner_f1"] == 100.0


# ---- LID -----------------------------------------------------------------------------------------------
def test_lid_first_token_missing_token_and_unlabelled_refs():
    r = corpus(
        {"u1": "[EN] hi", "u2": "[DE] hallo", "u3": "[FR] salut", "u4": "ciao"},
        {"u1": "[EN] hi", "u2": "hallo", "u3": "[ES] [FR] salut", "u4": "[EN] ciao"},
    )
    # u2: no language token -> wrong; u3: first token ES -> wrong; u4: reference has none -> not counted.
    assert r["counts"]["lid"] == {"correct": 1, "total": 3}
    assert r["lid_acc"] == pytest.approx(100 / 3)


def test_custom_languages():
    spec = TaskSpec.default(["en", "it"])
    r = corpus({"u1": "[IT] ciao"}, {"u1": "[IT] ciao"}, spec=spec)
    assert r["lid_acc"] == 100.0 and r["wer"] == 0.0
    # With the default spec [IT] is an ordinary word: WER counts it and LID has no reference.
    r = corpus({"u1": "[IT] ciao"}, {"u1": "ciao"})
    assert r["lid_acc"] is None and r["wer"] == 50.0


# ---- activation, ITT, nulls ----------------------------------------------------------------------------
def test_itt_counts_tokens_of_inactive_tasks_and_metrics_are_null():
    ref = "[EN] hello [NE] maria [/NE] [ENDP] [SCD] fine [ENDP]"
    hyp = "[EN] hello [NE] maria [/NE] [ENDP] [SCD] fine [ENDP]"
    r = one(ref, hyp, active=("asr", "lid"))
    assert r["itt"] == 5  # [NE] [/NE] [ENDP] [SCD] [ENDP]
    assert r["scd_f1"] is None and r["endp_f1"] is None and r["ner_f1"] is None
    assert r["lid_acc"] == 100.0 and r["wer"] == 0.0
    assert r["task_activation"] == ["asr", "lid"]
    r = one(ref, hyp, active=("asr", "scd", "endp", "ner"))
    assert r["itt"] == 1 and r["lid_acc"] is None


def test_null_when_reference_lacks_the_task():
    r = one("[EN] hello there", "[EN] hello [NE] there [/NE] [SCD]")
    assert r["ner_f1"] is None and r["scd_f1"] is None and r["endp_f1"] is None
    assert r["counts"]["ner"] == {"tp": 0, "hyp": 1, "ref": 0}  # counts are kept all the same
    assert r["lid_acc"] == 100.0 and r["itt"] == 0


# ---- per language --------------------------------------------------------------------------------------
def test_per_language_from_reference_tokens():
    r = corpus(
        {"e1": "[EN] a b [ENDP]", "e2": "[EN] c d", "d1": "[DE] x y [ENDP]", "n1": "z"},
        {"e1": "[EN] a b [ENDP]", "e2": "[EN] c", "d1": "[EN] x q", "n1": "z z"},
    )
    pl = r["per_language"]
    assert list(pl) == ["de", "en", "unk"]
    assert pl["en"]["wer"] == pytest.approx(25.0) and pl["en"]["lid_acc"] == 100.0
    assert pl["en"]["endp_f1"] == 100.0 and pl["en"]["n_utts"] == 2
    assert pl["de"]["wer"] == 50.0 and pl["de"]["lid_acc"] == 0.0 and pl["de"]["endp_f1"] == 0.0
    assert pl["unk"]["wer"] == 100.0 and pl["unk"]["lid_acc"] is None and pl["unk"]["endp_f1"] is None
    # Overall: errors 0 + 1 + 1 + 1 over 7 words.
    assert r["wer"] == pytest.approx(100 * 3 / 7)


def test_per_language_from_utt2lang_and_missing_entry():
    ref, hyp = {"a": "[EN] x", "b": "y"}, {"a": "x", "b": "y"}
    r = corpus(ref, hyp, utt2lang={"a": "fr", "b": "fr"})
    assert list(r["per_language"]) == ["fr"]
    assert r["per_language"]["fr"]["n_utts"] == 2
    with pytest.raises(DataError, match="no language for utterance.*b"):
        corpus(ref, hyp, utt2lang={"a": "fr"})


# ---- mismatched utterances -----------------------------------------------------------------------------
def test_utterances_in_one_file_only_are_named():
    ref = {f"u{i}": "a" for i in range(10)}
    hyp = {f"u{i}": "a" for i in range(3)}
    hyp["extra"] = "a"
    with pytest.raises(DataError) as e:
        corpus(ref, hyp)
    msg = str(e.value)
    assert "in reference but missing from hypothesis: u3, u4, u5, u6, u7 ... (7 in total)" in msg
    assert "in hypothesis but missing from reference: extra (1 in total)" in msg


# ---- utterance-level helper ----------------------------------------------------------------------------
def test_summarize_of_single_utterance_matches_corpus():
    ref, hyp = "[EN] a [SCD] b [ENDP]".split(), "[EN] a b [SCD] [ENDP]".split()
    s = summarize(score_utterance(ref, hyp, SPEC, ALL), ALL)
    assert s["scd_f1"] == 0.0 and s["endp_f1"] == 100.0 and s["wer"] == 0.0


# ---- CLI -----------------------------------------------------------------------------------------------
def _write(path, lines):
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def test_cli_writes_json_and_table(tmp_path, capsys):
    ref = _write(tmp_path / "text", ["u1 [EN] hello [NE] maria [/NE] [ENDP]", "u2 [DE] ja [SCD] nein [ENDP]"])
    decode = tmp_path / "decode" / "1best_recog"
    decode.mkdir(parents=True)
    _write(decode / "text", ["u2 [DE] ja nein [SCD] [ENDP]", "u1 [EN] hello [NE] maria [/NE] [ENDP]"])
    out = tmp_path / "res" / "score.json"
    tokenverse_score.run(
        [
            "--ref",
            str(ref),
            "--hyp",
            str(tmp_path / "decode"),
            "--task_activation",
            "asr,scd,endp,ner,lid",
            "--out_json",
            str(out),
            "--model",
            "m1",
            "--test_set",
            "t1",
        ]
    )
    data = json.loads(out.read_text())
    assert {
        "wer",
        "scd_f1",
        "endp_f1",
        "ner_f1",
        "lid_acc",
        "itt",
        "per_language",
        "counts",
        "task_activation",
        "model",
        "test_set",
    } <= set(data)
    assert data["model"] == "m1" and data["test_set"] == "t1"
    assert data["wer"] == 0.0 and data["scd_f1"] == 0.0 and data["endp_f1"] == 100.0
    assert data["counts"]["n_utts"] == 2
    assert set(data["per_language"]) == {"de", "en"}
    printed = capsys.readouterr().out
    assert "| all | 0.00 | 0.00 | 100.00 | 100.00 | 100.00 | 0 |" in printed
    assert not list(out.parent.glob(".*tmp*"))  # no temporary file left behind


def test_entities_by_seen_splits_recall_and_counts_wrong_spans():
    known = {"hello", "maria", "peter", "berlin"}
    ref = {
        "u1": "[NE] maria [/NE] and [NE] katrin [/NE] and [NE] maria [/NE]".split(),
        "u2": "[NE] peter smith [/NE] in [NE] berlin [/NE]".split(),
        "u3": "nothing here".split(),
    }
    hyp = {
        "u1": "[NE] maria [/NE] and [NE] catredi [/NE]".split(),  # one of two marias, katrin misspelled
        "u2": "[NE] peter smith [/NE] in [NE] berlin [/NE] [NE] berlin [/NE]".split(),  # one berlin too many
        "u3": "[NE] nothing [/NE] here".split(),
    }
    assert entities_by_seen(ref, hyp, known) == {
        "seen_found": 2,
        "seen": 3,  # maria x2 (1 found), berlin (found); "peter smith" has an unknown word
        "unseen_found": 1,
        "unseen": 2,  # peter smith (found), katrin (not)
        "wrong_spans": 3,
    }  # catredi, the second berlin, nothing


def test_cli_train_text_adds_the_seen_unseen_split(tmp_path, capsys):
    train = _write(tmp_path / "train_text", ["t1 [EN] hello [NE] maria [/NE] [ENDP]"])
    ref = _write(tmp_path / "text", ["u1 [EN] hello [NE] maria [/NE] and [NE] katrin [/NE] [ENDP]"])
    hyp = _write(tmp_path / "hyp", ["u1 [EN] hello [NE] maria [/NE] and [NE] catrin [/NE] [ENDP]"])
    out = tmp_path / "score.json"
    args = ["--ref", str(ref), "--hyp", str(hyp), "--task_activation", "asr,ner,lid", "--out_json", str(out)]
    tokenverse_score.run(args)
    assert "ner_by_seen" not in json.loads(out.read_text())
    tokenverse_score.run(args + ["--train_text", str(train)])
    assert json.loads(out.read_text())["ner_by_seen"] == {
        "seen_found": 1,
        "seen": 1,
        "unseen_found": 0,
        "unseen": 1,
        "wrong_spans": 1,
    }
    assert "entities found exactly: seen in train 1/1, unseen 0/1; wrong spans 1" in capsys.readouterr().out
    assert tokenverse_score.main(args + ["--train_text", str(tmp_path / "nope")]) != 0


def test_cli_errors(tmp_path):
    ref = _write(tmp_path / "ref", ["u1 a", "u2 b"])
    hyp = _write(tmp_path / "hyp", ["u1 a"])
    out = tmp_path / "score.json"
    with pytest.raises(DataError, match=r"in .*ref but missing from .*hyp: u2"):
        tokenverse_score.run(["--ref", str(ref), "--hyp", str(hyp), "--task_activation", "asr", "--out_json", str(out)])
    assert not out.exists()
    with pytest.raises(ValueError, match="unknown task.*xyz"):
        tokenverse_score.run(
            ["--ref", str(ref), "--hyp", str(ref), "--task_activation", "asr,xyz", "--out_json", str(out)]
        )
    dup = _write(tmp_path / "dup", ["u1 a", "u1 b"])
    with pytest.raises(DataError, match="dup:2: duplicate utterance id u1"):
        tokenverse_score.run(["--ref", str(dup), "--hyp", str(ref), "--task_activation", "asr", "--out_json", str(out)])


def test_added_point_task_is_scored_like_scd(tmp_path, capsys):
    """A task added with extend_model (qst = [Q] after a question) gets aligned-tag F1 as qst_f1."""
    from espnet2_ext.asr.extend import grow_spec

    spec = grow_spec(SPEC, {"qst": ("[Q]",)}, [])
    # ref: two questions; hyp: one [Q] in place, one a word late (fp + fn), one inserted (fp)
    ref = {"u1": "[EN] how are you [Q] [ENDP] fine", "u2": "[EN] is it [Q] yes it is"}
    hyp = {"u1": "[EN] how are you [Q] [ENDP] fine [Q]", "u2": "[EN] is it yes [Q] it is"}
    res = corpus(ref, hyp, active=("asr", "qst", "endp"), spec=spec)
    assert res["counts"]["qst"] == {"tp": 1, "fp": 2, "fn": 1}
    assert res["qst_f1"] == pytest.approx(100 * 2 / (2 + 2 + 1))
    assert res["wer"] == 0.0 and res["endp_f1"] == 100.0 and res["scd_f1"] is None
    off = corpus(ref, hyp, active=("asr",), spec=spec)
    assert off["qst_f1"] is None and off["itt"] == 6  # 3 [Q], 1 [ENDP], 2 [EN] from inactive tasks
    # the CLI: --extra_tasks, and the printed table gets a QST F1 column
    r = _write(tmp_path / "ref", [f"{u} {t}" for u, t in ref.items()])
    h = _write(tmp_path / "hyp", [f"{u} {t}" for u, t in hyp.items()])
    data = tokenverse_score.run(
        [
            "--ref",
            str(r),
            "--hyp",
            str(h),
            "--task_activation",
            "asr,qst",
            "--extra_tasks",
            "qst=[Q]",
            "--out_json",
            str(tmp_path / "s.json"),
        ]
    )
    assert data["qst_f1"] == pytest.approx(40.0)
    assert "QST F1" in capsys.readouterr().out
