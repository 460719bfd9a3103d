"""scoring/seed_table + bin/seed_table: before/after over seeds, verdicts against the before range and the
seed noise."""

import json
import statistics

import pytest

from espnet2_ext.bin.seed_table import main
from espnet2_ext.common import DataError
from espnet2_ext.reporting.seed_table import mean_std, noise_verdict, parse_column, seed_table, verdict


def test_verdict_is_the_before_range():
    assert verdict([34.4, 37.7, 36.6], 36.7) == "within"
    assert verdict([34.4, 37.7], 34.4) == "within"  # the ends count
    assert verdict([86.67, 100.0], 83.33) == "outside: below by 3.34"
    assert verdict([1.0, 2.0], 2.5) == "outside: above by 0.50"
    assert verdict([], 1.0) == "-" and verdict([1.0], None) == "-"


def test_noise_verdict_is_the_grid_rule():
    """A difference within the larger of the two seed spreads is no finding; outside the range can still be noise."""
    before, after = [97.0, 98.4, 97.5], [96.9, 96.95, 97.0]  # after mean below the range, diff 0.68 < std 0.71
    assert verdict(before, statistics.mean(after)).startswith("outside: below")
    assert noise_verdict(before, after) == "within seed noise"
    assert noise_verdict([10.0, 11.0], [20.0, 21.0]) == "differs by +10.00 (> max std 0.71)"
    assert noise_verdict([10.0], [20.0, 21.0]) == "-"  # n < 2: no spread to compare with


def test_table_from_score_files_and_quoted_numbers(tmp_path):
    for i, (wer, lid) in enumerate(((36.5, 91.67), (36.5, 81.67), (37.1, 76.67))):
        (tmp_path / f"s{i}.json").write_text(json.dumps({"wer": wer, "lid_acc": lid, "model": "m", "n": 3}))
    before = [parse_column("b0=wer:37.66,lid_acc:100"), parse_column("b1=wer:34.41,lid_acc:86.67")]
    after = [parse_column(f"e{i}={tmp_path / f's{i}.json'}") for i in range(3)]
    lines = seed_table(["wer", "lid_acc", "ner_f1"], before, after, delta=before[0]).splitlines()
    assert lines[0].startswith(
        "| metric | b0 | b1 | before mean ± std | before range | e0 | e1 | e2 | after mean ± std"
    )
    wer = lines[2].split(" | ")
    m, s = mean_std([36.5, 36.5, 37.1])
    assert f"{m:.2f} ± {s:.2f}" in wer and "[34.41, 37.66]" in wer and wer[-2] == "within"
    assert wer[-1].strip(" |") == "within seed noise"
    lid = lines[3]
    assert "83.34" in lid and "outside: below by 3.33" in lid and f"{83.34 - 100:+.2f}" in lid
    lid_diff = statistics.mean([91.67, 81.67, 76.67]) - statistics.mean([100.0, 86.67])  # -9.99 > std 9.43
    assert lid.endswith(f"| differs by {lid_diff:+.2f} (> max std {statistics.stdev([100.0, 86.67]):.2f}) |")
    assert lines[4].endswith("| - | - | - | - | - |")  # a metric nobody has: dashes, no verdict


def test_bad_columns_are_one_line_errors(tmp_path, capsys):
    with pytest.raises(DataError, match="give NAME=score.json"):
        parse_column("no-equals-sign")
    with pytest.raises(DataError, match="expected metric:number"):
        parse_column("x=wer:abc")
    assert main(["--metrics", "wer", "--before", f"x={tmp_path / 'missing.json'}"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("seed_table: ") and "no such score file" in err and len(err.strip().splitlines()) == 1
