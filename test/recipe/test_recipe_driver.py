"""tokenverse.sh's options for callers (run_extend.sh and the other run_*.sh), with the Python CLIs replaced by a
recorder: what each stage passes on. And run_extend.sh's wiring with run.sh replaced by a recorder: which
tokenverse.sh stages it calls, with which experiment, data, models, test sets and activation sets. The real stages
run in test_recipe.py (the debug recipe and run_extend.sh end to end)."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# Records "python <args>" per call (the activation tag it answers, as the real CLI would for these sets).
FAKE_PYTHON = r"""#!/usr/bin/env bash
[ "$2" != espnet2_ext.bin.activation_tag ] || { echo "${3//,/+}"; exit 0; }  # (the sets here are in task order)
echo "$*" >> "${CALLS}"
"""

FAKE_RUN = r"""#!/usr/bin/env bash
# records its arguments; stage 6-7 writes the score.json stage 7 of tokenverse.sh would
set -euo pipefail
echo "$*" >> calls.log
stage=1; stop_stage=9; expdir=exp; asr_tag=""; test_sets=""; activation_sets=""; decode_root=""; model_name=""
while [ $# -gt 0 ]; do n="${1#--}"; printf -v "$n" '%s' "$2"; shift 2; done
if [ "${stage}" -le 7 ] && [ "${stop_stage}" -ge 7 ]; then
  d="${decode_root}/decode_${activation_sets//,/+}/${test_sets}"; mkdir -p "${d}"
  printf '{"wer": 10.0, "task_activation": "%s", "test_set": "%s", "model": "%s"}\n' \
    "${activation_sets}" "${test_sets}" "${model_name}" > "${d}/score.json"
fi
"""


def _copy(tmp_path: Path) -> Path:
    shutil.copytree(
        REPO / "egs2",
        tmp_path / "egs2",
        symlinks=True,
        ignore=shutil.ignore_patterns("data", "dump", "exp*", "downloads", "RESULTS*.md", "images"),
    )
    return tmp_path / "egs2" / "mini_tokenverse" / "asr1"


@pytest.fixture
def fake_venv(tmp_path):
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").write_text(FAKE_PYTHON)
    (venv / "bin" / "python").chmod(0o755)
    return venv


def _tokenverse(recipe: Path, venv: Path, *args: str) -> list:
    calls = recipe / "calls.log"
    env = {**os.environ, "ESPNET2_EXT_VENV": str(venv), "CALLS": str(calls)}
    r = subprocess.run(["./tokenverse.sh", *args], cwd=recipe, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    lines = calls.read_text().splitlines() if calls.exists() else []
    calls.unlink(missing_ok=True)
    return lines


def _decoded(recipe: Path, root: str, act_tag: str, dset: str) -> None:
    d = recipe / root / f"decode_{act_tag}" / dset / "1best_recog"
    d.mkdir(parents=True)
    (d / "text").write_text("u1 hello\n")


def test_tokenverse_defaults_pass_the_recipe_tokenizer_and_write_the_report(tmp_path, fake_venv):
    recipe = _copy(tmp_path)
    (recipe / "exp" / "asr_train").mkdir(parents=True)
    (recipe / "exp" / "asr_train" / "valid.loss.best.pth").write_text("")
    _decoded(recipe, "exp/asr_train", "asr", "test")
    calls = _tokenverse(recipe, fake_venv, "--stage", "4", "--stop_stage", "7", "--activation_sets", "asr")
    stats, train = calls[0], calls[1]
    assert "--collect_stats true" in stats and "--output_dir exp/asr_stats_train_bpe150" in stats
    assert "--token_list data/token_list/bpe150/tokens.txt" in stats and "--tokenverse_conf tasks=[" in train
    score = next(c for c in calls if "tokenverse_score" in c)
    assert "--model train " in score and "--extra_tasks" not in score
    assert any("task_vector_analysis" in c for c in calls)
    # the model's record, then every RESULTS*.md from the records (no report written directly)
    assert any("espnet2_ext.bin.results_tables" in c and "--record exp/asr_train --decode_root" in c for c in calls)
    assert not any("tokenverse_report" in c for c in calls)


def test_tokenverse_options_for_an_extended_experiment(tmp_path, fake_venv):
    recipe = _copy(tmp_path)
    (recipe / "exp" / "asr_x_ext").mkdir(parents=True)
    (recipe / "exp" / "asr_x_ext" / "valid.loss.best.pth").write_text("")
    _decoded(recipe, "exp/asr_x_ext/decode_of_m", "asr+qst", "qst_test")
    opts = ["--asr_config", "exp/asr_x_ext/extend_config.yaml", "--asr_tag", "x_ext", "--tokens_from_config", "true"]
    opts += ["--train_set", "ext_train", "--valid_set", "ext_dev", "--stats_dir", "exp/asr_x_ext/stats"]
    opts += ["--asr_args", "--init_param exp/asr_x_ext/extended.pth"]
    opts += ["--test_sets", "qst_test", "--activation_sets", "asr,qst", "--decode_root", "exp/asr_x_ext/decode_of_m"]
    opts += ["--model_name", "m", "--score_args", "--extra_tasks qst=[Q]", "--results_md", ""]
    calls = _tokenverse(recipe, fake_venv, "--stage", "4", "--stop_stage", "7", *opts)
    stats, train = calls[0], calls[1]
    assert stats.endswith("--output_dir exp/asr_x_ext/stats") and "dump/raw/ext_train/wav.scp" in stats
    for c in (stats, train):  # the extended config names its own tokenizer and tasks
        assert "--token_list" not in c and "--bpemodel" not in c and "--tokenverse_conf" not in c
    assert "--train_shape_file exp/asr_x_ext/stats/train/speech_shape" in train
    assert train.endswith("--init_param exp/asr_x_ext/extended.pth")
    decode = next(c for c in calls if "decode_activation_sets" in c)
    assert (
        "--output_root exp/asr_x_ext/decode_of_m" in decode
        and "--test_dirs dump/raw/qst_test --activation_sets asr,qst" in decode
    )
    (score,) = [c for c in calls if "tokenverse_score" in c]
    assert "--hyp exp/asr_x_ext/decode_of_m/decode_asr+qst/qst_test/1best_recog/text" in score
    assert "--model m " in score and score.endswith("--extra_tasks qst=[Q]")
    # --results_md "": scores only, no record or report of its own (nor the task-vector figures that go with it)
    assert not any(t in c for c in calls for t in ("tokenverse_report", "results_tables", "task_vector_analysis"))


def test_run_extend_calls_tokenverse_stages(tmp_path):
    recipe = _copy(tmp_path)
    (recipe / "run.sh").write_text(FAKE_RUN)
    for rec in (recipe / "results").glob("*.json"):  # the committed extend records: this run writes its own
        if json.loads(rec.read_text())["kind"] == "extend":
            rec.unlink()
    for tag, train_set, seed in (("train_debug", "train", 0), ("train_debug_ext", "ext_train", 1)):
        (recipe / "exp" / f"asr_{tag}").mkdir(parents=True)  # what training leaves (stage 7 reads seed and data)
        (recipe / "exp" / f"asr_{tag}" / "config.yaml").write_text(
            f"config: conf/train_debug.yaml\nseed: {seed}\n"
            f"train_data_path_and_name_and_type:\n- [dump/raw/{train_set}/wav.scp, speech, sound]\n"
        )
    env = {**os.environ, "ESPNET2_EXT_VENV": sys.prefix}  # stage 7's records and tables are the real CLI
    r = subprocess.run(
        ["./run_extend.sh", "--stage", "4", "--asr_config", "conf/train_debug.yaml", "--decode_dev", "true"],
        cwd=recipe,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    calls = (recipe / "calls.log").read_text().splitlines()
    ext = "exp/asr_train_debug_ext"
    stats, train, decodes = calls[0], calls[1], calls[2:]
    common = f"--asr_config {ext}/extend_config.yaml --asr_tag train_debug_ext --tokens_from_config true"
    assert "--stage 4 --stop_stage 4" in stats and common in stats and f"--stats_dir {ext}/stats" in stats
    assert "--train_set ext_train --valid_set ext_dev" in stats and "--results_md " in stats
    assert "--stage 5 --stop_stage 5" in train and f"--asr_args --init_param {ext}/extended.pth" in train
    got = [
        tuple(c.split(f" --{k} ")[1].split()[0] for k in ("asr_tag", "inference_model", "test_sets", "activation_sets"))
        for c in decodes
    ]
    assert got == [
        ("train_debug", "valid.loss.best.pth", "test", "asr,scd,endp,ner,lid"),  # before: old tasks only
        ("train_debug_ext", "extended.pth", "test", "asr,scd,endp,ner,lid"),
        ("train_debug_ext", "extended.pth", "it_test", "asr,lid"),
        ("train_debug_ext", "extended.pth", "qst_test", "asr,qst"),
        ("train_debug_ext", "valid.loss.best.pth", "test", "asr,scd,endp,ner,lid"),
        ("train_debug_ext", "valid.loss.best.pth", "it_test", "asr,lid"),
        ("train_debug_ext", "valid.loss.best.pth", "qst_test", "asr,qst"),
        ("train_debug_ext", "valid.loss.best.pth", "it_dev", "asr,lid"),  # --decode_dev true
        ("train_debug_ext", "valid.loss.best.pth", "qst_dev", "asr,qst"),
        ("train_debug_ext", "valid.loss.best.pth", "dev", "asr,scd,endp,ner,lid"),
    ]
    assert all("--stage 6 --stop_stage 7" in c and "--score_args --extra_tasks qst=[Q]" in c for c in decodes)
    assert (
        f"--decode_root {ext}/decode_of_asr_train_debug_ext_extended --model_name asr_train_debug_ext_extended"
        in (decodes[1])
    )
    results = (recipe / "RESULTS_extend.md").read_text()  # generated from the three records below only
    for model in (
        "asr_train_debug_valid.loss.best",
        "asr_train_debug_ext_extended",
        "asr_train_debug_ext_valid.loss.best",
    ):
        assert f"| {model} |" in results
    after = json.loads((recipe / "results" / "asr_train_debug_ext_valid.loss.best.json").read_text())
    assert (after["kind"], after["group"], after["label"], after["seed"]) == ("extend", "rconv_tv", "ext seed 1", 1)
    assert sorted(after["scores"]) == ["dev", "it_dev", "it_test", "qst_dev", "qst_test", "test"]
    before = json.loads((recipe / "results" / "asr_train_debug_valid.loss.best.json").read_text())
    assert (before["group"], before["label"], list(before["scores"])) == (
        "before",
        "base seed 0 rerun (extended here)",
        ["test"],
    )
    untrained = json.loads((recipe / "results" / "asr_train_debug_ext_extended.json").read_text())
    assert (untrained["group"], untrained["checkpoint"]["model_file"]) == ("untrained", "extended.pth")
    score = json.loads(
        (recipe / ext / "decode_of_asr_train_debug_ext_extended/decode_asr+qst/qst_test/score.json").read_text()
    )
    assert score["model"] == "asr_train_debug_ext_extended"


def test_streaming_decodes_through_stage_6_equal_asr_inference(multichunk, tmp_path):
    """run_streaming.sh decodes with tokenverse.sh's stage 6 (decode_activation_sets, --inference_args
    "--streaming true ..."): the same output and streaming statistics as the asr_inference call it replaced."""
    from espnet2_ext.bin import asr_inference, decode_activation_sets

    _, data, out = multichunk
    model = ["--asr_train_config", str(out / "config.yaml"), "--asr_model_file", str(out / "valid.loss.best.pth")]
    opts = ["--streaming", "true", "--chunk_size_ms", "80", "--search_type", "modified_beam_search"]
    opts += ["--beam_size", "2", "--batch_size", "1", "--num_workers", "0", "--ngpu", "0"]
    act = "asr,scd,endp,ner,lid"
    asr_inference.run(
        model
        + opts
        + ["--task_activation", act, "--data_path_and_name_and_type", f"{data / 'wav.scp'},speech,sound"]
        + ["--output_dir", str(tmp_path / "direct")]
    )
    decode_activation_sets.run(
        model + opts + ["--test_dirs", str(data), "--activation_sets", act, "--output_root", str(tmp_path / "stage6")]
    )
    staged = tmp_path / "stage6" / "decode_asr+scd+endp+ner+lid" / data.name
    for f in ("text", "token_int", "ctm", "events.jsonl"):
        assert (staged / "1best_recog" / f).read_text() == (tmp_path / "direct" / "1best_recog" / f).read_text(), f
    a, b = (json.loads((d / "streaming_stats.json").read_text()) for d in (tmp_path / "direct", staged))
    timing = {"rtf", "wall_s", "decode_s", "seconds"}
    assert {k: v for k, v in a.items() if k not in timing} == {k: v for k, v in b.items() if k not in timing}


FAKE_STREAMING_RUN = r"""#!/usr/bin/env bash
# records its arguments; stage 6-7 leaves what a streaming decode and its scoring leave
set -euo pipefail
echo "$*" >> calls.log
stage=1; stop_stage=9; test_sets=""; activation_sets=""; decode_root=""; inference_args=""
while [ $# -gt 0 ]; do n="${1#--}"; printf -v "$n" '%s' "$2"; shift 2; done
if [ "${stage}" -le 6 ] && [ "${stop_stage}" -ge 7 ]; then
  d="${decode_root}/decode_${activation_sets//,/+}/${test_sets}"; mkdir -p "${d}"
  size="$(echo "${inference_args}" | sed 's/.*--chunk_size_ms \([^ ]*\).*/\1/')"
  stats='"left_chunks": 2, "attention_sink_frames": 4, "algorithmic_latency_ms": 1.0, "rtf": 0.1'
  printf '{"chunk_size_ms": "%s", %s}\n' "${size}" "${stats}" > "${d}/streaming_stats.json"
  echo '{"wer": 12.5}' > "${d}/score.json"
fi
"""


def test_run_streaming_decodes_and_scores_through_tokenverse_stages(tmp_path):
    recipe = _copy(tmp_path)
    (recipe / "run.sh").write_text(FAKE_STREAMING_RUN)
    (recipe / "dump" / "raw" / "test").mkdir(parents=True)
    (recipe / "dump" / "raw" / "test" / "wav.scp").write_text("")
    (recipe / "exp" / "asr_m").mkdir(parents=True)
    (recipe / "exp" / "asr_m" / "valid.loss.best.pth").write_text("")
    r = subprocess.run(
        ["./run_streaming.sh", "--train", "false", "--asr_tag", "m", "--sizes", "320 full", "--left_chunks", "2"],
        cwd=recipe,
        env={**os.environ, "ESPNET2_EXT_VENV": sys.prefix},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    calls = (recipe / "calls.log").read_text().splitlines()
    assert len(calls) == 2 and all("--stage 6 --stop_stage 7" in c and "--results_md " in c for c in calls)
    assert "--inference_config  --inference_args --streaming true --chunk_size_ms 320 " in calls[0]
    assert "--beam_size 4 --num_workers 0 --left_chunks 2 --decode_batch_size 1 --ngpu 0" in calls[0]
    assert "--decode_root exp/asr_m/decode_streaming_full --model_name asr_m_fullms" in calls[1]
    record = json.loads((recipe / "results" / "streaming" / "m.json").read_text())
    assert record["test_set"] == "test" and record["activation"] == "asr+scd+endp+ner+lid"
    assert record["config"] == "conf/tuning/train_multichunk.yaml"
    assert [row["Chunk (ms)"] for row in record["rows"]] == ["320", "full"] and record["rows"][0]["WER (%)"] == "12.50"
    results = (recipe / "RESULTS_streaming.md").read_text()  # generated from the records: the committed one and m
    section = results.split("Model `m`")[1].split("Model `train_multichunk`")[0]
    rows = [line for line in section.splitlines() if line.startswith("| ") and not line.startswith("| Chunk")]
    assert [row.split(" | ")[0] for row in rows] == ["| 320", "| full"] and "12.50" in rows[0]
    assert results.startswith("# Streaming: latency / accuracy") and "Model `train_multichunk`" in results
