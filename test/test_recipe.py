"""The mini recipe end to end with the debug config (tiny corpus, tiny XLSR stand-in, 1 epoch), every stage."""
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def recipe_run(tmp_path_factory):
    # A copy of egs2/ (the recipe writes data/, dump/, exp/ into its own dir); the venv is this interpreter's.
    root = tmp_path_factory.mktemp("recipe")
    shutil.copytree(REPO / "egs2", root / "egs2", symlinks=True,
                    ignore=shutil.ignore_patterns("data", "dump", "exp", "downloads", "RESULTS.md"))
    recipe = root / "egs2" / "mini_tokenverse" / "asr1"
    env = {**os.environ, "ESPNET2_EXT_VENV": sys.prefix}
    cmd = ["./run.sh", "--data_opts", "--size debug", "--asr_config", "conf/train_debug.yaml",
           "--activation_sets", "asr,scd,endp,ner,lid asr,lid", "--nbpe", "60"]
    r = subprocess.run(cmd, cwd=recipe, env=env, capture_output=True, text=True, timeout=1500)
    return recipe, r


def test_every_stage_ran(recipe_run):
    recipe, r = recipe_run
    assert r.returncode == 0, (r.stdout[-3000:], r.stderr[-3000:])
    for n in range(1, 10):
        assert f"=== Stage {n}:" in r.stdout


def test_results_and_artifacts(recipe_run):
    recipe, r = recipe_run
    assert r.returncode == 0
    results = (recipe / "RESULTS.md").read_text()
    assert "corpus statistics" in results  # the Table-I-like corpus table is prepended
    assert "| train_debug | test |" in results
    score = json.loads((recipe / "exp/asr_train_debug/decode_asr+scd+endp+ner+lid/test/score.json").read_text())
    assert set(score) >= {"wer", "scd_f1", "endp_f1", "ner_f1", "lid_acc", "itt"}
    partial = json.loads((recipe / "exp/asr_train_debug/decode_asr+lid/test_partial/score.json").read_text())
    assert partial["itt"] == 0 and partial["scd_f1"] is None  # constrained decoding, task inactive
    with zipfile.ZipFile(recipe / "exp/asr_train_debug/model.zip") as z:
        assert any(n.endswith("config.yaml") for n in z.namelist())
    assert (recipe / "exp/asr_train_debug/hub_upload/README.md").exists()
    assert list((recipe / "exp/asr_train_debug/task_vectors").glob("*.png")), r.stdout[-3000:]


def test_rerunning_a_finished_stage_is_safe(recipe_run):
    recipe, r = recipe_run
    assert r.returncode == 0
    env = {**os.environ, "ESPNET2_EXT_VENV": sys.prefix}
    before = (recipe / "exp/asr_train_debug/decode_asr+lid/test/1best_recog/text").read_text()
    r2 = subprocess.run(["./run.sh", "--stage", "6", "--stop_stage", "6", "--asr_config", "conf/train_debug.yaml",
                         "--activation_sets", "asr,lid", "--nbpe", "60"], cwd=recipe, env=env,
                        capture_output=True, text=True, timeout=600)
    assert r2.returncode == 0, r2.stderr[-2000:]
    assert "already decoded" in r2.stdout
    assert (recipe / "exp/asr_train_debug/decode_asr+lid/test/1best_recog/text").read_text() == before
