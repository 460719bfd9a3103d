"""The embedded mini_tokenverse corpus rendered and written: layout, references, audio, determinism, idempotence
(the plans alone: test_mini_tokenverse_plan.py)."""

import hashlib
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import espnet2_ext  # noqa: F401
from espnet2_ext.corpora.mini_tokenverse import mini_tokenverse as M
from espnet2_ext.corpora.mini_tokenverse import mini_tokenverse_plan as P
from espnet2_ext.corpora.mini_tokenverse import mini_tokenverse_words as W
from espnet2_ext.data.kaldi_dir import read_data_dir
from espnet2_ext.data.validate_dir import validate_data_dir
from espnet2_ext.task_spec import TaskSpec

pytestmark = pytest.mark.skipif(
    not all(__import__("shutil").which(t) for t in ("espeak-ng", "sox")), reason="needs espeak-ng and sox"
)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("mtv")
    log = []
    dirs = M.prepare_mini_tokenverse(root / "data", seed=0, size="debug", nj=2, log=log.append)
    return root, dirs, log


def _md5s(wav_dir: Path):
    return {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in sorted(wav_dir.glob("*.wav"))}


def test_layout_and_validation(corpus):
    root, dirs, log = corpus
    assert sorted(dirs) == ["dev", "test", "test_partial", "train", "train_full_only"]
    wav_dir = root / "downloads" / "mini_tokenverse" / "wav" / "debug-seed0"
    assert len(list(wav_dir.glob("*.wav"))) == sum(len(dirs[k]) for k in ("train", "dev", "test", "test_partial"))
    for name in dirs:
        s = validate_data_dir(root / "data" / name, TaskSpec.default(), check_audio=True)
        assert s.n_utts == len(dirs[name]) and s.languages == {lang: len(dirs[name]) // 4 for lang in W.LANGUAGES}
    info = sf.info(str(next(wav_dir.glob("*.wav"))))
    assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
    stats = (root / "data" / "corpus_stats.md").read_text()
    assert "| train | conversations |" in stats and "| test_partial | read |" in stats
    assert any("100%" in line for line in log)


def test_references_match_the_plan(corpus):
    root, dirs, _ = corpus
    plans = {p.utt_id: p for ps in P.plan_corpus(0, "debug").values() for p in ps}
    for u in read_data_dir(root / "data" / "train") + read_data_dir(root / "data" / "test_partial"):
        p = plans[u.utt_id]
        words = u.text.split()
        assert words[0] == f"[{u.lang.upper()}]" and u.speaker == p.turns[0].voice.speaker_id
        if p.subset == "conv":
            assert u.tasks == ("asr", "scd", "endp", "ner", "lid")
            assert words.count("[ENDP]") == len(p.turns) and words[-1] == "[ENDP]"
            changes = sum(a.voice != b.voice for a, b in zip(p.turns, p.turns[1:]))
            assert words.count("[SCD]") == changes >= 1
            assert all(a == "[ENDP]" for a, w in zip(words, words[1:]) if w == "[SCD]")  # [ENDP] [SCD] order
        else:
            assert u.tasks == ("asr", "lid") and not any(w.startswith("[") for w in words[1:])
        assert all(w.startswith("[") or (w == w.lower() and w.replace("ß", "").isalpha()) for w in words[1:])
    full = read_data_dir(root / "data" / "train_full_only")
    assert {u.utt_id for u in full} == {u.utt_id for u in dirs["train"] if u.tasks[1:2] == ("scd",)}


def test_conversation_audio_has_pauses_between_turns(corpus):
    root, dirs, _ = corpus
    plans = {p.utt_id: p for ps in P.plan_corpus(0, "debug").values() for p in ps}
    for u in dirs["dev"][:4]:
        x, sr = sf.read(u.wav, dtype="int16")
        frame = int(0.05 * sr)
        loud = np.array([np.abs(x[i : i + frame].astype(int)).max() > 300 for i in range(0, len(x) - frame, frame)])
        idx = np.flatnonzero(loud)
        inner = loud[idx[0] : idx[-1] + 1]
        runs = "".join("1" if v else "0" for v in inner).split("1")
        long_gaps = sum(len(r) * 0.05 >= 0.15 for r in runs)
        assert long_gaps >= len(plans[u.utt_id].turns) - 1


def test_audio_is_deterministic(tmp_path):
    plan = P.plan_corpus(0, "debug")["test"][0]
    M.synthesize(plan.recipe(), tmp_path / "one.wav")
    M.synthesize(plan.recipe(), tmp_path / "two.wav")
    assert (tmp_path / "one.wav").read_bytes() == (tmp_path / "two.wav").read_bytes()


def test_rerun_is_idempotent_and_repairs(corpus):
    root, dirs, _ = corpus
    wav_dir = root / "downloads" / "mini_tokenverse" / "wav" / "debug-seed0"
    before = _md5s(wav_dir)
    mtimes = {p.name: p.stat().st_mtime_ns for p in wav_dir.glob("*.wav")}
    text_before = (root / "data" / "train" / "text").read_text()
    log = []
    M.prepare_mini_tokenverse(root / "data", seed=0, size="debug", log=log.append)
    assert "synthesising 0" in log[0]
    assert {p.name: p.stat().st_mtime_ns for p in wav_dir.glob("*.wav")} == mtimes
    victim = wav_dir / f"{dirs['train'][0].utt_id}.wav"
    victim.unlink()
    (wav_dir / f"{dirs['dev'][0].utt_id}.wav").write_bytes(b"damaged")
    (wav_dir / f".{victim.stem}.0badc0de.tmp.wav").write_bytes(b"left by a SIGKILLed run")
    log = []
    M.prepare_mini_tokenverse(root / "data", seed=0, size="debug", log=log.append)
    assert "synthesising 2" in log[0]
    assert _md5s(wav_dir) == before
    assert not list(wav_dir.glob(".*.tmp.wav"))
    assert (root / "data" / "train" / "text").read_text() == text_before
