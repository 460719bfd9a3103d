"""Result tables from a fake experiment tree, and the task-vector analysis on a hand-made checkpoint."""

import json

import pytest
import torch
import yaml

import espnet2_ext  # noqa: F401  (offline guard before anything else)
from espnet2_ext.bin import task_vector_analysis as tva_cli
from espnet2_ext.bin import tokenverse_report
from espnet2_ext.common import DataError
from espnet2_ext.reporting.task_vector_analysis import analyze

ALL = "asr+scd+endp+ner+lid"


def score(wer, scd=None, endp=None, ner=None, lid=None, itt=0, per_language=None, **extra):
    return {
        "wer": wer,
        "scd_f1": scd,
        "endp_f1": endp,
        "ner_f1": ner,
        "lid_acc": lid,
        "itt": itt,
        "per_language": per_language or {},
        **extra,
    }


def put(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data), encoding="utf-8")


@pytest.fixture()
def exp_tree(tmp_path):
    exp = tmp_path / "exp"
    # Model, test set and activation from the path only.
    put(
        exp / "tvpp" / f"decode_{ALL}" / "test_a" / "score.json",
        score(
            10.0,
            80.0,
            90.0,
            70.0,
            95.0,
            per_language={
                "en": score(8.0, 81.0, 91.0, 71.0, 96.0),
                "unk": score(30.0),
                "de": score(12.5, 79.0, 89.0, None, 94.0),
            },
        ),
    )
    put(exp / "tvpp" / f"decode_{ALL}" / "test_b" / "score.json", score(11.0, 60.0, 61.0, 62.0, 63.0))
    put(exp / "tvpp" / "decode_asr" / "test_a" / "score.json", score(9.5, itt=7))
    # Fields in the file win over the path; the activation order is normalised.
    put(
        exp / "tvpp" / "decode_misc" / "x" / "score.json",
        score(9.75, lid=97.0, itt=3, model="tvpp", test_set="test_a", task_activation=["lid", "asr"]),
    )
    exp2 = tmp_path / "exp2"
    put(
        exp2 / "anywhere" / "score.json",
        score(20.0, 70.0, 75.0, itt=0, model="baseline", test_set="test_a", task_activation=["asr", "scd", "endp"]),
    )
    return exp, exp2


def run_report(tmp_path, exp, exp2, *extra):
    out = tmp_path / "out" / "RESULTS.md"
    tokenverse_report.run(["--exp_dir", str(exp), "--exp_dir", str(exp2), "--out", str(out), *extra])
    return out, out.read_text(encoding="utf-8")


def test_report_tables(tmp_path, exp_tree):
    stats = tmp_path / "stats.md"
    stats.write_text("# Corpus statistics\n\n| a | b |\n|---|---|\n| 1 | 2 |\n", encoding="utf-8")
    out, text = run_report(tmp_path, *exp_tree, "--prepend", str(stats))
    assert text.startswith("# Corpus statistics\n")
    t2 = text[text.index("## Table II") : text.index("## Table III")]
    t3 = text[text.index("## Table III") : text.index("## Table IV")]
    t4 = text[text.index("## Table IV") :]

    # Table II: each model at its largest activation only, models sorted.
    rows2 = [line for line in t2.splitlines() if line.startswith("| ") and not line.startswith("| Model")]
    assert rows2 == [
        "| baseline | test_a | asr+scd+endp | 20.00 | 70.00 | 75.00 | - | - |",
        f"| tvpp | test_a | {ALL} | 10.00 | 80.00 | 90.00 | 70.00 | 95.00 |",
        f"| tvpp | test_b | {ALL} | 11.00 | 60.00 | 61.00 | 62.00 | 63.00 |",
    ]
    assert "| Model | Test set | Tasks | WER (%) | SCD F1 | ENDP F1 | NER F1 | LID acc |" in t2

    # Table III: languages sorted, "unk" last; only tvpp/test_a has a breakdown.
    rows3 = [line for line in t3.splitlines() if line.startswith("| tvpp")]
    assert rows3 == [
        "| tvpp | test_a | de | 12.50 | 79.00 | 89.00 | - | 94.00 |",
        "| tvpp | test_a | en | 8.00 | 81.00 | 91.00 | 71.00 | 96.00 |",
        "| tvpp | test_a | unk | 30.00 | - | - | - | - |",
    ]

    # Table IV: per model, activations from small to large, with ITT.
    tv = t4[t4.index("### tvpp") :]
    rows4 = [line for line in tv.splitlines() if line.startswith("| ") and not line.startswith("| Tasks")]
    assert rows4 == [
        "| asr | test_a | 9.50 | - | - | - | - | 7 |",
        "| asr+lid | test_a | 9.75 | - | - | - | 97.00 | 3 |",
        f"| {ALL} | test_a | 10.00 | 80.00 | 90.00 | 70.00 | 95.00 | 0 |",
        f"| {ALL} | test_b | 11.00 | 60.00 | 61.00 | 62.00 | 63.00 | 0 |",
    ]
    assert t4.index("### baseline") < t4.index("### tvpp")
    assert "| asr+scd+endp | test_a | 20.00 | 70.00 | 75.00 | - | - | 0 |" in t4

    # Deterministic, and no temporary files left next to the output.
    _, again = run_report(tmp_path, *exp_tree, "--prepend", str(stats))
    assert again == text
    assert [p.name for p in out.parent.iterdir()] == ["RESULTS.md"]


def test_report_keeps_only_the_given_test_sets(tmp_path, exp_tree):
    put(exp_tree[0] / "tvpp" / f"decode_{ALL}" / "dev" / "score.json", score(55.5))  # a dev decode for tuning
    _, every = run_report(tmp_path, *exp_tree)
    assert "55.50" in every
    _, text = run_report(tmp_path, *exp_tree, "--test_sets", "test_a test_b")
    assert "55.50" not in text and "10.00" in text and "11.00" in text
    with pytest.raises(DataError, match="no score.json found .* for test sets nope"):
        run_report(tmp_path, *exp_tree, "--test_sets", "nope")


def test_appended_markdown_is_nested_and_not_repeated(tmp_path, exp_tree):
    stats = tmp_path / "stats.md"
    stats.write_text("# Corpus statistics\n\n| a | b |\n|---|---|\n| 1 | 2 |\n", encoding="utf-8")
    grid = tmp_path / "RESULTS_grid.md"
    grid.write_text(
        "# RESULTS_grid: comparisons\n\n## Verdicts\n\n- **(a)** reproduced\n\n### Detail\n\nx #1\n\n"
        "# Corpus statistics\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n### still the stats\n\n"
        "# After\n\nend\n",
        encoding="utf-8",
    )
    _, text = run_report(tmp_path, *exp_tree, "--prepend", str(stats), "--append", str(grid))
    tail = text[text.index("## RESULTS_grid: comparisons") :]
    assert (
        "\n### Verdicts\n" in tail
        and "\n#### Detail\n" in tail
        and "x #1" in tail
        and tail.endswith("## After\n\nend\n")
    )
    assert text.count("Corpus statistics") == 1 and "still the stats" not in text  # shown once, from --prepend
    assert text.index("## Table II") < text.index("## RESULTS_grid")
    with pytest.raises(DataError, match="nope.md: no such file \\(given with --append\\)"):
        run_report(tmp_path, *exp_tree, "--append", str(tmp_path / "nope.md"))


def test_report_errors(tmp_path, exp_tree):
    exp, exp2 = exp_tree
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="no score.json found"):
        tokenverse_report.run(["--exp_dir", str(empty), "--out", str(tmp_path / "r.md")])
    # The same model/test set/activation twice.
    put(
        exp2 / "again" / "score.json",
        score(1.0, model="baseline", test_set="test_a", task_activation=["asr", "scd", "endp"]),
    )
    with pytest.raises(DataError, match="both score model baseline on test_a"):
        run_report(tmp_path, exp, exp2)
    # Nothing to tell the model from.
    put(empty / "odd" / "score.json", score(1.0))
    with pytest.raises(DataError, match=r"odd.score\.json: cannot tell model"):
        tokenverse_report.run(["--exp_dir", str(empty), "--out", str(tmp_path / "r.md")])
    assert not (tmp_path / "r.md").exists()


# ---- task-vector analysis ------------------------------------------------------------------------------
TABLE = torch.tensor([[3.0, 4.0, 0.0, 0.0], [0.0, 4.0, 3.0, 0.0], [-3.0, -4.0, 0.0, 0.0]])


def test_analyze_hand_values():
    res = analyze(TABLE, ["asr", "scd", "lid"])
    assert res["norms"] == pytest.approx([5.0, 5.0, 5.0])
    # (0,1): 16/25; (0,2): opposite; (1,2): -16/25.
    expected = [[1.0, 0.64, -1.0], [0.64, 1.0, -0.64], [-1.0, -0.64, 1.0]]
    for row, want in zip(res["cosine"], expected):
        assert row == pytest.approx(want)
    zero = analyze(torch.tensor([[0.0, 0.0], [1.0, 0.0]]), ["a", "b"])
    assert zero["norms"] == [0.0, 1.0] and zero["cosine"][0] == [0.0, 0.0]
    with pytest.raises(ValueError, match="3 rows but 2 labels"):
        analyze(TABLE, ["asr", "scd"])


def _model(tmp_path, state, strategy="per_task", tasks=("asr", "scd", "lid")):
    model = tmp_path / "valid.acc.ave.pth"
    torch.save(state, model)
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {"frontend_conf": {"task_vector_strategy": strategy}, "tokenverse_conf": {"tasks": list(tasks)}}
        ),
        encoding="utf-8",
    )
    return model, config


def test_analysis_cli_writes_markdown_json_png(tmp_path):
    enc = torch.eye(4)[:3] * 2.0
    state = {
        "frontend.task_vectors.feature_encoder.weight": TABLE.clone(),
        "encoder.task_vectors.encoder_output.weight": enc,
        "decoder.embed.weight": torch.zeros(5, 4),
    }
    model, config = _model(tmp_path, state)
    out = tmp_path / "analysis"
    tva_cli.run(["--model_file", str(model), "--config", str(config), "--out_dir", str(out)])

    data = json.loads((out / "task_vectors.json").read_text())
    assert data["strategy"] == "per_task"
    assert list(data["tables"]) == ["feature_encoder", "encoder_output"]
    fe = data["tables"]["feature_encoder"]
    assert fe["labels"] == ["asr", "scd", "lid"] and fe["shape"] == [3, 4]
    assert fe["cosine"][0][1] == pytest.approx(0.64)
    assert data["tables"]["encoder_output"]["norms"] == pytest.approx([2.0, 2.0, 2.0])

    md = (out / "task_vectors.md").read_text()
    assert "## feature_encoder (3 x 4)" in md
    assert "| scd | 5.0000 |" in md
    assert "| asr | 1.000 | 0.640 | -1.000 |" in md

    import matplotlib.image

    for point in ("feature_encoder", "encoder_output"):
        png = out / f"task_vectors_{point}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert matplotlib.image.imread(png).ndim == 3
    assert sorted(p.name for p in out.iterdir()) == [
        "task_vectors.json",
        "task_vectors.md",
        "task_vectors_encoder_output.png",
        "task_vectors_feature_encoder.png",
    ]


def test_analysis_errors(tmp_path):
    model, config = _model(tmp_path, {"encoder.layer.weight": torch.zeros(2, 2)})
    with pytest.raises(DataError, match=r"no task vectors \(trained without conditioning\?\)"):
        tva_cli.run(["--model_file", str(model), "--config", str(config), "--out_dir", str(tmp_path / "o")])
    # per_combination over 2 aux tasks needs 4 rows; the table has 3.
    model, config = _model(tmp_path, {"task_vectors.feature_encoder.weight": TABLE}, strategy="per_combination")
    with pytest.raises(DataError, match="3 rows but 4 labels"):
        tva_cli.run(["--model_file", str(model), "--config", str(config), "--out_dir", str(tmp_path / "o")])
    assert not (tmp_path / "o").exists()
