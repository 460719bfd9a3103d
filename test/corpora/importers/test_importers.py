"""Real-corpus importers on small fixtures: CommonVoice, STM (+RTTM, entity list), JSON-lines."""

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import espnet2_ext  # noqa: F401
from espnet2_ext.bin import import_commonvoice as cv_cli
from espnet2_ext.bin import import_jsonl as jsonl_cli
from espnet2_ext.bin import import_stm as stm_cli
from espnet2_ext.common import DataError
from espnet2_ext.corpora.importers.commonvoice import import_commonvoice
from espnet2_ext.corpora.importers.jsonl_conversations import import_jsonl
from espnet2_ext.corpora.importers.stm_conversations import import_stm
from espnet2_ext.data.audio_check import dump_audio
from espnet2_ext.data.kaldi_dir import read_data_dir, write_data_dir
from espnet2_ext.data.validate_dir import validate_data_dir


def wav(path: Path, seconds: float, sr: int = 16000) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), (0.1 * np.sin(np.arange(int(seconds * sr)) / 7.0)).astype(np.float32), sr, subtype="PCM_16")
    return path


def texts(d: Path):
    return dict(line.split(" ", 1) for line in (d / "text").read_text().splitlines())


# ------------------------------------------------------------------------------------------------ CommonVoice
CV_HEADER = "\t".join(
    [
        "client_id",
        "path",
        "sentence_id",
        "sentence",
        "sentence_domain",
        "up_votes",
        "down_votes",
        "age",
        "gender",
        "accents",
        "locale",
    ]
)


@pytest.fixture
def cv_release(tmp_path):
    src = tmp_path / "cv" / "fr"
    wav(src / "clips" / "common_voice_fr_1.wav", 0.5)
    wav(src / "clips" / "common_voice_fr_3.wav", 0.5, sr=48000)
    (src / "clips" / "common_voice_fr_2.mp3").write_bytes(b"ID3 not decoded in the test")
    rows = [
        ("aa" * 20, "common_voice_fr_1.wav", "s1", "Bonjour, Marie ! Ça va ?"),
        ("bb" * 20, "common_voice_fr_2.mp3", "s2", "L’homme [rit] arrive « demain »."),
        ("aa" * 20, "common_voice_fr_3.wav", "s3", "Très bien."),
        ("cc" * 20, "common_voice_fr_9.mp3", "s9", "clip is missing"),
    ]
    (src / "train.tsv").write_text(
        CV_HEADER + "\n" + "".join(f"{c}\t{p}\t{i}\t{s}\t\t2\t0\t\t\t\tfr\n" for c, p, i, s in rows), encoding="utf-8"
    )
    # an older release layout: 'accent', no 'locale', no 'sentence_id', path without extension
    (src / "dev.tsv").write_text(
        "client_id\tpath\tsentence\tup_votes\tdown_votes\tage\tgender\taccent\n"
        f"{'dd' * 20}\tcommon_voice_fr_2\tOui.\t2\t0\t\t\t\n",
        encoding="utf-8",
    )
    return src


def test_commonvoice_import(cv_release, tmp_path):
    out = import_commonvoice(cv_release, tmp_path / "data", lang="fr", splits=("train", "dev"))
    train = {u.utt_id: u for u in read_data_dir(out["train"])}
    assert len(train) == 3  # the row whose clip is missing is skipped
    by_clip = {Path(u.utt_id.split("-", 2)[2]).name: u for u in train.values()}
    assert by_clip["common_voice_fr_1"].text == "[FR] bonjour marie ça va"
    assert by_clip["common_voice_fr_2"].text == "[FR] l'homme rit arrive demain"
    assert all(u.tasks == ("asr", "lid") and u.lang == "fr" for u in train.values())
    for clip in ("common_voice_fr_1", "common_voice_fr_2", "common_voice_fr_3"):  # the clips themselves
        assert by_clip[clip].wav == str(cv_release / "clips" / Path(by_clip[clip].wav).name)
    assert by_clip["common_voice_fr_1"].speaker == by_clip["common_voice_fr_3"].speaker
    assert len({u.speaker for u in train.values()}) == 2
    with pytest.raises(DataError, match=r"wav\.scp:\d \(.*fr_2\): .*fr_2\.mp3: cannot decode audio \(.*no audio "):
        validate_data_dir(out["train"], check_audio=True)
    assert list(texts(out["dev"]).values()) == ["[FR] oui"]


def test_commonvoice_language_from_locale_and_errors(cv_release, tmp_path):
    out = import_commonvoice(cv_release, tmp_path / "a", splits=("train",))
    assert all(t.startswith("[FR] ") for t in texts(out["train"]).values())
    with pytest.raises(DataError, match=r"dev\.tsv: no 'locale' column.*--lang"):
        import_commonvoice(cv_release, tmp_path / "b", splits=("dev",))
    with pytest.raises(DataError, match=r"train\.tsv:2: language 'fr' is not one of en, de"):
        import_commonvoice(cv_release, tmp_path / "c", splits=("train",), languages=("en", "de"))
    (cv_release / "test.tsv").write_text("client_id\tfilename\ttext\n", encoding="utf-8")
    with pytest.raises(DataError) as err:
        import_commonvoice(cv_release, tmp_path / "d", lang="fr", splits=("test",))
    assert "test.tsv: missing column(s) path, sentence; found columns: client_id, filename, text" in str(err.value)
    assert not (tmp_path / "d" / "test").exists()


def test_commonvoice_cli(cv_release, tmp_path, capsys):
    assert (
        cv_cli.main(
            [
                "--src",
                str(cv_release),
                "--out_dir",
                str(tmp_path / "o"),
                "--lang",
                "fr",
                "--splits",
                "train",
                "--max_utts",
                "2",
            ]
        )
        == 0
    )
    assert len(texts(tmp_path / "o" / "train")) == 2
    assert cv_cli.main(["--src", str(tmp_path), "--out_dir", str(tmp_path / "o")]) == 1
    assert "clips" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------ STM
STM = """;; comment line
;; LABEL "o" "Overall" "All segments"
conv1 1 A 0.00 1.00 <o,f0,male> hello Maria from New York
conv1 1 B 1.20 2.00 <o,f0,female> hi Maria {breath} how are you
conv1 1 B 2.10 3.00 <o,f0,female> i am in York <unk>
conv1 1 A 3.20 4.00 fine (uh) thanks
conv1 1 A 4.10 4.50 ignore_time_segment_in_scoring
conv1 1 B 4.60 5.50 see you [NE] Tomorrow Corp [/NE]
conv2 1 C 0.50 1.50 good morning
conv2 1 D 7.00 8.00 late reply
"""


@pytest.fixture
def stm_corpus(tmp_path):
    wav(tmp_path / "audio" / "conv1.wav", 6.0)
    wav(tmp_path / "audio" / "conv2.wav", 8.5)
    (tmp_path / "dev.stm").write_text(STM, encoding="utf-8")
    (tmp_path / "names.txt").write_text("# people and places\nmaria\nNew York\nyork\n", encoding="utf-8")
    return tmp_path


def test_stm_chunks_and_tags(stm_corpus, tmp_path):
    utts = import_stm(
        stm_corpus / "dev.stm",
        tmp_path / "data",
        audio_dir=stm_corpus / "audio",
        entity_list=stm_corpus / "names.txt",
        lang="en",
        max_turns=3,
        max_gap=3.0,
    )
    got = {(u.recording_id, u.start, u.end): u.text for u in utts}
    assert got == {
        ("conv1", 0.0, 3.0): "[EN] hello [NE] maria [/NE] from [NE] new york [/NE] [ENDP] [SCD] hi [NE] maria [/NE] "
        "how are you [ENDP] i am in [NE] york [/NE] [ENDP]",
        ("conv1", 3.2, 4.0): "[EN] fine uh thanks [ENDP]",  # the ignored segment ends the chunk
        ("conv1", 4.6, 5.5): "[EN] see you [NE] tomorrow corp [/NE] [ENDP]",  # inline annotation kept
        ("conv2", 0.5, 1.5): "[EN] good morning [ENDP]",  # 5.5 s gap > max_gap
        ("conv2", 7.0, 8.0): "[EN] late reply [ENDP]",
    }
    assert {u.tasks for u in utts} == {("asr", "scd", "endp", "ner", "lid")}
    assert {u.speaker for u in utts} == {"conv1-A", "conv1-B", "conv2-C", "conv2-D"}
    d = tmp_path / "data"
    assert (d / "wav.scp").read_text().splitlines() == [
        f"conv1 {stm_corpus / 'audio' / 'conv1.wav'}",
        f"conv2 {stm_corpus / 'audio' / 'conv2.wav'}",
    ]
    assert validate_data_dir(d, check_audio=True).n_utts == 5


def test_stm_without_entities_or_language_and_with_rttm(stm_corpus, tmp_path):
    plain = stm_corpus / "plain.stm"
    plain.write_text("rec 1 X 0.0 1.0 one two\nrec 1 X 1.2 2.0 three\nrec 1 X 2.2 3.0 four\n")
    wav(stm_corpus / "audio" / "rec.wav", 3.5)
    utts = import_stm(plain, tmp_path / "p", audio_dir=stm_corpus / "audio")
    assert [u.text for u in utts] == ["one two [ENDP] three [ENDP] four [ENDP]"]
    assert utts[0].tasks == ("asr", "scd", "endp") and not (tmp_path / "p" / "utt2lang").exists()
    (stm_corpus / "rec.rttm").write_text(
        "SPEAKER rec 1 0.0 1.1 <NA> <NA> s1 <NA> <NA>\n"
        "SPEAKER rec 1 1.1 1.0 <NA> <NA> s2 <NA> <NA>\n"
        "SPEAKER rec 1 2.1 1.0 <NA> <NA> s1 <NA> <NA>\n"
    )
    utts = import_stm(plain, tmp_path / "r", audio_dir=stm_corpus / "audio", rttm=stm_corpus / "rec.rttm")
    assert [u.text for u in utts] == ["one two [ENDP] [SCD] three [ENDP] [SCD] four [ENDP]"]
    validate_data_dir(tmp_path / "r", check_audio=True)


def test_stm_errors_and_cli(stm_corpus, tmp_path, capsys):
    bad = stm_corpus / "bad.stm"
    bad.write_text(";; ok\nconv1 1 A 0.0 1.0 fine\nconv1 1 A zero 2.0 words\n")
    with pytest.raises(DataError, match=r"bad\.stm:3: start/end 'zero'"):
        import_stm(bad, tmp_path / "x", audio_dir=stm_corpus / "audio")
    bad.write_text("conv1 1 A 0.0 1.0 [NE] open only\n")
    with pytest.raises(DataError, match=r"bad\.stm:1: .*never closed"):
        import_stm(bad, tmp_path / "x", audio_dir=stm_corpus / "audio")
    bad.write_text("nowav 1 A 0.0 1.0 words\n")
    with pytest.raises(DataError, match="no audio for recording 'nowav'"):
        import_stm(bad, tmp_path / "x", audio_dir=stm_corpus / "audio")
    assert (
        stm_cli.main(
            [
                "--src",
                str(stm_corpus / "dev.stm"),
                "--out_dir",
                str(tmp_path / "c"),
                "--audio_dir",
                str(stm_corpus / "audio"),
                "--lang",
                "en",
                "--max_turns",
                "1",
            ]
        )
        == 0
    )
    assert len(texts(tmp_path / "c")) == 7
    assert (
        stm_cli.main(["--src", str(bad), "--out_dir", str(tmp_path / "c2"), "--audio_dir", str(stm_corpus / "audio")])
        == 1
    )
    assert "nowav" in capsys.readouterr().err and not (tmp_path / "c2").exists()


# ------------------------------------------------------------------------------------------------ JSON lines
def conv(**kw):
    base = {
        "id": "c1",
        "audio": "c1.wav",
        "language": "en",
        "turns": [
            {
                "speaker": "A",
                "start": 0.0,
                "end": 1.5,
                "text": "Hello Maria, how are you?",
                "entities": [{"start": 6, "end": 11, "type": "PER"}],
            },
            {
                "speaker": "B",
                "start": 1.8,
                "end": 3.0,
                "text": "Fine, I flew to New York.",
                "entities": [{"start": 16, "end": 24, "type": "CITY"}],
            },
            {"speaker": "B", "start": 3.2, "end": 4.0, "text": "And you?"},
        ],
    }
    base.update(kw)
    return base


def write_jsonl(path: Path, objs):
    path.write_text("".join((o if isinstance(o, str) else json.dumps(o)) + "\n" for o in objs), encoding="utf-8")
    return path


def test_jsonl_import(tmp_path):
    wav(tmp_path / "c1.wav", 4.5)
    wav(tmp_path / "sub" / "c2.wav", 3.0)
    src = write_jsonl(
        tmp_path / "convs.jsonl",
        [
            conv(),
            conv(
                id="c2",
                audio="sub/c2.wav",
                language="de",
                tasks=["asr", "lid"],
                turns=[
                    {
                        "speaker": "X",
                        "start": 0.0,
                        "end": 1.0,
                        "text": "Guten Morgen Anna",
                        "entities": [{"start": 12, "end": 17, "type": "PER"}],
                    },
                    {"speaker": "Y", "start": 1.2, "end": 2.5, "text": "Hallo"},
                ],
            ),
        ],
    )
    utts = {u.recording_id: u for u in import_jsonl(src, tmp_path / "data")}
    assert utts["c1"].text == (
        "[EN] hello [NE] maria [/NE] how are you [ENDP] [SCD] fine i flew to [NE] new york [/NE] [ENDP] and you [ENDP]"
    )
    assert utts["c1"].tasks == ("asr", "scd", "endp", "ner", "lid")
    assert (utts["c1"].start, utts["c1"].end, utts["c1"].speaker) == (0.0, 4.0, "c1-A")
    assert utts["c2"].text == "[DE] guten morgen anna hallo" and utts["c2"].tasks == ("asr", "lid")
    assert validate_data_dir(tmp_path / "data", check_audio=True).n_utts == 2
    no_ner = write_jsonl(
        tmp_path / "b.jsonl", [conv(turns=[{k: v for k, v in t.items() if k != "entities"} for t in conv()["turns"]])]
    )
    (u,) = import_jsonl(no_ner, tmp_path / "b", max_turns=4)
    assert u.tasks == ("asr", "scd", "endp", "lid") and "[NE]" not in u.text
    assert len(import_jsonl(src, tmp_path / "chunked", max_turns=2)) == 3


@pytest.mark.parametrize(
    "bad,expected",
    [
        ('{"id": "c1", "audio": ', ":2: invalid JSON"),
        (
            conv(
                id="c9",
                turns=[
                    {"speaker": "A", "start": 0, "end": 1, "text": "Hello Maria", "entities": [{"start": 6, "end": 9}]}
                ],
            ),
            ":2, turn 0, entity 0: span 6-9 ('Mar') cuts a word",
        ),
        (
            conv(
                id="c9",
                turns=[{"speaker": "A", "start": 0, "end": 1, "text": "Hi Bo", "entities": [{"start": 3, "end": 40}]}],
            ),
            "outside the text",
        ),
        (
            conv(
                id="c9",
                turns=[
                    {
                        "speaker": "A",
                        "start": 0,
                        "end": 1,
                        "text": "new york city",
                        "entities": [{"start": 0, "end": 8}, {"start": 4, "end": 13}],
                    }
                ],
            ),
            "overlap",
        ),
        (conv(id="c9", language="it"), ":2: language 'it'"),
        (conv(id="c9", audio="missing.wav"), ":2: audio file"),
        (conv(), ":2: id 'c1' already used on line 1"),
        (conv(id="c9", tasks=["asr", "pos"]), ":2: unknown task(s) pos"),
        (conv(id="c9", turns=[{"speaker": "A", "start": 2, "end": 1, "text": "x"}]), ":2, turn 0: needs numeric"),
    ],
)
def test_jsonl_errors_name_the_line(tmp_path, bad, expected):
    wav(tmp_path / "c1.wav", 4.5)
    src = write_jsonl(tmp_path / "x.jsonl", [conv(), bad])
    with pytest.raises(DataError) as err:
        import_jsonl(src, tmp_path / "out")
    assert expected in str(err.value) and str(src) in str(err.value)
    assert not (tmp_path / "out").exists()


def test_jsonl_cli(tmp_path, capsys):
    wav(tmp_path / "c1.wav", 4.5)
    src = write_jsonl(tmp_path / "x.jsonl", [conv()])
    assert jsonl_cli.main(["--src", str(src), "--out_dir", str(tmp_path / "o"), "--max_turns", "1"]) == 0
    assert len(texts(tmp_path / "o")) == 3 and (tmp_path / "o" / "segments").exists()
    assert (
        jsonl_cli.main(["--src", str(src), "--out_dir", str(tmp_path / "d"), "--dump_wav_dir", str(tmp_path / "w")])
        == 0
    )
    assert not (tmp_path / "d" / "segments").exists() and len(list((tmp_path / "w").glob("*.wav"))) == 1
    assert jsonl_cli.main(["--src", str(src), "--out_dir", str(tmp_path / "o2"), "--languages", "de"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("import_jsonl: ") and "language 'en'" in err


# ------------------------------------------------------------------------------------------------ dump_audio
def test_dump_audio_cuts_segments(stm_corpus, tmp_path):
    utts = import_stm(stm_corpus / "dev.stm", tmp_path / "raw", audio_dir=stm_corpus / "audio", lang="en")
    dumped = dump_audio(tmp_path / "raw", tmp_path / "plain", tmp_path / "wavs")
    assert not (dumped / "segments").exists()
    rec, _ = sf.read(str(stm_corpus / "audio" / "conv1.wav"), dtype="int16")
    by_id = {u.utt_id: u for u in read_data_dir(dumped)}
    for u in utts:
        d = by_id[u.utt_id]
        assert d.text == u.text and d.wav == str(tmp_path / "wavs" / f"{u.utt_id}.wav")
        assert d.duration == pytest.approx(u.end - u.start, abs=1e-3)
        if u.recording_id == "conv1":
            x, _ = sf.read(d.wav, dtype="int16")
            assert np.array_equal(x, rec[int(round(u.start * 16000)) : int(round(u.end * 16000))])
    assert validate_data_dir(dumped, check_audio=True).n_utts == len(utts)


def test_dump_audio_resamples_and_runs_pipes(cv_release, tmp_path):
    out = import_commonvoice(cv_release, tmp_path / "cv", lang="fr", splits=("train",))["train"]
    with pytest.raises(DataError, match=r"fr_2\.mp3: cannot decode audio.*nothing was written"):  # the fake mp3
        dump_audio(out, tmp_path / "x", tmp_path / "wx")
    assert not (tmp_path / "x").exists() and not (tmp_path / "wx").exists()
    keep = [u for u in read_data_dir(out) if not u.wav.endswith(".mp3")]
    keep.append(replace(keep[0], utt_id=keep[0].utt_id + "p", wav=f"cat {keep[1].wav} |"))  # a Kaldi pipe
    write_data_dir(keep, tmp_path / "two")
    dumped = dump_audio(tmp_path / "two", tmp_path / "two", tmp_path / "w2")  # in place
    assert [u.duration for u in read_data_dir(dumped)] == [pytest.approx(0.5, abs=0.01)] * 3
    assert {sf.info(u.wav).samplerate for u in read_data_dir(dumped)} == {16000}  # the 48 kHz clip resampled
    assert validate_data_dir(dumped, check_audio=True).n_audio_checked == 3


# ------------------------------------------------------------------------------------------------ read-only sources
def _snapshot(root: Path):
    return {p.relative_to(root): (p.read_bytes(), p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()}


def test_importers_never_write_into_the_source_corpus(cv_release, stm_corpus, tmp_path):
    """Sources are read-only to data prep (checked by content and mtime, since tests may run as root), also when
    audio is dumped and when an import fails part-way."""
    cv_src = cv_release.parent
    stm_src = tmp_path / "stm_src"
    stm_src.mkdir()
    for name in ("audio", "dev.stm", "names.txt"):
        (stm_corpus / name).rename(stm_src / name)
    wav(stm_src / "c1.wav", 4.5)
    write_jsonl(stm_src / "convs.jsonl", [conv()])
    before = _snapshot(cv_src), _snapshot(stm_src)
    out = tmp_path / "out"
    assert cv_cli.main(["--src", str(cv_release), "--out_dir", str(out / "cv"), "--splits", "train"]) == 0
    assert (
        cv_cli.main(
            [
                "--src",
                str(cv_release),
                "--out_dir",
                str(out / "cv_dump"),
                "--splits",
                "dev",
                "--dump_wav_dir",
                str(out / "wav_cv"),
            ]
        )
        == 1
    )  # the fake mp3 cannot be decoded
    assert (
        stm_cli.main(
            [
                "--src",
                str(stm_src / "dev.stm"),
                "--out_dir",
                str(out / "stm"),
                "--audio_dir",
                str(stm_src / "audio"),
                "--entities",
                str(stm_src / "names.txt"),
                "--lang",
                "en",
                "--dump_wav_dir",
                str(out / "wav_stm"),
            ]
        )
        == 0
    )
    assert (
        jsonl_cli.main(
            [
                "--src",
                str(stm_src / "convs.jsonl"),
                "--out_dir",
                str(out / "jsonl"),
                "--dump_wav_dir",
                str(out / "wav_jsonl"),
            ]
        )
        == 0
    )
    assert (_snapshot(cv_src), _snapshot(stm_src)) == before
    assert not (out / "cv_dump").exists()  # the failed import left nothing half-written
