"""run_grid.sh's wiring, with run.sh replaced by a recorder that writes what the real stages leave behind
(config.yaml at training, score.json per activation set and test set at decoding): which cells run, in which order,
with which seeds/activation sets, that scored cells are skipped on a re-run, and that each scored cell gets a record
from which RESULTS_grid.md is generated.
The real stages are covered by test_recipe.py; training a grid for real takes hours."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ENV_VENV = {"ESPNET2_EXT_VENV": sys.prefix}

FAKE_RUN = r"""#!/usr/bin/env bash
# records its arguments; stage 5 writes config.yaml, stage 6-7 writes score.json files (WER = 10 + seed)
set -euo pipefail
echo "$*" >> calls.log
stage=1; stop_stage=9; expdir=exp; asr_tag=""; asr_config=""; asr_args=""; train_set=train
test_sets=""; activation_sets="asr"
while [ $# -gt 0 ]; do n="${1#--}"; printf -v "$n" '%s' "$2"; shift 2; done
exp="${expdir}/asr_${asr_tag}"
if [ "${stage}" -le 5 ] && [ "${stop_stage}" -ge 5 ]; then
  seed="$(echo "${asr_args}" | sed 's/.*--seed \([0-9]*\).*/\1/')"
  strategy="$(sed -n 's/^ *task_vector_strategy: *//p' "${asr_config}")"
  mkdir -p "${exp}"
  printf 'config: %s\nseed: %s\ntrain_data_path_and_name_and_type:\n- [dump/raw/%s/wav.scp, speech, sound]\n' \
    "${asr_config}" "${seed}" "${train_set}" > "${exp}/config.yaml"
  printf 'frontend_conf: {task_vector_strategy: %s, task_vector_injection: feature_encoder}\n' \
    "${strategy}" >> "${exp}/config.yaml"
fi
if [ "${stage}" -le 6 ] && [ "${stop_stage}" -ge 7 ]; then
  seed="$(sed -n 's/^seed: //p' "${exp}/config.yaml")"
  for act in ${activation_sets}; do for t in ${test_sets}; do
    d="${exp}/decode_${act//,/+}/${t}"; mkdir -p "${d}"
    echo "{\"wer\": $((10 + seed)), \"task_activation\": \"${act}\", \"test_set\": \"${t}\"}" > "${d}/score.json"
  done; done
fi
"""


@pytest.fixture
def recipe(tmp_path):
    shutil.copytree(
        REPO / "egs2",
        tmp_path / "egs2",
        symlinks=True,
        ignore=shutil.ignore_patterns("data", "dump", "exp", "exp_grid", "downloads", "RESULTS*.md"),
    )
    r = tmp_path / "egs2" / "mini_tokenverse" / "asr1"
    (r / "run.sh").write_text(FAKE_RUN)
    for rec in (r / "results").glob("*.json"):  # the committed grid's records: this fake grid writes its own
        if json.loads(rec.read_text())["kind"] == "grid":
            rec.unlink()
    return r


def run_grid(recipe, *args):
    import os

    r = subprocess.run(
        ["./run_grid.sh", *args],
        cwd=recipe,
        env={**os.environ, **ENV_VENV},
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    calls = (recipe / "calls.log").read_text().splitlines()
    (recipe / "calls.log").unlink()
    return calls, r.stdout


def test_grid_cells_order_skip_and_report(recipe):
    calls, out = run_grid(recipe, "--seeds", "0 1", "--train_read", "5")
    setup = [c for c in calls if "--stage 5" not in c and "--stage 6" not in c]
    assert "--data_opts  --train_read 5" in setup[0] and "--stage 1 --stop_stage 1" in setup[0]
    assert any("--stage 3 --stop_stage 3" in c and "--bpe_train_text data/train/text" in c for c in setup)
    assert sum("--stage 4" in c for c in setup) == 2
    trains = [c for c in calls if "--stage 5 --stop_stage 5" in c]
    decodes = [c for c in calls if "--stage 6 --stop_stage 7" in c]
    tags = [c.split("--asr_tag ")[1].split()[0] for c in trains]
    tuning = sorted(p.stem for p in (recipe / "conf" / "tuning").glob("train_per_*.yaml"))
    best = "train_per_task_feature_encoder"  # the main claims' four cells first, then the other tuning configs
    per_seed = [
        "train_tokenverse_baseline_train_full_only",
        "train_tokenverse_baseline_train_read5",
        f"{best}_train_read5",
        f"{best}_train_full_only",
    ] + [f"{cfg}_train_read5" for cfg in tuning if cfg != best]
    assert tags == [f"{t}_seed{s}" for s in (0, 1) for t in per_seed]  # seeds outermost
    assert all(f"--asr_args --seed {tag[-1]}" in c for tag, c in zip(tags, trains))
    assert len(decodes) == len(trains) and all("--test_sets dev test test_partial" in c for c in decodes)
    # the grid keeps its own decoding (best epoch, no blank penalty) whatever run.sh's defaults are
    assert all(
        "--inference_config conf/tuning/decode_no_blank_penalty.yaml --inference_model valid.loss.best.pth" in c
        for c in decodes
    )
    base = [c for c in decodes if "baseline" in c]
    assert base and all(c.endswith("--activation_sets asr,scd,endp,ner,lid") for c in base)  # no task vectors
    assert all("--activation_sets asr,scd,endp,ner,lid asr asr,scd" in c for c in decodes if "baseline" not in c)
    exp = recipe / "exp_grid" / "asr_train_per_task_encoder_output_train_read5_seed1"
    cmds = (exp / "grid_cmd.txt").read_text().splitlines()
    assert [line.split("\t")[2] for line in cmds] == ["train", "decode"]
    assert "--asr_tag train_per_task_encoder_output_train_read5_seed1" in cmds[0]
    report = (recipe / "RESULTS_grid.md").read_text()  # generated from the cells' records only
    record = json.loads((recipe / "results" / f"{exp.name[4:]}.json").read_text())
    assert record["kind"] == "grid" and record["seed"] == 1 and record["train_set"] == "train_read5"
    assert record["checkpoint"]["model_file"] == "valid.loss.best.pth"
    assert record["commands"]["decode"].startswith("./run.sh --expdir exp_grid") and record["commit"]
    assert record["scores"]["dev"]["asr+ner"] == {"wer": 11}
    assert "`train_read5` = the same conversations" in report  # the mixed set, told from the records
    assert "| TokenVerse baseline (`train_tokenverse_baseline`) | train_full_only | 2 | 10.50 ± 0.71 |" in report
    assert report.count("→ **within seed noise**") >= 1  # every config has WER 10, 11: no finding

    # re-run: every cell is scored, nothing is trained again; a lost score re-runs only its cell
    (recipe / "data" / "token_list" / "bpe150").mkdir(parents=True)
    (recipe / "data" / "token_list" / "bpe150" / "bpe.model").write_text("made by run.sh")
    for ts in ("train_read5", "train_full_only"):
        (recipe / "exp_grid" / f"asr_stats_{ts}_bpe150" / "train").mkdir(parents=True)
        (recipe / "exp_grid" / f"asr_stats_{ts}_bpe150" / "train" / "speech_shape").write_text("")
    (exp / "decode_asr+ner" / "dev" / "score.json").unlink()
    calls, out = run_grid(recipe, "--seeds", "0 1", "--train_read", "5")
    assert not any("--stage 3" in c or "--stage 4" in c for c in calls)  # tokenizer and shapes made once
    assert [c.split("--asr_tag ")[1].split()[0] for c in calls if "--stage 5" in c] == [exp.name[4:]]
    assert out.count("scored, skipped") == 2 * len(per_seed) - 1
    assert json.loads((exp / "decode_asr+ner" / "dev" / "score.json").read_text())["wer"] == 11


def test_best_given_as_another_spelling_of_a_tuning_path_is_one_cell(recipe):
    calls, out = run_grid(
        recipe, "--seeds", "0", "--train_read", "5", "--best", "./conf/tuning/train_per_task_both.yaml"
    )
    tags = [c.split("--asr_tag ")[1].split()[0] for c in calls if "--stage 5 --stop_stage 5" in c]
    assert tags.count("train_per_task_both_train_read5_seed0") == 1
    assert tags[2:4] == ["train_per_task_both_train_read5_seed0", "train_per_task_both_train_full_only_seed0"]
    assert "scored, skipped" not in out  # not reached a second time through the tuning configs
