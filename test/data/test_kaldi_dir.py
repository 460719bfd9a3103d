"""Kaldi data-dir records: writing (sorted, atomic), reading, validation messages, fixing, subsets."""

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import espnet2_ext  # noqa: F401  (offline guard first)
from espnet2_ext.bin import validate_data_dir as validate_cli
from espnet2_ext.common import DataError
from espnet2_ext.data.kaldi_dir import (
    Utterance,
    filter_by_duration,
    fix_data_dir,
    normalize_words,
    read_data_dir,
    split_by_speaker,
    subset,
    write_data_dir,
)
from espnet2_ext.data.validate_dir import validate_data_dir
from espnet2_ext.task_spec import TaskSpec

FULL = ("asr", "scd", "endp", "ner", "lid")


def make_wav(path: Path, seconds: float = 0.5, sr: int = 16000, channels: int = 1) -> str:
    n = int(seconds * sr)
    x = (0.1 * np.sin(np.arange(n) / 10.0)).astype(np.float32)
    sf.write(str(path), np.stack([x] * channels, 1) if channels > 1 else x, sr, subtype="PCM_16")
    return str(path)


@pytest.fixture
def utts(tmp_path):
    a = make_wav(tmp_path / "a.wav", 0.5)
    b = make_wav(tmp_path / "b.wav", 1.0)
    return [
        Utterance("spkb-2", "spkb", "[DE] hallo [NE] anna [/NE] [ENDP] [SCD] ja [ENDP]", "de", FULL, b, duration=1.0),
        Utterance("spkB-1", "spkB", "[EN] hello world", "en", ("asr", "lid"), a, duration=0.5),
        Utterance("spkb-1", "spkb", "[DE] guten morgen", "de", ("asr", "lid"), a, duration=0.5),
        Utterance("spk_x-1", "spk_x", "[FR] bonjour [ENDP]", "fr", ("asr", "endp", "lid"), b, duration=1.0),
    ]


def keys(path: Path):
    return [line.split()[0] for line in path.read_text().splitlines()]


def test_write_sorts_in_c_order_and_round_trips(tmp_path, utts):
    d = write_data_dir(utts, tmp_path / "data")
    # C locale: uppercase < '_' < lowercase
    assert keys(d / "text") == ["spkB-1", "spk_x-1", "spkb-1", "spkb-2"]
    for name in ("wav.scp", "utt2spk", "utt2tasks", "utt2lang", "utt2dur"):
        assert keys(d / name) == keys(d / "text")
    assert (d / "spk2utt").read_text().splitlines() == ["spkB spkB-1", "spk_x spk_x-1", "spkb spkb-1 spkb-2"]
    assert (d / "utt2tasks").read_text().splitlines()[3] == "spkb-2 asr scd endp ner lid"
    assert not (d / "segments").exists()
    back = {u.utt_id: u for u in read_data_dir(d)}
    assert back == {u.utt_id: u for u in utts}


def test_segments_use_recording_level_wav_scp(tmp_path):
    rec = make_wav(tmp_path / "rec.wav", 3.0)
    utts = [
        Utterance(
            f"A-rec-{i}",
            "A",
            f"[EN] word{i} [ENDP]",
            "en",
            ("asr", "endp", "lid"),
            rec,
            start=float(i),
            end=i + 0.75,
            recording_id="rec",
        )
        for i in range(3)
    ]
    d = write_data_dir(utts, tmp_path / "seg")
    assert (d / "wav.scp").read_text() == f"rec {rec}\n"
    assert (d / "segments").read_text().splitlines()[1] == "A-rec-1 rec 1.000 1.750"
    assert (d / "utt2dur").read_text().splitlines()[2] == "A-rec-2 0.750"
    assert read_data_dir(d)[2].start == 2.0 and read_data_dir(d)[2].recording_id == "rec"
    assert validate_data_dir(d, check_audio=True).hours == pytest.approx(3 * 0.75 / 3600)
    _edit(d, "segments", lambda ls: ls[:2] + ["A-rec-2 rec 2.000 1.500"])
    with pytest.raises(DataError, match=r"segments:3 \(A-rec-2\): expected .* 0 <= start < end"):
        validate_data_dir(d)
    _edit(d, "segments", lambda ls: ls[:2] + ["A-rec-2 rec 2.000 4.500"])
    _edit(d, "utt2dur", lambda ls: ls[:2] + ["A-rec-2 2.500"])
    validate_data_dir(d)  # times are only compared with the audio under check_audio
    with pytest.raises(DataError, match=r"segments:3 \(A-rec-2\): ends at 4.50 s but recording rec lasts 3.00 s"):
        validate_data_dir(d, check_audio=True)


def test_rewrite_replaces_whole_dir_and_failed_write_leaves_old_one(tmp_path, utts):
    d = write_data_dir(utts, tmp_path / "data")
    (d / "extra_file").write_text("stale")
    write_data_dir(utts[:2], d)
    assert not (d / "extra_file").exists() and len(read_data_dir(d)) == 2
    before = {p.name: p.read_bytes() for p in d.iterdir()}
    with pytest.raises(DataError, match="duplicate"):
        write_data_dir(utts[:2] + utts[:1], d)
    assert {p.name: p.read_bytes() for p in d.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.wav", "b.wav", "data"]  # no temp dirs left


def test_write_rejects_ids_not_prefixed_by_speaker(tmp_path, utts):
    bad = utts + [Utterance("aaa-1", "zzz", "[EN] hi", "en", ("asr", "lid"), utts[0].wav)]
    with pytest.raises(DataError, match="start every utterance id with its speaker id"):
        write_data_dir(bad, tmp_path / "bad")
    assert not (tmp_path / "bad").exists()


def test_validate_summary(tmp_path, utts):
    d = write_data_dir(utts, tmp_path / "data")
    s = validate_data_dir(d, TaskSpec.default(), check_audio=True)
    assert (s.n_utts, s.n_speakers, s.n_audio_checked) == (4, 3, 4)
    assert s.task_counts == {"asr": 4, "scd": 1, "endp": 2, "ner": 1, "lid": 4}
    assert s.languages == {"de": 2, "en": 1, "fr": 1}
    assert s.hours == pytest.approx(3.0 / 3600)


def _edit(d: Path, name: str, fn):
    lines = (d / name).read_text().splitlines()
    (d / name).write_text("".join(line + "\n" for line in fn(lines)))


CORRUPTIONS = {
    "missing_file": (lambda d: (d / "utt2tasks").unlink(), ["utt2tasks", "missing"]),
    "duplicate": (lambda d: _edit(d, "text", lambda ls: ls + [ls[-1]]), ["text:5", "spkb-2", "duplicate"]),
    "unsorted": (lambda d: _edit(d, "utt2spk", lambda ls: [ls[1], ls[0]] + ls[2:]), ["utt2spk:2", "spkB-1", "sort"]),
    "missing_in_other": (lambda d: _edit(d, "utt2lang", lambda ls: ls[1:]), ["spkB-1", "utt2lang", "fix_data_dir"]),
    "empty_text": (lambda d: _edit(d, "text", lambda ls: ["spkB-1"] + ls[1:]), ["text:1", "spkB-1", "empty"]),
    "bad_task": (lambda d: _edit(d, "utt2tasks", lambda ls: ["spkB-1 asr lidd"] + ls[1:]), ["utt2tasks:1", "lidd"]),
    "unavailable_task_token": (
        lambda d: _edit(d, "text", lambda ls: ["spkB-1 [EN] hello [SCD] world"] + ls[1:]),
        ["text:1", "spkB-1", "[SCD]", "scd"],
    ),
    "unbalanced_ne": (
        lambda d: _edit(d, "text", lambda ls: ls[:3] + ["spkb-2 [DE] hallo [NE] anna [ENDP]"]),
        ["text:4", "spkb-2", "never closed"],
    ),
    "nested_ne": (
        lambda d: _edit(d, "text", lambda ls: ls[:3] + ["spkb-2 [DE] [NE] a [NE] b [/NE] [/NE]"]),
        ["spkb-2", "nested"],
    ),
    "unknown_language": (
        lambda d: _edit(d, "text", lambda ls: ["spkB-1 [IT] ciao"] + ls[1:]),
        ["text:1", "[IT]", "--languages"],
    ),
    "lid_without_token": (
        lambda d: _edit(d, "text", lambda ls: ["spkB-1 hello world"] + ls[1:]),
        ["spkB-1", "language token"],
    ),
    "spk2utt_stale": (lambda d: _edit(d, "spk2utt", lambda ls: ls[:2] + ["spkb spkb-1"]), ["spk2utt", "spkb"]),
}


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
def test_validate_reports_file_line_and_fix_without_modifying(tmp_path, utts, name):
    d = write_data_dir(utts, tmp_path / "data")
    validate_data_dir(d)  # clean before the corruption
    corrupt, expected = CORRUPTIONS[name]
    corrupt(d)
    snapshot = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in d.iterdir()}
    with pytest.raises(DataError) as err:
        validate_data_dir(d, TaskSpec.default())
    msg = str(err.value)
    assert "\n" not in msg
    for part in expected:
        assert part in msg, (part, msg)
    assert {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in d.iterdir()} == snapshot


@pytest.mark.parametrize(
    "problem,expected",
    [
        ("missing", "not found"),
        ("empty", "empty"),
        ("corrupt", "corrupt"),
    ],
)
def test_validate_check_audio(tmp_path, utts, problem, expected):
    d = write_data_dir(utts, tmp_path / "data")
    target = Path(utts[1].wav)  # a.wav, used by spkB-1 (first line of wav.scp)
    if problem == "missing":
        target.unlink()
    elif problem == "empty":
        target.write_bytes(b"")
    else:
        target.write_bytes(b"RIFF\x00\x00junk" + bytes(range(200)))
    validate_data_dir(d)  # without audio checks it passes
    with pytest.raises(DataError, match=expected) as err:
        validate_data_dir(d, check_audio=True)
    assert "wav.scp:1 (spkB-1)" in str(err.value)


@pytest.mark.parametrize("problem,expected", [("rate", "8000 Hz mono wav"), ("stereo", "16000 Hz stereo wav")])
def test_validate_check_audio_lists_files_to_convert(tmp_path, utts, problem, expected):
    # Any rate / channel count decodes (issue #18): validation passes and names what stage 2 will convert.
    d = write_data_dir(utts, tmp_path / "data")
    target = Path(utts[1].wav)
    if problem == "rate":
        make_wav(target, 0.5, sr=8000)
    else:
        make_wav(target, 0.5, channels=2)
    summary = validate_data_dir(d, check_audio=True)
    users = [u.utt_id for u in utts if u.wav == str(target)]  # every recording reading the changed file
    assert summary.to_convert == {u: expected for u in users}
    assert f"{len(users)} files not 16 kHz mono" in summary.format() and expected in summary.format()
    clean = validate_data_dir(write_data_dir(utts[:1], tmp_path / "clean"), check_audio=True)
    assert not clean.to_convert


def test_validate_cli(tmp_path, utts, capsys):
    d = write_data_dir(utts, tmp_path / "data")
    assert validate_cli.main([str(d), "--check_audio"]) == 0
    out = capsys.readouterr().out
    assert "4 utterances" in out and "3 speakers" in out and "ner=1" in out
    assert validate_cli.main([str(d), "--languages", "en,de"]) == 1  # [FR] not in the spec
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "[FR]" in err and "Traceback" not in err


def test_fix_data_dir(tmp_path, utts, capsys):
    src = write_data_dir(utts, tmp_path / "src")
    _edit(src, "text", lambda ls: list(reversed(ls)) + [ls[0]])  # unsorted + duplicate
    _edit(src, "utt2spk", lambda ls: ls[1:])  # spkB-1 loses its speaker
    (src / "spk2utt").unlink()
    before = {p.name: p.read_bytes() for p in src.iterdir()}
    with pytest.raises(DataError):
        validate_data_dir(src)
    fixed = fix_data_dir(src, tmp_path / "dst")
    assert "kept 3" in capsys.readouterr().out
    assert [u.utt_id for u in fixed] == ["spk_x-1", "spkb-1", "spkb-2"]
    assert validate_data_dir(tmp_path / "dst").n_utts == 3
    assert {p.name: p.read_bytes() for p in src.iterdir()} == before


def test_subset_filter_split(utts):
    assert [u.utt_id for u in subset(utts, speakers=["spkb"])] == ["spkb-1", "spkb-2"]
    assert [u.utt_id for u in subset(utts, n=2)] == ["spkB-1", "spk_x-1"]
    assert subset(utts, n=2, seed=3) == subset(utts, n=2, seed=3)
    assert {u.utt_id for u in filter_by_duration(utts, max_s=0.7)} == {"spkB-1", "spkb-1"}
    no_dur = [Utterance(u.utt_id, u.speaker, u.text, u.lang, u.tasks, u.wav) for u in utts]
    assert {u.utt_id for u in filter_by_duration(no_dur, min_s=0.7)} == {"spk_x-1", "spkb-2"}  # from headers
    parts = split_by_speaker(utts, 2)
    assert sorted(len(p) for p in parts) == [2, 2]
    assert all(len({u.speaker for u in p} & {u.speaker for u in q}) == 0 for p in parts for q in parts if p is not q)


def test_normalize_words():
    got = normalize_words("Héllo, WÖRLD!  Ça-va? l’homme [ne] (yes) 42")
    assert got == "héllo wörld ça va l'homme [NE] yes 42"
