"""Biasing evaluation bookkeeping (reporting/biasing_choice, reporting/biasing_tables, bin/biasing_report): records,
the choice on dev, the report's targets; and the decode_stats.json (RTF) every decode dir now gets."""

import json

import pytest

from espnet2_ext.bin.biasing_report import main as cli
from espnet2_ext.common import DataError
from espnet2_ext.reporting import biasing_choice as C
from espnet2_ext.reporting import biasing_tables as T


def _score(tmp_path, name, wer, ner=None, u=None, seen=(0, 0), unseen=(0, 0), biasing=True):
    s = {
        "wer": wer,
        "scd_f1": 91.0,
        "endp_f1": 98.0,
        "ner_f1": ner,
        "lid_acc": 99.0,
        "ner_by_seen": {"seen_found": seen[0], "seen": seen[1], "unseen_found": unseen[0], "unseen": unseen[1]},
    }
    if biasing:
        s["biasing"] = {"u_wer": u, "b_wer": 10.0, "fa_rate": 5.0, "fa_per_100_utts": 2.0, "phrase_recall": 70.0}
    p = tmp_path / f"{name}.json"
    p.write_text(json.dumps(s))
    return p


def _config(tmp_path, seed):
    p = tmp_path / f"config{seed}.yaml"
    p.write_text(f"seed: {seed}\nbatch_size: 4\n")
    return p


def _record(
    tmp_path,
    rec_dir,
    *,
    seed=0,
    set="dev",
    kind="utt",
    n=100,
    mode="none",
    weight=None,
    stage="tune",
    rtf=None,
    **score,
):
    name = f"{stage}_{seed}_{set}_{kind}_{n}_{mode}_{weight}"
    argv = [
        "record",
        "--score",
        str(_score(tmp_path, name, **score)),
        "--config",
        str(_config(tmp_path, seed)),
        "--model",
        f"m{seed}",
        "--set",
        set,
        "--kind",
        kind,
        "--n",
        str(n),
        "--mode",
        mode,
        "--stage",
        stage,
        "--out",
        str(rec_dir / f"{name}.json"),
    ]
    if weight is not None:
        argv += ["--weight", str(weight)]
    if rtf is not None:
        stats = tmp_path / f"{name}_stats.json"
        stats.write_text(json.dumps({"wall_s": rtf * 10, "audio_s": 10.0, "rtf": rtf}))
        argv += ["--decode_stats", str(stats)]
    assert cli(argv) == 0


def test_choice_keeps_u_wer_within_half_a_point(tmp_path, capsys):
    rec = tmp_path / "records"
    _record(tmp_path, rec, set="dev", wer=12.0, ner=50.0, u=10.0)
    _record(tmp_path, rec, set="dev_partial", wer=14.0, u=14.0)
    # (mode, weight): dev NER F1, dev U-WER, dev_partial WER, dev_partial U-WER
    grid = {
        ("ungated", 1.0): (60, 10.2, 12, 14.1),
        ("ungated", 3.0): (70, 11.0, 9, 14.0),  # 3.0: U-WER +1.0
        ("gated", 1.0): (62, 10.1, 12, 14.2),
        ("gated", 2.0): (64, 10.5, 11, 14.5),
    }  # both within 0.5
    for (mode, w), (ner, u, pwer, pu) in grid.items():
        _record(tmp_path, rec, set="dev", mode=mode, weight=w, wer=12.0, ner=ner, u=u)
        _record(tmp_path, rec, set="dev_partial", mode=mode, weight=w, wer=pwer, u=pu)
    out = tmp_path / "chosen.json"
    assert cli(["choose", "--records", str(rec), "--tune_sets", "dev,dev_partial", "--out", str(out)]) == 0
    # objectives (100 - NER F1 + dev_partial WER): ungated 1: 52, ungated 3: 39 (not allowed), gated 1: 50,
    # gated 2: 47 -> gated 2; per mode: ungated 1
    assert capsys.readouterr().out.split("\n")[:2] == ["gated 2", "ungated 1"]
    chosen = json.loads(out.read_text())
    assert chosen["guard_met"] and chosen["per_mode"] == {"gated": 2.0, "ungated": 1.0}
    row = next(r for r in chosen["rows"] if r["mode"] == "ungated" and r["weight"] == 3.0)
    assert not row["allowed"] and row["per_set"]["dev"]["u_wer_rise"] == pytest.approx(1.0)
    assert "**chosen**" in chosen["table"]


def test_choice_without_an_allowed_setting_is_flagged():
    rows = [
        {"mode": "gated", "weight": 2.0, "allowed": False, "objective": 40.0, "per_set": {}},
        {"mode": "gated", "weight": 1.0, "allowed": False, "objective": 40.0, "per_set": {}},
    ]
    assert C.choose(rows) == {"mode": "gated", "weight": 1.0, "per_mode": {"gated": 1.0}, "guard_met": False}


def _test_records(tmp_path, rec):
    for seed, (ner, unseen, pwer, u, ner1000, rtf) in enumerate(
        [(62, 25, 9.0, 10.3, 56, 0.26), (58, 24, 11.0, 10.4, 54, 0.24), (63, 26, 9.5, 10.9, 57, 0.30)]
    ):
        for n in (100, 1000):
            _record(
                tmp_path,
                rec,
                seed=seed,
                set="test",
                n=n,
                stage="test",
                wer=14.0 + seed,
                ner=42.0,
                u=10.0,
                seen=(36, 50),
                unseen=(0, 50),
                rtf=0.2,
            )
            _record(tmp_path, rec, seed=seed, set="test_partial", n=n, stage="test", wer=13.0, u=13.0)
        _record(
            tmp_path,
            rec,
            seed=seed,
            set="test",
            mode="gated",
            weight=2,
            stage="test",
            wer=12.0,
            ner=ner,
            u=u,
            seen=(40, 50),
            unseen=(unseen, 50),
            rtf=0.21,
        )
        _record(
            tmp_path,
            rec,
            seed=seed,
            set="test",
            mode="gated",
            weight=2,
            n=1000,
            stage="test",
            wer=12.0,
            ner=ner1000,
            u=u,
            rtf=rtf,
        )
        _record(tmp_path, rec, seed=seed, set="test_partial", mode="gated", weight=2, stage="test", wer=pwer, u=9.0)


def test_targets_table_verdicts(tmp_path):
    rec = tmp_path / "records"
    _test_records(tmp_path, rec)
    table = T.targets_table(C.load_records(rec), "gated").splitlines()
    row = {line.split(" | ")[0].lstrip("| "): line for line in table[2:]}
    assert "61.00 ± 2.65" in row["NER F1"] and "met (2/3 seeds)" in row["NER F1"]
    assert (
        "50.00 ± 2.00" in row["unseen-entity exact recall (%)"]
        and "met (2/3 seeds)" in row["unseen-entity exact recall (%)"]
    )
    assert "9.83 ± 1.04" in row["test_partial WER"] and "met (2/3 seeds)" in row["test_partial WER"]
    assert "missed by 0.03" in row["U-WER rise over no biasing (absolute)"]  # rises 0.3, 0.4, 0.9: mean 0.53
    assert "met (2/3 seeds)" in row["NER F1 at N = 1000"]
    assert "0: 1.30, 1: 1.20, 2: 1.50" in row["decoding time, 1000-phrase lists / none (RTF ratio)"]


def test_report_has_every_section(tmp_path):
    rec = tmp_path / "records"
    _test_records(tmp_path, rec)
    chosen = {"mode": "gated", "weight": 2.0, "per_mode": {"gated": 2.0, "ungated": 1.0}, "guard_met": True}
    chosen_path = tmp_path / "chosen.json"
    chosen_path.write_text(json.dumps({**chosen, "table": "| tuning |"}))
    out = tmp_path / "RESULTS_biasing.md"
    assert cli(["table", "--records", str(rec), "--chosen", str(chosen_path), "--out", str(out)]) == 0
    text = out.read_text()
    for head in ("## Choice on dev", "## Targets", "## Without lists, every seed", "## Every list kind"):
        assert head in text
    assert "| 1 | m1 | 15.00 |" in text and "WER <= 15 met; SCD F1 >= 90 met" in text
    assert "WER <= 15 missed by 1.00" in text  # seed 2: 16.00
    grid = text.split("## Every list kind")[1]
    assert "| test | utt | 100 | gated | 2.00 | 3 | 12.00 ± 0.00 |" in grid


def test_bad_records_are_one_line(tmp_path, capsys):
    score = _score(tmp_path, "s", wer=10.0, biasing=False)
    cfg = _config(tmp_path, 0)
    base = [
        "record",
        "--score",
        str(score),
        "--config",
        str(cfg),
        "--model",
        "m",
        "--set",
        "test",
        "--kind",
        "utt",
        "--n",
        "100",
        "--stage",
        "test",
        "--out",
        str(tmp_path / "r.json"),
    ]
    assert cli(base + ["--mode", "gated", "--weight", "2"]) == 1  # scored without --utt2biasing
    assert cli(base + ["--mode", "gated"]) == 1
    (tmp_path / "bad.yaml").write_text("seed: abc\n")
    assert cli(base[:4] + [str(tmp_path / "bad.yaml")] + base[5:] + ["--mode", "none"]) == 1
    assert cli(["choose", "--records", str(tmp_path / "none"), "--tune_sets", "dev", "--out", str(tmp_path / "c")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 4 and all(e.startswith("biasing_report: error") for e in err)
    assert "--utt2biasing" in err[0] and "--weight" in err[1] and "seed" in err[2]
    assert not (tmp_path / "r.json").exists()


def test_decode_stats_rtf_from_the_data_dir(tmp_path):
    from espnet2_ext.bin.decode_activation_sets import decode_stats
    from espnet2_ext.data.kaldi_dir import Utterance, write_data_dir

    utts = [
        Utterance(f"a-{i}", "a", "[EN] hi", "en", ("asr", "lid"), "x.wav", duration=d) for i, d in enumerate((2.0, 3.0))
    ]
    d = write_data_dir(utts, tmp_path / "test")
    assert decode_stats(str(d), 1.0) == {"wall_s": 1.0, "audio_s": 5.0, "rtf": 0.2}
    assert decode_stats(str(tmp_path / "missing"), 1.0) == {"wall_s": 1.0, "audio_s": None, "rtf": None}


def test_training_seed_default(tmp_path):
    (tmp_path / "c.yaml").write_text("batch_size: 2\n")
    assert C.training_seed(tmp_path / "c.yaml") == 0
    with pytest.raises(DataError, match="config.yaml"):
        C.training_seed(tmp_path / "nope.yaml")


def test_two_models_with_one_training_seed_are_refused(tmp_path):
    rec = tmp_path / "records"
    _record(tmp_path, rec, seed=0, set="test", stage="test", wer=10.0)
    (rec / "copy.json").write_text(json.dumps({**json.loads(next(rec.glob("*.json")).read_text()), "model": "other"}))
    with pytest.raises(DataError, match="trained with seed 0"):
        C.load_records(rec)
