"""``train_read``: a larger ASR+LID-only (read speech) subset of mini_tokenverse for the paper's Table III
comparison, without changing the default corpus that committed results were made with."""

import hashlib
import json
import shutil

import pytest

import espnet2_ext  # noqa: F401
from espnet2_ext.bin.prepare_mini_tokenverse import get_parser
from espnet2_ext.corpora.mini_tokenverse import mini_tokenverse as M
from espnet2_ext.corpora.mini_tokenverse import mini_tokenverse_plan as P
from espnet2_ext.data.kaldi_dir import read_data_dir


def _digest(splits) -> str:
    return hashlib.sha1(
        json.dumps(
            {k: [(p.utt_id, p.reference(), p.recipe()) for p in v] for k, v in splits.items()}, sort_keys=True
        ).encode()
    ).hexdigest()


# Recorded from the code before the option existed (commit 9bbbce9): the default corpus is what the committed
# RESULTS were made with, so its plan must never move.
DEFAULT_PLAN_SHA1 = "34c295bf3eaa1c1008ca7a0970a4f8acbae96b64"
RECORDED_TRAIN = {  # index in plan_corpus(0)["train"] -> (utt id, reference, noise seed)
    0: (
        "en-c03-train-c0000",
        "[EN] [NE] thomas [/NE] works for [NE] apple [/NE] now [ENDP] [SCD] [NE] sarah [/NE] "
        "is in [NE] sydney [/NE] this week [ENDP] [SCD] i think [NE] tesla [/NE] is a good "
        "company [ENDP]",
        2293409522,
    ),
    70: ("en-r01-train-r0000", "[EN] no i will stay at home", 4251314914),
    109: ("en-r01-train-r0039", "[EN] good morning james", 1553223176),
    110: (
        "de-c02-train-c0000",
        "[DE] vielen dank für alles [ENDP] [SCD] ich habe [NE] sabine [/NE] in [NE] "
        "münchen [/NE] getroffen [ENDP] [SCD] das klingt gut [ENDP]",
        3965762003,
    ),
    439: ("fr-r03-train-r0039", "[FR] sophie travaille chez orange maintenant", 3376102823),
}


def test_default_plan_is_unchanged():
    default = P.plan_corpus(0, "default")
    assert _digest(default) == DEFAULT_PLAN_SHA1
    assert _digest(P.plan_corpus(0, "default", train_read=40)) == DEFAULT_PLAN_SHA1  # explicit default value
    assert {k: len(v) for k, v in default.items()} == {"train": 440, "dev": 32, "test": 60, "test_partial": 32}
    for i, (utt_id, ref, noise_seed) in RECORDED_TRAIN.items():
        p = default["train"][i]
        assert (p.utt_id, p.reference(), p.noise_seed) == (utt_id, ref, noise_seed)


@pytest.mark.parametrize("size,n", [("default", 400), ("debug", 5), ("small", 3)])
def test_more_reads_only_append_read_utterances(size, n):
    base, more = P.plan_corpus(0, size), P.plan_corpus(0, size, train_read=n)
    plans = lambda ps: [(p.utt_id, p.reference(), p.recipe()) for p in ps]  # noqa: E731
    for split in ("dev", "test", "test_partial"):
        assert plans(base[split]) == plans(more[split])
    for lang in ("en", "de", "es", "fr"):
        conv = lambda s: plans(p for p in s["train"] if p.lang == lang and p.subset == "conv")  # noqa: E731
        read = lambda s: plans(p for p in s["train"] if p.lang == lang and p.subset == "read")  # noqa: E731
        assert conv(base) == conv(more)
        n_default = P.SIZES[size]["train_read"]
        assert len(read(more)) == n
        k = min(n, n_default)  # the first reads are the same utterances (same stream), more are new ones
        assert read(more)[:k] == read(base)[:k]
    ids = [p.utt_id for p in more["train"]]
    assert len(ids) == len(set(ids))


def test_bad_values_are_refused(tmp_path):
    with pytest.raises(ValueError, match="train_read must be >= 0"):
        P.plan_corpus(0, "debug", train_read=-1)
    with pytest.raises(ValueError, match="no_partial"):
        M.prepare_mini_tokenverse(tmp_path / "data", size="debug", partial=False, train_read=4)
    assert get_parser().parse_args(["--train_read", "7"]).train_read == 7
    assert get_parser().parse_args([]).train_read is None


@pytest.mark.skipif(not all(shutil.which(t) for t in ("espeak-ng", "sox")), reason="needs espeak-ng and sox")
def test_prepare_writes_a_separate_train_read_dir(tmp_path):
    log = []
    dirs = M.prepare_mini_tokenverse(tmp_path / "data", seed=0, size="debug", nj=2, train_read=4, log=log.append)
    assert sorted(dirs) == ["dev", "test", "test_partial", "train", "train_full_only", "train_read4"]
    data = tmp_path / "data"
    train, big, conv = (read_data_dir(data / n) for n in ("train", "train_read4", "train_full_only"))
    plan = P.plan_corpus(0, "debug")
    want = sorted((p.utt_id, p.reference()) for p in plan["train"])  # data/train is the default one
    assert [(u.utt_id, u.text) for u in train] == want
    by_id = {u.utt_id: u for u in big}
    assert all(by_id[u.utt_id] == u for u in train)  # the shared utterances are identical (same wav path)
    extra = [u for u in big if u.utt_id not in {t.utt_id for t in train}]
    assert len(extra) == 4 * (4 - 2) and all(u.tasks == ("asr", "lid") for u in extra)
    assert [u for u in big if u.tasks != ("asr", "lid")] == conv
    wav_dir = tmp_path / "downloads" / "mini_tokenverse" / "wav" / "debug-seed0"
    assert all((wav_dir / f"{u.utt_id}.wav").is_file() for u in big)
    n_unique = len({u.utt_id for name in dirs for u in dirs[name]})
    assert len(list(wav_dir.glob("*.wav"))) == n_unique  # each wav synthesised once
    assert "| train_read4 | read |" in (data / "corpus_stats.md").read_text()


def test_dev_read_adds_a_read_dev_set_and_changes_nothing_else(tmp_path):
    base = P.plan_corpus(0, "default")
    more = P.plan_corpus(0, "default", dev_read=30)
    assert _digest({k: v for k, v in more.items() if k != "dev_partial"}) == DEFAULT_PLAN_SHA1
    dev_read = more["dev_partial"]
    assert len(dev_read) == 4 * 30 and all(p.subset == "read" and p.tasks == ("asr", "lid") for p in dev_read)
    ids = {p.utt_id for ps in more.values() for p in ps}
    assert len(ids) == sum(len(ps) for ps in more.values())  # no id shared with another split
    train_voices = {t.voice for p in base["train"] for t in p.turns}
    assert any(p.turns[0].voice not in train_voices for p in dev_read)  # drawn like test_partial: an unseen voice
    held_out = {
        (lang, n) for lang in ("en", "de", "es", "fr") for ns in P.split_entities(lang, 0)[1].values() for n in ns
    }
    spoken = [(p.lang, " ".join(p.turns[0].tokens)) for p in dev_read]
    assert any(f"[NE] {n} [/NE]" in text for lang, text in spoken for (lg, n) in held_out if lg == lang)
    with pytest.raises(ValueError, match="dev_read must be >= 0"):
        P.plan_corpus(0, "debug", dev_read=-2)
    with pytest.raises(ValueError, match="no_partial"):
        M.prepare_mini_tokenverse(tmp_path / "data", size="debug", partial=False, dev_read=3)
    assert get_parser().parse_args(["--dev_read", "25"]).dev_read == 25
