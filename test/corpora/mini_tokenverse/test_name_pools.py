"""``read_names``: open entity-name pools (Faker's lists) for the read subset; every mini entity stays out."""

import os
import shutil
import sys

import pytest

import espnet2_ext  # noqa: F401
from espnet2_ext.bin.prepare_mini_tokenverse import main as prepare_main
from espnet2_ext.corpora.mini_tokenverse import mini_tokenverse as M
from espnet2_ext.corpora.mini_tokenverse import mini_tokenverse_plan as P
from espnet2_ext.corpora.mini_tokenverse import mini_tokenverse_words as W
from espnet2_ext.corpora.mini_tokenverse import name_pools as N
from espnet2_ext.data.kaldi_dir import read_data_dir
from espnet2_ext.task_spec import NE_CLOSE, NE_OPEN

LANGS = ("en", "de", "es", "fr")


def _slots(tokens):
    """(tokens with each entity span replaced by its type marker, the entity names in order)."""
    out, names, cur = [], [], None
    for t in tokens:
        if t == NE_OPEN:
            cur = []
        elif t == NE_CLOSE:
            names.append(" ".join(cur))
            out.append("<ENT>")
            cur = None
        elif cur is not None:
            cur.append(t)
        else:
            out.append(t)
    return out, names


@pytest.mark.parametrize("lang", LANGS)
def test_pools_are_large_spellable_and_free_of_every_mini_entity(lang):
    pools = N.name_pools(lang)
    assert set(pools) == set(W.ENTITY_TYPES)
    letters, banned = N.alphabet(lang), N.entity_words()
    assert "katrin" in banned and "york" in banned  # held-out test names of the default corpus
    for typ, names in pools.items():
        assert len(names) >= 40, (typ, len(names))
        assert list(names) == sorted(set(names))
        for name in names:
            words = name.split()
            assert 1 <= len(words) <= N.MAX_WORDS and name == name.lower()
            assert not set(words) & banned, name
            assert set(name.replace(" ", "")) <= letters, name


def test_normalise_refuses_what_the_tokenizer_or_the_held_out_split_cannot_take():
    assert N.normalise("Marc-Olivier", "fr") == "marc olivier"
    assert N.normalise("Katrin", "de") == ""  # a mini entity: would make a held-out name seen
    assert N.normalise("Aberdeen City", "en") == "aberdeen city"
    assert N.normalise("Bad Neustadt an der Saale", "de") == ""  # > 2 words
    assert N.normalise("Øystein", "en") == ""  # a letter the English templates never have
    with pytest.raises(ValueError, match="no name lists for language 'it'"):
        N.name_pools("it")


def test_missing_faker_is_a_clear_error(monkeypatch):
    N.name_pools.cache_clear()
    monkeypatch.setitem(sys.modules, "faker.providers.person.de_DE", None)  # import raises ModuleNotFoundError
    try:
        with pytest.raises(RuntimeError, match="needs the 'faker' package.*tools/install.sh"):
            N.name_pools("de")
    finally:
        N.name_pools.cache_clear()


@pytest.mark.parametrize("share", [1.0, 0.5])
def test_read_names_change_only_the_read_entity_slots(share):
    base = P.plan_corpus(0, "default", train_read=60)
    named = P.plan_corpus(0, "default", train_read=60, read_names=share)
    key = lambda p: (p.utt_id, p.reference(), p.recipe())  # noqa: E731
    for split in ("dev", "test", "test_partial"):
        assert [key(p) for p in named[split]] == [key(p) for p in base[split]]
    conv = lambda s: [key(p) for p in s["train"] if p.subset == "conv"]  # noqa: E731
    assert conv(named) == conv(base)
    reads = [(a, b) for a, b in zip(base["train"], named["train"]) if a.subset == "read"]
    assert len(reads) == 4 * 60 == sum(p.subset == "read" for p in named["train"])
    from_pool = slots = 0
    for a, b in reads:
        assert b.utt_id != a.utt_id and b.utt_id.startswith(f"{a.speaker}-train-n{round(100 * share):03d}-r")
        assert b.turns[0].voice == a.turns[0].voice
        frame_a, names_a = _slots(a.turns[0].tokens)
        frame_b, names_b = _slots(b.turns[0].tokens)
        assert frame_a == frame_b  # same template, same slot fillers
        pools = N.name_pools(a.lang)
        for name_a, name_b in zip(names_a, names_b):
            slots += 1
            if name_b != name_a:
                assert any(name_b in pools[t] for t in W.ENTITY_TYPES)
                from_pool += 1
    assert slots > 100
    assert (from_pool == slots) if share == 1.0 else (0.3 < from_pool / slots < 0.7)
    # held-out entities stay unseen: no train word belongs to a held-out name that training did not already have
    for lang in LANGS:
        seen, unseen = P.split_entities(lang, 0)
        base_words = {w for p in base["train"] if p.lang == lang for w in p.reference().split()}
        named_words = {w for p in named["train"] if p.lang == lang for w in p.reference().split()}
        held_out = {w for names in unseen.values() for n in names for w in n.split()}
        assert (named_words - base_words) & held_out == set()


def test_bad_shares_are_refused(tmp_path, capsys):
    with pytest.raises(ValueError, match=r"share of entity slots in \(0, 1\]"):
        P.plan_corpus(0, "debug", train_read=3, read_names=1.5)
    with pytest.raises(ValueError, match="steps of 0.01"):
        P.plan_corpus(0, "debug", train_read=3, read_names=0.505)
    with pytest.raises(ValueError, match="give train_read too"):
        M.prepare_mini_tokenverse(tmp_path / "data", size="debug", read_names=0.5)
    assert (
        prepare_main(["--out_dir", str(tmp_path / "d"), "--size", "debug", "--train_read", "3", "--read_names", "-0.2"])
        != 0
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "read_names" in err[0]
    assert not (tmp_path / "d").exists()


@pytest.mark.skipif(not all(shutil.which(t) for t in ("espeak-ng", "sox")), reason="needs espeak-ng and sox")
def test_prepare_writes_a_named_dir_beside_the_plain_one(tmp_path):
    data = tmp_path / "data"
    M.prepare_mini_tokenverse(data, seed=0, size="debug", nj=2, train_read=4, log=lambda _: None)
    plain_before = read_data_dir(data / "train_read4")
    mtimes = {u.wav: os.stat(u.wav).st_mtime_ns for u in plain_before}
    dirs = M.prepare_mini_tokenverse(data, seed=0, size="debug", nj=2, train_read=4, read_names=1.0, log=lambda _: None)
    assert "train_read4_names100" in dirs and "train_read4" not in dirs
    named = read_data_dir(data / "train_read4_names100")
    assert read_data_dir(data / "train_read4") == plain_before  # untouched, and its wavs were not re-synthesised
    assert {w: os.stat(w).st_mtime_ns for w in mtimes} == mtimes
    assert [u for u in named if u.tasks != ("asr", "lid")] == [u for u in plain_before if u.tasks != ("asr", "lid")]
    reads = [u for u in named if u.tasks == ("asr", "lid")]
    assert len(reads) == 4 * 4 and all("-n100-r" in u.utt_id for u in reads)
    assert all(os.path.isfile(u.wav) for u in reads)
