"""Audio as users have it: files written by real encoders (libsndfile's MP3/FLAC/Ogg-Opus through soundfile, not
renamed WAVs), 8 kHz, 44.1 kHz stereo. CommonVoice-layout import -> validate --check_audio -> recipe stages 1-4;
all-or-nothing imports with a corrupt clip; decoding any rate / channel count to the same text."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr

from espnet2_ext.bin import import_commonvoice as cv_cli
from espnet2_ext.common import DataError
from espnet2_ext.data.audio_io import read_audio
from espnet2_ext.data.kaldi_dir import read_data_dir
from espnet2_ext.data.validate_dir import validate_data_dir

REPO = Path(__file__).resolve().parents[2]
# Today's CommonVoice columns (cv-corpus 17+).
CV_COLUMNS = [
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
    "variant",
    "locale",
    "segment",
]
# name -> (format, subtype, rate, channels): what users meet
FORMATS = {
    "mp3_48k": ("MP3", "MPEG_LAYER_III", 48000, 1),  # CommonVoice's clips
    "flac_44k_stereo": ("FLAC", "PCM_16", 44100, 2),
    "opus_48k": ("OGG", "OPUS", 48000, 1),
    "vorbis_22k": ("OGG", "VORBIS", 22050, 1),
    "wav_8k": ("WAV", "PCM_16", 8000, 1),
    "wav_44k_stereo": ("WAV", "PCM_16", 44100, 2),
}
EXT = {"MP3": "mp3", "FLAC": "flac", "OGG": "ogg", "WAV": "wav"}
TONE_HZ = 440.0


def tone(rate: int, seconds: float = 1.0, channels: int = 1, hz: float = TONE_HZ) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    x = (0.4 * np.sin(2 * np.pi * hz * t)).astype(np.float32)
    return np.stack([x] * channels, axis=1) if channels > 1 else x


def encode(path: Path, fmt: str, subtype: str, rate: int, channels: int, x=None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), tone(rate, channels=channels) if x is None else x, rate, format=fmt, subtype=subtype)
    info = sf.info(str(path))  # really that codec, not a renamed wav
    assert (info.format, info.subtype, info.samplerate, info.channels) == (fmt, subtype, rate, channels)
    return path


def peak_hz(x: np.ndarray, rate: int) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spec) * rate / len(x))


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_every_format_reads_as_16k_mono(tmp_path, name):
    fmt, subtype, rate, channels = FORMATS[name]
    path = encode(tmp_path / f"a.{EXT[fmt]}", fmt, subtype, rate, channels)
    x = read_audio(path)
    assert x.dtype == np.float32 and x.ndim == 1
    assert len(x) / 16000 == pytest.approx(1.0, abs=0.08)  # codec priming/padding at most a few frames
    mid = x[len(x) // 4 : 3 * len(x) // 4]  # away from codec edges
    assert peak_hz(mid, 16000) == pytest.approx(TONE_HZ, abs=3)  # resampled, not reinterpreted
    assert 0.25 < np.abs(mid).max() < 0.5


# ------------------------------------------------------------------------------------------------ CommonVoice layout
SENTENCES = [
    "Guten Morgen, Anna!",
    "Wie geht es dir heute?",
    "Ich fahre morgen nach Berlin.",
    "Das Wetter ist schön.",
    "Wir treffen uns am Bahnhof.",
    "Kannst du mir helfen?",
    "Die Suppe ist heiß.",
    "Er liest ein Buch über Musik.",
    "Sie wohnt in München.",
    "Danke für die Einladung.",
]


def cv_release(root: Path, corrupt: bool = False) -> Path:
    """A CommonVoice release folder for German: clips in every format above, tsv files with today's columns."""
    src = root / "de"
    splits = {"train": [], "dev": [], "test": []}
    kinds = sorted(FORMATS)
    for i, sentence in enumerate(SENTENCES + SENTENCES[:4]):
        fmt, subtype, rate, channels = FORMATS[kinds[i % len(kinds)]]
        name = f"common_voice_de_{1000 + i}.{EXT[fmt]}"
        encode(
            src / "clips" / name, fmt, subtype, rate, channels, tone(rate, 0.6 + 0.05 * i, channels, hz=300 + 40 * i)
        )
        split = "train" if i < 10 else ("dev" if i < 12 else "test")
        splits[split].append((f"{i % 5:040x}", name, f"sid{i}", sentence))
    if corrupt:  # an interrupted download: a real MP3 cut in the middle of a frame
        good = encode(root / "full.mp3", "MP3", "MPEG_LAYER_III", 48000, 1, tone(48000, 3.0)).read_bytes()
        (src / "clips" / "common_voice_de_bad.mp3").write_bytes(good[: len(good) // 3 + 7])
        splits["train"].insert(3, ("f" * 40, "common_voice_de_bad.mp3", "sidbad", "Kaputt."))
    for split, rows in splits.items():
        lines = ["\t".join(CV_COLUMNS)]
        for client, path, sid, sentence in rows:
            vals = dict(
                client_id=client,
                path=path,
                sentence_id=sid,
                sentence=sentence,
                up_votes="2",
                down_votes="0",
                locale="de",
            )
            lines.append("\t".join(vals.get(c, "") for c in CV_COLUMNS))
        (src / f"{split}.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return src


def _listing(root: Path):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_corrupt_clip_fails_the_whole_import_or_is_skipped_on_request(tmp_path, capsys):
    src = cv_release(tmp_path / "cv", corrupt=True)
    out = tmp_path / "out"
    out.mkdir()
    args = [
        "--src",
        str(src),
        "--out_dir",
        str(out / "data"),
        "--lang",
        "de",
        "--splits",
        "train,dev",
        "--dump_wav_dir",
        str(out / "wav"),
    ]
    assert cv_cli.main(args) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("import_commonvoice: ")
    assert "common_voice_de_bad.mp3: audio is truncated" in err[0] and "--skip_bad_audio" in err[0]
    assert _listing(out) == []  # no data dir, no partial wav dir, no temporary leftovers

    (out / "wav" / ".train.tmp").mkdir(parents=True)  # what a dump killed mid-way leaves: cleared, not piled up
    (out / "wav" / ".train.tmp" / "stale.wav").write_bytes(b"x")
    assert cv_cli.main(args + ["--skip_bad_audio"]) == 0
    assert sorted(p.name for p in (out / "wav").iterdir()) == ["dev", "train"]
    assert not (out / "wav" / "train" / "stale.wav").exists()
    err = capsys.readouterr().err
    assert "skipped 1 undecodable clip(s)" in err and "common_voice_de_bad.mp3" in err
    train = read_data_dir(out / "data" / "train")
    assert len(train) == 10 and not any("bad" in u.utt_id for u in train)
    assert {(sf.info(u.wav).samplerate, sf.info(u.wav).channels, sf.info(u.wav).format) for u in train} == {
        (16000, 1, "WAV")
    }
    assert validate_data_dir(out / "data" / "train", check_audio=True).n_audio_checked == 10


def test_validate_decodes_audio_and_reports_what_will_be_converted(tmp_path):
    src = cv_release(tmp_path / "cv", corrupt=True)
    from espnet2_ext.corpora.importers.commonvoice import import_commonvoice

    d = import_commonvoice(src, tmp_path / "data", lang="de", splits=("dev", "train"))  # clips referenced as-is
    summary = validate_data_dir(d["dev"], check_audio=True)
    assert summary.n_audio_checked == 2 and set(summary.to_convert.values()) == {
        "44100 Hz stereo wav",
        "8000 Hz mono wav",
    }
    assert "format_data_dir" in summary.format()
    with pytest.raises(
        DataError,
        match=r"train/wav\.scp:\d+ \(cv-f+-common_voice_de_bad\): .*bad\.mp3: audio is "
        r"truncated \(decoded .* s of the .* s its header announces\)",
    ):
        validate_data_dir(d["train"], check_audio=True)


def test_commonvoice_import_then_recipe_stages_1_to_4(tmp_path):
    """A fresh user's path: CommonVoice folder of real MP3 (and other) clips -> the real-data recipe's stage 1
    (local/data.sh: import with --dump_wav_dir), 2 (validate --check_audio, format), 3 (tokenizer), 4 (shapes) in
    the debug configuration."""
    from espnet2_ext.upstream.xlsr_standin import model_cfg_for, save_checkpoint

    cv_release(tmp_path / "cv")
    shutil.copytree(
        REPO / "egs2",
        tmp_path / "egs2",
        symlinks=True,
        ignore=shutil.ignore_patterns("data", "dump", "exp", "exp_grid", "downloads", "RESULTS.md"),
    )
    recipe = tmp_path / "egs2" / "tokenverse" / "asr1"
    shutil.copy(REPO / "egs2/mini_tokenverse/asr1/conf/train_debug.yaml", recipe / "conf")
    (recipe / "downloads").mkdir()
    save_checkpoint(str(recipe / "downloads/xlsr_tiny_standin.pt"), model_cfg_for("tiny"))
    env = {**os.environ, "ESPNET2_EXT_VENV": sys.prefix}
    r = subprocess.run(
        [
            "./run.sh",
            "--stage",
            "1",
            "--stop_stage",
            "4",
            "--ngpu",
            "0",
            "--nbpe",
            "40",
            "--data_opts",
            f"--cv_root {tmp_path / 'cv'} --cv_langs de",
            "--test_sets",
            "test_cv",
            "--asr_config",
            "conf/train_debug.yaml",
        ],
        cwd=recipe,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, (r.stdout[-3000:], r.stderr[-3000:])
    assert "audio checked: 10 files" in r.stdout  # stage 2 decoded every dumped clip of train
    assert len((recipe / "dump/raw/train/wav.scp").read_text().splitlines()) == 10
    shapes = (recipe / "exp/asr_stats_train_bpe40/train/speech_shape").read_text().split("\n")
    lengths = {line.split()[0]: int(line.split()[1]) for line in shapes if line}
    for i, (utt, n) in enumerate(sorted(lengths.items(), key=lambda kv: kv[0].rsplit("_", 1)[1])):
        assert n == pytest.approx(16000 * (0.6 + 0.05 * i), abs=16000 * 0.08), utt  # 16 kHz samples, any source


# ------------------------------------------------------------------------------------------------ decoding
@pytest.fixture(scope="module")
def variants(tiny_trained, tmp_path_factory):
    """One recording of the tiny model's data as 16 kHz mono (original), 44.1 kHz mono, 44.1 kHz stereo (FLAC)
    and 8 kHz MP3."""
    _, data, _ = tiny_trained
    root = tmp_path_factory.mktemp("variants")
    utt = "spk1-u1"
    x, sr = sf.read(str(data / "wav" / f"{utt}.wav"), dtype="float32")
    assert sr == 16000
    x44 = soxr.resample(x, 16000, 44100)
    files = {
        "orig": data / "wav" / f"{utt}.wav",
        "44k": root / "u_44k.wav",
        "44k_stereo": root / "u_44k_stereo.flac",
        "8k_mp3": root / "u_8k.mp3",
    }
    sf.write(str(files["44k"]), x44, 44100, subtype="PCM_16")
    sf.write(str(files["44k_stereo"]), np.stack([x44, x44], axis=1), 44100, format="FLAC", subtype="PCM_16")
    sf.write(str(files["8k_mp3"]), soxr.resample(x, 16000, 8000), 8000, format="MP3")
    return files


def test_any_rate_and_channel_count_decodes_to_the_same_text(tiny_trained, variants, tmp_path, caplog):
    from espnet2_ext.bin.asr_inference import run

    _, _, out = tiny_trained
    scp = tmp_path / "wav.scp"
    scp.write_text("".join(f"{k} {p}\n" for k, p in sorted(variants.items())))
    common = [
        "--asr_train_config",
        str(out / "config.yaml"),
        "--asr_model_file",
        str(out / "valid.loss.best.pth"),
        "--data_path_and_name_and_type",
        f"{scp},speech,sound",
        "--num_workers",
        "0",
    ]
    with caplog.at_level("WARNING"):
        run(common + ["--output_dir", str(tmp_path / "dec")])
    text = dict(line.split(" ", 1) for line in (tmp_path / "dec/1best_recog/text").read_text().splitlines())
    assert text["orig"].split()[:3] == ["[EN]", "hello", "[NE]"]  # the model recognises the original
    assert text["44k"] == text["orig"] and text["44k_stereo"] == text["orig"]
    logged = [r.getMessage() for r in caplog.records if "converting to 16000 Hz mono" in r.getMessage()]
    assert len(logged) == 3 and any("44100 Hz stereo" in m for m in logged)  # one line per input format

    with pytest.raises(
        ValueError,
        match=r"wav\.scp \(44k\): audio is 44100 Hz mono but the model expects 16000 Hz "
        r"mono; .*--audio_mismatch resample",
    ):
        run(common + ["--output_dir", str(tmp_path / "strict"), "--audio_mismatch", "error"])
    assert (
        not (tmp_path / "strict" / "1best_recog" / "text").exists()
        or "44k" not in (tmp_path / "strict" / "1best_recog" / "text").read_text()
    )


def test_python_api_takes_a_sample_rate_or_a_path(tiny_trained, variants, caplog):
    from espnet2_ext.asr.speech2text import TokenVerseSpeech2Text

    _, _, out = tiny_trained
    s2t = TokenVerseSpeech2Text(asr_train_config=out / "config.yaml", asr_model_file=out / "valid.loss.best.pth")
    orig = s2t(sf.read(str(variants["orig"]), dtype="float32")[0])[0][0]
    stereo, sr = sf.read(str(variants["44k_stereo"]), dtype="float32")  # stereo: [T, 2]
    with caplog.at_level("WARNING"):
        assert s2t(stereo, sample_rate=sr)[0][0] == orig
        assert s2t(stereo.T.copy(), sample_rate=sr)[0][0] == orig  # (channels, samples) as torchaudio gives
        assert s2t(str(variants["44k"]))[0][0] == orig
    assert sum("44100 Hz stereo" in r.getMessage() for r in caplog.records) == 1  # logged once, not per call
    strict = TokenVerseSpeech2Text(
        asr_train_config=out / "config.yaml", asr_model_file=out / "valid.loss.best.pth", audio_mismatch="error"
    )
    with pytest.raises(ValueError, match="audio is 44100 Hz stereo but the model expects 16000 Hz mono"):
        strict(stereo, sample_rate=sr)
