"""grid_report: synthetic run_grid.sh exp trees with known numbers -> exact mean ± std, n, and claim verdicts."""

import json
import os
import statistics

import pytest
import yaml

from espnet2_ext.bin import grid_report as cli
from espnet2_ext.common import DataError
from espnet2_ext.reporting import grid_cells as C
from espnet2_ext.reporting import grid_report as G

ALL = "asr+scd+endp+ner+lid"
FULL, MIXED = "train_full_only", "train_read400"
CFG = {  # config stem -> (strategy, injection)
    "train_tokenverse_baseline": ("none", "feature_encoder"),
    "train_per_task_feature_encoder": ("per_task", "feature_encoder"),
    "train_per_combination_feature_encoder": ("per_combination", "feature_encoder"),
    "train_per_task_encoder_output": ("per_task", "encoder_output"),
    "train_per_task_both": ("per_task", "both"),
}


def make_cell(exp, cfg, train_set, seed, scores, n_params=17):
    """scores: {(test_set, activation): {metric: value, "per_language": {...}}}"""
    tag = f"{cfg}_{train_set}_seed{seed}"
    d = exp / f"asr_{tag}"
    d.mkdir(parents=True)
    strategy, injection = CFG[cfg]
    conf = {
        "config": f"conf/tuning/{cfg}.yaml",
        "seed": seed,
        "train_data_path_and_name_and_type": [
            [f"dump/raw/{train_set}/wav.scp", "speech", "sound"],
            [f"dump/raw/{train_set}/text", "text", "text"],
        ],
        "frontend_conf": {"task_vector_strategy": strategy, "task_vector_injection": injection},
    }
    (d / "config.yaml").write_text(yaml.safe_dump(conf))
    for (test_set, act), sc in scores.items():
        out = d / f"decode_{act}" / test_set
        out.mkdir(parents=True)
        (out / "score.json").write_text(json.dumps(dict(sc, model=tag, test_set=test_set, task_activation=act)))
    import torch

    torch.save({"w": torch.zeros(n_params - 2), "b": torch.zeros(2)}, d / "7epoch.pth")
    os.symlink("7epoch.pth", d / "valid.loss.best.pth")
    (d / C.CMD_FILE).write_text(
        f"2026-11-22T19:00:00Z\tabc1234\ttrain\t./run.sh --asr_tag {tag} --asr_args --seed\\ {seed}\n"
    )
    return d


def sc(wer, scd=None, endp=None, ner=None, lid=None, per_lang=None, itt=0):
    return {
        "wer": wer,
        "scd_f1": scd,
        "endp_f1": endp,
        "ner_f1": ner,
        "lid_acc": lid,
        "itt": itt,
        "per_language": per_lang or {},
    }


def grid(tmp_path, seeds=(0, 1, 2), drop_seed=None):
    """Known numbers, one value per seed k (index into each list):
    baseline/full: test WER 20,22,24, SCD 80,82,84, ENDP 90,91,92, NER 40,41,42
    baseline/mixed: test WER 21,23,25, SCD 50,52,54 (a drop), ENDP 90,91,92 (no change), NER 20,21,22 (drop)
    per_task@fe/mixed: test WER 10,11,12, dev 9,10,11, SCD 80,81,82, ENDP 95,95,95, NER 30,31,32 (drops)
    per_task@fe/full: test WER 15,16,17, dev 14,15,16, SCD 80,81,82, ENDP 95,95,95, NER 40,41,42
    per_combination@fe/mixed: test WER 11.5,12,12.5, dev 8,8,8 (dev-best although worse on test)
    per_task@eo/mixed: test WER 20,21,22, dev 19,20,21"""
    exp = tmp_path / "exp_grid"
    spec = {
        ("train_tokenverse_baseline", FULL): dict(
            test=[20, 22, 24], scd=[80, 82, 84], endp=[90, 91, 92], ner=[40, 41, 42], dev=[30, 30, 30]
        ),
        ("train_tokenverse_baseline", MIXED): dict(
            test=[21, 23, 25], scd=[50, 52, 54], endp=[90, 91, 92], ner=[20, 21, 22], dev=[30, 30, 30]
        ),
        ("train_per_task_feature_encoder", MIXED): dict(
            test=[10, 11, 12], dev=[9, 10, 11], scd=[80, 81, 82], endp=[95, 95, 95], ner=[30, 31, 32]
        ),
        ("train_per_task_feature_encoder", FULL): dict(
            test=[15, 16, 17], dev=[14, 15, 16], scd=[80, 81, 82], endp=[95, 95, 95], ner=[40, 41, 42]
        ),
        ("train_per_combination_feature_encoder", MIXED): dict(
            test=[11.5, 12, 12.5], dev=[8, 8, 8], scd=[1, 1, 1], endp=[1, 1, 1], ner=[1, 1, 1]
        ),
        ("train_per_task_encoder_output", MIXED): dict(
            test=[20, 21, 22], dev=[19, 20, 21], scd=[1, 1, 1], endp=[1, 1, 1], ner=[1, 1, 1]
        ),
    }
    for (cfg, ts), v in spec.items():
        for k in seeds:
            if drop_seed and (cfg, ts, k) == drop_seed:
                continue
            w = v["test"][k]
            per_lang = {"en": {"wer": w - 1}, "de": {"wer": w + 1}}
            scores = {
                ("test", ALL): sc(w, v["scd"][k], v["endp"][k], v["ner"][k], 99.0, per_lang),
                ("dev", ALL): sc(v["dev"][k], lid=98.0),
                ("test_partial", ALL): sc(w / 2, lid=97.0, per_lang={"en": {"wer": w / 2}}),
            }
            if CFG[cfg][0] != "none":
                scores[("test", "asr")] = sc(w + 0.5, itt=0)
            make_cell(exp, cfg, ts, k, scores)
    return exp


def report(exp, tmp_path):
    out = tmp_path / "RESULTS_grid.md"
    text = cli.run(["--exp_dir", str(exp), "--out", str(out), "--full_set", FULL, "--mixed_set", MIXED])
    assert out.read_text() == text
    return text


def section(text, title):
    """The part of the report from the heading starting with ``title`` to the next heading."""
    return text.split(f"\n## {title}", 1)[1].split("\n## ", 1)[0]


def row(text, *needles):
    hits = [line for line in text.splitlines() if line.startswith("|") and all(n in line for n in needles)]
    assert len(hits) == 1, (needles, hits)
    return [c.strip() for c in hits[0].strip("|").split("|")]


def verdict(text, claim, contains=""):
    hits = [line for line in text.splitlines() if line.startswith(f"- **({claim})**") and contains in line]
    assert len(hits) == 1, (claim, contains, hits)
    return hits[0]


def test_stat_is_mean_and_sample_std():
    s = C.Stat((20.0, 22.0, 24.0))
    assert (s.n, s.mean, s.std) == (3, 22.0, 2.0) and s.fmt(True) == "22.00 ± 2.00 (n=3)"
    assert C.Stat((5.0,)).fmt(True) == "5.00 (n=1)" and C.Stat((5.0,)).std is None
    assert C.Stat(()).fmt() == "-"
    assert C.compare(C.Stat((10, 11, 12)), C.Stat((20, 22, 24)), True) == "reproduced"
    assert C.compare(C.Stat((10, 11, 12)), C.Stat((20, 22, 24)), False) == "not reproduced"
    # |diff| == spread is not a finding (strictly greater is required)
    assert C.compare(C.Stat((10, 11, 12)), C.Stat((11, 12, 13)), True) == "within seed noise"
    assert C.compare(C.Stat((10,)), C.Stat((20, 22)), True).startswith("not enough seeds")


def test_tables_have_exact_means_and_stds(tmp_path):
    text = report(grid(tmp_path), tmp_path)
    t2, t3, t4 = (section(text, f"Table {n}") for n in ("II", "III", "IV"))
    r = row(t2, "TokenVerse baseline", f"| {FULL} |")
    # Model | Train set | n | dev WER | test WER | SCD | ENDP | NER | LID | test_partial WER | test_partial LID
    assert r[2:] == [
        "3",
        "30.00 ± 0.00",
        "22.00 ± 2.00",
        "82.00 ± 2.00",
        "91.00 ± 1.00",
        "41.00 ± 1.00",
        "99.00 ± 0.00",
        "11.00 ± 1.00",
        "97.00 ± 0.00",
    ]
    r = row(t2, "per_combination @ feature_encoder", f"| {MIXED} |")
    assert r[4] == f"12.00 ± {statistics.stdev([11.5, 12, 12.5]):.2f}" == "12.00 ± 0.50"
    # Table III: per language (en = WER - 1, de = WER + 1)
    r = row(t3, "TokenVerse++ per_task @ feature_encoder", f"| {FULL} |")
    assert r[3:] == ["17.00 ± 1.00", "15.00 ± 1.00", "-", "8.00 ± 0.50"]  # test de, en; test_partial de, en
    # Table IV: activation sets with ITT
    r = row(t4, "TokenVerse++ per_task @ feature_encoder", f"| {MIXED} |", "| asr |")
    assert r[3:5] == ["3", "11.50 ± 1.00"] and r[-1] == "0.00 ± 0.00"
    assert "parameters: 17;" in text and "decoded `valid.loss.best.pth` = `7epoch.pth`" in text
    assert "train (2026-11-22T19:00:00Z, commit abc1234): `./run.sh --asr_tag train_per_task_feature_encoder_" in text


def test_verdicts(tmp_path):
    text = report(grid(tmp_path), tmp_path)
    # dev selects per_combination (dev 8) although per_task@fe is better on test: (a) uses the dev choice
    a = verdict(text, "a")
    assert "per_combination @ feature_encoder on train_read400 (dev-best) 12.00 ± 0.50 (n=3)" in a
    assert "baseline on train_full_only 22.00 ± 2.00 (n=3)" in a and "difference -10.00" in a
    assert a.endswith("**reproduced**")
    assert "Dev-best TokenVerse++ config on `train_read400`: TokenVerse++ per_combination @ feature_encoder" in text
    # only per_task@fe was trained on the conversations alone: the report says to rerun with the dev-best one
    assert "rerun `./run_grid.sh --best conf/tuning/train_per_combination_feature_encoder.yaml`" in text
    # (b) baseline SCD drops 30 > 2 and TokenVerse++ (the config trained on both sets) does not move
    assert verdict(text, "b", "SCD F1").endswith("**reproduced**")
    assert "baseline on train_read400 52.00 ± 2.00 (n=3) vs on train_full_only 82.00 ± 2.00" in verdict(
        text, "b", "SCD F1"
    )
    assert verdict(text, "b", "ENDP F1").endswith("**within seed noise**")  # the baseline does not lose ENDP
    assert verdict(text, "b", "NER F1").endswith("**not reproduced**")  # both lose NER: TokenVerse++ 31 vs 41
    # (c) per_task@fe 11±1 vs per_combination 12±0.5: |diff| 1 is not > 1 -> noise; vs per_task@eo: better
    c = verdict(text, "c")
    assert c.endswith(
        "dev-best config: TokenVerse++ per_combination @ feature_encoder (`train_per_combination_feature_encoder`))"
    )
    assert (
        "**within seed noise** (vs per_combination@feature_encoder: within seed noise; "
        "vs per_task@encoder_output: reproduced;" in c
    )
    # (d) per_task@fe with read data 11 vs without 16, per language too
    assert verdict(text, "d", "on test (all languages)").endswith("**reproduced**")
    assert "with (train_read400) 10.00 ± 1.00 (n=3) vs without (train_full_only) 15.00 ± 1.00 (n=3)" in verdict(
        text, "d", "on test (en)"
    )
    assert verdict(text, "d", "on test_partial (all languages)").endswith("**reproduced**")


def test_claim_c_reproduced_and_not(tmp_path):
    exp = grid(tmp_path, seeds=(0, 1, 2))
    base = exp / "asr_train_per_combination_feature_encoder_train_read400_seed0"
    for k, w in enumerate((30, 31, 32)):  # per_combination far worse: per_task@fe beats every other config
        p = exp / f"asr_train_per_combination_feature_encoder_train_read400_seed{k}" / f"decode_{ALL}" / "test"
        d = json.loads((p / "score.json").read_text())
        (p / "score.json").write_text(json.dumps(dict(d, wer=w)))
    assert verdict(report(exp, tmp_path), "c").split(" (vs ")[0].endswith("**reproduced**")
    for k, w in enumerate((1, 2, 3)):  # now clearly better than per_task@fe
        p = exp / f"asr_train_per_combination_feature_encoder_train_read400_seed{k}" / f"decode_{ALL}" / "test"
        d = json.loads((p / "score.json").read_text())
        (p / "score.json").write_text(json.dumps(dict(d, wer=w)))
    assert verdict(report(exp, tmp_path), "c").split(" (vs ")[0].endswith("**not reproduced**")
    assert base.is_dir()


def test_dev_best_is_chosen_among_configs_with_seeds(tmp_path):
    exp = grid(tmp_path)
    # a one-seed config with the lowest dev WER of all (dev 1) does not beat the 3-seed dev-best (dev 8, 8, 8)
    make_cell(exp, "train_per_task_both", MIXED, 0, {("test", ALL): sc(30, 1, 1, 1, 99.0), ("dev", ALL): sc(1)})
    text = report(exp, tmp_path)
    assert "(dev-best) 12.00 ± 0.50 (n=3)" in verdict(text, "a") and verdict(text, "a").endswith("**reproduced**")
    groups = C.make_groups(C.find_cells(exp)[0])
    roles = C.Roles(FULL, MIXED, "dev", "test", "test_partial")
    only_one_seed = [g for g in groups if g.config == "train_per_task_both"]
    assert C.dev_best(only_one_seed, roles, MIXED) is only_one_seed[0]  # no config has seeds: the one there is


def test_missing_seed_is_reported_with_its_n(tmp_path):
    exp = grid(tmp_path, drop_seed=("train_tokenverse_baseline", FULL, 2))
    text = report(exp, tmp_path)
    r = row(section(text, "Table II"), "TokenVerse baseline", f"| {FULL} |")
    assert r[4] == "21.00 ± 1.41"  # seeds 0, 1: 20, 22
    assert "baseline on train_full_only 21.00 ± 1.41 (n=2)" in verdict(text, "a")
    assert "seeds: 0, 1\n" in text


def test_single_seed_gives_no_verdict_and_pending_cells_are_listed(tmp_path):
    exp = grid(tmp_path, seeds=(0,))
    (exp / "asr_train_per_task_feature_encoder_train_read400_seed1").mkdir()
    (exp / "asr_train_per_task_feature_encoder_train_read400_seed1" / "config.yaml").write_text(
        (exp / "asr_train_per_task_feature_encoder_train_read400_seed0" / "config.yaml")
        .read_text()
        .replace("seed: 0", "seed: 1")
    )
    text = report(exp, tmp_path)
    assert verdict(text, "a").endswith("**not enough seeds (n < 2)**")
    assert all(line.count("not enough seeds") == 1 for line in text.splitlines() if line.startswith("- **(b)**"))
    assert "## Cells not scored yet" in text and "train_per_task_feature_encoder_train_read400_seed1`" in text


def test_model_info_keeps_the_model_table_whole_without_weights(tmp_path):
    exp = grid(tmp_path, seeds=(0,))
    out = tmp_path / "RESULTS_grid.md"
    args = ["--exp_dir", str(exp), "--out", str(out), "--full_set", FULL, "--mixed_set", MIXED]
    with_weights = cli.run(args + ["--save_model_info"])
    for cell in exp.glob("asr_*"):  # a clone of the committed grid: logs and scores, no weights
        info = json.loads((cell / C.MODEL_INFO_FILE).read_text())
        assert info == {"model_file": "valid.loss.best.pth", "decoded": "7epoch.pth", "parameters": 17}
        (cell / "valid.loss.best.pth").unlink()
        (cell / "7epoch.pth").unlink()
    assert cli.run(args) == with_weights and "parameters: 17;" in with_weights
    cell = next(exp.glob("asr_*"))
    (cell / C.MODEL_INFO_FILE).write_text('{"model_file": "valid.loss.best.pth", "parameters": "17"}')
    with pytest.raises(DataError, match=f"{C.MODEL_INFO_FILE}: expected .*delete it, or re-run"):
        cli.run(args)
    (cell / C.MODEL_INFO_FILE).unlink()
    assert "unknown (no model file)" in cli.run(args) and "= `missing`" in cli.run(args)


def test_bad_inputs_are_clear_errors(tmp_path):
    exp = grid(tmp_path, seeds=(0,))
    with pytest.raises(DataError, match="no such directory"):
        C.find_cells(tmp_path / "nope")
    dup = exp / "asr_copy_of_seed0"
    dup.mkdir()
    src = exp / "asr_train_tokenverse_baseline_train_full_only_seed0"
    (dup / "config.yaml").write_text((src / "config.yaml").read_text())
    (dup / f"decode_{ALL}" / "test").mkdir(parents=True)
    (dup / f"decode_{ALL}" / "test" / "score.json").write_text(
        (src / f"decode_{ALL}" / "test" / "score.json").read_text()
    )
    with pytest.raises(DataError, match="both train_tokenverse_baseline on train_full_only with seed 0"):
        C.find_cells(exp)
    (dup / "config.yaml").write_text("seed: [1\n")
    with pytest.raises(DataError, match=r"asr_copy_of_seed0/config.yaml: not valid YAML"):
        C.find_cells(exp)
    (dup / "config.yaml").write_text("seed: 3\n")
    with pytest.raises(DataError, match=r"config.yaml: no config, train_data_path_and_name_and_type"):
        C.find_cells(exp)
    with pytest.raises(DataError, match="no scored grid cell"):
        G.build_report([], C.Roles(FULL, MIXED))
