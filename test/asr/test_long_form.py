"""Long-form decoding (issue #30): cut and merge, stitching in the recording's clock, batching, bounded memory
(checked by structure: no read and no model input spans the recording), bad recordings in a list."""

import shutil
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf
from tiny_setup import UTTS

from espnet2_ext.asr import long_form as lf
from espnet2_ext.asr.vad import VADConfig
from espnet2_ext.common import DataError
from espnet2_ext.data.audio_blocks import RecordingReader
from espnet2_ext.task_spec import TaskSpec

SPEC = TaskSpec.default()
SR = 16000


# ---- pure planning and stitching ---------------------------------------------------------------------------
def test_pieces_merge_toward_the_target_and_cut_in_pauses():
    s = lambda a, b: (int(a * SR), int(b * SR))  # noqa: E731
    regions = [s(0.5, 2.0), s(2.6, 4.0), s(5.0, 9.0), s(12.0, 25.0), s(25.02, 27.0)]
    opts = lf.LongFormOptions(target_segment_s=6.0, max_segment_s=14.0, pad_s=0.4, cut_rule="none")
    pieces = lf.plan_pieces(regions, int(30 * SR), opts)
    spans = [t / SR for p in pieces for t in (p.start, p.end)]
    # 0.5-4.0 merged (3.5 s <= 6), 5-9 alone (5-9 plus 0.5 s would exceed 6 from 0.5), 12-25 alone (> target),
    # 25.02-27 alone: its cut is inside speech (20 ms pause)
    assert spans == pytest.approx([0.1, 4.4, 4.6, 9.4, 11.6, 25.01, 25.01, 27.4], abs=1e-4)
    assert [p.forced_end for p in pieces] == [False, False, True, False]
    assert all(a.end <= b.start for a, b in zip(pieces, pieces[1:]))  # no audio decoded twice
    assert all(p.context == 0 for p in pieces)
    ctx = lf.plan_pieces(regions, int(30 * SR), lf.LongFormOptions(target_segment_s=6.0, max_segment_s=14.0))
    # context from the previous group's last region start (minus pad) when within 2 x 2 s, else 2 s
    assert [p.context / SR for p in ctx] == pytest.approx([0.0, 2.4, 2.0, 2.0])


class FakeS2T:
    """decode_batch -> fixed tokens per piece length, frames = token index * 5; records every input shape."""

    spec, frame_shift, sample_rate = SPEC, 0.02, SR
    token_list = ["<blank>", "[EN]", "[DE]", "a", "b", "[ENDP]", "[SCD]"]
    tokenizer = None

    def __init__(self):
        self.shapes = []

    def decode_batch(self, speech, lengths, task_mask=None, task_activation=None, with_frames=False, biasing=None):
        self.shapes.append(tuple(speech.shape))
        out = []
        for n in lengths.tolist():
            toks = ["[DE]" if n > 4 * SR else "[EN]", "a", "b", "[ENDP]"]
            out.append([(" ".join(toks), toks, [], SimpleNamespace(frames=[5 * i for i in range(4)], score=-1.0))])
        return out


def test_stitched_times_are_piece_times_plus_offsets():
    s2t = FakeS2T()
    pieces = [
        lf.Piece(0, 3 * SR),
        lf.Piece(4 * SR, 9 * SR),
        lf.Piece(10 * SR, 12 * SR, forced_end=True),
        lf.Piece(12 * SR, 13 * SR),
    ]
    decoded = lf.decode_pieces(s2t, SimpleNamespace(read=lambda a, b: np.zeros(b - a, np.float32)), pieces, 3)
    segs = [lf.piece_segment(SPEC, p, *d) for p, d in zip(pieces, decoded)]
    for p, seg, (toks, times, _) in zip(pieces, segs, decoded):
        assert seg.tokens[1:] == [t for t in toks[1:] if not (p.forced_end and t == "[ENDP]")]
        assert seg.times[1:] == pytest.approx([t + p.start / SR for t in times[1 : len(seg.tokens)]])
        assert seg.times[0] == p.start / SR and seg.language == toks[0]
    tokens, times = lf.stitch(SPEC, segs, "none")
    # a language token only where it changes; the forced cut lost its [ENDP]
    assert tokens == ["[EN]", "a", "b", "[ENDP]", "[DE]", "a", "b", "[ENDP]", "[EN]", "a", "b", "a", "b", "[ENDP]"]
    assert times == pytest.approx([0, 0.1, 0.2, 0.3, 4, 4.1, 4.2, 4.3, 10, 10.1, 10.2, 12.1, 12.2, 12.3])
    scd, _ = lf.stitch(SPEC, segs, "scd")
    assert scd.count("[SCD]") == 3 and scd[4:6] == ["[DE]", "[SCD]"]


def test_context_words_are_dropped_and_the_boundary_comes_from_the_decode_that_heard_both_sides():
    prev = lf.piece_segment(SPEC, lf.Piece(0, 3 * SR), ["[EN]", "a", "[ENDP]"], [0.0, 1.0, 2.5], -1.0)
    # piece from 5 s with 2 s of context (fed from 3 s): 'b' at 0.5 s is a context word; its tags stay
    piece = lf.Piece(5 * SR, 8 * SR, context=2 * SR)
    seg = lf.piece_segment(
        SPEC, piece, ["[EN]", "b", "[ENDP]", "[SCD]", "a", "[ENDP]"], [0.0, 0.5, 1.2, 1.9, 2.4, 2.9], -1.0
    )
    assert seg.boundary_heard and seg.tokens == ["[EN]", "[ENDP]", "[SCD]", "a", "[ENDP]"]
    assert seg.times == pytest.approx([5.0, 4.2, 4.9, 5.4, 5.9])
    tokens, times = lf.stitch(SPEC, [prev, seg], "context")
    assert tokens == ["[EN]", "a", "[ENDP]", "[SCD]", "a", "[ENDP]"]  # one [ENDP] at the cut, and the [SCD]
    assert times == pytest.approx([0.0, 1.0, 4.2, 4.9, 5.4, 5.9])


# ---- the tiny model ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def s2t(tiny_trained):
    from espnet2_ext.asr.speech2text import TokenVerseSpeech2Text

    _, _, out = tiny_trained
    return TokenVerseSpeech2Text(
        asr_train_config=out / "config.yaml",
        asr_model_file=out / "valid.loss.best.pth",
        transducer_conf={"search_type": "greedy"},
    )


def write_recording(data, path, repeats: int, pause_s: float = 1.0):
    """The tiny utterances laid end to end with pauses of low noise, ``repeats`` times."""
    rng = np.random.default_rng(0)
    parts = []
    for _ in range(repeats):
        for utt, _, _ in UTTS:
            x, _ = sf.read(data / "wav" / f"{utt}.wav", dtype="float32")
            parts += [x, 0.003 * rng.standard_normal(int(pause_s * SR)).astype(np.float32)]
    x = np.concatenate(parts)
    sf.write(path, x, SR, subtype="PCM_16")
    return len(x)


OPTS = dict(target_segment_s=3.0, max_segment_s=6.0, vad=VADConfig(kind="energy"), cut_rule="none")


def test_batched_pieces_equal_one_by_one(tiny_trained, s2t, tmp_path):
    _, data, _ = tiny_trained
    write_recording(data, tmp_path / "rec.wav", 2)
    reader = RecordingReader(tmp_path / "rec.wav")
    opts = lf.LongFormOptions(**OPTS)
    from espnet2_ext.asr.vad import speech_regions

    pieces = lf.plan_pieces(speech_regions(reader, opts.vad, opts.max_segment_s), len(reader), opts)
    assert len(pieces) >= 4
    batched = lf.decode_pieces(s2t, reader, pieces, batch_size=4)
    single = lf.decode_pieces(s2t, reader, pieces, batch_size=1)
    assert [b[0] for b in batched] == [s[0] for s in single]
    assert [b[1] for b in batched] == [s[1] for s in single]
    assert any(b[0] for b in batched)


def test_recording_times_equal_piece_decodes_plus_offsets(tiny_trained, s2t, tmp_path):
    _, data, _ = tiny_trained
    write_recording(data, tmp_path / "rec.wav", 2)
    result = s2t.decode_recording(tmp_path / "rec.wav", **OPTS)
    assert len(result.segments) >= 4 and result.tokens
    for seg in result.segments:  # each segment decoded on its own, shifted by its start
        x, _ = sf.read(tmp_path / "rec.wav", dtype="float32", start=int(seg.start * SR), stop=int(seg.end * SR))
        ((_, toks, _, hyp),) = s2t(x)
        times = [f * s2t.frame_shift + seg.start for f in hyp.frames]
        lang = [i for i, t in enumerate(toks) if t in SPEC.aux_tokens["lid"]][:1]
        rest = [i for i in range(len(toks)) if toks[i] not in SPEC.aux_tokens["lid"]]  # one language a piece
        assert seg.tokens == [toks[i] for i in lang + rest]
        assert seg.times[len(lang) :] == pytest.approx([times[i] for i in rest], abs=1e-5)
    # the recording's words are the segments' words, in order, in the recording's clock
    words = lambda toks, ts: [(t, s) for t, s in zip(toks, ts) if not SPEC.is_task_token(t)]  # noqa: E731
    assert words(result.tokens, result.times) == [w for s in result.segments for w in words(s.tokens, s.times)]


def test_a_recordings_biasing_list_biases_every_piece(tiny_trained, s2t, tmp_path):
    """Long form with a recording's list (a call's CRM record): each piece is decoded with that list, exactly as
    decoding the piece alone with it; a strong list changes the output, an empty one does not."""
    from espnet2_ext.asr.vad import speech_regions
    from espnet2_ext.text.biasing_list import phrases_list

    _, data, _ = tiny_trained
    write_recording(data, tmp_path / "rec.wav", 1)
    reader = RecordingReader(tmp_path / "rec.wav")
    opts = lf.LongFormOptions(**OPTS)
    pieces = lf.plan_pieces(speech_regions(reader, opts.vad, opts.max_segment_s), len(reader), opts)
    strong = phrases_list(["maria berlin :8", "guten thanks :8"])
    plain = lf.decode_pieces(s2t, reader, pieces, batch_size=4)
    biased = lf.decode_pieces(s2t, reader, pieces, batch_size=4, biasing=strong)
    alone = [lf.decode_pieces(s2t, reader, [p], batch_size=1, biasing=strong)[0] for p in pieces]
    assert [b[0] for b in biased] == [a[0] for a in alone] and [b[1] for b in biased] == [a[1] for a in alone]
    assert [b[0] for b in biased] != [p[0] for p in plain]
    assert lf.decode_pieces(s2t, reader, pieces, batch_size=4, biasing=phrases_list([])) == plain


def test_memory_is_bounded_by_structure(tiny_trained, s2t, tmp_path, monkeypatch):
    """A recording 10x longer than a piece: no read of the file and no tensor given to the model spans more
    than one piece (+ context), so memory does not grow with the recording."""
    _, data, _ = tiny_trained
    n = write_recording(data, tmp_path / "long.wav", 12)
    opts = dict(OPTS, cut_rule="context", context_s=1.0, batch_size=2)
    bound = int((opts["max_segment_s"] + 2 * opts["context_s"]) * SR)
    assert n > 10 * bound
    reads, inputs = [], []
    real_read, real_decode = RecordingReader.read, type(s2t).decode_batch
    monkeypatch.setattr(RecordingReader, "read", lambda self, a, b: reads.append(b - a) or real_read(self, a, b))
    monkeypatch.setattr(
        type(s2t),
        "decode_batch",
        lambda self, sp, *a, **k: inputs.append(tuple(sp.shape)) or real_decode(self, sp, *a, **k),
    )
    for vad in ("energy", "silero"):
        reads.clear()
        inputs.clear()
        result = s2t.decode_recording(tmp_path / "long.wav", **dict(opts, vad=VADConfig(kind=vad)))
        assert max(reads) <= bound and sum(reads) >= n  # the whole file was read, in spans
        assert max((s[1] for s in inputs), default=0) <= bound + SR  # padded to whole seconds
        assert max((s[0] for s in inputs), default=0) <= opts["batch_size"]
        if vad == "energy":  # (silero hears no speech in the tiny model's tones: its reads are what is checked)
            assert len(result.segments) > 10 and len(inputs) > 5


def test_silero_finds_the_turns_of_synthesised_speech(tmp_path):
    if shutil.which("espeak-ng") is None or shutil.which("sox") is None:
        pytest.skip("espeak-ng/sox not installed")
    from espnet2_ext.asr.vad import speech_regions
    from espnet2_ext.corpora.mini_tokenverse.mini_tokenverse import _tts

    pause = np.zeros(int(1.5 * SR), np.int16)
    turns = [_tts(["-v", "en"], "hello how are you today"), _tts(["-v", "de"], "guten morgen wie geht es")]
    x = np.concatenate([pause, turns[0], pause, turns[1], pause])
    sf.write(tmp_path / "two.wav", x, SR, subtype="PCM_16")
    regions = speech_regions(RecordingReader(tmp_path / "two.wav"), VADConfig(), 20.0)
    starts = [1.5, 3.0 + len(turns[0]) / SR]
    assert len(regions) == 2
    assert [a / SR for a, _ in regions] == pytest.approx(starts, abs=0.15)


# ---- bad input ---------------------------------------------------------------------------------------------
def test_bad_recordings_in_a_list(tiny_trained, tmp_path):
    """0-length, all-silent, shorter than a frame: empty hypothesis + a log line; corrupt and 0-byte files: one
    line each, the error at the end names them; the good recordings around them are decoded; 1best_recog is
    complete."""
    root, data, out = tiny_trained
    d = tmp_path / "data"
    d.mkdir()
    write_recording(data, d / "a_good.wav", 1)
    sf.write(d / "b_empty.wav", np.zeros(0, np.int16), SR, subtype="PCM_16")
    sf.write(d / "c_silent.wav", np.zeros(5 * SR, np.int16), SR, subtype="PCM_16")
    sf.write(d / "d_short.wav", np.zeros(200, np.int16), SR, subtype="PCM_16")
    (d / "e_corrupt.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunk" + bytes(range(256)) * 4)
    (d / "f_zero_bytes.wav").write_bytes(b"")
    write_recording(data, d / "g_good.wav", 1)
    names = ["a_good", "b_empty", "c_silent", "d_short", "e_corrupt", "f_zero_bytes", "g_good"]
    (d / "wav.scp").write_text("".join(f"{n} {d / n}.wav\n" for n in names))
    cmd = [
        sys.executable,
        "-m",
        "espnet2_ext.bin.asr_inference",
        "--asr_train_config",
        str(out / "config.yaml"),
        "--asr_model_file",
        str(out / "valid.loss.best.pth"),
        "--output_dir",
        str(tmp_path / "dec"),
        "--data_path_and_name_and_type",
        f"{d}/wav.scp,speech,sound",
        "--long_form",
        "segment",
        "--vad",
        "energy",
        "--search_type",
        "greedy",
        "--target_segment_s",
        "3",
        "--max_segment_s",
        "6",
    ]
    p = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        env={**__import__("os").environ, "PYTHONPATH": str(__import__("pathlib").Path(__file__).resolve().parents[2])},
    )
    assert p.returncode == 1
    last = p.stderr.strip().splitlines()[-1]
    assert last.startswith("asr_inference: error: 2 of 7 recordings could not be decoded (first: e_corrupt")
    for name, why in (
        ("e_corrupt", "cannot decode audio"),
        ("f_zero_bytes", "empty (0 bytes)"),
        ("b_empty", "empty hypothesis"),
        ("c_silent", "no speech"),
        ("d_short", "shorter than one frame"),
    ):
        assert any(name in line and why in line for line in p.stderr.splitlines()), (name, p.stderr[-2000:])
    rec = tmp_path / "dec" / "1best_recog"
    text = dict((line.split(" ", 1) + [""])[:2] for line in (rec / "text").read_text().splitlines())
    assert sorted(text) == ["a_good", "b_empty", "c_silent", "d_short", "g_good"]
    assert text["a_good"] and text["g_good"] and not text["b_empty"] and not text["c_silent"] and not text["d_short"]
    for name in ("segments", "segment_text", "ctm", "rttm", "events.jsonl", "token", "score"):
        assert (rec / name).is_file()
    assert not list(rec.parent.glob(".*tmp*"))


def test_a_pipe_is_refused_with_the_fix():
    with pytest.raises(DataError, match="cannot be read in parts.*convert it"):
        RecordingReader("sox in.sph -t wav - |")


def test_options_are_checked():
    with pytest.raises(ValueError, match="long_form 'x' is unknown"):
        lf.LongFormOptions(mode="x")
    with pytest.raises(ValueError, match="target segment length"):
        lf.LongFormOptions(target_segment_s=30.0, max_segment_s=20.0)


# ---- the evaluation set ------------------------------------------------------------------------------------
def test_long_form_set_lays_conversations_end_to_end(tmp_path):
    import json

    from espnet2_ext.data.long_form_set import make_sets, place_utterance_decode

    src = tmp_path / "test"
    (src / "wav").mkdir(parents=True)
    utts = [
        ("de-a", "[DE] hallo [ENDP] [SCD] gut [ENDP]", "0.150 1.000 s1 1.300 2.000 s2", "de", 2.25),
        ("de-b", "[DE] ja [ENDP]", "0.150 0.900 s2 ", "de", 1.15),
        ("en-a", "[EN] hi [ENDP] [SCD] fine [ENDP]", "0.150 0.800 s3 1.000 1.500 s4", "en", 1.75),
    ]
    for name, rows in (
        ("wav.scp", [f"{u} {src}/wav/{u}.wav" for u, *_ in utts]),
        ("text", [f"{u} {t}" for u, t, *_ in utts]),
        ("utt2turns", [f"{u} {r}" for u, _, r, *_ in utts]),
        ("utt2lang", [f"{u} {lang}" for u, _, _, lang, _ in utts]),
    ):
        (src / name).write_text("".join(r + "\n" for r in rows))
    for u, *_, dur in utts:
        sf.write(src / "wav" / f"{u}.wav", (np.ones(int(dur * SR)) * 0.1).astype(np.float32), SR, subtype="PCM_16")
    made = make_sets(src, tmp_path, tmp_path / "wavs", minutes=(1,), pause_s=(0.5, 0.5))
    conv = {line.split(" ", 1)[0]: line.split(" ", 1)[1] for line in (made[0] / "text").read_text().splitlines()}
    # one language token, [SCD] where the speaker changes across conversations (s2 -> s2: none)
    assert conv == {
        "lf-de": "[DE] hallo [ENDP] [SCD] gut [ENDP] ja [ENDP]",
        "lf-en": "[EN] hi [ENDP] [SCD] fine [ENDP]",
    }
    turns = (made[0] / "utt2turns").read_text().splitlines()[0].split()
    assert turns[1:] == ["0.150", "1.000", "s1", "1.300", "2.000", "s2", "2.900", "3.650", "s2"]  # +2.25 + 0.5
    x, _ = sf.read(made[0].parent / "wavs" / "lf-de.wav")
    assert len(x) == int(2.25 * SR) + int(0.5 * SR) + int(1.15 * SR)
    mix = (made[1] / "ref_segments").read_text().splitlines()
    assert mix[:4] == [
        "de-a lf-mix-1min 0.000 2.250",
        "de-b lf-mix-1min 2.750 3.900",
        "en-a lf-mix-1min 4.400 6.150",
        "de-a__r1 lf-mix-1min 6.650 8.900",
    ]
    assert float((made[1] / "utt2dur").read_text().split()[1]) >= 60.0
    # a per-utterance decode placed in the recording's clock
    dec = tmp_path / "utt" / "1best_recog"
    dec.mkdir(parents=True)
    (dec / "text").write_text("de-a [DE] hallo\nde-b [DE] ja\nen-a [EN] hi\n")
    with (dec / "events.jsonl").open("w") as f:
        for u, toks in (("de-a", ["[DE]", "hallo"]), ("de-b", ["[DE]", "ja"]), ("en-a", ["[EN]", "hi"])):
            f.write(
                json.dumps({"utt": u, "offset": 0.0, "frame_shift": 0.02, "tokens": toks, "token_times": [0.0, 0.5]})
                + "\n"
            )
    place_utterance_decode(made[0] / "ref_segments", tmp_path / "utt", tmp_path / "placed")
    out = tmp_path / "placed" / "1best_recog"
    assert (out / "text").read_text().splitlines()[0] == "lf-de [DE] hallo [DE] ja"
    rec = json.loads((out / "events.jsonl").read_text().splitlines()[0])
    assert rec["utt"] == "lf-de" and rec["token_times"] == pytest.approx([0.0, 0.5, 2.75, 3.25])


def test_stream_mode_restarts_at_endpoints_and_covers_the_recording(multichunk, tmp_path):
    from espnet2_ext.asr.streaming import TokenVerseStreamingSpeech2Text

    _, data, out = multichunk
    n = write_recording(data, tmp_path / "rec.wav", 2)
    s2t = TokenVerseStreamingSpeech2Text(
        asr_train_config=out / "config.yaml",
        asr_model_file=out / "valid.loss.best.pth",
        chunk_size_ms=160,
        transducer_conf={"search_type": "greedy"},
    )
    opts = lf.LongFormOptions(mode="stream", target_segment_s=2.0, max_segment_s=4.0)
    result = lf.decode_streamed(s2t, RecordingReader(tmp_path / "rec.wav"), "rec", opts, block_s=0.5)
    segs = result.segments
    assert len(segs) >= 3 and segs[0].start == 0 and segs[-1].end == pytest.approx(n / SR)
    assert all(a.end == b.start for a, b in zip(segs, segs[1:]))  # contiguous: every sample decoded once
    assert all(s.end - s.start <= 4.0 + 0.5 + 1e-6 for s in segs)
    assert all(s.start <= t <= s.end for s in segs for t in s.times)
    for s in segs[:-1]:  # a stream closed early ended at an endpoint, or at the length bound
        assert (s.tokens and s.tokens[-1] == "[ENDP]") or s.end - s.start >= 4.0


def test_a_piece_without_a_language_token_inherits_the_previous_one():
    segs = [
        lf.piece_segment(SPEC, lf.Piece(0, 2 * SR), ["[FR]", "a", "[ENDP]"], [0.0, 0.5, 1.0], 0.0),
        lf.piece_segment(SPEC, lf.Piece(3 * SR, 5 * SR), ["b", "[ENDP]"], [0.5, 1.0], 0.0),
    ]
    assert segs[1].language is None
    lf.inherit_language(segs)
    assert segs[1].language == "[FR]" and segs[1].tokens == ["[FR]", "b", "[ENDP]"] and segs[1].times[0] == 3.0
    assert lf.stitch(SPEC, segs, "none")[0] == ["[FR]", "a", "[ENDP]", "b", "[ENDP]"]


def test_auto_switches_to_long_form_only_for_long_recordings(tmp_path):
    from espnet2_ext.asr.long_form_dir import wants_long_form

    sf.write(tmp_path / "short.wav", np.zeros(2 * SR, np.int16), SR, subtype="PCM_16")
    sf.write(tmp_path / "long.wav", np.zeros(25 * SR, np.int16), SR, subtype="PCM_16")
    scp = tmp_path / "wav.scp"

    def args(mode):
        return SimpleNamespace(
            long_form=mode, max_segment_s=20.0, data_path_and_name_and_type=[(str(scp), "speech", "sound")]
        )

    scp.write_text(f"a {tmp_path}/short.wav\n")
    assert not wants_long_form(args("auto")) and wants_long_form(args("segment"))
    scp.write_text(f"a {tmp_path}/short.wav\nb {tmp_path}/long.wav\n")
    assert wants_long_form(args("auto")) and not wants_long_form(args("none"))
    (tmp_path / "segments").write_text("a-1 a 0 1\n")  # utterances cut from recordings: the usual path
    assert not wants_long_form(args("auto"))


def test_measure_and_table(tmp_path):
    import json

    from espnet2_ext.bin.long_form_eval import main

    out = tmp_path / "exp" / "s1"
    out.mkdir(parents=True)
    assert (
        main(
            [
                "measure",
                "--out_json",
                str(out / "run_long.json"),
                "--audio_s",
                "10",
                "--",
                sys.executable,
                "-c",
                "x = bytearray(300 * 2 ** 20)",
            ]
        )
        == 0
    )
    rec = json.loads((out / "run_long.json").read_text())
    assert (
        rec["returncode"] == 0
        and rec["peak_rss_gb"] >= 0.29
        and rec["rtf"] == pytest.approx(rec["wall_s"] / 10, abs=1e-3)
    )
    assert main(["measure", "--out_json", str(tmp_path / "bad.json"), "--", sys.executable, "-c", "exit(3)"]) == 1
    for name, wer in (("score_utt.json", 20.0), ("score_long.json", 19.5)):
        (out / name).write_text(
            json.dumps(
                {
                    "wer": wer,
                    "endp_f1": 90.0,
                    "lid_acc": 100.0,
                    "time": {"scd": {"collar_0.5": {"f1": 60.0}}, "endp": {"ep50": 0.02}},
                }
            )
        )
    (tmp_path / "data" / "s1").mkdir(parents=True)
    (tmp_path / "data" / "s1" / "utt2dur").write_text("r1 60.0\nr2 30.0\n")
    assert (
        main(
            [
                "table",
                "--exp_dir",
                str(tmp_path / "exp"),
                "--sets",
                "s1",
                "--data_root",
                str(tmp_path / "data"),
                "--out",
                str(tmp_path / "t.md"),
            ]
        )
        == 0
    )
    row = (tmp_path / "t.md").read_text().splitlines()[-1].split(" | ")
    assert row[:7] == ["| s1", "1.5", "2", "20.00", "19.50", "60.00", "60.00"]
