"""Evaluation biasing lists (espnet2_ext.corpora.mini_tokenverse.biasing_lists, bin/make_biasing_lists): Le et al.'s
protocol."""

import json

import pytest

from espnet2_ext.bin.make_biasing_lists import main as cli
from espnet2_ext.common import DataError
from espnet2_ext.corpora.mini_tokenverse.biasing_lists import make_lists
from espnet2_ext.corpora.mini_tokenverse.name_pools import entity_words, name_pools
from espnet2_ext.data.kaldi_dir import Utterance, write_data_dir
from espnet2_ext.text.biasing_list import read_utt2biasing

CONV = ("asr", "scd", "endp", "ner", "lid")


def _dir(tmp_path, utts, name="test"):
    return write_data_dir(utts, tmp_path / name)


@pytest.fixture
def data(tmp_path):
    wav = str(tmp_path / "x.wav")
    utts = [
        Utterance("a1", "a", "[EN] call [NE] maria [/NE] in [NE] new york [/NE] [ENDP]", "en", CONV, wav, duration=1.0),
        Utterance("a2", "a", "[EN] hello [NE] maria [/NE] [ENDP]", "en", CONV, wav, duration=1.0),
        Utterance("b1", "b", "[DE] guten morgen [ENDP]", "de", CONV, wav, duration=1.0),
        Utterance("f1", "f", "[FR] bonjour [NE] paris [/NE] [ENDP]", "fr", CONV, wav, duration=1.0),
    ]
    return _dir(tmp_path, utts)


def _lists(out, kind_n):
    return {u: lst.texts for u, lst in read_utt2biasing(out / kind_n / "utt2biasing").items()}


def test_utt_lists_hold_references_and_nested_distractors(data, tmp_path):
    out = tmp_path / "lists"
    m = make_lists(data, out, seed=3, distractors=(0, 100, 500, 1000), kinds=("utt",))
    n0, n100, n1000 = _lists(out, "utt_n0"), _lists(out, "utt_n100"), _lists(out, "utt_n1000")
    assert n0 == {"a1": ["maria", "new york"], "a2": ["maria"], "b1": [], "f1": ["paris"]}
    assert all(len(n100[u]) == len(n0[u]) + 100 and len(n1000[u]) == len(n0[u]) + 1000 for u in n0)
    for u in n0:  # nested draws: the N = 100 list is inside the N = 1000 one; the references are in both
        assert set(n0[u]) <= set(n100[u]) <= set(n1000[u])
    # distractors: never a word of a mini_tokenverse entity, never a reference entity of the set
    refs = {"maria", "new york", "paris"}
    for u, phrases in n1000.items():
        extra = set(phrases) - set(n0[u])
        assert not extra & refs and not {w for p in extra for w in p.split()} & entity_words()
    # own language first: every German distractor at N = 100 comes from the German pool
    de = {n for names in name_pools("de").values() for n in names}
    assert set(n100["b1"]) <= de
    # French has fewer names than 1000: the rest is borrowed from the other languages and counted
    fr = {n for names in name_pools("fr").values() for n in names}
    assert len(set(n1000["f1"]) - fr - {"paris"}) == m["kinds"]["utt"]["borrowed_n1000"] > 0
    assert m["n_reference_entities"] == 4 and set(m["kinds"]) == {"utt"}


def test_deterministic_per_seed_and_different_across_seeds(data, tmp_path):
    make_lists(data, tmp_path / "s0a", seed=0, distractors=(100,), kinds=("utt", "lang"))
    make_lists(data, tmp_path / "s0b", seed=0, distractors=(100,), kinds=("utt", "lang"))
    make_lists(data, tmp_path / "s1", seed=1, distractors=(100,), kinds=("utt", "lang"))
    files = sorted(p.relative_to(tmp_path / "s0a") for p in (tmp_path / "s0a").rglob("*") if p.is_file())

    def manifest(d):
        return {k: v for k, v in json.loads((d / "manifest.json").read_text()).items() if k != "data_dir"}

    for f in files:
        if f.name != "manifest.json":
            assert (tmp_path / "s0a" / f).read_bytes() == (tmp_path / "s0b" / f).read_bytes()
    assert manifest(tmp_path / "s0a") == manifest(tmp_path / "s0b")
    assert _lists(tmp_path / "s0a", "utt_n100")["a1"] != _lists(tmp_path / "s1", "utt_n100")["a1"]


def test_language_catalogue_is_one_shared_file(data, tmp_path):
    out = tmp_path / "lists"
    make_lists(data, out, seed=0, distractors=(0, 10), kinds=("lang",))
    lists = read_utt2biasing(out / "lang_n0" / "utt2biasing")
    assert lists["a1"] is lists["a2"]  # one file per language: read once, one graph
    assert lists["a1"].texts == ["maria", "new york"] and lists["b1"].texts == []
    assert len(read_utt2biasing(out / "lang_n10" / "utt2biasing")["f1"]) == 11


def test_conversation_lists_follow_segments(tmp_path):
    rec = str(tmp_path / "rec.wav")
    utts = [
        Utterance(
            "r1-1", "r1", "[EN] hi [NE] anna [/NE] [ENDP]", "en", CONV, rec, start=0.0, end=1.0, recording_id="r1"
        ),
        Utterance(
            "r1-2", "r1", "[EN] call [NE] oslo [/NE] [ENDP]", "en", CONV, rec, start=1.0, end=2.0, recording_id="r1"
        ),
        Utterance(
            "r2-1", "r2", "[EN] hi [NE] bob [/NE] [ENDP]", "en", CONV, rec, start=2.0, end=3.0, recording_id="r2"
        ),
    ]
    out = tmp_path / "lists"
    m = make_lists(_dir(tmp_path, utts), out, seed=0, distractors=(0,), kinds=("utt", "conv"))
    conv = _lists(out, "conv_n0")
    assert conv == {"r1-1": ["anna", "oslo"], "r1-2": ["anna", "oslo"], "r2-1": ["bob"]}
    assert m["kinds"]["conv"]["groups"] == 2


def test_conversation_kind_skipped_when_each_utterance_is_one(data, tmp_path, capsys):
    out = tmp_path / "lists"
    assert cli(["--data_dir", str(data), "--out_dir", str(out), "--distractors", "0,5"]) == 0
    printed = capsys.readouterr()
    assert printed.out.split() == ["utt_n0", "utt_n5", "lang_n0", "lang_n5"]
    assert "no conv lists" in printed.err and not (out / "conv_n0").exists()


def test_read_speech_entities_from_the_corpus_plan(tmp_path):
    from espnet2_ext.corpora.mini_tokenverse.mini_tokenverse_plan import plan_split

    plans = plan_split("en", "test_partial", 0, 3, seed=0)
    wav = str(tmp_path / "x.wav")
    utts = [Utterance(p.utt_id, p.speaker, p.reference(), "en", ("asr", "lid"), wav, duration=1.0) for p in plans]
    d = _dir(tmp_path, utts, "test_partial")
    out = tmp_path / "lists"
    m = make_lists(d, out, seed=0, distractors=(0,), kinds=("utt",), corpus_seed=0)
    expected = {
        p.utt_id: sorted(set(p.turns[0].tokens[p.turns[0].tokens.index("[NE]") + 1 : p.turns[0].tokens.index("[/NE]")]))
        for p in plans
    }
    got = _lists(out, "utt_n0")
    assert m["utts_without_entity_annotation"] == 0
    assert all(got[u] and set(" ".join(got[u]).split()) >= set(expected[u]) for u in got)
    # without the seed: distractors only, counted; with another seed: a one-line error
    assert make_lists(d, tmp_path / "l2", distractors=(0,), kinds=("utt",))["utts_without_entity_annotation"] == 3
    with pytest.raises(DataError, match="plan of seed 5") as e:
        make_lists(d, tmp_path / "l3", distractors=(0,), kinds=("utt",), corpus_seed=5)
    assert "\n" not in str(e.value)


def test_bad_input_one_line_and_nothing_written(data, tmp_path, capsys):
    out = tmp_path / "lists"
    assert cli(["--data_dir", str(data), "--out_dir", str(out), "--kinds", "utt,speaker"]) == 1
    assert cli(["--data_dir", str(data), "--out_dir", str(out), "--distractors", "50000"]) == 1
    assert cli(["--data_dir", str(tmp_path / "none"), "--out_dir", str(out)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(line.startswith("make_biasing_lists: error") for line in err)
    assert "speaker" in err[0] and "50000" in err[1] and "none" in err[2]
    assert not out.exists() and not list(tmp_path.glob(".lists*"))


def test_no_distractor_shares_a_word_with_ordinary_reference_words(tmp_path):
    wav = str(tmp_path / "x.wav")
    # "good" and "le" are names in the English pools (surnames), and ordinary words here
    utts = [Utterance("a-1", "a", "[EN] good morning [NE] maria [/NE] le [ENDP]", "en", CONV, wav, duration=1.0)]
    assert {"good", "le"} <= {n for names in name_pools("en").values() for n in names}
    out = tmp_path / "lists"
    m = make_lists(_dir(tmp_path, utts), out, distractors=(1000,), kinds=("lang",))
    phrases = _lists(out, "lang_n1000")["a-1"]
    assert not {w for p in phrases for w in p.split()} & {"good", "le", "morning"}
    assert m["pool_names_dropped_as_common_words"]["en"] >= 2


def test_a_conversation_in_two_languages_is_refused(tmp_path):
    rec = str(tmp_path / "rec.wav")
    utts = [
        Utterance("r1-1", "r1", "[EN] hi [ENDP]", "en", CONV, rec, start=0.0, end=1.0, recording_id="r1"),
        Utterance("r1-2", "r1", "[DE] hallo [ENDP]", "de", CONV, rec, start=1.0, end=2.0, recording_id="r1"),
    ]
    d = _dir(tmp_path, utts)
    with pytest.raises(DataError, match="conversation r1 has utterances in en and de") as e:
        make_lists(d, tmp_path / "lists", distractors=(0,), kinds=("conv",))
    assert "\n" not in str(e.value) and not (tmp_path / "lists").exists()
    make_lists(d, tmp_path / "lists", distractors=(0,), kinds=("utt", "lang"))  # the other kinds are fine
