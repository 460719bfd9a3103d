"""The mini recipe end to end with the debug config (tiny corpus, tiny XLSR stand-in, 1 epoch), every stage."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]


DEBUG_OPTS = [
    "--data_opts",
    "--size debug",
    "--train_set",
    "train",
    "--asr_config",
    "conf/train_debug.yaml",
    "--activation_sets",
    "asr,scd,endp,ner,lid asr,lid",
    "--nbpe",
    "60",
]
ENV = {**os.environ, "ESPNET2_EXT_VENV": sys.prefix}  # the venv is this interpreter's


def copy_recipe(root: Path) -> Path:
    """A copy of egs2/ without outputs (the recipe writes data/, dump/, exp/, downloads/ into its own dir)."""
    shutil.copytree(
        REPO / "egs2",
        root / "egs2",
        symlinks=True,
        ignore=shutil.ignore_patterns("data", "dump", "exp", "exp_grid", "downloads", "RESULTS.md"),
    )
    return root / "egs2" / "mini_tokenverse" / "asr1"


@pytest.fixture(scope="module")
def recipe_run(tmp_path_factory):
    recipe = copy_recipe(tmp_path_factory.mktemp("recipe"))
    r = subprocess.run(["./run.sh"] + DEBUG_OPTS, cwd=recipe, env=ENV, capture_output=True, text=True, timeout=1500)
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
    env = ENV
    before = (recipe / "exp/asr_train_debug/decode_asr+lid/test/1best_recog/text").read_text()
    r2 = subprocess.run(
        [
            "./run.sh",
            "--stage",
            "6",
            "--stop_stage",
            "6",
            "--asr_config",
            "conf/train_debug.yaml",
            "--activation_sets",
            "asr,lid",
            "--nbpe",
            "60",
        ],
        cwd=recipe,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r2.returncode == 0, r2.stderr[-2000:]
    assert "already decoded" in r2.stdout
    assert (recipe / "exp/asr_train_debug/decode_asr+lid/test/1best_recog/text").read_text() == before


# ---- every stage restarts after a kill ------------------------------------------------------------------------
# When the second run SIGKILLs each stage (its whole process group): part-way through the stage's work, i.e. once
# a path it writes exists (plus a delay), or after a delay for the short stages.
EXP = "exp/asr_train_debug"
KILL_WHEN = {
    1: ("downloads/mini_tokenverse/wav/*", 0.5),  # speech synthesis under way
    2: ("dump/raw/test/wav.scp", 0.0),  # one data dir of four formatted
    3: (None, 0.5),
    4: ("exp/asr_stats_train_bpe60.log", 8.0),  # ESPnet's stats collection running
    5: (f"{EXP}/train.log:1epoch started", 2.0),  # mid-epoch
    6: (f"{EXP}/decode_*/test/1best_recog/text", 0.0),  # one of four decode dirs written
    7: (f"{EXP}/decode_*/test/score.json", 0.0),  # scoring under way
    8: (None, 2.0),
    9: (None, 1.0),
}


def _triggered(recipe: Path, what) -> bool:
    if what is None:
        return True
    if ":" in what:
        path, text = what.split(":", 1)
        return (recipe / path).exists() and text in (recipe / path).read_text(errors="replace")
    return bool(list(recipe.glob(what)))


@pytest.fixture(scope="module")
def killed_run(recipe_run, tmp_path_factory):
    """The same recipe again, stage by stage: each stage is killed part-way and then simply re-run."""
    recipe = copy_recipe(tmp_path_factory.mktemp("recipe_killed"))
    killed = []
    for stage in range(1, 10):
        cmd = ["./run.sh", "--stage", str(stage), "--stop_stage", str(stage)] + DEBUG_OPTS
        proc = subprocess.Popen(
            cmd, cwd=recipe, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        what, delay = KILL_WHEN[stage]
        deadline = time.time() + 600
        while proc.poll() is None and not _triggered(recipe, what) and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(delay)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            killed.append(stage)
        proc.wait()
        r = subprocess.run(cmd, cwd=recipe, env=ENV, capture_output=True, text=True, timeout=1500)
        assert r.returncode == 0, (stage, r.stdout[-3000:], r.stderr[-3000:])
    return recipe, killed


def _files(recipe: Path, pattern: str):
    return sorted(p.relative_to(recipe) for p in recipe.glob(pattern) if p.is_file())


def _text(recipe: Path, rel: Path) -> str:
    return (recipe / rel).read_text(encoding="utf-8").replace(str(recipe), "<recipe>")


def test_every_stage_restarts_after_a_kill(recipe_run, killed_run):
    (clean, r), (again, killed) = recipe_run, killed_run
    assert r.returncode == 0
    assert set(killed) >= {1, 2, 4, 5, 6, 7}, f"stages that finished before their kill point: {killed}"
    assert not list(again.rglob("*.tmp*")) and not list(again.rglob(".*partial*")), "temporary files left behind"
    # data prep, formatting, tokenizer, shape files, decoding, scoring: the same files with the same content
    for pattern in (
        "data/*/*",
        "dump/raw/*/*",
        "data/token_list/bpe60/*",
        "exp/asr_stats_train_bpe60/*/*shape",
        f"{EXP}/decode_*/*/1best_recog/text",
        f"{EXP}/decode_*/*/score.json",
    ):
        files = _files(clean, pattern)
        assert files and files == _files(again, pattern), pattern
        for rel in files:
            if rel.suffix == ".model":  # sentencepiece's binary model
                assert (clean / rel).read_bytes() == (again / rel).read_bytes(), rel
            else:
                assert _text(clean, rel) == _text(again, rel), rel
    wavs = _files(clean, "downloads/mini_tokenverse/wav/**/*.wav")
    assert wavs and wavs == _files(again, "downloads/mini_tokenverse/wav/**/*.wav")
    assert all((clean / w).read_bytes() == (again / w).read_bytes() for w in wavs)
    # training: the same model (the debug run is one epoch, so the kill restarts it from scratch)
    import torch

    a = torch.load(clean / EXP / "valid.loss.best.pth", map_location="cpu")
    b = torch.load(again / EXP / "valid.loss.best.pth", map_location="cpu")
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=1e-4, atol=1e-5, msg=k)
    # report, packed model and upload folder
    strip = lambda t: [ln for ln in t.splitlines() if not ln.startswith("- made by")]  # noqa: E731
    assert strip(_text(clean, Path("RESULTS.md"))) == strip(_text(again, Path("RESULTS.md")))
    with zipfile.ZipFile(clean / EXP / "model.zip") as za, zipfile.ZipFile(again / EXP / "model.zip") as zb:
        assert sorted(za.namelist()) == sorted(zb.namelist())
        assert zb.testzip() is None
    readme = Path(EXP) / "hub_upload/README.md"  # the model card quotes RESULTS.md
    assert strip(_text(clean, readme).replace("- made by", "\n- made by")) == strip(
        _text(again, readme).replace("- made by", "\n- made by")
    )


def test_multi_gpu_training_without_a_job_script_is_a_clear_error(recipe_run):
    recipe, _ = recipe_run
    r = subprocess.run(
        ["./run.sh", "--stage", "5", "--stop_stage", "5", "--ngpu", "4"] + DEBUG_OPTS,
        cwd=recipe,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode != 0
    assert "set --cuda_cmd to a Kaldi-style job script" in r.stdout + r.stderr


def test_extending_the_trained_model_runs_from_the_recipe(recipe_run, tmp_path):
    """run_extend.sh (#15) on the debug model: extension data + replay, extend_model, training, decoding of old and
    new test sets, scoring, RESULTS_extend.md; in a copy, so the other tests' exp/ stays as the main run left it."""
    recipe, r = recipe_run
    assert r.returncode == 0
    shutil.copytree(recipe.parents[1], tmp_path / "egs2", symlinks=True)  # relative links (path.sh, ...) kept
    ext = tmp_path / "egs2" / "mini_tokenverse" / "asr1"
    train_tasks = (ext / "dump/raw/train/utt2tasks").read_text()
    r = subprocess.run(
        [
            "./run_extend.sh",
            "--data_opts",
            "--size debug",
            "--train_set",
            "train",
            "--asr_config",
            "conf/train_debug.yaml",
            "--replay_per_lang",
            "2",
            "--replay_dev_per_lang",
            "1",
        ],
        cwd=ext,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=2400,  # seven decodes and scorings, each its own model load: slow on a shared 2-core machine
    )
    assert r.returncode == 0, (r.stdout[-3000:], r.stderr[-3000:])
    replay = (ext / "dump/raw/replay_train/utt2tasks").read_text().splitlines()
    assert len(replay) == 2 * 4 and all(line.split()[1:] == ["asr", "scd", "endp", "ner", "lid"] for line in replay)
    assert (ext / "dump/raw/train/utt2tasks").read_text() == train_tasks  # the replay's source is not modified
    exp = ext / "exp/asr_train_debug_ext"
    conf = yaml.safe_load((exp / "extend_config.yaml").read_text())
    assert conf["tokenverse_conf"]["tasks"][-1] == "qst" and conf["tokenverse_conf"]["languages"][-1] == "it"
    assert (exp / "valid.loss.best.pth").exists()
    qst = json.loads(
        (exp / "decode_of_asr_train_debug_ext_valid.loss.best/decode_asr+qst/qst_test/score.json").read_text()
    )
    assert "qst_f1" in qst
    results = (ext / "RESULTS_extend.md").read_text()
    for model in (
        "asr_train_debug_valid.loss.best",
        "asr_train_debug_ext_extended",
        "asr_train_debug_ext_valid.loss.best",
    ):
        assert f"| {model} |" in results
