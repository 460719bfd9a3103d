"""run_biasing.sh's wiring with run.sh replaced by a fake decoder (the real stage 6 is test_recipe.py's; biased
decoding is the bias helper's): lists for every set, tune decodes, the choice, test decodes with the chosen weight
per mode and every kind x N, the records and RESULTS_biasing.md. The fake decodes perfectly at --biasing_weight 2
and emits only the language token otherwise, so the choice must be weight 2."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from espnet2_ext.corpora.mini_tokenverse.mini_tokenverse_plan import plan_split
from espnet2_ext.data.kaldi_dir import Utterance, write_data_dir

REPO = Path(__file__).resolve().parents[2]
CONV = ("asr", "scd", "endp", "ner", "lid")

FAKE_RUN = r"""#!/usr/bin/env bash
set -euo pipefail
[ -z "${FAKE_FAIL:-}" ] || { echo "decode.log: boom"; exit 1; }
echo "$*" >> calls.log
test_sets=""; decode_root=""; inference_args=""; activation_sets=""
while [ $# -gt 0 ]; do n="${1#--}"; printf -v "$n" '%s' "$2"; shift 2; done
d="${decode_root}/decode_${activation_sets//,/+}/${test_sets}"
mkdir -p "${d}/1best_recog"
if [[ " ${inference_args} " == *" --biasing_weight 2 "* ]]; then
  cp "dump/raw/${test_sets}/text" "${d}/1best_recog/text"
else
  awk '{print $1, $2}' "dump/raw/${test_sets}/text" > "${d}/1best_recog/text"
fi
if [ -n "${inference_args}" ]; then
  f="$(echo "${inference_args}" | sed 's/.*--utt2biasing \([^ ]*\).*/\1/')"; [ -f "${f}" ]
fi
echo '{"wall_s": 1.0, "audio_s": 10.0, "rtf": 0.1}' > "${d}/decode_stats.json"
"""


def _conv(utt, lang, text):
    return Utterance(utt, utt.split("-")[0], text, lang, CONV, "x.wav", duration=2.0)


def _read_set(split):
    return [
        Utterance(p.utt_id, p.speaker, p.reference(), "en", ("asr", "lid"), "x.wav", duration=1.0)
        for p in plan_split("en", split, 0, 2, seed=0)
    ]


def test_run_biasing_end_to_end_with_a_fake_decoder(tmp_path):
    shutil.copytree(
        REPO / "egs2",
        tmp_path / "egs2",
        symlinks=True,
        ignore=shutil.ignore_patterns("data", "dump", "exp*", "downloads", "RESULTS*.md", "images"),
    )
    r = tmp_path / "egs2" / "mini_tokenverse" / "asr1"
    (r / "run.sh").write_text(FAKE_RUN)
    conv = {
        "dev": [
            _conv("a-dev-c0", "en", "[EN] call [NE] maria [/NE] now [ENDP]"),
            _conv("b-dev-c1", "de", "[DE] hallo [NE] anna [/NE] [ENDP] [SCD] ja [ENDP]"),
        ],
        "test": [
            _conv("a-test-c0", "en", "[EN] meet [NE] new york [/NE] [ENDP]"),
            _conv("b-test-c1", "de", "[DE] guten morgen [ENDP]"),
        ],
    }
    for name, utts in {
        **conv,
        "dev_partial": _read_set("dev_partial"),
        "test_partial": _read_set("test_partial"),
    }.items():
        write_data_dir(utts, r / "dump" / "raw" / name)
    (r / "data" / "train_read400").mkdir(parents=True)
    (r / "data" / "train_read400" / "text").write_text("x-1 [EN] call [NE] maria [/NE]\n")
    (r / "exp" / "asr_train").mkdir(parents=True)
    (r / "exp" / "asr_train" / "config.yaml").write_text("seed: 0\n")
    env = {**os.environ, "ESPNET2_EXT_VENV": sys.prefix, "PYTHONPATH": str(REPO)}
    args = [
        "--models",
        "train",
        "--distractors",
        "0 10",
        "--kinds",
        "utt conv lang",
        "--weights",
        "1 2",
        "--rescore_bonuses",
        "3",
        "--tune_n",
        "10",
    ]
    p = subprocess.run(["./run_biasing.sh", *args], cwd=r, env=env, capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stdout + p.stderr
    out = r / "exp_biasing" / "lists_seed0"
    assert (out / "chosen.txt").read_text().split("\n")[:3] == ["gated 2", "rescore 3", "ungated 2"]
    calls = (r / "calls.log").read_text().splitlines()
    tune = [c for c in calls if "--test_sets dev" in c]
    test = [c for c in calls if "--test_sets test" in c]
    # tune: per dev set one decode without a list + 2 modes x 2 weights + rescore x 1 bonus; every decode only
    # stage 6, all tasks
    bad = subprocess.run(
        ["./run_biasing.sh", *args[:-2], "--stage", "2"], cwd=r, env=env, capture_output=True, text=True, timeout=300
    )  # tune lists with N = 100 were not made
    assert bad.returncode == 1 and "--tune_kind/--tune_n must be among" in bad.stderr
    assert len(tune) == 2 * 6 and all("--stage 6 --stop_stage 6" in c and "asr,scd,endp,ner,lid" in c for c in calls)
    # test: per test set one decode without a list + 3 modes x 2 kinds (no conv: one utterance per conversation)
    # x 2 N, each at its mode's chosen weight (rescore: its chosen bonus)
    biased = [c for c in test if "--biasing_weight" in c]
    rescored = [c for c in test if "--biasing_mode rescore" in c]
    assert len(test) == 2 * 13 and len(biased) == 16 and all("--biasing_weight 2" in c for c in biased)
    assert {c.split("--biasing_mode ")[1].split()[0] for c in biased} == {"gated", "ungated"}
    assert len(rescored) == 8 and all(
        "--biasing_rescore_bonus 3" in c and "--biasing_weight" not in c for c in rescored
    )
    records = [json.loads(f.read_text()) for f in (out / "records" / "test").rglob("*.json")]
    # per test set: none scored against 2 kinds x 2 N, plus 12 biased decodes
    assert len(records) == 2 * (4 + 12)
    gated = [x for x in records if x["set"] == "test" and x["mode"] == "gated" and x["kind"] == "utt" and x["n"] == 10][
        0
    ]
    assert gated["metrics"]["wer"] == 0.0 and gated["metrics"]["u_wer"] == 0.0 and gated["metrics"]["rtf"] == 0.1
    assert gated["metrics"]["ner_f1"] == 100.0 and gated["metrics"]["unseen_recall"] == 100.0
    part = [
        x for x in records if x["set"] == "test_partial" and x["mode"] == "gated" and x["n"] == 0 and x["kind"] == "utt"
    ][0]
    assert part["metrics"]["b_wer"] == 0.0  # read speech has its entities from the corpus plan
    report = (r / "RESULTS_biasing.md").read_text()  # generated from results/biasing/tables.json only
    tables = json.loads((r / "results" / "biasing" / "tables.json").read_text())
    assert tables["models"] == ["train"]
    assert tables["commands"] == [
        "./run_biasing.sh --models train --distractors 0\\ 10 --kinds utt\\ conv\\ lang --weights 1\\ 2 "
        "--rescore_bonuses 3 --tune_n 10"
    ]
    assert [s["title"] for s in tables["sections"]][:2] == ["Lists per set", "Choice on dev"]
    assert "Chosen: mode **gated**, weight **2.00**" in report
    assert "| NER F1 | >= 60 | 0: 100.00 |" in report and "no conv lists" in report
    # a failing decode stops the script and shows its log
    p = subprocess.run(
        ["./run_biasing.sh", *args, "--stage", "2", "--stop_stage", "2"],
        cwd=r,
        env={**env, "FAKE_FAIL": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode == 1 and "decode.log: boom" in p.stderr
    # stage 5 alone writes the report again from the records
    p = subprocess.run(
        ["./run_biasing.sh", *args, "--stage", "5"], cwd=r, env=env, capture_output=True, text=True, timeout=300
    )
    assert p.returncode == 0, p.stderr
