"""RESULTS*.md are generated from the records in results/: the committed files are what the generator writes (a hand
edit or a stale record fails here), the loader names the file and field it rejects, and an exp dir becomes a record
that the tables show."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml

from espnet2_ext.common import DataError
from espnet2_ext.reporting.records import SCHEMA, dump_record, load_record, load_records, record_from_exp
from espnet2_ext.reporting.results_tables import generate, write_all

RECIPE = Path(__file__).resolve().parents[2] / "egs2" / "mini_tokenverse" / "asr1"
MAX_LINES = 200


@pytest.fixture(scope="module")
def generated():
    return generate(RECIPE)


def test_every_results_file_is_generated_byte_for_byte(generated):
    committed = sorted(p.name for p in RECIPE.glob("RESULTS*.md"))
    assert sorted(generated) == committed, "a RESULTS file without records, or records without their RESULTS file"
    for name, text in generated.items():
        assert (RECIPE / name).read_text(encoding="utf-8") == text, (
            f"{name} differs from what its records give: run python -m espnet2_ext.bin.results_tables "
            f"--recipe egs2/mini_tokenverse/asr1 (and edit the records, never the file)"
        )


def test_a_relative_recipe_path_gives_the_same_tables(generated, monkeypatch):
    monkeypatch.chdir(RECIPE)  # tokenverse.sh's stage 7 runs in the recipe and passes "."
    assert generate(Path("."))["RESULTS.md"] == generated["RESULTS.md"]


def test_results_files_are_short(generated):
    for name, text in generated.items():
        assert len(text.splitlines()) <= MAX_LINES, f"{name}: {len(text.splitlines())} lines"


def test_the_main_command_and_its_seeds_are_in_results_md(generated):
    text = generated["RESULTS.md"]
    for model in ("train", "train_seed1", "train_seed2"):
        assert f"| `{model}` | [conf/train.yaml](conf/train.yaml)" in text
    assert "| test | wer | ≤ 15 | 14.02 | 16.84 | 15.38 | 15.41 ± 1.41 | missed (1 of 3 seeds) |" in text
    assert "| train | test | asr+scd+endp+ner+lid | 14.02 | 89.69 | 98.11 | 40.54 | 100.00 |" in text


def test_grid_verdicts_come_from_the_grid_records(generated):
    grid = generated["RESULTS_grid.md"]
    assert "- **(a)** TokenVerse++ with partial data has lower test WER" in grid
    assert "dev-best" in grid and "22.38 ± 1.88 (n=3)" in grid
    assert len(load_records(RECIPE / "results", "grid")) == 30


def test_records_are_small_and_carry_provenance():
    for rec in load_records(RECIPE / "results"):
        assert rec.path.stat().st_size < 40_000, rec.path
        assert rec.source and rec.config["path"] and rec.checkpoint["model_file"], rec.path
        assert rec.config["sha256"] or rec.config["inline"], f"{rec.path}: config neither hashed nor inline"


# ---- loader errors --------------------------------------------------------------------------------------------
def _good() -> dict:
    return {
        "schema": SCHEMA,
        "model": "m",
        "kind": "run",
        "source": "test",
        "commit": "abc1234",
        "date": "2026-12-07",
        "config": {"path": "conf/train.yaml", "sha256": "0" * 64, "inline": None},
        "train_set": "train",
        "seed": 0,
        "strategy": "per_task",
        "injection": "feature_encoder",
        "commands": {"train": "./run.sh", "decode": None},
        "parameters": 10,
        "checkpoint": {"model_file": "valid.loss.ave.pth", "decoded": None},
        "scores": {"test": {"asr+lid": {"wer": 12.5, "lid_acc": 100.0, "itt": 0}}},
    }


@pytest.mark.parametrize(
    "edit, field",
    [
        (lambda d: d.update(schema="x"), "'schema'"),
        (lambda d: d.update(kind="other"), "'kind'"),
        (lambda d: d.update(seed="0"), "'seed'"),
        (lambda d: d["commands"].update(train=3), "'commands.train'"),
        (lambda d: d.update(checkpoint={}), "'checkpoint'"),
        (lambda d: d.update(scores={}), "'scores'"),
        (lambda d: d["scores"]["test"].update({"lid+asr": {"wer": 1.0}}), "'scores.test.lid+asr'"),
        (lambda d: d["scores"]["test"]["asr+lid"].update(wer="12"), "'scores.test.asr+lid.wer'"),
        (lambda d: d.update(model="other"), "'model'"),
    ],
)
def test_loader_names_file_and_field(tmp_path, edit, field):
    data = copy.deepcopy(_good())
    edit(data)
    path = tmp_path / "m.json"
    path.write_text(json.dumps(data))
    with pytest.raises(DataError) as e:
        load_record(path)
    msg = str(e.value)
    assert "\n" not in msg and str(path) in msg and field in msg


def test_loader_rejects_broken_json(tmp_path):
    path = tmp_path / "m.json"
    path.write_text("{")
    with pytest.raises(DataError, match="m.json: not valid JSON"):
        load_record(path)


# ---- exp dir -> record -> tables ------------------------------------------------------------------------------
def _score(act, wer):
    return {"wer": wer, "scd_f1": None, "endp_f1": None, "ner_f1": None, "lid_acc": 100.0 if "lid" in act else None,
            "itt": 0, "per_language": {"en": {"wer": wer, "lid_acc": None, "itt": 0, "n_utts": 2}},
            "counts": {"n_utts": 2}, "task_activation": act.split("+")}  # fmt: skip


def test_record_from_exp_then_results_md(tmp_path):
    recipe = tmp_path / "recipe"
    (recipe / "conf").mkdir(parents=True)
    (recipe / "conf" / "train_tiny.yaml").write_text("seed: 0\n")
    exp = recipe / "exp" / "asr_tiny"
    exp.mkdir(parents=True)
    conf = {
        "config": "conf/train_tiny.yaml",
        "seed": 3,
        "train_data_path_and_name_and_type": [["dump/raw/train_x/wav.scp", "speech", "sound"]],
        "frontend_conf": {"task_vector_strategy": "per_task", "task_vector_injection": "feature_encoder"},
    }
    (exp / "config.yaml").write_text(yaml.safe_dump(conf))
    (exp / "train.log").write_text(
        "warning\n/abs/venv/bin/python /abs/espnet2_ext/bin/asr_train.py --config conf/train_tiny.yaml --seed 3\n"
        "    Total Number of model parameters: 1.41 M\n"
    )
    for act, wer in (("asr", 20.0), ("asr+lid", 10.0)):
        d = exp / f"decode_{act}" / "test"
        d.mkdir(parents=True)
        (d / "score.json").write_text(json.dumps(_score(act, wer)))
    rec = record_from_exp(exp, "run", recipe, commit="abc1234", date="2026-12-07", commands={"decode": "stage 6"})
    assert rec["model"] == "tiny" and rec["seed"] == 3 and rec["train_set"] == "train_x"
    assert rec["commands"] == {
        "train": "python -m espnet2_ext.bin.asr_train --config conf/train_tiny.yaml --seed 3",
        "decode": "stage 6",
    }
    assert rec["parameters"] == "1.41 M" and rec["config"]["sha256"] and rec["config"]["inline"] is None
    assert list(rec["scores"]["test"]) == ["asr", "asr+lid"]
    assert "counts" not in rec["scores"]["test"]["asr"]
    path = dump_record(rec, recipe / "results")
    assert load_record(path).model == "tiny"
    out = tmp_path / "out"
    written = write_all(recipe, out)
    assert [p.name for p in written] == ["RESULTS.md"]
    assert "| tiny | test | asr+lid | 10.00 | - | - | - | 100.00 |" in (out / "RESULTS.md").read_text()
    assert "| `tiny` | [conf/train_tiny.yaml](conf/train_tiny.yaml)" in (out / "RESULTS.md").read_text()


def test_cli_writes_the_record_then_the_tables(tmp_path):
    """What stage 7 of tokenverse.sh runs: the decodes under --decode_root, RESULTS.md to --results_md."""
    from espnet2_ext.bin.results_tables import run

    recipe = tmp_path / "recipe"
    (recipe / "conf").mkdir(parents=True)
    (recipe / "conf" / "train_tiny.yaml").write_text("seed: 0\n")
    exp = recipe / "exp" / "asr_tiny"
    exp.mkdir(parents=True)
    conf = {
        "config": "conf/train_tiny.yaml",
        "seed": 0,
        "train_data_path_and_name_and_type": [["dump/raw/train_x/wav.scp", "speech", "sound"]],
    }
    (exp / "config.yaml").write_text(yaml.safe_dump(conf))
    decodes = recipe / "exp" / "decodes"
    for test_set in ("test", "dev"):
        d = decodes / "decode_asr+lid" / test_set
        d.mkdir(parents=True)
        (d / "score.json").write_text(json.dumps(_score("asr+lid", 10.0)))
    stats = tmp_path / "corpus_stats.md"
    stats.write_text("# tiny corpus statistics\n\n| split |\n|---|\n| test |\n")
    run(
        ["--recipe", str(recipe), "--results_md", str(recipe / "RESULTS_main.md"), "--record", str(exp),
         "--decode_root", str(decodes), "--model", "tiny_s0", "--test_sets", "test", "--commit", "abc1234",
         "--train_command", "tokenverse.sh --stage 5", "--corpus_stats", str(stats)]
    )  # fmt: skip
    rec = load_record(recipe / "results" / "tiny_s0.json")
    assert list(rec.scores) == ["test"] and rec.commands["train"] == "tokenverse.sh --stage 5"
    assert rec.strategy == "none" and set(rec.environment) >= {"python", "torch"}
    text = (recipe / "RESULTS_main.md").read_text()
    assert not (recipe / "RESULTS.md").exists()
    assert "## tiny corpus statistics" in text and "| tiny_s0 | test | asr+lid |" in text
