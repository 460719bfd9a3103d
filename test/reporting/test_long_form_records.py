"""run_long_form.sh keeps its scores and measurements as records (results/long_form*/, reporting/long_form.py
write_records through results_tables --long_form): an exp dir laid out as the script leaves it gives back the
committed records and, from them, the committed RESULTS_long_form*.md byte for byte."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from espnet2_ext.bin import results_tables
from espnet2_ext.common import DataError

RECIPE = Path(__file__).resolve().parents[2] / "egs2" / "mini_tokenverse" / "asr1"
COMMITTED = RECIPE / "results" / "long_form"
RULES = ("none", "scd", "context")


def _as_exp(records: Path, exp: Path, data: Path) -> None:
    """The exp dir run_long_form.sh would have left for those records (interpreter at a machine path, the decode's
    long_form.json under long/), and data dirs whose utt2dur give the recorded sizes."""
    for sets_json in records.rglob("sets.json"):
        for s, size in json.loads(sets_json.read_text()).items():
            d = data / s
            d.mkdir(parents=True, exist_ok=True)
            n, seconds = size["recordings"], size["audio_min"] * 60
            (d / "utt2dur").write_text("".join(f"r{i} {seconds / n}\n" for i in range(n)))
            src = sets_json.parent / s
            dst = exp / sets_json.parent.relative_to(records) / s
            (dst / "long").mkdir(parents=True)
            for f in src.glob("*.json"):
                if f.name == "long_form.json":
                    shutil.copy(f, dst / "long" / f.name)
                elif f.name.startswith("run_long"):
                    run = json.loads(f.read_text())
                    run["command"][0] = "/home/someone/tools/venv/bin/python3"
                    (dst / f.name).write_text(json.dumps(run, indent=1) + "\n")
                else:
                    shutil.copy(f, dst / f.name)


@pytest.fixture
def recipe(tmp_path):
    r = tmp_path / "asr1"
    shutil.copytree(RECIPE / "results", r / "results")
    _as_exp(COMMITTED, tmp_path / "exp", tmp_path / "data")
    shutil.rmtree(r / "results" / "long_form")
    return r


def test_records_from_the_exp_dir_regenerate_the_committed_files(recipe, tmp_path):
    common = ["--recipe", str(recipe), "--long_form", str(tmp_path / "exp"), "--data_root", str(tmp_path / "data")]
    out = tmp_path / "out"
    assert results_tables.main(common + ["--long_form_sets", "lf_conv lf_10min lf_60min", "--out_dir", str(out)]) == 0
    assert not (out / "RESULTS_long_form_dev.md").exists()  # stage 5 not yet run
    assert results_tables.main(common + ["--long_form_dev_rules", " ".join(RULES), "--out_dir", str(out)]) == 0
    written = sorted(p.relative_to(recipe / "results" / "long_form") for p in (recipe / "results/long_form").rglob("*"))
    assert written == sorted(p.relative_to(COMMITTED) for p in COMMITTED.rglob("*"))
    for p in written:
        if (COMMITTED / p).is_file():
            assert (recipe / "results" / "long_form" / p).read_bytes() == (COMMITTED / p).read_bytes(), p
    for name in ("RESULTS_long_form.md", "RESULTS_long_form_dev.md"):
        assert (out / name).read_text() == (RECIPE / name).read_text(), name


def test_a_set_without_scores_is_named(recipe, tmp_path):
    (tmp_path / "exp" / "lf_conv" / "score_long.json").unlink()
    argv = ["--recipe", str(recipe), "--long_form", str(tmp_path / "exp"), "--data_root", str(tmp_path / "data")]
    with pytest.raises(DataError, match="lf_conv/score_long.json: missing"):
        results_tables.run(argv + ["--long_form_sets", "lf_conv"])


def test_the_sets_table_names_the_cut_rule_the_decode_ran_with(tmp_path):
    from espnet2_ext.reporting.long_form import sets_table

    exp = tmp_path / "exp"
    _as_exp(COMMITTED, exp, tmp_path / "data")
    shutil.copy(COMMITTED / "sets.json", exp / "sets.json")  # the sizes, as write_records keeps them
    assert "--cut_rule context)" in sets_table(exp)  # the committed decodes
    for run_json in exp.glob("*/run_long.json"):
        run = json.loads(run_json.read_text())
        run["command"][run["command"].index("--cut_rule") + 1] = "scd"
        run_json.write_text(json.dumps(run))
    assert "--cut_rule scd)" in sets_table(exp)
