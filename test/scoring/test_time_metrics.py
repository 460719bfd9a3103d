"""Time-based scoring: a hand-checked conversation (known turns, known emissions) and the scorer/report plumbing."""

import json

import pytest

from espnet2_ext.common import DataError
from espnet2_ext.data.kaldi_dir import Utterance, read_data_dir, write_data_dir
from espnet2_ext.data.ref_turns import RefTurn, parse_turns, turns_problem
from espnet2_ext.data.validate_dir import validate_data_dir
from espnet2_ext.scoring.time_metrics import endpoint_stats, score_times, word_timing_errors
from espnet2_ext.task_spec import TaskSpec
from espnet2_ext.text.time_outputs import TimedUtterance, UttEvents, read_events, write_time_outputs

SPEC = TaskSpec.default()
# Four turns A | B | B (same speaker after a pause) | A: changes at 1.3 s and 3.5 s, ends of speech at 1.0, 2.0,
# 3.0 and 4.2 s.
TURNS = (RefTurn(0.2, 1.0, "A"), RefTurn(1.3, 2.0, "B"), RefTurn(2.4, 3.0, "B"), RefTurn(3.5, 4.2, "A"))


def hand_events(offset=0.0):
    # [SCD] at 1.4 (0.1 s late), 2.5 (false alarm), 3.9 (0.4 s late); [ENDP] at 1.1 and 1.2 (one extra), 2.1, 3.2, 4.4
    return UttEvents("u1", 4.5, 0.02, [("hi", 0.2, 0.3)], [1.4, 2.5, 3.9], [1.1, 1.2, 2.1, 3.2, 4.4], "u1", offset)


def test_hand_checked_collar_f1_and_latency():
    r = score_times({"u1": TURNS}, {"u1": hand_events()}, ["u1"], ["u1"])
    at25, at50 = r["scd"]["collar_0.25"], r["scd"]["collar_0.5"]
    # 0.25 s: only 1.4 <-> 1.3 matches: P = 1/3, R = 1/2, F1 = 2*1/(3+2)
    assert (at25["matches"], at25["n_hyp"], at25["n_ref"]) == (1, 3, 2)
    assert at25["f1"] == pytest.approx(40.0) and at25["precision"] == pytest.approx(100 / 3)
    # 0.5 s: 3.9 <-> 3.5 matches too: P = 2/3, R = 1, F1 = 4/5
    assert at50["f1"] == pytest.approx(80.0) and at50["recall"] == pytest.approx(100.0)
    e = r["endp"]
    # first [ENDP] per turn window: 1.1, 2.1, 3.2, 4.4 -> latencies 0.1, 0.1, 0.2, 0.2
    assert e["ep50"] == pytest.approx(0.15) and e["ep90"] == pytest.approx(0.2)
    assert (e["n_ref"], e["missed"], e["early_cutoffs"], e["extra"]) == (4, 0, 0, 1)
    assert 0 < r["scd"]["purity"] <= 100 and 0 < r["scd"]["coverage"] <= 100


def test_early_cutoff_and_missed_endpoint():
    # turn 1 cut off 0.3 s before its end; turn 2 never endpointed; turn 3 0.25 s late; turn 4 0.05 s late
    s = endpoint_stats(TURNS, [0.7, 3.25, 4.25])
    assert (s.n_ref, s.missed, s.early, s.extra) == (4, 1, 1, 0)
    assert s.latencies == pytest.approx([-0.3, 0.25, 0.05])
    summ = s.summary()
    assert summ["ep50"] == pytest.approx(0.05) and summ["early_cutoff_rate"] == 25.0 and summ["missed_rate"] == 25.0


def test_word_timing_error_is_median_over_matched_words():
    ref = [("hello", 0.20), ("maria", 0.60), ("fine", 1.50)]
    hyp = [("hello", 0.24), ("marie", 0.62), ("fine", 1.40)]
    assert sorted(word_timing_errors(ref, hyp)) == pytest.approx([0.04, 0.10])


def test_turns_validation_messages(tmp_path):
    assert turns_problem(parse_turns("0.1 1.0 A +0.9 2.0 B", "x"), 2.0) is None
    assert "mark the overlap" in turns_problem(parse_turns("0.1 1.0 A 0.9 2.0 B", "x"), 2.0)
    assert "sort by start" in turns_problem(parse_turns("1.1 2.0 A 0.1 0.9 B", "x"), 2.0)
    assert "audio lasts" in turns_problem(parse_turns("0.1 3.0 A", "x"), 2.0)
    with pytest.raises(DataError, match="triples"):
        parse_turns("0.1 1.0", "f:1 (u)")
    utt = Utterance(
        "A-u1",
        "A",
        "[EN] hi [ENDP] [SCD] yo [ENDP]",
        "en",
        ("asr", "scd", "endp", "lid"),
        "/x.wav",
        duration=2.0,
        turns=(RefTurn(0.1, 1.0, "A"), RefTurn(1.2, 1.9, "B")),
    )
    d = write_data_dir([utt], tmp_path / "d")
    assert (d / "utt2turns").read_text() == "A-u1 0.100 1.000 A 1.200 1.900 B\n"
    assert read_data_dir(d)[0].turns == utt.turns
    validate_data_dir(d)
    (d / "utt2turns").write_text("A-u1 0.100 1.000 A 0.800 1.900 B\n")
    with pytest.raises(DataError, match=r"utt2turns:1 \(A-u1\): turn 2: .*mark the overlap"):
        validate_data_dir(d)


def _decode_dir(tmp_path, ref_lines, tokens, times, offset=0.0, recording=None):
    hyp = tmp_path / "decode" / "1best_recog"
    hyp.mkdir(parents=True)
    (hyp / "text").write_text(f"u1 {' '.join(tokens)}\n")
    write_time_outputs(hyp, [TimedUtterance("u1", tokens, times, 0.02, 4.5, recording, offset)], SPEC, subword=False)
    data = tmp_path / "data"
    data.mkdir()
    (data / "text").write_text(ref_lines)
    (data / "utt2turns").write_text("u1 0.200 1.000 A 1.300 2.000 B 2.400 3.000 B 3.500 4.200 A\n")
    (data / "utt2tasks").write_text("u1 asr scd endp\n")
    return data, hyp


def test_scorer_and_report_from_files(tmp_path):
    from espnet2_ext.bin.tokenverse_score import run as score
    from espnet2_ext.scoring.report import write_report

    tokens = ["hi", "[ENDP]", "[ENDP]", "[SCD]", "yo", "[ENDP]", "[SCD]", "ok", "[ENDP]", "[SCD]", "bye", "[ENDP]"]
    times = [0.2, 1.1, 1.2, 1.4, 1.5, 2.1, 2.5, 2.6, 3.2, 3.9, 4.0, 4.4]
    # in a recording at 100 s: the files hold recording times, the scorer moves them back
    data, hyp = _decode_dir(
        tmp_path,
        "u1 hi [ENDP] [SCD] yo [ENDP] ok [ENDP] [SCD] bye [ENDP]\n",
        tokens,
        times,
        offset=100.0,
        recording="rec1",
    )
    ev = read_events(hyp / "events.jsonl")["u1"]
    assert ev.speaker_changes == pytest.approx([1.4, 2.5, 3.9]) and ev.offset == 100.0
    ctm = (hyp / "ctm").read_text().splitlines()
    assert ctm[0] == "rec1 1 100.200 0.020 hi"
    out = tmp_path / "exp" / "m" / "decode_asr+scd+endp" / "test" / "score.json"
    ref_ctm = tmp_path / "ref.ctm"
    ref_ctm.write_text("rec1 1 100.25 0.3 hi\nrec1 1 101.50 0.3 yo\n")
    result = score(
        [
            "--ref",
            str(data / "text"),
            "--hyp",
            str(hyp / "text"),
            "--task_activation",
            "asr,scd,endp",
            "--out_json",
            str(out),
            "--ref_ctm",
            str(ref_ctm),
        ]
    )
    t = result["time"]
    assert t["scd"]["collar_0.25"]["f1"] == pytest.approx(40.0) and t["scd"]["collar_0.5"]["f1"] == pytest.approx(80.0)
    assert t["endp"]["ep50"] == pytest.approx(0.15) and t["endp"]["ep90"] == pytest.approx(0.2)
    assert t["word_timing"]["median_abs_start_error"] == pytest.approx(0.025)  # |100.2-100.25|, |101.5-101.5|
    assert json.loads(out.read_text())["time"]["endp"]["extra"] == 1
    report = write_report([tmp_path / "exp"], tmp_path / "RESULTS.md")
    assert "## Table V: time-based scores" in report
    row = next(line for line in report.splitlines() if line.startswith("| m | test | asr+scd+endp | 40.00"))
    assert "| 80.00 |" in row and "| 150.00 | 200.00 |" in row


def test_no_reference_times_means_no_time_section(tmp_path):
    from espnet2_ext.bin.tokenverse_score import run as score

    data, hyp = _decode_dir(tmp_path, "u1 hi [ENDP]\n", ["hi", "[ENDP]"], [0.2, 1.1])
    (data / "utt2turns").unlink()
    result = score(
        [
            "--ref",
            str(data / "text"),
            "--hyp",
            str(hyp / "text"),
            "--task_activation",
            "asr,endp",
            "--out_json",
            str(tmp_path / "s.json"),
        ]
    )
    assert "time" not in result


@pytest.mark.skipif(
    not all(__import__("shutil").which(t) for t in ("espeak-ng", "sox")), reason="needs espeak-ng and sox"
)
def test_generator_turn_times_are_where_the_speech_is(tmp_path):
    """The synthetic corpus writes each turn's speech interval: loud inside, only the noise floor in the pauses."""
    import numpy as np
    import soundfile as sf

    from espnet2_ext.corpora.mini_tokenverse import mini_tokenverse as M
    from espnet2_ext.corpora.mini_tokenverse import mini_tokenverse_plan as P

    plan = next(p for p in P.plan_corpus(0, "debug")["test"] if len(p.turns) >= 2)
    bounds: list = []
    n = M.synthesize(plan.recipe(), tmp_path / "c.wav", bounds)
    x = sf.read(tmp_path / "c.wav", dtype="float64")[0] * 32768
    assert len(bounds) == len(plan.turns) and bounds[0][0] == pytest.approx(P.LEAD_S, abs=1e-3)
    assert bounds[-1][1] == pytest.approx(n / M.SAMPLE_RATE - P.TAIL_S, abs=1e-3)
    rms = lambda a, b: float(np.sqrt(np.mean(x[int(a * 16000) : int(b * 16000)] ** 2)))  # noqa: E731
    for (s, e), (s2, _) in zip(bounds, bounds[1:]):
        assert rms(s, e) > 20 * P.NOISE_STD and rms(e + 0.005, s2 - 0.005) < 2 * P.NOISE_STD  # speech vs. pause
    turns = M.ref_turns(plan, bounds)
    assert [t.speaker for t in turns] == [t.voice.speaker_id for t in plan.turns]
    assert turns_problem(turns, n / M.SAMPLE_RATE) is None


def test_rttm_and_ctm_load_with_standard_readers(tmp_path):
    """pyannote.database's RTTM loader reads our RTTM as it is; the CTM is the 5-column NIST layout (read here the way
    pyannote's loaders read their text formats: whitespace-separated columns with pandas)."""
    import pandas as pd
    from pyannote.core import Segment
    from pyannote.database.util import load_rttm

    tokens = ["▁hel", "lo", "▁ma", "ria", "[ENDP]", "[SCD]", "▁fine", "[ENDP]", "[SCD]", "▁bye", "[ENDP]"]
    times = [0.20, 0.26, 0.50, 0.58, 0.90, 1.40, 1.46, 1.80, 2.40, 2.46, 2.90]
    utts = [
        TimedUtterance("c1-0001", tokens, times, 0.02, 3.0, "call", 10.0),
        TimedUtterance("c1-0002", ["▁again"], [0.3], 0.02, 1.0, "call", 20.0),
    ]  # next chunk: same speaker
    write_time_outputs(tmp_path, utts, SPEC, subword=True, labels="alternate")
    ann = load_rttm(str(tmp_path / "rttm"))["call"]
    got = [(round(s.start, 3), round(s.end, 3), label) for s, _, label in ann.itertracks(yield_label=True)]
    assert got == [(10.2, 10.6, "A"), (11.46, 11.48, "B"), (12.46, 12.48, "A"), (20.3, 20.32, "A")]
    assert ann.get_timeline().extent() == Segment(10.2, 20.32)
    ctm = pd.read_csv(tmp_path / "ctm", sep=r"\s+", header=None, names=["uri", "channel", "start", "duration", "word"])
    assert list(ctm.word) == ["hello", "maria", "fine", "bye", "again"]
    assert list(ctm.start) == [10.2, 10.5, 11.46, 12.46, 20.3]
    assert list(ctm.duration) == pytest.approx([0.08, 0.1, 0.02, 0.02, 0.02])
    write_time_outputs(tmp_path / "seg", utts, SPEC, subword=True, labels="segment")
    assert sorted(load_rttm(str(tmp_path / "seg" / "rttm"))["call"].labels()) == ["seg000", "seg001", "seg002"]
